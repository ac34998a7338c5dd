"""The open data charter scorecard: each check's pass and fail with its reason, recomputed with every
change in the change's own transaction, searchable as facets, and ranked in league tables."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, insert, select, text, update

from smartlondon.catalogue import service
from smartlondon.catalogue.charter import inputs, scores
from smartlondon.catalogue.charter.models import DatasetCheck, DatasetDcatCheck, DatasetScore
from smartlondon.catalogue.models import Dataset, DatasetFacet, DatasetTheme
from smartlondon.cli import main
from smartlondon.core import events
from smartlondon.core.accounts import COMMAND_LINE
from smartlondon.core.db import utcnow

WELL_DESCRIBED = {
    "description": "Where the London Air Quality Network measures nitrogen dioxide and particulates, with the "
                   "type of each site and when it opened.",
    "keywords": ["air quality"], "themes": ["environment"], "contact_email": "air@camden.example.org",
    "temporal_start": "2023-01-01", "boroughs": ["E09000007"], "frequency": "monthly",
}


def publish(db, title: str, publisher: str = "camden", links: list[tuple[str, str]] = (), **fields: Any) -> int:
    """Create a dataset with link resources (title, url) through the catalogue service; returns its id."""
    with db.session() as session:
        ds = service.create_dataset(session, COMMAND_LINE, {"title": title, "publisher": publisher, **fields})
        for res_title, url in links:
            service.add_resource(session, COMMAND_LINE, ds, {"title": res_title, "url": url,
                                                             "description": f"The {res_title.lower()}."})
        return ds.id


def card(db, dataset_id: int) -> dict[str, tuple[str, str]]:
    """The stored checks of a dataset: {name: (status, reason)}."""
    with db.session() as session:
        rows = session.execute(select(DatasetCheck.name, DatasetCheck.status, DatasetCheck.reason)
                               .where(DatasetCheck.dataset_id == dataset_id)).all()
    return {name: (status, reason) for name, status, reason in rows}


def stored(db, dataset_id: int) -> DatasetScore:
    with db.session() as session:
        row = session.get(DatasetScore, dataset_id)
        assert row is not None
        return row


def facets_of(db, dataset_id: int) -> dict[str, str]:
    with db.session() as session:
        return dict(session.execute(select(DatasetFacet.facet, DatasetFacet.value).where(
            DatasetFacet.dataset_id == dataset_id, DatasetFacet.facet.in_(["openness", "charter"]))).all())


# --- openness stars and the open licence ------------------------------------------------------------

@pytest.mark.parametrize(("url", "stars", "words"), [
    ("https://example.org/annual-report.pdf", 1, "not structured data a computer can read"),
    ("https://example.org/counts.xlsx", 2, "structured data, but in a proprietary format"),
    ("https://example.org/counts.csv", 3, "structured data in an open, non-proprietary format"),
    ("https://example.org/boundaries.geojson", 3, "structured data in an open, non-proprietary format"),
])
def test_openness_stars_come_from_the_best_format(db, url, stars, words) -> None:
    dataset_id = publish(db, "Counts", links=[("Counts", url)])
    assert stored(db, dataset_id).stars == stars
    status, reason = card(db, dataset_id)["openness"]
    assert status == ("pass" if stars >= 3 else "fail")
    assert reason.startswith(f"{stars} star{'s' if stars > 1 else ''} from ‘Counts’") and words in reason
    assert facets_of(db, dataset_id)["openness"] == str(stars)


def test_the_best_resource_earns_the_stars(db) -> None:
    dataset_id = publish(db, "Station entries", links=[("Report", "https://example.org/r.pdf"),
                                                       ("Entries", "https://example.org/entries.csv")])
    assert stored(db, dataset_id).stars == 3
    assert "from ‘Entries’ (CSV)" in card(db, dataset_id)["openness"][1]


def test_rdf_earns_four_stars_not_five_until_it_is_seen_to_link_out(db) -> None:
    dataset_id = publish(db, "Places", links=[("Places", "https://example.org/places.ttl")])
    assert stored(db, dataset_id).stars == 4
    assert "RDF, which names things with URIs" in card(db, dataset_id)["openness"][1]


def test_a_closed_licence_earns_no_stars_and_is_not_open(db) -> None:
    dataset_id = publish(db, "Contracts", licence="other-closed", links=[("Contracts", "https://example.org/c.csv")])
    checks = card(db, dataset_id)
    assert stored(db, dataset_id).stars == 0
    assert checks["licence"][0] == "fail" and "is not an open licence" in checks["licence"][1]
    assert checks["openness"] == ("fail", "0 stars: it is not under an open licence, and the first star is for an "
                                          "open licence.")
    open_one = publish(db, "Open contracts", links=[("Contracts", "https://example.org/c.csv")])
    assert card(db, open_one)["licence"] == (
        "pass", "Published under the Open Government Licence v3.0, an open licence: anyone may use, share and "
                "adapt the data.")


def test_a_dataset_without_resources_has_no_stars_and_no_links_to_check(db) -> None:
    checks = card(db, publish(db, "Empty"))
    assert checks["openness"] == ("fail", "0 stars: there is no data to download yet. Publish it as CSV, JSON, "
                                          "GeoJSON or another open format to earn 3 stars.")
    assert checks["links"] == ("not-applicable", "There are no files or links to check.")


# --- timeliness ---------------------------------------------------------------------------------------

def backdate(db, dataset_id: int, days: int) -> None:
    """Make a dataset look last updated ``days`` ago (as a harvest of an old record would) and rescore it."""
    with db.session() as session:
        session.execute(update(Dataset).where(Dataset.id == dataset_id)
                        .values(modified=utcnow() - timedelta(days=days)))
        scores.rescore_ids(session, [dataset_id])


def test_an_annual_dataset_last_modified_two_years_ago_is_late(db) -> None:
    late = publish(db, "Population estimates", frequency="annual")
    on_time = publish(db, "Population projections", frequency="annual")
    backdate(db, late, 730)
    backdate(db, on_time, 300)
    status, reason = card(db, late)["timeliness"]
    assert status == "fail"
    assert "it is updated annually: the next update was due by" in reason and "months late" in reason
    status, reason = card(db, on_time)["timeliness"]
    assert status == "pass" and "It is updated annually, so the next update is due by" in reason


def test_monthly_data_is_late_after_its_grace_period(db) -> None:
    dataset_id = publish(db, "Crime counts", frequency="monthly")
    backdate(db, dataset_id, 40)  # 31 days plus 14 days' grace: not late yet
    assert card(db, dataset_id)["timeliness"][0] == "pass"
    backdate(db, dataset_id, 50)
    assert card(db, dataset_id)["timeliness"][0] == "fail"


def test_historical_and_irregular_data_cannot_be_late(db) -> None:
    historical = publish(db, "1851 census", frequency="never")
    irregular = publish(db, "Ad hoc survey", frequency="irregular")
    backdate(db, historical, 3000)
    backdate(db, irregular, 3000)
    status, reason = card(db, historical)["timeliness"]
    assert status == "not-applicable" and "marked as not updated (historical), so it cannot be late" in reason
    status, reason = card(db, irregular)["timeliness"]
    assert status == "not-applicable" and "updated irregularly, with no schedule to keep" in reason


# --- metadata completeness ------------------------------------------------------------------------------

def test_metadata_completeness_names_what_is_missing(db) -> None:
    full = publish(db, "Air quality sites", links=[("Sites", "https://example.org/sites.csv")], **WELL_DESCRIBED)
    assert card(db, full)["metadata"] == ("pass", "10 of 10 recommended fields are filled in.")
    sparse = publish(db, "Sites", description="Air quality sites.", links=[("Sites", "https://example.org/s.csv")])
    status, reason = card(db, sparse)["metadata"]
    assert status == "fail"
    assert reason.startswith("3 of 10 recommended fields are filled in; missing: a description of at least 100 "
                             "characters, keywords, themes, a contact email, the time period covered, the area")


# --- links ---------------------------------------------------------------------------------------------

def test_uploaded_files_work_and_unvisited_links_are_not_checked_yet(db, client, editor) -> None:
    response = client.post("/api/datasets", headers=editor.headers,
                           json={"title": "Bus stops", "slug": "bus-stops", "publisher": "camden"})
    assert response.status_code == 201
    upload = client.post("/api/datasets/bus-stops/resources", headers=editor.headers, data={"title": "Stops"},
                         files={"upload": ("stops.csv", b"id,name\n1,Euston\n", "text/csv")})
    assert upload.status_code == 201
    with db.session() as session:
        dataset_id = session.scalar(select(Dataset.id).where(Dataset.slug == "bus-stops"))
    assert card(db, dataset_id)["links"] == ("pass", "Its resource works: 1 file stored here.")
    link = client.post("/api/datasets/bus-stops/resources", headers=editor.headers,
                       json={"title": "Live arrivals", "url": "https://example.org/arrivals.json"})
    assert link.status_code == 201
    assert card(db, dataset_id)["links"] == (
        "not-checked", "1 link has not been checked yet. The link checker visits every link regularly.")


# --- table validation and GSS codes (from the tabular store) ---------------------------------------------

@pytest.fixture
def tabular(monkeypatch):
    """Stand in for the tabular store's two read functions, with results shaped as its contract says."""
    found: dict[str, Any] = {"summary": {}, "gss": {}}

    def validation_summary(session, resource_ids):  # type: ignore[no-untyped-def]
        return {rid: found["summary"][rid] for rid in resource_ids if rid in found["summary"]}

    def gss_columns(session, resource_id):  # type: ignore[no-untyped-def]
        return found["gss"].get(resource_id, [])

    real = inputs._provider
    providers = {("tabular", "validation_summary"): validation_summary, ("tabular", "gss_columns"): gss_columns}
    monkeypatch.setattr(inputs, "_provider", lambda module, name: providers.get((module, name)) or real(module, name))
    return found


def resource_ids(db, dataset_id: int) -> list[int]:
    with db.session() as session:
        return [r.id for r in session.get(Dataset, dataset_id).resources]


def test_without_the_tabular_store_tables_are_not_checked(db, monkeypatch) -> None:
    real = inputs._provider
    monkeypatch.setattr(inputs, "_provider", lambda module, name: None if module == "tabular" else real(module, name))
    dataset_id = publish(db, "Deprivation by LSOA", geography="lsoa", links=[("Scores", "https://example.org/imd.csv")])
    checks = card(db, dataset_id)
    assert checks["schema"] == ("not-checked", "Table validation is not available on this installation yet.")
    assert checks["gss"] == ("not-checked", "Looking for GSS code columns is not available on this installation yet.")


def test_table_validation_passes_and_fails_with_its_reason(db, tabular) -> None:
    dataset_id = publish(db, "Fuel poverty", links=[("Households", "https://example.org/fuel.csv")])
    (rid,) = resource_ids(db, dataset_id)
    tabular["summary"][rid] = {"status": "loaded", "valid": False, "errors": 3, "rows": 4835}
    with db.session() as session:
        scores.rescore_ids(session, [dataset_id])
    assert card(db, dataset_id)["schema"] == (
        "fail", "‘Households’ (CSV) has 3 problems: see its validation report.")
    tabular["summary"][rid] = {"status": "loaded", "valid": True, "errors": 0, "rows": 4835}
    with db.session() as session:
        scores.rescore_ids(session, [dataset_id])
    assert card(db, dataset_id)["schema"] == ("pass", "Its table matches its schema (4,835 rows).")
    pdf_only = publish(db, "Fuel poverty report", links=[("Report", "https://example.org/fuel.pdf")])
    assert card(db, pdf_only)["schema"][0] == "not-applicable"


def test_data_by_area_needs_gss_codes_in_its_tables(db, tabular) -> None:
    dataset_id = publish(db, "Deprivation by LSOA", geography="lsoa", links=[("Scores", "https://example.org/imd.csv")])
    (rid,) = resource_ids(db, dataset_id)
    tabular["summary"][rid] = {"status": "loaded", "valid": True, "errors": 0, "rows": 4835}
    with db.session() as session:
        scores.rescore_ids(session, [dataset_id])
    status, reason = card(db, dataset_id)["gss"]
    assert status == "fail" and "‘Scores’ (CSV) has no column of GSS codes (like E09000007 for Camden)" in reason
    tabular["gss"][rid] = ["lsoa11cd"]
    with db.session() as session:
        scores.rescore_ids(session, [dataset_id])
    assert card(db, dataset_id)["gss"] == ("pass", "GSS codes: ‘Scores’ (CSV) has them in ‘lsoa11cd’.")
    points = publish(db, "Air quality sites", geography="point", links=[("Sites", "https://example.org/s.csv")])
    assert card(db, points)["gss"] == ("not-applicable", "Its smallest geography is ‘Point locations’, not areas "
                                                         "with GSS codes.")


def test_a_failing_provider_never_undoes_the_change(db, monkeypatch) -> None:
    def broken(session, resource_ids):  # type: ignore[no-untyped-def]
        session.execute(text("SELECT * FROM no_such_table"))

    real = inputs._provider
    monkeypatch.setattr(inputs, "_provider",
                        lambda module, name: broken if name == "validation_summary" else real(module, name))
    dataset_id = publish(db, "Counts", links=[("Counts", "https://example.org/counts.csv")])
    assert card(db, dataset_id)["schema"] == ("not-checked", "Table validation is not available on this "
                                                             "installation yet.")
    with db.session() as session:
        assert session.get(Dataset, dataset_id).resources[0].title == "Counts"


# --- DCAT-AP validity (stored, never run on a page view) ---------------------------------------------------

def test_dcat_validation_is_stored_and_goes_stale_when_the_dataset_changes(db) -> None:
    dataset_id = publish(db, "Tube stations", publisher="transport-for-london",
                         description="Every station of the Underground.")
    assert card(db, dataset_id)["dcat"][0] == "not-checked"
    assert scores.stale_dcat(db) == [dataset_id]
    assert scores.refresh_dcat(db, [dataset_id]) == 1
    status, reason = card(db, dataset_id)["dcat"]
    assert status == "pass" and reason.startswith("Its DCAT-AP 3 record passes the official SHACL shapes")
    assert scores.stale_dcat(db) == []
    with db.session() as session:
        service.update_dataset(session, COMMAND_LINE, session.get(Dataset, dataset_id), {"title": "Tube stations 2024"})
    status, reason = card(db, dataset_id)["dcat"]
    assert status == "not-checked" and "changed after its DCAT-AP record was last validated" in reason
    assert scores.stale_dcat(db) == [dataset_id]


def test_a_record_that_breaks_dcat_ap_fails_with_the_problem(db) -> None:
    dataset_id = publish(db, "Odd themes", description="Written behind the service's back.")
    with db.session() as session:  # a theme code the platform does not know, as a bad import could leave
        session.execute(insert(DatasetTheme), [{"dataset_id": dataset_id, "theme": "astrology"}])
    scores.refresh_dcat(db, [dataset_id])
    status, reason = card(db, dataset_id)["dcat"]
    assert status == "fail" and "Its DCAT-AP record breaks 1 rule of the official shapes" in reason
    with db.session() as session:
        assert session.get(DatasetDcatCheck, dataset_id).valid is False


# --- recomputed in the change's own transaction -------------------------------------------------------------

def test_a_change_recomputes_the_score_in_the_same_transaction(db) -> None:
    """The score is rewritten once, before the change commits, and rolls back with it."""
    dataset_id = publish(db, "Station entries", links=[("Entries", "https://example.org/entries.csv")])
    assert (stored(db, dataset_id).stars, facets_of(db, dataset_id)["openness"]) == (3, "3")
    with pytest.raises(RuntimeError):
        with db.session() as session:
            ds = session.get(Dataset, dataset_id)
            service.update_dataset(session, COMMAND_LINE, ds, {"licence": "other-closed"})
            service.update_dataset(session, COMMAND_LINE, ds, {"title": "Station entries and exits"})
            events.run_deferred(session)  # what a commit does first, and what readers in the transaction do
            inside = session.get(DatasetScore, dataset_id)
            assert inside.stars == 0 and inside.checks["licence"].status == "fail"
            assert session.scalar(select(DatasetFacet.value).where(
                DatasetFacet.dataset_id == dataset_id, DatasetFacet.facet == "openness")) == "0"
            raise RuntimeError("abandon the change")
    assert stored(db, dataset_id).stars == 3 and facets_of(db, dataset_id)["openness"] == "3"
    assert card(db, dataset_id)["licence"][0] == "pass"
    with db.session() as session:
        service.update_dataset(session, COMMAND_LINE, session.get(Dataset, dataset_id), {"licence": "other-closed"})
    assert stored(db, dataset_id).stars == 0 and facets_of(db, dataset_id) == {"openness": "0", "charter": "poor"}


def test_deleting_a_dataset_removes_its_scorecard(db) -> None:
    dataset_id = publish(db, "Temporary", links=[("Data", "https://example.org/d.csv")])
    with db.session() as session:
        service.delete_dataset(session, COMMAND_LINE, session.get(Dataset, dataset_id))
    with db.session() as session:
        assert session.get(DatasetScore, dataset_id) is None
        assert session.scalar(select(func.count()).select_from(DatasetCheck)
                              .where(DatasetCheck.dataset_id == dataset_id)) == 0


# --- search facets --------------------------------------------------------------------------------------

def test_openness_and_rating_are_search_facets_with_counts(db, client) -> None:
    publish(db, "Bus counts", links=[("Counts", "https://example.org/bus.csv")], **WELL_DESCRIBED)
    publish(db, "Bus report", links=[("Report", "https://example.org/bus.pdf")])
    publish(db, "Bus spreadsheet", links=[("Sheet", "https://example.org/bus.xlsx")])
    body = client.get("/dataset.json", params={"q": "bus"}).json()
    assert body["facets"]["openness"] == [{"value": "1", "label": "1 star", "count": 1},
                                          {"value": "2", "label": "2 stars", "count": 1},
                                          {"value": "3", "label": "3 stars", "count": 1}]
    assert sum(item["count"] for item in body["facets"]["charter"]) == 3
    three = client.get("/dataset.json", params={"q": "bus", "openness": "3"}).json()
    assert [d["title"] for d in three["results"]] == ["Bus counts"]
    browse = client.get("/dataset.json", params={"openness": ["1", "2"]}).json()
    assert sorted(d["title"] for d in browse["results"]) == ["Bus report", "Bus spreadsheet"]
    rating = stored_rating = client.get("/api/datasets", params={"charter": "excellent"}).json()
    assert [d["title"] for d in rating["results"]] == ["Bus counts"] and stored_rating["count"] == 1
    page = client.get("/dataset", params={"q": "bus"}).text
    assert "Openness (5-star scheme)" in page and 'name="openness" type="checkbox" value="3"' in page
    assert page.index('value="3"', page.index('name="openness"')) < page.index('value="1"', page.index('name="openness"'))


def test_the_facet_follows_a_change_that_moves_the_stars(db, client) -> None:
    dataset_id = publish(db, "Tram stops", links=[("Stops", "https://example.org/stops.pdf")])
    assert client.get("/dataset.json", params={"openness": "1"}).json()["count"] == 1
    with db.session() as session:
        service.add_resource(session, COMMAND_LINE, session.get(Dataset, dataset_id),
                             {"title": "Stops", "url": "https://example.org/stops.csv"})
    assert client.get("/dataset.json", params={"openness": "1"}).json()["count"] == 0
    assert client.get("/dataset.json", params={"openness": "3"}).json()["count"] == 1
    assert dict((f["value"], f["count"]) for f in client.get("/dataset.json").json()["facets"]["openness"]) == {"3": 1}


def test_rebuilding_the_search_index_keeps_the_charter_facets(db, client) -> None:
    dataset_id = publish(db, "Cycle hire", links=[("Docks", "https://example.org/docks.geojson")])
    from smartlondon.catalogue import index

    with db.session() as session:
        index.rebuild(session)
    assert facets_of(db, dataset_id)["openness"] == "3"
    assert client.get("/dataset.json", params={"openness": "3"}).json()["count"] == 1


# --- pages ----------------------------------------------------------------------------------------------

def test_the_dataset_page_shows_badges_and_reasons(db, client) -> None:
    publish(db, "Contracts register", licence="other-closed", links=[("Register", "https://example.org/r.pdf")])
    html = client.get("/dataset/contracts-register").text
    assert 'id="charter-heading">Open data charter scorecard</h2>' in html
    assert "0 of 5 stars" in html and "govuk-tag--red" in html
    assert "‘Other (not open): see the dataset&#39;s description’ is not an open licence" in html
    assert '<details class="govuk-details" open>' in html  # failures are shown, not hidden
    twin = client.get("/dataset/contracts-register.json").json()
    assert twin["charter"]["stars"] == 0
    assert {c["name"]: c["status"] for c in twin["charter"]["checks"]}["licence"] == "fail"
    card_page = client.get("/dataset/contracts-register/charter")
    assert card_page.status_code == 200 and "<h1 class=\"govuk-heading-l\">Open data charter scorecard</h1>" in card_page.text
    card_json = client.get("/dataset/contracts-register/charter.json").json()
    assert card_json["dataset"] == "contracts-register" and len(card_json["checks"]) == 8
    assert client.get("/dataset/no-such-thing/charter").status_code == 404


def test_private_datasets_keep_their_scorecard_private(db, client) -> None:
    publish(db, "Internal list", private=True, links=[("List", "https://example.org/l.csv")])
    assert client.get("/dataset/internal-list/charter.json").status_code == 404
    assert client.get("/charter/publisher/camden.json").json()["summary"]["datasets"] == 0


# --- league tables ---------------------------------------------------------------------------------------

@pytest.fixture
def league(db) -> dict[str, int]:
    """Camden publishes well; Hackney publishes a closed PDF; TfL a mix, covering Camden and Hackney."""
    return {
        "camden-good": publish(db, "Camden trees", links=[("Trees", "https://example.org/trees.csv")],
                               **WELL_DESCRIBED),
        "hackney-bad": publish(db, "Hackney contracts", publisher="hackney", licence="other-closed",
                               boroughs=["E09000012"], links=[("Contracts", "https://example.org/c.pdf")]),
        "tfl-csv": publish(db, "Station entries", publisher="transport-for-london", boroughs=["E09000007"],
                           links=[("Entries", "https://example.org/entries.csv")], **{
                               k: v for k, v in WELL_DESCRIBED.items() if k != "boroughs"}),
        "tfl-pdf": publish(db, "Station report", publisher="transport-for-london",
                           boroughs=["E09000007", "E09000012"], links=[("Report", "https://example.org/r.pdf")]),
    }


def test_the_publisher_league_table_orders_and_explains(client, league) -> None:
    body = client.get("/charter.json").json()
    names = [row["name"] for row in body["rows"]]
    assert names == ["Camden", "Transport for London", "Hackney"]
    assert [row["rank"] for row in body["rows"]] == [1, 2, 3]
    scores_in_order = [row["score"] for row in body["rows"]]
    assert scores_in_order == sorted(scores_in_order, reverse=True)
    hackney = body["rows"][-1]
    assert hackney["failing"]["licence"] == 1 and hackney["failing"]["openness"] == 1 and hackney["datasets"] == 1
    tfl = body["rows"][1]
    assert tfl["failing"]["openness"] == 1 and tfl["datasets"] == 2 and tfl["average_stars"] == 2.0
    assert body["breakdown"]["licence"] == {"pass": 3, "fail": 1, "not-applicable": 0, "not-checked": 0}
    by_name = client.get("/charter.json", params={"sort": "name", "order": "asc"}).json()
    assert [row["name"] for row in by_name["rows"]] == ["Camden", "Hackney", "Transport for London"]
    worst_first = client.get("/charter.json", params={"sort": "score", "order": "asc"}).json()
    assert [row["name"] for row in worst_first["rows"]] == ["Hackney", "Transport for London", "Camden"]
    html = client.get("/charter").text
    assert re.search(r'<th scope="col" class="govuk-table__header govuk-table__header--numeric" '
                     r'aria-sort="descending"><a class="govuk-link" href="/charter\?sort=score&amp;order=asc" '
                     r'aria-label="Score \(sorted descending, select to reverse\)">Score</a>', html)
    assert "Open licence: 1" in html and 'href="/charter/publisher/hackney"' in html


def test_the_borough_league_table_covers_every_borough(client, league) -> None:
    body = client.get("/charter/borough.json").json()
    assert len(body["rows"]) == 33
    camden = next(r for r in body["rows"] if r["key"] == "E09000007")
    hackney = next(r for r in body["rows"] if r["key"] == "E09000012")
    assert camden["datasets"] == 3 and hackney["datasets"] == 2
    assert camden["rank"] == 1 and hackney["rank"] == 2
    assert next(r for r in body["rows"] if r["key"] == "E09000001")["score"] is None  # City of London: none yet
    page = client.get("/charter/borough/e09000012")
    assert page.status_code == 200 and "<h1 class=\"govuk-heading-l\">Hackney</h1>" in page.text
    detail = client.get("/charter/borough/E09000012.json").json()
    assert sorted(d["title"] for d in detail["datasets"]) == ["Hackney contracts", "Station report"]
    assert client.get("/charter/borough/E99999999").status_code == 404


def test_a_publishers_page_lists_its_datasets_and_what_they_fail(client, league) -> None:
    body = client.get("/charter/publisher/transport-for-london.json").json()
    assert [d["title"] for d in body["datasets"]] == ["Station entries", "Station report"]
    assert body["datasets"][1]["failing"][:1] == ["openness"]
    assert body["breakdown"]["openness"]["fail"] == 1
    failing = client.get("/charter/publisher/transport-for-london.json", params={"failing": "openness"}).json()
    assert [d["title"] for d in failing["datasets"]] == ["Station report"] and failing["total"] == 1
    by_title = client.get("/charter/publisher/transport-for-london.json", params={"sort": "title", "order": "desc"})
    assert [d["title"] for d in by_title.json()["datasets"]] == ["Station report", "Station entries"]
    html = client.get("/charter/publisher/transport-for-london").text
    assert 'href="/charter/publisher/transport-for-london?failing=openness"' in html
    assert client.get("/charter/publisher/atlantis").status_code == 404


# --- the command that recomputes everything ----------------------------------------------------------------

def test_catalogue_score_recomputes_every_dataset(db, settings, monkeypatch, league) -> None:
    with db.session() as session:
        session.execute(delete(DatasetScore))
        session.execute(update(Dataset).where(Dataset.id == league["camden-good"])
                        .values(modified=utcnow() - timedelta(days=400)))  # monthly data, now late
    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", db.url)
    monkeypatch.setenv("SMARTLONDON_DATA_DIR", str(settings.data_dir))
    result = CliRunner().invoke(main, ["catalogue", "score", "--skip-dcat"])
    assert result.exit_code == 0, result.output
    assert "Scored 4 datasets." in result.output
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(DatasetScore)) == 4
    assert card(db, league["camden-good"])["timeliness"][0] == "fail"
    assert stored(db, league["tfl-csv"]).stars == 3


def test_league_tables_follow_changes_made_in_this_process_at_once(db, client, league) -> None:
    assert [row["name"] for row in client.get("/charter.json").json()["rows"]][-1] == "Hackney"
    with db.session() as session:  # Hackney fixes its licence and publishes its contracts as CSV
        ds = session.get(Dataset, league["hackney-bad"])
        service.update_dataset(session, COMMAND_LINE, ds, {"licence": "OGL-UK-3.0", **WELL_DESCRIBED,
                                                           "boroughs": ["E09000012"]})
        service.add_resource(session, COMMAND_LINE, ds, {"title": "Contracts", "url": "https://example.org/c.csv",
                                                         "description": "Every contract."})
    rows = client.get("/charter.json").json()["rows"]
    hackney = next(row for row in rows if row["name"] == "Hackney")
    assert hackney["failing"]["licence"] == 0 and hackney["rank"] == 1
