"""Links: the catalogue datasets and sensor Things about a place, resolved through each capability's service."""

from __future__ import annotations

from typing import Any

from smartlondon.catalogue import service as catalogue
from smartlondon.core.accounts import COMMAND_LINE
from smartlondon.places import importer, links, service
from smartlondon.sensors import service as sensors

from ..conftest import SHARED_DATA

CAMDEN = "E09000007"
BLOOMSBURY = (-0.125848, 51.522287)  # LAQN BL0, Camden - Bloomsbury
EUSTON_ROAD = (-0.1337, 51.5272)
WESTMINSTER = (-0.1357, 51.4975)  # outside the Camden-only register these tests load


def load_camden(db: Any) -> None:
    """Camden, its MSOAs, LSOAs, stations and LAQN sites, from the real files."""
    keep = {"borough": lambda r: r["GSS_CODE"] == CAMDEN, "msoa": lambda r: r["LAD11CD"] == CAMDEN,
            "lsoa": lambda r: r["LAD11CD"] == CAMDEN, "aq-site": lambda r: r["@LocalAuthorityName"] == "Camden"}
    with db.session() as session:
        importer.load_london(session, SHARED_DATA, keep=keep, kinds=("borough", "msoa", "lsoa", "station", "aq-site"))


def add_thing(db: Any, name: str, point: tuple[float, float] | None, **properties: Any) -> int:
    """A sensor Thing (with a Location if ``point`` is given), made through the sensor hub's service."""
    payload: dict[str, Any] = {"name": name, "description": name, "properties": properties}
    if point is not None:
        payload["Locations"] = [{"name": name, "description": "where it is", "encodingType": "application/geo+json",
                                 "location": {"type": "Point", "coordinates": list(point)}}]
    with db.session() as session:
        return sensors.create_from_path(session, "Things", payload, "http://testserver/sta/v1.1")["@iot.id"]


def add_datasets(db: Any) -> None:
    """Three public datasets (Camden by GSS code, King's Cross by uid, London-wide) and a private one on Camden."""
    with db.session() as session:
        for data in (
                {"slug": "camden-trees", "title": "Camden street trees", "publisher": "camden", "boroughs": [CAMDEN]},
                {"slug": "kings-cross-footfall", "title": "King's Cross footfall", "publisher": "camden",
                 "places": ["ldn:station:625"]},
                {"slug": "london-wide", "title": "London-wide thing", "publisher": "greater-london-authority"},
                {"slug": "camden-private", "title": "Camden private", "publisher": "camden", "boroughs": [CAMDEN],
                 "private": True}):
            catalogue.create_dataset(session, COMMAND_LINE, data)


def test_datasets_about_a_borough_and_a_station(db) -> None:
    load_camden(db)
    add_datasets(db)
    with db.session() as session:
        camden = service.get_place(session, "ldn:borough:E09000007")
        assert [d["slug"] for d in links.datasets_about(session, camden)] == ["camden-trees"]  # not the private one
        station = service.get_place(session, "ldn:station:625")
        assert [d["slug"] for d in links.datasets_about(session, station)] == ["kings-cross-footfall"]
        footfall = catalogue.get_dataset(session, COMMAND_LINE, "kings-cross-footfall")
        assert [(p["uid"], p["via"]) for p in links.places_of_dataset(session, footfall)] == [("ldn:station:625", "ldn")]
        trees = catalogue.get_dataset(session, COMMAND_LINE, "camden-trees")
        assert links.places_of_dataset(session, trees)[0] | {"href": ""} == {
            "uid": "ldn:borough:E09000007", "name": "Camden", "kind": "borough", "status": "active", "via": "gss",
            "gss": CAMDEN, "href": ""}


def test_a_dataset_refers_to_a_place_through_the_api_with_a_clear_error_for_unknown_ones(db, client, editor) -> None:
    load_camden(db)
    bad = client.post("/api/datasets", headers=editor.headers, json={
        "title": "Footfall", "publisher": "camden", "places": ["ldn:station:nope"]})
    assert bad.status_code == 422
    assert "There is no place 'ldn:station:nope' in the register" in bad.json()["error"]["fields"]["places"]
    not_uid = client.post("/api/datasets", headers=editor.headers, json={
        "title": "Footfall", "publisher": "camden", "places": ["Kings Cross"]})
    assert not_uid.status_code == 422 and "start with 'ldn:'" in not_uid.json()["error"]["fields"]["places"]
    made = client.post("/api/datasets", headers=editor.headers, json={
        "title": "Footfall", "publisher": "camden", "places": ["ldn:station:625", "ldn:aq-site:BL0"]})
    assert made.status_code == 201 and made.json()["places"] == ["ldn:station:625", "ldn:aq-site:BL0"]
    assert client.get("/places/ldn:aq-site:BL0.json").json()["datasets"]["items"][0]["title"] == "Footfall"
    with db.session() as session:
        service.retire_place(session, "ldn:aq-site:BL0", source="LAQN")
    retired = client.patch(f"/api/datasets/{made.json()['slug']}", headers=editor.headers,
                           json={"places": ["ldn:aq-site:BL0"]})
    assert retired.status_code == 422 and "is retired" in retired.json()["error"]["fields"]["places"]


def test_things_are_linked_by_site_code_property_and_location(db) -> None:
    load_camden(db)
    bl0 = add_thing(db, "Camden - Bloomsbury", BLOOMSBURY, siteCode="BL0", siteType="Urban Background")
    lamp = add_thing(db, "Lamppost EUS-014", EUSTON_ROAD, kind="streetlight")
    tagged = add_thing(db, "Station sensor", None, place="ldn:station:625")
    away = add_thing(db, "Westminster lamppost", WESTMINSTER)
    with db.session() as session:
        site = links.place_of_thing(session, bl0)
        assert (site["uid"], site["via"]) == ("ldn:aq-site:BL0", "laqn")
        assert site["areas"]["borough"]["uid"] == "ldn:borough:E09000007"
        on_road = links.place_of_thing(session, lamp)
        assert on_road["kind"] == "lsoa" and on_road["via"] == "location"
        assert on_road["areas"]["borough"]["name"] == "Camden" and on_road["areas"]["msoa"]["uid"].startswith("ldn:msoa:")
        assert links.place_of_thing(session, tagged)["uid"] == "ldn:station:625"
        assert links.place_of_thing(session, away) is None  # Westminster is not in this register
        camden = service.get_place(session, "ldn:borough:E09000007")
        assert sorted(t["name"] for t in links.sensors_about(session, camden)) == [
            "Camden - Bloomsbury", "Lamppost EUS-014"]
        assert [t["via"] for t in links.sensors_about(session, service.get_place(session, "ldn:aq-site:BL0"))] == ["laqn"]
        assert [t["id"] for t in links.sensors_about(session, service.get_place(session, "ldn:station:625"))] == [tagged]
        lsoa = service.get_place(session, on_road["uid"])
        assert [t["id"] for t in links.sensors_about(session, lsoa)] == [lamp]
        boroughs = links.boroughs_of_things(session, sensors.thing_positions(session))
        assert boroughs[bl0]["name"] == "Camden" and away not in boroughs and tagged not in boroughs


def test_the_catalogue_shows_coverage_as_register_places(db, client) -> None:
    load_camden(db)
    add_datasets(db)
    page = client.get("/dataset/kings-cross-footfall").text
    assert 'href="/places/ldn:station:625">King&#39;s Cross St. Pancras</a>' in page
    trees = client.get("/dataset/camden-trees").text
    assert 'href="/places/ldn:borough:E09000007">Camden</a>' in trees
    search = client.get("/dataset", params={"borough": CAMDEN}).text
    assert 'In the places register:' in search and 'href="/places/ldn:borough:E09000007">Camden</a>' in search
    assert "In the places register:" not in client.get("/dataset").text  # only for the boroughs chosen


def test_the_sensor_list_takes_boroughs_from_the_register_and_filters_by_them(db, client) -> None:
    load_camden(db)
    add_thing(db, "Camden - Bloomsbury", BLOOMSBURY, siteCode="BL0", borough="somewhere else")
    add_thing(db, "Westminster lamppost", WESTMINSTER)
    listing = client.get("/sensors.json").json()["sensors"]
    assert {s["name"]: s["borough"] for s in listing} == {"Camden - Bloomsbury": "Camden", "Westminster lamppost": ""}
    for wanted in ("ldn:borough:E09000007", CAMDEN, "camden"):
        only = client.get("/sensors.json", params={"borough": wanted}).json()
        assert [s["name"] for s in only["sensors"]] == ["Camden - Bloomsbury"]
    page = client.get("/sensors", params={"borough": "ldn:borough:E09000007"}).text
    assert 'data-sensors="/sensors.json?borough=ldn%3Aborough%3AE09000007"' in page
    assert '<option value="ldn:borough:E09000007" selected>Camden</option>' in page
    assert 'href="/places/ldn:borough:E09000007">Camden</a>' in page and "Westminster lamppost" not in page


def test_the_dataset_form_takes_places_by_identifier(db, client, editor) -> None:
    from .test_review_pages import sign_in

    load_camden(db)
    token = sign_in(client, editor)
    assert 'name="places"' in client.get("/dataset/new").text
    bad = client.post("/dataset/new", data={"csrf_token": token, "publisher": "camden", "title": "Footfall",
                                            "places": "ldn:station:625\nldn:station:nope"})
    assert bad.status_code == 422 and 'href="#places"' in bad.text and "ldn:station:nope" in bad.text
    made = client.post("/dataset/new", data={"csrf_token": token, "publisher": "camden", "title": "Footfall",
                                             "places": "ldn:station:625\n"}, follow_redirects=False)
    assert made.status_code == 303
    slug = made.headers["location"].rstrip("/").rsplit("/", 1)[-1]
    assert client.get(f"/api/datasets/{slug}").json()["places"] == ["ldn:station:625"]
    assert "ldn:station:625</textarea>" in client.get(f"/dataset/{slug}/edit").text
    assert 'href="/places/ldn:station:625"' in client.get(f"/dataset/{slug}").text
