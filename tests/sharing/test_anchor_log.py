"""Anchors of the access log: its head published outside the log, so that deleting the newest entries, which
the hash chain alone cannot show, is caught by ``smartlondon sharing verify-log``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from smartlondon.cli import main
from smartlondon.sharing import accesslog

from .conftest import query_body

URL = "/api/sharing/queries"


def _use(client, analyst, borough: str = "Camden") -> None:  # type: ignore[no-untyped-def]
    body = query_body(query={"dataset": "fire-visits", "measures": [{"op": "count"}], "by": ["band"],
                             "where": {"borough": [borough]}})
    assert client.post(URL, json=body, headers=analyst.headers).status_code == 200


def _cli(db, data_dir: Path, *args: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, ["sharing", *args],
                                env={"SMARTLONDON_DATABASE_URL": db.url, "SMARTLONDON_DATA_DIR": str(data_dir)})
    return result.exit_code, " ".join(result.output.split())


def _truncate(db, newest: int) -> None:  # type: ignore[no-untyped-def]
    """Delete the newest entries as a database superuser would: past the append-only triggers."""
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")  # row triggers do not fire
        else:
            for table in ("sharing_access_log", "sharing_access_subjects"):
                conn.execute(text(f"DROP TRIGGER {table}_no_delete"))
        ids = [r[0] for r in conn.execute(text("SELECT id FROM sharing_access_log ORDER BY id DESC LIMIT :n"),
                                          {"n": newest})]
        for entry_id in ids:
            conn.execute(text("DELETE FROM sharing_access_subjects WHERE entry_id = :i"), {"i": entry_id})
            conn.execute(text("DELETE FROM sharing_access_log WHERE id = :i"), {"i": entry_id})


def test_anchor_log_publishes_the_head_in_the_table_the_page_and_a_file(client, db, agreement, analyst,
                                                                      tmp_path):  # type: ignore[no-untyped-def]
    _use(client, analyst)
    _use(client, analyst, "Brent")
    code, out = _cli(db, tmp_path / "cli", "anchor-log")
    assert code == 0, out
    assert "Anchored the access log at 2 entries" in out
    with db.session() as session:
        head = accesslog.entries(session)[0]
        anchors = accesslog.anchors(session)
        assert [(a.sequence, a.entry_id, a.head_hash, a.reason) for a in anchors] == [
            (2, head.id, head.hash, "command")]
    written = json.loads((tmp_path / "cli" / "sharing" / "log-head.json").read_text())
    assert (written["sequence"], written["head_hash"]) == (2, head.hash)
    page = client.get("/sharing/uses/log-anchors.json").json()
    assert page["current"] == {"sequence": 2, "entry_id": head.id, "head_hash": head.hash}
    assert [(a["sequence"], a["head_hash"]) for a in page["anchors"]] == [(2, head.hash)]
    html = client.get("/sharing/uses/log-anchors").text
    assert head.hash in html and "1 published anchor" in html and "<table class=\"govuk-table\">" in html


def test_truncating_after_an_anchor_is_detected(client, db, agreement, analyst, tmp_path):  # type: ignore[no-untyped-def]
    for borough in ("Camden", "Brent", "Hackney"):
        _use(client, analyst, borough)
    assert _cli(db, tmp_path / "cli", "anchor-log")[0] == 0
    _use(client, analyst)  # one more use after the anchor
    code, out = _cli(db, tmp_path / "cli", "verify-log")
    assert code == 0 and "4 entries" in out and "2 published anchors" in out  # the table's and the file's
    _truncate(db, 2)  # the entry after the anchor and the anchored head itself: the chain still verifies
    with db.session() as session:
        ok, _, message = accesslog.verify(session)
    assert not ok and "has 2 entries but the anchor" in message and "recorded 3" in message
    code, out = _cli(db, tmp_path / "cli", "verify-log")
    assert code == 1 and "the newest entries were deleted" in out


def test_the_head_file_alone_catches_truncation_and_a_replaced_head(client, db, agreement, analyst,
                                                                   tmp_path):  # type: ignore[no-untyped-def]
    _use(client, analyst)
    _use(client, analyst, "Brent")
    with db.session() as session:
        kept = accesslog.anchor_json(accesslog.publish_anchor(session))
    copy = tmp_path / "elsewhere.json"
    copy.write_text(json.dumps(kept))
    assert _cli(db, tmp_path / "other", "verify-log", "--head-file", str(copy))[0] == 0
    _truncate(db, 1)
    with db.session() as session:  # the attacker cannot delete the anchor row: it is append-only too
        with pytest.raises(Exception, match="append-only"):
            session.execute(text("DELETE FROM sharing_log_anchor"))
            session.flush()
    _use(client, analyst, "Hackney")  # a new entry in the deleted one's place: same count, other hash
    code, out = _cli(db, tmp_path / "other", "verify-log", "--head-file", str(copy))
    assert code == 1 and "is not the head published" in out
    copy.write_text("{\"nothing\": 1}")
    code, out = _cli(db, tmp_path / "other", "verify-log", "--head-file", str(copy))
    assert code == 1 and "is not an access log head" in out


def test_an_anchor_is_published_every_n_entries(client, db, agreement, analyst, settings, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(accesslog, "ANCHOR_EVERY", 2)
    for borough in ("Camden", "Brent", "Hackney"):
        _use(client, analyst, borough)
    with db.session() as session:
        anchors = accesslog.anchors(session)
        entries = list(reversed(accesslog.entries(session)))
    assert [(a.sequence, a.head_hash, a.reason) for a in anchors] == [(2, entries[1].hash, "every 2 entries")]
    written = json.loads((settings.data_dir / "sharing" / "log-head.json").read_text())
    assert written["head_hash"] == entries[1].hash
