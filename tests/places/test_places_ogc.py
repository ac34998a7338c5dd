"""OGC API - Features over the register: landing, conformance, collections, items, paging, CRS."""

from __future__ import annotations

import pytest

from smartlondon.places import importer

from ..conftest import SHARED_DATA

BNG = "http://www.opengis.net/def/crs/EPSG/0/27700"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


@pytest.fixture
def stations(db):  # type: ignore[no-untyped-def]
    with db.session() as session:
        importer.load_london(session, SHARED_DATA, kinds=("station", "aq-site"))
    return db


def test_landing_conformance_and_collections(stations, client) -> None:
    landing = client.get("/places/ogc").json()
    assert {link["rel"] for link in landing["links"]} >= {"self", "service-desc", "conformance", "data"}
    conformance = client.get("/places/ogc/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conformance
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in conformance
    collections = {c["id"]: c for c in client.get("/places/ogc/collections").json()["collections"]}
    assert {"borough", "lsoa", "station", "aq-site", "lamppost"} <= set(collections)
    assert collections["station"]["crs"] == [CRS84, BNG]
    west, south, east, north = collections["station"]["extent"]["spatial"]["bbox"][0]
    assert west < -0.5 and east > 0.2 and 51.2 < south < north < 51.8


def test_items_page_through_all_stations(stations, client) -> None:
    first = client.get("/places/ogc/collections/station/items", params={"limit": 200})
    assert first.status_code == 200 and first.headers["content-type"].startswith("application/geo+json")
    assert first.headers["content-crs"] == f"<{CRS84}>"
    body = first.json()
    assert (body["numberMatched"], body["numberReturned"]) == (470, 200)
    seen = [f["id"] for f in body["features"]]
    next_link = next(link["href"] for link in body["links"] if link["rel"] == "next")
    while next_link:
        page = client.get(next_link).json()
        seen += [f["id"] for f in page["features"]]
        next_link = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
        assert any(link["rel"] == "prev" for link in page["links"])
    assert len(seen) == len(set(seen)) == 470
    feature = client.get(f"/places/ogc/collections/station/items/{seen[0]}").json()
    assert feature["type"] == "Feature" and feature["id"] == seen[0] and feature["geometry"]["type"] == "Point"


def test_bbox_in_either_crs_and_output_in_british_national_grid(stations, client) -> None:
    by_lonlat = client.get("/places/ogc/collections/station/items",
                           params={"bbox": "-0.13,51.525,-0.12,51.535", "limit": 100}).json()
    ids = {f["id"] for f in by_lonlat["features"]}
    assert ids and by_lonlat["numberMatched"] == len(ids)
    by_grid = client.get("/places/ogc/collections/station/items",
                         params={"bbox": "529000,182500,530500,183500", "bbox-crs": BNG, "crs": BNG, "limit": 100})
    assert by_grid.headers["content-crs"] == f"<{BNG}>"
    for feature in by_grid.json()["features"]:
        e, n = feature["geometry"]["coordinates"]
        assert 529000 <= e <= 530500 and 182500 <= n <= 183500
    assert by_grid.json()["numberMatched"] >= 3


def test_datetime_filters_on_last_update(stations, client) -> None:
    future = client.get("/places/ogc/collections/aq-site/items", params={"datetime": "2999-01-01T00:00:00Z/.."}).json()
    past = client.get("/places/ogc/collections/aq-site/items", params={"datetime": "2000-01-01T00:00:00Z/..",
                                                                        "limit": 1}).json()
    assert future["numberMatched"] == 0 and past["numberMatched"] == 88


@pytest.mark.parametrize(("params", "message"), [
    ({"bbox": "a,b,c,d"}, "four numbers"),
    ({"bbox": "530000,180000,531000,181000"}, "not in longitude/latitude"),
    ({"crs": "EPSG:3857"}, "not supported"),
    ({"bbox": "1,2,3,4", "bbox-crs": "EPSG:9999"}, "not supported"),
    ({"limit": "0"}, "limit must be"),
    ({"limit": "10001"}, "limit must be"),
    ({"datetime": "yesterday"}, "RFC 3339"),
])
def test_bad_parameters_get_400_with_a_message(db, client, params, message) -> None:
    response = client.get("/places/ogc/collections/station/items", params=params, headers={"Accept": "*/*"})
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_unknown_collection_and_item_are_404(db, client) -> None:
    assert client.get("/places/ogc/collections/castle/items").status_code == 404
    assert client.get("/places/ogc/collections/station/items/ldn:station:none").status_code == 404
