"""The link checker, against a real local web server: broken, hanging, redirected and HEAD-refusing
links, uploaded files, politeness per host, private addresses, and the command that runs it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from smartlondon.catalogue import service
from smartlondon.catalogue.charter import linkcheck
from smartlondon.catalogue.charter.linkcheck import LinkCheckOptions
from smartlondon.catalogue.charter.models import DatasetCheck, DatasetScore, LinkCheck
from smartlondon.catalogue.models import Dataset, Resource
from smartlondon.cli import main
from smartlondon.core.accounts import COMMAND_LINE
from smartlondon.core.storage import LocalStorage

CSV = b"site,no2\nCD1,41\n"
LINKED_TTL = b"""@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
<http://data.example.org/borough/camden> rdfs:label "Camden" ;
    owl:sameAs <http://statistics.data.gov.uk/id/statistical-geography/E09000007> .
"""
PLAIN_TTL = b"""@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix schema: <http://schema.org/> .
<http://data.example.org/borough/camden> a schema:Place ; rdfs:label "Camden" .
"""


class Site:
    """A local web server whose paths behave like the web's broken corners; it logs every request."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, float, float]] = []  # method, path, start, end
        self.release = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _serve(self) -> None:
                start = time.monotonic()
                path = self.path.split("?")[0]
                try:
                    if path.startswith("/missing"):
                        self._reply(404)
                    elif path.startswith("/hang"):
                        site.release.wait(10)  # never answers while the test runs
                    elif path.startswith("/slow"):
                        time.sleep(0.1)
                        self._reply(200, CSV)
                    elif path.startswith("/nohead") and self.command == "HEAD":
                        self._reply(405)
                    elif path.startswith("/nohead"):
                        ranged = self.headers.get("Range") == "bytes=0-0"
                        self._reply(206 if ranged else 200, CSV[:1] if ranged else CSV,
                                    {"Content-Range": f"bytes 0-0/{len(CSV)}"} if ranged else {})
                    elif path.startswith("/moved"):
                        self._reply(301, headers={"Location": "/data.csv"})
                    elif path.startswith("/loop"):
                        self._reply(302, headers={"Location": path})
                    elif path.endswith(".ttl"):
                        self._reply(200, LINKED_TTL if "linked" in path else PLAIN_TTL, {"Content-Type": "text/turtle"})
                    else:
                        self._reply(200, CSV, {"Content-Type": "text/csv"})
                finally:
                    site.log.append((self.command, path, start, time.monotonic()))

            do_GET = do_HEAD = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    web = Site()
    yield web
    web.close()


FAST = LinkCheckOptions(timeout=3, host_delay=0, allow_private=True)  # generous: a busy test machine is slow
IMPATIENT = LinkCheckOptions(timeout=1, host_delay=0, allow_private=True)  # for the server that never answers


def publish(db, title: str, urls: list[str]) -> int:
    with db.session() as session:
        ds = service.create_dataset(session, COMMAND_LINE, {"title": title, "publisher": "camden"})
        for n, url in enumerate(urls, start=1):
            service.add_resource(session, COMMAND_LINE, ds, {"title": f"Part {n}", "url": url})
        return ds.id


def links_check(db, dataset_id: int) -> tuple[str, str]:
    with db.session() as session:
        row = session.get(DatasetCheck, (dataset_id, "links"))
        return row.status, row.reason


def results(db) -> dict[str, LinkCheck]:
    with db.session() as session:
        return {url: check for url, check in session.execute(
            select(Resource.url, LinkCheck).join(LinkCheck, LinkCheck.resource_id == Resource.id))}


def test_broken_hanging_and_working_links_are_found_and_explained(db, settings, site) -> None:
    good = publish(db, "Good links", [f"{site.base}/data.csv", f"{site.base}/nohead.csv", f"{site.base}/moved.csv"])
    broken = publish(db, "Broken link", [f"{site.base}/data.csv", f"{site.base}/missing.csv"])
    hanging = publish(db, "Hanging link", [f"{site.base}/hang.csv"])
    looping = publish(db, "Looping link", [f"{site.base}/loop.csv"])
    started = time.monotonic()
    report = linkcheck.run(db, LocalStorage(settings.files_dir), IMPATIENT)
    assert time.monotonic() - started < 8  # the hanging server timed out (it answers after 10 s)
    assert (report.checked, report.alive, report.broken) == (7, 4, 3)

    found = results(db)
    assert (found[f"{site.base}/data.csv"].status_code, found[f"{site.base}/data.csv"].method) == (200, "HEAD")
    assert (found[f"{site.base}/nohead.csv"].status_code, found[f"{site.base}/nohead.csv"].method) == (206, "GET")
    assert found[f"{site.base}/moved.csv"].alive is True
    missing = found[f"{site.base}/missing.csv"]
    assert (missing.alive, missing.status_code, missing.error) == (False, 404, "answered 404 Not Found")
    hang = found[f"{site.base}/hang.csv"]
    assert (hang.alive, hang.status_code, hang.error) == (False, None, "did not answer within 1 second")
    assert found[f"{site.base}/loop.csv"].error == "redirected more than 5 times"
    assert ("GET", "/nohead.csv") in [(m, p) for m, p, _, _ in site.log]  # the ranged GET fallback was used

    status, reason = links_check(db, good)
    assert status == "pass" and reason.startswith("All 3 resources work: 3 links that answered when last checked on")
    status, reason = links_check(db, broken)
    assert status == "fail"
    assert reason.startswith(f"1 resource of 2 is broken: ‘Part 2’ (CSV) ({site.base}/missing.csv) answered 404 "
                             "Not Found when checked on")
    status, reason = links_check(db, hanging)
    assert status == "fail" and "did not answer within 1 second" in reason
    assert links_check(db, looping)[0] == "fail"


def test_uploaded_files_work_while_storage_holds_them(db, settings, client, editor) -> None:
    assert client.post("/api/datasets", headers=editor.headers,
                       json={"title": "Sites", "slug": "sites", "publisher": "camden"}).status_code == 201
    upload = client.post("/api/datasets/sites/resources", headers=editor.headers, data={"title": "Sites"},
                         files={"upload": ("sites.csv", CSV, "text/csv")})
    assert upload.status_code == 201
    storage = LocalStorage(settings.files_dir)
    report = linkcheck.run(db, storage, FAST)
    assert (report.checked, report.alive) == (1, 1)
    with db.session() as session:
        dataset_id, key = session.execute(select(Dataset.id, Resource.storage_key).join(Resource)).one()
    assert links_check(db, dataset_id) == ("pass", "Its resource works: 1 file stored here.")
    storage.delete(key)
    report = linkcheck.run(db, storage, FAST, everything=True)
    assert report.broken == 1
    status, reason = links_check(db, dataset_id)
    assert status == "fail" and reason == "1 resource of 1 is broken: ‘Sites’ (CSV): its stored file is missing."


def test_one_request_at_a_time_per_host_spaced_by_the_delay(db, settings, site) -> None:
    publish(db, "Slow host", [f"{site.base}/slow-{n}.csv" for n in range(4)])
    options = LinkCheckOptions(timeout=2, concurrency=10, host_delay=0.2, allow_private=True)
    linkcheck.run(db, LocalStorage(settings.files_dir), options)
    visits = sorted(site.log, key=lambda entry: entry[2])
    assert len(visits) == 4
    for before, after in zip(visits, visits[1:]):
        assert after[2] >= before[3] + 0.15  # no overlap, and the delay between them


def test_many_links_are_checked_concurrently_across_hosts(db, settings) -> None:
    sites = [Site() for _ in range(4)]
    try:
        publish(db, "Four hosts", [f"{s.base}/slow.csv" for s in sites])
        report = linkcheck.run(db, LocalStorage(settings.files_dir),
                               LinkCheckOptions(timeout=2, concurrency=4, host_delay=0, allow_private=True))
        assert report.alive == 4
        visits = [entry for s in sites for entry in s.log]
        most_at_once = max(sum(1 for _, _, start, end in visits if start <= moment < end)
                           for _, _, moment, _ in visits)
        assert most_at_once >= 2  # the hosts' 0.1 s answers overlapped: they were asked side by side
    finally:
        for s in sites:
            s.close()


def test_private_addresses_are_not_visited_unless_allowed(db, settings, site) -> None:
    dataset_id = publish(db, "Internal", [f"{site.base}/data.csv"])
    report = linkcheck.run(db, LocalStorage(settings.files_dir), LinkCheckOptions(timeout=3, host_delay=0))
    assert (report.checked, report.unchecked) == (1, 1) and site.log == []
    status, reason = links_check(db, dataset_id)
    assert status == "not-checked"
    assert "127.0.0.1 is a private network address, which the link checker does not visit" in reason


def test_only_links_that_are_due_are_checked_again(db, settings, site) -> None:
    dataset_id = publish(db, "Due", [f"{site.base}/data.csv", f"{site.base}/other.csv"])
    storage = LocalStorage(settings.files_dir)
    assert linkcheck.run(db, storage, FAST).checked == 2
    with db.session() as session:
        assert linkcheck.due(session, FAST) == []
        res = session.scalars(select(Resource).where(Resource.dataset_id == dataset_id).order_by(Resource.id)).first()
        service.update_resource(session, COMMAND_LINE, res, {"url": f"{site.base}/missing.csv"})
    assert links_check(db, dataset_id)[0] == "not-checked"  # the new address has not been visited
    with db.session() as session:
        assert [d.url for d in linkcheck.due(session, FAST)] == [f"{site.base}/missing.csv"]
        later = LinkCheckOptions(recheck_after=timedelta(0), allow_private=True)
        assert len(linkcheck.due(session, later)) == 2
    assert linkcheck.run(db, storage, FAST).broken == 1
    assert links_check(db, dataset_id)[0] == "fail"


def test_linked_rdf_earns_the_fifth_star(db, settings, site) -> None:
    linked = publish(db, "Linked boroughs", [f"{site.base}/linked.ttl"])
    plain = publish(db, "Plain boroughs", [f"{site.base}/plain.ttl"])
    linkcheck.run(db, LocalStorage(settings.files_dir), FAST)
    with db.session() as session:
        assert session.get(DatasetScore, linked).stars == 5
        assert session.get(DatasetScore, plain).stars == 4
        reason = session.get(DatasetCheck, (linked, "openness")).reason
    assert reason == "5 stars from ‘Part 1’ (TTL): linked data: RDF that links to other people's data for context."


def test_the_check_links_command(db, settings, site, monkeypatch) -> None:
    publish(db, "Mixed", [f"{site.base}/data.csv", f"{site.base}/missing.csv"])
    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", db.url)
    monkeypatch.setenv("SMARTLONDON_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    result = runner.invoke(main, ["catalogue", "check-links", "--allow-private-addresses", "--timeout", "1",
                                  "--delay", "0", "--dataset", "mixed"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # the console wraps long lines
    assert "Checked 2 resources: 1 working, 1 broken, 0 could not be checked; rescored 1 dataset." in output
    assert f"broken {site.base}/missing.csv: answered 404 Not Found" in output
    again = runner.invoke(main, ["catalogue", "check-links", "--allow-private-addresses"])
    assert again.exit_code == 0 and "No resources are due a check." in again.output
    unknown = runner.invoke(main, ["catalogue", "check-links", "--dataset", "atlantis"])
    assert unknown.exit_code == 1 and "There is no dataset called atlantis." in unknown.output
    bad = runner.invoke(main, ["catalogue", "check-links", "--timeout", "0"])
    assert bad.exit_code == 1 and "--timeout must be above 0" in bad.output
