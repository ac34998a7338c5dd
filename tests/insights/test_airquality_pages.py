"""The air quality map page and "where you are" pages, on real nowcast runs made from a real LAQN extract.

Each test loads the places register (all 33 boroughs; Camden's MSOAs, LSOAs, stations and monitoring
sites), two days of 18 LAQN sites into the sensor hub, and runs the real nowcast for NO2, PM2.5 and
PM10 (a 1 km grid for the newest hour, area values only for the hours before it).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from smartlondon.insights.airquality import daqi, nowcast
from smartlondon.insights.airquality.presentation import hour_label, staleness
from smartlondon.places import importer
from smartlondon.sensors.laqn import load_laqn
from tests.conftest import SHARED_DATA
from tests.insights.extracts import SITES, write_extract

CAMDEN = "E09000007"
HISTORY = 6  # hours of area values before the newest hour
SPECIES = ("NO2", "PM25", "PM10")


def load_aq(db: Any, settings: Any, directory: Path, history: int = HISTORY) -> dict[str, Any]:
    """Places, two days of LAQN readings and nowcast runs of every species; the newest runs by species."""
    keep = {"borough": lambda r: True, "msoa": lambda r: r["LAD11CD"] == CAMDEN, "lsoa": lambda r: r["LAD11CD"] == CAMDEN,
            "aq-site": lambda r: r["@LocalAuthorityName"] == "Camden", "station": lambda r: True}
    with db.session() as session:
        importer.load_london(session, SHARED_DATA, keep=keep, kinds=("borough", "msoa", "lsoa", "station", "aq-site"))
    load_laqn(db, sites_path=SITES, hourly_path=write_extract(directory, days=2))
    latest = {}
    for species in SPECIES:
        run = nowcast.run_nowcast(db, settings, species, cell=1000)
        for back in range(1, history + 1):
            nowcast.run_nowcast(db, settings, species, run.hour - timedelta(hours=back), store_grid=False)
        latest[species] = run
    return latest


@pytest.fixture
def aq(db, settings, tmp_path: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return load_aq(db, settings, tmp_path)


def _main(html: str) -> str:
    return html.split("<main", 1)[1].split("</main>", 1)[0]


def _rows(html: str, table_id: str) -> list[list[str]]:
    """The body rows of a table as lists of cell texts (tags stripped)."""
    body = html.split(f'id="{table_id}"', 1)[1].split("<tbody", 1)[1].split("</tbody>", 1)[0]
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, flags=re.S)
        rows.append([" ".join(unescape(re.sub(r"<[^>]+>", " ", c)).split()) for c in cells])
    return rows


# --- the map page ----------------------------------------------------------------------------------

def test_the_map_page_shows_the_hour_the_image_and_a_table_matching_the_stored_values(db, client, aq) -> None:
    run = aq["NO2"]
    page = client.get("/insights/airquality")
    assert page.status_code == 200
    main = _main(page.text)
    assert f"Estimated for {hour_label(run.hour)}" in main and "Estimated for 10 January 2023, 23:00 GMT" in main
    # the demo data are from 2023: the page says plainly that this is not today's air
    assert "It is not today&#39;s air quality." in main or "It is not today's air quality." in main
    assert "govuk-warning-text" in main
    # without JavaScript: the grid as an image with a text alternative, and the table
    image = re.search(r'<img class="aq-map__image" src="([^"]+)"[^>]*alt="([^"]+)"', main)
    assert image is not None
    assert image.group(1) == "/api/airquality/nowcast/NO2/grid.png?hour=2023-01-10T23:00:00Z&amp;layer=mean"
    png = client.get(unescape(image.group(1)))
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert "Map of estimated NO₂ across London for 10 January 2023, 23:00 GMT" in image.group(2)
    with db.session() as session:
        stored = nowcast.area_values(session, run.id, kind="borough")
    rows = _rows(main, "aq-boroughs")
    assert len(rows) == len(stored) == 33
    assert [r[0] for r in rows] == sorted((r[0] for r in rows), key=str.lower)  # by name unless asked
    names = {r[0]: r for r in rows}
    camden = names["Camden"]
    mean, std = stored[CAMDEN]
    assert camden[1] == f"{mean:.1f}"
    assert camden[2] == f"{max(0.0, mean - 1.645 * std):.1f} to {mean + 1.645 * std:.1f}"
    described = daqi.describe("NO2", mean)
    assert camden[3] == f"{described['band']} ({daqi.index('NO2', mean)})"
    assert f'href="/insights/airquality/my-area/{CAMDEN}"' in main
    # the map's data for the script: the grid's bounds and both layers
    (south, west), (north, east) = nowcast.grid(client.app.state.settings, run).bounds_wgs84
    assert f'data-bounds="{json.dumps([[south, west], [north, east]])}"' in main
    assert 'data-std="/api/airquality/nowcast/NO2/grid.png?hour=2023-01-10T23:00:00Z&amp;layer=std"' in main
    # the legend: the image's colours and labels, and the uncertainty scale
    for label, colour in nowcast.legend("mean", "NO2") + nowcast.legend("std", "NO2"):
        assert f'fill="{colour}"' in main and label in unescape(main)
    # links to the data and the model card
    for link in ("/api/airquality/nowcast/NO2/lsoa.geojson?hour=2023-01-10T23:00:00Z",
                 "/api/airquality/nowcast/NO2/lsoa.csv?hour=2023-01-10T23:00:00Z",
                 "/api/airquality/nowcast/NO2/boroughs.geojson?hour=2023-01-10T23:00:00Z",
                 'href="/insights/airquality/model"', 'href="/insights/airquality/my-area"',
                 'href="/insights/airquality.json?species=NO2"'):
        assert unescape(link) in unescape(main)
    # the script and the style sheet are same-origin files the CSP allows
    assert '<script src="/insights/airquality/assets/airquality-map.js"></script>' in page.text
    assert client.get("/insights/airquality/assets/airquality-map.js").status_code == 200
    assert client.get("/insights/airquality/assets/airquality.css").headers["content-type"].startswith("text/css")
    assert client.get("/insights/airquality/assets/other.js").status_code == 404


def test_the_map_page_chooses_a_pollutant_and_sorts_by_links(db, client, aq) -> None:
    page = client.get("/insights/airquality", params={"species": "PM2.5", "sort": "level", "order": "desc"})
    assert page.status_code == 200
    main = _main(page.text)
    assert "Air quality in London: PM2.5" in main
    assert re.search(r'<input class="govuk-radios__input" id="species-2" name="species" type="radio" value="PM25" checked', main)
    levels = [float(r[1]) for r in _rows(main, "aq-boroughs")]
    assert len(levels) == 33 and levels == sorted(levels, reverse=True)
    assert "the map colours each hour&#39;s estimate" in main or "the map colours each hour's estimate" in main
    # the current column's header links to the other order, and says how it is sorted
    assert 'aria-sort="descending"><a class="govuk-link" href="/insights/airquality?species=PM25&amp;sort=level&amp;order=asc"' in main
    ascending = [float(r[1]) for r in _rows(_main(client.get("/insights/airquality?species=PM25&sort=level&order=asc").text),
                                                 "aq-boroughs")]
    assert ascending == sorted(levels)
    bands = _rows(_main(client.get("/insights/airquality?species=PM10&sort=band").text), "aq-boroughs")
    indexes = [int(r[3].rsplit("(", 1)[1].rstrip(")")) for r in bands]
    assert indexes == sorted(indexes, reverse=True)
    for bad in ({"species": "O3"}, {"sort": "colour"}, {"order": "up"}):
        answer = client.get("/insights/airquality", params=bad)
        assert answer.status_code == 400, bad
    assert "species must be NO2, PM2.5 or PM10" in client.get("/insights/airquality.json?species=O3").json()["error"]["message"]


def test_the_map_page_json_twin_has_the_same_values(db, client, aq) -> None:
    run = aq["PM10"]
    twin = client.get("/insights/airquality.json", params={"species": "PM10"})
    assert twin.status_code == 200 and twin.headers["content-type"].startswith("application/json")
    data = twin.json()
    assert data["species"] == "PM10" and data["hour"] == "2023-01-10T23:00:00Z" and data["staleness"]["stale"] is True
    assert data["run"]["id"] == run.id and data["run"]["method"] == run.method
    with db.session() as session:
        stored = nowcast.area_values(session, run.id, kind="borough")
    assert {b["code"]: b["mean"] for b in data["boroughs"]} == {c: round(m, 1) for c, (m, _s) in stored.items()}
    for b in data["boroughs"]:
        assert b["daqi"]["index"] == daqi.index("PM10", stored[b["code"]][0])
    assert [tuple(x.values()) for x in data["legend"]["mean"]] == nowcast.legend("mean", "PM10")
    (south, west), (north, east) = data["bounds"]
    assert 51.2 < south < north < 51.8 and -0.6 < west < east < 0.4
    assert data["links"]["modelCard"] == "http://testserver/insights/airquality/model"


def test_without_a_run_the_map_page_says_how_to_make_one(client) -> None:
    page = client.get("/insights/airquality")
    assert page.status_code == 200
    assert "There is no estimate of NO₂ yet." in page.text and "smartlondon insights airquality nowcast" in page.text
    assert client.get("/insights/airquality.json").json()["run"] is None


def test_the_nav_points_to_the_map_and_the_model_card_to_the_map(client) -> None:
    page = client.get("/insights/airquality/model").text
    assert re.search(r'<a class="govuk-service-navigation__link" href="/insights/airquality"[^>]*>\s*'
                     r'(<strong class="govuk-service-navigation__active-fallback">)?Air quality', page)
    assert 'href="/insights/airquality">the air quality map of London</a>' in page


def test_staleness_says_how_old_an_estimate_is() -> None:
    hour = datetime(2023, 3, 31, 23, tzinfo=timezone.utc)
    assert staleness(hour, hour + timedelta(minutes=70))["stale"] is False
    old = staleness(hour, hour + timedelta(days=3, hours=2))
    assert old["stale"] and old["text"].startswith("This estimate is 3 days old")
    assert staleness(hour, hour + timedelta(hours=5))["text"].startswith("This estimate is 5 hours old")
    assert hour_label(hour) == "31 March 2023, 23:00 GMT"


# --- where you are ----------------------------------------------------------------------------------

def test_a_borough_page_shows_each_species_with_its_band_advice_and_48_hours(db, client, aq) -> None:
    page = client.get(f"/insights/airquality/my-area/{CAMDEN}")
    assert page.status_code == 200
    main = _main(page.text)
    assert "Air quality in Camden" in main and "Estimated for 10 January 2023, 23:00 GMT" in main
    with db.session() as session:
        series = {s: nowcast.area_series(session, s, CAMDEN, hours=48, until=aq[s].hour) for s in SPECIES}
    assert all(len(v) == HISTORY + 1 for v in series.values())
    twin = client.get(f"/insights/airquality/my-area/{CAMDEN}.json").json()
    assert twin["code"] == CAMDEN and twin["kind"] == "borough" and twin["name"] == "Camden"
    for block in twin["species"]:
        key = block["species"]
        hour, mean, std = series[key][-1]
        current = block["current"]
        assert current["mean"] == round(mean, 1) and current["lower"] == round(max(0.0, mean - 1.645 * std), 1)
        assert current["upper"] == round(mean + 1.645 * std, 1)
        # NO2's index is on the hour; PM's on the running mean of the last 24 hours' estimates (7 here)
        if key == "NO2":
            basis = mean
            assert current["daqiBasis"]["hours"] == 1
        else:
            basis = sum(m for _h, m, _s in series[key]) / len(series[key])
            assert current["daqiBasis"]["hours"] == HISTORY + 1 and "24-hour running mean" in current["daqiBasis"]["what"]
        index = daqi.index(key, basis)
        assert current["daqi"]["index"] == index
        band = daqi.band(index)
        assert current["daqi"]["band"] == band.name and current["daqi"]["general"] == band.general
        assert current["daqi"]["at_risk"] == band.at_risk
        assert [p["mean"] for p in block["series"]] == [round(m, 1) for _h, m, _s in series[key]]
        # the page says the same: band text (not colour alone), advice, range, how sure
        assert f"{index} ({band.name})" in main
        assert f"Likely between {current['lower']:.0f} and {current['upper']:.0f} µg/m³" in main
        assert unescape(current["sure"]) in unescape(main)
    assert main.count('<svg class="aq-chart"') == 3 and main.count("<polyline") == 3
    # the chart's table: one row per stored hour, newest first, the same numbers
    for key, label in (("NO2", "NO₂"), ("PM25", "PM2.5"), ("PM10", "PM10")):
        table = main.split(f'id="table-{key}"', 1)[1].split("</table>", 1)[0]
        cells = re.findall(r'govuk-table__cell--numeric">([\d.]+)</td>', table)
        assert [float(c) for c in cells[::3]] == [round(m, 1) for _h, m, _s in reversed(series[key])]
    assert "People at risk are adults and children with lung or heart problems" in main


def test_an_lsoa_page_names_its_borough(db, client, aq) -> None:
    with db.session() as session:
        codes = sorted(nowcast.area_values(session, aq["NO2"].id, kind="lsoa"))
    assert len(codes) == 133  # Camden's LSOAs: the places register holds only those here
    page = client.get(f"/insights/airquality/my-area/{codes[0]}")
    assert page.status_code == 200
    main = _main(page.text)
    assert f"Small area (LSOA) {codes[0]}, in <a class=\"govuk-link\" href=\"/insights/airquality/my-area/{CAMDEN}\">Camden</a>" in main
    assert "Air quality in Camden 0" in main  # LSOA names are the borough's name and a number


def test_an_unknown_or_malformed_code_is_a_helpful_404(db, client, aq) -> None:
    for code in ("E01999999", "nonsense", "E09000099"):
        page = client.get(f"/insights/airquality/my-area/{code}")
        assert page.status_code == 404, code
        main = _main(page.text)
        assert "We could not find that area" in main and f"We have no air quality estimate for ‘{code}’" in main
        assert 'name="q"' in main and 'name="borough"' in main  # the form to find it another way
    assert client.get("/insights/airquality/my-area/nonsense.json").json()["message"].startswith("We have no air quality")


def test_the_form_finds_a_borough_a_station_and_a_monitoring_site(db, client, aq) -> None:
    form = client.get("/insights/airquality/my-area")
    assert form.status_code == 200
    assert form.text.count('<option value="E09') == 33
    found = client.get("/insights/airquality/my-area", params={"borough": CAMDEN}, follow_redirects=False)
    assert found.status_code == 303 and found.headers["location"] == f"/insights/airquality/my-area/{CAMDEN}"
    borough = client.get("/insights/airquality/my-area", params={"q": "Camden"}, follow_redirects=False)
    assert borough.status_code == 303 and borough.headers["location"] == f"/insights/airquality/my-area/{CAMDEN}"
    # a place that is not an area resolves to the LSOA containing it
    with db.session() as session:
        lsoas = set(nowcast.area_values(session, aq["NO2"].id, kind="lsoa"))
    # a monitoring site and a station: the LSOA they are in; an MSOA: the LSOA holding its point
    for name, expected in (("Camden - Bloomsbury", "E01000855"), ("Camden Town", "E01000863"), ("Camden 001", None)):
        answer = client.get("/insights/airquality/my-area.json", params={"q": name})
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json()["code"] in lsoas and answer.json()["code"] == (expected or answer.json()["code"]), name
        assert answer.json()["place"]["name"] == name
        redirect = client.get("/insights/airquality/my-area", params={"q": name}, follow_redirects=False)
        assert redirect.status_code == 303 and redirect.headers["location"] == f"/insights/airquality/my-area/{answer.json()['code']}"
    followed = client.get("/insights/airquality/my-area", params={"q": "Camden Town"})
    assert followed.status_code == 200 and "Air quality in Camden 0" in followed.text


def test_the_form_explains_no_match_an_empty_name_and_a_bad_borough(db, client, aq) -> None:
    none = client.get("/insights/airquality/my-area", params={"q": "Zzyzx Qwerty"})
    assert none.status_code == 422
    main = _main(none.text)
    assert "govuk-error-summary" in main and "No place in London matches ‘Zzyzx Qwerty’" in main
    assert 'href="#q"' in main and 'value="Zzyzx Qwerty"' in main  # the summary links to the field, kept
    assert "<title>Error: Air quality where you are" in none.text
    empty = client.get("/insights/airquality/my-area", params={"q": "  "})
    assert empty.status_code == 422 and "Enter a place name" in empty.text
    bad = client.get("/insights/airquality/my-area", params={"borough": "E09000099"})
    assert bad.status_code == 422 and "Choose a London borough from the list." in bad.text and 'href="#borough"' in bad.text
    unknown = client.get("/insights/airquality/my-area", params={"place": "ldn:station:nope"})
    assert unknown.status_code == 422 and "is not in the register" in unknown.text


def test_an_ambiguous_name_offers_the_choices(db, client, aq) -> None:
    answer = client.get("/insights/airquality/my-area", params={"q": "Euston"})
    assert answer.status_code == 422
    main = _main(answer.text)
    assert "‘Euston’ matches 3 places. Choose the one you mean." in main and 'href="#place"' in main
    uids = re.findall(r'name="place" type="radio" value="([^"]+)"', main)
    assert len(uids) == 3 and all(u.startswith("ldn:station:") for u in uids)
    assert "Euston Square" in main and "Station, Camden" in main  # the choices say what and where they are
    data = client.get("/insights/airquality/my-area.json", params={"q": "Euston"}).json()
    assert [c["uid"] for c in data["choices"]] == uids
    chosen = client.get("/insights/airquality/my-area", params={"q": "Euston", "place": uids[-1]}, follow_redirects=False)
    assert chosen.status_code == 303 and chosen.headers["location"] == "/insights/airquality/my-area/E01000852"
    both = client.get("/insights/airquality/my-area", params={"q": "Westminster"})  # a borough and a station
    assert both.status_code == 422 and "Borough" in _main(both.text) and "Station" in _main(both.text)
