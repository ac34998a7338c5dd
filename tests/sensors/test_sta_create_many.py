"""Creating many Observations at once (``service.create_many_from_path``, what the MQTT bridge uses):
each item gets what ``create_from_path`` would give it, a refused item writes nothing and does not
stop the others, per-Datastream arrival order is kept, FeaturesOfInterest are generated once per
Location, and ``sta_latest`` moves to the newest Observation.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from smartlondon.core.db import Database
from smartlondon.core.errors import BadRequest, NotFound
from smartlondon.sensors import service
from smartlondon.sensors.models import FeatureOfInterest, Latest, Observation
from tests.sensors.sta_support import Network, build_network

ROOT = "http://testserver/sta/v1.1"


@pytest.fixture
def network(db: Database) -> Network:
    return build_network(db)


def create_many(db: Database, items: list[tuple[str, Any]]) -> list[Any]:
    with db.session() as session:
        return service.create_many_from_path(session, items, ROOT)


def single_error(db: Database, path: str, payload: Any) -> Exception:
    """What create_from_path says about one item (rolled back)."""
    session = db.sessions()
    try:
        service.create_from_path(session, path, payload, ROOT)
    except (BadRequest, NotFound) as exc:
        return exc
    finally:
        session.rollback()
        session.close()
    raise AssertionError(f"{path} {payload} was accepted")


def make_thing(db: Database, payload: dict) -> dict:
    with db.session() as session:
        return service.create_from_path(session, "Things", payload, ROOT)


def count(db: Database, model: Any, *where: Any) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)))


def test_a_mixed_batch_stores_the_good_items_and_refuses_the_bad_ones_as_create_from_path_does(
        db: Database, client: TestClient, network: Network) -> None:
    my1 = network.datastreams["MY1/NO2"]
    bl0 = network.datastreams["BL0/PM10"]
    before = count(db, Observation)
    bad = [
        ("Datastreams(999999)/Observations", {"phenomenonTime": "2023-02-01T00:00:00Z", "result": 1}),
        (f"Datastreams({my1})/Observations", {"phenomenonTime": "2023-02-01T01:00:00Z", "result": "high"}),
        ("Observations", {"result": 3, "Datastream": {"@iot.id": 999999}}),
        (f"Datastreams({my1})/Observations", {"result": 4, "colour": "red"}),
        (f"Datastreams({my1})/Observations", {"phenomenonTime": "yesterday", "result": 5}),
        ("Observations", {"result": 6}),
        (f"Datastreams({my1})/Observations", {"result": 7, "FeatureOfInterest": {"@iot.id": 999999}}),
        ("FeaturesOfInterest(999999)/Observations", {"result": 8, "Datastream": {"@iot.id": my1}}),
        ("Nonsense(1)/Observations", {"result": 9}),
    ]
    good = [
        (f"Datastreams({my1})/Observations", {"phenomenonTime": "2023-02-01T02:00:00Z", "result": 41.5}),
        ("Observations", {"phenomenonTime": "2023-02-01T02:00:00Z", "result": 17.0,
                          "Datastream": {"@iot.id": bl0}}),
        (f"FeaturesOfInterest({network.features['MY1']})/Observations",
         {"phenomenonTime": "2023-02-01T03:00:00Z", "result": 43.0, "Datastream": {"@iot.id": my1}}),
    ]
    items = [bad[0], good[0], bad[1], bad[2], good[1], *bad[3:], good[2]]
    expected = {i: single_error(db, *item) for i, item in enumerate(items) if item in bad}

    results = create_many(db, items)

    assert len(results) == len(items)
    for i, result in enumerate(results):
        if i in expected:
            assert isinstance(result, type(expected[i])), (items[i], result)
            assert str(result) == str(expected[i])
        else:
            assert isinstance(result, dict), (items[i], result)
    assert isinstance(results[0], NotFound) and "999999" in str(results[0])
    assert "must be a number" in str(results[2])
    assert "colour" in str(results[5])
    assert count(db, Observation) == before + len(good)
    created = [r for r in results if isinstance(r, dict)]
    assert [r["result"] for r in created] == [41.5, 17.0, 43.0]
    for entity in created:  # what came back is what a GET shows
        shown = client.get(f"/sta/v1.1/Observations({entity['@iot.id']})").json()
        assert entity["@iot.selfLink"] == shown["@iot.selfLink"]
        assert entity["phenomenonTime"] == shown["phenomenonTime"]
        assert entity["result"] == shown["result"]
    foi = client.get(f"/sta/v1.1/Observations({created[2]['@iot.id']})/FeatureOfInterest").json()
    assert foi["@iot.id"] == network.features["MY1"]


def test_observations_of_one_datastream_keep_their_arrival_order(db: Database, client: TestClient,
                                                                  network: Network) -> None:
    my1, bl0 = network.datastreams["MY1/NO2"], network.datastreams["BL0/NO2"]
    items: list[tuple[str, Any]] = []
    for i in range(90):  # more than service._COPY_FROM: PostgreSQL takes the COPY path
        stream = my1 if i % 3 else bl0
        items.append((f"Datastreams({stream})/Observations",
                      {"phenomenonTime": "2023-03-01T00:00:00Z", "result": float(i)}))
    results = create_many(db, items)
    ids = [r["@iot.id"] for r in results]
    assert ids == sorted(ids)
    body = client.get(f"/sta/v1.1/Datastreams({my1})/Observations?$filter=phenomenonTime eq 2023-03-01T00:00:00Z"
                      "&$orderby=id&$top=100").json()
    assert [o["result"] for o in body["value"]] == [float(i) for i in range(90) if i % 3]


def test_features_of_interest_are_generated_once_per_location(db: Database, client: TestClient,
                                                               network: Network) -> None:
    thing = make_thing(db, {
        "name": "Lamppost 17, Euston Road", "description": "A smart lamppost",
        "Locations": [{"name": "Euston Road lamppost 17", "description": "Kerbside",
                       "encodingType": "application/geo+json",
                       "location": {"type": "Point", "coordinates": [-0.1337, 51.5282]}}],
        "Datastreams": [{"name": "PM2.5 at lamppost 17", "description": "Low-cost PM2.5",
                         "unitOfMeasurement": {"name": "microgram per cubic metre", "symbol": "µg/m³",
                                               "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3"},
                         "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
                         "Sensor": {"@iot.id": network.sensors["PM10"]},
                         "ObservedProperty": {"@iot.id": network.observed_properties["PM10"]}}]})
    stream = client.get(thing["Datastreams@iot.navigationLink"]).json()["value"][0]["@iot.id"]
    bare = make_thing(db, {
        "name": "Counter without a place", "description": "Not yet installed",
        "Datastreams": [{"name": "Count", "description": "People",
                         "unitOfMeasurement": {"name": "count", "symbol": "", "definition": ""},
                         "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
                         "Sensor": {"@iot.id": network.sensors["PM10"]},
                         "ObservedProperty": {"@iot.id": network.observed_properties["PM10"]}}]})
    lost = client.get(bare["Datastreams@iot.navigationLink"]).json()["value"][0]["@iot.id"]
    fois = count(db, FeatureOfInterest)
    items = [(f"Datastreams({stream})/Observations", {"phenomenonTime": f"2023-03-01T0{h}:00:00Z", "result": 5.0 + h})
             for h in range(3)]
    items.insert(1, (f"Datastreams({lost})/Observations", {"result": 12.0}))
    results = create_many(db, items)
    assert isinstance(results[1], BadRequest) and "has no Location" in str(results[1])
    assert count(db, FeatureOfInterest) == fois + 1
    generated = {client.get(f"/sta/v1.1/Observations({r['@iot.id']})/FeatureOfInterest").json()["@iot.id"]
                 for r in results if isinstance(r, dict)}
    assert len(generated) == 1
    foi = client.get(f"/sta/v1.1/FeaturesOfInterest({generated.pop()})").json()
    assert foi["name"] == "Euston Road lamppost 17"
    assert foi["feature"]["coordinates"] == [-0.1337, 51.5282]
    assert count(db, Observation, Observation.datastream_id == lost) == 0


def test_sta_latest_moves_to_the_newest_observation_once_per_datastream(db: Database, network: Network) -> None:
    my1 = network.datastreams["MY1/NO2"]
    items = [(f"Datastreams({my1})/Observations", {"phenomenonTime": t, "result": v})
             for t, v in (("2023-04-02T00:00:00Z", 2.0), ("2023-04-03T00:00:00Z", 3.0), ("2023-04-01T00:00:00Z", 1.0),
                          ("2022-01-01T00:00:00Z", 0.5))]
    bl0 = network.datastreams["BL0/NO2"]
    items += [(f"Datastreams({bl0})/Observations", {"phenomenonTime": t, "result": v})
              for t, v in (("2023-04-05T00:00:00Z", 50.0), ("2023-04-04T00:00:00Z", 40.0))]
    results = create_many(db, items)
    with db.session() as session:
        latest = session.get(Latest, my1)
        assert latest is not None
        assert latest.observation_id == results[1]["@iot.id"]
        assert latest.result == 3.0
        assert session.get(Latest, bl0).observation_id == results[4]["@iot.id"]
    # an older batch does not move them back, a newer one moves only its own Datastream
    create_many(db, [(f"Datastreams({my1})/Observations", {"phenomenonTime": "2023-01-05T00:00:00Z", "result": 9.0}),
                     (f"Datastreams({bl0})/Observations", {"phenomenonTime": "2023-01-05T00:00:00Z", "result": 9.0}),
                     (f"Datastreams({bl0})/Observations", {"phenomenonTime": "2023-06-01T00:00:00Z", "result": 60.0})])
    with db.session() as session:
        assert session.get(Latest, my1).result == 3.0
        assert session.get(Latest, bl0).result == 60.0


def test_nested_new_entities_take_the_general_path_and_a_refused_one_leaves_nothing(
        db: Database, client: TestClient, network: Network) -> None:
    my1 = network.datastreams["MY1/NO2"]
    place = {"name": "Marylebone Road kerb", "description": "The kerb", "encodingType": "application/geo+json",
             "feature": {"type": "Point", "coordinates": [-0.1546, 51.5225]}}
    broken = dict(place, name="Broken kerb")
    items = [
        (f"Datastreams({my1})/Observations", {"phenomenonTime": "2023-05-01T00:00:00Z", "result": 1.0,
                                               "FeatureOfInterest": place}),
        (f"Datastreams({my1})/Observations", {"phenomenonTime": "2023-05-01T01:00:00Z", "result": "x",
                                               "FeatureOfInterest": broken}),
        (f"Datastreams({my1})/Observations", {"phenomenonTime": "2023-05-01T02:00:00Z", "result": 3.0}),
    ]
    results = create_many(db, items)
    assert isinstance(results[0], dict) and isinstance(results[2], dict)
    assert isinstance(results[1], BadRequest) and str(results[1]) == str(single_error(db, *items[1]))
    assert results[0]["@iot.id"] < results[2]["@iot.id"]
    assert count(db, FeatureOfInterest, FeatureOfInterest.name == "Marylebone Road kerb") == 1
    assert count(db, FeatureOfInterest, FeatureOfInterest.name == "Broken kerb") == 0
    assert count(db, Observation, Observation.result_number == 1.0, Observation.datastream_id == my1) >= 1
