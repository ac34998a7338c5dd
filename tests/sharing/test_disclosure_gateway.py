"""Disclosure control as an analyst meets it: through the gateway, on the conftest's agreement and table.

fire-visits holds 60 people: 30 in Camden, 20 in Brent, 10 in Hackney (Hackney's are aged 70 to 79).
"""

from __future__ import annotations

from sqlalchemy import select

from smartlondon.sharing.disclosure.models import Release

from .conftest import query_body

URL = "/api/sharing/queries"


def counts_by_borough(where: dict) -> dict:  # type: ignore[type-arg]
    return query_body(query={"dataset": "fire-visits", "measures": [{"op": "count"}], "by": ["borough"],
                             "where": where})


def test_a_differencing_attack_through_the_gateway_is_caught(client, agreement, analyst, make_account):  # type: ignore[no-untyped-def]
    first = client.post(URL, json=counts_by_borough({"age": {"<": 78}}), headers=analyst.headers).json()
    assert first["status"] == "released"
    shown = {row[0]: row[1] for row in first["table"]["rows"]}
    assert shown == {"Brent": 20, "Camden": 30, "Hackney": 10, "Total": 60}  # 8 in Hackney, rounded to 10

    # a colleague moves the bound by two years: the difference is the 2 people aged 78 and 79, both in Hackney
    colleague = make_account("camden-colleague", camden="member")
    second = client.post(URL, json=counts_by_borough({"age": {"<": 80}}), headers=colleague.headers).json()
    assert second["status"] == "released"
    shown = {row[0]: row[1] for row in second["table"]["rows"]}
    assert shown["Hackney"] is None and shown["Total"] is None  # each would reveal 2 people by subtraction
    assert shown["Camden"] == 30
    assert second["disclosure"]["suppressed_differencing"] == 2
    assert len(second["disclosure"]["differencing_hits"]) == 1


def test_dp_budget_is_spent_shown_and_refused_when_exhausted(client, agreement, analyst):  # type: ignore[no-untyped-def]
    body = counts_by_borough({})
    body["disclosure"] = {"dp": {"epsilon": 0.6}}
    released = client.post(URL, json=body, headers=analyst.headers)
    assert released.status_code == 200 and released.json()["status"] == "released"
    assert released.json()["disclosure"]["dp"]["epsilon_remaining"] == 0.4
    budget = client.get("/api/sharing/privacy-budgets/home-fire-safety").json()
    assert (budget["total"], budget["spent"], budget["remaining"]) == (1.0, 0.6, 0.4)
    assert len(budget["releases"]) == 1 and budget["releases"][0]["epsilon"] == 0.6

    refused = client.post(URL, json=body, headers=analyst.headers)
    assert refused.status_code == 403
    assert "privacy budget of agreement home-fire-safety is exhausted" in refused.json()["reasons"][0]
    assert client.get("/api/sharing/privacy-budgets/home-fire-safety").json()["spent"] == 0.6
    assert client.get("/api/sharing/privacy-budgets/nothing-here").status_code == 404


def test_a_table_differencing_would_empty_waits_for_two_reviewers(client, db, agreement, analyst, make_account):  # type: ignore[no-untyped-def]
    def by_band(where: dict) -> dict:  # type: ignore[type-arg]
        return query_body(query={"dataset": "fire-visits", "measures": [{"op": "count"}], "by": ["band"],
                                 "where": where})

    assert client.post(URL, json=by_band({"age": {"<": 78}}), headers=analyst.headers).json()["status"] == "released"
    # ages 78 and 79 are one person in each band: every cell differs by one person
    pending = client.post(URL, json=by_band({"age": {"<": 80}}), headers=analyst.headers)
    assert pending.status_code == 200
    body = pending.json()
    assert body["status"] == "review" and body["table"] is None
    review_id = body["disclosure"]["review_id"]

    first, second = make_account("lfb-reviewer", london_fire_brigade="reviewer"), make_account(
        "camden-reviewer", camden="reviewer")
    for reviewer in (first, second):
        decided = client.post(f"/api/sharing/reviews/{review_id}/approve", headers=reviewer.headers,
                              json={"reason": "Band totals for the whole borough set; the two are in the DPIA."})
        assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "released"
    released = client.get(f"{URL}/{body['id']}", headers=analyst.headers).json()
    assert released["status"] == "released"
    assert {row[0]: row[1] for row in released["table"]["rows"]} == {"least": 30, "most": 30, "Total": 60}
    with db.session() as session:  # once released, the reviewed table is in the ledger like any other release
        ledger = session.scalars(select(Release).order_by(Release.id)).all()
        assert [r.filters for r in ledger] == [{"age": {"<": 78}}, {"age": {"<": 80}}]
