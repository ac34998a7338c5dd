"""The latest Observation through the standard's $expand, served from sta_latest with database-built JSON.

``Datastreams?$expand=Observations($top=1;$orderby=phenomenonTime desc)`` (and the same under
``Things``) takes a fast path; every answer must equal the general path's (the nested query over
``sta_observation`` serialized in Python), which these tests force by switching the fast path off.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient

from smartlondon.core.db import Database
from smartlondon.sensors import archive, service
from smartlondon.sensors.models import Datastream
from smartlondon.sensors.sta import query
from smartlondon.settings import Settings
from tests.sensors.sta_support import MEASUREMENT, UG_M3, Network, build_network

ROOT = "http://testserver/sta/v1.1"
LATEST = "Observations($top=1;$orderby=phenomenonTime desc)"


@pytest.fixture
def network(db: Database) -> Network:
    net = build_network(db)
    with db.session() as session:
        # an Observation with every optional property, a fractional-second interval time, as the latest
        service.create_from_path(session, f"Datastreams({net.datastreams['MY1/NO2']})/Observations", {
            "phenomenonTime": "2023-01-03T00:00:00.250000Z/2023-01-03T01:00:00Z", "result": 41.5,
            "resultTime": "2023-01-03T01:00:05Z", "resultQuality": {"qc": {"version": "1", "flags": []}},
            "validTime": "2023-01-03T00:00:00Z/2023-01-04T00:00:00Z", "parameters": {"método": "µ-analyser"}}, ROOT)
        # a Datastream with no Observation, no properties and no observed area
        session.add(Datastream(name="New sensor", description="Nothing yet", observation_type=MEASUREMENT,
                               unit_of_measurement=UG_M3, thing_id=net.things["MY1"],
                               sensor_id=net.sensors["NO2"], observed_property_id=net.observed_properties["NO2"]))
    return net


URLS = [
    f"/sta/v1.1/Datastreams?$expand={LATEST}",
    f"/sta/v1.1/Datastreams?$top=2&$count=true&$expand={LATEST}",
    f"/sta/v1.1/Datastreams?$select=id,name,phenomenonTime,Thing&$expand=Observations($select=result,"
    "phenomenonTime,FeatureOfInterest;$top=1;$orderby=phenomenonTime desc)",
    f"/sta/v1.1/Datastreams?$filter=startswith(name,'NO2')&$orderby=name desc&$expand={LATEST}",
    f"/sta/v1.1/Things?$expand=Datastreams/{LATEST}",
    f"/sta/v1.1/Things?$select=name&$expand=Datastreams($select=name,unitOfMeasurement;$expand={LATEST})",
    f"/sta/v1.1/Things(1)/Datastreams?$expand={LATEST}",
    f"/sta/v1.1/Datastreams?$expand={LATEST},Thing($select=name)",
    f"/sta/v1.1/Datastreams?$select=name&$top=1&$skip=1&$expand=Observations($top=1;$orderby=phenomenonTime desc;"
    "$select=id)",
    # $filter on the Datastreams with $select at both levels, $count with a page and its @iot.nextLink
    f"/sta/v1.1/Datastreams?$filter=name ne 'New sensor'&$select=id,name,unitOfMeasurement,phenomenonTime&$count=true"
    "&$top=2&$expand=Observations($select=id,phenomenonTime,result;$top=1;$orderby=phenomenonTime desc)",
    f"/sta/v1.1/Datastreams?$count=true&$top=1&$skip=2&$expand={LATEST}",
    f"/sta/v1.1/Datastreams?$orderby=name&$top=3&$expand=Observations($select=resultTime,validTime,parameters,"
    "resultQuality;$top=1;$orderby=phenomenonTime desc)",
]


def _ordered(text: str) -> Any:
    """The JSON document with every object as its list of (key, value) pairs: equal only in the same key order."""
    return json.loads(text, object_pairs_hook=list)


def _general(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(query, "_latest_only", lambda etype, options: None)
    monkeypatch.setattr(query, "_is_latest", lambda etype, nav, options: False)


@pytest.mark.parametrize("url", URLS)
def test_the_fast_path_answers_as_the_general_path(client: TestClient, network: Network, url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fast = client.get(url)
    assert fast.status_code == 200, fast.text
    assert fast.headers["content-type"].startswith("application/json")
    with monkeypatch.context() as patch:
        _general(patch)
        general = client.get(url)
    assert general.status_code == 200, general.text
    assert _ordered(fast.text) == _ordered(general.text)


def test_the_next_pages_answer_as_the_general_path(client: TestClient, network: Network,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"/sta/v1.1/Datastreams?$top=2&$count=true&$expand={LATEST}"
    fast, general = [], []
    for into, patched in ((fast, False), (general, True)):
        with monkeypatch.context() as patch:
            if patched:
                _general(patch)
            next_url: str | None = url
            while next_url:
                body = client.get(next_url).text
                into.append(_ordered(body))
                next_url = json.loads(body).get("@iot.nextLink")
    assert len(fast) == 2 and fast == general  # four Datastreams, two a page


def test_archived_observations_give_the_same_next_link(db: Database, client: TestClient, settings: Settings,
                                                       network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    # everything but each Datastream's latest Observation goes to Parquet: only the archive says there is more
    report = archive.archive(db, settings.archive_dir, timedelta(days=1),
                             now=datetime(2023, 2, 1, tzinfo=timezone.utc))
    assert report.rows > 0
    url = f"/sta/v1.1/Datastreams?$expand={LATEST}"
    fast = client.get(url)
    with monkeypatch.context() as patch:
        _general(patch)
        general = client.get(url)
    assert fast.status_code == general.status_code == 200, (fast.text, general.text)
    assert _ordered(fast.text) == _ordered(general.text)
    my1 = next(d for d in fast.json()["value"] if d["@iot.id"] == network.datastreams["MY1/NO2"])
    assert len(my1["Observations"]) == 1 and "Observations@iot.nextLink" in my1
    older = client.get(my1["Observations@iot.nextLink"]).json()["value"]
    assert len(older) == 1 and older[0]["phenomenonTime"] < my1["Observations"][0]["phenomenonTime"]


def test_the_latest_values_and_their_shape(client: TestClient, network: Network) -> None:
    body = client.get(f"/sta/v1.1/Datastreams?$expand={LATEST}").json()
    by_name = {d["name"]: d for d in body["value"]}
    assert by_name["New sensor"]["Observations"] == []
    assert "properties" not in by_name["New sensor"]
    my1 = next(d for d in body["value"] if d["@iot.id"] == network.datastreams["MY1/NO2"])
    [latest] = my1["Observations"]
    assert latest["phenomenonTime"] == "2023-01-03T00:00:00.250000Z/2023-01-03T01:00:00Z"
    assert latest["resultTime"] == "2023-01-03T01:00:05Z"
    assert latest["validTime"] == "2023-01-03T00:00:00Z/2023-01-04T00:00:00Z"
    assert latest["parameters"] == {"método": "µ-analyser"} and latest["result"] == 41.5
    assert latest["@iot.selfLink"] == f"{ROOT}/Observations({latest['@iot.id']})"
    assert latest["Datastream@iot.navigationLink"] == f"{ROOT}/Observations({latest['@iot.id']})/Datastream"
    assert my1["Thing@iot.navigationLink"] == f"{ROOT}/Datastreams({my1['@iot.id']})/Thing"
    assert "Observations@iot.navigationLink" not in my1
    bl0 = next(d for d in body["value"] if d["@iot.id"] == network.datastreams["BL0/PM10"])
    when, value = network.values["BL0/PM10"][-1]
    assert bl0["Observations"][0]["result"] == value
    assert bl0["Observations"][0]["phenomenonTime"] == when.isoformat().replace("+00:00", "Z")
    assert datetime.fromisoformat(bl0["Observations"][0]["phenomenonTime"]).tzinfo == timezone.utc


def test_other_nested_options_take_the_general_path(client: TestClient, network: Network,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = query.latest_json_text
    monkeypatch.setattr(query, "latest_json_text", lambda *a: calls.append(1) or real(*a))
    two = client.get("/sta/v1.1/Datastreams?$expand=Observations($top=2;$orderby=phenomenonTime desc)").json()
    assert calls == [] and all(len(d["Observations"]) <= 2 for d in two["value"])
    filtered = client.get("/sta/v1.1/Datastreams?$expand=Observations($top=1;$orderby=phenomenonTime desc;"
                          "$filter=result gt 1000)").json()
    assert calls == [] and all(d["Observations"] == [] for d in filtered["value"])
    client.get(f"/sta/v1.1/Datastreams?$expand={LATEST}")
    assert calls == [1]
