"""The demo data shipped in src/smartlondon/demo/data, and the demo catalogue plan built on it."""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from smartlondon.demo import prepare as prep
from smartlondon.core.reference import ORGANISATIONS_FILE
from smartlondon.demo.plan import FREQUENCIES, GEOGRAPHIES, THEMES, demo_datasets, resource_file, validate_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = REPO_ROOT / "src" / "smartlondon" / "demo" / "data"
SHARED = REPO_ROOT.parent / "shared" / "data"
GSS_CODES = [f"E090000{i:02d}" for i in range(1, 34)]
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def _polygons(feature: dict) -> list:
    geometry = feature["geometry"]
    return [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]


def _signed_area(ring: list) -> float:
    return sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(ring, ring[1:])) / 2


def _contains(feature: dict, lon: float, lat: float) -> bool:
    def in_ring(ring: list) -> bool:
        inside = False
        for (x1, y1), (x2, y2) in zip(ring, ring[1:]):
            if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
        return inside
    return any(in_ring(p[0]) and not any(in_ring(h) for h in p[1:]) for p in _polygons(feature))


@pytest.fixture(scope="module")
def boroughs() -> dict:
    return json.loads((DATA / "boroughs.geojson").read_text(encoding="utf-8"))


def test_total_size_is_small() -> None:
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert total < 6_000_000
    assert (DATA / "boroughs.geojson").stat().st_size < 600_000


def test_boroughs_are_the_33_london_local_authorities(boroughs: dict) -> None:
    assert boroughs["type"] == "FeatureCollection"
    features = boroughs["features"]
    assert len(features) == 33
    assert sorted(f["properties"]["gss_code"] for f in features) == GSS_CODES
    names = {f["properties"]["gss_code"]: f["properties"]["name"] for f in features}
    assert names["E09000001"] == "City of London" and names["E09000007"] == "Camden"
    for feature in features:
        props = feature["properties"]
        assert set(props) == {"name", "gss_code", "hectares", "inner_outer"}
        assert isinstance(props["hectares"], float) and props["hectares"] > 300
        assert props["inner_outer"] in ("Inner London", "Outer London")
    assert Counter(f["properties"]["inner_outer"] for f in features) == {"Inner London": 14, "Outer London": 19}


def test_borough_geometry_is_valid_rfc7946(boroughs: dict) -> None:
    for feature in boroughs["features"]:
        assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
        for polygon in _polygons(feature):
            for index, ring in enumerate(polygon):
                assert len(ring) >= 4 and ring[0] == ring[-1]
                # Right-hand rule: exteriors counter-clockwise, holes clockwise.
                assert (_signed_area(ring) > 0) == (index == 0)
                for lon, lat in ring:
                    assert -0.6 < lon < 0.4 and 51.2 < lat < 51.8
                    assert round(lon, 5) == lon and round(lat, 5) == lat


def test_camden_contains_its_point(boroughs: dict) -> None:
    by_code = {f["properties"]["gss_code"]: f for f in boroughs["features"]}
    hits = [f["properties"]["name"] for f in boroughs["features"] if _contains(f, -0.1426, 51.5390)]
    assert hits == ["Camden"]
    assert _contains(by_code["E09000033"], -0.1357, 51.4995)  # Westminster, Parliament Square area
    assert not _contains(by_code["E09000007"], -0.1357, 51.4995)


def test_neighbouring_boroughs_share_their_simplified_borders(boroughs: dict) -> None:
    segments: Counter = Counter()
    for feature in boroughs["features"]:
        for polygon in _polygons(feature):
            for ring in polygon:
                for a, b in zip(ring, ring[1:]):
                    segments[tuple(sorted((tuple(a), tuple(b))))] += 1
    shared = sum(1 for n in segments.values() if n == 2)
    assert shared > 1000  # both sides of each border are the same line: no gaps or slivers
    assert max(segments.values()) == 2


def test_douglas_peucker_keeps_ends_and_drops_near_points() -> None:
    line = [(0.0, 0.0), (1.0, 0.1), (2.0, -0.1), (3.0, 5.0), (4.0, 0.0)]
    assert prep.douglas_peucker(line, 0.5) == [(0.0, 0.0), (2.0, -0.1), (3.0, 5.0), (4.0, 0.0)]
    assert prep.douglas_peucker(line, 10.0) == [(0.0, 0.0), (4.0, 0.0)]


def test_organisations() -> None:
    orgs = json.loads(ORGANISATIONS_FILE.read_text(encoding="utf-8"))
    slugs = [o["slug"] for o in orgs]
    assert len(slugs) == len(set(slugs)) == 39
    for org in orgs:
        assert set(org) == {"slug", "name", "kind", "gss_code", "url"}
        assert SLUG_RE.match(org["slug"])
        assert org["url"] is None or org["url"].startswith("https://")
    las = [o for o in orgs if o["kind"] == "local-authority"]
    assert sorted(o["gss_code"] for o in las) == GSS_CODES
    for slug in ("greater-london-authority", "city-of-london", "kingston-upon-thames", "barking-and-dagenham",
                 "transport-for-london", "metropolitan-police-service", "london-fire-brigade",
                 "london-ambulance-service", "nhs-england-london"):
        assert slug in slugs


def test_imd_has_the_4835_london_lsoas() -> None:
    with (DATA / "imd2019-london-lsoa.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    assert header[0] == "LSOA code (2011)" and len(header) == 6
    assert len(rows) == 4835 == len({r[0] for r in rows})
    assert {r[2] for r in rows} == set(GSS_CODES)
    assert all(1 <= int(r[4]) <= 32844 and 1 <= int(r[5]) <= 10 for r in rows)


def test_fuel_poverty_by_london_lsoa() -> None:
    with (DATA / "fuel-poverty-2020-london-lsoa.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["lsoa_code", "lsoa_name", "la_code", "la_name", "households",
                             "fuel_poor_households", "proportion_fuel_poor_pct"]
    assert len(rows) == 4835
    with (DATA / "imd2019-london-lsoa.csv").open(encoding="utf-8", newline="") as f:
        imd_codes = {r[0] for r in list(csv.reader(f))[1:]}
    assert {r["lsoa_code"] for r in rows} == imd_codes
    for row in rows:
        households, poor, pct = int(row["households"]), int(row["fuel_poor_households"]), \
            float(row["proportion_fuel_poor_pct"])
        assert 0 <= poor <= households
        assert pct == pytest.approx(100 * poor / households, abs=0.01)


def test_laqn_readings_are_january_2023_only() -> None:
    with gzip.open(DATA / "laqn-hourly-2023-01.csv.gz", "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == ["site_code", "species_code", "measurement_date_gmt", "value"]
        months = Counter(row[2][:7] for row in reader)
    assert months == {"2023-01": 229_680}
    with (DATA / "laqn-sites.csv").open(encoding="utf-8", newline="") as f:
        assert len(list(csv.DictReader(f))) == 88


def test_datastore_a_z() -> None:
    entries = json.loads((DATA / "datastore-a-z-2010.json").read_text(encoding="utf-8"))
    assert len(entries) == 256
    for entry in entries:
        assert entry["title"] and entry["description"]
        assert entry["url"].startswith("https://data.london.gov.uk/datastore/package/")
        assert "&amp;" not in entry["description"] and "\xa0" not in entry["description"]
        assert "  " not in entry["title"] + entry["description"]
    first = entries[0]
    assert first["title"] == "Abandoned Vehicles" and first["categories"] == ["Environment"]
    assert any("London Fire & Emergency Planning Authority" in e["description"] for e in entries)


@pytest.fixture(scope="module")
def plan() -> list[dict]:
    return demo_datasets(DATA)


def test_plan_has_160_valid_datasets_with_unique_slugs(plan: list[dict]) -> None:
    assert len(plan) >= 160
    slugs = [d["slug"] for d in plan]
    assert len(slugs) == len(set(slugs))
    for slug in slugs:
        assert 3 <= len(slug) <= 100 and SLUG_RE.match(slug), slug
    orgs = {o["slug"] for o in json.loads(ORGANISATIONS_FILE.read_text(encoding="utf-8"))}
    for dataset in plan:
        assert validate_dataset(dataset, DATA) == [], dataset["slug"]
        assert dataset["publisher"] in orgs
        assert dataset["themes"] and set(dataset["themes"]) <= set(THEMES)
        assert dataset["frequency"] in FREQUENCIES and dataset["geography"] in GEOGRAPHIES
        assert set(dataset["boroughs"]) <= set(GSS_CODES)
        assert dataset["licence"] in ("OGL-UK-3.0", "OGL-UK-2.0")
        assert dataset["resources"]


def test_plan_files_exist_and_every_shipped_file_is_used(plan: list[dict]) -> None:
    files = {r["file"] for d in plan for r in d["resources"] if r["file"]}
    for name in files:
        assert resource_file(DATA, name).is_file(), name
    shipped = {p.relative_to(DATA).as_posix() for p in DATA.rglob("*") if p.is_file()} - {"README.md"}
    assert shipped <= files


def test_plan_is_deterministic(plan: list[dict]) -> None:
    assert demo_datasets(DATA) == plan


def test_prepare_reproduces_the_shipped_files(tmp_path: Path) -> None:
    prep.prepare(SHARED, tmp_path, organisations_file=tmp_path / "organisations.json")
    assert (tmp_path / "organisations.json").read_bytes() == ORGANISATIONS_FILE.read_bytes()
    for path in DATA.rglob("*"):
        if path.is_file():
            assert (tmp_path / path.relative_to(DATA)).read_bytes() == path.read_bytes(), path.name
