"""OGC API - Features as HTML: landing, collections, items and one item, with a map and a table; JSON unchanged."""

from __future__ import annotations

import pytest

from smartlondon.places import importer

from ..conftest import SHARED_DATA

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
def sites(db):  # type: ignore[no-untyped-def]
    with db.session() as session:
        importer.load_london(session, SHARED_DATA, kinds=("aq-site",))
    return db


def _main(html: str) -> str:
    return html.split("<main", 1)[1].split("</main>", 1)[0]


def test_a_browser_gets_html_and_clients_still_get_json(sites, client) -> None:
    landing = client.get("/places/ogc", headers=BROWSER)
    assert landing.headers["content-type"].startswith("text/html")
    assert 'href="/places/ogc/collections?f=html"' in _main(landing.text)
    assert client.get("/places/ogc").headers["content-type"].startswith("application/json")
    assert client.get("/places/ogc", headers={"Accept": "*/*"}).json()["title"] == "London places register"
    forced = client.get("/places/ogc?f=json", headers=BROWSER)
    assert forced.headers["content-type"].startswith("application/json")
    links = client.get("/places/ogc").json()["links"]
    assert {"rel": "alternate", "type": "text/html"}.items() <= next(
        link for link in links if link["rel"] == "alternate").items()
    assert client.get("/places/ogc?f=xml").status_code == 400
    conformance = _main(client.get("/places/ogc/conformance?f=html").text)
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conformance


def test_collections_and_items_as_html_with_a_map_a_table_and_pages(sites, client) -> None:
    collections = _main(client.get("/places/ogc/collections?f=html").text)
    assert 'href="/places/ogc/collections/aq-site?f=html"' in collections and "Air quality monitoring site" in collections
    one = _main(client.get("/places/ogc/collections/aq-site", headers=BROWSER).text)
    assert "Browse the 88 places" in one and "http://www.opengis.net/def/crs/EPSG/0/27700" in one
    items = client.get("/places/ogc/collections/aq-site/items?f=html&limit=20&offset=20")
    assert items.status_code == 200
    main = _main(items.text)
    assert "88 places match; showing 21 to 40." in main
    assert main.count('href="/places/ogc/collections/aq-site/items/ldn:aq-site:') == 20
    assert 'data-place-map="/places/ogc/collections/aq-site/items?limit=20&amp;offset=20&amp;f=json"' in main
    assert "offset=40" in main and "offset=0" in main  # next and previous pages, still HTML
    assert "f=html" in main.split("offset=40")[0].rsplit("href=", 1)[1]
    geojson = client.get("/places/ogc/collections/aq-site/items?f=json&limit=20&offset=20").json()
    assert geojson["numberReturned"] == 20 and geojson["type"] == "FeatureCollection"


def test_one_item_as_html(sites, client) -> None:
    page = client.get("/places/ogc/collections/aq-site/items/ldn:aq-site:BL0", headers=BROWSER)
    main = _main(page.text)
    assert "<h1 class=\"govuk-heading-l\">Camden - Bloomsbury</h1>" in main
    assert '<svg class="app-place-map"' in main and 'href="/places/ldn:aq-site:BL0"' in main
    assert "Point at -0.125848, 51.522287" in main or "Point at -0.125848" in main
    bng = _main(client.get("/places/ogc/collections/aq-site/items/ldn:aq-site:BL0?f=html&crs="
                           "http://www.opengis.net/def/crs/EPSG/0/27700").text)
    assert "EPSG/0/27700" in bng
    feature = client.get("/places/ogc/collections/aq-site/items/ldn:aq-site:BL0").json()
    assert feature["id"] == "ldn:aq-site:BL0" and any(link["type"] == "text/html" for link in feature["links"])
