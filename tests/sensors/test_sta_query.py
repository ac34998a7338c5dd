"""SensorThings API v1.1, request data (conformance class A.1 request-data): $select, $expand with
its own options, $orderby, $top, $skip, @iot.nextLink, $count, $filter, and the option errors.

Also the performance promises a user notices only at scale: expansions are batched (the number of
queries does not grow with the page), and the latest Observation of every Datastream comes from the
last-value table.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, insert

from smartlondon.core.db import Database
from smartlondon.sensors.models import Observation
from tests.sensors.sta_support import Network, build_network

ROOT = "http://testserver/sta/v1.1"


@pytest.fixture
def network(db: Database) -> Network:
    return build_network(db)


def get(client: TestClient, url: str, status: int = 200) -> dict:
    response = client.get(url)
    assert response.status_code == status, response.text
    return response.json()


def follow(client: TestClient, url: str) -> list[dict]:
    """Every item of a collection, following @iot.nextLink to the end."""
    items: list[dict] = []
    while url:
        body = get(client, url)
        items += body["value"]
        next_link = body.get("@iot.nextLink")
        url = next_link[len("http://testserver"):] if next_link else ""
    return items


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements run while the block runs."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_select_returns_only_the_named_properties(client: TestClient, network: Network) -> None:
    body = get(client, "/sta/v1.1/Things?$select=name,Datastreams")
    for thing in body["value"]:
        assert set(thing) == {"name", "Datastreams@iot.navigationLink"}
    with_id = get(client, "/sta/v1.1/Observations?$select=id,result&$top=1")["value"][0]
    assert set(with_id) == {"@iot.id", "@iot.selfLink", "result"}


def test_expand_nests_with_its_own_options(client: TestClient, network: Network) -> None:
    url = ("/sta/v1.1/Things?$orderby=name&$expand=Datastreams($select=name;$orderby=name desc;"
           "$expand=Observations($top=2;$orderby=phenomenonTime desc;$count=true;$select=result,phenomenonTime))")
    things = get(client, url)["value"]
    assert [t["name"] for t in things] == ["Camden - Bloomsbury", "Westminster - Marylebone Road"]
    bloomsbury = things[0]
    assert "Datastreams@iot.navigationLink" not in bloomsbury
    assert [d["name"] for d in bloomsbury["Datastreams"]] == ["PM10 at Camden - Bloomsbury",
                                                             "NO2 at Camden - Bloomsbury"]
    pm10 = bloomsbury["Datastreams"][0]
    assert set(pm10) == {"name", "Observations", "Observations@iot.count", "Observations@iot.nextLink"}
    expected = network.values["BL0/PM10"]
    assert pm10["Observations@iot.count"] == len(expected)
    assert [o["result"] for o in pm10["Observations"]] == [expected[-1][1], expected[-2][1]]
    more = follow(client, pm10["Observations@iot.nextLink"][len("http://testserver"):])
    assert len(more) == len(expected) - 2


def test_expand_paths_and_to_one_navigation(client: TestClient, network: Network) -> None:
    stream = get(client, f"/sta/v1.1/Datastreams({network.datastreams['MY1/NO2']})"
                         "?$expand=Thing/Locations,Sensor,ObservedProperty($select=name)")
    assert stream["Thing"]["name"] == "Westminster - Marylebone Road"
    assert stream["Thing"]["Locations"][0]["location"]["type"] == "Point"
    assert stream["Sensor"]["name"] == "Chemiluminescent NOx analyser"
    assert stream["ObservedProperty"] == {"name": "Nitrogen dioxide"}
    merged = get(client, "/sta/v1.1/Things?$expand=Datastreams/Sensor,Datastreams/ObservedProperty")["value"]
    for thing in merged:
        for datastream in thing["Datastreams"]:
            assert {"Sensor", "ObservedProperty"} <= set(datastream)
    observation = get(client, "/sta/v1.1/Observations(1)?$expand=Datastream($select=name),FeatureOfInterest")
    assert observation["Datastream"] == {"name": "NO2 at Westminster - Marylebone Road"}
    assert observation["FeatureOfInterest"]["name"] == "Westminster - Marylebone Road"
    multi = get(client, f"/sta/v1.1/MultiDatastreams({network.multi_datastream})?$expand=ObservedProperties")
    assert [p["name"] for p in multi["ObservedProperties"]] == ["Nitrogen dioxide", "PM10"]


def test_paging_with_top_skip_and_next_link_visits_every_entity_once(client: TestClient, network: Network) -> None:
    stream = network.datastreams["MY1/NO2"]
    first = get(client, f"/sta/v1.1/Datastreams({stream})/Observations?$top=10&$count=true")
    assert first["@iot.count"] == len(network.values["MY1/NO2"])
    assert first["@iot.nextLink"].startswith(f"{ROOT}/Datastreams({stream})/Observations?")
    assert "%24top=10" in first["@iot.nextLink"] or "$top=10" in first["@iot.nextLink"]
    items = follow(client, f"/sta/v1.1/Datastreams({stream})/Observations?$top=10")
    assert [o["result"] for o in items] == [v for _, v in network.values["MY1/NO2"]]
    assert len({o["@iot.id"] for o in items}) == len(items)
    skipped = get(client, f"/sta/v1.1/Datastreams({stream})/Observations?$skip=45")
    assert len(skipped["value"]) == len(network.values["MY1/NO2"]) - 45
    assert "@iot.nextLink" not in skipped
    only_count = get(client, f"/sta/v1.1/Datastreams({stream})/Observations?$top=0&$count=true")
    assert only_count == {"@iot.count": len(network.values["MY1/NO2"]), "value": []}


def test_next_links_continue_after_the_last_entity_in_the_default_order_and_skip_otherwise(
        client: TestClient, network: Network) -> None:
    stream = network.datastreams["BL0/NO2"]
    first = get(client, f"/sta/v1.1/Datastreams({stream})/Observations?$top=20&$select=result")
    assert "skiptoken=2023-01-01T19%3A00%3A00Z%7C" in first["@iot.nextLink"]  # after the 20th hour
    assert "$skip=" not in first["@iot.nextLink"]
    every = follow(client, "/sta/v1.1/Observations?$top=7&$select=id")
    assert len(every) == len({o["@iot.id"] for o in every}) == network.observation_count + 3
    ordered = get(client, "/sta/v1.1/Observations?$top=5&$orderby=result desc")
    assert "skip=5" in ordered["@iot.nextLink"] and "skiptoken" not in ordered["@iot.nextLink"]
    for query, words in (("$skiptoken=yesterday", "$skiptoken 'yesterday' is not valid"),
                         ("$skiptoken=5&$orderby=result", "cannot be combined with $orderby")):
        response = client.get(f"/sta/v1.1/Observations?{query}")
        assert response.status_code == 400 and words in response.json()["message"]
    response = client.get(f"/sta/v1.1/Datastreams({stream})/Observations?$skiptoken=5")
    assert response.status_code == 400 and "does not fit" in response.json()["message"]


def test_orderby_sorts_by_properties_and_navigation_paths(client: TestClient, network: Network) -> None:
    body = get(client, "/sta/v1.1/Observations?$orderby=result desc&$top=3&$filter=Datastream/id eq "
                       f"{network.datastreams['MY1/NO2']}")
    top3 = sorted((v for _, v in network.values["MY1/NO2"]), reverse=True)[:3]
    assert [o["result"] for o in body["value"]] == top3
    streams = get(client, "/sta/v1.1/Datastreams?$orderby=Thing/name desc,name")["value"]
    assert [s["name"] for s in streams] == ["NO2 at Westminster - Marylebone Road", "NO2 at Camden - Bloomsbury",
                                            "PM10 at Camden - Bloomsbury"]


def test_top_defaults_to_100_and_is_capped_at_10000(client: TestClient, network: Network, db: Database) -> None:
    start = datetime(2023, 2, 1, tzinfo=timezone.utc)
    stream, feature = network.datastreams["MY1/NO2"], network.features["MY1"]
    with db.engine.begin() as conn:
        conn.execute(insert(Observation), [
            {"datastream_id": stream, "feature_of_interest_id": feature, "result": i % 90, "result_number": i % 90,
             "phenomenon_time_start": start + timedelta(minutes=i)} for i in range(10_001)])
    assert len(get(client, "/sta/v1.1/Observations")["value"]) == 100
    capped = get(client, f"/sta/v1.1/Datastreams({stream})/Observations?$top=20000&$select=id")
    assert len(capped["value"]) == 10_000
    query = urlsplit(capped["@iot.nextLink"]).query
    assert "top=10000" in query and "skiptoken=" in query
    rest = get(client, capped["@iot.nextLink"][len("http://testserver"):])
    assert len(rest["value"]) == 10_001 + len(network.values["MY1/NO2"]) - 10_000
    assert "@iot.nextLink" not in rest
    assert {o["@iot.id"] for o in rest["value"]}.isdisjoint(o["@iot.id"] for o in capped["value"])


def test_count_counts_the_filtered_collection_not_the_page(client: TestClient, network: Network) -> None:
    over_40 = sum(1 for key in network.values for _, v in network.values[key] if v > 40)
    body = get(client, "/sta/v1.1/Observations?$filter=result gt 40&$count=true&$top=1")
    assert body["@iot.count"] == over_40
    assert len(body["value"]) == 1
    assert "@iot.count" not in get(client, "/sta/v1.1/Things")


def test_filter_selects_by_value_time_and_navigation(client: TestClient, network: Network) -> None:
    values = network.values["MY1/NO2"]
    expected = [v for t, v in values if v > 60]
    body = get(client, "/sta/v1.1/Observations?$top=1000&$filter=Datastream/Thing/properties/siteCode eq 'MY1' "
                       "and result gt 60")
    assert sorted(o["result"] for o in body["value"]) == sorted(expected)
    day2 = get(client, "/sta/v1.1/Observations?$top=1000&$count=true&$filter=phenomenonTime ge 2023-01-02T00:00:00Z"
                       " and Datastream/name eq 'NO2 at Westminster - Marylebone Road'")
    assert day2["@iot.count"] == sum(1 for t, _ in values if t.day == 2)
    things = get(client, "/sta/v1.1/Things?$filter=properties/siteType eq 'Urban Background'")["value"]
    assert [t["name"] for t in things] == ["Camden - Bloomsbury"]
    inside = get(client, "/sta/v1.1/Things?$expand=Datastreams($filter=ObservedProperty/name eq 'PM10')"
                         "&$orderby=name")["value"]
    assert [len(t["Datastreams"]) for t in inside] == [1, 0]


@pytest.mark.parametrize("query,status,words", [
    ("$filter=result gt", 400, "$filter is not valid"),
    ("$filter=colour eq 'red'", 400, "unknown property colour"),
    ("$filter=Datastreams/name eq 'x'", 400, "Datastreams"),
    ("$orderby=colour", 400, "colour"),
    ("$select=colour", 400, "Unknown property 'colour' in $select"),
    ("$expand=Robots", 400, "Unknown navigation property 'Robots' in $expand"),
    ("$expand=Datastreams($top=x)", 400, "$top must be a whole number"),
    ("$expand=Datastreams($top=1", 400, "Unbalanced"),
    ("$top=-1", 400, "$top must be a whole number"),
    ("$skip=ten", 400, "$skip must be a whole number"),
    ("$count=maybe", 400, "$count must be true or false"),
    ("$colour=red", 400, "Unknown query option '$colour'"),
    ("$top=1&$top=2", 400, "more than once"),
    ("$search=air", 501, "$search is not supported"),
    ("$apply=aggregate(result with average as mean)", 501, "$apply is not supported"),
    ("$resultFormat=csv", 400, "Unknown $resultFormat"),
])
def test_bad_options_get_a_clear_error(client: TestClient, network: Network, query: str, status: int,
                                       words: str) -> None:
    response = client.get(f"/sta/v1.1/Things?{query}")
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status and body["type"] == "error"
    assert words in body["message"]


def test_custom_query_parameters_are_ignored_and_entity_options_are_checked(client: TestClient,
                                                                           network: Network) -> None:
    assert get(client, "/sta/v1.1/Things?utm_source=newsletter")["value"]
    response = client.get(f"/sta/v1.1/Things({network.things['MY1']})?$top=1")
    assert response.status_code == 400
    assert "apply to collections" in response.json()["message"]


def test_latest_observation_of_every_datastream_comes_from_the_last_value_table(
        client: TestClient, network: Network, db: Database) -> None:
    with statements(db) as seen:
        body = get(client, "/sta/v1.1/Datastreams?$expand=Observations($top=1;$orderby=phenomenonTime desc)")
    latest = {d["name"]: d["Observations"][0]["result"] for d in body["value"]}
    assert latest == {"NO2 at Westminster - Marylebone Road": network.values["MY1/NO2"][-1][1],
                      "NO2 at Camden - Bloomsbury": network.values["BL0/NO2"][-1][1],
                      "PM10 at Camden - Bloomsbury": network.values["BL0/PM10"][-1][1]}
    assert body["value"][0]["Observations"][0]["phenomenonTime"] == "2023-01-02T23:00:00Z"
    reads = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 2  # the page, then the latest of all of them at once
    assert "sta_latest" in reads[1] and "row_number" not in reads[1].lower()


def test_expansion_costs_the_same_number_of_queries_for_one_entity_or_many(
        client: TestClient, network: Network, db: Database) -> None:
    url = ("/sta/v1.1/Things?$expand=Locations,Datastreams($expand=Sensor,ObservedProperty,"
           "Observations($top=3;$count=true))")
    with statements(db) as one:
        get(client, url + "&$top=1")
    with statements(db) as many:
        body = get(client, url)
    assert len(many) == len(one)
    assert sum(len(t["Datastreams"]) for t in body["value"]) == 3


def test_latest_values_asked_for_by_select_are_read_from_the_last_value_table_alone(
        client: TestClient, network: Network, db: Database) -> None:
    with statements(db) as seen:
        body = get(client, "/sta/v1.1/Datastreams?$select=name&$expand=Observations($top=1;"
                           "$orderby=phenomenonTime desc;$select=result,phenomenonTime)")
    first = body["value"][0]
    assert first == {"name": "NO2 at Westminster - Marylebone Road", "Observations": [
        {"result": network.values["MY1/NO2"][-1][1], "phenomenonTime": "2023-01-02T23:00:00Z"}],
        "Observations@iot.nextLink": "http://testserver/sta/v1.1/Datastreams(1)/Observations?$orderby="
                                     "phenomenonTime%20desc&$select=result%2CphenomenonTime&$top=1&$skip=1"}
    latest_query = [s for s in seen if "sta_latest" in s][0]
    assert "join sta_observation" not in latest_query.lower()  # only an EXISTS probe: are there more?


def test_each_expanded_parent_gets_its_own_filtered_page(client: TestClient, network: Network) -> None:
    body = get(client, "/sta/v1.1/Datastreams?$orderby=id&$expand=Observations($filter=result gt 20;"
                       "$skip=2;$top=3;$select=result)")
    by_name = {d["name"]: d["Observations"] for d in body["value"]}
    for key, stream in network.datastreams.items():
        name = next(d["name"] for d in body["value"] if d["@iot.id"] == stream)
        expected = [v for _, v in network.values[key] if v > 20][2:5]
        assert [o["result"] for o in by_name[name]] == expected, key


def test_spatial_filters_use_the_stored_geojson(client: TestClient, network: Network) -> None:
    camden = "POLYGON((-0.14 51.51, -0.11 51.51, -0.11 51.53, -0.14 51.53, -0.14 51.51))"  # around Bloomsbury
    inside = get(client, f"/sta/v1.1/Locations?$filter=st_within(location, geography'{camden}')")["value"]
    assert [loc["name"] for loc in inside] == ["Camden - Bloomsbury"]
    things = get(client, "/sta/v1.1/Things?$filter=geo.distance(Locations/location, "  # to-many: refused clearly
                         "geography'POINT(-0.15 51.52)') lt 0.01", status=400)
    assert "Locations" in things["message"]
    near = get(client, "/sta/v1.1/Observations?$count=true&$top=0&$filter=st_intersects(FeatureOfInterest/feature, "
                       f"geography'{camden}')")
    assert near["@iot.count"] == len(network.values["BL0/NO2"]) + len(network.values["BL0/PM10"]) + 3
