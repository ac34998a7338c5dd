"""Extension: the latest Observation of many Datastreams (GET /sta/v1.1/ext/latest) from sta_latest."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from smartlondon.core.db import Database
from smartlondon.sensors import service
from tests.sensors.sta_support import Network, build_network

ROOT = "http://testserver/sta/v1.1"
URL = "/sta/v1.1/ext/latest"


@pytest.fixture
def network(db: Database) -> Network:
    return build_network(db)


def test_latest_of_every_datastream_is_its_last_real_value(client: TestClient, network: Network) -> None:
    response = client.get(URL)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "@iot.nextLink" not in body
    by_stream = {item["Datastream@iot.id"]: item for item in body["value"]}
    assert set(by_stream) == set(network.datastreams.values())
    for key, stream in network.datastreams.items():
        when, value = network.values[key][-1]
        item = by_stream[stream]
        assert item["Observation"]["result"] == pytest.approx(value)
        assert item["Observation"]["phenomenonTime"] == when.isoformat().replace("+00:00", "Z")
        assert item["Datastream@iot.navigationLink"] == f"{ROOT}/Datastreams({stream})"
        assert item["Observation"]["@iot.selfLink"] == f"{ROOT}/Observations({item['Observation']['@iot.id']})"
        assert item["unitOfMeasurement"]["symbol"] == "µg/m³"
    assert "https://smartlondon.example/spec/sta-ext/latest" in \
        client.get("/sta/v1.1").json()["serverSettings"]["conformance"]


def test_filters_by_datastreams_thing_and_observed_property(client: TestClient, network: Network) -> None:
    my1, pm10 = network.datastreams["MY1/NO2"], network.datastreams["BL0/PM10"]
    ids = [i["Datastream@iot.id"] for i in client.get(URL, params={"datastreams": f"{pm10},{my1}"}).json()["value"]]
    assert ids == sorted([my1, pm10])
    bl0 = [i["Datastream@iot.id"] for i in client.get(URL, params={"thing": network.things["BL0"]}).json()["value"]]
    assert sorted(bl0) == sorted([network.datastreams["BL0/NO2"], pm10])
    no2 = client.get(URL, params={"observedProperty": network.observed_properties["NO2"]}).json()["value"]
    assert sorted(i["Datastream@iot.id"] for i in no2) == sorted([my1, network.datastreams["BL0/NO2"]])
    assert client.get(URL, params={"thing": 9999}).json() == {"value": []}


def test_a_new_observation_through_the_service_becomes_the_latest(db: Database, client: TestClient,
                                                                 network: Network) -> None:
    stream = network.datastreams["MY1/NO2"]
    when = network.values["MY1/NO2"][-1][0] + timedelta(hours=1)
    with db.session() as session:
        service.create_from_path(session, f"Datastreams({stream})/Observations",
                                 {"phenomenonTime": when.isoformat(), "result": 77.5}, f"{ROOT}")
    item = client.get(URL, params={"datastreams": str(stream)}).json()["value"][0]
    assert item["Observation"]["result"] == 77.5
    assert item["Observation"]["phenomenonTime"] == when.isoformat().replace("+00:00", "Z")


def test_pages_with_top_and_skip(client: TestClient, network: Network) -> None:
    first = client.get(URL, params={"$top": "2"}).json()
    assert len(first["value"]) == 2
    assert first["@iot.nextLink"].endswith("$top=2&$skip=2")
    rest = client.get(URL, params={"$top": "2", "$skip": "2"}).json()
    assert len(rest["value"]) == 1 and "@iot.nextLink" not in rest


@pytest.mark.parametrize("params, message", [
    ({"datastreams": "1,,x"}, "is not a Datastream id"),
    ({"thing": "MY1"}, "is not an id"),
    ({"$top": "-1"}, "is not a whole number"),
    ({"$top": "20000"}, "at most 10000"),
    ({"sort": "name"}, "Unknown parameter sort"),
])
def test_bad_requests_are_400_with_a_message(client: TestClient, network: Network, params: dict, message: str) -> None:
    response = client.get(URL, params=params)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]


def test_fast_count_is_exact_for_small_tables_and_an_estimate_for_big_ones(db: Database, client: TestClient,
                                                                          network: Network) -> None:
    from sqlalchemy import text

    from smartlondon.sensors.counting import count_entities
    from smartlondon.sensors.models import ENTITIES

    body = client.get("/sta/v1.1/ext/count/Observations").json()
    assert body == {"@iot.count": network.observation_count + 3, "@iot.countEstimated": False}  # + 3 multi
    assert client.get("/sta/v1.1/ext/count/Things").json()["@iot.count"] == 2
    with db.engine.begin() as conn:
        conn.execute(text("ANALYZE sta_observation"))
    with db.session() as session:
        big = count_entities(session, ENTITIES["Observations"], threshold=10)
    assert big.estimated and big.value == network.observation_count + 3  # the statistics of a just-analysed table
    missing = client.get("/sta/v1.1/ext/count/Sensorz")
    assert missing.status_code == 404 and "no entity set 'Sensorz'" in missing.json()["message"]
    bad = client.get("/sta/v1.1/ext/count/Things", params={"$filter": "name eq 'x'"})
    assert bad.status_code == 400 and "takes no query options" in bad.json()["message"]


def test_the_same_latest_values_as_the_standard_expand(db: Database, client: TestClient, network: Network) -> None:
    stream = network.datastreams["MY1/NO2"]
    with db.session() as session:  # a fractional-second interval and a non-ASCII unit must come out the same
        service.create_from_path(session, f"Datastreams({stream})/Observations", {
            "phenomenonTime": "2023-01-03T00:00:00.250000Z/2023-01-03T01:00:00Z", "result": 41.5}, ROOT)
    items = client.get(URL).json()["value"]
    expanded = client.get("/sta/v1.1/Datastreams?$expand=Observations($top=1;$orderby=phenomenonTime desc)").json()
    by_stream = {d["@iot.id"]: d for d in expanded["value"]}
    assert len(items) == len(by_stream)
    for item in items:
        datastream = by_stream[item["Datastream@iot.id"]]
        [latest] = datastream["Observations"]
        assert item["Observation"] == {k: latest[k] for k in ("@iot.id", "@iot.selfLink", "phenomenonTime", "result")}
        assert item["Datastream@iot.navigationLink"] == datastream["@iot.selfLink"]
        assert (item["name"], item["unitOfMeasurement"]) == (datastream["name"], datastream["unitOfMeasurement"])
    mine = next(i for i in items if i["Datastream@iot.id"] == stream)
    assert mine["Observation"]["phenomenonTime"] == "2023-01-03T00:00:00.250000Z/2023-01-03T01:00:00Z"
    assert mine["unitOfMeasurement"]["symbol"] == "µg/m³"
