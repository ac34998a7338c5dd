"""The in-memory BM25 ranks exactly as SQLite's FTS5 bm25() does, and follows every change."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from smartlondon.catalogue import index, ordering, ranking, service
from smartlondon.catalogue.facets import counter_for
from smartlondon.catalogue.search import BM25, SearchRequest, fts5_expression, parse_query, search
from smartlondon.core.accounts import ANONYMOUS, COMMAND_LINE

A_Z = Path(__file__).resolve().parents[2] / "src/smartlondon/demo/data/datastore-a-z-2010.json"
QUERIES = ["vehicles", "london", "crime OR police", "transp*", "popul* -borough", "air quality", "school*",
           '"air quality"', '"number of" OR "rate of"', '"london borough" -"of london"', '"of the"', "st-pancras",
           "housing OR homes OR dwellings", "deaths -births", "tube", "xyzzy", "é", "bus*", "data london",
           "recycl* waste", "number", "-london", "ward OR borough OR lsoa"]


@pytest.fixture
def catalogue(db):  # type: ignore[no-untyped-def]
    """256 real London Datastore titles and descriptions, with keywords from their categories."""
    entries = json.loads(A_Z.read_text())
    boroughs = ["camden", "hackney", "westminster", "greater-london-authority"]
    with db.session() as session:
        for i, entry in enumerate(entries):
            service.create_dataset(session, COMMAND_LINE, {
                "title": entry["title"], "description": entry["description"] or "",
                "keywords": [c.lower() for c in entry["categories"]], "publisher": boroughs[i % 4]})
    return db


def fts5_ranking(db, q: str) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    parsed = parse_query(q)
    expression = fts5_expression(parsed.clauses)
    for term in parsed.excluded:
        expression = f"({expression}) NOT {fts5_expression([[term]])}"
    with db.engine.connect() as conn:
        rows = conn.execute(text(f"SELECT rowid, {BM25} FROM dataset_fts WHERE dataset_fts MATCH :m ORDER BY rowid"),
                            {"m": expression}).all()
    return np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows])


def ours(db, q: str):  # type: ignore[no-untyped-def]
    parsed = parse_query(q)
    state = counter_for(db.engine).refresh()
    return ranking.score(state.text, parsed.clauses, parsed.excluded)


def assert_same(db, queries: list[str]) -> None:  # type: ignore[no-untyped-def]
    for q in queries:
        parsed = parse_query(q)
        if not parsed.clauses:
            continue
        mine = ours(db, q)
        assert mine is not None, q
        ids, scores = fts5_ranking(db, q)
        assert mine[0].tolist() == ids.tolist(), q
        assert np.allclose(mine[1], scores, rtol=1e-9, atol=1e-12), q


@pytest.mark.parametrize("db", ["sqlite"], indirect=True, ids=["fts5"])  # SQLite FTS5 only
def test_scores_are_fts5_bm25_for_words_prefixes_or_and_not(catalogue) -> None:
    assert_same(catalogue, QUERIES)
    words = sorted({w.lower() for e in json.loads(A_Z.read_text()) for w in e["title"].split() if w.isalpha()})
    rng = random.Random(3)
    mixed = [" ".join(rng.sample(words, rng.randint(1, 3))) for _ in range(60)]
    mixed += [w[:3] + "*" for w in rng.sample(words, 30)]
    mixed += [f"{a} OR {b}" for a, b in zip(rng.sample(words, 20), rng.sample(words, 20))]
    titles = [e["title"].split() for e in json.loads(A_Z.read_text())]
    mixed += ['"' + " ".join(t[i:i + 2]) + '"' for t in rng.sample(titles, 40) for i in range(min(2, len(t) - 1))]
    assert_same(catalogue, mixed)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True, ids=["fts5"])  # SQLite FTS5 only
def test_the_copy_follows_creates_edits_and_deletes(catalogue) -> None:
    counter_for(catalogue.engine).refresh()  # loaded before the changes: they arrive through the log
    with catalogue.session() as session:
        first = service.get_dataset(session, COMMAND_LINE, "abandoned-vehicles")
        service.update_dataset(session, COMMAND_LINE, first, {"title": "Abandoned vehicles and bicycles",
                                                              "keywords": ["transport", "cycling"]})
        service.create_dataset(session, COMMAND_LINE, {"title": "Bicycle hire docking stations",
                                                       "description": "Santander Cycles docks, London",
                                                       "publisher": "camden"})
    with catalogue.session() as session:
        victim = session.execute(text("SELECT slug FROM dataset WHERE title LIKE '%Crime%' LIMIT 1")).scalar_one()
        service.delete_dataset(session, COMMAND_LINE, service.get_dataset(session, COMMAND_LINE, victim))
    assert_same(catalogue, QUERIES + ["bicycl*", "cycling", "abandoned", "crime", "docking OR hire",
                                   '"hire docking"', '"docking stations"', '"abandoned vehicles"'])
    state = counter_for(catalogue.engine).refresh()
    assert state.text is not None and len(state.text.overlay) >= 2  # followed the log, no reload


@pytest.mark.parametrize("db", ["sqlite"], indirect=True, ids=["fts5"])  # SQLite FTS5 only
def test_search_in_a_transaction_that_wrote_the_index_sees_its_own_dataset(catalogue) -> None:
    counter_for(catalogue.engine).refresh()
    with catalogue.session() as session:
        service.create_dataset(session, COMMAND_LINE, {"title": "Zeppelin landing sites", "publisher": "camden"})
        result = search(session, COMMAND_LINE, SearchRequest(q="zeppelin"))
        assert [d.title for d in result.datasets] == ["Zeppelin landing sites"]
    with catalogue.session() as session:
        result = search(session, ANONYMOUS, SearchRequest(q="zeppelin"))
        assert [d.title for d in result.datasets] == ["Zeppelin landing sites"]


def sql_order(db, q: str, sort: str, publisher: str | None = None) -> list[int]:  # type: ignore[no-untyped-def]
    order = {"updated": "d.modified DESC, d.id DESC", "created": "d.created DESC, d.id DESC",
             "title": "d.title_sort, d.id"}[sort]
    where = ["d.state = 'active'", "d.private = 0"]
    params: dict[str, str] = {}
    if q:
        where.append("d.id IN (SELECT rowid FROM dataset_fts WHERE dataset_fts MATCH :m)")
        params["m"] = fts5_expression(parse_query(q).clauses)
    if publisher:
        where.append("d.organisation_id = (SELECT id FROM organisation WHERE slug = :p)")
        params["p"] = publisher
    with db.engine.connect() as conn:
        return list(conn.execute(text(f"SELECT d.id FROM dataset d WHERE {' AND '.join(where)} ORDER BY {order}"),
                                 params).scalars())


def searched(db, q: str, sort: str, publisher: str | None = None) -> list[int]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        filters = {"publisher": [publisher]} if publisher else {}
        result = search(session, ANONYMOUS, SearchRequest(q=q, sort=sort, filters=filters, page_size=1000))
        return [d.id for d in result.datasets]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True, ids=["fts5"])  # SQLite FTS5 only
def test_date_and_title_orders_are_the_databases_own_after_changes(catalogue) -> None:
    counter_for(catalogue.engine).refresh()
    with catalogue.session() as session:  # changes the copy must follow: a new first title, a touched date
        service.create_dataset(session, COMMAND_LINE, {"title": "Aardvark sightings in London", "publisher": "camden"})
        service.create_dataset(session, COMMAND_LINE, {"title": "aardvark sightings in london", "publisher": "camden"})
        ds = service.get_dataset(session, COMMAND_LINE, "abandoned-vehicles")
        service.update_dataset(session, COMMAND_LINE, ds, {"title": "Zebra crossings and abandoned vehicles"})
        session.execute(text("UPDATE dataset SET created = (SELECT created FROM dataset WHERE id = 3), "
                             "modified = (SELECT modified FROM dataset WHERE id = 3) WHERE id % 3 = 0"))
        index.rebuild(session)  # ties in the copy's base arrays
    with catalogue.session() as session:
        session.execute(text("UPDATE dataset SET private = 1 WHERE id = 5"))
        service.update_dataset(session, COMMAND_LINE, service.get_dataset(
            session, COMMAND_LINE, session.execute(text("SELECT slug FROM dataset WHERE id = 5")).scalar_one()),
                               {"description": "now private"})
    for sort in ("updated", "created", "title"):
        for q, publisher in (("", "camden"), ("", "hackney"), ("london", None), ("crime OR police", None),
                             ("london", "camden"), ('"abandoned vehicles"', None)):
            assert searched(catalogue, q, sort, publisher) == sql_order(catalogue, q, sort, publisher), (q, sort)


def test_changed_datasets_take_their_place_among_the_loaded_ones() -> None:
    rng = random.Random(11)
    words = ["bus", "bus stops", "crime", "Crime", "école", "zebra", "air", "air quality", "a", ""]
    titles = {i: rng.choice(words) + rng.choice(["", " 2", " b"]) for i in range(1, 400)}
    dates = {i: rng.choice([10, 20, 20, 30, 40]) for i in titles}
    base = sorted(titles, key=lambda i: (titles[i], i))
    keys = ordering.SortKeys(modified=np.zeros(400, dtype=np.int64), created=np.zeros(400, dtype=np.int64),
                             title_rank=np.zeros(400), titles=[(titles[i], i) for i in base])
    for rank, i in enumerate(base):
        keys.title_rank[i], keys.modified[i], keys.created[i] = rank, dates[i], -dates[i]
    for i in rng.sample(sorted(titles), 60) + list(range(400, 420)):  # edited, and new ones past the arrays
        titles[i], dates[i] = rng.choice(words) + rng.choice(["", " 2", " c"]), rng.choice([10, 20, 50])
        keys.overlay[i] = (dates[i], -dates[i], titles[i])
    for _ in range(30):
        ids = np.array(sorted(rng.sample(sorted(titles), 150)), dtype=np.int64)
        assert ordering.order(keys, ids, "title").tolist() == sorted(ids.tolist(), key=lambda i: (titles[i], i))
        assert ordering.order(keys, ids, "updated").tolist() == sorted(ids.tolist(), key=lambda i: (-dates[i], -i))
        assert ordering.order(keys, ids, "created").tolist() == sorted(ids.tolist(), key=lambda i: (dates[i], -i))
