"""Opt-outs by subtraction: the gateway aggregates the whole table and takes away the opted-out people's rows.

The true cells must be exactly those of the same aggregate with the opted-out rows filtered out, for counts,
sums and means, with and without dimensions, on a table with one row per person and on one with several
(where "people" is a distinct count), including a cell everyone in it opted out of. The copy of the opted-out
rows must follow rectification and erasure at once: no corrected or erased value may survive in it.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from smartlondon.sharing import gateway
from smartlondon.sharing.models import RestrictedDataset
from smartlondon.sharing.privacy import optouts
from smartlondon.sharing.store import SIDE_DB, quote

PURPOSE = "dpv:PublicBenefit"

QUERIES: list[tuple[list[str], list[tuple[str, str | None]], dict[str, Any]]] = [
    (["borough", "band"], [("count", None), ("sum", "age"), ("mean", "age")], {}),
    (["borough"], [("count", None), ("mean", "age")], {"age": {">=": 40}}),
    ([], [("count", None), ("sum", "age"), ("mean", "age")], {"band": ["most"]}),
    (["band"], [("count", None)], {"borough": ["Hackney"]}),
]


def _filtered(store, table: str, plan: gateway.Plan, excluded: set[int], people: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The reference: the same aggregate with the opted-out rows filtered out, straight in DuckDB."""
    where, params = gateway._where_sql(plan, {})
    clause = " AND ".join(p for p in (where, f"_subject_no NOT IN ({', '.join(map(str, excluded))})") if p)
    cols = [("count(*)" if op == "count" else f"{'sum' if op == 'sum' else 'avg'}({quote(name)})")  # type: ignore[arg-type]
            for op, name in plan.measures]
    dims = ", ".join(quote(d) for d in plan.dimensions)
    sql = (f"SELECT {', '.join([*(quote(d) for d in plan.dimensions), *cols, people])} FROM {quote(table)} "
           f"WHERE {clause}" + (f" GROUP BY {dims} ORDER BY {dims}" if dims else ""))
    names = ["count" if op == "count" else f"{op}_{name}" for op, name in plan.measures]
    with store.cursor() as cur:
        rows = cur.execute(sql, params).fetchall()
    k = len(plan.dimensions)
    return [{**dict(zip(plan.dimensions, r[:k])), **dict(zip(names, r[k:-1])), "_n": r[-1]} for r in rows]


def _approx(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (pytest.approx(v) if isinstance(v, float) else v) for k, v in row.items()} for row in rows]


def _through_gateway(db, store, plan: gateway.Plan) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        result, pending = gateway.run_aggregate(session, store, plan, PURPOSE, {})
        pending()
    return result.rows


def _opt_out(db, pseudonyms: list[str]) -> None:  # type: ignore[no-untyped-def]
    with db.session() as session:
        for p in pseudonyms:
            optouts.register_pseudonyms(session, {"test-epoch": p})


def _plan(db, dims, measures, where) -> gateway.Plan:  # type: ignore[no-untyped-def]
    with db.session() as session:
        rd = session.scalar(select(RestrictedDataset).where(RestrictedDataset.slug == "fire-visits"))
        session.expunge(rd)
    return gateway.Plan("aggregate", [rd], [], dimensions=dims, measures=measures, where=where)


@pytest.mark.parametrize("dims, measures, where", QUERIES)
def test_subtracting_opted_out_rows_gives_the_filtered_aggregate(db, store, visits, dims, measures, where) -> None:  # type: ignore[no-untyped-def]
    # all of Hackney (p050..p059) and three others opt out: a whole cell disappears
    _opt_out(db, [f"p{i:03d}" for i in (1, 2, 33, *range(50, 60))])
    excluded = set(store.subject_nos([f"p{i:03d}" for i in (1, 2, 33, *range(50, 60))]).values())
    plan = _plan(db, dims, measures, where)
    got = _through_gateway(db, store, plan)
    want = _filtered(store, "fire_visits", plan, excluded, "count(*)")
    assert got == _approx(want)
    assert not any(cell.get("borough") == "Hackney" for cell in got)
    assert (store.exclusion("fire_visits", excluded)[1] or "").startswith(f"{SIDE_DB}.")  # the path taken


def test_a_table_with_several_rows_per_person_counts_people_apart(db, store, visits) -> None:  # type: ignore[no-untyped-def]
    # two visits each for p000..p019: "people" is a distinct count, which subtracts over disjoint people too
    store.load_rows("fire_visits", {"person": "VARCHAR", "borough": "VARCHAR", "age": "INTEGER", "band": "VARCHAR",
                                    "smoke_alarm": "BOOLEAN", "disability": "BOOLEAN"},
                    [(f"p{i:03d}", "Camden", 30 + i, "most", True, False) for i in range(20)], subject_column="person")
    assert store.table_info("fire_visits")[1] is False
    _opt_out(db, ["p003", "p004", "p040"])
    excluded = set(store.subject_nos(["p003", "p004", "p040"]).values())
    plan = _plan(db, ["borough", "band"], [("count", None), ("mean", "age")], {})
    got = _through_gateway(db, store, plan)
    want = _filtered(store, "fire_visits", plan, excluded, "count(DISTINCT _subject_no)")
    assert got == _approx(want)
    camden_most = next(c for c in got if c["borough"] == "Camden" and c["band"] == "most")
    # 35 rows (15 odd-numbered people, 20 new visits) less p003's two and p004's new one; 25 people less those two
    assert camden_most["count"] == 32 and camden_most["_n"] == 23


def test_rectified_and_erased_rows_do_not_survive_in_the_copy(db, store, visits) -> None:  # type: ignore[no-untyped-def]
    _opt_out(db, ["p001", "p003"])
    excluded = set(store.subject_nos(["p001", "p003"]).values())
    plan = _plan(db, ["borough"], [("count", None), ("sum", "age")], {})
    before = {c["borough"]: c for c in _through_gateway(db, store, plan)}
    name = store.exclusion("fire_visits", excluded)[1]
    with store.cursor() as cur:
        assert sorted(r[0] for r in cur.execute(f"SELECT age FROM {name}").fetchall()) == [21, 23]
    store.update_rows("fire_visits", "p001", {"age": 99})   # rectified: the copy must not keep 21
    after = {c["borough"]: c for c in _through_gateway(db, store, plan)}
    assert after["Camden"]["sum_age"] == before["Camden"]["sum_age"]  # still left out, whatever their age
    assert store.delete_subject("fire_visits", "p003") == 1         # erased: nothing of p003 may remain
    with store.cursor() as cur:
        copies = cur.execute("SELECT table_name FROM information_schema.tables WHERE table_catalog = ?",
                             [SIDE_DB]).fetchall()
        assert copies == []                                          # dropped with the change, not just ignored
    name = store.exclusion("fire_visits", excluded)[1]
    with store.cursor() as cur:
        assert [r[0] for r in cur.execute(f"SELECT age FROM {name}").fetchall()] == [99]
    final = {c["borough"]: c for c in _through_gateway(db, store, plan)}
    assert final["Camden"] == before["Camden"]
