"""A small real table for the $filter tests: the London Air Quality Network sites.

Each row is one LAQN site (laqn-sites.csv) with its mean NO2 over 1 January 2023 (from the hourly
file) as ``result``; sites with no NO2 reading that day carry the string result ``"no data"``, as a
sensor reporting a status would. The table is SQLAlchemy Core on a MetaData of its own, so it does
not touch the platform's schema; ``resolve`` maps $filter paths onto it the way the STA layer does.
"""

from __future__ import annotations

import csv
import gzip
from collections import defaultdict
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Float, Integer, MetaData, String, Table
from sqlalchemy.dialects.postgresql import JSONB

from smartlondon.core.db import UTCDateTime
from smartlondon.sensors.sta.odata import Operand, QueryError, json_member

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "air-quality"

metadata = MetaData()
JSONCol = JSON().with_variant(JSONB(), "postgresql")
sites = Table(
    "stafilter_site", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("code", String(10), nullable=False),
    Column("name", String(200), nullable=False),
    Column("site_type", String(40), nullable=False),
    Column("borough", String(80), nullable=False),
    Column("opened", UTCDateTime(), nullable=False),
    Column("closed", UTCDateTime(), nullable=True),
    Column("latitude", Float, nullable=False),
    Column("longitude", Float, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("properties", JSONCol, nullable=True),
    Column("location", JSONCol, nullable=True),
    Column("result", JSONCol, nullable=True),
)


def _when(text: str) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@lru_cache(maxsize=1)
def no2_means() -> dict[str, float]:
    """Mean NO2 (µg/m3) of each site over 1 January 2023, to one decimal."""
    values: dict[str, list[float]] = defaultdict(list)
    with gzip.open(DATA / "laqn-hourly-2023Q1.csv.gz", "rt", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["species_code"] == "NO2" and row["measurement_date_gmt"].startswith("2023-01-01") and row["value"]:
                values[row["site_code"]].append(float(row["value"]))
    return {code: round(sum(v) / len(v), 1) for code, v in values.items()}


@lru_cache(maxsize=1)
def rows() -> tuple[dict[str, Any], ...]:
    """The rows as Python values (also what the tests compute their expected answers from)."""
    means = no2_means()
    out = []
    with open(DATA / "laqn-sites.csv", newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=1):
            lat, lon = float(row["@Latitude"]), float(row["@Longitude"])
            closed = _when(row["@DateClosed"])
            code = row["@SiteCode"]
            out.append({
                "id": number, "code": code, "name": row["@SiteName"], "site_type": row["@SiteType"],
                "borough": row["@LocalAuthorityName"], "opened": _when(row["@DateOpened"]), "closed": closed,
                "latitude": lat, "longitude": lon, "active": closed is None,
                "properties": {"owner": row["@DataOwner"], "manager": row["@DataManager"],
                               "offset": int(row["@DisplayOffsetX"]), "authority": int(row["@LocalAuthorityCode"]),
                               "reference": True},
                "location": {"type": "Point", "coordinates": [lon, lat]},
                "result": means.get(code, "no data"),
            })
    return tuple(out)


def load(engine: Any) -> None:
    """Create the table in engine's database and fill it."""
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sites.insert(), [dict(r) for r in rows()])


def drop(engine: Any) -> None:
    """Remove the table again."""
    metadata.drop_all(engine)


_COLUMNS = {"@iot.id": ("id", "id"), "id": ("id", "id"), "name": ("name", "string"), "code": ("code", "string"),
            "siteType": ("site_type", "string"), "borough": ("borough", "string"),
            "opened": ("opened", "datetime"), "closed": ("closed", "datetime"),
            "latitude": ("latitude", "number"), "longitude": ("longitude", "number"),
            "active": ("active", "boolean"), "location": ("location", "geometry"), "result": ("result", "json"),
            "properties": ("properties", "json")}


def resolve(path: tuple[str, ...]) -> Operand:
    """Map a $filter path to a column, as the STA layer does ("Thing/name" is the site's name too)."""
    if len(path) == 2 and path[0] == "Thing" and path[1] in _COLUMNS:
        path = path[1:]
    head, rest = path[0], path[1:]
    if head not in _COLUMNS:
        raise QueryError(f"unknown property '{'/'.join(path)}'")
    column_name, kind = _COLUMNS[head]
    column = sites.c[column_name]
    if rest:
        if kind != "json":
            raise QueryError(f"'{head}' has no member '{'/'.join(rest)}'")
        return Operand(json_member(column, rest), "json")
    return Operand(column, kind)
