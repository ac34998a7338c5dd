"""The LODA demo: synthetic households from real Census counts, shared, queried, and visible on the pages."""

from __future__ import annotations

import csv

from smartlondon.sharing import demo
from smartlondon.sharing.store import RestrictedStore


def test_synthetic_households_follow_the_real_census_counts_and_deprivation() -> None:
    with demo.DATA.open(newline="") as handle:
        areas = list(csv.DictReader(handle))
    assert len(areas) == 452 and {a["borough"] for a in areas} == {"Hackney", "Newham", "Tower Hamlets"}
    rows = demo.synthetic_households(scale=0.05)
    assert len(rows) == sum(max(1, round(int(a["households"]) * 0.05)) for a in areas)
    assert len({r[0] for r in rows}) == len(rows) and all(r[0].startswith("999") for r in rows)

    def rate(column: int, deciles: set[int]) -> float:
        chosen = [r for r in rows if r[3] in deciles]
        return sum(1 for r in chosen if r[column]) / len(chosen)

    assert rate(6, {1, 2}) < rate(6, {5, 6, 7, 8, 9, 10})  # fewer smoke alarms where deprivation is high
    assert rate(8, {1, 2}) > rate(8, {5, 6, 7, 8, 9, 10})  # more visits there
    assert demo.synthetic_households(scale=0.05) == rows  # deterministic


def test_the_demo_loads_once_and_fills_the_pages(db, settings, client) -> None:  # type: ignore[no-untyped-def]
    with db.session() as session:
        summary = demo.load_demo(session, settings)
    assert summary["created"] and summary["records"] > 6000
    # released tables, one with small cells suppressed, and a differencing attempt caught and sent to review
    assert list(summary["queries"].values()) == ["released", "released", "released", "review"]
    with db.session() as session:
        assert demo.load_demo(session, settings) == {"created": False}
    store = RestrictedStore(settings)
    with store.cursor() as cur:
        assert cur.execute(f"SELECT count(*) FROM {demo.TABLE}").fetchone()[0] == summary["records"]
    mine = client.post("/api/sharing/your-data", json={"reference": summary["subject_request"],
                                                       "code": summary["access_code"]}).json()
    assert mine["uses"] and mine["uses"][0]["agreement"] == demo.AGREEMENT
    trust = client.get(f"/sharing/trusts/{demo.TRUST}.json").json()
    assert {d["decision"] for d in trust["decisions"]} == {"approved", "refused"}
    params = client.get("/sharing/pseudonymisation.json").json()
    assert params["optouts"]["research_planning"] == 1 and params["epochs"][0]["status"] == "current"
    assert "synthetic" in client.get(f"/dataset/{demo.DATASET}").text.lower()
