"""What people see: the status next to each resource, the validation report page, loading links on
request, and the ``smartlondon datastore`` command."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from smartlondon.catalogue.models import Resource
from smartlondon.catalogue.tabular.models import TabularTable
from smartlondon.cli import main
from tests.catalogue.tabular_support import csv_bytes, readings, tab  # noqa: F401  (fixture)

SCHEMA = {"fields": [{"name": "site", "type": "string"}, {"name": "value", "type": "number"}]}


def sign_in(tab, username: str, password: str) -> str:  # type: ignore[no-untyped-def]
    """Sign a browser in; returns the CSRF token of its session."""
    page = tab.client.get("/sign-in")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    res = tab.client.post("/sign-in", data={"username": username, "password": password, "csrf_token": token,
                                            "next": "/"}, follow_redirects=False)
    assert res.status_code == 303, res.text
    page = tab.client.get("/dataset")
    return page.text.split('name="csrf_token" value="')[1].split('"')[0]


def test_the_dataset_page_shows_each_tables_status_and_links_to_its_report(tab):
    slug = tab.dataset()
    good = tab.upload(slug, "good.csv", csv_bytes(["site", "value"], [["BG1", 1.5], ["BL0", 2]]), schema=SCHEMA)
    bad = tab.upload(slug, "bad.csv", csv_bytes(["site", "value"], [["BG1", "N/A"], ["BL0", 2]]), schema=SCHEMA)
    broken = tab.upload(slug, "broken.xlsx", b"not a workbook")
    tab.client.post(f"/api/datasets/{slug}/resources", json={"title": "Elsewhere", "url": "https://example.org/x.pdf"},
                    headers=tab.headers)
    page = tab.client.get(f"/dataset/{slug}").text
    assert page.count('class="app-tabular-status') == 3  # the PDF link has no table
    assert "2 rows; no problems found." in page
    assert "Loaded with problems" in page and "2 rows; 1 problem found." in page
    assert "Could not load" in page and "not a readable XLSX workbook" in page
    for res in (good, bad, broken):
        assert f'href="/dataset/{slug}/resource/{res["id"]}/validation"' in page
    resource_page = tab.client.get(f"/dataset/{slug}/resource/{bad['id']}").text
    assert "Loaded with problems" in resource_page


def test_the_report_page_lists_the_problems_and_how_to_use_the_data(tab):
    slug = tab.dataset()
    res = tab.upload(slug, "bad.csv", csv_bytes(["site", "value"], [["BG1", "N/A"], ["BL0", 2], ["", ""]]),
                     schema=SCHEMA)
    page = tab.client.get(f"/dataset/{slug}/resource/{res['id']}/validation")
    assert page.status_code == 200
    text = page.text
    assert "Data checks and API" in text and "Valid against its schema" in text
    assert "Values that do not fit the column’s type" in text and "<code>type-error</code>" in text
    assert "Blank rows" in text
    assert 'Type error in the cell &#34;N/A&#34; in row &#34;2&#34;' in text
    assert f"/api/3/action/datastore_search?resource_id={res['id']}" in text
    assert f"/datastore/dump/{res['id']}?format=parquet" in text
    assert f'<link rel="alternate" type="application/json" href="/dataset/{slug}/resource/{res["id"]}/validation.json">' in text
    twin = tab.client.get(f"/dataset/{slug}/resource/{res['id']}/validation", headers={"Accept": "application/json"})
    body = twin.json()
    assert body["status"] == "loaded" and body["valid"] is False and body["errors"] == 2
    assert body["report"]["summary"]["byType"] == {"blank-row": 1, "type-error": 1}
    assert body["schema"]["fields"] == SCHEMA["fields"]


def test_non_tables_and_unknown_resources(tab):
    slug = tab.dataset()
    pdf = tab.upload(slug, "report.pdf", b"%PDF-1.4 not a table")
    page = tab.client.get(f"/dataset/{slug}/resource/{pdf['id']}/validation")
    assert page.status_code == 200 and "is not a CSV, TSV, Excel (XLSX) or Parquet file" in page.text
    assert tab.report(slug, pdf["id"])["status"] == "not-tabular"
    assert tab.client.get(f"/dataset/{slug}/resource/nope/validation").status_code == 404


@pytest.fixture
def remote_csv() -> Iterator[str]:
    """A web server elsewhere that publishes a CSV file (the edge of the world)."""
    body = readings(300, late_na_at=None)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path != "/data/readings.csv":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_links_load_only_when_an_editor_asks(tab, db, remote_csv, make_account):
    slug = tab.dataset()
    link = tab.client.post(f"/api/datasets/{slug}/resources", headers=tab.headers,
                           json={"title": "Readings", "url": f"{remote_csv}/data/readings.csv"}).json()
    assert tab.report(slug, link["id"])["status"] == "not-tabular"
    page = tab.client.get(f"/dataset/{slug}/resource/{link['id']}/validation").text
    assert "Linked files are loaded only when an editor asks" in page
    assert "Load this file into the data API" not in page  # not signed in
    make_account("camden-web", camden="editor")
    csrf = sign_in(tab, "camden-web", "camden-web-password-123")
    asked = tab.client.post(f"/dataset/{slug}/resource/{link['id']}/validation", data={"csrf_token": csrf},
                            follow_redirects=False)
    assert asked.status_code == 303
    assert "Load requested" in tab.client.get(asked.headers["location"]).text
    assert tab.report(slug, link["id"])["status"] == "pending"
    from smartlondon.catalogue.tabular import loader

    assert loader.run_pending(db.engine, tab.settings) == 1
    report = tab.report(slug, link["id"])
    assert report["status"] == "loaded" and report["rows"] == 300
    assert tab.search(resource_id=link["id"], limit=0)["total"] == 300


def test_only_editors_may_ask_for_a_load(tab, make_account):
    slug = tab.dataset()
    res = tab.upload(slug, "a.csv", csv_bytes(["a"], [[1]]))
    make_account("hackney-web", hackney="editor")
    csrf = sign_in(tab, "hackney-web", "hackney-web-password-123")
    refused = tab.client.post(f"/dataset/{slug}/resource/{res['id']}/validation", data={"csrf_token": csrf})
    assert refused.status_code == 403
    forged = tab.client.post(f"/dataset/{slug}/resource/{res['id']}/validation", data={"csrf_token": "wrong"})
    assert forged.status_code == 403


def test_the_command_line_loads_one_resource_or_all(tab, db, monkeypatch):
    slug = tab.dataset()
    res = tab.upload(slug, "readings.csv", readings(200, late_na_at=None))
    with db.session() as s:  # forget the load, as if the file had been uploaded while no server ran
        row = s.scalar(select(TabularTable).where(TabularTable.table_name == res["id"]))
        s.delete(row)
    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", db.url)
    monkeypatch.setenv("SMARTLONDON_DATA_DIR", str(tab.settings.data_dir))
    runner = CliRunner()
    one = runner.invoke(main, ["datastore", "load", res["id"]])
    assert one.exit_code == 0, one.output
    assert f"{res['id']}  loaded    200 rows, valid" in one.output
    with db.session() as s:
        number = s.scalar(select(Resource.id).where(Resource.uuid == res["id"]))
    status = runner.invoke(main, ["datastore", "status", str(number)])
    assert "loaded" in status.output
    everything = runner.invoke(main, ["datastore", "load", "--all"])
    assert everything.exit_code == 0, everything.output
    assert "1 tables loaded, 0 failed" in everything.output
    missing = runner.invoke(main, ["datastore", "load", "no-such-resource"])
    assert missing.exit_code == 1 and "There is no resource" in missing.output
    assert tab.search(resource_id=res["id"], limit=0)["total"] == 200
