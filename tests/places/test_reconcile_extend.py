"""Data extension of the Reconciliation Service API (0.2): "Add columns from reconciled values" in OpenRefine.

The request and response shapes are those of the protocol: the manifest's ``extend`` section, the
propose-properties service, and ``extend={"ids": [...], "properties": [{"id": ...}]}`` sent as a form
field (what OpenRefine sends), a query parameter or a JSON body.
"""

from __future__ import annotations

import json

import pytest

from tests.places.match_data import seed_register

KINGS_CROSS = "ldn:station:625"
CAMDEN = "ldn:borough:E09000007"


@pytest.fixture
def register(db):  # type: ignore[no-untyped-def]
    return seed_register(db)


def extend(client, ids, props, how: str = "form"):  # type: ignore[no-untyped-def]
    request = {"ids": ids, "properties": [{"id": p} for p in props]}
    if how == "json":
        return client.post("/places/reconcile", json={"extend": request})
    if how == "get":
        return client.get("/places/reconcile", params={"extend": json.dumps(request)})
    return client.post("/places/reconcile", data={"extend": json.dumps(request)})


def test_the_manifest_offers_data_extension(register, client) -> None:
    manifest = client.get("/places/reconcile").json()
    assert manifest["extend"]["propose_properties"] == {"service_url": "http://testserver",
                                                        "service_path": "/places/reconcile/properties"}
    proposed = client.get("/places/reconcile/properties", params={"type": "station"})
    assert proposed.status_code == 200 and proposed.headers["access-control-allow-origin"] == "*"
    body = proposed.json()
    assert body["type"] == "station"
    ids = [p["id"] for p in body["properties"]]
    assert {"gss", "nlc", "laqn", "borough", "lsoa", "lon", "lat", "coordinates", "kind"} <= set(ids)
    assert all(p["name"] for p in body["properties"])
    limited = client.get("/places/reconcile/properties", params={"type": "station", "limit": 3}).json()
    assert len(limited["properties"]) == 3 and limited["limit"] == 3


@pytest.mark.parametrize("how", ["form", "json", "get"])
def test_a_station_is_extended_with_its_codes_areas_and_coordinates(register, client, how) -> None:
    response = extend(client, [KINGS_CROSS, CAMDEN], ["nlc", "borough", "kind", "lat", "coordinates", "gss"], how)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [m["id"] for m in body["meta"]] == ["nlc", "borough", "kind", "lat", "coordinates", "gss"]
    assert body["meta"][1]["type"] == {"id": "borough", "name": "Borough"}
    kx = body["rows"][KINGS_CROSS]
    assert kx["nlc"] == [{"str": "625"}]
    assert kx["borough"] == [{"id": CAMDEN, "name": "Camden"}]
    assert kx["kind"] == [{"id": "station", "name": "Station"}]
    assert 51.52 < kx["lat"][0]["float"] < 51.54
    lat, lon = map(float, kx["coordinates"][0]["str"].split(","))
    assert (lat, lon) == (kx["lat"][0]["float"], lon) and -0.13 < lon < -0.12
    assert kx["gss"] == []
    camden = body["rows"][CAMDEN]
    assert camden["gss"] == [{"str": "E09000007"}] and camden["borough"] == [{"id": CAMDEN, "name": "Camden"}]
    assert camden["nlc"] == []


def test_an_air_quality_site_gives_its_laqn_code(register, client) -> None:
    found = client.post("/places/reconcile", data={"queries": json.dumps(
        {"q0": {"query": "Camden - Swiss Cottage", "type": "aq-site"}})}).json()["q0"]["result"][0]
    rows = extend(client, [found["id"]], ["laqn", "name"]).json()["rows"]
    assert rows[found["id"]]["laqn"] == [{"str": "CD1"}]
    assert rows[found["id"]]["name"] == [{"str": found["name"]}]


def test_an_unknown_id_gets_empty_values(register, client) -> None:
    body = extend(client, ["ldn:station:nowhere"], ["nlc", "borough"]).json()
    assert body["rows"] == {"ldn:station:nowhere": {"nlc": [], "borough": []}}


@pytest.mark.parametrize("payload, message", [
    ("{not json", "'extend' is not valid JSON"),
    ('["ldn:station:625"]', "'extend' must be a JSON object"),
    ('{"properties": [{"id": "nlc"}]}', "'extend' needs 'ids'"),
    ('{"ids": ["ldn:station:625"], "properties": []}', "'extend' needs 'properties'"),
    ('{"ids": ["ldn:station:625"], "properties": [{"id": "colour"}]}', "Unknown property 'colour'"),
])
def test_a_bad_extension_request_is_a_400_saying_what_to_fix(register, client, payload, message) -> None:
    response = client.post("/places/reconcile", data={"extend": payload})
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert response.headers["access-control-allow-origin"] == "*"


def test_an_unknown_type_for_proposed_properties_is_a_400(register, client) -> None:
    response = client.get("/places/reconcile/properties", params={"type": "spaceport"})
    assert response.status_code == 400 and "No places are of type 'spaceport'" in response.json()["error"]["message"]
