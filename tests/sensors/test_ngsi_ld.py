"""Extension: read-only NGSI-LD views (AirQualityObserved, Streetlight) of the sensor hub."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from smartlondon.core.db import Database
from smartlondon.sensors import service
from tests.sensors.sta_support import Network, build_network, laqn_sites

URL = "/ngsi-ld/v1/entities"
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"


@pytest.fixture
def network(db: Database) -> Network:
    return build_network(db)


def _z(when) -> str:
    return when.isoformat().replace("+00:00", "Z")


def test_air_quality_observed_has_the_latest_value_of_each_pollutant(client: TestClient, network: Network) -> None:
    response = client.get(URL, params={"type": "AirQualityObserved"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert CORE in response.headers["link"] and 'rel="http://www.w3.org/ns/json-ld#context"' in response.headers["link"]
    entities = {e["id"]: e for e in response.json()}
    bl0 = entities[f"urn:ngsi-ld:AirQualityObserved:Thing-{network.things['BL0']}"]
    assert bl0["type"] == "AirQualityObserved"
    assert bl0["name"] == {"type": "Property", "value": "Camden - Bloomsbury"}
    last_no2, last_pm10 = network.values["BL0/NO2"][-1], network.values["BL0/PM10"][-1]
    assert bl0["no2"]["type"] == "Property"
    assert bl0["no2"]["value"] == pytest.approx(last_no2[1])
    assert bl0["no2"]["unitCode"] == "GQ"
    assert bl0["no2"]["observedAt"] == _z(last_no2[0])
    assert bl0["pm10"]["value"] == pytest.approx(last_pm10[1])
    assert bl0["dateObserved"]["value"]["@value"] == _z(max(last_no2[0], last_pm10[0]))
    site = laqn_sites()["BL0"]
    assert bl0["location"] == {"type": "GeoProperty", "value": {
        "type": "Point", "coordinates": [float(site["@Longitude"]), float(site["@Latitude"])]}}
    my1 = entities[f"urn:ngsi-ld:AirQualityObserved:Thing-{network.things['MY1']}"]
    assert "pm10" not in my1 and my1["no2"]["value"] == pytest.approx(network.values["MY1/NO2"][-1][1])


def test_one_entity_by_id_and_as_json_ld(client: TestClient, network: Network) -> None:
    entity_id = f"urn:ngsi-ld:AirQualityObserved:Thing-{network.things['MY1']}"
    response = client.get(f"{URL}/{entity_id}", headers={"Accept": "application/ld+json"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/ld+json")
    body = response.json()
    assert body["id"] == entity_id and body["@context"] == CORE


def test_streetlights_are_things_of_that_kind(db: Database, client: TestClient, network: Network) -> None:
    with db.session() as session:
        created = service.create_from_path(session, "Things", {
            "name": "Lamppost EUS-014", "description": "Smart lamppost on Euston Road",
            "properties": {"kind": "streetlight", "status": "ok", "powerState": "on"},
            "Locations": [{"name": "Euston Road", "description": "Lamppost position",
                           "encodingType": "application/geo+json",
                           "location": {"type": "Point", "coordinates": [-0.1337, 51.5272]}}]},
            "http://testserver/sta/v1.1")
    body = client.get(URL, params={"type": "Streetlight"}).json()
    assert [e["id"] for e in body] == [f"urn:ngsi-ld:Streetlight:Thing-{created['@iot.id']}"]
    light = body[0]
    assert light["status"] == {"type": "Property", "value": "ok"}
    assert light["powerState"] == {"type": "Property", "value": "on"}
    assert light["location"]["value"]["coordinates"] == [-0.1337, 51.5272]
    # an air quality site is not a streetlight
    missing = client.get(f"{URL}/urn:ngsi-ld:Streetlight:Thing-{network.things['MY1']}")
    assert missing.status_code == 404
    assert missing.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"


def test_paging_with_limit_and_offset_and_an_unknown_type_is_empty(client: TestClient, network: Network) -> None:
    everything = client.get(URL, params={"type": "AirQualityObserved"}).json()
    assert len(everything) == 2
    assert client.get(URL, params={"type": "WeatherObserved"}).json() == []
    both = client.get(URL, params={"type": "AirQualityObserved,Streetlight", "count": "true"})
    assert both.json() == everything and both.headers["NGSILD-Results-Count"] == "2"
    assert client.get(URL, params={"type": "AirQualityObserved", "limit": "1", "offset": "1"}).json() == everything[1:]


@pytest.mark.parametrize("url, status, kind, message", [
    (URL, 400, "BadRequestData", "type (AirQualityObserved or Streetlight) or id is required"),
    (URL + "?type=Streetlight&limit=5000", 400, "BadRequestData", "limit must be"),
    (URL + "/not-a-uri", 400, "BadRequestData", "is not an entity id"),
    (URL + "/urn:ngsi-ld:AirQualityObserved:Thing-9999", 404, "ResourceNotFound", "There is no entity"),
    (URL + "/urn:ngsi-ld:Vehicle:Thing-1", 404, "ResourceNotFound", "There is no entity"),
])
def test_bad_requests_get_ngsi_ld_errors(client: TestClient, network: Network, url: str, status: int, kind: str,
                                         message: str) -> None:
    response = client.get(url)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == f"https://uri.etsi.org/ngsi-ld/errors/{kind}"
    assert message in body["detail"]


def test_pick_entities_by_id_and_keep_only_some_attributes(client: TestClient, network: Network) -> None:
    my1 = f"urn:ngsi-ld:AirQualityObserved:Thing-{network.things['MY1']}"
    body = client.get(URL, params={"id": f"{my1},urn:ngsi-ld:AirQualityObserved:Thing-9999",
                                   "attrs": "no2,dateObserved"}).json()
    assert [e["id"] for e in body] == [my1]
    assert set(body[0]) == {"id", "type", "no2", "dateObserved"}
    assert client.get(URL, params={"id": my1, "type": "Streetlight"}).json() == []
    bad = client.get(URL, params={"id": "not a uri"})
    assert bad.status_code == 400 and "is not an entity id" in bad.json()["detail"]


def test_key_values_gives_the_simplified_form(client: TestClient, network: Network) -> None:
    my1 = f"urn:ngsi-ld:AirQualityObserved:Thing-{network.things['MY1']}"
    body = client.get(f"{URL}/{my1}", params={"options": "keyValues"}).json()
    when, value = network.values["MY1/NO2"][-1]
    assert body["no2"] == pytest.approx(value)
    assert body["dateObserved"] == _z(when)
    assert body["location"]["type"] == "Point"
    assert body["name"] == "Westminster - Marylebone Road"
    bad = client.get(URL, params={"type": "Streetlight", "options": "sysAttrs"})
    assert bad.status_code == 400 and "options sysAttrs not supported" in bad.json()["detail"]
