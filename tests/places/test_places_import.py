"""Loading the real London boundaries, TfL stations and LAQN sites into the register."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from smartlondon.core.errors import BadRequest
from smartlondon.places import importer, service, spatial
from smartlondon.places.models import Place, PlaceVersion

from ..conftest import SHARED_DATA


def test_the_whole_of_london_loads_with_the_published_counts(db) -> None:
    started = time.perf_counter()
    with db.session() as session:
        results = importer.load_london(session, SHARED_DATA)
    elapsed = time.perf_counter() - started
    assert {k: r.created for k, r in results.items()} == {
        "borough": 33, "msoa": 983, "lsoa": 4835, "station": 470, "aq-site": 88}
    # The TfL file gives NLC 3186 to two stations; the second is refused with a reason, not silently merged.
    assert [(k, r) for k, r in results["station"].refused] == [("3186", "the key '3186' appears twice in the input")]
    assert elapsed < 60
    with db.session() as session:
        records = {r.uid: r for r in service.iter_match_records(session)}
        assert len(records) == 33 + 983 + 4835 + 470 + 88
        assert session.scalar(select(func.count()).select_from(PlaceVersion)) == len(records)
        # Containing areas computed from geometry agree with the codes the ONS records carry.
        lsoas = [r for r in records.values() if r.kind == "lsoa"]
        props = dict(session.execute(select(Place.uid, Place.properties).where(Place.kind == "lsoa")).all())
        wrong_msoa = [r.uid for r in lsoas if r.areas.get("msoa") != f"ldn:msoa:{props[r.uid]['MSOA11CD']}"]
        wrong_borough = [r.uid for r in lsoas if r.areas.get("borough") != f"ldn:borough:{props[r.uid]['LAD11CD']}"]
        assert wrong_msoa == [] and wrong_borough == []
        # LAQN sites are assigned the borough their own record names, except a few that their borough runs
        # just across its boundary: each of those lies within 2 km of the borough it names.
        borough_names = {r.uid: r.name for r in records.values() if r.kind == "borough"}
        outlines = {p.name: spatial.parse_geometry(p.geometry_bng)
                    for p in session.scalars(select(Place).where(Place.kind == "borough"))}
        sites = {p.uid: p for p in session.scalars(select(Place).where(Place.kind == "aq-site"))}
        mismatched = []
        for uid, site in sites.items():
            borough = records[uid].areas.get("borough")
            named = site.properties["@LocalAuthorityName"]  # "Richmond" for Richmond upon Thames
            named = next(name for name in outlines if name.startswith(named))
            if borough and borough_names[borough] != named:
                mismatched.append(uid)
                assert outlines[named].distance(spatial.parse_geometry(site.geometry_bng)) < 2000, uid
        assert len(mismatched) <= 5
        assert sum(1 for uid in sites if records[uid].areas.get("borough")) >= 80
        assert records["ldn:station:628"].name == "Lambeth North"
        assert records["ldn:station:628"].areas["borough"] == "ldn:borough:E09000022"  # Lambeth


def test_reprojection_to_british_national_grid_is_exact_both_ways(db) -> None:
    rows = list(csv.DictReader(open(SHARED_DATA / "transport" / "tfl-stations-2022.csv", encoding="utf-8")))
    with db.session() as session:
        importer.load_london(session, SHARED_DATA, kinds=("station",))
        stored = {p.uid: p for p in session.scalars(select(Place).where(Place.kind == "station"))}
        for row in rows[:100]:
            place = stored[f"ldn:station:{row['NLC']}"]
            # The file's eastings/northings are kept to the millimetre in the BNG geometry...
            e, n = place.geometry_bng["coordinates"]
            assert (e, n) == (float(row["EASTING"]), float(row["NORTHING"]))
            # ... and the WGS84 point reprojects back onto them within a centimetre.
            back = spatial.to_bng(spatial.parse_geometry(place.geometry))
            assert math.hypot(back.x - e, back.y - n) < 0.01


def test_loading_twice_changes_nothing(db) -> None:
    with db.session() as session:
        first = importer.load_london(session, SHARED_DATA, kinds=("borough", "aq-site"))
    with db.session() as session:
        second = importer.load_london(session, SHARED_DATA, kinds=("borough", "aq-site"))
        assert (first["borough"].created, second["borough"].created, second["borough"].unchanged) == (33, 0, 33)
        assert session.scalar(select(func.count()).select_from(Place)) == 33 + 88


def test_a_csv_without_coordinates_is_refused_with_a_message(db, tmp_path: Path) -> None:
    path = tmp_path / "venues.csv"
    path.write_text("id,name\n1,Roundhouse\n")
    with db.session() as session, pytest.raises(BadRequest, match="no coordinate columns"):
        importer.import_file(session, path, kind="cultural-venue", key_field="id", name_field="name", source="GLA")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Place)) == 0


def test_a_csv_import_refuses_rows_outside_london_and_keeps_the_rest(db, tmp_path: Path) -> None:
    path = tmp_path / "venues.csv"
    path.write_text("id,name,lon,lat\nroundhouse,Roundhouse,-0.1519,51.5432\nparis,Louvre,2.3376,48.8606\n")
    with db.session() as session:
        result = importer.import_file(session, path, kind="cultural-venue", key_field="id", name_field="name",
                                      source="GLA Culture")
    assert result.created == 1
    assert result.refused[0][0] == "paris" and "outside London" in result.refused[0][1]
    with db.session() as session:
        place = service.get_place(session, "ldn:cultural-venue:roundhouse")
        assert place.names[0].source == "GLA Culture"


def test_the_demo_loads_the_bundled_copies(db) -> None:
    with db.session() as session:
        results = importer.load_demo(session)
    assert {k: r.created for k, r in results.items()} == {
        "borough": 33, "msoa": 983, "lsoa": 4835, "station": 470, "aq-site": 88}
    with db.session() as session:
        kx = service.place_dict(session, service.get_place(session, "ldn:station:625"))
        assert kx["name"] == "King's Cross St. Pancras"
        assert {a["kind"]: a["name"] for a in kx["areas"]}["borough"] == "Camden"


def _geopackage(path: Path, rows: list[tuple[str, str, object]], srs: int) -> None:
    """A minimal GeoPackage (the tables the standard requires for one feature table)."""
    import sqlite3
    import struct

    import shapely

    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT, srs_id INTEGER PRIMARY KEY, organization TEXT, "
        "organization_coordsys_id INTEGER, definition TEXT, description TEXT);"
        "CREATE TABLE gpkg_contents (table_name TEXT PRIMARY KEY, data_type TEXT, identifier TEXT, srs_id INTEGER);"
        "CREATE TABLE gpkg_geometry_columns (table_name TEXT, column_name TEXT, geometry_type_name TEXT, "
        "srs_id INTEGER, z INTEGER, m INTEGER);"
        "CREATE TABLE parks (fid INTEGER PRIMARY KEY, code TEXT, name TEXT, geom BLOB);")
    conn.execute("INSERT INTO gpkg_spatial_ref_sys VALUES ('srs', ?, 'EPSG', ?, 'undefined', '')", (srs, srs))
    conn.execute("INSERT INTO gpkg_contents VALUES ('parks', 'features', 'parks', ?)", (srs,))
    conn.execute("INSERT INTO gpkg_geometry_columns VALUES ('parks', 'geom', 'GEOMETRY', ?, 0, 0)", (srs,))
    for code, name, geom in rows:
        blob = b"GP" + bytes([0, 0b00000001]) + struct.pack("<i", srs) + shapely.to_wkb(geom, byte_order=1)
        conn.execute("INSERT INTO parks (code, name, geom) VALUES (?, ?, ?)", (code, name, blob))
    conn.commit()
    conn.close()


def test_a_geopackage_in_british_national_grid_imports(db, tmp_path: Path) -> None:
    from shapely.geometry import box

    path = tmp_path / "parks.gpkg"
    _geopackage(path, [("regents", "Regent's Park", box(527500, 182300, 528700, 183500))], 27700)
    with db.session() as session:
        result = importer.import_file(session, path, kind="park", key_field="code", name_field="name",
                                      source="Royal Parks")
        assert result.created == 1
        park = service.get_place(session, "ldn:park:regents")
        assert park.geometry_bng["coordinates"][0][0] in ([527500.0, 182300.0], [528700.0, 182300.0],
                                                          [528700.0, 183500.0], [527500.0, 183500.0])
        assert -0.17 < park.point_lon < -0.14 and 51.52 < park.point_lat < 51.54


def test_a_file_that_is_not_a_geopackage_is_refused(db, tmp_path: Path) -> None:
    path = tmp_path / "broken.gpkg"
    path.write_bytes(b"not a database at all")
    with db.session() as session, pytest.raises(BadRequest, match="not a GeoPackage"):
        importer.import_file(session, path, kind="park", key_field="code", name_field="name", source="x")
