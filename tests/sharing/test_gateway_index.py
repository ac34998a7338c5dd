"""The subject index: per-value bitmaps of a one-row-per-subject table give exactly the people a filter reads.

The access log's subject sets must name exactly the people whose rows a use read (subject access requests rely
on it), so the index is checked here against the DuckDB scan it replaces, filter by filter, with opt-outs, and
after the rows change (rectification, erasure, a new load).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from smartlondon.sharing import accesslog, gateway
from smartlondon.sharing.store import RestrictedStore, SubjectIndex, quote

from .conftest import VISIT_COLUMNS, visit_rows

@pytest.fixture
def plain_store(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = RestrictedStore(tmp_path / "restricted.duckdb")
    yield store
    store.close()


WHERES: list[dict[str, Any]] = [
    {},
    {"borough": ["Camden"]},
    {"borough": ["Camden", "Hackney"], "band": ["most"]},
    {"age": {">=": 65}},
    {"age": {">": 30, "<=": 41.5}},
    {"age": {"!=": 20}, "borough": ["Brent"]},
    {"borough": ["Nowhere"]},
]


def _scanned(store, where: dict[str, Any], excluded: set[int]) -> set[int]:  # type: ignore[no-untyped-def]
    plan = gateway.Plan("aggregate", [], [], where=where)
    sql, params = gateway._where_sql(plan, {})
    optout = store.exclusion_filter("fire_visits", excluded)
    clause = " AND ".join(p for p in (sql, optout) if p)
    with store.cursor() as cur:
        rows = cur.execute(f"SELECT _subject_no FROM {quote('fire_visits')}" + (f" WHERE {clause}" if clause else ""),
                           params).fetchall()
    return {int(r[0]) for r in rows}


def _indexed(store, where: dict[str, Any], excluded: set[int]) -> set[int]:  # type: ignore[no-untyped-def]
    bits = SubjectIndex(store, "fire_visits").subjects(where, excluded)
    assert bits is not None
    data = accesslog.encode_bitmap(bits.tobytes(), 1)
    return accesslog.decode_subjects(data)


@pytest.mark.parametrize("where", WHERES)
def test_the_index_names_exactly_the_people_the_scan_reads(plain_store, where) -> None:  # type: ignore[no-untyped-def]
    plain_store.load_rows("other", {"person": "VARCHAR"}, [("q1",), ("q2",)], subject_column="person")
    plain_store.load_rows("fire_visits", VISIT_COLUMNS, visit_rows(), subject_column="person")  # numbers from 3
    nos = plain_store.subject_nos([f"p{i:03d}" for i in (1, 2, 45)])
    for excluded in (set(), set(nos.values())):
        assert _indexed(plain_store, where, excluded) == _scanned(plain_store, where, excluded)


def test_the_index_follows_rectification_erasure_and_new_rows(plain_store) -> None:  # type: ignore[no-untyped-def]
    plain_store.load_rows("fire_visits", VISIT_COLUMNS, visit_rows(), subject_column="person")
    where = {"borough": ["Hackney"]}
    assert len(_indexed(plain_store, where, set())) == 10
    plain_store.update_rows("fire_visits", "p000", {"borough": "Hackney"})
    assert _indexed(plain_store, where, set()) == _scanned(plain_store, where, set())
    assert len(_indexed(plain_store, where, set())) == 11
    plain_store.delete_subject("fire_visits", "p055")
    assert len(_indexed(plain_store, where, set())) == 10
    plain_store.load_rows("fire_visits", VISIT_COLUMNS, [("p900", "Hackney", 30, "most", True, False)],
                          subject_column="person")
    assert _indexed(plain_store, where, set()) == _scanned(plain_store, where, set())
    assert len(_indexed(plain_store, where, set())) == 11


def test_filters_the_index_cannot_answer_fall_back_to_the_scan(plain_store) -> None:  # type: ignore[no-untyped-def]
    plain_store.load_rows("fire_visits", VISIT_COLUMNS, visit_rows(), subject_column="person")
    index = SubjectIndex(plain_store, "fire_visits")
    assert index.subjects({"age": ["65"]}, set()) is None          # a text value for a number: DuckDB casts
    assert index.subjects({"smoke_alarm": [1]}, set()) is None     # booleans are left to DuckDB
    many = [(f"x{i}", "Camden", i, "most", True, False) for i in range(300)]
    plain_store.load_rows("wide", VISIT_COLUMNS, many, subject_column="person")
    assert SubjectIndex(plain_store, "wide").subjects({"age": {">": 5}}, set()) is None  # too many values


def test_the_gateway_logs_the_indexed_subject_set(client, db, agreement, analyst, store) -> None:  # type: ignore[no-untyped-def]
    from .conftest import query_body

    body = query_body(query={"dataset": "fire-visits", "measures": [{"op": "count"}], "by": ["band"],
                             "where": {"borough": ["Camden", "Brent"], "age": {">=": 30}}})
    assert client.post("/api/sharing/queries", json=body, headers=analyst.headers).status_code == 200
    with db.session() as session:
        entry = accesslog.entries(session)[0]
        logged = accesslog.decode_subjects(entry.subjects[0].data)
        assert entry.rows_read == len(logged) == entry.subjects[0].count
    want = store.subject_nos([f"p{i:03d}" for i in range(10, 50)])
    assert logged == set(want.values())
