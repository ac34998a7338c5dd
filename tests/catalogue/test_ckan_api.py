"""The CKAN Action API, read side: what a CKAN client sees of the catalogue, and CKAN's errors.

Package dicts are checked against a real CKAN response (Birmingham City Council's portal, in
``shared/data/catalogue-fixtures``): every key a CKAN client finds there, it finds here.
"""

from __future__ import annotations

import json
from pathlib import Path
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, func, select, update

from smartlondon.catalogue import service
from smartlondon.catalogue.ckan import package_search as package_search_module
from smartlondon.catalogue.models import Dataset
from smartlondon.core.accounts import COMMAND_LINE
from smartlondon.core.models import AuditEvent

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
BIRMINGHAM = json.loads((SHARED_DATA / "catalogue-fixtures" / "birmingham-ckan-package_search.json").read_text())

AIR = {
    "slug": "camden-no2-diffusion-tubes", "title": "Nitrogen dioxide diffusion tubes, Camden",
    "description": "Monthly **NO2** readings from diffusion tubes across Camden.", "publisher": "camden",
    "keywords": ["air quality", "no2"], "themes": ["environment", "health"], "frequency": "monthly",
    "temporal_start": "2023-01-01", "temporal_end": "2023-12-31", "boroughs": ["E09000007"],
    "bbox": [-0.2135, 51.5128, -0.1053, 51.5729], "geography": "point", "contact_name": "Air Quality Team",
    "contact_email": "air@camden.example.org", "landing_page": "https://www.camden.gov.uk/air-quality",
    "version": "2023", "extras": {"source": "diffusion tubes"},
}
NOISE = {"slug": "hackney-noise-complaints", "title": "Noise complaints in Hackney", "publisher": "hackney",
         "description": "Noise complaints by ward.", "keywords": ["noise"], "themes": ["environment"],
         "licence": "CC-BY-4.0"}
BUSES = {"slug": "bus-stops", "title": "Bus stops", "publisher": "greater-london-authority",
         "description": "Every bus stop in London.", "keywords": ["transport", "buses"], "themes": ["transport"]}
SECRET = {"slug": "camden-draft-budget", "title": "Camden draft budget lines", "publisher": "camden",
          "description": "Not yet published.", "private": True}


def make(db, *bodies, resources=()):  # type: ignore[no-untyped-def]
    """Create datasets through the catalogue service; each gets the given link resources."""
    with db.session() as session:
        for body in bodies:
            ds = service.create_dataset(session, COMMAND_LINE, dict(body))
            for title, url in resources:
                service.add_resource(session, COMMAND_LINE, ds, {"title": title, "url": url})


def call(client, action_name, headers=None, **params):  # type: ignore[no-untyped-def]
    """POST a CKAN action with a JSON body."""
    return client.post(f"/api/3/action/{action_name}", json=params, headers=headers or {})


def result(response, name=None):  # type: ignore[no-untyped-def]
    """The ``result`` of a successful CKAN envelope."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    if name:
        assert body["help"] == f"http://testserver/api/3/action/help_show?name={name}"
    return body["result"]


def error(response, status):  # type: ignore[no-untyped-def]
    """The ``error`` of a failed CKAN envelope with this status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and "help" in body
    return body["error"]


def names(search_result):  # type: ignore[no-untyped-def]
    return [p["name"] for p in search_result["results"]]


# --- the shape of what CKAN clients read ---------------------------------------------------------

def test_package_show_has_every_key_of_a_real_ckan_package(client, db):
    make(db, AIR, resources=[("Readings", "https://data.camden.gov.uk/no2.csv")])
    pkg = result(client.get("/api/3/action/package_show", params={"id": "camden-no2-diffusion-tubes"}), "package_show")
    real = BIRMINGHAM["result"]["results"][0]
    assert set(real) - {"revision_id"} <= set(pkg)
    assert set(real["organization"]) - {"revision_id"} <= set(pkg["organization"])
    assert set(real["resources"][0]) - {"revision_id"} <= set(pkg["resources"][0])
    assert set(real["tags"][0]) == set(pkg["tags"][0])
    assert set(real["groups"][0]) == set(pkg["groups"][0])

    assert pkg["name"] == "camden-no2-diffusion-tubes" and pkg["type"] == "dataset" and pkg["state"] == "active"
    assert pkg["notes"] == AIR["description"] and pkg["url"] == AIR["landing_page"] and pkg["version"] == "2023"
    assert pkg["organization"]["name"] == "camden" and pkg["organization"]["title"] == "Camden"
    assert pkg["owner_org"] == pkg["organization"]["id"]
    assert (pkg["license_id"], pkg["license_title"], pkg["isopen"]) == ("OGL-UK-3.0", "Open Government Licence v3.0",
                                                                       True)
    assert pkg["maintainer"] == "Air Quality Team" and pkg["maintainer_email"] == "air@camden.example.org"
    assert [t["name"] for t in pkg["tags"]] == ["air quality", "no2"] and pkg["num_tags"] == 2
    assert [(g["name"], g["title"]) for g in pkg["groups"]] == [("environment", "Environment"), ("health", "Health")]
    extras = {e["key"]: e["value"] for e in pkg["extras"]}
    assert extras["source"] == "diffusion tubes"
    assert extras["frequency"] == "monthly" and extras["boroughs"] == "E09000007"
    assert (extras["temporal_start"], extras["temporal_end"]) == ("2023-01-01", "2023-12-31")
    spatial = json.loads(extras["spatial"])
    assert spatial["type"] == "Polygon" and spatial["coordinates"][0][0] == [-0.2135, 51.5128]
    (res,) = pkg["resources"]
    assert res["url"] == "https://data.camden.gov.uk/no2.csv" and res["url_type"] is None
    assert res["package_id"] == pkg["id"] and res["position"] == 0 and res["format"] == "CSV"
    assert pkg["num_resources"] == 1
    # CKAN's timestamps: naive ISO 8601 in UTC
    modified = datetime.fromisoformat(pkg["metadata_modified"])
    assert modified.tzinfo is None and abs(modified - datetime.now(timezone.utc).replace(tzinfo=None)) < timedelta(minutes=5)
    # the same dataset by id, and with GET on /api/action (no version)
    assert result(client.get("/api/action/package_show", params={"id": pkg["id"]}))["name"] == pkg["name"]


def test_package_search_answers_like_ckan(client, db):
    make(db, AIR, NOISE, BUSES)
    found = result(client.get("/api/3/action/package_search", params={"q": "noise"}), "package_search")
    assert set(BIRMINGHAM["result"]) == set(found)
    assert found["count"] == 1 and names(found) == ["hackney-noise-complaints"]
    assert found["sort"] == "score desc, metadata_modified desc"
    assert found["facets"] == {} and found["search_facets"] == {}
    for negated in ("noise NOT hackney", "noise -hackney", "noise AND NOT hackney"):
        assert result(call(client, "package_search", q=negated))["count"] == 0, negated
    assert result(call(client, "package_search", q="noise || stops"))["count"] == 2
    full = found["results"][0]
    assert full["organization"]["name"] == "hackney" and full["license_id"] == "CC-BY-4.0"
    # with no query: everything public, most recently modified first
    assert names(result(call(client, "package_search"))) == ["bus-stops", "hackney-noise-complaints",
                                                             "camden-no2-diffusion-tubes"]
    assert result(call(client, "package_search", q="*:*"))["count"] == 3
    light = result(call(client, "package_search", q="noise", fl="id,name extras_frequency"))["results"]
    assert light == [{"id": full["id"], "name": "hackney-noise-complaints", "extras_frequency": "irregular"}]


def test_fq_speaks_the_solr_subset_clients_use(client, db):
    make(db, AIR, NOISE, BUSES, resources=[("Data", "https://example.org/data.csv")])
    with db.session() as session:  # one more format, on one dataset
        ds = service.get_dataset(session, COMMAND_LINE, "bus-stops")
        service.add_resource(session, COMMAND_LINE, ds, {"title": "Map", "url": "https://example.org/stops.geojson"})

    def fq(expression, **more):  # type: ignore[no-untyped-def]
        return sorted(names(result(call(client, "package_search", fq=expression, **more))))

    assert fq("organization:camden OR organization:hackney") == ["camden-no2-diffusion-tubes",
                                                                  "hackney-noise-complaints"]
    assert fq("-organization:camden") == ["bus-stops", "hackney-noise-complaints"]
    assert fq("NOT organization:camden AND groups:environment") == ["hackney-noise-complaints"]
    assert fq("groups:environment") == ["camden-no2-diffusion-tubes", "hackney-noise-complaints"]
    assert fq('tags:"air quality"') == ["camden-no2-diffusion-tubes"]
    assert fq("tags:(noise OR buses)") == ["bus-stops", "hackney-noise-complaints"]
    assert fq("res_format:GeoJSON") == ["bus-stops"]
    assert fq("res_format:CSV +groups:transport") == ["bus-stops"]
    assert fq("license_id:CC-BY-4.0") == ["hackney-noise-complaints"]
    assert fq("license_id:uk-ogl") == ["bus-stops", "camden-no2-diffusion-tubes"]  # CKAN's id for OGL
    assert fq("name:bus-stops") == ["bus-stops"] and fq("name:hackney*") == ["hackney-noise-complaints"]
    assert fq("(organization:camden OR tags:buses) -groups:health") == ["bus-stops"]
    assert fq("extras_source:\"diffusion tubes\"") == ["camden-no2-diffusion-tubes"]
    assert fq("extras_frequency:monthly") == ["camden-no2-diffusion-tubes"]
    assert fq("organization:camden", fq_list=["groups:health"]) == ["camden-no2-diffusion-tubes"]
    noise_id = result(call(client, "package_show", id="hackney-noise-complaints"))["id"]
    assert fq(f"id:{noise_id}") == ["hackney-noise-complaints"]
    # field syntax in q works too, and words in q are full text
    assert names(result(call(client, "package_search", q="name:bus-stops"))) == ["bus-stops"]
    assert names(result(call(client, "package_search", q="stops", fq="organization:greater-london-authority"))) == [
        "bus-stops"]
    assert names(result(call(client, "package_search", q="stops", fq="organization:camden"))) == []


def test_metadata_modified_ranges(client, db):
    make(db, AIR, NOISE, BUSES)
    with db.engine.begin() as conn:  # give the datasets known modification times
        for slug, when in (("camden-no2-diffusion-tubes", "2024-04-30T09:00:00"),
                           ("hackney-noise-complaints", "2024-05-01T10:00:00"),
                           ("bus-stops", "2024-06-15T12:30:00")):
            conn.execute(update(Dataset).where(Dataset.slug == slug)
                         .values(modified=datetime.fromisoformat(when).replace(tzinfo=timezone.utc)))

    def fq(expression):  # type: ignore[no-untyped-def]
        return sorted(names(result(call(client, "package_search", fq=expression))))

    assert fq("metadata_modified:[2024-05-01T10:00:00Z TO *]") == ["bus-stops", "hackney-noise-complaints"]
    assert fq("metadata_modified:{2024-05-01T10:00:00Z TO *]") == ["bus-stops"]
    assert fq("metadata_modified:[* TO 2024-05-01T10:00:00Z}") == ["camden-no2-diffusion-tubes"]
    assert fq("metadata_modified:[2024-05-01 TO 2024-06-01]") == ["hackney-noise-complaints"]
    assert fq("metadata_modified:2024-06-15") == ["bus-stops"]
    assert fq("metadata_modified:[2024-06-15T12:30:00Z-1DAY TO NOW]") == ["bus-stops"]
    assert fq("metadata_created:[NOW-1HOUR TO *]") == ["bus-stops", "camden-no2-diffusion-tubes",
                                                       "hackney-noise-complaints"]
    bad = error(call(client, "package_search", fq="metadata_modified:[yesterday TO *]"), 409)
    assert bad["__type"] == "Search Error" and "Invalid Date String" in bad["message"]


def test_sorting_and_stable_paging(client, db):
    make(db, AIR, NOISE, BUSES)
    by_name = names(result(call(client, "package_search", sort="name asc")))
    assert by_name == ["bus-stops", "camden-no2-diffusion-tubes", "hackney-noise-complaints"]
    assert names(result(call(client, "package_search", sort="name desc"))) == by_name[::-1]
    assert names(result(call(client, "package_search", sort="title_string desc"))) == [  # Noise, Nitrogen, Bus
        "hackney-noise-complaints", "camden-no2-diffusion-tubes", "bus-stops"]
    by_id = result(call(client, "package_search", sort="id asc"))["results"]
    assert [p["id"] for p in by_id] == sorted(p["id"] for p in by_id)
    assert names(result(call(client, "package_search", sort="metadata_modified asc"))) == [
        "camden-no2-diffusion-tubes", "hackney-noise-complaints", "bus-stops"]
    pages = [names(result(call(client, "package_search", sort="id asc", rows=1, start=n))) for n in range(4)]
    assert [p for page in pages for p in page] == [p["name"] for p in by_id] and pages[3] == []
    # relevance: the title outweighs the description
    make(db, {"slug": "noise-map", "title": "Road noise map", "publisher": "hackney", "description": "Decibels"},
         {"slug": "planning", "title": "Planning applications", "publisher": "hackney",
          "description": "Includes noise conditions."})
    ranked = names(result(call(client, "package_search", q="noise")))
    assert ranked.index("planning") == 2 and set(ranked[:2]) == {"noise-map", "hackney-noise-complaints"}
    bad = error(call(client, "package_search", sort="popularity desc"), 400)
    assert bad["__type"] == "Search Query Error" and "popularity" in bad["message"]


def test_rows_start_and_their_limits(client, db, monkeypatch):
    make(db, AIR, NOISE, BUSES)
    assert len(result(call(client, "package_search", rows=2))["results"]) == 2
    assert result(call(client, "package_search", rows=0))["results"] == []
    assert result(call(client, "package_search", rows=0))["count"] == 3
    assert len(result(call(client, "package_search", rows=5000))["results"]) == 3
    assert error(call(client, "package_search", rows=-1), 409) == {"__type": "Validation Error",
                                                                    "rows": ["Must be a natural number"]}
    assert error(call(client, "package_search", rows="ten"), 409)["rows"] == ["Invalid integer"]
    assert error(call(client, "package_search", start=-5), 409)["start"] == ["Must be a natural number"]
    # the default page is 10 rows
    make(db, *[{"slug": f"extra-{n:02d}", "title": f"Extra {n}", "publisher": "barnet"} for n in range(9)])
    assert len(result(call(client, "package_search"))["results"]) == 10
    monkeypatch.setattr(package_search_module, "ROWS_MAX", 2)  # CKAN caps rows at its maximum rather than failing
    assert len(result(call(client, "package_search", rows=50))["results"]) == 2


def test_facets(client, db):
    make(db, AIR, NOISE, BUSES, resources=[("Data", "https://example.org/data.csv")])
    facet_fields = '["organization", "groups", "tags", "res_format", "license_id", "no_such_field"]'
    found = result(client.get("/api/3/action/package_search", params={"facet.field": facet_fields, "rows": 0}))
    assert found["facets"]["groups"] == {"environment": 2, "health": 1, "transport": 1}
    assert found["facets"]["organization"] == {"camden": 1, "hackney": 1, "greater-london-authority": 1}
    assert found["facets"]["res_format"] == {"CSV": 3}
    assert found["facets"]["license_id"] == {"OGL-UK-3.0": 2, "CC-BY-4.0": 1}
    assert found["facets"]["no_such_field"] == {}
    groups = found["search_facets"]["groups"]
    assert groups["title"] == "groups"
    assert groups["items"][0] == {"name": "environment", "display_name": "Environment", "count": 2}
    orgs = {i["name"]: i["display_name"] for i in found["search_facets"]["organization"]["items"]}
    assert orgs["greater-london-authority"] == "Greater London Authority"
    licences = {i["name"]: i["display_name"] for i in found["search_facets"]["license_id"]["items"]}
    assert licences["CC-BY-4.0"] == "Creative Commons Attribution 4.0"
    # counts follow the query; limit and mincount
    narrowed = result(call(client, "package_search", q="noise", **{"facet.field": ["groups", "tags"]}))
    assert narrowed["facets"] == {"groups": {"environment": 1}, "tags": {"noise": 1}}
    limited = result(call(client, "package_search", **{"facet.field": ["groups"], "facet.limit": 1}))
    assert limited["facets"]["groups"] == {"environment": 2}
    frequent = result(call(client, "package_search", **{"facet.field": ["groups"], "facet.mincount": 2}))
    assert frequent["facets"]["groups"] == {"environment": 2}
    everything = result(call(client, "package_search", **{"facet.field": ["tags"], "facet.limit": -1}))
    assert len(everything["facets"]["tags"]) == 5
    assert error(call(client, "package_search", **{"facet.field": "[not json"}), 409)["facet.field"]


def test_private_and_draft_datasets_only_for_those_who_may_see_them(client, db, editor, make_account):
    make(db, AIR, SECRET, {"slug": "camden-draft", "title": "Draft work", "publisher": "camden", "state": "draft"})
    outsider = make_account("hackney-editor", hackney="editor")

    def visible(headers=None, **params):  # type: ignore[no-untyped-def]
        return sorted(names(result(call(client, "package_search", headers=headers, **params))))

    assert visible() == ["camden-no2-diffusion-tubes"]
    assert visible(include_private=True) == ["camden-no2-diffusion-tubes"]  # anonymous: still only public
    assert visible(editor.headers) == ["camden-no2-diffusion-tubes"]  # CKAN: private only when asked for
    assert visible(editor.headers, include_private=True) == ["camden-draft-budget", "camden-no2-diffusion-tubes"]
    assert visible(editor.headers, include_private=True, include_drafts=True) == [
        "camden-draft", "camden-draft-budget", "camden-no2-diffusion-tubes"]
    assert visible(outsider.headers, include_private=True, include_drafts=True) == ["camden-no2-diffusion-tubes"]
    assert error(call(client, "package_show", id="camden-draft-budget"), 404)["__type"] == "Not Found Error"
    assert error(call(client, "package_show", outsider.headers, id="camden-draft-budget"), 404)
    assert result(call(client, "package_show", editor.headers, id="camden-draft-budget"))["private"] is True
    assert "camden-draft-budget" not in result(call(client, "package_list"))
    assert result(call(client, "package_search", q="budget"))["count"] == 0
    counts = result(call(client, "package_search", include_private=True, **{"facet.field": ["organization"]}))
    assert counts["facets"]["organization"] == {"camden": 1}


def test_a_page_of_1000_costs_the_same_few_statements_as_a_page_of_one(client, db):
    make(db, *[{"slug": f"set-{n:03d}", "title": f"Dataset {n}", "publisher": ["camden", "hackney"][n % 2],
                "keywords": [f"k{n % 7}", "common"], "themes": ["environment"]} for n in range(40)],
         resources=[("CSV", "https://example.org/a.csv"), ("Page", "https://example.org/about")])
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    def run(rows: int) -> int:
        statements.clear()
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            found = result(call(client, "package_search", rows=rows, q="dataset",
                                **{"facet.field": ["organization", "tags", "res_format"]}))
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        assert len(found["results"]) == min(rows, 40)
        return len([s for s in statements if not facet_copy_upkeep(s)])

    run(1)  # the first search loads the in-memory facet columns
    one, thousand = run(1), run(1000)
    assert thousand == one and thousand <= 12, statements


def facet_copy_upkeep(statement: str) -> bool:
    """True for the in-memory facet copy's own reads (following committed changes), which are not per result."""
    return ("search_change" in statement or "dataset_facet" in statement
            or "state = 'active' AND private" in statement)


# --- the other read actions -----------------------------------------------------------------------

def test_lists_organizations_groups_tags_licences(client, db):
    make(db, AIR, NOISE, BUSES, SECRET)
    page = result(call(client, "package_list"), "package_list")
    assert page == ["bus-stops", "camden-no2-diffusion-tubes", "hackney-noise-complaints"]
    assert result(call(client, "package_list", limit=1, offset=1)) == ["camden-no2-diffusion-tubes"]
    assert error(call(client, "package_list", limit=-2), 409)["limit"] == ["Must be a natural number"]

    newest = result(call(client, "current_package_list_with_resources", limit=2))
    assert [p["name"] for p in newest] == ["bus-stops", "hackney-noise-complaints"]
    assert "resources" in newest[0]

    orgs = result(call(client, "organization_list"))
    assert orgs[:3] == ["barking-and-dagenham", "barnet", "bexley"]  # by title, as CKAN does
    top = result(call(client, "organization_list", sort="package_count", limit=2, all_fields=True))
    assert top[0]["package_count"] == 1 and top[0]["is_organization"] is True
    assert len(result(call(client, "organization_list", all_fields=True))) == 25  # CKAN's all_fields limit
    assert result(call(client, "organization_list", organizations=["hackney", "camden"], sort="name desc")) == [
        "hackney", "camden"]
    assert result(call(client, "organization_list", q="tower")) == ["tower-hamlets"]

    camden = result(call(client, "organization_show", id="camden", include_datasets=True), "organization_show")
    assert camden["title"] == "Camden" and camden["package_count"] == 1
    assert [p["name"] for p in camden["packages"]] == ["camden-no2-diffusion-tubes"]  # the private one is hidden
    assert {e["key"]: e["value"] for e in camden["extras"]}["gss_code"] == "E09000007"
    assert result(call(client, "organization_show", id=camden["id"]))["name"] == "camden"
    assert error(call(client, "organization_show", id="atlantis"), 404)["message"].startswith("Not found")

    assert "environment" in result(call(client, "group_list"))
    transport = result(call(client, "group_show", id="transport", include_datasets=True))
    assert transport["title"] == "Transport" and [p["name"] for p in transport["packages"]] == ["bus-stops"]
    assert result(call(client, "group_show", id=transport["id"]))["name"] == "transport"
    groups = result(call(client, "group_list", all_fields=True, sort="package_count"))
    assert groups[0]["name"] == "environment" and groups[0]["package_count"] == 2

    assert result(call(client, "tag_list")) == ["air quality", "buses", "no2", "noise", "transport"]
    assert result(call(client, "tag_list", query="no")) == ["no2", "noise"]
    assert result(call(client, "tag_list", query="bus", all_fields=True))[0]["name"] == "buses"

    licences = result(call(client, "license_list"))
    ogl = next(lic for lic in licences if lic["id"] == "OGL-UK-3.0")
    assert ogl["od_conformance"] == "approved" and ogl["title"] == "Open Government Licence v3.0"
    assert {"id", "title", "url", "od_conformance", "osd_conformance", "status", "is_okd_compliant"} <= set(ogl)
    closed = next(lic for lic in licences if lic["id"] == "other-closed")
    assert closed["od_conformance"] == "not reviewed" and closed["is_okd_compliant"] is False


def test_resource_status_and_help(client, db):
    make(db, AIR, resources=[("Readings", "https://data.camden.gov.uk/no2.csv")])
    pkg = result(call(client, "package_show", id="camden-no2-diffusion-tubes"))
    res = result(call(client, "resource_show", id=pkg["resources"][0]["id"]), "resource_show")
    assert res == pkg["resources"][0]
    assert error(call(client, "resource_show", id="no-such-resource"), 404)["__type"] == "Not Found Error"

    assert client.get("/api/3").json() == {"version": 3}
    status = result(client.get("/api/3/action/status_show"))
    assert status["ckan_version"].startswith("2.10") and status["site_title"] == "London Datastore"
    assert status["site_url"] == "http://testserver"

    doc = result(client.get("/api/3/action/help_show", params={"name": "package_search"}), "help_show")
    assert doc.startswith("Searches for datasets") and "fq" in doc
    assert error(call(client, "help_show", name="fly"), 404)["message"] == "Not found: Action function not found"
    assert error(call(client, "help_show"), 409) == {"__type": "Validation Error", "name": ["Missing value"]}


# --- requests and CKAN's errors -------------------------------------------------------------------

def test_requests_in_every_form_ckan_accepts(client, db):
    make(db, AIR, NOISE)
    # GET with query parameters; repeated keys are lists
    assert result(client.get("/api/3/action/package_show?id=hackney-noise-complaints"))["name"] == (
        "hackney-noise-complaints")
    assert sorted(result(client.get("/api/3/action/organization_list?organizations=camden&organizations=hackney")))\
        == ["camden", "hackney"]
    # form fields, and a JSON object posted as a form (what `curl -d '{...}'` sends)
    assert result(client.post("/api/3/action/package_show", data={"id": "hackney-noise-complaints"}))["name"]
    sent = client.post("/api/3/action/package_show", content=b'{"id": "camden-no2-diffusion-tubes"}',
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert result(sent)["name"] == "camden-no2-diffusion-tubes"
    # unknown parameters are ignored; a JSONP callback is dropped
    assert result(call(client, "package_search", q="noise", colour="blue", callback="f"))["count"] == 1


def test_request_level_errors_are_ckans_bad_request_strings(client, db):
    unknown = client.post("/api/3/action/package_fly", json={})
    assert unknown.status_code == 400 and unknown.json() == "Bad request - Action name not known: package_fly"
    as_get = client.get("/api/3/action/package_create", params={"name": "x"})
    assert as_get.status_code == 400
    assert as_get.json() == "Bad request - JSON Error: Invalid request. Please use POST method for your request"
    broken = client.post("/api/3/action/package_show", content=b'{"id": "half',
                         headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json().startswith("Bad request - JSON Error: Error decoding JSON")
    not_object = client.post("/api/3/action/package_show", content=b"[1, 2]",
                             headers={"Content-Type": "application/json"})
    assert not_object.status_code == 400 and "needs to be a dictionary" in not_object.json()
    assert client.get("/api/3/action/package_show", params={"id": "x"}).headers["content-type"].startswith(
        "application/json")


def test_action_errors_use_ckans_envelope_and_status_codes(client, db, editor):
    make(db, AIR)
    missing = error(call(client, "package_show", id="nowhere"), 404)
    assert missing["__type"] == "Not Found Error" and missing["message"].startswith("Not found: ")
    assert error(call(client, "package_show"), 409) == {"__type": "Validation Error", "id": ["Missing value"]}
    denied = error(call(client, "package_create", name="x-y-z", owner_org="camden"), 403)
    assert denied["__type"] == "Authorization Error" and denied["message"].startswith("Access denied")
    bad_token = error(call(client, "package_show", {"Authorization": "not-a-token"}, id="camden-no2-diffusion-tubes"),
                      403)
    assert "not recognised" in bad_token["message"]
    undefined = error(call(client, "package_search", fq="colour:blue"), 409)
    assert undefined == {"__type": "Search Error", "message": "Search error: undefined field colour"}
    unclosed = error(call(client, "package_search", fq='tags:"air'), 409)
    assert unclosed["__type"] == "Search Error"
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 1  # only the fixture's create


def test_browser_session_needs_csrf_to_write_through_the_ckan_api(client, db, editor):
    make(db, AIR)
    page = client.get("/sign-in")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    signed_in = client.post("/sign-in", data={"username": editor.username, "password": editor.password,
                                              "csrf_token": token}, follow_redirects=False)
    assert signed_in.status_code in (302, 303)
    token = client.get("/dataset/new").text.split('name="csrf_token" value="')[1].split('"')[0]  # a new session
    patch = {"id": "camden-no2-diffusion-tubes", "title": "Changed by a forged form"}
    forged = client.post("/api/3/action/package_patch", json=patch)
    assert error(forged, 403)["__type"] == "Authorization Error"
    own = client.post("/api/3/action/package_patch", json={**patch, "title": "Changed by the page"},
                      headers={"X-CSRF-Token": token})
    assert result(own)["title"] == "Changed by the page"


@pytest.mark.parametrize("path", ["/api/action/package_search", "/api/3/action/package_search"])
def test_both_paths_are_in_the_openapi_document(client, path):
    schema = client.get("/openapi.json").json()
    templated = path.replace("package_search", "{name}")
    operation = schema["paths"][templated]["post"]
    assert "package_search" in operation["description"] and "package_create" in operation["description"]
    assert "get" in schema["paths"][templated]
