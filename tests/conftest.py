"""Fixtures shared by the whole suite.

Every test that uses the database runs on SQLite, and again on PostgreSQL when
``SMARTLONDON_TEST_DATABASE_URL`` is set (as ``.ci/run`` does). The schema is migrated once per
run; each test then starts from a clean, seeded database.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from smartlondon.app import create_app
from smartlondon.catalogue.facets import counter_for
from smartlondon.core import accounts, migrate, reference
from smartlondon.core.db import Database
from smartlondon.settings import Settings

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PG_URL = os.environ.get("SMARTLONDON_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, seeded SQLite file that each test copies."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db)
    with db.session() as session:
        reference.seed(session)
    with db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[Database]:
    """The PostgreSQL test database, migrated once."""
    db = Database(PG_URL)
    with db.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    migrate.upgrade(db)
    yield db
    db.dispose()


def _reset_postgres(db: Database) -> None:
    with db.engine.begin() as conn:
        tables = [r[0] for r in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT IN ('alembic_version', 'spatial_ref_sys')"))]
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    with db.session() as session:
        reference.seed(session)
    counter_for(db.engine).invalidate()  # ids restarted: the facet counter must not trust its marks


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Database]:
    """A clean, migrated and seeded database: SQLite, or PostgreSQL in the second run."""
    if request.param == "postgresql":
        database: Database = request.getfixturevalue("pg_database")
        _reset_postgres(database)
        yield database
        return
    path = tmp_path / "test.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


@pytest.fixture
def settings(tmp_path: Path, db: Database) -> Settings:
    """Settings for a test: files under the test's own directory."""
    return Settings(data_dir=tmp_path / "var", database_url=db.url, secret_key="test-secret",
                    base_url="http://testserver", max_upload_bytes=5 * 1024 * 1024).resolved()


@pytest.fixture
def app(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    """The application on the test database."""
    return create_app(settings, db)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """An HTTP client talking to the application."""
    with TestClient(app) as test_client:
        yield test_client


@dataclass
class Account:
    """A user made for a test, with an API token."""

    username: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """Authorization headers for this account."""
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def make_account(db: Database):  # type: ignore[no-untyped-def]
    """Make a user with roles and a token: ``make_account("ann", camden="editor")``."""
    def make(username: str, sysadmin: bool = False, days: int = 30, **roles: str) -> Account:
        password = f"{username}-password-123"
        with db.session() as session:
            user = accounts.create_user(session, username=username, email=f"{username}@example.org",
                                        password=password, sysadmin=sysadmin)
            for org, role in roles.items():
                accounts.set_role(session, user, accounts.get_organisation(session, org.replace("_", "-")), role)
            _, secret = accounts.create_token(session, user, "tests", days)
        return Account(username, password, secret)

    return make


@pytest.fixture
def editor(make_account) -> Account:  # type: ignore[no-untyped-def]
    """An editor of Camden."""
    return make_account("camden-editor", camden="editor")


@pytest.fixture
def sysadmin(make_account) -> Account:  # type: ignore[no-untyped-def]
    """A sysadmin."""
    return make_account("root-admin", sysadmin=True)
