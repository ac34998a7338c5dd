"""$filter with the lambda operators any and all over to-many navigation (OData 4.01, used by STA clients).

``Things?$filter=Datastreams/any(d: d/ObservedProperty/name eq 'PM10')`` is the Things with at least one
such Datastream; ``all`` is true when every member matches (and for an empty collection); ``any()``
without a condition is true when the collection is not empty. Lambdas nest, may refer to the outer
entity by plain paths, and work inside $expand.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from smartlondon.core.db import Database
from smartlondon.sensors.models import Thing
from tests.sensors.sta_support import Network, build_network


@pytest.fixture
def network(db: Database) -> Network:
    net = build_network(db)
    with db.session() as session:
        lonely = Thing(name="Lamppost without sensors", description="No Datastream yet")
        session.add(lonely)
        session.flush()
        net.things["LONELY"] = lonely.id
    return net


def _ids(client: TestClient, path: str, flt: str) -> list[int]:
    response = client.get(f"/sta/v1.1/{path}", params={"$filter": flt, "$select": "id"})
    assert response.status_code == 200, response.text
    return sorted(item["@iot.id"] for item in response.json()["value"])


def test_any_and_all_over_datastreams(client: TestClient, network: Network) -> None:
    my1, bl0, lonely = network.things["MY1"], network.things["BL0"], network.things["LONELY"]
    assert _ids(client, "Things", "Datastreams/any(d: d/ObservedProperty/name eq 'PM10')") == [bl0]
    assert _ids(client, "Things", "Datastreams/any(d: d/unitOfMeasurement/symbol eq 'µg/m³')") == sorted([my1, bl0])
    assert _ids(client, "Things", "Datastreams/all(d: d/ObservedProperty/name eq 'Nitrogen dioxide')") == \
        sorted([my1, lonely])   # every Datastream of an empty collection matches
    assert _ids(client, "Things", "Datastreams/any()") == sorted([my1, bl0])
    assert _ids(client, "Things", "not Datastreams/any()") == [lonely]
    assert _ids(client, "Things", "MultiDatastreams/any()") == [bl0]
    assert _ids(client, "Things", "Locations/any(l: l/name eq name)") == sorted([my1, bl0])  # outer path: the Thing


def test_any_over_observations_and_nested(client: TestClient, network: Network) -> None:
    high = {key: max(v for _t, v in values) for key, values in network.values.items()}
    threshold = sorted(high.values())[1] - 0.05   # between the highest values: some streams pass, some do not
    expected = sorted(network.datastreams[k] for k, v in high.items() if v > threshold)
    assert 0 < len(expected) < len(high)
    assert _ids(client, "Datastreams", f"Observations/any(o: o/result gt {threshold})") == expected
    assert _ids(client, "Datastreams", f"Observations/all(o: o/result le {threshold})") == sorted(
        set(network.datastreams.values()) - set(expected))
    things = sorted({network.things[k.split("/")[0]] for k, v in high.items() if v > threshold})
    assert _ids(client, "Things", f"Datastreams/any(d: d/Observations/any(o: o/result gt {threshold}))") == things
    expand = f"Datastreams($select=id;$filter=Observations/any(o: o/result gt {threshold}))"
    body = client.get("/sta/v1.1/Things", params={"$select": "id", "$expand": expand}).json()
    assert sorted(d["@iot.id"] for t in body["value"] for d in t["Datastreams"]) == expected


@pytest.mark.parametrize("flt, message", [
    ("Datastreams/any(d d/name eq 'x')", "after the range variable"),
    ("Datastreams/any(d: )", "unexpected ')'"),
    ("name/any(x: x eq 'a')", "any/all need a collection of Thing"),
    ("Datastreams/all()", "needs a range variable"),
    ("Datastreams/any(d: d eq 1)", "use a property of d"),
    ("Datastreams/any(d: d/nope eq 1)", "unknown property nope"),
])
def test_bad_lambdas_get_a_400_saying_what_to_fix(client: TestClient, network: Network, flt: str,
                                                  message: str) -> None:
    response = client.get("/sta/v1.1/Things", params={"$filter": flt})
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
