"""SensorThings API v1.1, Sensing core: the data model, resource paths, $ref, $value and errors.

Organised like the standard's conformance classes A.1 (datamodel, resource-path-to-entities), on a
small real LAQN network (tests/sensors/sta_support.py).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from smartlondon.core.db import Database
from smartlondon.sensors.models import ENTITIES, Datastream, Latest, Observation, Sensor, Thing, entity_type
from smartlondon.sensors.sta.serialize import to_json
from tests.sensors.sta_support import Network, build_network

ROOT = "http://testserver/sta/v1.1"


@pytest.fixture
def network(db: Database) -> Network:
    return build_network(db)


def get(client: TestClient, url: str, status: int = 200) -> dict:
    response = client.get(url)
    assert response.status_code == status, response.text
    return response.json()


def test_landing_page_lists_every_entity_set_and_the_conformance_classes(client: TestClient) -> None:
    body = get(client, "/sta/v1.1")
    names = [item["name"] for item in body["value"]]
    assert names == ["Things", "Locations", "HistoricalLocations", "Datastreams", "MultiDatastreams", "Sensors",
                     "ObservedProperties", "Observations", "FeaturesOfInterest"]
    assert body["value"][0]["url"] == f"{ROOT}/Things"
    conformance = body["serverSettings"]["conformance"]
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel" in conformance
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities" in conformance
    assert get(client, "/sta/v1.1/") == body


def test_a_thing_has_its_properties_id_self_link_and_navigation_links(client: TestClient, network: Network) -> None:
    thing_id = network.things["MY1"]
    body = get(client, f"/sta/v1.1/Things({thing_id})")
    assert body["@iot.id"] == thing_id
    assert body["@iot.selfLink"] == f"{ROOT}/Things({thing_id})"
    assert body["name"] == "Westminster - Marylebone Road"
    assert body["properties"] == {"siteCode": "MY1", "siteType": "Kerbside", "borough": "Westminster"}
    for nav in ("Locations", "HistoricalLocations", "Datastreams", "MultiDatastreams"):
        assert body[f"{nav}@iot.navigationLink"] == f"{ROOT}/Things({thing_id})/{nav}"


def test_every_entity_type_is_served_with_the_standards_properties(client: TestClient, network: Network) -> None:
    expected = {
        "Things": {"name", "description", "properties"},
        "Locations": {"name", "description", "encodingType", "location", "properties"},
        "HistoricalLocations": {"time"},
        "Datastreams": {"name", "description", "unitOfMeasurement", "observationType", "observedArea",
                        "phenomenonTime", "resultTime", "properties"},
        "MultiDatastreams": {"name", "description", "unitOfMeasurements", "observationType",
                             "multiObservationDataTypes", "observedArea", "phenomenonTime", "resultTime", "properties"},
        "Sensors": {"name", "description", "encodingType", "metadata", "properties"},
        "ObservedProperties": {"name", "definition", "description", "properties"},
        "Observations": {"phenomenonTime", "resultTime", "result", "resultQuality", "validTime", "parameters"},
        "FeaturesOfInterest": {"name", "description", "encodingType", "feature", "properties"},
    }
    for name, properties in expected.items():
        body = get(client, f"/sta/v1.1/{name}")
        assert body["value"], name
        entity = body["value"][0]
        optional = {"properties", "parameters"}  # left out when empty, as FROST-Server does (clients expect an object)
        assert properties - optional <= set(entity), (name, set(entity))
        assert all(entity[key] is not None for key in optional & set(entity)), name
        links = {k.split("@")[0] for k in entity if k.endswith("@iot.navigationLink")}
        assert links == set(ENTITIES[name].navigation), name
        assert entity["@iot.selfLink"] == f"{ROOT}/{name}({entity['@iot.id']})"


def test_values_are_the_real_laqn_readings_with_utc_times(client: TestClient, network: Network) -> None:
    stream = network.datastreams["MY1/NO2"]
    body = get(client, f"/sta/v1.1/Datastreams({stream})")
    first, last = network.values["MY1/NO2"][0][0], network.values["MY1/NO2"][-1][0]
    assert body["phenomenonTime"] == f"{first:%Y-%m-%dT%H:%M:%S}Z/{last:%Y-%m-%dT%H:%M:%S}Z"
    assert body["unitOfMeasurement"]["symbol"] == "µg/m³"
    observations = get(client, f"/sta/v1.1/Datastreams({stream})/Observations")["value"]
    assert [o["result"] for o in observations] == [v for _, v in network.values["MY1/NO2"]]
    assert observations[0]["phenomenonTime"] == "2023-01-01T00:00:00Z"
    assert observations[0]["result"] == 22.6  # Marylebone Road, midnight 1 January 2023
    location = get(client, f"/sta/v1.1/Locations({network.locations['MY1']})")
    assert location["location"] == {"type": "Point", "coordinates": [-0.15459, 51.52254]}


def test_navigation_paths_reach_related_entities_and_collections(client: TestClient, network: Network) -> None:
    thing = network.things["BL0"]
    streams = get(client, f"/sta/v1.1/Things({thing})/Datastreams")["value"]
    assert {s["name"] for s in streams} == {"NO2 at Camden - Bloomsbury", "PM10 at Camden - Bloomsbury"}
    stream = network.datastreams["BL0/PM10"]
    assert get(client, f"/sta/v1.1/Datastreams({stream})/Thing")["@iot.id"] == thing
    locations = get(client, f"/sta/v1.1/Datastreams({stream})/Thing/Locations")["value"]
    assert [loc["@iot.id"] for loc in locations] == [network.locations["BL0"]]
    assert get(client, f"/sta/v1.1/Datastreams({stream})/ObservedProperty")["name"] == "PM10"
    assert get(client, f"/sta/v1.1/Datastreams({stream})/Sensor")["name"] == "TEOM FDMS PM10 monitor"
    things = get(client, f"/sta/v1.1/Locations({network.locations['BL0']})/Things")["value"]
    assert [t["@iot.id"] for t in things] == [thing]
    history = get(client, f"/sta/v1.1/Things({thing})/HistoricalLocations")["value"]
    assert history[0]["time"] == "2023-01-01T00:00:00Z"
    assert get(client, f"/sta/v1.1/HistoricalLocations({history[0]['@iot.id']})/Locations")["value"][0]["@iot.id"] \
        == network.locations["BL0"]
    assert get(client, f"/sta/v1.1/Things({thing})/Datastreams({stream})")["@iot.id"] == stream
    feature = get(client, f"/sta/v1.1/Observations(1)/FeatureOfInterest")
    assert feature["feature"]["type"] == "Point"
    assert len(get(client, f"/sta/v1.1/FeaturesOfInterest({feature['@iot.id']})/Observations?$top=1000")["value"]) \
        == len(network.values["MY1/NO2"])


def test_multidatastream_has_ordered_observed_properties_and_array_results(client: TestClient,
                                                                          network: Network) -> None:
    multi = network.multi_datastream
    body = get(client, f"/sta/v1.1/MultiDatastreams({multi})")
    assert body["observationType"].endswith("OM_ComplexObservation")
    assert len(body["unitOfMeasurements"]) == 2
    names = [p["name"] for p in get(client, f"/sta/v1.1/MultiDatastreams({multi})/ObservedProperties")["value"]]
    assert names == ["Nitrogen dioxide", "PM10"]
    results = [o["result"] for o in get(client, f"/sta/v1.1/MultiDatastreams({multi})/Observations")["value"]]
    assert results[0] == [8.5, 10.2]  # Bloomsbury NO2 and PM10, midnight 1 January 2023
    observation = get(client, f"/sta/v1.1/MultiDatastreams({multi})/Observations")["value"][0]
    assert get(client, f"/sta/v1.1/Observations({observation['@iot.id']})/MultiDatastream")["@iot.id"] == multi
    response = client.get(f"/sta/v1.1/Observations({observation['@iot.id']})/Datastream")
    assert response.status_code == 404
    assert "has no Datastream" in response.json()["message"]


def test_property_and_value_paths(client: TestClient, network: Network) -> None:
    thing = network.things["MY1"]
    assert get(client, f"/sta/v1.1/Things({thing})/name") == {"name": "Westminster - Marylebone Road"}
    response = client.get(f"/sta/v1.1/Things({thing})/name/$value")
    assert response.status_code == 200
    assert response.text == "Westminster - Marylebone Road"
    assert response.headers["content-type"].startswith("text/plain")
    assert client.get(f"/sta/v1.1/Things({thing})/properties/$value").json()["siteCode"] == "MY1"
    assert get(client, "/sta/v1.1/Observations(1)/phenomenonTime") == {"phenomenonTime": "2023-01-01T00:00:00Z"}
    assert client.get("/sta/v1.1/Observations(1)/validTime/$value").status_code == 204


def test_references_list_self_links_only(client: TestClient, network: Network) -> None:
    body = get(client, "/sta/v1.1/Things/$ref")
    assert body["value"] == [{"@iot.selfLink": f"{ROOT}/Things({i})"} for i in sorted(network.things.values())]
    thing = network.things["BL0"]
    refs = get(client, f"/sta/v1.1/Things({thing})/Datastreams/$ref?$count=true")
    assert refs["@iot.count"] == 2
    assert all(set(r) == {"@iot.selfLink"} for r in refs["value"])
    stream = network.datastreams["BL0/NO2"]
    assert get(client, f"/sta/v1.1/Datastreams({stream})/Thing/$ref") == {"@iot.selfLink": f"{ROOT}/Things({thing})"}


@pytest.mark.parametrize("url,status,words", [
    ("/sta/v1.1/Things(999)", 404, "No Thing with id 999"),
    ("/sta/v1.1/Robots", 404, "no entity set 'Robots'"),
    ("/sta/v1.1/Things(1)/Robots", 404, "no property or navigation property 'Robots'"),
    ("/sta/v1.1/Things(1)/Datastreams(999)", 404, "No Datastream with id 999"),
    ("/sta/v1.1/Things(abc)", 400, "not valid"),
    ("/sta/v1.1/Things(1", 400, "not valid"),
    ("/sta/v1.1/Things/Datastreams", 400, "'Things' is a collection"),
    ("/sta/v1.1/Things(1)/name/$value/x", 400, "Nothing may follow"),
    ("/sta/v1.1/Things(1)/$value", 400, "$value must follow a property"),
    ("/sta/v1.1/Datastreams(1)/Thing(1)", 400, "takes no id"),
])
def test_bad_paths_get_the_standard_error_body(client: TestClient, network: Network, url: str, status: int,
                                               words: str) -> None:
    response = client.get(url)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == status and body["type"] == "error"
    assert words in body["message"]


def test_a_reading_is_public_and_changes_nothing(client: TestClient, network: Network, db: Database) -> None:
    with db.session() as session:
        before = session.scalar(select(func.count()).select_from(Observation))
    get(client, "/sta/v1.1/Observations?$count=true&$top=5")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Observation)) == before


def test_deleting_cascades_as_the_standard_says(db: Database, network: Network) -> None:
    """The database enforces the cascades the write side relies on."""
    with db.session() as session:
        session.execute(delete(Thing).where(Thing.id == network.things["BL0"]))
    with db.session() as session:
        remaining = set(session.scalars(select(Datastream.id)))
        assert remaining == {network.datastreams["MY1/NO2"]}
        assert session.scalar(select(func.count()).select_from(Observation)) == len(network.values["MY1/NO2"])
        assert set(session.scalars(select(Latest.datastream_id))) == remaining
    with db.session() as session:
        session.execute(delete(Sensor).where(Sensor.id == network.sensors["NO2"]))
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Observation)) == 0


def test_to_json_is_what_the_api_serves(client: TestClient, network: Network, db: Database) -> None:
    thing = network.things["MY1"]
    with db.session() as session:
        data = to_json(session, session.get(Thing, thing), ROOT)
        selected = to_json(session, session.get(Thing, thing), ROOT, ["name", "Datastreams"])
    assert data == get(client, f"/sta/v1.1/Things({thing})")
    assert selected == {"name": "Westminster - Marylebone Road",
                        "Datastreams@iot.navigationLink": f"{ROOT}/Things({thing})/Datastreams"}
    assert entity_type("Thing") is entity_type("Things") is ENTITIES["Things"]
