"""SensorThings API v1.1, dataArray (conformance class A.6, the read side): Observations with
``$resultFormat=dataArray``, one compact array per (Multi)Datastream.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from smartlondon.core.db import Database
from tests.sensors.sta_support import Network, build_network

ROOT = "http://testserver/sta/v1.1"


@pytest.fixture
def network(db: Database) -> Network:
    return build_network(db)


def get(client: TestClient, url: str, status: int = 200) -> dict:
    response = client.get(url)
    assert response.status_code == status, response.text
    return response.json()


def test_observations_of_a_datastream_as_a_data_array(client: TestClient, network: Network) -> None:
    stream = network.datastreams["MY1/NO2"]
    body = get(client, f"/sta/v1.1/Datastreams({stream})/Observations?$resultFormat=dataArray&$top=1000")
    assert len(body["value"]) == 1
    group = body["value"][0]
    assert group["Datastream@iot.navigationLink"] == f"{ROOT}/Datastreams({stream})"
    assert group["components"] == ["id", "phenomenonTime", "resultTime", "result"]
    values = network.values["MY1/NO2"]
    assert group["dataArray@iot.count"] == len(values)
    assert [row[3] for row in group["dataArray"]] == [v for _, v in values]
    assert group["dataArray"][0][1:] == ["2023-01-01T00:00:00Z", "2023-01-01T00:00:00Z", 22.6]


def test_select_chooses_the_components_and_their_order(client: TestClient, network: Network) -> None:
    stream = network.datastreams["BL0/PM10"]
    body = get(client, f"/sta/v1.1/Datastreams({stream})/Observations?$resultFormat=dataArray"
                       "&$select=result,phenomenonTime&$top=2")
    group = body["value"][0]
    assert group["components"] == ["result", "phenomenonTime"]
    assert group["dataArray"] == [[10.2, "2023-01-01T00:00:00Z"], [10.6, "2023-01-01T01:00:00Z"]]
    assert "$resultFormat=dataArray" in body["@iot.nextLink"]


def test_a_filtered_collection_is_grouped_by_datastream_and_multidatastream(client: TestClient,
                                                                           network: Network) -> None:
    body = get(client, "/sta/v1.1/Observations?$resultFormat=dataArray&$count=true&$top=1000"
                       "&$filter=phenomenonTime lt 2023-01-01T03:00:00Z")
    links = [next(v for k, v in g.items() if k.endswith("@iot.navigationLink")) for g in body["value"]]
    assert sorted(links) == sorted([f"{ROOT}/Datastreams({i})" for i in network.datastreams.values()]
                                   + [f"{ROOT}/MultiDatastreams({network.multi_datastream})"])
    assert body["@iot.count"] == sum(g["dataArray@iot.count"] for g in body["value"]) == 4 * 3
    multi = next(g for g in body["value"] if "MultiDatastream@iot.navigationLink" in g)
    assert multi["dataArray"][0][3] == [8.5, 10.2]


@pytest.mark.parametrize("url,words", [
    ("/sta/v1.1/Things?$resultFormat=dataArray", "only for Observations"),
    ("/sta/v1.1/Observations?$resultFormat=dataArray&$expand=Datastream", "cannot be combined"),
    ("/sta/v1.1/Observations?$resultFormat=dataArray&$select=Datastream", "cannot be a dataArray component"),
    ("/sta/v1.1/Observations(1)?$resultFormat=dataArray", "collection of Observations"),
])
def test_data_array_requests_that_cannot_be_answered_get_400(client: TestClient, network: Network, url: str,
                                                             words: str) -> None:
    response = client.get(url)
    assert response.status_code == 400
    assert words in response.json()["message"]
