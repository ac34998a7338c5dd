"""Loading tabular resources: whole-file types, declared schemas, bad values reported, atomic replacement.

Files go in the way a publisher sends them (uploads through the API) and come out the way a
data user reads them (CKAN's ``datastore_search`` and ``datastore_info``, the validation page).
"""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from datetime import datetime

import duckdb
import frictionless
import pytest
from openpyxl import Workbook
from sqlalchemy import select

from smartlondon.catalogue import service
from smartlondon.catalogue.models import Resource
from smartlondon.catalogue.tabular import gss_columns, loader, validation_summary
from smartlondon.catalogue.tabular.models import TabularTable
from smartlondon.core.accounts import COMMAND_LINE
from smartlondon.core.storage import LocalStorage
from tests.catalogue.tabular_support import csv_bytes, readings, tab  # noqa: F401  (fixture)
from tests.conftest import SHARED_DATA

NUMBER_SCHEMA = {"fields": [
    {"name": "site_code", "type": "string"}, {"name": "species_code", "type": "string"},
    {"name": "measurement_date_gmt", "type": "datetime"}, {"name": "value", "type": "number"},
    {"name": "borough_gss", "type": "string", "constraints": {"pattern": "E09[0-9]{6}"}}]}


def field_types(result: dict) -> dict[str, str]:
    return {f["id"]: f["type"] for f in result["fields"]}


def test_a_late_na_makes_the_inferred_column_text_not_a_failed_load(tab):
    slug = tab.dataset()
    res = tab.upload(slug, "readings.csv", readings(10_000, late_na_at=9_000))
    info = tab.action("datastore_info", id=res["id"]).json()["result"]
    types = {f["id"]: f["type"] for f in info["fields"]}
    assert info["meta"]["count"] == 10_000
    assert types == {"site_code": "text", "species_code": "text", "measurement_date_gmt": "timestamp",
                     "value": "text", "borough_gss": "text"}  # the N/A is 9,000 rows in: the whole file decides
    found = tab.search(resource_id=res["id"], filters={"value": "N/A"})
    assert found["total"] == 1 and found["records"][0]["_id"] == 9_000
    report = tab.report(slug, res["id"])
    assert report["status"] == "loaded" and report["valid"] is True and report["schema_source"] == "inferred"


def test_without_the_na_the_same_column_is_a_number(tab):
    slug = tab.dataset()
    res = tab.upload(slug, "readings.csv", readings(10_000, late_na_at=None))
    result = tab.search(resource_id=res["id"], limit=2)
    assert field_types(result)["value"] == "numeric"
    assert result["records"][0]["measurement_date_gmt"] == "2023-01-01T01:00:00"
    assert result["records"][0]["value"] == pytest.approx(3.7)


def test_a_late_na_in_a_declared_number_column_is_reported_and_the_rest_loaded(tab, db):
    slug = tab.dataset()
    res = tab.upload(slug, "readings.csv", readings(10_000, late_na_at=9_000), schema=NUMBER_SCHEMA)
    report = tab.report(slug, res["id"])
    assert report["status"] == "loaded" and report["rows"] == 10_000
    assert report["valid"] is False and report["errors"] == 1 and report["schema_source"] == "declared"
    [error] = report["report"]["tasks"][0]["errors"]
    assert (error["type"], error["rowNumber"], error["fieldName"], error["cell"]) == ("type-error", 9_001, "value", "N/A")
    assert error["message"].startswith('Type error in the cell "N/A" in row "9001"')
    assert report["report"]["summary"]["byType"] == {"type-error": 1}
    row = tab.search(resource_id=res["id"], filters={"_id": 9_000})["records"][0]
    assert row["value"] is None and row["site_code"] == "BG1"  # the bad cell is empty, the row is kept
    result = tab.search(resource_id=res["id"], limit=0)
    assert field_types(result)["value"] == "numeric" and result["total"] == 10_000
    with db.session() as s:
        rid = s.scalar(select(Resource.id).where(Resource.uuid == res["id"]))
        assert validation_summary(s, [rid]) == {rid: {"status": "loaded", "valid": False, "errors": 1,
                                                      "rows": 10_000}}
        assert gss_columns(s, rid) == ["borough_gss"]


def test_the_real_laqn_quarter_loads_gzipped_with_every_value_typed(tab):
    """666,072 real hourly readings (gzipped CSV); gaps are empty values, so the column is still a number."""
    content = (SHARED_DATA / "air-quality" / "laqn-hourly-2023Q1.csv.gz").read_bytes()
    slug = tab.dataset()
    res = tab.upload(slug, "laqn-hourly-2023Q1.csv.gz", content)
    report = tab.report(slug, res["id"])
    assert report["status"] == "loaded" and report["rows"] == 666_072 and report["valid"] is True
    assert [(f["name"], f["type"]) for f in report["schema"]["fields"]] == [
        ("site_code", "string"), ("species_code", "string"), ("measurement_date_gmt", "datetime"),
        ("value", "number")]
    peak = tab.search(resource_id=res["id"], filters={"site_code": "MY1", "species_code": "NO2"},
                      sort="value desc", limit=1)
    assert peak["total"] == 2_088 and peak["records"][0]["value"] > 100


def test_missing_values_follow_the_declared_schema(tab):
    schema = {"missingValues": ["", "N/A", "-"], "fields": [{"name": "site", "type": "string"},
                                                            {"name": "value", "type": "integer"}]}
    content = csv_bytes(["site", "value"], [["BG1", "5"], ["BL0", "N/A"], ["CD1", "-"], ["CT3", ""], ["GR4", "7"]])
    slug = tab.dataset()
    res = tab.upload(slug, "sites.csv", content, schema=schema)
    assert tab.report(slug, res["id"])["valid"] is True
    values = [r["value"] for r in tab.search(resource_id=res["id"])["records"]]
    assert values == [5, None, None, None, 7]


MESSY = (b"id,name,score,kind,id\n"
         b"1,Ann,5,a,x\n"
         b"2,Bob,N/A,b,y\n"
         b"3,Cy\n"
         b"4,Di,2,z,w,extra\n"
         b",,,,\n"
         b"5,,12,a,v\n"
         b"5,Eve,-1,b,u\n")
MESSY_SCHEMA = {"fields": [
    {"name": "id", "type": "integer", "constraints": {"unique": True}},
    {"name": "name", "type": "string", "constraints": {"required": True}},
    {"name": "score", "type": "number", "constraints": {"minimum": 0, "maximum": 10}},
    {"name": "kind", "type": "string", "constraints": {"enum": ["a", "b"]}},
    {"name": "code", "type": "string"}]}


def test_the_report_says_what_frictionless_says_about_the_same_file(tab, tmp_path):
    slug = tab.dataset()
    res = tab.upload(slug, "messy.csv", MESSY, schema=MESSY_SCHEMA)
    ours = tab.report(slug, res["id"])["report"]
    path = tmp_path / "messy.csv"
    path.write_bytes(MESSY)
    theirs = frictionless.Resource(path="messy.csv", basepath=str(tmp_path),
                                   schema=frictionless.Schema.from_descriptor(MESSY_SCHEMA)).validate().to_descriptor()

    def key(e: dict) -> tuple:
        return (e["type"], e.get("rowNumber"), e.get("fieldNumber"), e.get("cell"), e["message"])

    assert sorted(map(key, ours["tasks"][0]["errors"])) == sorted(map(key, theirs["tasks"][0]["errors"]))
    assert ours["valid"] is theirs["valid"] is False
    frictionless.Report.from_descriptor(ours)  # it is a well-formed Frictionless report
    # and the data that could be loaded was: six rows (the blank one is left out), bad cells empty
    rows = tab.search(resource_id=res["id"])["records"]
    assert [(r["id"], r["name"], r["score"]) for r in rows] == [
        (1, "Ann", 5.0), (2, "Bob", None), (3, "Cy", None), (4, "Di", 2.0), (5, None, 12.0), (5, "Eve", -1.0)]


def test_csv_dialects_encodings_and_awkward_column_names(tab):
    content = ("Borough name;Rate \"%\";Größe;\"Quote \"\"q\"\"\"\n"
               "Camden;1,5;10;a\n"
               "Hackney;2,25;20;b\n").encode("cp1252")
    slug = tab.dataset()
    res = tab.upload(slug, "semicolons.csv", content)
    report = tab.report(slug, res["id"])
    assert report["status"] == "loaded"
    assert any("Windows-1252" in w for w in report["report"]["tasks"][0]["warnings"])
    result = tab.search(resource_id=res["id"], filters={"Borough name": "Hackney"},
                        fields=["Borough name", "Größe", 'Quote "q"'], sort='"Größe" desc')
    assert result["records"] == [{"Borough name": "Hackney", "Größe": 20, 'Quote "q"': "b"}]
    assert field_types(result)["Größe"] == "int"


def test_xlsx_first_sheet_is_loaded_with_its_types(tab, tmp_path):
    book = Workbook()
    sheet = book.active
    sheet.title = "Entries"
    sheet.append(["station", "nlc", "date", "entries", "share", "open"])
    for i in range(1, 301):
        sheet.append([f"Station {i}", 500 + i, datetime(2019, 10, 1 + i % 28), i * 100, i / 7, i % 2 == 0])
    for _ in range(5):
        sheet.append([None] * 6)  # formatted blank rows at the end of a sheet are not data
    book.create_sheet("Notes").append(["about this workbook"])
    buffer = io.BytesIO()
    book.save(buffer)
    slug = tab.dataset()
    res = tab.upload(slug, "entries.xlsx", buffer.getvalue())
    report = tab.report(slug, res["id"])
    assert report["status"] == "loaded" and report["rows"] == 300 and report["valid"] is True
    assert any("Only the sheet “Entries” was loaded" in w for w in report["report"]["tasks"][0]["warnings"])
    result = tab.search(resource_id=res["id"], sort="entries desc", limit=1)
    assert field_types(result) == {"_id": "int", "station": "text", "nlc": "int", "date": "date", "entries": "int",
                                   "share": "numeric", "open": "bool"}
    assert result["records"][0] == {"_id": 300, "station": "Station 300", "nlc": 800, "date": "2019-10-21",
                                    "entries": 30000, "share": pytest.approx(300 / 7), "open": True}


def test_a_real_workbook_loads_the_sheet_and_header_row_its_extras_name(tab, db):
    """TfL's workbook starts with a notes sheet, and its table's header is on row 7."""
    path = SHARED_DATA / "transport" / "tfl-15min-entries-exits-2019.xlsx"
    slug = tab.dataset()
    with db.session() as session:
        ds = service.get_dataset(session, COMMAND_LINE, slug)
        stored = LocalStorage(tab.settings.files_dir).store_file(path, tab.settings.max_upload_bytes)
        rid = service.add_resource(session, COMMAND_LINE, ds, {"title": "Entries and exits by 15 minutes",
                                   "extras": {"sheet": "ByQhr", "header_row": "7"}},
                                   stored=stored, filename=path.name).uuid
    report = tab.report(slug, rid)
    assert report["status"] == "loaded" and report["rows"] == 3_584
    names = [f["name"] for f in report["schema"]["fields"]]
    assert names[:9] == ["Mode", "NLC", "ASC", "Station", "Coverage", "year", " day", " dir", "Total"]
    acton = tab.search(resource_id=rid, filters={"Station": "Acton Town", " dir": "IN", " day": "MTT"},
                       fields="Station,NLC,Total")["records"]
    assert acton == [{"Station": "Acton Town", "NLC": 500, "Total": 10091}]
    assert any("Only the sheet “ByQhr” was loaded" in w for w in report["report"]["tasks"][0]["warnings"])


def test_editing_only_the_description_does_not_reload(tab):
    slug = tab.dataset()
    res = tab.upload(slug, "a.csv", csv_bytes(["a"], [[1], [2]]))
    before = tab.report(slug, res["id"])["loaded_at"]
    tab.client.patch(f"/api/datasets/{slug}/resources/{res['id']}", headers=tab.headers,
                     json={"description": "Two rows"})
    assert tab.report(slug, res["id"])["loaded_at"] == before
    tab.client.patch(f"/api/datasets/{slug}/resources/{res['id']}", headers=tab.headers,
                     json={"table_schema": {"fields": [{"name": "a", "type": "string"}]}})
    after = tab.report(slug, res["id"])
    assert after["loaded_at"] != before and after["schema_source"] == "declared"
    assert tab.search(resource_id=res["id"])["fields"][1]["type"] == "text"


def test_validation_summary_answers_for_many_resources_at_once(tab, db):
    slug = tab.dataset()
    good = tab.upload(slug, "a.csv", csv_bytes(["code"], [["E09000007"], ["E09000012"]]))
    pdf = tab.upload(slug, "a.pdf", b"%PDF-1.4")
    with db.session() as s:
        ids = dict(s.execute(select(Resource.uuid, Resource.id)).all())
        summary = validation_summary(s, [ids[good["id"]], ids[pdf["id"]], 999_999])
        assert summary == {ids[good["id"]]: {"status": "loaded", "valid": True, "errors": 0, "rows": 2},
                           ids[pdf["id"]]: {"status": "not-tabular", "valid": None, "errors": 0, "rows": None},
                           999_999: {"status": "not-tabular", "valid": None, "errors": 0, "rows": None}}
        assert gss_columns(s, ids[good["id"]]) == ["code"] and gss_columns(s, ids[pdf["id"]]) == []


def test_parquet_keeps_its_own_types(tab, tmp_path):
    path = tmp_path / "counts.parquet"
    conn = duckdb.connect()
    conn.execute(f"""COPY (SELECT range AS id, 'E0900000' || (range % 9 + 1) AS gss, range * 1.5 AS flow,
                          TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (range) HOUR AS observed, range % 3 = 0 AS busy
                          FROM range(1000)) TO '{path}' (FORMAT parquet)""")
    conn.close()
    slug = tab.dataset()
    res = tab.upload(slug, "counts.parquet", path.read_bytes())
    report = tab.report(slug, res["id"])
    assert report["status"] == "loaded" and report["schema_source"] == "parquet" and report["gss_columns"] == ["gss"]
    result = tab.search(resource_id=res["id"], filters={"busy": True}, sort="observed desc", limit=1)
    assert field_types(result) == {"_id": "int", "id": "int", "gss": "text", "flow": "numeric",
                                   "observed": "timestamp", "busy": "bool"}
    assert result["total"] == 334
    assert result["records"][0]["observed"] == "2024-02-11T15:00:00" and result["records"][0]["id"] == 999


def test_a_replaced_file_replaces_the_table_and_readers_never_see_half_of_it(tab):
    slug = tab.dataset()
    first = readings(2_000, late_na_at=None)
    res = tab.upload(slug, "readings.csv", first)
    assert tab.search(resource_id=res["id"], limit=0)["total"] == 2_000
    seen: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            got = tab.action("datastore_search", resource_id=res["id"], limit=0)
            if got.status_code == 200:
                seen.append(got.json()["result"]["total"])
            else:
                errors.append(got.text)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        tab.replace_file(slug, res["id"], "readings.csv", readings(30_000, late_na_at=None))
    finally:
        stop.set()
        reader.join()
    assert not errors and set(seen) <= {2_000, 30_000}
    assert tab.search(resource_id=res["id"], limit=0)["total"] == 30_000
    store = loader.store_for(tab.settings)
    assert store.tables() == {res["id"]}  # the old table is gone and no half-built one is left


READER_PROCESS = """
import sys, time
from pathlib import Path
from smartlondon.catalogue.tabular.store import AnalyticsStore
store, table, stop, out = AnalyticsStore(Path(sys.argv[1])), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
with open(out, "a", buffering=1) as seen:
    while not stop.exists():
        try:
            with store.reading() as conn:
                seen.write(str(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]) + "\\n")
        except Exception as exc:
            seen.write("error: " + str(exc).splitlines()[0] + "\\n")
        time.sleep(0.005)
store.release_readers()
"""


def test_another_process_reading_the_store_never_blocks_a_load_or_sees_half_a_table(tab, tmp_path):
    slug = tab.dataset()
    res = tab.upload(slug, "readings.csv", readings(1_000, late_na_at=None))
    stop, out = tmp_path / "stop", tmp_path / "seen.txt"
    child = subprocess.Popen([sys.executable, "-c", READER_PROCESS, str(tab.settings.analytics_store), res["id"],
                              str(stop), str(out)])
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.read_text().strip()):  # the reader is up and holds its connection
            assert child.poll() is None and time.monotonic() < deadline, "the reading process did not start"
            time.sleep(0.05)
        for n in (2_000, 3_000, 4_000):
            tab.replace_file(slug, res["id"], "readings.csv", readings(n, late_na_at=None))
            assert tab.report(slug, res["id"])["rows"] == n  # each load got the write lock from the reader
        seen_so_far = len(out.read_text().splitlines())
        while len(out.read_text().splitlines()) < seen_so_far + 3:  # and the reader carries on afterwards
            assert child.poll() is None and time.monotonic() < deadline, "the reading process stopped"
            time.sleep(0.05)
    finally:
        stop.touch()
        child.wait(timeout=60)
    seen = out.read_text().splitlines()
    assert set(seen) <= {"1000", "2000", "3000", "4000"}, [s for s in seen if "error" in s][:3]
    assert seen[0] == "1000" and seen[-1] == "4000"


def test_a_file_that_is_not_a_table_fails_with_a_reason_and_its_old_table_goes(tab):
    slug = tab.dataset()
    res = tab.upload(slug, "readings.csv", readings(100, late_na_at=None))
    tab.replace_file(slug, res["id"], "readings.xlsx", b"this is not a workbook")
    report = tab.report(slug, res["id"])
    assert report["status"] == "failed" and "not a readable XLSX" in report["error"]
    assert report["report"]["tasks"][0]["errors"][0]["type"] == "source-error"
    missing = tab.action("datastore_search", resource_id=res["id"])
    assert missing.status_code == 404 and "Loading its data failed" in missing.json()["error"]["message"]


def test_deleting_a_resource_drops_its_table(tab, db):
    slug = tab.dataset()
    res = tab.upload(slug, "readings.csv", readings(50, late_na_at=None))
    assert loader.store_for(tab.settings).tables() == {res["id"]}
    assert tab.client.delete(f"/api/datasets/{slug}/resources/{res['id']}", headers=tab.headers).status_code == 204
    assert loader.store_for(tab.settings).tables() == set()
    with db.session() as s:
        assert s.scalar(select(TabularTable).where(TabularTable.table_name == res["id"])) is None


def test_big_files_wait_in_the_queue_and_a_dead_loader_is_taken_over(settings, db, editor):
    from dataclasses import replace as _replace

    from fastapi.testclient import TestClient

    from smartlondon.app import create_app
    from tests.catalogue.tabular_support import Tab, tab_settings

    app = create_app(tab_settings(settings, datastore_inline_bytes=0), db)
    with TestClient(app) as client:
        t = Tab(client, app.state.settings, db, editor.headers)
        slug = t.dataset()
        res = t.upload(slug, "readings.csv", readings(500, late_na_at=None))
        assert t.report(slug, res["id"])["status"] == "pending"
        page = client.get(f"/dataset/{slug}")
        assert "Waiting to load" in page.text
        claimed = loader.claim(db.engine)  # a loader claims it ... and dies
        assert claimed is not None and t.report(slug, res["id"])["status"] == "loading"
        assert loader.claim(db.engine) is None  # nobody else takes a live claim
        with db.session() as s:
            row = s.scalar(select(TabularTable).where(TabularTable.table_name == res["id"]))
            row.heartbeat_at = row.heartbeat_at - loader.STALE_AFTER * 2
        assert loader.run_pending(db.engine, _replace(app.state.settings)) == 1
        report = t.report(slug, res["id"])
        assert report["status"] == "loaded" and report["rows"] == 500
