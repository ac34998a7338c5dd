"""Reverse geocoding, nearest places and places within an area, on the real boundaries (same answers on both databases)."""

from __future__ import annotations

import pytest

from smartlondon.places import importer, service

from ..conftest import SHARED_DATA

CAMDEN = "E09000007"
KINGS_CROSS = (-0.1238, 51.5308)


def load_camden(db) -> None:
    """Camden with its MSOAs and LSOAs, all the stations and the LAQN sites (a fast subset)."""
    in_camden = {"msoa": lambda r: r["LAD11CD"] == CAMDEN, "lsoa": lambda r: r["LAD11CD"] == CAMDEN,
                 "borough": lambda r: r["GSS_CODE"] == CAMDEN}
    with db.session() as session:
        importer.load_london(session, SHARED_DATA, keep=in_camden)


@pytest.fixture
def camden(db):  # type: ignore[no-untyped-def]
    load_camden(db)
    return db


def test_reverse_geocoding_kings_cross(camden, client) -> None:
    body = client.get("/places/api/reverse", params={"lon": KINGS_CROSS[0], "lat": KINGS_CROSS[1]}).json()
    assert body["borough"] == {"uid": "ldn:borough:E09000007", "name": "Camden"}
    assert body["msoa"]["uid"].startswith("ldn:msoa:E02") and body["msoa"]["name"].startswith("Camden")
    assert body["lsoa"]["uid"].startswith("ldn:lsoa:E01") and body["lsoa"]["name"].startswith("Camden")
    assert body["ward"] is None
    assert body["nearest"][0]["name"].startswith("King's Cross")
    distances = [p["distance_m"] for p in body["nearest"]]
    assert distances == sorted(distances) and distances[0] < 300


def test_a_point_outside_london_has_no_areas(camden, client) -> None:
    body = client.get("/places/api/reverse", params={"lon": -1.2577, "lat": 51.7520}).json()  # Oxford
    assert body["in_london"] is False and body["borough"] is None


def test_nearest_stations_and_sites(camden, client) -> None:
    body = client.get("/places/api/nearest", params={"lon": KINGS_CROSS[0], "lat": KINGS_CROSS[1],
                                                    "kind": "station", "n": 3}).json()
    assert len(body["places"]) == 3 and all(p["kind"] == "station" for p in body["places"])
    sites = client.get("/places/api/nearest", params={"lon": KINGS_CROSS[0], "lat": KINGS_CROSS[1],
                                                     "kind": "aq-site", "n": 2}).json()["places"]
    assert [p["kind"] for p in sites] == ["aq-site", "aq-site"]
    assert sites[0]["distance_m"] <= sites[1]["distance_m"]


def test_within_a_bbox_and_a_polygon_agree(camden, client) -> None:
    bbox = "-0.13,51.525,-0.12,51.535"
    by_bbox = client.get("/places/api/within", params={"bbox": bbox, "kind": "station"}).json()
    names = {p["name"] for p in by_bbox["places"]}
    assert any(n.startswith("King's Cross") for n in names) and by_bbox["count"] == len(names)
    polygon = {"type": "Polygon", "coordinates": [[[-0.13, 51.525], [-0.12, 51.525], [-0.12, 51.535],
                                                   [-0.13, 51.535], [-0.13, 51.525]]]}
    by_polygon = client.post("/places/api/within", json={"geometry": polygon, "kind": ["station"]}).json()
    assert {p["name"] for p in by_polygon["places"]} == names
    with camden.session() as session:
        outline = service.get_place(session, "ldn:borough:E09000007").geometry
    inside = client.post("/places/api/within", json={"geometry": outline, "kind": "lsoa", "relation": "within"}).json()
    touching = client.post("/places/api/within", json={"geometry": outline, "kind": "lsoa"}).json()
    # The LSOA and borough files are generalised differently, so some edge LSOAs poke out of the outline.
    assert 90 <= inside["count"] < touching["count"] == 133


def test_borough_contents_come_from_geometry(camden) -> None:
    with camden.session() as session:
        borough = service.get_place(session, "ldn:borough:E09000007")
        lsoas = service.contained_places(session, borough, "lsoa")
        stations = {p.name for p in service.contained_places(session, borough, "station")}
    assert len(lsoas) == 133
    assert any(n.startswith("Camden Town") for n in stations)


@pytest.mark.parametrize(("path", "params", "message"), [
    ("/places/api/reverse", {"lon": "west", "lat": "51.5"}, "lon"),
    ("/places/api/reverse", {"lon": "-0.1", "lat": "95"}, "lat must be between"),
    ("/places/api/nearest", {"lon": "-0.1", "lat": "51.5", "n": "0"}, "n must be"),
    ("/places/api/nearest", {"lon": "-0.1", "lat": "51.5", "kind": "castle"}, "Unknown kind"),
    ("/places/api/within", {"bbox": "1,2,3"}, "four numbers"),
    ("/places/api/within", {"bbox": "-0.1,51.6,-0.2,51.5"}, "minimum"),
    ("/places/api/within", {}, "bbox"),
])
def test_bad_requests_say_what_to_fix(db, client, path, params, message) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_a_self_intersecting_polygon_is_refused(db, client) -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[-0.15, 51.50], [-0.10, 51.53], [-0.10, 51.50], [-0.15, 51.53],
                                                  [-0.15, 51.50]]]}
    response = client.post("/places/api/within", json={"geometry": bowtie})
    assert response.status_code == 422 and "not a valid geometry" in response.json()["error"]["message"]
