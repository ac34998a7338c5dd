"""Extension: aggregates per interval (GET /sta/v1.1/ext/aggregates) on real LAQN hourly values."""

from __future__ import annotations

from datetime import datetime, timezone
from statistics import mean

import pytest
from fastapi.testclient import TestClient

from smartlondon.core.db import Database
from tests.sensors.sta_support import Network, build_network

ROOT = "http://testserver/sta/v1.1"
URL = "/sta/v1.1/ext/aggregates"


@pytest.fixture
def network(db: Database) -> Network:
    return build_network(db)


def _day(values: list[tuple[datetime, float]], day: int) -> list[float]:
    return [v for t, v in values if t.day == day]


def test_daily_aggregates_of_two_datastreams_match_the_real_values(client: TestClient, network: Network) -> None:
    my1, bl0 = network.datastreams["MY1/NO2"], network.datastreams["BL0/NO2"]
    response = client.get(URL, params={"datastreams": f"{my1},{bl0}", "interval": "day",
                                       "from": "2023-01-01T00:00:00Z", "to": "2023-01-03T00:00:00Z"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["functions"] == ["avg", "min", "max", "sum", "count"]
    assert body["intervalSeconds"] == 86400
    assert "https://smartlondon.example/spec/sta-ext/aggregates" in \
        client.get("/sta/v1.1").json()["serverSettings"]["conformance"]
    by_stream = {item["Datastream@iot.id"]: item for item in body["value"]}
    assert list(by_stream) == [my1, bl0]
    assert by_stream[my1]["Datastream@iot.navigationLink"] == f"{ROOT}/Datastreams({my1})"
    assert by_stream[my1]["unitOfMeasurement"]["symbol"] == "µg/m³"
    for key, stream in (("MY1/NO2", my1), ("BL0/NO2", bl0)):
        days = by_stream[stream]["aggregates"]
        assert [d["phenomenonTime"] for d in days] == ["2023-01-01T00:00:00Z/2023-01-02T00:00:00Z",
                                                       "2023-01-02T00:00:00Z/2023-01-03T00:00:00Z"]
        for entry, day in zip(days, (1, 2)):
            real = _day(network.values[key], day)
            assert entry["count"] == len(real)
            assert entry["avg"] == pytest.approx(mean(real))
            assert entry["min"] == pytest.approx(min(real))
            assert entry["max"] == pytest.approx(max(real))
            assert entry["sum"] == pytest.approx(sum(real))


def test_custom_interval_and_chosen_functions(client: TestClient, network: Network) -> None:
    stream = network.datastreams["MY1/NO2"]
    body = client.get(URL, params={"datastreams": str(stream), "interval": "PT6H", "functions": "max,count",
                                   "from": "2023-01-01T00:00:00Z", "to": "2023-01-01T12:00:00Z"}).json()
    buckets = body["value"][0]["aggregates"]
    assert [b["phenomenonTime"] for b in buckets] == ["2023-01-01T00:00:00Z/2023-01-01T06:00:00Z",
                                                      "2023-01-01T06:00:00Z/2023-01-01T12:00:00Z"]
    assert set(buckets[0]) == {"phenomenonTime", "max", "count"}
    first = [v for t, v in network.values["MY1/NO2"] if t < datetime(2023, 1, 1, 6, tzinfo=timezone.utc)]
    assert buckets[0]["max"] == pytest.approx(max(first))
    assert buckets[0]["count"] == len(first)


def test_hourly_buckets_hold_one_value_each_and_without_a_range_cover_the_whole_stream(
        client: TestClient, network: Network) -> None:
    stream = network.datastreams["BL0/PM10"]
    body = client.get(URL, params={"datastreams": str(stream), "interval": "PT1H"}).json()
    buckets = body["value"][0]["aggregates"]
    real = network.values["BL0/PM10"]
    assert len(buckets) == len(real)
    assert all(b["count"] == 1 for b in buckets)
    assert [b["avg"] for b in buckets] == pytest.approx([v for _, v in real])
    assert body["from"] is None and body["to"] is None


@pytest.mark.parametrize("params, message", [
    ({"interval": "hour"}, "datastreams is required"),
    ({"datastreams": "1,x", "interval": "hour"}, "'x' is not a Datastream id"),
    ({"datastreams": "1"}, "interval is required"),
    ({"datastreams": "1", "interval": "P1M"}, "not understood"),
    ({"datastreams": "1", "interval": "PT0S"}, "longer than zero"),
    ({"datastreams": "1", "interval": "fortnight"}, "not understood"),
    ({"datastreams": "1", "interval": "hour", "from": "yesterday"}, "is not an ISO 8601 time"),
    ({"datastreams": "1", "interval": "hour", "from": "2023-01-02T00:00:00Z", "to": "2023-01-01T00:00:00Z"},
     "to must be later than from"),
    ({"datastreams": "1", "interval": "hour", "functions": "median"}, "median not supported"),
    ({"datastreams": "1", "interval": "PT1S", "from": "2020-01-01T00:00:00Z", "to": "2023-01-01T00:00:00Z"},
     "at most 100,000"),
    ({"datastreams": "1", "interval": "hour", "bucket": "x"}, "Unknown parameter bucket"),
    ({"datastreams": ",".join(str(i) for i in range(1, 502)), "interval": "day"}, "At most 500 Datastreams"),
    ({"datastreams": "1", "interval": "hour", "qc": "clean"}, "qc='clean' is not understood"),
])
def test_bad_requests_are_400_with_a_message(client: TestClient, network: Network, params: dict, message: str) -> None:
    response = client.get(URL, params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 400 and body["type"] == "error"
    assert message in body["message"]


def test_a_missing_datastream_is_404(client: TestClient, network: Network) -> None:
    response = client.get(URL, params={"datastreams": f"{network.datastreams['MY1/NO2']},9999", "interval": "day"})
    assert response.status_code == 404
    assert "9999" in response.json()["message"]


def test_values_flagged_by_quality_control_can_be_left_out(db: Database, client: TestClient,
                                                           network: Network) -> None:
    from sqlalchemy import select

    from smartlondon.sensors.models import Observation
    from smartlondon.sensors.qc import run_qc

    stream = network.datastreams["MY1/NO2"]
    real = network.values["MY1/NO2"]
    with db.session() as session:
        spike = session.scalars(select(Observation).where(Observation.datastream_id == stream)
                                .order_by(Observation.phenomenon_time_start).offset(5).limit(1)).one()
        spike.result = spike.result_number = real[5][1] + 500  # an analyser fault in hour 5
    with db.session() as session:
        run_qc(session, stream)
    params = {"datastreams": str(stream), "interval": "day", "from": "2023-01-01T00:00:00Z",
              "to": "2023-01-02T00:00:00Z", "functions": "max,count"}
    everything = client.get(URL, params=params).json()["value"][0]["aggregates"][0]
    clean = client.get(URL, params={**params, "qc": "unflagged"}).json()
    day = [v for t, v in real if t.day == 1]
    assert everything["max"] == pytest.approx(real[5][1] + 500) and everything["count"] == len(day)
    assert clean["qc"] == "unflagged"
    kept = clean["value"][0]["aggregates"][0]
    assert kept["count"] == len(day) - 1
    assert kept["max"] == pytest.approx(max(v for i, v in enumerate(day) if i != 5))
    bad = client.get(URL, params={**params, "qc": "clean"})
    assert bad.status_code == 400 and "qc='clean' is not understood" in bad.json()["message"]
