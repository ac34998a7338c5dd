"""The access log: every use logged, hash-chained; ``smartlondon sharing verify-log`` catches edits,
deletions and reordering; per-use subject sets answer "which uses touched this person"."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from smartlondon.cli import main
from smartlondon.sharing import accesslog

from .conftest import query_body

URL = "/api/sharing/queries"


def _run_three(client, analyst) -> None:  # type: ignore[no-untyped-def]
    for where in ({}, {"borough": ["Hackney"]}, {"borough": ["Camden"]}):
        body = query_body(query={"dataset": "fire-visits", "measures": [{"op": "count"}], "by": ["band"], "where": where})
        assert client.post(URL, json=body, headers=analyst.headers).status_code in (200, 403)


def _cli(db, tmp_path) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, ["sharing", "verify-log"],
                                env={"SMARTLONDON_DATABASE_URL": db.url, "SMARTLONDON_DATA_DIR": str(tmp_path / "cli")})
    return result.exit_code, " ".join(result.output.split())


@contextmanager
def _tampering(db):  # type: ignore[no-untyped-def]
    """Switch off the append-only triggers, as an attacker with database access would."""
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            for table in ("sharing_access_log", "sharing_access_subjects"):
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {table}_no_change"))
        else:
            for table in ("sharing_access_log", "sharing_access_subjects"):
                for verb in ("update", "delete"):
                    conn.execute(text(f"DROP TRIGGER {table}_no_{verb}"))
    try:
        with db.engine.begin() as conn:
            yield conn
    finally:
        if db.dialect == "postgresql":
            with db.engine.begin() as conn:
                for table in ("sharing_access_log", "sharing_access_subjects"):
                    conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {table}_no_change"))


def test_each_use_is_logged_and_the_chain_verifies(client, db, agreement, analyst, tmp_path):  # type: ignore[no-untyped-def]
    _run_three(client, analyst)
    with db.session() as session:
        entries = list(reversed(accesslog.entries(session)))
        assert len(entries) == 3
        assert entries[0].prev_hash == accesslog.GENESIS and entries[1].prev_hash == entries[0].hash
        first = entries[0]
        assert (first.actor, first.organisation, first.agreement, first.purpose) == (
            "camden-analyst", "camden", "home-fire-safety", "dpv:PublicBenefit")
        assert first.datasets == ["fire-visits"] and first.rows_read == 60
        assert set(first.fields) == {"band", "borough"} or set(first.fields) == {"band"}
        assert entries[1].rows_read == 10 and entries[1].boroughs == ["Hackney"]
        assert accesslog.verify(session)[0] is True
    code, output = _cli(db, tmp_path)
    assert code == 0 and "intact: 3 entries" in output


def test_the_database_refuses_updates_and_deletes(client, db, agreement, analyst):  # type: ignore[no-untyped-def]
    _run_three(client, analyst)
    for sql in ("UPDATE sharing_access_log SET rows_read = 0", "DELETE FROM sharing_access_log"):
        with pytest.raises(Exception, match="append-only"):
            with db.engine.begin() as conn:
                conn.execute(text(sql))


@pytest.mark.parametrize("attack, bad_id", [
    ("UPDATE sharing_access_log SET rows_read = 1 WHERE id = {2}", 2),
    ("UPDATE sharing_access_log SET organisation = 'brent' WHERE id = {3}", 3),
    ("DELETE FROM sharing_access_subjects WHERE entry_id = {2}; DELETE FROM sharing_access_log WHERE id = {2}", 3),
    ("UPDATE sharing_access_subjects SET data = (SELECT data FROM sharing_access_subjects WHERE entry_id = {1}) "
     "WHERE entry_id = {2}", 2),
])
def test_verify_log_finds_the_first_altered_entry(client, db, agreement, analyst, tmp_path, attack, bad_id):  # type: ignore[no-untyped-def]
    _run_three(client, analyst)
    with db.session() as session:
        ids = {i + 1: e.id for i, e in enumerate(reversed(accesslog.entries(session)))}
    with _tampering(db) as conn:
        for statement in attack.format(*[None, *ids.values()]).split("; "):
            conn.execute(text(statement))
    with db.session() as session:
        ok, bad, message = accesslog.verify(session)
    assert not ok and bad == ids[bad_id], message
    code, output = _cli(db, tmp_path)
    assert code == 1 and f"first bad entry: {ids[bad_id]}" in output


def test_verify_log_catches_reordering(client, db, agreement, analyst, tmp_path):  # type: ignore[no-untyped-def]
    _run_three(client, analyst)
    with db.session() as session:
        a, b = [e.id for e in reversed(accesslog.entries(session))][:2]
    columns = ("at", "actor", "organisation", "agreement", "purpose", "datasets", "fields", "boroughs", "rows_read",
               "released", "query_id", "prev_hash", "hash")
    with _tampering(db) as conn:  # swap the first two entries' contents, subject sets and all
        rows = {r[0]: r[1:] for r in conn.execute(text(f"SELECT id, {', '.join(columns)} FROM sharing_access_log "
                                                       f"WHERE id IN ({a}, {b})"))}
        subjects = list(conn.execute(text(f"SELECT entry_id, dataset, encoding, data, sha256, count "
                                          f"FROM sharing_access_subjects WHERE entry_id IN ({a}, {b})")))
        conn.execute(text(f"DELETE FROM sharing_access_subjects WHERE entry_id IN ({a}, {b})"))
        sets = ", ".join(f"{c} = :{c}" for c in columns)
        conn.execute(text(f"UPDATE sharing_access_log SET hash = 'x' || id WHERE id IN ({a}, {b})"))
        json_columns = {"datasets", "fields", "boroughs", "released"}
        for target, source in ((a, b), (b, a)):
            values = dict(zip(columns, rows[source]))
            if db.dialect == "postgresql":
                import json as _json

                values = {k: _json.dumps(v) if k in json_columns else v for k, v in values.items()}
            conn.execute(text(f"UPDATE sharing_access_log SET {sets} WHERE id = {target}"), values)
        for entry_id, dataset, encoding, data, sha, count in subjects:
            conn.execute(text("INSERT INTO sharing_access_subjects (entry_id, dataset, encoding, data, sha256, count) "
                              "VALUES (:e, :d, :enc, :data, :sha, :n)"),
                         {"e": b if entry_id == a else a, "d": dataset, "enc": encoding, "data": data, "sha": sha,
                          "n": count})
    code, output = _cli(db, tmp_path)
    assert code == 1 and f"first bad entry: {a}" in output


def test_uses_touching_a_person_come_from_the_subject_sets(client, db, agreement, analyst, store):  # type: ignore[no-untyped-def]
    _run_three(client, analyst)
    hackney = store.subject_nos(["p055"])["p055"]
    camden = store.subject_nos(["p003"])["p003"]
    with db.session() as session:
        touching_hackney = [e.boroughs for e in accesslog.uses_touching(session, "fire-visits", hackney)]
        touching_camden = [e.boroughs for e in accesslog.uses_touching(session, "fire-visits", camden)]
        assert touching_hackney == [[], ["Hackney"]]
        assert touching_camden == [[], ["Camden"]]
        assert accesslog.uses_touching(session, "fire-visits", 10_000) == []


def test_compact_subject_sets_round_trip() -> None:
    nos = {1, 2, 9, 64, 65, 1000, 99_999}
    data = accesslog.encode_subjects(nos)
    assert accesslog.decode_subjects(data) == nos
    assert accesslog.contains(data, 64) and not accesslog.contains(data, 63) and not accesslog.contains(data, 0)
    assert len(accesslog.encode_subjects(set(range(1, 1_000_001)))) < 5_000  # a million people in a few KB
