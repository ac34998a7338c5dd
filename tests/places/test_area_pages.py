"""Place and area pages: the map, the datasets and sensors about a place, paged tables with counts, JSON twins."""

from __future__ import annotations

import re

from smartlondon.places import service

from .test_places_links import BLOOMSBURY, EUSTON_ROAD, add_datasets, add_thing, load_camden


def _main(html: str) -> str:
    return html.split("<main", 1)[1].split("</main>", 1)[0]


def test_a_borough_page_shows_its_areas_stations_sensors_and_datasets(db, client) -> None:
    load_camden(db)
    add_datasets(db)
    add_thing(db, "Camden - Bloomsbury", BLOOMSBURY, siteCode="BL0", siteType="Urban Background")
    add_thing(db, "Lamppost EUS-014", EUSTON_ROAD)
    page = client.get("/places/ldn:borough:E09000007")
    assert page.status_code == 200
    main = _main(page.text)
    assert "LSOAs in Camden (133)" in main and "Stations in Camden (" in main and "Air quality sites in Camden (" in main
    assert "Datasets about Camden (1)" in main and 'href="/dataset/camden-trees"' in main
    assert "camden-private" not in main
    assert "Sensors in Camden (2)" in main and main.count("its location") == 2
    # the map: Leaflet draws from the JSON twin over the borough outlines; the SVG stays without JavaScript
    assert 'data-place-map="/places/ldn:borough:E09000007.json"' in main and '<svg class="app-place-map"' in main
    assert "<script" not in main and '<script src="/places/assets/places-map.js">' in page.text
    assert client.get("/places/assets/places-map.js").status_code == 200
    assert client.get("/places/assets/nope.js").status_code == 404
    # 133 LSOAs: 50 a page, with a link to the next page of LSOAs only
    lsoa_table = main.split('id="contents-lsoa"', 1)[1].split("</table>", 1)[0]
    assert lsoa_table.count('class="govuk-table__row"') == 51  # the header row and 50 LSOAs
    assert "page-lsoa=2" in main
    third = _main(client.get("/places/ldn:borough:E09000007?page-lsoa=3").text)
    assert third.split('id="contents-lsoa"', 1)[1].split("</table>", 1)[0].count('class="govuk-table__row"') == 34
    assert client.get("/places/ldn:borough:E09000007?page-lsoa=x").status_code == 400
    twin = client.get("/places/ldn:borough:E09000007.json").json()
    assert twin["counts"]["lsoa"] == 133 and len(twin["contents"]["lsoa"]) == 133
    assert [d["slug"] for d in twin["datasets"]["items"]] == ["camden-trees"] and twin["datasets"]["count"] == 1
    assert sorted(s["name"] for s in twin["sensors"]["items"]) == ["Camden - Bloomsbury", "Lamppost EUS-014"]


def test_an_lsoa_and_a_site_page_show_their_own_sensors(db, client) -> None:
    load_camden(db)
    add_thing(db, "Camden - Bloomsbury", BLOOMSBURY, siteCode="BL0")
    lamp = add_thing(db, "Lamppost EUS-014", EUSTON_ROAD)
    lsoa = client.get("/places/api/reverse", params={"lon": EUSTON_ROAD[0], "lat": EUSTON_ROAD[1]}).json()["lsoa"]
    html = _main(client.get(f"/places/{lsoa['uid']}").text)
    assert "Sensors in " in html and f'href="/sensors/things/{lamp}"' in html and "Camden - Bloomsbury" not in html
    assert 'href="/places/ldn:borough:E09000007">Camden</a>' in html  # its containing areas
    site = _main(client.get("/places/ldn:aq-site:BL0").text)
    assert "Sensors at Camden - Bloomsbury (1)" in site and "LAQN site code BL0" in site
    assert "No dataset in the catalogue names Camden - Bloomsbury yet." in site
    assert 'href="/places/propose?uid=ldn%3Aaq-site%3ABL0"' in site


def test_a_retired_place_points_to_its_successor_and_offers_no_correction(db, client) -> None:
    load_camden(db)
    with db.session() as session:
        service.create_place(session, kind="park", key="old", name="Old Gardens", source="Camden",
                             geometry={"type": "Point", "coordinates": [-0.14, 51.53]})
        service.create_place(session, kind="park", key="new", name="New Gardens", source="Camden",
                             geometry={"type": "Point", "coordinates": [-0.14, 51.53]})
        service.retire_place(session, "ldn:park:old", successors=["ldn:park:new"], source="Camden", reason="renamed")
    html = _main(client.get("/places/ldn:park:old").text)
    assert "(retired)" in html and 'href="/places/ldn:park:new"' in html and "Propose a correction" not in html
    assert re.search(r"retire: renamed", html)
