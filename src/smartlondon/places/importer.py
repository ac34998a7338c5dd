"""Reading places from files: shapefiles (with their .prj), GeoPackages, GeoJSON and CSV with coordinates.

``read_features`` yields (properties, shapely geometry in WGS84) whatever the file's format and
CRS; ``load_london`` loads the real London boundaries, TfL stations and LAQN sites into the
register through ``service.bulk_create`` (fast bulk inserts; containing areas from geometry).
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import shapefile
from pyproj import CRS
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from ..core.errors import BadRequest, PlatformError
from . import service, spatial

Feature = tuple[dict[str, Any], BaseGeometry, str]  # properties, geometry, its CRS (CRS84 or BNG)


def _crs_of_prj(path: Path) -> str:
    prj = path.with_suffix(".prj")
    if not prj.exists():
        return spatial.CRS84
    crs = CRS.from_wkt(prj.read_text())
    if crs.is_geographic:
        return spatial.CRS84
    if crs.equals(CRS.from_epsg(27700), ignore_axis_order=True) or "british national grid" in crs.name.lower().replace("_", " ") \
            or crs.to_epsg(min_confidence=50) == 27700:
        return spatial.BNG
    raise BadRequest(f"{prj.name} declares {crs.name}; the importer reads WGS84 lon/lat and British National Grid.")


def read_shapefile(path: Path) -> Iterator[Feature]:
    """Features of an ESRI shapefile, in the CRS its .prj declares."""
    crs = _crs_of_prj(path)
    reader = shapefile.Reader(str(path))
    try:
        names = [f[0] for f in reader.fields[1:]]
        for rec in reader.iterShapeRecords():
            yield dict(zip(names, list(rec.record))), shape(rec.shape.__geo_interface__), crs
    finally:
        reader.close()


def read_geojson(path: Path) -> Iterator[Feature]:
    """Features of a GeoJSON FeatureCollection (optionally gzipped), in WGS84."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
        data = json.load(handle)
    for feature in data.get("features", []):
        yield dict(feature.get("properties") or {}), spatial.parse_geometry(feature.get("geometry")), spatial.CRS84


def read_csv(path: Path) -> Iterator[Feature]:
    """Rows of a CSV with lon/lat (lon, lat, longitude, latitude, x, y) or easting/northing columns."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        cols = {c.lower().lstrip("@"): c for c in reader.fieldnames or []}
        east, north = cols.get("easting"), cols.get("northing")
        lon = next((cols[c] for c in ("lon", "longitude", "longitudewgs84", "x") if c in cols), None)
        lat = next((cols[c] for c in ("lat", "latitude", "latitudewgs84", "y") if c in cols), None)
        if not (east and north) and not (lon and lat):
            raise BadRequest(f"{path.name} has no coordinate columns: add lon/lat or easting/northing.")
        for n, row in enumerate(reader, start=2):
            try:
                if east and north and row[east] and row[north]:
                    yield dict(row), Point(float(row[east]), float(row[north])), spatial.BNG
                else:
                    yield dict(row), Point(float(row[lon]), float(row[lat])), spatial.CRS84  # type: ignore[index]
            except (TypeError, ValueError) as exc:
                raise BadRequest(f"{path.name} line {n}: the coordinates are not numbers ({exc}).") from exc


def read_geopackage(path: Path) -> Iterator[Feature]:
    """Features of the first feature table of a GeoPackage (WGS84 or British National Grid)."""
    import sqlite3

    import shapely

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        try:
            table, column, srs_id = conn.execute(
                "SELECT table_name, column_name, srs_id FROM gpkg_geometry_columns ORDER BY table_name").fetchone()
            org, code = conn.execute("SELECT organization, organization_coordsys_id FROM gpkg_spatial_ref_sys "
                                     "WHERE srs_id = ?", (srs_id,)).fetchone()
        except (sqlite3.DatabaseError, TypeError) as exc:
            raise BadRequest(f"{path.name} is not a GeoPackage with a feature table ({exc}).") from exc
        crs = {("EPSG", 4326): spatial.CRS84, ("EPSG", 27700): spatial.BNG}.get((str(org).upper(), int(code)))
        if crs is None:
            raise BadRequest(f"{path.name} is in {org}:{code}; the importer reads EPSG:4326 and EPSG:27700.")
        cursor = conn.execute(f'SELECT * FROM "{table}"')
        names = [d[0] for d in cursor.description]
        for row in cursor:
            props = dict(zip(names, row))
            blob = props.pop(column)
            if not blob or blob[:2] != b"GP":
                continue
            envelope = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}.get((blob[3] >> 1) & 0x07, 0)
            yield props, shapely.from_wkb(bytes(blob[8 + envelope:])), crs
    finally:
        conn.close()


def read_features(path: Path) -> Iterator[Feature]:
    """Features of a shapefile, GeoJSON or CSV file, by its extension."""
    name = path.name.lower()
    if not path.exists():
        raise BadRequest(f"There is no file {path}.")
    if name.endswith(".shp"):
        return read_shapefile(path)
    if name.endswith((".geojson", ".json", ".geojson.gz")):
        return read_geojson(path)
    if name.endswith(".csv"):
        return read_csv(path)
    if name.endswith(".gpkg"):
        return read_geopackage(path)
    raise BadRequest(f"{path.name}: the importer reads .shp, .gpkg, .geojson and .csv files.")


def import_file(session: Session, path: Path, *, kind: str, key_field: str, name_field: str, source: str,
                identifiers: dict[str, str] | None = None, keep: Callable[[dict[str, Any]], bool] | None = None,
                alt_name_fields: tuple[str, ...] = (), property_fields: tuple[str, ...] = (),
                actor: str = "importer", progress: Callable[[int], None] | None = None,
                official: bool = False, full: bool = False) -> service.BulkResult:
    """Load every feature of a file as a place of ``kind`` (identifiers: scheme -> field).

    Places already in the register (by uid) are updated where the file differs (name, alternative
    names, identifiers, geometry, properties; each change a version with the source as provenance)
    and left untouched where it does not. ``full`` says the file is the whole source: active places
    of ``kind`` first imported from ``source`` that the file no longer holds are retired.
    ``official`` files (the ONS/TfL/LAQN sources) may hold places beyond Greater London and a few
    touching polygon rings, which are rebuilt; other files must be valid and inside London.
    """
    result_refused: list[tuple[str, str]] = []
    seen: set[str] = set()

    def items() -> Iterator[service.NewPlace]:
        for n, (props, geom, crs) in enumerate(read_features(path), start=1):
            if progress:
                progress(n)
            if keep is not None and not keep(props):
                continue
            key = str(props.get(key_field) or "").strip()
            if not key:
                result_refused.append((f"#{n}", f"no value in {key_field}"))
                continue
            try:
                fp = spatial.footprint(geom, crs, check_london=not official, repair=official)
            except PlatformError as exc:
                result_refused.append((key, exc.message))
                seen.add(service.make_uid(kind, key))  # still in the source: not to be retired
                continue
            ids = {scheme: [str(props[f]).strip()] for scheme, f in (identifiers or {}).items()
                   if str(props.get(f) or "").strip()}
            alts = [str(props[f]).strip() for f in alt_name_fields if str(props.get(f) or "").strip()]
            yield service.NewPlace(kind=kind, key=key, name=str(props.get(name_field) or key).strip(), footprint=fp,
                                   identifiers=ids, alt_names=alts,
                                   properties={f: props.get(f) for f in property_fields if f in props})

    result = service.bulk_upsert(session, items(), source=source, actor=actor, seen=seen)
    result.refused = result_refused + result.refused
    if full:
        result.retired = service.retire_missing(session, kind=kind, source=source, present=seen, actor=actor)
    return result


def london_sources(data_dir: Path) -> list[dict[str, Any]]:
    """The real London files and how each maps onto the register, in load order (areas first)."""
    b = data_dir / "boundaries"
    census = ("USUALRES", "HHOLDS", "POPDEN")
    return [
        {"path": b / "London_Borough_Excluding_MHW.shp", "kind": "borough", "key_field": "GSS_CODE",
         "name_field": "NAME", "identifiers": {"gss": "GSS_CODE"}, "source": "ONS / GLA",
         "property_fields": ("HECTARES", "ONS_INNER")},
        {"path": b / "MSOA_2011_London_gen_MHW.shp", "kind": "msoa", "key_field": "MSOA11CD",
         "name_field": "MSOA11NM", "identifiers": {"gss": "MSOA11CD"}, "source": "ONS / GLA",
         "property_fields": ("LAD11CD",) + census},
        {"path": b / "LSOA_2011_London_gen_MHW.shp", "kind": "lsoa", "key_field": "LSOA11CD",
         "name_field": "LSOA11NM", "identifiers": {"gss": "LSOA11CD"}, "source": "ONS / GLA",
         "property_fields": ("MSOA11CD", "LAD11CD") + census},
        {"path": data_dir / "transport" / "tfl-stations-2022.csv", "kind": "station", "key_field": "NLC",
         "name_field": "NAME", "identifiers": {"nlc": "NLC"}, "source": "Transport for London",
         "property_fields": ("LINES", "NETWORK", "Zone")},
        {"path": data_dir / "air-quality" / "laqn-sites.csv", "kind": "aq-site", "key_field": "@SiteCode",
         "name_field": "@SiteName", "identifiers": {"laqn": "@SiteCode"}, "source": "London Air Quality Network",
         "property_fields": ("@LocalAuthorityName", "@SiteType", "@DateOpened", "@DateClosed")},
    ]


DEMO_DATA = Path(__file__).with_name("data")


def demo_sources() -> list[dict[str, Any]]:
    """The bundled copies (boundaries simplified to 5-10 m, as gzipped GeoJSON) of the London sources."""
    sources = london_sources(DEMO_DATA)
    files = {"borough": "boroughs.geojson.gz", "msoa": "msoas.geojson.gz", "lsoa": "lsoas.geojson.gz",
             "station": "tfl-stations-2022.csv", "aq-site": "laqn-sites.csv"}
    for src in sources:
        src["path"] = DEMO_DATA / files[src["kind"]]
    return sources


def load_demo(session: Session) -> dict[str, service.BulkResult]:
    """Load the bundled London areas, stations and air quality sites (the demo's step; idempotent)."""
    results: dict[str, service.BulkResult] = {}
    for src in demo_sources():
        src = dict(src)
        path = src.pop("path")
        results[src["kind"]] = import_file(session, path, official=True, **src)
        session.flush()
    return results


def load_london(session: Session, data_dir: Path, *, keep: dict[str, Callable[[dict[str, Any]], bool]] | None = None,
                kinds: tuple[str, ...] | None = None,
                on_source: Callable[[str, service.BulkResult], None] | None = None) -> dict[str, service.BulkResult]:
    """Load the real London areas, stations and air quality sites (idempotent: present places are left alone)."""
    results: dict[str, service.BulkResult] = {}
    for src in london_sources(data_dir):
        if kinds and src["kind"] not in kinds:
            continue
        src = dict(src)
        path = src.pop("path")
        results[src["kind"]] = import_file(session, path, keep=(keep or {}).get(src["kind"]), official=True, **src)
        session.flush()
        if on_source:
            on_source(src["kind"], results[src["kind"]])
    return results
