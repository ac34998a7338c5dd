"""The OpenRefine Reconciliation Service API at /places/reconcile, on a real register database.

The register holds the real boroughs, TfL stations and LAQN sites (and Camden's MSOAs and LSOAs),
written to its tables; the service reads them through ``places.service.iter_match_records``.
"""

from __future__ import annotations

import json

import pytest

from tests.places.match_data import seed_register

KINGS_CROSS = "ldn:station:625"


@pytest.fixture
def register(db):  # type: ignore[no-untyped-def]
    return seed_register(db)


def reconcile(client, queries, as_json: bool = False):  # type: ignore[no-untyped-def]
    if as_json:
        return client.post("/places/reconcile", json={"queries": queries})
    return client.post("/places/reconcile", data={"queries": json.dumps(queries)})


def test_manifest_describes_the_service(register, client) -> None:
    response = client.get("/places/reconcile")
    assert response.status_code == 200
    manifest = response.json()
    assert "0.2" in manifest["versions"]
    assert manifest["name"] and manifest["identifierSpace"] == "http://testserver/places/"
    assert manifest["schemaSpace"] == "http://testserver/places/kinds"
    assert {"id": "station", "name": "Station"} in manifest["defaultTypes"]
    assert {t["id"] for t in manifest["defaultTypes"]} == {"borough", "msoa", "lsoa", "station", "aq-site"}
    assert manifest["view"]["url"] == "http://testserver/places/{{id}}"
    assert "{{id}}" in manifest["preview"]["url"]
    assert manifest["suggest"]["entity"]["service_path"] == "/places/reconcile/suggest/entity"
    assert response.headers["access-control-allow-origin"] == "*"


def test_manifest_as_jsonp(register, client) -> None:
    response = client.get("/places/reconcile", params={"callback": "jsonp123"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert response.text.startswith("/**/jsonp123(") and response.text.endswith(");")
    body = response.text[len("/**/jsonp123("):-2]
    assert json.loads(body)["versions"] == ["0.2"]
    bad = client.get("/places/reconcile", params={"callback": "alert(1)//"})
    assert bad.status_code == 400 and "function name" in bad.json()["error"]["message"]


def test_a_batch_of_messy_names_is_reconciled(register, client) -> None:
    response = reconcile(client, {
        "q0": {"query": "Kings X", "type": "station", "limit": 3},
        "q1": {"query": "St. Pancras"},
        "q2": {"query": "Padington", "type": "station"},
        "q3": {"query": "Hammersmith & Fulham", "type": "borough"},
        "q4": {"query": "E09000007"},
        "q5": {"query": "Atlantis Central"},
    })
    assert response.status_code == 200
    out = response.json()
    assert set(out) == {"q0", "q1", "q2", "q3", "q4", "q5"}
    top = out["q0"]["result"][0]
    assert top["id"] == KINGS_CROSS and top["name"] == "King's Cross St. Pancras" and top["match"] is True
    assert top["type"] == [{"id": "station", "name": "Station"}] and 0 < top["score"] <= 100
    assert top["description"] == "Station, Camden"
    assert len(out["q0"]["result"]) <= 3
    assert out["q1"]["result"][0]["id"] == KINGS_CROSS
    assert out["q2"]["result"][0]["name"].startswith("Paddington") and out["q2"]["result"][0]["match"] is False
    assert out["q3"]["result"][0] == {"id": "ldn:borough:E09000013", "name": "Hammersmith and Fulham", "score": 100.0,
                                      "match": True, "type": [{"id": "borough", "name": "Borough"}],
                                      "description": "Borough"}
    assert out["q4"]["result"][0]["name"] == "Camden" and out["q4"]["result"][0]["match"] is True
    assert out["q5"]["result"] == [] or not out["q5"]["result"][0]["match"]


def test_json_body_and_get_queries_give_the_same_answer(register, client) -> None:
    queries = {"a": {"query": "Tottenham Ct Rd"}, "b": {"query": "Shepards Bush Market"}}
    form = reconcile(client, queries).json()
    body = reconcile(client, queries, as_json=True).json()
    got = client.get("/places/reconcile", params={"queries": json.dumps(queries)}).json()
    assert form == body == got
    assert form["a"]["result"][0]["name"] == "Tottenham Court Road"
    assert form["b"]["result"][0]["name"] == "Shepherd's Bush Market"


def test_type_filter_and_list_of_types(register, client) -> None:
    out = reconcile(client, {"s": {"query": "Swiss Cottage", "type": "aq-site"},
                             "t": {"query": "Swiss Cottage", "type": ["station", "borough"]}}).json()
    assert [r["id"] for r in out["s"]["result"]] == ["ldn:aq-site:CD1"]
    assert {r["type"][0]["id"] for r in out["t"]["result"]} == {"station"}


def test_borough_property_picks_the_place_in_that_borough(register, client) -> None:
    plain = reconcile(client, {"q": {"query": "Queens Road", "type": "station"}}).json()
    assert plain["q"]["result"][0]["name"] == "Queens Road Peckham"
    for borough in ("Waltham Forest", "E09000031", "waltham forrest"):
        out = reconcile(client, {"q": {"query": "Queens Road", "type": "station",
                                       "properties": [{"pid": "borough", "v": borough}]}}).json()
        assert out["q"]["result"][0]["name"] == "Walthamstow Queen's Road", borough


def test_lon_lat_properties_prefer_the_nearer_place(register, client) -> None:
    # Edgware Road has two stations ~200 m apart: the point picks the one it is at
    out = reconcile(client, {"q": {"query": "Edgware Road", "type": "station", "properties": [
        {"pid": "lon", "v": "-0.170"}, {"pid": "lat", "v": "51.5203"}]}}).json()
    names = [r["name"] for r in out["q"]["result"]]
    assert names[0].startswith("Edgware Road (")


@pytest.mark.parametrize("payload, message", [
    ({"queries": "{not json"}, "'queries' is not valid JSON"),
    ({"queries": "[]"}, "must be a non-empty JSON object"),
    ({"queries": "{}"}, "must be a non-empty JSON object"),
    ({"queries": json.dumps({"q0": "Bank"})}, "Query 'q0' must be an object"),
    ({"queries": json.dumps({"q0": {"query": 42}})}, "Query 'q0' must be an object"),
    ({"queries": json.dumps({"q0": {"query": "Bank", "limit": 0}})}, "'limit' must be a whole number"),
    ({"queries": json.dumps({"q0": {"query": "Bank", "type": "spaceport"}})}, "no places are of type 'spaceport'"),
    ({"queries": json.dumps({"q0": {"query": "Bank", "properties": [{"pid": "colour", "v": "red"}]}})},
     "unknown property 'colour'"),
    ({"queries": json.dumps({"q0": {"query": "Bank", "properties": [{"pid": "lon", "v": "west"}]}})},
     "property 'lon' must be a number"),
    ({"queries": json.dumps({"q0": {"query": "Bank", "properties": "borough=Camden"}})}, "'properties' must be a list"),
    ({"queries": json.dumps({f"q{i}": {"query": "Bank"} for i in range(1001)})}, "at most 1000 queries"),
    ({"query": "Bank"}, "form field called 'queries'"),
])
def test_bad_queries_get_a_400_that_says_what_is_wrong(register, client, payload, message) -> None:
    response = client.post("/places/reconcile", data=payload)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_a_bad_json_body_is_a_400(register, client) -> None:
    response = client.post("/places/reconcile", content=b"{oops", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]


def test_preview_and_suggest(register, client) -> None:
    preview = client.get("/places/reconcile/preview", params={"id": KINGS_CROSS})
    assert preview.status_code == 200 and preview.headers["content-type"].startswith("text/html")
    assert "King&#x27;s Cross St. Pancras" in preview.text and "625" in preview.text and "Camden" in preview.text
    assert client.get("/places/reconcile/preview", params={"id": "ldn:station:0"}).status_code == 404
    suggested = client.get("/places/reconcile/suggest/entity", params={"prefix": "kings cr"}).json()
    assert suggested["result"][0]["id"] == KINGS_CROSS
    assert client.get("/places/reconcile/suggest/entity", params={"prefix": "x", "type": "moon"}).status_code == 400


def test_end_to_end_with_the_registers_own_importer(db, client) -> None:
    """The real boroughs and stations loaded by places-core's importer are reconciled, areas and all."""
    from smartlondon.places import importer
    from tests.places.match_data import DATA

    with db.session() as session:
        importer.load_london(session, DATA, kinds=("borough", "station"))
    out = reconcile(client, {"a": {"query": "Kings X", "type": "station"},
                             "b": {"query": "Queens Road", "type": "station",
                                   "properties": [{"pid": "borough", "v": "Waltham Forest"}]},
                             "c": {"query": "Hammersmith & Fulham", "type": "borough"}}).json()
    top = out["a"]["result"][0]
    assert (top["id"], top["match"], top["description"]) == (KINGS_CROSS, True, "Station, Camden")
    assert out["b"]["result"][0]["name"] == "Walthamstow Queen's Road"
    assert out["c"]["result"][0]["id"] == "ldn:borough:E09000013"
