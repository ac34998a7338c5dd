"""Bad input to the SensorThings write side: a clear 4xx with the standard's error body, naming
what to fix, and nothing half written."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from smartlondon.core.db import Database
from smartlondon.sensors.models import ENTITIES

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
UG = {"name": "microgram per cubic metre", "symbol": "µg/m³", "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3"}


@pytest.fixture
def writer(editor) -> dict:  # type: ignore[no-untyped-def]
    return editor.headers


def rows(db: Database) -> int:
    with db.session() as s:
        return sum(s.scalar(select(func.count()).select_from(et.model)) for et in ENTITIES.values())


def error(response, status: int, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status and body["type"] == "error"
    for word in words:
        assert word in body["message"], body["message"]


def test_malformed_json_and_wrong_content_type(client: TestClient, writer: dict, db: Database) -> None:
    error(client.post("/sta/v1.1/Things", content=b'{"name": "x",', headers={**writer, "Content-Type": "application/json"}),
          400, "not valid JSON")
    error(client.post("/sta/v1.1/Things", content=b"name=x", headers={**writer, "Content-Type": "text/plain"}), 415)
    error(client.post("/sta/v1.1/Things", json=["a"], headers=writer), 400, "JSON object")
    assert rows(db) == 0


def test_unknown_properties_and_wrong_types_are_named(client: TestClient, writer: dict, db: Database) -> None:
    error(client.post("/sta/v1.1/Things", json={"name": "x", "description": "y", "colour": "red"}, headers=writer),
          400, "'colour'")
    error(client.post("/sta/v1.1/Things", json={"name": 5, "description": "y"}, headers=writer), 400, "Thing.name")
    error(client.post("/sta/v1.1/Things", json={"name": "x"}, headers=writer), 400, "'description'")
    error(client.post("/sta/v1.1/Locations", headers=writer, json={
        "name": "x", "description": "y", "encodingType": "application/geo+json", "location": {"type": "Pointy"}}),
        400, "Location.location")
    # a deep insert whose nested entity is bad leaves none of the outer ones behind
    error(client.post("/sta/v1.1/Things", headers=writer, json={
        "name": "x", "description": "y",
        "Locations": [{"name": "l", "description": "d", "encodingType": "application/geo+json",
                       "location": {"type": "Point", "coordinates": [0, 51]}}],
        "Datastreams": [{"name": "d", "description": "d", "unitOfMeasurement": UG, "observationType": MEASUREMENT,
                         "Sensor": {"@iot.id": 42}, "ObservedProperty": {"@iot.id": 43}}]}),
        400, "Sensor 42")
    assert rows(db) == 0


def test_observations_for_missing_or_wrong_datastreams(client: TestClient, writer: dict, db: Database) -> None:
    error(client.post("/sta/v1.1/Observations", json={"result": 1, "Datastream": {"@iot.id": 99}}, headers=writer),
          400, "Datastream 99")
    error(client.post("/sta/v1.1/Datastreams(99)/Observations", json={"result": 1}, headers=writer), 404, "99")
    error(client.post("/sta/v1.1/Observations", json={"result": 1}, headers=writer), 400, "Datastream")
    thing = client.post("/sta/v1.1/Things", headers=writer, json={"name": "no location", "description": "d", "Datastreams": [
        {"name": "d", "description": "d", "unitOfMeasurement": UG, "observationType": MEASUREMENT,
         "Sensor": {"name": "s", "description": "s", "encodingType": "text/html", "metadata": "m"},
         "ObservedProperty": {"name": "p", "description": "p", "definition": "urn:p"}}]}).json()
    ds = client.get(f"/sta/v1.1/Things({thing['@iot.id']})/Datastreams").json()["value"][0]["@iot.id"]
    before = rows(db)
    error(client.post(f"/sta/v1.1/Datastreams({ds})/Observations", json={"result": "high"}, headers=writer),
          400, "number")
    error(client.post(f"/sta/v1.1/Datastreams({ds})/Observations", json={"result": 1, "phenomenonTime": "yesterday"},
                      headers=writer), 400, "phenomenonTime")
    error(client.post(f"/sta/v1.1/Datastreams({ds})/Observations", json={"result": 1}, headers=writer),
          400, "FeatureOfInterest")
    assert rows(db) == before


def test_bad_paths_and_updates(client: TestClient, writer: dict, db: Database) -> None:
    error(client.post("/sta/v1.1/Gadgets", json={}, headers=writer), 404, "Gadgets")
    error(client.patch("/sta/v1.1/Things(7)", json={"name": "x"}, headers=writer), 404, "7")
    error(client.delete("/sta/v1.1/Things", headers=writer), 400, "one entity")
    thing = client.post("/sta/v1.1/Things", json={"name": "x", "description": "y"}, headers=writer).json()
    error(client.patch(f"/sta/v1.1/Things({thing['@iot.id']})", json={"name": None}, headers=writer), 400, "name")
    error(client.put(f"/sta/v1.1/Things({thing['@iot.id']})", json={"name": "only"}, headers=writer), 400, "description")
    error(client.patch(f"/sta/v1.1/Things({thing['@iot.id']})", content=b'{"op": "remove"}',
                       headers={**writer, "Content-Type": "application/json-patch+json"}), 400, "array")
    assert client.get(f"/sta/v1.1/Things({thing['@iot.id']})").json()["name"] == "x"


def test_changes_without_credentials_are_refused_and_change_nothing(client: TestClient, writer: dict) -> None:
    thing = client.post("/sta/v1.1/Things", json={"name": "x", "description": "y"}, headers=writer).json()
    url = f"/sta/v1.1/Things({thing['@iot.id']})"
    error(client.patch(url, json={"name": "hacked"}), 401, "API token")
    error(client.put(url, json={"name": "hacked", "description": "z"}), 401)
    error(client.delete(url), 401)
    error(client.delete(url, headers={"Authorization": "Bearer sl_not-a-real-token"}), 401, "not recognised")
    assert client.get(url).json()["name"] == "x"
