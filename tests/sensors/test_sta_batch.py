"""SensorThings API v1.1, conformance class batch-request (A.5), in the JSON batch format:
requests run in order, an atomicity group commits or fails as one, ``$<id>`` refers to an entity
created earlier in the batch, and GETs are answered as over HTTP."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

SENSOR = {"name": "DS18B20", "description": "Air temperature sensor", "encodingType": "application/pdf",
          "metadata": "https://example.org/ds18b20.pdf"}
PROPERTY = {"name": "Air temperature", "description": "Temperature of the air",
            "definition": "http://vocab.nerc.ac.uk/collection/P07/current/CFSN0023/"}
CELSIUS = {"name": "degree Celsius", "symbol": "°C", "definition": "http://qudt.org/vocab/unit/DEG_C"}
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


@pytest.fixture
def writer(editor) -> dict:  # type: ignore[no-untyped-def]
    return editor.headers


def batch(client: TestClient, headers: dict, requests: list, status: int = 200) -> list:
    response = client.post("/sta/v1.1/$batch", json={"requests": requests}, headers=headers)
    assert response.status_code == status, response.text
    return response.json().get("responses", response.json())


def test_a_change_set_creates_and_references_new_entities(client: TestClient, writer: dict) -> None:
    answers = batch(client, writer, [
        {"id": "thing1", "atomicityGroup": "g1", "method": "post", "url": "Things",
         "body": {"name": "Lamppost 4", "description": "Smart lamppost, Camden High Street"}},
        {"id": "sensor1", "atomicityGroup": "g1", "method": "post", "url": "Sensors", "body": SENSOR},
        {"id": "ds1", "atomicityGroup": "g1", "method": "post", "url": "$thing1/Datastreams",
         "body": {"name": "Temperature", "description": "Air temperature at the lamppost", "unitOfMeasurement": CELSIUS,
                  "observationType": MEASUREMENT, "Sensor": {"@iot.id": "$sensor1"}, "ObservedProperty": PROPERTY}},
        {"id": "read", "method": "get", "url": "Things?$expand=Datastreams"},
    ])
    assert [a["status"] for a in answers] == [201, 201, 201, 200]
    assert answers[0]["headers"]["location"] == answers[0]["body"]["@iot.selfLink"]
    thing = answers[3]["body"]["value"][0]
    assert thing["name"] == "Lamppost 4" and thing["Datastreams"][0]["name"] == "Temperature"
    sensor = client.get(f"/sta/v1.1/Datastreams({answers[2]['body']['@iot.id']})/Sensor").json()
    assert sensor["@iot.id"] == answers[1]["body"]["@iot.id"]


def test_a_failing_group_leaves_nothing_and_later_requests_still_run(client: TestClient, writer: dict) -> None:
    answers = batch(client, writer, [
        {"id": "1", "atomicityGroup": "g1", "method": "post", "url": "Things", "body": {"name": "A", "description": "a"}},
        {"id": "2", "atomicityGroup": "g1", "method": "post", "url": "Things", "body": {"name": "B", "colour": "red"}},
        {"id": "3", "method": "post", "url": "Things", "body": {"name": "C", "description": "c"}},
        {"id": "4", "method": "patch", "url": "Things(999)", "body": {"name": "D"}, "dependsOn": ["g1"]},
    ])
    assert [a["status"] for a in answers] == [424, 400, 201, 424]
    assert "colour" in answers[1]["body"]["message"]
    assert [t["name"] for t in client.get("/sta/v1.1/Things").json()["value"]] == ["C"]


def test_update_and_delete_in_a_batch(client: TestClient, writer: dict) -> None:
    created = client.post("/sta/v1.1/Things", json={"name": "Old", "description": "x"}, headers=writer).json()
    answers = batch(client, writer, [
        {"id": "1", "method": "patch", "url": f"Things({created['@iot.id']})", "body": {"name": "New"}},
        {"id": "2", "method": "get", "url": f"/sta/v1.1/Things({created['@iot.id']})"},
        {"id": "3", "method": "delete", "url": f"Things({created['@iot.id']})"},
        {"id": "4", "method": "get", "url": f"Things({created['@iot.id']})"},
    ])
    assert [a["status"] for a in answers] == [200, 200, 200, 404]
    assert answers[1]["body"]["name"] == "New"


def test_batch_needs_credentials_and_a_well_formed_body(client: TestClient, writer: dict) -> None:
    r = client.post("/sta/v1.1/$batch", json={"requests": [{"id": "1", "method": "post", "url": "Things", "body": {}}]})
    assert r.status_code == 401 and r.json()["type"] == "error"
    r = client.post("/sta/v1.1/$batch", json={"orders": []}, headers=writer)
    assert r.status_code == 400 and "requests" in r.json()["message"]
    r = client.post("/sta/v1.1/$batch", json={"requests": [{"id": "1", "method": "fly", "url": "Things"}]}, headers=writer)
    assert r.status_code == 400 and "method" in r.json()["message"]
    assert client.get("/sta/v1.1/Things").json()["value"] == []
