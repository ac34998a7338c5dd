"""Spatial SQL for the SensorThings ``$filter``: the same answers on SQLite and PostGIS.

Geometries are stored as GeoJSON in JSON columns (a bare geometry or a Feature); literals arrive
as WKT. On PostgreSQL both become PostGIS ``geometry`` values in EPSG:4326 and the ``ST_*``
functions do the work. On SQLite, which has no spatial functions, the same predicates are Python
functions (shapely) registered on every connection by ``core.db.sqlite_function``; they take the
GeoJSON or WKT text as it is.

Distances and lengths are planar, in the units of the coordinate reference system (degrees of
WGS 84), as OData defines ``geo.distance`` and ``geo.length`` and as FROST-Server answers them.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import shapely.wkt
from shapely.errors import ShapelyError
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Float, Integer, String, case, cast, func, literal
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from ...core.db import sqlite_function

#: the spatial relations of SensorThings (``st_*``), each as the shapely predicate of the same name
RELATIONS = ("equals", "disjoint", "touches", "within", "overlaps", "crosses", "intersects", "contains")


class GeometryError(ValueError):
    """A WKT literal or GeoJSON value that is not a geometry."""


def parse_wkt(text: str) -> BaseGeometry:
    """The geometry of a WKT literal, or GeometryError saying what is wrong with it."""
    try:
        geometry = shapely.wkt.loads(text)
    except (ShapelyError, ValueError, TypeError) as exc:
        raise GeometryError(f"not valid WKT ({str(exc).strip() or type(exc).__name__})") from None
    if geometry is None or geometry.is_empty:
        raise GeometryError("the geometry is empty")
    return geometry


@lru_cache(maxsize=4096)
def _shape(text: str) -> BaseGeometry | None:
    """The geometry of GeoJSON text (a geometry or a Feature) or WKT text; None if it has none."""
    stripped = text.lstrip()
    try:
        if stripped.startswith("{"):
            data: Any = json.loads(stripped)
            if isinstance(data, dict) and data.get("type") == "Feature":
                data = data.get("geometry")
            if not isinstance(data, dict):
                return None
            return shape(data)
        return shapely.wkt.loads(stripped)
    except (ShapelyError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _pair(a: object, b: object) -> tuple[BaseGeometry, BaseGeometry] | None:
    if not isinstance(a, str) or not isinstance(b, str):
        return None
    ga, gb = _shape(a), _shape(b)
    if ga is None or gb is None:
        return None
    return ga, gb


@sqlite_function("sta_spatial", 3)
def _sqlite_spatial(relation: str, a: object, b: object) -> int | None:
    pair = _pair(a, b)
    if pair is None or relation not in RELATIONS:
        return None
    return int(bool(getattr(pair[0], relation)(pair[1])))


@sqlite_function("sta_relate", 3)
def _sqlite_relate(a: object, b: object, pattern: object) -> int | None:
    pair = _pair(a, b)
    if pair is None or not isinstance(pattern, str):
        return None
    try:
        return int(bool(pair[0].relate_pattern(pair[1], pattern)))
    except (ShapelyError, ValueError):
        return None


@sqlite_function("sta_distance", 2)
def _sqlite_distance(a: object, b: object) -> float | None:
    pair = _pair(a, b)
    return None if pair is None else float(pair[0].distance(pair[1]))


@sqlite_function("sta_length", 1)
def _sqlite_length(a: object) -> float | None:
    geometry = _shape(a) if isinstance(a, str) else None
    return None if geometry is None else float(geometry.length)


def from_wkt(wkt: str, dialect: str) -> ColumnElement[Any]:
    """A geometry literal: WKT text on SQLite, ``ST_GeomFromText(wkt, 4326)`` on PostGIS."""
    if dialect == "postgresql":
        return func.ST_GeomFromText(literal(wkt, String()), 4326)
    return literal(wkt, String())


def from_geojson(expr: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """The geometry of a GeoJSON (JSON) column: its text on SQLite, a PostGIS geometry on PostgreSQL."""
    if dialect == "postgresql":
        return func.ST_SetSRID(func.ST_GeomFromGeoJSON(cast(_feature_geometry(expr), String())), 4326)
    return expr


def _feature_geometry(doc: ColumnElement[Any]) -> ColumnElement[Any]:
    """PostgreSQL: the ``geometry`` member of a GeoJSON Feature, or the document itself."""
    jdoc = cast(doc, JSONB())
    return case((jdoc.op("->>")(literal("type", String())) == "Feature",
                 jdoc.op("->")(literal("geometry", String()))), else_=jdoc)


def relation(name: str, a: ColumnElement[Any], b: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """The spatial relation ``st_<name>(a, b)`` as a condition."""
    if name not in RELATIONS:
        raise ValueError(f"unknown spatial relation {name!r}")
    if dialect == "postgresql":
        return getattr(func, "ST_" + name.capitalize())(a, b)
    return func.sta_spatial(literal(name, String()), a, b, type_=Integer()) == 1


def relate(a: ColumnElement[Any], b: ColumnElement[Any], pattern: ColumnElement[Any],
           dialect: str) -> ColumnElement[Any]:
    """``st_relate(a, b, pattern)``: the DE-9IM intersection matrix of a and b matches pattern."""
    if dialect == "postgresql":
        return func.ST_Relate(a, b, pattern)
    return func.sta_relate(a, b, pattern, type_=Integer()) == 1


def distance(a: ColumnElement[Any], b: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """``geo.distance(a, b)``: the planar distance in degrees."""
    if dialect == "postgresql":
        return func.ST_Distance(a, b, type_=Float())
    return func.sta_distance(a, b, type_=Float())


def length(a: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """``geo.length(a)``: the planar length in degrees (0 for points and polygons' areas)."""
    if dialect == "postgresql":
        return func.ST_Length(a, type_=Float())
    return func.sta_length(a, type_=Float())


def valid_pattern(pattern: str) -> bool:
    """True if pattern is a DE-9IM pattern (nine of T F * 0 1 2)."""
    return len(pattern) == 9 and all(ch in "TF*012" for ch in pattern.upper())


__all__ = ["RELATIONS", "GeometryError", "parse_wkt", "from_wkt", "from_geojson", "relation", "relate",
           "distance", "length", "valid_pattern"]
