"""The in-memory facet counter stays exact as the catalogue changes, even from other processes."""

from __future__ import annotations

import numpy as np

from smartlondon.catalogue import service
from smartlondon.catalogue.facets import FacetCounter
from smartlondon.core.accounts import COMMAND_LINE
from smartlondon.core.db import Database


def make(db, slug, publisher="camden", **fields):
    with db.session() as s:
        return service.create_dataset(s, COMMAND_LINE, {"slug": slug, "title": slug.replace("-", " "),
                                                        "publisher": publisher, **fields}).id


def sql_counts(db, facet):
    from sqlalchemy import text

    with db.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT value, count(*) FROM dataset_facet f JOIN dataset d ON d.id = f.dataset_id "
            "WHERE facet = :f AND d.state = 'active' AND d.private = :p GROUP BY value"), {"f": facet, "p": False})
        return dict(rows.all())


def test_counter_matches_sql_through_creates_updates_and_deletes(db):
    counter = FacetCounter(db.engine)
    ids = [make(db, f"set-{n}", publisher=["camden", "hackney"][n % 2], themes=["health"]) for n in range(6)]
    assert dict(counter.count_public()["publisher"]) == {"camden": 3, "hackney": 3} == sql_counts(db, "publisher")
    # Another process (its own engine) changes the catalogue; this counter must follow.
    other = Database(db.url)
    with other.session() as s:
        ds = service.get_dataset(s, COMMAND_LINE, "set-0")
        service.update_dataset(s, COMMAND_LINE, ds, {"publisher": "hackney", "themes": ["transport"]})
        service.delete_dataset(s, COMMAND_LINE, service.get_dataset(s, COMMAND_LINE, "set-1"))
        service.update_dataset(s, COMMAND_LINE, service.get_dataset(s, COMMAND_LINE, "set-2"), {"private": True})
    other.dispose()
    new_id = make(db, "set-new", publisher="bexley")
    public = counter.count_public()
    assert dict(public["publisher"]) == sql_counts(db, "publisher") == {"hackney": 3, "camden": 1, "bexley": 1}
    assert dict(public["theme"]) == sql_counts(db, "theme")
    assert counter.public_total() == 5
    some = np.array([ids[0], ids[3], new_id])
    assert dict(counter.count(some)["publisher"]) == {"hackney": 2, "bexley": 1}
    visible, unknown = counter.visible(np.array([ids[2], ids[3], 10_000]), [], False)
    assert visible.tolist() == [False, True, False] and unknown.tolist() == [False, False, True]


def test_a_rolled_back_change_is_never_counted(db):
    counter = FacetCounter(db.engine)
    make(db, "kept")
    counter.count_public()
    try:
        with db.session() as s:
            service.create_dataset(s, COMMAND_LINE, {"slug": "ghost", "title": "Ghost", "publisher": "bexley"})
            assert dict(counter.count_public()["publisher"]) == {"camden": 1}  # not committed: not counted
            raise RuntimeError("fail the request")
    except RuntimeError:
        pass
    assert dict(counter.count_public()["publisher"]) == {"camden": 1}


def test_rebuild_reloads_everything(db):
    from smartlondon.catalogue import index

    counter = FacetCounter(db.engine)
    make(db, "one")
    make(db, "two", publisher="brent")
    counter.count_public()
    with db.session() as s:
        assert index.rebuild(s) == 2
    assert dict(counter.count_public()["publisher"]) == {"camden": 1, "brent": 1}
    assert counter.matching(np.array([1, 2]), {"publisher": ["brent"]}).tolist() == [False, True]


def test_pruning_the_change_log_never_loses_a_change(db):
    from sqlalchemy import text

    from smartlondon.catalogue import index

    follower = FacetCounter(db.engine)  # keeps up with every change
    make(db, "first")
    follower.count_public()
    laggard = FacetCounter(db.engine)  # loads now, then sleeps through the next changes
    laggard.count_public()
    make(db, "second", publisher="brent")
    make(db, "third", publisher="brent")
    assert dict(follower.count_public()["publisher"]) == {"camden": 1, "brent": 2}
    with db.engine.begin() as conn:  # age the log by two days
        conn.execute(text("UPDATE search_change SET at = at - 172800"))
    with db.session() as s:
        assert index.prune_changes(s) >= 2
    make(db, "fourth", publisher="bexley")
    expected = {"camden": 1, "brent": 2, "bexley": 1}
    assert dict(follower.count_public()["publisher"]) == expected
    assert dict(laggard.count_public()["publisher"]) == expected  # reloaded: its log rows were gone
