"""The other source types, each served in its real format, and the clean-up transforms.

DataPress ``export.json`` (the London Datastore's shape), a Socrata Discovery API listing
(paged), a DCAT Turtle catalogue in two Hydra pages, and an ArcGIS Hub ``data.json``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import func, select

from smartlondon.catalogue import service
from smartlondon.catalogue.harvest import runner, sources, transforms
from smartlondon.catalogue.harvest.models import HarvestJob
from smartlondon.catalogue.models import Dataset
from smartlondon.core.accounts import COMMAND_LINE
from smartlondon.core.models import AuditEvent
from tests.catalogue.harvest_portal import FIXTURES, Portal, file_answer, json_answer

FAST = {"connect_timeout": 2, "read_timeout": 2, "retries": 0, "backoff": 0}


@pytest.fixture
def portal():
    server = Portal().start()
    yield server
    server.stop()


def add_source(db, slug: str, kind: str, url: str, org: str = "greater-london-authority", **config: Any) -> int:
    with db.session() as session:
        return sources.create_source(session, COMMAND_LINE, {
            "slug": slug, "name": slug, "type": kind, "url": url, "organisation": org, "schedule": "manual",
            "config": {**FAST, **config}}).id


def harvest(db, source_id: int, mode: str = "auto") -> HarvestJob:
    return runner.run_job(db, sources.start_job(db, source_id, requested_by="tests", mode=mode))


def problems(db, job: HarvestJob) -> list[tuple[str, str | None, str]]:
    with db.session() as session:
        return [(p.level, p.remote_id, p.reason) for p in sources.job_problems(session, job)]


def dataset(db, slug: str) -> dict[str, Any]:
    with db.session() as session:
        ds = session.scalar(select(Dataset).where(Dataset.slug == slug))
        return {**service.dataset_dict(ds), "state": ds.state} if ds else {}


def audit_count(db) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent))


def test_datapress_export_with_every_clean_up(db, portal):
    portal.routes["/api/datasets/export.json"] = file_answer("datapress-export.json", "application/json")
    source = add_source(db, "london-datastore", "datapress", f"{portal.url}/api/datasets/export.json")
    with db.session() as session:  # a local dataset already has the name of one remote record
        service.create_dataset(session, COMMAND_LINE, {"title": "Our trees", "slug": "camden-street-trees",
                                                       "publisher": "camden"})

    job = harvest(db, source)

    assert job.status == "finished", job.message
    assert (job.seen, job.created, job.errors) == (4, 3, 1)  # the archived one is not listed at all
    found = problems(db, job)
    assert ("error", "f9b02", "The record has no title.") in found

    air = dataset(db, "air-quality-monitoring-sites")
    assert air["description"].startswith("Locations of the **London Air Quality Network** monitoring sites")
    assert "- Roadside and kerbside sites" in air["description"]
    assert "[londonair.org.uk](https://www.londonair.org.uk/)" in air["description"]  # HTML became Markdown
    assert air["keywords"] == ["air quality", "pollution", "no2"]  # split, trimmed, lowercased, no repeats
    assert air["contact_email"] == "airquality@london.gov.uk"  # no mailto:
    assert air["frequency"] == "daily" and air["themes"] == ["environment"]
    assert air["licence"]["id"] == "OGL-UK-3.0"
    assert (air["temporal_start"], air["temporal_end"]) == ("2010-01-01", "2023-06-30")
    # naive 09:30 in London in July is 08:30 UTC
    assert air["extras"]["harvest_remote_modified"] == "2023-07-14T08:30:00Z"
    csv, geojson = air["resources"]
    assert csv["format"] == "CSV" and csv["url"].endswith("/laqn-sites.csv")
    assert geojson["format"] == "GeoJSON"  # guessed from the media type
    assert "X-Amz" not in geojson["url"] and geojson["url"].endswith("laqn-sites.geojson")  # will not expire
    assert any("Removed the signing parameters X-Amz-Algorithm, X-Amz-Credential" in r for _, _, r in found)

    wards = dataset(db, "ward-profiles-and-atlas")
    assert wards["contact_email"] == "" and wards["contact_name"] == "GLA Intelligence"
    assert ("warning", "c41d9", "Dropped the contact email 'intelligence at london.gov.uk': it is not an "
            "email address.") in found
    assert wards["licence"]["id"] == "OGL-UK-2.0" and wards["frequency"] == "annual"
    assert wards["keywords"] == ["wards", "population", "demographics"] and wards["themes"] == ["population"]

    trees = dataset(db, "london-datastore-camden-street-trees")  # the name was taken here
    assert trees["title"] == "Camden Street Trees" and trees["boroughs"] == ["E09000007"]
    assert trees["licence"]["id"] == "OGL-UK-3.0"  # unknown licence: the source's default, with a warning
    assert ("warning", "d7e22", "Unknown licence 'https://example.org/bespoke-tree-licence': used the source's "
            "default, OGL-UK-3.0.") in found
    assert dataset(db, "camden-street-trees")["title"] == "Our trees"

    events = audit_count(db)
    again = harvest(db, source)
    assert (again.unchanged, again.created, again.updated) == (3, 0, 0) and audit_count(db) == events


def test_socrata_discovery_api_paged_with_columns_as_a_table_schema(db, portal):
    body = (FIXTURES / "socrata-catalog.json").read_text()

    def catalog(query: dict[str, str]):
        import json

        page = json.loads(body)
        offset, limit = int(query["offset"]), int(query["limit"])
        page["results"] = page["results"][offset:offset + limit]
        return json_answer(page)

    portal.routes["/api/catalog/v1"] = catalog
    source = add_source(db, "nyc", "socrata", f"{portal.url}/api/catalog/v1", domain="data.cityofnewyork.us",
                        page_size=2)

    job = harvest(db, source)

    assert job.status == "finished", job.message
    assert (job.seen, job.created, job.expected) == (3, 3, 3)
    assert [(q["offset"], q["limit"], q["domains"], q["only"]) for q in portal.calls("/api/catalog/v1")] == [
        ("0", "2", "data.cityofnewyork.us", "dataset"), ("2", "2", "data.cityofnewyork.us", "dataset")]
    crashes = dataset(db, "motor-vehicle-collisions-crashes")
    assert crashes["landing_page"] == "https://data.cityofnewyork.us/d/h9gi-nx95"
    assert crashes["keywords"] == ["traffic", "collisions", "vision zero", "big apps"]
    assert crashes["frequency"] == "daily" and crashes["contact_email"] == "opendata@nypd.example.org"
    csv, api = crashes["resources"]
    assert csv["url"] == "https://data.cityofnewyork.us/api/views/h9gi-nx95/rows.csv?accessType=DOWNLOAD"
    assert api["url"] == "https://data.cityofnewyork.us/resource/h9gi-nx95.json" and api["format"] == "JSON"
    assert csv["table_schema"]["fields"][0] == {"name": "crash_date", "type": "datetime", "title": "CRASH DATE",
                                                "description": "Occurrence date of collision"}
    assert crashes["extras"]["harvest_remote_modified"] == "2024-03-05T14:22:10Z"
    payroll = dataset(db, "citywide-payroll-data-dictionary")
    assert payroll["licence"]["id"] == "CC-BY-4.0"
    assert payroll["description"] == "The data dictionary for the **Citywide Payroll** dataset."
    assert [r["format"] for r in payroll["resources"]] == ["HTML"]
    assert any(p[1] == "h9gi-nx95" and "Unknown licence 'Public Domain'" in p[2] for p in problems(db, job))
    # page views change on every request; the record does not
    assert harvest(db, source).unchanged == 3


def test_dcat_turtle_catalogue_followed_through_hydra_pages(db, portal):
    page1 = (FIXTURES / "dcat-page1.ttl").read_bytes()
    page2 = (FIXTURES / "dcat-page2.ttl").read_bytes()
    portal.routes["/catalog.ttl"] = lambda q: (200, "text/turtle", page2 if q.get("page") == "2" else page1)
    source = add_source(db, "hackney", "dcat", f"{portal.url}/catalog.ttl", org="hackney")

    job = harvest(db, source)

    assert job.status == "finished", job.message
    assert (job.seen, job.created, job.pages, job.expected) == (3, 3, 2, 3)
    assert [q.get("page") for q in portal.calls("/catalog.ttl")] == [None, "2"]
    libraries = dataset(db, "libraries")
    assert libraries["title"] == "Library locations"  # the English title
    assert libraries["extras"]["harvest_remote_id"] == "hackney-libraries"
    assert libraries["licence"]["id"] == "CC-BY-4.0"  # from the distribution's EU licence URI
    assert libraries["themes"] == ["society"] and libraries["frequency"] == "annual"
    assert libraries["boroughs"] == ["E09000012"]  # from the GSS code in dct:spatial
    assert libraries["contact_email"] == "libraries@hackney.gov.uk" and libraries["contact_name"] == "Libraries team"
    assert libraries["resources"][0]["format"] == "CSV"
    assert libraries["resources"][0]["url"] == "https://data.hackney.gov.uk/files/libraries.csv"
    assert libraries["extras"]["harvest_remote_publisher"] == "London Borough of Hackney"
    bays = dataset(db, "parking-bays")
    assert bays["extras"]["harvest_remote_id"] == "https://data.hackney.gov.uk/dataset/parking-bays"  # its URI
    assert (bays["temporal_start"], bays["temporal_end"]) == ("2020-01-01", "2023-11-30")
    assert bays["themes"] == ["transport"] and bays["frequency"] == "monthly"
    assert bays["resources"][0]["format"] == "GeoJSON"
    recycling = dataset(db, "recycling-centres")
    assert recycling["frequency"] == "irregular" and recycling["resources"][0]["format"] == "JSON"
    assert harvest(db, source).unchanged == 3


def test_dcat_page_that_is_not_rdf_fails_the_job_with_the_reason(db, portal):
    portal.routes["/catalog.ttl"] = lambda q: (200, "text/turtle", b"<https://a> <https://b> oops .")
    job = harvest(db, add_source(db, "broken", "dcat", f"{portal.url}/catalog.ttl"))
    assert job.status == "failed" and f"The catalogue page {portal.url}/catalog.ttl is not valid RDF" in job.message


def test_dcat_us_data_json_from_arcgis_hub(db, portal):
    portal.routes["/data.json"] = file_answer("data.json", "application/json")
    source = add_source(db, "westminster-hub", "dcat-us", f"{portal.url}/data.json", org="westminster")

    job = harvest(db, source)

    assert job.status == "finished", job.message
    assert (job.seen, job.created, job.errors) == (3, 2, 1)
    found = problems(db, job)
    assert ("error", "Record without an identifier", "The record has no 'identifier'.") in found
    areas = dataset(db, "westminster-conservation-areas")
    assert areas["description"] == "The boundaries of the 56 conservation areas in the City of Westminster."
    assert areas["bbox"] == [-0.216, 51.484, -0.1102, 51.5398]
    assert (areas["temporal_start"], areas["temporal_end"]) == ("2019-01-01", "2023-12-31")
    assert areas["frequency"] == "monthly" and areas["licence"]["id"] == "CC-BY-4.0"
    assert areas["themes"] == ["planning"] and areas["contact_email"] == "gis@westminster.gov.uk"
    assert [r["format"] for r in areas["resources"]] == ["HTML", "ESRI REST", "GeoJSON", "CSV"]
    lights = dataset(db, "westminster-street-lighting")
    assert lights["boroughs"] == ["E09000033"] and lights["frequency"] == "annual"
    assert lights["contact_email"] == ""
    assert ("warning", "https://opendata-westminster.hub.arcgis.com/datasets/westminster::street-lighting",
            "Dropped the contact email 'mailto:highways': it is not an email address.") in found


def test_transforms_fix_what_portals_get_wrong():
    assert transforms.clean_tags(["Air Quality; Pollution", " NO2 ", "", "air quality|CO2"])[0] == [
        "air quality", "pollution", "no2", "co2"]
    assert transforms.clean_email("  mailto:Data@Camden.gov.uk ") == ("Data@Camden.gov.uk", None)
    assert transforms.clean_email("<data@camden.gov.uk>") == ("data@camden.gov.uk", None)
    assert transforms.clean_email("data team")[0] == ""
    london = "Europe/London"
    assert transforms.parse_timestamp("2023-01-10T11:00:00", london) == datetime(2023, 1, 10, 11, tzinfo=timezone.utc)
    assert transforms.parse_timestamp("2023-07-14T09:30:00", london) == datetime(2023, 7, 14, 8, 30, tzinfo=timezone.utc)
    assert transforms.parse_timestamp("2023-07-14T09:30:00+02:00", london).hour == 7  # a given zone is kept
    assert transforms.parse_timestamp("2023-07-14 09:30:00", "UTC").hour == 9
    assert transforms.parse_timestamp("last Tuesday", london) is None
    url, dropped = transforms.strip_signed_params(
        "https://files.example.org/a.csv?version=3&X-Amz-Signature=ab&X-Amz-Expires=300&token=x&sig=y&se=2024")
    assert url == "https://files.example.org/a.csv?version=3" and set(dropped) == {
        "X-Amz-Signature", "X-Amz-Expires", "token", "sig", "se"}
    assert transforms.strip_signed_params("https://a.example/x.csv?accessType=DOWNLOAD")[1] == []
    assert transforms.resource_format("", "text/csv; charset=utf-8", "https://a/x") == "CSV"
    assert transforms.resource_format("", "", "https://a/data/file.XLSX?download=1") == "XLSX"
    assert transforms.resource_format("", "", "https://a/report.aspx") == "HTML"
    assert transforms.resource_format("http://publications.europa.eu/resource/authority/file-type/CSV", "", "") == "CSV"
    known = {"OGL-UK-3.0", "OGL-UK-2.0", "CC-BY-4.0", "CC-BY-SA-4.0", "CC0-1.0", "ODbL-1.0"}
    for given, expected in [("uk-ogl", "OGL-UK-3.0"), ("cc-by", "CC-BY-4.0"), ("odc-odbl", "ODbL-1.0"),
                            ("https://creativecommons.org/publicdomain/zero/1.0/", "CC0-1.0"),
                            ("Open Government Licence v2.0", "OGL-UK-2.0"),
                            ("Creative Commons Attribution-ShareAlike 4.0", "CC-BY-SA-4.0"),
                            ("http://publications.europa.eu/resource/authority/licence/CC_BY_4_0", "CC-BY-4.0"),
                            ("All rights reserved", None)]:
        assert transforms.licence_for([given], known) == expected, given
    for given, expected in [("R/P1D", "daily"), ("R/PT1H", "hourly"), ("R/P1W", "weekly"), ("R/P2W", "monthly"),
                            ("R/P3M", "quarterly"), ("R/P1Y", "annual"), ("Annually", "annual"),
                            ("One off", "never"), ("Ad hoc", "irregular"),
                            ("http://publications.europa.eu/resource/authority/frequency/QUARTERLY", "quarterly"),
                            ("whenever", None)]:
        assert transforms.frequency_for(given) == expected, given
    assert transforms.html_to_markdown("<p>A &amp; B</p><script>x()</script><p><em>C</em></p>") == "A & B\n\n*C*"
