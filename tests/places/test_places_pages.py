"""Place and area pages: the map as inline SVG with the same facts in tables, and JSON twins."""

from __future__ import annotations

from smartlondon.places import importer, service

from ..conftest import SHARED_DATA

CAMDEN = "E09000007"


def _load(db) -> None:
    in_camden = {"msoa": lambda r: r["LAD11CD"] == CAMDEN, "lsoa": lambda r: r["LAD11CD"] == CAMDEN,
                 "borough": lambda r: r["GSS_CODE"] == CAMDEN}
    with db.session() as session:
        importer.load_london(session, SHARED_DATA, keep=in_camden, kinds=("borough", "msoa", "lsoa", "station"))


def test_a_borough_page_lists_its_areas_and_stations(db, client) -> None:
    _load(db)
    page = client.get("/places/ldn:borough:E09000007")
    assert page.status_code == 200
    html = page.text
    assert "<h1 class=\"govuk-heading-l\">Camden</h1>" in html
    assert '<svg class="app-place-map" role="img" aria-label="Map of Camden"' in html
    assert "LSOAs in Camden (133)" in html and "MSOAs in Camden (" in html
    assert "King&#39;s Cross St. Pancras" in html or "King's Cross St. Pancras" in html
    assert "<script" not in html.split("<main", 1)[-1].split("</main>", 1)[0]
    twin = client.get("/places/ldn:borough:E09000007.json").json()
    assert twin["uid"] == "ldn:borough:E09000007" and len(twin["contents"]["lsoa"]) == 133
    assert twin["identifiers"][0]["scheme"] == "gss" and twin["history"][0]["action"] == "create"


def test_a_station_page_shows_its_areas_and_history(db, client) -> None:
    _load(db)
    with db.session() as session:
        service.update_place(session, "ldn:station:625", {"alt_names": ["Kings X"]}, source="TfL", actor="ann",
                             reason="common short name")
    html = client.get("/places/ldn:station:625").text
    assert "Kings X" in html and "common short name" in html
    assert 'href="/places/ldn:borough:E09000007">Camden</a>' in html
    assert "<circle" in html


def test_unknown_places_are_404(db, client) -> None:
    assert client.get("/places/ldn:station:nope").status_code == 404
    assert client.get("/places/not-a-uid").status_code == 404
