"""What the air quality pages share: species names, how an hour and its age are written, one area's values.

Numbers are shown as the nowcast stores them: a mean and a standard deviation (µg/m³); the stated
90% range is ``mean ± 1.645 std`` (the lower end never below 0), and the DAQI index is ``daqi.index``.
"""

from __future__ import annotations

import importlib
import json
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy.orm import Session

from ...core.errors import BadRequest
from . import daqi

#: the species keys the nowcast stores, and how the pages write them
SPECIES_NAMES = {"NO2": "NO₂", "PM25": "PM2.5", "PM10": "PM10"}
SPECIES_LONG = {"NO2": "nitrogen dioxide (NO₂)", "PM25": "fine particles (PM2.5)", "PM10": "particles (PM10)"}
Z90 = 1.645
#: an estimate older than this is called out as not current
STALE_AFTER_HOURS = 3


def nowcast_module() -> ModuleType:
    """``smartlondon.insights.airquality.nowcast`` (imported when first needed)."""
    return importlib.import_module("smartlondon.insights.airquality.nowcast")


def species_of(value: str | None) -> str:
    """The species key of a query value (NO2 when absent); 400 for a pollutant the nowcast does not cover."""
    if value in (None, ""):
        return "NO2"
    try:
        return daqi.species_key(value)
    except ValueError:
        raise BadRequest(f"species must be NO2, PM2.5 or PM10; got ‘{value}’.", {"species": "Unknown pollutant."}) from None


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive values are taken to be UTC)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def iso(value: datetime | None) -> str | None:
    """``2023-03-31T23:00:00Z``."""
    return None if value is None else utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def hour_label(value: datetime) -> str:
    """``31 March 2023, 23:00 GMT``."""
    value = utc(value)
    return f"{value.day} {value:%B %Y}, {value:%H:%M} GMT"


def short_hour(value: datetime) -> str:
    """``31 Mar 23:00``."""
    value = utc(value)
    return f"{value.day} {value:%b %H:%M}"


def staleness(hour: datetime, now: datetime | None = None) -> dict[str, Any]:
    """How old an estimate is, in words: ``{"stale": bool, "hours": int, "text": str}``."""
    now = utc(now or datetime.now(timezone.utc))
    hours = max(0, int((now - utc(hour)).total_seconds() // 3600))
    if hours < STALE_AFTER_HOURS:
        return {"stale": False, "hours": hours, "text": "This is the latest hour with enough readings."}
    if hours < 48:
        age = f"{hours} hours"
    else:
        age = f"{hours // 24:,} days"
    return {"stale": True, "hours": hours,
            "text": f"This estimate is {age} old: it is the newest hour for which the sensor hub has enough "
                    "readings. It is not today's air quality."}


def index_colour(species: str, described: dict[str, Any]) -> str | None:
    """The DAQI's conventional (UK-AIR) colour of an index, for the tables' swatches."""
    if not described.get("index"):
        return None
    from .nowcast_geo import INDEX_COLOURS

    return INDEX_COLOURS[int(described["index"]) - 1]


def value_row(species: str, code: str, name: str, mean: float, std: float) -> dict[str, Any]:
    """One area's estimate: mean, std, the 90% range and the DAQI index and band of the mean."""
    lower, upper = max(0.0, mean - Z90 * std), mean + Z90 * std
    described = daqi.describe(species, mean)
    described["mapColour"] = index_colour(species, described)
    return {"code": code, "name": name, "mean": round(float(mean), 1), "std": round(float(std), 1),
            "lower": round(float(lower), 1), "upper": round(float(upper), 1), "daqi": described,
            "href": f"/insights/airquality/my-area/{code}"}


BOROUGH_OUTLINES = Path(__file__).resolve().parents[2] / "demo" / "data" / "boroughs.geojson"


@lru_cache(maxsize=1)
def borough_names() -> dict[str, str]:
    """The 33 boroughs' GSS codes and names from the bundled outlines (GLA, OGL v3)."""
    try:
        features = json.loads(BOROUGH_OUTLINES.read_text(encoding="utf-8"))["features"]
    except (OSError, ValueError, KeyError):
        return {}
    return {f["properties"]["gss_code"]: f["properties"]["name"] for f in features}


def area_names(session: Session, codes: list[str]) -> dict[str, str]:
    """GSS code -> name, from the places register, else the bundled borough outlines."""
    from ...places.links import gss_names  # the places register's service layer

    known = {code: name for code, (_uid, name) in gss_names(session, codes).items()}
    outlines = borough_names()
    return {code: known.get(code) or outlines.get(code) or code for code in codes}
