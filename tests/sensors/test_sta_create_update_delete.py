"""SensorThings API v1.1, conformance class create-update-delete (A.2): POST, deep insert, PATCH,
PUT, JSON-Patch, DELETE with cascades, automatic HistoricalLocations and FeaturesOfInterest, the
last-value table, authentication, and the ``sta.changed`` events the MQTT bridge listens to."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from smartlondon.core import events
from smartlondon.core.models import AuditEvent
from smartlondon.core.db import Database
from smartlondon.sensors import service
from smartlondon.sensors.models import FeatureOfInterest, HistoricalLocation, Latest, Observation

ROOT = "http://testserver/sta/v1.1"
UG = {"name": "microgram per cubic metre", "symbol": "µg/m³", "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3"}
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
POINT = {"type": "Point", "coordinates": [-0.1546, 51.5225]}


def marylebone() -> dict:
    """A deep insert: a LAQN site with its Location and an NO2 Datastream (new Sensor and ObservedProperty)."""
    return {
        "name": "MY1", "description": "Westminster - Marylebone Road (kerbside)",
        "properties": {"siteType": "Kerbside"},
        "Locations": [{"name": "Marylebone Road", "description": "LAQN site MY1", "encodingType": "application/geo+json",
                       "location": POINT}],
        "Datastreams": [{
            "name": "NO2 at MY1", "description": "Hourly nitrogen dioxide", "unitOfMeasurement": UG,
            "observationType": MEASUREMENT,
            "Sensor": {"name": "Chemiluminescence", "description": "NOx analyser", "encodingType": "text/html",
                       "metadata": "https://www.londonair.org.uk/"},
            "ObservedProperty": {"name": "NO2", "description": "Nitrogen dioxide",
                                 "definition": "http://vocab.nerc.ac.uk/collection/P01/current/NDXXZZZZ/"},
        }],
    }


def post(client: TestClient, headers: dict, path: str, body, status: int = 201) -> dict:
    response = client.post(f"/sta/v1.1/{path}", json=body, headers=headers)
    assert response.status_code == status, response.text
    return response.json() if response.content else {}


@pytest.fixture
def writer(client: TestClient, editor) -> dict:  # type: ignore[no-untyped-def]
    return editor.headers


def test_deep_insert_creates_everything_and_answers_201_with_location(client: TestClient, writer: dict, db: Database) -> None:
    response = client.post("/sta/v1.1/Things", json=marylebone(), headers=writer)
    assert response.status_code == 201, response.text
    thing = response.json()
    assert response.headers["location"] == thing["@iot.selfLink"] == f"{ROOT}/Things({thing['@iot.id']})"
    assert thing["name"] == "MY1" and thing["properties"] == {"siteType": "Kerbside"}
    locations = client.get(f"/sta/v1.1/Things({thing['@iot.id']})/Locations").json()["value"]
    assert [loc["name"] for loc in locations] == ["Marylebone Road"]
    datastreams = client.get(f"/sta/v1.1/Things({thing['@iot.id']})/Datastreams").json()["value"]
    assert datastreams[0]["unitOfMeasurement"]["symbol"] == "µg/m³"
    sensor = client.get(f"/sta/v1.1/Datastreams({datastreams[0]['@iot.id']})/Sensor").json()
    assert sensor["name"] == "Chemiluminescence"
    # the standard: a Thing given Locations gets a HistoricalLocation, automatically, exactly one
    history = client.get(f"/sta/v1.1/Things({thing['@iot.id']})/HistoricalLocations").json()["value"]
    assert len(history) == 1
    hl_locs = client.get(f"/sta/v1.1/HistoricalLocations({history[0]['@iot.id']})/Locations").json()["value"]
    assert [loc["@iot.id"] for loc in hl_locs] == [locations[0]["@iot.id"]]


def test_observation_gets_a_generated_feature_of_interest_reused_per_location(client: TestClient, writer: dict,
                                                                             db: Database) -> None:
    thing = post(client, writer, "Things", marylebone())
    ds = client.get(f"/sta/v1.1/Things({thing['@iot.id']})/Datastreams").json()["value"][0]["@iot.id"]
    first = post(client, writer, f"Datastreams({ds})/Observations", {"phenomenonTime": "2023-01-01T00:00:00Z", "result": 41.2})
    second = post(client, writer, "Observations", {"phenomenonTime": "2023-01-01T01:00:00Z", "result": 39.0,
                                                   "Datastream": {"@iot.id": ds}})
    assert first["result"] == 41.2 and first["phenomenonTime"] == "2023-01-01T00:00:00Z"
    foi1 = client.get(f"/sta/v1.1/Observations({first['@iot.id']})/FeatureOfInterest").json()
    foi2 = client.get(f"/sta/v1.1/Observations({second['@iot.id']})/FeatureOfInterest").json()
    assert foi1["@iot.id"] == foi2["@iot.id"] and foi1["feature"] == POINT
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(FeatureOfInterest)) == 1
    # no phenomenonTime: the server's time is used
    now = post(client, writer, f"Datastreams({ds})/Observations", {"result": 12})
    assert now["phenomenonTime"].startswith("20")


def test_latest_table_only_moves_forward_and_is_recomputed_after_delete(client: TestClient, writer: dict,
                                                                       db: Database) -> None:
    thing = post(client, writer, "Things", marylebone())
    ds = client.get(f"/sta/v1.1/Things({thing['@iot.id']})/Datastreams").json()["value"][0]["@iot.id"]
    newer = post(client, writer, f"Datastreams({ds})/Observations", {"phenomenonTime": "2023-01-01T05:00:00Z", "result": 5})
    post(client, writer, f"Datastreams({ds})/Observations", {"phenomenonTime": "2023-01-01T03:00:00Z", "result": 3})
    with db.session() as s:
        assert s.get(Latest, ds).observation_id == newer["@iot.id"]
    stream = client.get(f"/sta/v1.1/Datastreams({ds})").json()
    assert stream["phenomenonTime"] == "2023-01-01T03:00:00Z/2023-01-01T05:00:00Z"
    assert client.delete(f"/sta/v1.1/Observations({newer['@iot.id']})", headers=writer).status_code == 200
    with db.session() as s:
        latest = s.get(Latest, ds)
        assert latest.result == 3
    assert client.get(f"/sta/v1.1/Datastreams({ds})").json()["phenomenonTime"] == "2023-01-01T03:00:00Z"


def test_patch_put_and_json_patch(client: TestClient, writer: dict) -> None:
    thing = post(client, writer, "Things", {"name": "Lamppost 17", "description": "Smart lamppost",
                                            "properties": {"borough": "Camden"}})
    url = f"/sta/v1.1/Things({thing['@iot.id']})"
    r = client.patch(url, json={"description": "Smart lamppost with air quality sensor"}, headers=writer)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Lamppost 17" and r.json()["description"].endswith("sensor")
    r = client.put(url, json={"name": "Lamppost 17A", "description": "Replaced"}, headers=writer)
    assert r.status_code == 200, r.text
    assert r.json()["properties"] == {}  # PUT replaces: what is not given is reset
    r = client.patch(url, content=b'[{"op": "add", "path": "/properties", "value": {"height_m": 8}}, '
                                   b'{"op": "replace", "path": "/name", "value": "LP17"}]',
                     headers={**writer, "Content-Type": "application/json-patch+json"})
    assert r.status_code == 200, r.text
    assert client.get(url).json()["name"] == "LP17" and client.get(url).json()["properties"] == {"height_m": 8}
    r = client.patch(url, content=b'[{"op": "test", "path": "/name", "value": "nope"}]',
                     headers={**writer, "Content-Type": "application/json-patch+json"})
    assert r.status_code == 400 and r.json()["type"] == "error"
    assert client.get(url).json()["name"] == "LP17"


def test_patching_locations_moves_the_thing_and_records_history(client: TestClient, writer: dict) -> None:
    thing = post(client, writer, "Things", marylebone())
    url = f"/sta/v1.1/Things({thing['@iot.id']})"
    new = post(client, writer, "Locations", {"name": "Depot", "description": "Storage", "encodingType": "application/geo+json",
                                             "location": {"type": "Point", "coordinates": [-0.2, 51.5]}})
    r = client.patch(url, json={"Locations": [{"@iot.id": new["@iot.id"]}]}, headers=writer)
    assert r.status_code == 200, r.text
    assert [l["@iot.id"] for l in client.get(f"{url}/Locations").json()["value"]] == [new["@iot.id"]]
    assert len(client.get(f"{url}/HistoricalLocations").json()["value"]) == 2


def test_delete_cascades_as_the_standard_says(client: TestClient, writer: dict, db: Database) -> None:
    thing = post(client, writer, "Things", marylebone())
    tid = thing["@iot.id"]
    ds = client.get(f"/sta/v1.1/Things({tid})/Datastreams").json()["value"][0]["@iot.id"]
    sensor = client.get(f"/sta/v1.1/Datastreams({ds})/Sensor").json()["@iot.id"]
    post(client, writer, f"Datastreams({ds})/Observations", {"phenomenonTime": "2023-01-01T00:00:00Z", "result": 1})
    # deleting the Sensor takes its Datastreams and their Observations; the Thing stays
    assert client.delete(f"/sta/v1.1/Sensors({sensor})", headers=writer).status_code == 200
    assert client.get(f"/sta/v1.1/Datastreams({ds})").status_code == 404
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Observation)) == 0
        assert s.scalar(select(func.count()).select_from(Latest)) == 0
    assert client.get(f"/sta/v1.1/Things({tid})").status_code == 200
    # deleting the Thing takes its HistoricalLocations, not its Locations
    assert client.delete(f"/sta/v1.1/Things({tid})", headers=writer).status_code == 200
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(HistoricalLocation)) == 0
    assert len(client.get("/sta/v1.1/Locations").json()["value"]) == 1
    assert client.delete(f"/sta/v1.1/Things({tid})", headers=writer).status_code == 404
    with db.session() as s:  # metadata changes are in the audit log, by whom
        logged = {(e.action, e.object_id, e.actor) for e in s.scalars(select(AuditEvent))}
    assert ("sta.delete", f"Things({tid})", "camden-editor") in logged
    assert ("sta.create", f"Things({tid})", "camden-editor") in logged


def test_writes_need_an_editor_token_bearer_or_basic(client: TestClient, make_account, db: Database) -> None:  # type: ignore[no-untyped-def]
    body = {"name": "x", "description": "y"}
    r = client.post("/sta/v1.1/Things", json=body)
    assert r.status_code == 401 and r.json() == {"code": 401, "type": "error", "message": r.json()["message"]}
    assert "Basic" in r.headers["www-authenticate"]
    reader = make_account("just-a-reader")
    r = client.post("/sta/v1.1/Things", json=body, headers=reader.headers)
    assert r.status_code == 403 and r.json()["type"] == "error"
    ed = make_account("sensor-editor", camden="editor")
    basic = base64.b64encode(f"sensor-editor:{ed.token}".encode()).decode()
    assert client.post("/sta/v1.1/Things", json=body, headers={"Authorization": f"Basic {basic}"}).status_code == 201
    wrong = base64.b64encode(f"someone-else:{ed.token}".encode()).decode()
    assert client.post("/sta/v1.1/Things", json=body, headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    assert len(client.get("/sta/v1.1/Things").json()["value"]) == 1


def test_create_from_path_contract_and_events(db: Database) -> None:
    seen: list[dict] = []

    def listener(session, **payload) -> None:  # type: ignore[no-untyped-def]
        seen.append(payload)

    events.subscribe("sta.changed")(listener)
    try:
        with db.session() as s:
            thing = service.create_from_path(s, "Things", marylebone(), ROOT)
        with db.session() as s:
            ds = s.scalar(select(func.min(Observation.id)))  # none yet
            assert ds is None
            stream = service.create_from_path(s, f"Things({thing['@iot.id']})/Datastreams", {
                "name": "PM10", "description": "d", "unitOfMeasurement": UG, "observationType": MEASUREMENT,
                "Sensor": {"@iot.id": 1}, "ObservedProperty": {"@iot.id": 1}}, ROOT)
            obs = service.create_from_path(s, f"Datastreams({stream['@iot.id']})/Observations",
                                           {"phenomenonTime": "2023-01-01T00:00:00Z", "result": 7.5}, ROOT)
            service.update_at_path(s, f"Observations({obs['@iot.id']})", {"result": 8.0}, ROOT)
        created = [e for e in seen if e["entity_set"] == "Observations" and e["op"] == "create"]
        assert created[0]["entity"]["result"] == 7.5 and created[0]["id"] == obs["@iot.id"]
        assert created[0]["links"]["Datastreams"] == stream["@iot.id"] and "FeaturesOfInterest" in created[0]["links"]
        updated = [e for e in seen if e["op"] == "update"]
        assert updated[0]["changed"] == ["result"] and updated[0]["entity"]["result"] == 8.0
        assert {e["entity_set"] for e in seen} >= {"Things", "Locations", "HistoricalLocations", "Datastreams",
                                                   "Sensors", "ObservedProperties", "FeaturesOfInterest"}
    finally:
        events.unsubscribe("sta.changed", listener)


def test_observations_through_a_feature_of_interest_and_their_updates(client: TestClient, writer: dict,
                                                                     db: Database) -> None:
    thing = post(client, writer, "Things", marylebone())
    ds = client.get(f"/sta/v1.1/Things({thing['@iot.id']})/Datastreams").json()["value"][0]["@iot.id"]
    foi = post(client, writer, "FeaturesOfInterest", {"name": "Kerb", "description": "Kerbside air",
                                                      "encodingType": "application/geo+json", "feature": POINT})
    obs = post(client, writer, f"FeaturesOfInterest({foi['@iot.id']})/Observations",
               {"phenomenonTime": "2023-01-02T00:00:00Z", "result": 50, "Datastream": {"@iot.id": ds}})
    assert client.get(f"/sta/v1.1/Observations({obs['@iot.id']})/FeatureOfInterest").json()["@iot.id"] == foi["@iot.id"]
    r = client.put(f"/sta/v1.1/Observations({obs['@iot.id']})", headers=writer,
                   json={"phenomenonTime": "2023-01-03T00:00:00Z", "result": 52.5, "parameters": {"flag": "ratified"}})
    assert r.status_code == 200, r.text
    assert r.json()["result"] == 52.5 and r.json()["resultTime"] is None
    with db.session() as s:
        assert s.get(Latest, ds).result == 52.5
    # deleting the FeatureOfInterest takes its Observations and empties the last-value row
    assert client.delete(f"/sta/v1.1/FeaturesOfInterest({foi['@iot.id']})", headers=writer).status_code == 200
    assert client.get(f"/sta/v1.1/Observations({obs['@iot.id']})").status_code == 404
    with db.session() as s:
        assert s.get(Latest, ds) is None
    assert client.get(f"/sta/v1.1/Datastreams({ds})").json()["phenomenonTime"] is None


def test_a_location_posted_for_a_thing_links_it_and_records_history(client: TestClient, writer: dict) -> None:
    thing = post(client, writer, "Things", {"name": "Lamppost 9", "description": "Camden"})
    loc = post(client, writer, f"Things({thing['@iot.id']})/Locations", {
        "name": "Camden High St", "description": "outside no. 12", "encodingType": "application/geo+json",
        "location": {"type": "Point", "coordinates": [-0.1426, 51.5390]}})
    assert [t["@iot.id"] for t in client.get(f"/sta/v1.1/Locations({loc['@iot.id']})/Things").json()["value"]] \
        == [thing["@iot.id"]]
    history = client.get(f"/sta/v1.1/Things({thing['@iot.id']})/HistoricalLocations").json()["value"]
    assert len(history) == 1
    other = post(client, writer, "Things", {"name": "Lamppost 10", "description": "Camden",
                                            "Locations": [{"@iot.id": loc["@iot.id"]}]})
    assert len(client.get(f"/sta/v1.1/Things({other['@iot.id']})/HistoricalLocations").json()["value"]) == 1


def test_links_are_added_set_and_removed_through_ref(client: TestClient, writer: dict) -> None:
    thing = post(client, writer, "Things", marylebone())
    tid = thing["@iot.id"]
    ds = client.get(f"/sta/v1.1/Things({tid})/Datastreams").json()["value"][0]["@iot.id"]
    depot = post(client, writer, "Locations", {"name": "Depot", "description": "Storage", "encodingType": "application/geo+json",
                                               "location": {"type": "Point", "coordinates": [-0.2, 51.5]}})
    r = client.post(f"/sta/v1.1/Things({tid})/Locations/$ref", json={"@iot.id": depot["@iot.id"]}, headers=writer)
    assert r.status_code == 204, r.text
    assert len(client.get(f"/sta/v1.1/Things({tid})/Locations").json()["value"]) == 2
    assert len(client.get(f"/sta/v1.1/Things({tid})/HistoricalLocations").json()["value"]) == 2
    r = client.delete(f"/sta/v1.1/Things({tid})/Locations({depot['@iot.id']})/$ref", headers=writer)
    assert r.status_code == 204, r.text
    assert len(client.get(f"/sta/v1.1/Things({tid})/Locations").json()["value"]) == 1
    assert client.get(f"/sta/v1.1/Locations({depot['@iot.id']})").status_code == 200  # only the link went
    sensor = post(client, writer, "Sensors", {"name": "Spare", "description": "spare analyser", "encodingType": "text/html",
                                              "metadata": "-"})
    r = client.put(f"/sta/v1.1/Datastreams({ds})/Sensor/$ref", headers=writer,
                   json={"@iot.selfLink": f"{ROOT}/Sensors({sensor['@iot.id']})"})
    assert r.status_code == 204, r.text
    assert client.get(f"/sta/v1.1/Datastreams({ds})/Sensor").json()["name"] == "Spare"
    r = client.put(f"/sta/v1.1/Datastreams({ds})/Sensor/$ref", headers=writer, json={"@iot.selfLink": f"{ROOT}/Things(1)"})
    assert r.status_code == 400 and "Sensors" in r.json()["message"]
    r = client.delete(f"/sta/v1.1/Datastreams({ds})/Sensor/$ref", headers=writer)
    assert r.status_code == 400
