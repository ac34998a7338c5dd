"""The suite's own machinery (tests/conftest.py): every test starts from the same seeded database,
whatever the test before it wrote, and the MQTT broker's tests are marked for their serial pass."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import inspect, text

from smartlondon.core import accounts
from smartlondon.core.db import Database

from .conftest import _reset_postgres, _uses_broker, worker_database_url


def snapshot(db: Database) -> tuple[dict[str, int], dict[str, int | None]]:
    """Every table's row count and, on PostgreSQL, where each sequence stands."""
    with db.engine.connect() as conn:
        names = [n for n in inspect(conn).get_table_names() if n not in ("alembic_version", "spatial_ref_sys")]
        counts = {name: conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one() for name in names}
        sequences: dict[str, int | None] = {}
        if db.dialect == "postgresql":
            sequences = dict(conn.execute(text(  # type: ignore[arg-type]
                "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'")).all())
    return counts, sequences


DATASET = {"title": "Nitrogen dioxide diffusion tubes, Camden", "slug": "camden-no2-tubes",
           "description": "Monthly readings.", "publisher": "camden", "keywords": ["air quality"]}


def test_a_test_starts_from_the_seeded_database_whatever_the_last_one_wrote(
        db: Database, make_account, client, sqlite_template: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fresh = snapshot(db)
    assert fresh[0]["organisation"] > 30 and fresh[0]["user_account"] == 0 and fresh[0]["dataset"] == 0

    ann = make_account("ann", sysadmin=True)  # a user, a token, and audit events (append-only on PostgreSQL)
    assert client.post("/api/datasets", json=DATASET, headers=ann.headers).status_code == 201
    written = snapshot(db)
    assert written[0]["dataset"] == 1 and written[0]["audit_event"] > fresh[0]["audit_event"]
    with db.engine.connect() as conn:
        first_id = conn.execute(text("SELECT id FROM user_account")).scalar_one()

    if db.dialect == "postgresql":  # the next test's database: the same one, reset
        _reset_postgres(db)
        again = db
    else:  # the next test's database: a new copy of the template
        shutil.copy(sqlite_template, tmp_path / "next.db")
        again = Database(f"sqlite:///{tmp_path / 'next.db'}")
    try:
        assert snapshot(again) == fresh
        with again.session() as session:
            bob = accounts.create_user(session, username="bob", email="bob@example.org", password="bob-password-123")
            assert bob.id == first_id  # ids start again
    finally:
        if again is not db:
            again.dispose()


def test_the_broker_tests_are_the_modules_using_the_mqtt_helpers() -> None:
    from tests.sensors import mqtt_support

    assert _uses_broker(SimpleNamespace(require_broker=mqtt_support.require_broker, json=None))
    assert not _uses_broker(SimpleNamespace(snapshot=snapshot, BROKER_URL=mqtt_support.BROKER_URL))


def test_each_xdist_worker_has_its_own_postgresql_database() -> None:
    url = "postgresql://postgres@127.0.0.1:5432/smartlondon_test"
    assert worker_database_url(url, None) == url
    assert worker_database_url(url, "master") == url
    assert worker_database_url(url, "gw1") == "postgresql://postgres@127.0.0.1:5432/smartlondon_test_gw1"
