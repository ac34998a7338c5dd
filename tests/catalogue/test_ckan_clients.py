"""Real CKAN clients against a running server: ckanapi's RemoteCKAN and CLI, and a harvester's crawl.

The catalogue is made of the real London Datastore "A-Z" of 2010 (256 datasets: titles,
descriptions and categories), spread over three publishers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from ckanapi import NotAuthorized, NotFound, RemoteCKAN, ValidationError

from smartlondon.catalogue import service
from smartlondon.core.accounts import COMMAND_LINE
from smartlondon.core.reference import THEMES

from tests.catalogue.live_server import live_server, second_live_server  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
A_TO_Z = json.loads((ROOT / "src/smartlondon/demo/data/datastore-a-z-2010.json").read_text())
SITES_CSV = SHARED_DATA / "air-quality" / "laqn-sites.csv"
CKANAPI = str(Path(sys.executable).with_name("ckanapi"))
PUBLISHERS = ("greater-london-authority", "camden", "hackney")


def load_a_to_z(db, count: int = len(A_TO_Z), with_links: bool = True) -> list[str]:  # type: ignore[no-untyped-def]
    """Create the first ``count`` A-Z datasets through the catalogue service; returns their slugs."""
    slugs = []
    with db.session() as session:
        for n, entry in enumerate(A_TO_Z[:count]):
            themes = [c.lower() for c in entry["categories"] if c.lower() in THEMES]
            ds = service.create_dataset(session, COMMAND_LINE, {
                "title": entry["title"], "description": entry["description"], "publisher": PUBLISHERS[n % 3],
                "keywords": [c.lower() for c in entry["categories"]], "themes": themes,
                "temporal_start": f"{entry['date']}-01" if entry.get("date") else None})
            if with_links:
                service.add_resource(session, COMMAND_LINE, ds, {"title": "2010 page", "url": entry["url"]})
            slugs.append(ds.slug)
    return slugs


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ckanapi command (its workers are ckanapi processes too, found on PATH)."""
    env = {**os.environ, "PATH": f"{Path(CKANAPI).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([CKANAPI, *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    return done


def test_remote_ckan_reads_and_writes_with_a_file_upload(live_server):  # noqa: F811
    token = live_server.token("ann", camden="editor")
    with RemoteCKAN(live_server.url, apikey=token) as ckan:
        pkg = ckan.action.package_create(
            name="laqn-monitoring-sites", title="London Air Quality Network monitoring sites", owner_org="camden",
            notes="Where the LAQN measures air quality.", tags=[{"name": "air quality"}],
            groups=[{"name": "environment"}], license_id="OGL-UK-2.0",
            extras=[{"key": "geography", "value": "point"}])
        assert pkg["organization"]["name"] == "camden"
        with SITES_CSV.open("rb") as handle:
            res = ckan.action.resource_create(package_id=pkg["id"], name="Site list", upload=handle)
        assert res["url_type"] == "upload" and res["size"] == SITES_CSV.stat().st_size and res["format"] == "CSV"
        assert requests.get(res["url"], timeout=10).content == SITES_CSV.read_bytes()

        ckan.action.package_patch(id=pkg["id"], notes="Every LAQN site, open or closed.")
        shown = ckan.action.package_show(id="laqn-monitoring-sites")
        assert shown["notes"] == "Every LAQN site, open or closed." and shown["num_resources"] == 1
        assert {e["key"]: e["value"] for e in shown["extras"]}["geography"] == "point"
        found = ckan.call_action("package_search", {"q": "monitoring", "fq": "organization:camden",
                                                    "facet.field": ["tags"]})
        assert found["count"] == 1 and found["facets"]["tags"] == {"air quality": 1}
        shown_resource = ckan.action.resource_show(id=res["id"])
        assert shown_resource["name"] == "Site list"
        # a small CSV is in the datastore once published: CKAN clients can query it (docs/tabular.md)
        assert shown_resource["datastore_active"] is True
        rows = ckan.action.datastore_search(resource_id=res["id"], filters={"@SiteCode": "BG1"})
        assert rows["total"] == 1 and rows["records"][0]["@SiteName"] == "Barking and Dagenham - Rush Green"

        with pytest.raises(NotFound):
            ckan.action.package_show(id="no-such-dataset")
        with pytest.raises(ValidationError) as invalid:
            ckan.action.package_create(name="Bad Name", owner_org="camden")
        assert "name" in invalid.value.error_dict
        ckan.action.resource_delete(id=res["id"])
        assert ckan.action.package_show(id=pkg["id"])["resources"] == []
        ckan.action.package_delete(id=pkg["id"])
        with pytest.raises(NotFound):
            ckan.action.package_show(id=pkg["id"])

    with RemoteCKAN(live_server.url) as anonymous, pytest.raises(NotAuthorized):
        anonymous.action.package_create(name="sneaky", owner_org="camden")
    outsider = live_server.token("hal", hackney="editor")
    with RemoteCKAN(live_server.url, apikey=outsider) as ckan, pytest.raises(NotAuthorized):
        ckan.action.organization_create(name="new-body")
    with RemoteCKAN(live_server.url, get_only=True) as reader:  # read actions over GET
        assert reader.action.status_show()["ckan_version"].startswith("2.10")
        assert "camden" in reader.action.organization_list()


def test_ckanapi_cli_searches_dumps_and_loads_into_another_instance(live_server, second_live_server,  # noqa: F811
                                                                    tmp_path):
    slugs = load_a_to_z(live_server.db, 15)
    with live_server.db.session() as session:  # one private dataset, which must not travel
        service.create_dataset(session, COMMAND_LINE, {"title": "Unpublished", "publisher": "camden", "private": True})

    searched = [json.loads(line) for line in cli("search", "datasets", "q=vehicles", "-r", live_server.url)
                .stdout.splitlines()]
    assert [p["name"] for p in searched] == ["abandoned-vehicles"]
    by_org = cli("search", "datasets", "fq=organization:hackney", "-r", live_server.url).stdout.splitlines()
    assert len(by_org) == 5

    dump = tmp_path / "datasets.jsonl"
    cli("dump", "datasets", "--all", "-r", live_server.url, "-O", str(dump))
    dumped = [json.loads(line) for line in dump.read_text().splitlines()]
    assert sorted(p["name"] for p in dumped) == sorted(slugs)

    admin = second_live_server.token("importer", sysadmin=True)
    cli("load", "datasets", "-I", str(dump), "-r", second_live_server.url, "-a", admin)
    with RemoteCKAN(second_live_server.url) as target:
        assert sorted(target.action.package_list()) == sorted(slugs)
        for original in dumped[:5]:
            copy = target.action.package_show(id=original["name"])
            assert copy["id"] == original["id"]  # a sysadmin's load keeps the ids
            for key in ("title", "notes", "license_id", "owner_org"):
                assert copy[key] == original[key], key
            assert [t["name"] for t in copy["tags"]] == [t["name"] for t in original["tags"]]
            assert [g["name"] for g in copy["groups"]] == [g["name"] for g in original["groups"]]
            assert [r["url"] for r in copy["resources"]] == [r["url"] for r in original["resources"]]
            assert copy["extras"] == original["extras"]
    # loading again updates in place: nothing is duplicated
    cli("load", "datasets", "-I", str(dump), "-r", second_live_server.url, "-a", admin)
    with RemoteCKAN(second_live_server.url) as target:
        assert len(target.action.package_list()) == len(slugs)
        assert target.action.package_search(rows=0)["count"] == len(slugs)


def _crawl(ckan: RemoteCKAN, fq: str = "", on_page=None) -> list[dict]:  # type: ignore[no-untyped-def]
    """Page through package_search as ckanext-harvest's CKAN harvester does: rows=100, start, sort=id asc."""
    seen: list[dict] = []
    start = 0
    while True:
        page = ckan.action.package_search(q="*:*", fq=fq, rows=100, start=start, sort="id asc")
        seen.extend(page["results"])
        if on_page:
            on_page(start)
        start += 100
        if start >= page["count"]:
            return seen


def test_a_harvester_crawl_sees_every_dataset_once_and_then_only_the_changes(live_server):  # noqa: F811
    slugs = load_a_to_z(live_server.db, with_links=False)
    token = live_server.token("root", sysadmin=True)
    with RemoteCKAN(live_server.url, apikey=token) as ckan:
        edited = []

        def edit_one_further_down(start: int) -> None:  # a publisher edits while the crawl pages
            if start == 0:
                last = ckan.action.package_search(q="*:*", rows=1, start=255, sort="id asc")["results"][0]
                edited.append(ckan.action.package_patch(id=last["id"], notes="Edited during the crawl"))

        full = _crawl(ckan, on_page=edit_one_further_down)
        ids = [p["id"] for p in full]
        assert len(ids) == len(slugs) == 256 and len(set(ids)) == 256 and ids == sorted(ids)
        assert sorted(p["name"] for p in full) == sorted(slugs)
        assert full[-1]["id"] == edited[0]["id"] and full[-1]["notes"] == "Edited during the crawl"

        last_run = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        camden = [p["name"] for p in full if p["organization"]["name"] == "camden"]
        for name in camden[:3]:
            ckan.action.package_patch(id=name, notes="Updated after the first harvest")
        new = ckan.action.package_create(name="air-quality-2024", title="Air quality 2024", owner_org="camden")
        ckan.action.package_delete(id=camden[3])

        since = _crawl(ckan, fq=f"metadata_modified:[{last_run} TO *]")
        assert sorted(p["name"] for p in since) == sorted([*camden[:3], new["name"]])
        assert all(p["notes"] == "Updated after the first harvest" for p in since if p["name"] in camden[:3])
        assert ckan.action.package_search(rows=0)["count"] == 256  # one added, one withdrawn
