"""Federation: this instance harvests a second running smartlondon through its CKAN Action API.

The second instance is a real server (uvicorn on a local port) with its own database; the
harvest reads its ``/api/3/action/package_search`` exactly as it would read any CKAN portal.
"""

from __future__ import annotations

import httpx
from sqlalchemy import select

from smartlondon.catalogue import service
from smartlondon.catalogue.harvest import runner, sources
from smartlondon.catalogue.models import Dataset
from smartlondon.core.accounts import COMMAND_LINE
from tests.catalogue.live_server import second_live_server  # noqa: F401  (fixture)

AIR = {"title": "Air quality monitoring sites, Camden", "slug": "camden-air-sites", "publisher": "camden",
       "description": "Where Camden measures **NO2**.", "keywords": ["air quality", "no2"],
       "themes": ["environment"], "frequency": "monthly", "boroughs": ["E09000007"], "licence": "CC-BY-4.0",
       "temporal_start": "2023-01-01", "temporal_end": "2023-12-31", "contact_email": "air@camden.example.org",
       "bbox": [-0.2135, 51.5128, -0.1053, 51.5729]}
TREES = {"title": "Street trees, Camden", "slug": "camden-street-trees", "publisher": "camden",
         "keywords": ["trees"], "frequency": "annual"}


def dataset(db, slug: str) -> dict:
    with db.session() as session:
        ds = session.scalar(select(Dataset).where(Dataset.slug == slug))
        return {**service.dataset_dict(ds), "state": ds.state} if ds else {}


def harvest(db, source_id: int, mode: str = "auto"):
    return runner.run_job(db, sources.start_job(db, source_id, requested_by="tests", mode=mode))


def test_one_smartlondon_harvests_another_through_its_ckan_api(db, second_live_server):  # noqa: F811
    remote = second_live_server
    with remote.db.session() as session:
        for fields in (AIR, TREES):
            ds = service.create_dataset(session, COMMAND_LINE, fields)
            service.add_resource(session, COMMAND_LINE, ds, {"title": "Sites", "format": "CSV",
                                                             "url": f"https://data.camden.example.org/{ds.slug}.csv"})
    token = remote.token("camden-publisher", camden="editor")
    uploaded = httpx.post(f"{remote.url}/api/datasets/camden-air-sites/resources",
                          files={"upload": ("readings.csv", b"site,no2\nCD1,41.2\n", "text/csv")},
                          data={"title": "Readings"}, headers={"Authorization": f"Bearer {token}"})
    assert uploaded.status_code == 201, uploaded.text

    with db.session() as session:
        source = sources.create_source(session, COMMAND_LINE, {
            "slug": "camden-portal", "name": "Camden's portal", "type": "ckan", "url": remote.url,
            "organisation": "camden", "schedule": "daily",
            "config": {"read_timeout": 10, "retries": 0, "page_size": 1}}).id

    job = harvest(db, source)

    assert job.status == "finished", job.message
    assert (job.created, job.errors, job.pages) == (2, 0, 2)
    air = dataset(db, "camden-air-sites")
    for field in ("title", "description", "keywords", "themes", "frequency", "boroughs", "temporal_start",
                  "temporal_end", "contact_email", "bbox"):
        assert air[field] == AIR[field], field
    assert air["licence"]["id"] == "CC-BY-4.0"
    assert air["landing_page"] == f"{remote.url}/dataset/camden-air-sites"
    link, upload = air["resources"]
    assert link["url"] == "https://data.camden.example.org/camden-air-sites.csv" and link["kind"] == "link"
    assert upload["kind"] == "link" and upload["format"] == "CSV"
    assert httpx.get(upload["url"], follow_redirects=True).content == b"site,no2\nCD1,41.2\n"  # the remote file

    assert harvest(db, source, mode="full").unchanged == 2  # nothing changed: nothing written

    changed = httpx.patch(f"{remote.url}/api/datasets/camden-street-trees", json={"title": "Camden's street trees"},
                          headers={"Authorization": f"Bearer {token}"})
    assert changed.status_code == 200
    update = harvest(db, source)
    assert update.mode == "incremental" and (update.updated, update.unchanged) == (1, 1)  # the newest is re-read
    assert dataset(db, "camden-street-trees")["title"] == "Camden's street trees"

    gone = httpx.delete(f"{remote.url}/api/datasets/camden-street-trees", headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 204
    full = harvest(db, source, mode="full")
    assert full.withdrawn == 1 and dataset(db, "camden-street-trees")["state"] == "draft"
