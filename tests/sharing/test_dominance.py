"""The dominance rules for sums and means: a cell where one person makes up more than 50% of the total, or two
people more than 85%, is suppressed (and protected by secondary suppression); a cell spread over many people is
released. Through the gateway API, on hand-built tables, for one row per person and for many rows per person.
"""

from __future__ import annotations

from typing import Any

import pytest

from smartlondon.core import accounts
from smartlondon.sharing import agreements
from smartlondon.sharing.disclosure.rules import PROFILES, Profile, Table
from smartlondon.sharing.disclosure.types import AggregateResult

URL = "/api/sharing/queries"


def _spend_rows() -> list[tuple[Any, ...]]:
    """One row a person. Camden: one person spends 1000 of 1190 (84%); Hackney: two spend 1200 of 1380 (87%);
    Brent: 20 people spend 10 to 29, nobody more than 7%."""
    rows = [(f"c{i:02d}", "Camden", "most" if i % 2 else "least", 1000.0 if i == 0 else 10.0) for i in range(20)]
    rows += [(f"b{i:02d}", "Brent", "most" if i % 2 else "least", 10.0 + i) for i in range(20)]
    rows += [(f"h{i:02d}", "Hackney", "most" if i % 2 else "least", 600.0 if i < 2 else 10.0) for i in range(20)]
    return rows


def _payment_rows() -> list[tuple[Any, ...]]:
    """Many rows a person: in Camden one person's 50 payments of 20 (1000 of 1190); no single row is large."""
    rows = [("c00", "Camden", 20.0)] * 50 + [(f"c{i:02d}", "Camden", 10.0) for i in range(1, 20)]
    rows += [(f"b{i:02d}", "Brent", 10.0) for i in range(20) for _ in range(2)]
    return rows


def _register(session, slug: str, table: str, fields: list[tuple[str, str]]) -> None:  # type: ignore[no-untyped-def]
    agreements.register_restricted_dataset(
        session, slug=slug, title=slug.replace("-", " ").capitalize(), owner_org="london-fire-brigade",
        description="Hand-built rows for the dominance tests.", table=table, subject_column="person",
        area_field="borough", fields=[{"name": n, "type": t, "identifier": n == "person"} for n, t in fields])


@pytest.fixture
def spending(db, store, officer):  # type: ignore[no-untyped-def]
    """Two restricted datasets (spend: one row a person; payments: many) and an approved agreement over both."""
    store.load_rows("household_spend", {"person": "VARCHAR", "borough": "VARCHAR", "band": "VARCHAR",
                                        "spend": "DOUBLE"}, _spend_rows(), subject_column="person")
    store.load_rows("payments", {"person": "VARCHAR", "borough": "VARCHAR", "amount": "DOUBLE"}, _payment_rows(),
                    subject_column="person")
    with db.session() as session:
        _register(session, "household-spend", "household_spend",
                  [("person", "VARCHAR"), ("borough", "VARCHAR"), ("band", "VARCHAR"), ("spend", "DOUBLE")])
        _register(session, "payments", "payments", [("person", "VARCHAR"), ("borough", "VARCHAR"),
                                                    ("amount", "DOUBLE")])
        actor = accounts.actor_for(accounts.get_user(session, officer.username), "token")
        made = agreements.create_agreement(session, {
            "slug": "spending", "title": "Household spending", "controllers": ["london-fire-brigade"],
            "recipients": ["camden"], "purposes": ["dpv:PublicBenefit"], "purpose_statement": "Tests.",
            "lawful_basis": "6(1)(e)", "public_benefit": "Tests.", "start_date": "2024-01-01",
            "end_date": "2099-12-31", "datasets": [{"dataset": "household-spend"}, {"dataset": "payments"}]},
            by=actor)
        agreements.approve(session, made, actor)
    return "spending"


def _ask(client, analyst, dataset: str, measures: list[dict[str, Any]], by: list[str],  # type: ignore[no-untyped-def]
         profile: str = "nhs", where: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"agreement": "spending", "purpose": "dpv:PublicBenefit", "disclosure": {"profile": profile},
            "query": {"dataset": dataset, "measures": measures, "by": by, "where": where or {}}}
    response = client.post(URL, json=body, headers=analyst.headers)
    assert response.status_code == 200, response.text
    return response.json()


def _by_first_column(out: dict[str, Any]) -> dict[Any, list[Any]]:
    return {row[0]: row[1:] for row in out["table"]["rows"]}


@pytest.mark.parametrize("profile", ["nhs", "ons"])
def test_a_dominated_sum_is_suppressed_and_a_spread_one_is_not(client, spending, analyst, profile) -> None:  # type: ignore[no-untyped-def]
    out = _ask(client, analyst, "household-spend", [{"op": "count"}, {"op": "sum", "field": "spend"}], ["borough"],
               profile)
    rows = _by_first_column(out)
    assert rows["Brent"] == [20, 390.0]                      # nobody dominates: released
    assert rows["Camden"] == [None, None]                    # one person is 84% of the total (1, 50)
    assert rows["Hackney"] == [None, None]                   # two people are 87% of it (2, 85)
    assert rows["Total"] == [60, 2960.0]                     # the biggest two are 54% of the total: released
    assert out["disclosure"]["suppressed_dominance"] == 2
    assert out["disclosure"]["dominance"] == [[1, 50], [2, 85]]


def test_a_dominated_mean_is_suppressed_with_its_count(client, spending, analyst) -> None:  # type: ignore[no-untyped-def]
    out = _ask(client, analyst, "household-spend", [{"op": "count"}, {"op": "mean", "field": "spend"}], ["borough"])
    rows = _by_first_column(out)
    assert rows["Camden"] == [None, None] and rows["Brent"] == [20, 19.5]


def test_secondary_suppression_protects_a_dominated_cell(client, spending, analyst) -> None:  # type: ignore[no-untyped-def]
    # by band alone: Camden's big spender is in "least" (1000 + 9 * 10 of 1090 + Brent and Hackney's)
    out = _ask(client, analyst, "household-spend", [{"op": "sum", "field": "spend"}], ["borough", "band"])
    shown = {(r[0], r[1]): r[2] for r in out["table"]["rows"]}
    assert shown[("Camden", "least")] is None                # 1000 of 1090: dominated
    assert shown[("Brent", "least")] is not None
    # no row or column of the table is left with exactly one hidden cell, so none can be recovered
    for label in ("Camden", "Brent", "Hackney", "Total"):
        line = [v for (b, _), v in shown.items() if b == label]
        assert sum(v is None for v in line) != 1, label
    for band in ("least", "most", "Total"):
        line = [v for (_, k), v in shown.items() if k == band]
        assert sum(v is None for v in line) != 1, band


def test_contributions_are_per_person_when_a_person_has_many_rows(client, spending, analyst) -> None:  # type: ignore[no-untyped-def]
    out = _ask(client, analyst, "payments", [{"op": "count"}, {"op": "sum", "field": "amount"}], ["borough"])
    rows = _by_first_column(out)
    assert rows["Camden"] == [None, None]                     # one person's 50 payments: 1000 of 1190
    assert rows["Brent"] == [40, 400.0]
    assert out["disclosure"]["suppressed_dominance"] >= 1


def test_counts_alone_are_not_checked_for_dominance(client, spending, analyst) -> None:  # type: ignore[no-untyped-def]
    out = _ask(client, analyst, "household-spend", [{"op": "count"}], ["borough"])
    assert _by_first_column(out)["Camden"] == [20]
    assert "suppressed_dominance" not in out["disclosure"]


@pytest.mark.parametrize(("total", "first", "second", "dominated"), [
    (100, 51, 1, True), (100, 50, 1, False),               # (1, 50)
    (100, 45, 41, True), (100, 45, 40, False),             # (2, 85)
    (0, 0, 0, False),
])
def test_the_nk_rules(total, first, second, dominated) -> None:  # type: ignore[no-untyped-def]
    assert PROFILES["nhs"].dominated(total, first, second) is dominated
    if dominated:  # the cheap bound (largest contribution only) never clears a dominated cell
        assert not PROFILES["nhs"].surely_safe(total, first)


def test_the_p_percent_rule_in_a_profile_of_its_own() -> None:
    strict = Profile("p10", "p% only", threshold=1, rounding_base=1, description="", p_percent=10)
    assert strict.dominated(100, 50, 46)          # the rest (4) is less than 10% of 50: the second can estimate
    assert not strict.dominated(100, 50, 30)      # the rest (20) is more
    table = Table.from_result(AggregateResult(["d"], ["area"], ["sum_x"], rows=[
        {"area": "a", "sum_x": 100.0, "_n": 30}, {"area": "b", "sum_x": 100.0, "_n": 30},
        {"area": "c", "sum_x": 100.0, "_n": 30}]))
    assert table.suppress_dominance(strict, {("a",): {"sum_x": [100.0, 50.0, 46.0]},
                                             ("b",): {"sum_x": [100.0, 50.0, 30.0]}}) == 1
    assert table.suppress_secondary() == 1        # a 1-way table: one more cell hides the dominated one


def test_spread_cells_are_cleared_from_bounds_without_a_second_pass(client, agreement, analyst,  # type: ignore[no-untyped-def]
                                                                    monkeypatch) -> None:
    from smartlondon.sharing import gateway

    from .conftest import query_body

    def no_second_pass(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the exact dominance pass ran for cells the bounds clear")

    # fire-visits: ages 20 to 79, one row a person; Camden's bands hold 15 people each (totals about 500)
    monkeypatch.setattr(gateway, "_dominance", no_second_pass)
    body = query_body(query={"dataset": "fire-visits", "measures": [{"op": "count"}, {"op": "mean", "field": "age"}],
                             "by": ["band"], "where": {"borough": ["Camden"]}})
    response = client.post(URL, json=body, headers=analyst.headers)
    assert response.status_code == 200, response.text
    out = response.json()
    assert _by_first_column(out)["Total"] == [30, 34.5]
    assert out["disclosure"]["suppressed_dominance"] == 0


def test_bounds_clear_a_table_only_when_every_cell_could_not_be_dominated() -> None:
    from smartlondon.sharing import gateway

    plan = gateway.Plan("aggregate", [], [], dimensions=["borough", "band"], measures=[("count", None), ("mean", "age")])
    names, width = ["count", "mean_age"], 2 + 2 + 1
    ages = {"age": (20, 79, False)}  # least, largest, has NULLs
    rows = [("Brent", "least", 15, 40.0, 15), ("Brent", "most", 15, 50.0, 15)]  # totals 600 and 750
    assert gateway._surely_safe(PROFILES["nhs"], plan, rows, width, ages, names)
    lone = [*rows, ("Camden", "most", 1, 79.0, 1)]  # one person's 79 could be all of a cell's total
    assert not gateway._surely_safe(PROFILES["nhs"], plan, lone, width, ages, names)
    assert not gateway._surely_safe(PROFILES["nhs"], plan, rows, width, {"age": (20, 79, True)}, names)
    assert not gateway._surely_safe(PROFILES["nhs"], plan, rows, width, {"age": (-5, 79, False)}, names)
    sums = [("Brent", "least", 15, 600, 15), ("Brent", "most", 15, 0, 0)]  # a zero total is never sensitive
    assert gateway._surely_safe(PROFILES["nhs"], plan, sums, width, ages, ["count", "sum_age"])
