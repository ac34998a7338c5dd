"""Change events: reactions run in the transaction, or only once it has committed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from smartlondon.catalogue import service
from smartlondon.core import events
from smartlondon.core.accounts import COMMAND_LINE


@pytest.fixture
def seen() -> Iterator[list[tuple[str, object]]]:
    calls: list[tuple[str, object]] = []

    def during(session, dataset_id):  # type: ignore[no-untyped-def]
        calls.append(("during", session.scalar(text("SELECT title FROM dataset WHERE id = :i"), {"i": dataset_id})))

    def after(engine, dataset_id):  # type: ignore[no-untyped-def]
        with engine.connect() as conn:
            calls.append(("after", conn.scalar(text("SELECT title FROM dataset WHERE id = :i"), {"i": dataset_id})))

    events.subscribe("dataset.changed")(during)
    events.subscribe("dataset.changed", after_commit=True)(after)
    yield calls
    events.unsubscribe("dataset.changed", during)
    events.unsubscribe("dataset.changed", after)


def test_subscribers_see_the_change_in_the_transaction_and_after_commit(db, seen) -> None:
    with db.session() as session:
        service.create_dataset(session, COMMAND_LINE, {"title": "Tube entries", "publisher": "transport-for-london"})
        assert seen == [("during", "Tube entries")]
    assert seen == [("during", "Tube entries"), ("after", "Tube entries")]


def test_after_commit_subscribers_never_run_when_the_transaction_rolls_back(db, seen) -> None:
    with pytest.raises(RuntimeError):
        with db.session() as session:
            service.create_dataset(session, COMMAND_LINE, {"title": "Never saved", "publisher": "transport-for-london"})
            raise RuntimeError("abandon")
    assert seen == [("during", "Never saved")]
    with db.session() as session:
        service.create_dataset(session, COMMAND_LINE, {"title": "Saved", "publisher": "transport-for-london"})
    assert seen[-1] == ("after", "Saved")


def test_a_dataset_and_its_resources_are_indexed_and_scored_once_per_transaction(db) -> None:
    """Adding ten resources in one transaction re-indexes and rescores the dataset once, at commit."""
    from sqlalchemy import event

    writes: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        lowered = statement.lower()
        if lowered.startswith(("insert into dataset_score", "insert into dataset_fts",
                               "update dataset set search_vector = setweight")):
            writes.append(lowered[:40])

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.session() as session:
            ds = service.create_dataset(session, COMMAND_LINE, {"title": "Bus stops", "publisher": "transport-for-london"})
            for n in range(10):
                service.add_resource(session, COMMAND_LINE, ds, {"title": f"Part {n}", "url": f"https://example.org/{n}.csv"})
            assert writes == []  # nothing indexed or scored yet: it happens once, just before the commit
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(writes) == 2, writes  # one index write and one scorecard, not eleven of each
    with db.session() as session:
        from smartlondon.catalogue.charter.scores import scorecard_of
        from smartlondon.catalogue.models import Dataset

        card = scorecard_of(session, session.get(Dataset, ds.id))
        assert card["stars"] == 3
