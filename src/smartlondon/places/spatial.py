"""Spatial work on places: checking and reprojecting geometries, and the spatial queries.

Geometries arrive as GeoJSON (WGS84 lon/lat, or British National Grid eastings/northings) and are
checked (valid, not self-intersecting, in London) before they are stored in both CRSs. Queries
use the database's spatial index for candidates and an exact predicate for the answer: on
PostgreSQL the GiST index on ``place.geom`` and PostGIS, on SQLite the R*Tree ``place_rtree`` and
shapely (registered as SQL functions), so both give the same answers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import shapely
from pyproj import Transformer
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from ..core.db import sqlite_function
from ..core.errors import BadRequest, ValidationFailed

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
BNG = "http://www.opengis.net/def/crs/EPSG/0/27700"
CRS_ALIASES = {CRS84: CRS84, "CRS84": CRS84, "EPSG:4326": CRS84, "http://www.opengis.net/def/crs/EPSG/0/4326": CRS84,
               BNG: BNG, "EPSG:27700": BNG, "27700": BNG}
# Greater London with a margin of a few kilometres (lon/lat): anything outside is refused.
LONDON = (-0.62, 51.22, 0.42, 51.76)
AREA_KINDS = ("borough", "ward", "msoa", "lsoa")
PRECISION = 7  # decimal places kept for WGS84 coordinates (about 1 cm)

_TO_BNG = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)
_TO_WGS84 = Transformer.from_crs("EPSG:27700", "EPSG:4326", always_xy=True)


def to_bng(geom: BaseGeometry) -> BaseGeometry:
    """Reproject a WGS84 (lon/lat) geometry to British National Grid (EPSG:27700)."""
    return shapely.transform(geom, lambda xy: _vector(_TO_BNG, xy))


def to_wgs84(geom: BaseGeometry) -> BaseGeometry:
    """Reproject a British National Grid geometry to WGS84 lon/lat."""
    return shapely.transform(geom, lambda xy: _vector(_TO_WGS84, xy))


def _vector(transformer: Transformer, xy: Any) -> Any:
    import numpy as np

    x, y = transformer.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])


def normalise_crs(value: str | None, field: str = "crs") -> str:
    """The canonical URI of a supported CRS; 400 for any other."""
    if value in (None, ""):
        return CRS84
    crs = CRS_ALIASES.get(value.strip())
    if crs is None:
        raise BadRequest(f"The {field} {value!r} is not supported. Use {CRS84} (lon/lat) or {BNG} "
                         "(British National Grid).", {field: "Unsupported CRS."})
    return crs


@dataclass(frozen=True)
class Footprint:
    """A checked geometry, ready to store: both CRSs, the bounding box and a representative point."""

    wgs84: dict[str, Any]
    bng: dict[str, Any]
    bbox: tuple[float, float, float, float]
    point: tuple[float, float]
    shape: BaseGeometry


def parse_geometry(value: Any, field: str = "geometry") -> BaseGeometry:
    """A shapely geometry from a GeoJSON geometry object; 422 with a message if it is not one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValidationFailed(f"The {field} is not valid JSON: {exc}.", {field: "Not JSON."}) from exc
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict) or "type" not in value or "coordinates" not in value:
        raise ValidationFailed(f"The {field} must be a GeoJSON geometry, like "
                               '{"type": "Point", "coordinates": [-0.1246, 51.5308]}.', {field: "Not a GeoJSON geometry."})
    try:
        geom = shape(value)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise ValidationFailed(f"The {field} could not be read as GeoJSON: {exc}.", {field: "Malformed coordinates."}) from exc
    if geom.is_empty:
        raise ValidationFailed(f"The {field} is empty.", {field: "Empty geometry."})
    return geom


def footprint(geom: BaseGeometry, crs: str = CRS84, field: str = "geometry", *,
              check_london: bool = True, repair: bool = False) -> Footprint:
    """Check a geometry (valid, in London) and compute what is stored of it; 422 with a message if not."""
    crs = normalise_crs(crs)
    minx, miny, maxx, maxy = geom.bounds
    if crs == CRS84:
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            hint = (" They look like British National Grid eastings/northings: send crs "
                    f"{BNG}." if 0 <= minx <= 700000 and 0 <= miny <= 1300000 else "")
            raise ValidationFailed(f"The {field}'s coordinates are not longitude/latitude in degrees.{hint}",
                                   {field: "Coordinates out of range for WGS84."})
        wgs, bng = geom, to_bng(geom)
    else:
        if not (0 <= minx <= maxx <= 700000 and 0 <= miny <= maxy <= 1300000):
            raise ValidationFailed(f"The {field}'s coordinates are not British National Grid eastings/northings "
                                   "in metres.", {field: "Coordinates out of range for EPSG:27700."})
        wgs, bng = to_wgs84(geom), geom
    if not geom.is_valid and repair and geom.geom_type in ("Polygon", "MultiPolygon"):
        geom = geom.buffer(0)  # official boundary files carry a few touching rings; rebuild them
        wgs, bng = (geom, to_bng(geom)) if crs == CRS84 else (to_wgs84(geom), geom)
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        raise ValidationFailed(f"The {field} is not a valid geometry ({reason}): a polygon must not cross "
                               "itself and its rings must be closed.", {field: f"Invalid geometry: {reason}."})
    wgs = shapely.set_precision(wgs, 10 ** -PRECISION) if wgs.geom_type == "Point" else wgs
    lon0, lat0, lon1, lat1 = wgs.bounds
    if check_london and not (LONDON[0] <= lon0 and lon1 <= LONDON[2] and LONDON[1] <= lat0 and lat1 <= LONDON[3]):
        raise ValidationFailed(f"The {field} is outside London (it spans lon {lon0:.4f}..{lon1:.4f}, lat "
                               f"{lat0:.4f}..{lat1:.4f}); the register holds places in Greater London.",
                               {field: "Outside London."})
    point = wgs if wgs.geom_type == "Point" else wgs.point_on_surface()
    return Footprint(wgs84=_rounded(mapping(wgs), PRECISION), bng=_rounded(mapping(bng), 3),
                     bbox=(lon0, lat0, lon1, lat1), point=(round(point.x, PRECISION), round(point.y, PRECISION)),
                     shape=wgs)


def _rounded(geojson: Any, places: int) -> dict[str, Any]:
    def position(value: Any) -> list[Any]:
        return [round(v, places) if isinstance(v, float) else v for v in value]

    def walk(value: Any) -> Any:
        # A list of positions (a ring or a line) is rounded in one comprehension, not a call per
        # position and per coordinate: a whole-London import rounds about two million coordinates.
        if value and value[0] and not isinstance(value[0][0], (list, tuple)):
            return [position(v) for v in value]
        return [walk(v) for v in value]

    coordinates = geojson["coordinates"]
    if coordinates and not isinstance(coordinates[0], (list, tuple)):  # a Point's single position
        return {"type": geojson["type"], "coordinates": position(coordinates)}
    return {"type": geojson["type"], "coordinates": walk(coordinates)}


def parse_bbox(value: str | None, crs: str = CRS84, field: str = "bbox") -> BaseGeometry | None:
    """A WGS84 polygon from ``minx,miny,maxx,maxy`` in ``crs``; 400 with a message if malformed."""
    if value in (None, ""):
        return None
    parts = value.split(",")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (4, 6) or not all(math.isfinite(n) for n in numbers):
        raise BadRequest(f"The {field} must be four numbers: min x, min y, max x, max y, separated by commas "
                         "(for example -0.15,51.50,-0.10,51.53).", {field: "Not four numbers."})
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    x0, y0, x1, y1 = numbers
    if x0 > x1 or y0 > y1:
        raise BadRequest(f"The {field}'s minimum must not be greater than its maximum.", {field: "Min above max."})
    crs = normalise_crs(crs, "bbox-crs")
    if crs == CRS84:
        if not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= 90 and -90 <= y1 <= 90):
            raise BadRequest(f"The {field} is not in longitude/latitude; for eastings/northings also send "
                             f"bbox-crs={BNG}.", {field: "Out of range for CRS84."})
        return box(x0, y0, x1, y1)
    return to_wgs84(box(x0, y0, x1, y1).segmentize(50.0))


# --- SQL functions for SQLite (PostGIS has its own) ------------------------------------------

@lru_cache(maxsize=20000)
def _cached_shape(geojson: str) -> BaseGeometry:
    geom = shapely.from_geojson(geojson)
    shapely.prepare(geom)
    return geom


@sqlite_function("place_covers_point", 3)
def _covers_point(geojson: str | None, lon: float, lat: float) -> int:
    if geojson is None:
        return 0
    return int(shapely.intersects_xy(_cached_shape(geojson), lon, lat))


@sqlite_function("place_intersects", 2)
def _intersects(geojson: str | None, other: str) -> int:
    if geojson is None:
        return 0
    return int(_cached_shape(geojson).intersects(_cached_shape(other)))


@sqlite_function("place_within", 2)
def _within(geojson: str | None, other: str) -> int:
    if geojson is None:
        return 0
    return int(_cached_shape(other).covers(_cached_shape(geojson)))


class ShapeCache:
    """Prepared shapely geometries of places, loaded lazily and kept by place id (thread-safe, bounded).

    An entry is reused while the place's ``geometry_asserted_at`` (moved by every geometry change)
    is the same, so the first reverse-geocode call parses only the few areas around its point.
    """

    def __init__(self, max_entries: int = 20000) -> None:
        import threading
        from collections import OrderedDict

        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._shapes: OrderedDict[tuple[str, int], tuple[Any, BaseGeometry]] = OrderedDict()

    def get_many(self, session: Session, wanted: Sequence[tuple[int, Any]]) -> dict[int, BaseGeometry]:
        """Prepared shapes for (place id, geometry_asserted_at) pairs; missing ones read in one query."""
        db = str(session.get_bind().url)
        out: dict[int, BaseGeometry] = {}
        missing: list[int] = []
        with self._lock:
            for pid, stamp in wanted:
                held = self._shapes.get((db, pid))
                if held is not None and held[0] == str(stamp):
                    self._shapes.move_to_end((db, pid))
                    out[pid] = held[1]
                else:
                    missing.append(pid)
        if missing:
            marks = ", ".join(f":i{n}" for n in range(len(missing)))
            rows = session.execute(text(f"SELECT id, geometry_asserted_at, geometry FROM place WHERE id IN ({marks}) "
                                        "AND geometry IS NOT NULL"), {f"i{n}": pid for n, pid in enumerate(missing)})
            loaded = []
            for pid, stamp, geometry in rows:
                geom = shapely.from_geojson(geometry) if isinstance(geometry, str) else shape(geometry)
                shapely.prepare(geom)
                loaded.append((pid, stamp, geom))
                out[pid] = geom
            with self._lock:
                for pid, stamp, geom in loaded:
                    self._shapes[(db, pid)] = (str(stamp), geom)
                while len(self._shapes) > self.max_entries:
                    self._shapes.popitem(last=False)
        return out

    def clear(self) -> None:
        """Forget every shape."""
        with self._lock:
            self._shapes.clear()


SHAPES = ShapeCache()


# --- queries --------------------------------------------------------------------------------

def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def areas_at(session: Session, lon: float, lat: float, kinds: Sequence[str] = AREA_KINDS,
             exclude_id: int | None = None) -> list[tuple[int, str, str, str]]:
    """The active areas of ``kinds`` containing a point: (id, uid, kind, name), smallest kind last."""
    kinds = list(kinds)
    params: dict[str, Any] = {"lon": lon, "lat": lat, "exclude": exclude_id or -1}
    kind_sql = ", ".join(f":k{i}" for i in range(len(kinds)))
    params.update({f"k{i}": k for i, k in enumerate(kinds)})
    if _dialect(session) == "postgresql":
        sql = ("SELECT p.id, p.uid, p.kind, p.name FROM place p WHERE p.status = 'active' "
               f"AND p.kind IN ({kind_sql}) AND p.id <> :exclude "
               "AND ST_Intersects(p.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))")
    else:
        # candidates from the R*Tree; the exact test against shapes cached by place id (parsed once)
        sql = ("SELECT p.id, p.uid, p.kind, p.name, p.geometry_asserted_at FROM place_rtree r "
               "CROSS JOIN place p ON p.id = r.id "  # CROSS JOIN: SQLite must start from the R*Tree
               "WHERE r.min_lon <= :lon AND r.max_lon >= :lon AND r.min_lat <= :lat AND r.max_lat >= :lat "
               f"AND p.status = 'active' AND p.kind IN ({kind_sql}) AND p.id <> :exclude")
        found = [tuple(r) for r in session.execute(text(sql), params)]
        shapes = SHAPES.get_many(session, [(r[0], r[4]) for r in found])
        rows = [r[:4] for r in found if shapes.get(r[0]) is not None and shapely.intersects_xy(shapes[r[0]], lon, lat)]
        order = {k: i for i, k in enumerate(AREA_KINDS)}
        return sorted(rows, key=lambda r: (order.get(r[2], 99), r[1]))  # type: ignore[return-value]
    rows = [tuple(r) for r in session.execute(text(sql), params)]
    order = {k: i for i, k in enumerate(AREA_KINDS)}
    return sorted(rows, key=lambda r: (order.get(r[2], 99), r[1]))  # type: ignore[return-value]


def query_ids(session: Session, region: BaseGeometry | None = None, *, kinds: Iterable[str] = (),
              relation: str = "intersects", statuses: Sequence[str] = ("active",)) -> list[int]:
    """Ids of places (of ``kinds``, if any) whose geometry intersects, or lies within, ``region``; ordered by id."""
    if relation not in ("intersects", "within"):
        raise BadRequest("The relation must be 'intersects' or 'within'.", {"relation": "Unknown relation."})
    kinds = list(kinds)
    params: dict[str, Any] = {f"s{i}": s for i, s in enumerate(statuses)}
    where = [f"p.status IN ({', '.join(f':s{i}' for i in range(len(statuses)))})"]
    if kinds:
        params.update({f"k{i}": k for i, k in enumerate(kinds)})
        where.append(f"p.kind IN ({', '.join(f':k{i}' for i in range(len(kinds)))})")
    dialect = _dialect(session)
    if region is None:
        sql = f"SELECT p.id FROM place p WHERE {' AND '.join(where)} ORDER BY p.id"
    elif dialect == "postgresql":
        params["region"] = json.dumps(mapping(region))
        fn = "ST_Intersects" if relation == "intersects" else "ST_CoveredBy"
        where.append(f"{fn}(p.geom, ST_SetSRID(ST_GeomFromGeoJSON(:region), 4326))")
        sql = f"SELECT p.id FROM place p WHERE {' AND '.join(where)} ORDER BY p.id"
    else:
        x0, y0, x1, y1 = region.bounds
        params.update(x0=x0, y0=y0, x1=x1, y1=y1)
        candidates = ("p.id IN (SELECT id FROM place_rtree WHERE max_lon >= :x0 AND min_lon <= :x1 "
                      "AND max_lat >= :y0 AND min_lat <= :y1)")
        where.insert(0, candidates)
        params["region"] = json.dumps(mapping(region))
        fn = "place_intersects" if relation == "intersects" else "place_within"
        exact = f"{fn}(p.geometry, :region)"
        if region.equals(box(x0, y0, x1, y1)):
            # a rectangle: a place whose bounding box lies inside it needs no exact test (SQLite stops
            # at the first true term of an OR), which spares parsing the geometry of most candidates
            exact = (f"((p.min_lon >= :x0 AND p.max_lon <= :x1 AND p.min_lat >= :y0 AND p.max_lat <= :y1) "
                     f"OR {exact})")
        where.append(exact)
        sql = f"SELECT p.id FROM place p WHERE {' AND '.join(where)} ORDER BY p.id"
    return [r[0] for r in session.execute(text(sql), params)]


def distance_m(lon0: float, lat0: float, lon1: float, lat1: float) -> float:
    """Great-circle distance in metres between two WGS84 points."""
    r = 6371008.8
    p0, p1 = math.radians(lat0), math.radians(lat1)
    dp, dl = p1 - p0, math.radians(lon1 - lon0)
    a = math.sin(dp / 2) ** 2 + math.cos(p0) * math.cos(p1) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(min(1.0, math.sqrt(a)))


def nearest(session: Session, lon: float, lat: float, n: int = 5, kinds: Iterable[str] = (),
            exclude_areas: bool = True, max_radius_m: float = 60000.0) -> list[tuple[int, float]]:
    """The ``n`` active places nearest a point, by their representative points: (id, metres), nearest first."""
    kinds = list(kinds)
    radius = 500.0
    while True:
        dlat = radius / 111320.0
        dlon = radius / (111320.0 * math.cos(math.radians(lat)))
        params: dict[str, Any] = {"x0": lon - dlon, "x1": lon + dlon, "y0": lat - dlat, "y1": lat + dlat}
        where = ["p.status = 'active'", "p.point_lon BETWEEN :x0 AND :x1", "p.point_lat BETWEEN :y0 AND :y1"]
        if kinds:
            params.update({f"k{i}": k for i, k in enumerate(kinds)})
            where.append(f"p.kind IN ({', '.join(f':k{i}' for i in range(len(kinds)))})")
        elif exclude_areas:
            where.append("p.kind NOT IN ('borough', 'ward', 'msoa', 'lsoa')")
        if _dialect(session) == "postgresql":
            sql = ("SELECT p.id, p.point_lon, p.point_lat FROM place p WHERE "
                   "p.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326) AND " + " AND ".join(where))
        else:
            sql = ("SELECT p.id, p.point_lon, p.point_lat FROM place p WHERE p.id IN (SELECT id FROM place_rtree "
                   "WHERE max_lon >= :x0 AND min_lon <= :x1 AND max_lat >= :y0 AND min_lat <= :y1) AND "
                   + " AND ".join(where))
        found = sorted((round(distance_m(lon, lat, x, y), 1), pid)
                       for pid, x, y in session.execute(text(sql), params))
        found = [(d, pid) for d, pid in found if d <= radius]
        if len(found) >= n or radius >= max_radius_m:
            return [(pid, d) for d, pid in found[:n]]
        radius *= 2


class AreaIndex:
    """Areas held in memory (shapely STRtree) to assign many points at once, as the database would."""

    def __init__(self, rows: Iterable[tuple[int, str, str, dict[str, Any]]]) -> None:
        self.ids: list[int] = []
        self.uids: list[str] = []
        self.kinds: list[str] = []
        geoms = []
        for pid, uid, kind, geometry in rows:
            self.ids.append(pid)
            self.uids.append(uid)
            self.kinds.append(kind)
            geoms.append(shape(geometry))
        self.tree = shapely.STRtree(geoms)

    @classmethod
    def load(cls, session: Session, kinds: Sequence[str] = AREA_KINDS) -> AreaIndex:
        """The active areas of ``kinds`` in the register."""
        params = {f"k{i}": k for i, k in enumerate(kinds)}
        sql = (f"SELECT id, uid, kind, geometry FROM place WHERE status = 'active' AND geometry IS NOT NULL "
               f"AND kind IN ({', '.join(f':k{i}' for i in range(len(kinds)))})")
        rows = []
        for pid, uid, kind, geometry in session.execute(text(sql), params):
            rows.append((pid, uid, kind, json.loads(geometry) if isinstance(geometry, str) else geometry))
        return cls(rows)

    def assign(self, lons: Sequence[float], lats: Sequence[float]) -> list[dict[str, tuple[int, str]]]:
        """For each point, its containing areas: kind -> (id, uid) (the lowest uid if areas overlap)."""
        import numpy as np

        points = shapely.points(np.asarray(lons, dtype=float), np.asarray(lats, dtype=float))
        out: list[dict[str, tuple[int, str]]] = [{} for _ in range(len(points))]
        if len(self.ids) == 0 or len(points) == 0:
            return out
        if not hasattr(self, "_uid_rank"):
            shapely.prepare(self.tree.geometries)
        # candidates by bounding box, then the exact test on the prepared areas, vectorised
        x, y = np.asarray(lons, dtype=float), np.asarray(lats, dtype=float)
        point_idx, area_idx = self.tree.query(points)
        hit = shapely.intersects_xy(self.tree.geometries[area_idx], x[point_idx], y[point_idx])
        point_idx, area_idx = point_idx[hit], area_idx[hit]
        if not hasattr(self, "_uid_rank"):
            self._uid_rank = np.argsort(np.argsort(np.array(self.uids, dtype=object)))
            codes = {k: i for i, k in enumerate(sorted(set(self.kinds)))}
            self._kind_code = np.array([codes[k] for k in self.kinds], dtype=np.int32)
        kind_code = self._kind_code[area_idx]
        order = np.lexsort((self._uid_rank[area_idx], kind_code, point_idx))  # by point, kind, then uid
        p_sorted, k_sorted, a_sorted = point_idx[order], kind_code[order], area_idx[order]
        first = np.ones(len(order), dtype=bool)  # the lowest uid of each kind for each point
        first[1:] = (p_sorted[1:] != p_sorted[:-1]) | (k_sorted[1:] != k_sorted[:-1])
        kinds, ids, uids = self.kinds, self.ids, self.uids
        for p, a in zip(p_sorted[first].tolist(), a_sorted[first].tolist()):
            out[p][kinds[a]] = (ids[a], uids[a])
        return out
