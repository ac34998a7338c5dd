"""SensorThings API v1.1, conformance classes multi-datastream (A.3) and data-array create (A.4):
a MultiDatastream's result is an array matching its ObservedProperties, and CreateObservations
stores dataArray rows, answering a selfLink per row or "error" for a refused one."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from smartlondon.core.db import Database
from smartlondon.sensors import service
from smartlondon.sensors.models import Latest, Observation

UG = {"name": "microgram per cubic metre", "symbol": "µg/m³", "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3"}
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
COMPLEX = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_ComplexObservation"
ROOT = "http://testserver/sta/v1.1"


@pytest.fixture
def writer(editor) -> dict:  # type: ignore[no-untyped-def]
    return editor.headers


def site(client: TestClient, headers: dict) -> dict:
    """Camden - Bloomsbury with an NO2 Datastream and an [NO2, PM10] MultiDatastream."""
    body = {
        "name": "BL0", "description": "Camden - Bloomsbury (urban background)",
        "Locations": [{"name": "Bloomsbury", "description": "LAQN BL0", "encodingType": "application/geo+json",
                       "location": {"type": "Point", "coordinates": [-0.1259, 51.5223]}}],
        "Datastreams": [{"name": "NO2 at BL0", "description": "hourly", "unitOfMeasurement": UG,
                         "observationType": MEASUREMENT,
                         "Sensor": {"name": "Analyser", "description": "NOx", "encodingType": "text/html", "metadata": "-"},
                         "ObservedProperty": {"name": "NO2", "description": "Nitrogen dioxide", "definition": "urn:no2"}}],
    }
    thing = client.post("/sta/v1.1/Things", json=body, headers=headers).json()
    ds = client.get(f"/sta/v1.1/Things({thing['@iot.id']})/Datastreams").json()["value"][0]
    r = client.post("/sta/v1.1/MultiDatastreams", headers=headers, json={
        "name": "NO2 and PM10 at BL0", "description": "pairs", "observationType": COMPLEX,
        "unitOfMeasurements": [UG, UG], "multiObservationDataTypes": [MEASUREMENT, MEASUREMENT],
        "Thing": {"@iot.id": thing["@iot.id"]}, "Sensor": {"@iot.id": 1},
        "ObservedProperties": [{"@iot.id": 1}, {"name": "PM10", "description": "Particulates", "definition": "urn:pm10"}]})
    assert r.status_code == 201, r.text
    return {"thing": thing["@iot.id"], "ds": ds["@iot.id"], "mds": r.json()["@iot.id"]}


def test_multidatastream_results_must_match_its_observed_properties(client: TestClient, writer: dict) -> None:
    ids = site(client, writer)
    props = client.get(f"/sta/v1.1/MultiDatastreams({ids['mds']})/ObservedProperties").json()["value"]
    assert {p["name"] for p in props} == {"NO2", "PM10"}
    ok = client.post(f"/sta/v1.1/MultiDatastreams({ids['mds']})/Observations", headers=writer,
                     json={"phenomenonTime": "2023-01-01T00:00:00Z", "result": [38.5, 21.0]})
    assert ok.status_code == 201, ok.text
    assert ok.json()["result"] == [38.5, 21.0]
    bad = client.post("/sta/v1.1/Observations", headers=writer,
                      json={"result": [38.5], "MultiDatastream": {"@iot.id": ids["mds"]}})
    assert bad.status_code == 400 and "2 values" in bad.json()["message"]
    r = client.post("/sta/v1.1/MultiDatastreams", headers=writer, json={
        "name": "x", "description": "x", "unitOfMeasurements": [UG], "multiObservationDataTypes": [MEASUREMENT, MEASUREMENT],
        "Thing": {"@iot.id": ids["thing"]}, "Sensor": {"@iot.id": 1}, "ObservedProperties": [{"@iot.id": 1}, {"@iot.id": 2}]})
    assert r.status_code == 400 and "same length" in r.json()["message"]
    assert len(client.get("/sta/v1.1/MultiDatastreams").json()["value"]) == 1


def test_create_observations_with_data_array(client: TestClient, writer: dict, db: Database) -> None:
    ids = site(client, writer)
    r = client.post("/sta/v1.1/CreateObservations", headers=writer, json=[
        {"Datastream": {"@iot.id": ids["ds"]}, "components": ["phenomenonTime", "result"],
         "dataArray@iot.count": 3,
         "dataArray": [["2023-01-01T00:00:00Z", 40.1], ["2023-01-01T01:00:00Z", "not a number"],
                       ["2023-01-01T02:00:00Z", 35.7]]},
        {"MultiDatastream": {"@iot.id": ids["mds"]}, "components": ["phenomenonTime", "result", "FeatureOfInterest/id"],
         "dataArray": [["2023-01-01T00:00:00Z", [40.1, 18.0], 1]]},
    ])
    assert r.status_code == 201, r.text
    links = r.json()
    assert links[1] == "error" and links[0].startswith(f"{ROOT}/Observations(") and len(links) == 4
    assert client.get(links[2].replace("http://testserver", "")).json()["result"] == 35.7
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Observation)) == 3
        assert s.get(Latest, ids["ds"]).result == 35.7
    r = client.post("/sta/v1.1/CreateObservations", headers=writer,
                    json=[{"Datastream": {"@iot.id": 999}, "components": ["result"], "dataArray": [[1]]}])
    assert r.status_code == 400 and "999" in r.json()["message"]


def test_bulk_insert_is_fast(client: TestClient, writer: dict, db: Database) -> None:
    ids = site(client, writer)
    start = datetime(2023, 1, 1, tzinfo=timezone.utc)
    rows = [(start + timedelta(minutes=i), float(i % 90)) for i in range(20_000)]
    began = time.perf_counter()
    with db.session() as s:
        assert service.bulk_insert(s, ids["ds"], rows, ROOT) == 20_000
    elapsed = time.perf_counter() - began
    assert elapsed < 10, f"20,000 observations took {elapsed:.1f}s"
    with db.session() as s:
        assert s.get(Latest, ids["ds"]).phenomenon_time_start == rows[-1][0]
    stream = client.get(f"/sta/v1.1/Datastreams({ids['ds']})").json()
    assert stream["phenomenonTime"] == "2023-01-01T00:00:00Z/2023-01-14T21:19:00Z"
