"""The sensor pages: /sensors (map and list) and /sensors/things/{id} (latest, chart, table, QC flags).

Real LAQN data (the first three sites, BG1, BG2 and BL0, and the first two days of Q1 2023) is
loaded through sensors/laqn.py; the pages are read as a browser and as JSON clients read them.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from sqlalchemy import select, update

from smartlondon.sensors import laqn
from smartlondon.sensors.models import Datastream, Latest, Observation, Thing


class Tables(HTMLParser):
    """The text of every cell of every table (by id), and every <svg> element's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.svgs: list[dict[str, str]] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self._table = a.get("id", f"table{len(self.tables)}")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "svg":
            self.svgs.append(a)
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> Tables:
    parser = Tables()
    parser.feed(html)
    return parser


@pytest.fixture
def network(db) -> dict[str, int]:  # type: ignore[no-untyped-def]
    laqn.load_laqn(db, limit_sites=3, days=2)
    with db.session() as session:
        return {t.properties["siteCode"]: t.id for t in session.scalars(select(Thing))}


def test_sensor_map_page_lists_every_site_with_latest_no2(client, db, network) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/sensors")
    assert page.status_code == 200
    html = page.text
    assert 'href="/static/vendor/leaflet/leaflet.js"' in html or 'src="/static/vendor/leaflet/leaflet.js"' in html
    assert 'data-boroughs="/sensors/boroughs.geojson"' in html and 'id="sensor-map"' in html
    assert re.search(r'href="/sensors" aria-current="true">\s*<strong[^>]*>Sensors', html)
    rows = parse(html).tables["sensor-table"]
    assert rows[0] == ["Name", "Borough", "Type", "Latest NO2"]
    body = {r[0]: r for r in rows[1:]}
    assert set(body) == {"Barking and Dagenham - Rush Green", "Barking and Dagenham - Scrattons Farm",
                         "Camden - Bloomsbury"}
    bl0 = body["Camden - Bloomsbury"]
    assert bl0[1:3] == ["Camden", "Urban Background"]
    with db.session() as session:
        latest = session.scalar(select(Latest).join(Datastream, Datastream.id == Latest.datastream_id)
                                .where(Datastream.thing_id == network["BL0"], Datastream.name.like("Nitrogen dioxide%")))
    assert bl0[3] == f"{latest.result} µg/m³ 2 Jan 2023 23:00 GMT"
    assert f'href="/sensors/things/{network["BL0"]}"' in html

    twin = client.get("/sensors.json").json()
    assert twin["count"] == 3 and [s["name"] for s in twin["sensors"]] == [r[0] for r in rows[1:]]
    bl0_json = next(s for s in twin["sensors"] if s["siteCode"] == "BL0")
    assert bl0_json["no2"] == {"result": latest.result, "phenomenonTime": "2023-01-02T23:00:00Z",
                               "label": "2 Jan 2023 23:00 GMT", "unit": "µg/m³"}
    assert 51.5 < bl0_json["latitude"] < 51.53 and bl0_json["borough"] == "Camden"
    assert client.get("/sensors", headers={"Accept": "application/json"}).json() == twin

    outlines = client.get("/sensors/boroughs.geojson")
    assert outlines.status_code == 200 and len(outlines.json()["features"]) == 33
    assert client.get("/sensors/assets/sensors-map.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/sensors/assets/other.js").status_code == 404


def test_empty_store_says_how_to_load_sensors(client) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/sensors")
    assert page.status_code == 200 and "smartlondon sensors load-laqn" in page.text
    assert client.get("/sensors.json").json()["count"] == 0


def test_thing_page_latest_chart_and_table_hold_the_same_data(client, db, network) -> None:  # type: ignore[no-untyped-def]
    thing_id = network["BL0"]
    twin = client.get(f"/sensors/things/{thing_id}.json").json()
    assert twin["name"] == "Camden - Bloomsbury" and twin["properties"]["siteCode"] == "BL0"
    assert twin["window"] == {"days": 3, "start": "2022-12-30T23:00:00Z", "end": "2023-01-02T23:00:00Z"}
    streams = twin["datastreams"]
    assert {s["observedProperty"] for s in streams} >= {"Nitrogen dioxide", "Carbon monoxide", "PM10 particulate matter"}
    with db.session() as session:
        for s in streams:
            stored = session.execute(select(Observation.phenomenon_time_start, Observation.result)
                                     .where(Observation.datastream_id == s["id"])
                                     .order_by(Observation.phenomenon_time_start)).all()
            assert len(s["points"]) == len(stored)  # two days loaded, a three-day window shows them all
            assert [p["result"] for p in s["points"]] == [r[1] for r in stored]
            if stored:
                assert s["latest"]["result"] == stored[-1][1]

    page = client.get(f"/sensors/things/{thing_id}")
    assert page.status_code == 200
    doc = parse(page.text)
    latest = {r[0]: r[1] for r in doc.tables["latest"][1:]}
    for s in streams:
        expected = f"{s['latest']['result']} {s['unit']}" if s["latest"] else "no readings"
        assert latest[s["observedProperty"]] == expected
    # one chart per Datastream with values, each saying how many values it draws ...
    charts = {int(svg["data-datastream"]): int(svg["data-count"]) for svg in doc.svgs if "data-datastream" in svg}
    assert charts == {s["id"]: len(s["points"]) for s in streams if s["points"]}
    assert all(svg.get("role") == "img" and svg.get("aria-label") for svg in doc.svgs if "data-datastream" in svg)
    # ... and the table beside them has exactly those values, column by column, newest first
    table = doc.tables["chart-data"]
    header = table[0]
    assert header[0] == "Hour" and header[1:] == [f"{s['observedProperty']} ({s['unit']})" for s in streams]
    for col, s in enumerate(streams, start=1):
        cells = [row[col].split(" (")[0] for row in table[1:] if row[col]]  # values with QC flags from ingest
        assert cells == [str(p["result"]) for p in reversed(s["points"])]
    assert table[1][0] == "2 Jan 2023 23:00 GMT"
    assert "<caption" in page.text and "Range" in page.text and "Flat line" in page.text  # the glossary

    short = client.get(f"/sensors/things/{thing_id}.json", params={"days": 1}).json()
    assert short["window"]["start"] == "2023-01-01T23:00:00Z"
    assert all(len(s["points"]) <= 24 for s in short["datastreams"])


def test_qc_flags_are_shown_and_explained(client, db, network) -> None:  # type: ignore[no-untyped-def]
    thing_id = network["BL0"]
    with db.session() as session:
        session.execute(update(Observation).values(result_quality=None))  # forget the flags given on ingest
        obs = session.scalar(select(Observation).join(Datastream, Datastream.id == Observation.datastream_id)
                             .where(Datastream.thing_id == thing_id, Datastream.name.like("Nitrogen dioxide%"))
                             .order_by(Observation.phenomenon_time_start.desc()).limit(1))
        obs.result_quality = {"qc": {"version": "1", "flags": ["spike", "range"]}}
        value = obs.result
    twin = client.get(f"/sensors/things/{thing_id}.json").json()
    assert twin["qcFlagCounts"] == {"spike": 1, "range": 1}
    page = client.get(f"/sensors/things/{thing_id}")
    table = parse(page.text).tables["chart-data"]
    no2_col = table[0].index("Nitrogen dioxide (µg/m³)")
    assert table[1][no2_col] == f"{value} (Spike flag) (Range flag)"
    assert "Spike: 1 value" in page.text
    assert "The value is a sudden jump away from both neighbouring values." in page.text


def test_unknown_thing_is_404_and_bad_days_is_400(client, network) -> None:  # type: ignore[no-untyped-def]
    missing = client.get("/sensors/things/99999")
    assert missing.status_code == 404 and "There is no sensor Thing with id 99999" in missing.text
    missing_json = client.get("/sensors/things/99999.json")
    assert missing_json.status_code == 404 and "99999" in missing_json.json()["error"]["message"]
    assert client.get("/sensors/things/abc").status_code == 404
    thing_id = network["BG1"]
    for bad, says in (("x", "whole number"), ("0", "from 1 to 14"), ("99", "from 1 to 14")):
        answer = client.get(f"/sensors/things/{thing_id}.json", params={"days": bad})
        assert answer.status_code == 400 and says in answer.json()["error"]["message"]
    html = client.get(f"/sensors/things/{thing_id}", params={"days": "x"})
    assert html.status_code == 400 and re.search("whole number of days", html.text)
