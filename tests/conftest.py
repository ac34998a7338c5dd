"""Fixtures shared by the whole suite.

Every test that uses the database runs on SQLite, and again on PostgreSQL when
``SMARTLONDON_TEST_DATABASE_URL`` is set (as ``.ci/run`` does). The schema is migrated once per
run; each test then starts from a clean, seeded database.

Under pytest-xdist (``make test`` runs ``-n 2``) each worker has its own PostgreSQL database,
named after the one in ``SMARTLONDON_TEST_DATABASE_URL`` plus the worker id (``..._gw0``), made
with PostGIS if it is missing. Tests that talk to the MQTT broker (their module imports
``tests/sensors/mqtt_support.py``, or they carry ``@pytest.mark.mqtt``) are marked ``mqtt``:
the broker's topics are fixed, so ``make test`` runs them in a serial pass of their own.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import smartlondon.app
from smartlondon.app import create_app
from smartlondon.catalogue.facets import counter_for
from smartlondon.core import accounts, migrate, passwords, reference
from smartlondon.core.db import Database
from smartlondon.settings import Settings

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PG_URL = os.environ.get("SMARTLONDON_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]


def _uses_broker(module: object) -> bool:
    """Whether a test module uses the MQTT test helpers (and so the broker's fixed topics)."""
    return any(str(getattr(value, "__module__", "")).endswith("mqtt_support") for value in vars(module).values())


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of a module that uses the MQTT broker with ``mqtt``."""
    seen: dict[str, bool] = {}
    for item in items:
        module = getattr(item, "module", None)
        if module is None:
            continue
        if module.__name__ not in seen:
            seen[module.__name__] = _uses_broker(module)
        if seen[module.__name__]:
            item.add_marker(pytest.mark.mqtt)


def worker_database_url(url: str, worker: str | None) -> str:
    """The PostgreSQL database of this pytest-xdist worker: the given one, suffixed with the worker id."""
    if not worker or worker == "master":
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)


def _ensure_database(url: str) -> None:
    """Create the PostgreSQL database of ``url`` (with PostGIS) if it does not exist."""
    parsed = make_url(url)
    maintenance = create_engine(parsed.set(drivername="postgresql+psycopg", database="postgres"),
                                isolation_level="AUTOCOMMIT")
    try:
        with maintenance.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                  {"name": parsed.database}).first()
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{parsed.database}"')
    finally:
        maintenance.dispose()


class _MemoryBytecodeCache(jinja2.BytecodeCache):
    """Compiled templates kept in this process's memory, keyed by name and checked against the source."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if bucket.key in self._code:
            bucket.bytecode_from_string(self._code[bucket.key])

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


@pytest.fixture(scope="session", autouse=True)
def compiled_templates() -> Iterator[jinja2.BytecodeCache]:
    """Every app the tests build shares one cache of compiled page templates (speed only).

    Each test makes a new app, and so a new Jinja environment that would compile every template it
    renders again: about 0.7 s of CPU for a handful of pages. Jinja checks each cached template
    against its source's checksum, so a test's own or changed templates are still compiled.
    """
    cache = _MemoryBytecodeCache()
    original = smartlondon.app.make_environment

    def make_environment(*args, **kwargs) -> jinja2.Environment:  # type: ignore[no-untyped-def]
        env = original(*args, **kwargs)
        env.bytecode_cache = cache
        return env

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(smartlondon.app, "make_environment", make_environment)
        yield cache


@pytest.fixture(scope="session", autouse=True)
def production_password_hasher() -> Iterator[PasswordHasher]:
    """Tests hash passwords with argon2id at its lowest cost; this yields the product's own hasher.

    The product's argon2id (64 MiB, 3 passes, 4 lanes) costs about a quarter of a CPU second a hash
    and as much a sign-in, paid by every test that makes an account. The same code paths run with
    a cheaper parameter set (verification reads the parameters from the stored hash);
    ``tests/core/test_accounts.py`` checks the product's parameters with the hasher yielded here.
    """
    product = passwords._hasher
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        yield product


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
    """The PostgreSQL test database (this worker's own under pytest-xdist), migrated once."""
    url = worker_database_url(PG_URL, os.environ.get("PYTEST_XDIST_WORKER"))
    if url != PG_URL:
        _ensure_database(url)
    db = Database(url)
    with db.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    migrate.upgrade(db)
    yield db
    db.dispose()


# A table whose file is larger than this is emptied with TRUNCATE (quicker than DELETE for many rows).
_TRUNCATE_FROM_BYTES = 1 << 20
_probes: dict[tuple[str, ...], str] = {}


def _filled_tables(conn, tables: list[str]) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    """The tables that hold rows, each with the size of its file in bytes (one query)."""
    key = tuple(tables)
    if key not in _probes:
        quote = conn.dialect.identifier_preparer.quote
        _probes[key] = " UNION ALL ".join(
            f"SELECT '{name}', pg_relation_size('{quote(name)}') WHERE EXISTS (SELECT 1 FROM {quote(name)})"
            for name in tables if "'" not in name)
    return [(row[0], row[1]) for row in conn.exec_driver_sql(_probes[key])]


def _reset_postgres(db: Database) -> None:
    """Empty every table (but PostGIS's and Alembic's), restart the sequences, and seed again.

    TRUNCATE of all ~70 tables makes new files for each table and index: about 0.1 s a test on a
    quiet machine, about 1 s when other PostgreSQL work competes for the disk. So, as a superuser
    (CI's ``postgres``), only the tables holding rows are emptied, with DELETE under
    ``session_replication_role = replica`` (no foreign-key checks or row triggers, like
    TRUNCATE; large tables still TRUNCATE), and the used sequences are set back to their start.
    """
    with db.engine.begin() as conn:
        tables = [r[0] for r in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT IN ('alembic_version', 'spatial_ref_sys')"))]
        if conn.exec_driver_sql("SHOW is_superuser").scalar() != "on":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            filled = _filled_tables(conn, tables)
            quote = conn.dialect.identifier_preparer.quote
            large = [quote(name) for name, size in filled if size >= _TRUNCATE_FROM_BYTES]
            if large:
                conn.exec_driver_sql(f"TRUNCATE {', '.join(large)} RESTART IDENTITY CASCADE")
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            for name, size in filled:
                if size < _TRUNCATE_FROM_BYTES:
                    conn.exec_driver_sql(f"DELETE FROM {quote(name)}")
            conn.execute(text(
                "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, start_value, false) "
                "FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL"))
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
