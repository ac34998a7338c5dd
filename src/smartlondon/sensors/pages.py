"""The sensor hub's web pages: a map and list of every sensor site, and a page per Thing.

* ``/sensors``: a Leaflet map (borough outlines as the only base layer, no remote tiles) and,
  beside it, a table of the same Things (name, borough, site type, latest NO2 and its time) that
  works without JavaScript. JSON twin: ``/sensors.json``.
* ``/sensors/things/{id}``: a Thing's latest reading per Datastream (from ``sta_latest``), a chart
  of the last days as server-rendered SVG (no JavaScript) with a table of the same values, and the
  quality-control flags explained. JSON twin: ``/sensors/things/{id}.json``.
* ``/sensors/boroughs.geojson``: the borough outlines the map draws;
  ``/sensors/assets/{name}``: the map's script and style sheet (the CSP allows only same-origin files).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from sqlalchemy import select

from ..core.errors import BadRequest, NotFound
from ..core.web import Context, CtxDep, asset_file, render
from .laqn import NO2_DEFINITION
from .models import Datastream, Latest, Location, Observation, ObservedProperty, Sensor, Thing, ThingLocation

router = APIRouter(tags=["pages"], include_in_schema=False)

ASSETS = Path(__file__).with_name("static")
ASSET_TYPES = {"sensors-map.js": "text/javascript", "sensors.css": "text/css"}
BOROUGHS = Path(__file__).resolve().parents[1] / "demo" / "data" / "boroughs.geojson"
DEFAULT_DAYS = 3
MAX_DAYS = 14
COLOURS = ("#1d70b8", "#d4351c", "#00703c", "#4c2c92", "#f47738", "#5694ca", "#912b88", "#85994b",
           "#28a197", "#6f72af")

try:  # the QC rules' own words, when the quality-control module is there
    from .qc import FLAG_TEXT as _QC_TEXT
except ImportError:  # pragma: no cover
    _QC_TEXT = {}
FLAG_GLOSSARY: dict[str, str] = {
    "range": "outside the plausible range for what is measured",
    "spike": "a sudden jump away from both neighbouring values",
    "flat_line": "part of a run of identical consecutive values",
    "stuck": "part of a run of values pinned at the instrument's floor or ceiling",
    "gap": "the first value after expected values were missing",
}
FLAG_GLOSSARY.update({k: v for k, v in _QC_TEXT.items() if k in FLAG_GLOSSARY})
FLAG_NAMES = {"range": "Range", "spike": "Spike", "flat_line": "Flat line", "stuck": "Stuck", "gap": "Gap"}


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(value: datetime | None) -> str:
    """A time as people read it: 30 Mar 2023 23:00 GMT."""
    if value is None:
        return ""
    value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return value.strftime("%-d %b %Y %H:%M") + " GMT"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _point(geometry: Any) -> tuple[float, float] | None:
    """(longitude, latitude) of a GeoJSON Point (or a Feature holding one)."""
    if isinstance(geometry, dict) and geometry.get("type") == "Feature":
        geometry = geometry.get("geometry")
    if isinstance(geometry, dict) and geometry.get("type") == "Point":
        coords = geometry.get("coordinates") or []
        if len(coords) >= 2 and all(isinstance(c, (int, float)) for c in coords[:2]):
            return float(coords[0]), float(coords[1])
    return None


# --- /sensors: the map and list ------------------------------------------------------------------

def sensor_list(session: Any, base_url: str) -> list[dict[str, Any]]:
    """Every Thing with its position, borough, type and latest NO2 (if it measures NO2)."""
    things = session.execute(select(Thing.id, Thing.name, Thing.properties).order_by(Thing.name, Thing.id)).all()
    where: dict[int, Any] = {}
    for thing_id, geometry in session.execute(
            select(ThingLocation.thing_id, Location.location).join(Location, Location.id == ThingLocation.location_id)
            .order_by(ThingLocation.thing_id, Location.id)):
        where.setdefault(thing_id, geometry)
    no2: dict[int, tuple[Any, datetime, dict[str, Any]]] = {}
    for thing_id, result, when, unit in session.execute(
            select(Datastream.thing_id, Latest.result, Latest.phenomenon_time_start, Datastream.unit_of_measurement)
            .join(Latest, Latest.datastream_id == Datastream.id)
            .join(ObservedProperty, ObservedProperty.id == Datastream.observed_property_id)
            .where(ObservedProperty.definition == NO2_DEFINITION)
            .order_by(Latest.phenomenon_time_start)):
        no2[thing_id] = (result, when, unit or {})
    streams: dict[int, int] = {}
    for (thing_id,) in session.execute(select(Datastream.thing_id)):
        streams[thing_id] = streams.get(thing_id, 0) + 1
    rows = []
    for thing_id, name, properties in things:
        props = properties or {}
        point = _point(where.get(thing_id))
        latest = no2.get(thing_id)
        rows.append({
            "id": thing_id, "name": name, "href": f"/sensors/things/{thing_id}",
            "siteCode": props.get("siteCode"), "borough": props.get("borough") or "",
            "siteType": props.get("siteType") or "", "closed": props.get("closed"),
            "longitude": point[0] if point else None, "latitude": point[1] if point else None,
            "datastreams": streams.get(thing_id, 0),
            "no2": None if latest is None else {
                "result": latest[0], "phenomenonTime": _iso(latest[1]), "label": _when(latest[1]),
                "unit": latest[2].get("symbol", "")},
            "sta": f"{base_url}/sta/v1.1/Things({thing_id})",
        })
    return rows


@router.get("/sensors/boroughs.geojson")
def boroughs() -> Response:
    """The London borough outlines (GLA boundaries, OGL v3), the map's base layer."""
    if not BOROUGHS.is_file():
        raise NotFound("The borough outlines are not installed.")
    return FileResponse(BOROUGHS, media_type="application/geo+json",
                        headers={"Cache-Control": "public, max-age=86400"})


@router.get("/sensors/assets/{name}")
def asset(name: str) -> Response:
    """The map's script and style sheet."""
    return asset_file(ASSETS, ASSET_TYPES, name, "sensor page")


@router.get("/sensors")
def sensors_page(request: Request, ctx: Context = CtxDep) -> Response:
    """The map of every sensor site and the list of the same sites."""
    rows = sensor_list(ctx.session, ctx.base_url)
    from ..places.links import boroughs_of_things  # boroughs from the places register (docs/places-links.md)

    in_borough = boroughs_of_things(ctx.session, rows)
    for row in rows:
        if row["id"] in in_borough:
            row["borough"], row["boroughPlace"] = in_borough[row["id"]]["name"], in_borough[row["id"]]["uid"]
    borough_choices = sorted({(r["boroughPlace"], r["borough"]) for r in rows if r.get("boroughPlace")}, key=lambda c: c[1])
    wanted = (request.query_params.get("borough") or "").strip()
    if wanted:
        rows = [r for r in rows if wanted in (r.get("boroughPlace"), (r.get("boroughPlace") or "").rsplit(":", 1)[-1])
                or wanted.lower() == r["borough"].lower()]
    measuring = sum(1 for r in rows if r["no2"] is not None)
    data = {"count": len(rows), "borough": wanted or None, "sensors": rows,
            "links": {"self": f"{ctx.base_url}/sensors", "json": f"{ctx.base_url}/sensors.json",
                      "boroughs": f"{ctx.base_url}/sensors/boroughs.geojson",
                      "sensorThings": f"{ctx.base_url}/sta/v1.1/Things"}}
    return render(ctx, "sensors/index.html", {"sensors": rows, "count": len(rows), "measuring": measuring,
                                              "borough": wanted, "borough_choices": borough_choices}, data)


# --- /sensors/things/{id}: one Thing ---------------------------------------------------------------

def _days(request: Request) -> int:
    raw = request.query_params.get("days")
    if raw in (None, ""):
        return DEFAULT_DAYS
    try:
        days = int(raw)
    except ValueError:
        raise BadRequest(f"days must be a whole number of days from 1 to {MAX_DAYS}; got ‘{raw}’.",
                         fields={"days": raw}) from None
    if not 1 <= days <= MAX_DAYS:
        raise BadRequest(f"days must be from 1 to {MAX_DAYS}; got {days}.", fields={"days": raw})
    return days


def _flags(quality: Any) -> list[str]:
    if isinstance(quality, dict) and isinstance(quality.get("qc"), dict):
        return [str(f) for f in quality["qc"].get("flags") or []]
    return []


def thing_view(session: Any, thing_id: int, days: int, base_url: str) -> dict[str, Any]:
    """A Thing, its latest reading per Datastream, and the last ``days`` days of each Datastream."""
    thing = session.get(Thing, thing_id)
    if thing is None:
        raise NotFound(f"There is no sensor Thing with id {thing_id}. See the list of sensors at /sensors.")
    props = thing.properties or {}
    geometry = session.scalar(select(Location.location).join(ThingLocation, ThingLocation.location_id == Location.id)
                              .where(ThingLocation.thing_id == thing_id).order_by(Location.id).limit(1))
    point = _point(geometry)
    streams = session.execute(
        select(Datastream, ObservedProperty.name, ObservedProperty.definition, Sensor.name, Latest)
        .join(ObservedProperty, ObservedProperty.id == Datastream.observed_property_id)
        .join(Sensor, Sensor.id == Datastream.sensor_id)
        .outerjoin(Latest, Latest.datastream_id == Datastream.id)
        .where(Datastream.thing_id == thing_id).order_by(ObservedProperty.name, Datastream.id)).all()
    latest_times = [row[4].phenomenon_time_start for row in streams if row[4] is not None]
    end = max(latest_times) if latest_times else None
    start = end - timedelta(days=days) if end is not None else None
    datastreams = []
    for i, (ds, op_name, op_definition, sensor_name, latest) in enumerate(streams):
        unit = ds.unit_of_measurement or {}
        points: list[dict[str, Any]] = []
        if start is not None:
            for when, result, quality in session.execute(
                    select(Observation.phenomenon_time_start, Observation.result, Observation.result_quality)
                    .where(Observation.datastream_id == ds.id, Observation.phenomenon_time_start > start,
                           Observation.phenomenon_time_start <= end)
                    .order_by(Observation.phenomenon_time_start, Observation.id)):
                points.append({"phenomenonTime": _iso(when), "result": result, "flags": _flags(quality)})
        datastreams.append({
            "id": ds.id, "name": ds.name, "observedProperty": op_name, "definition": op_definition,
            "sensor": sensor_name, "unit": unit.get("symbol", ""), "unitName": unit.get("name", ""),
            "colour": COLOURS[i % len(COLOURS)],
            "label": op_name + (" (calibrated)" if (ds.properties or {}).get("derived")
                                else " (low-cost, raw)" if (ds.properties or {}).get("lowCost") else ""),
            "derivedFrom": ((ds.properties or {}).get("derivedFrom") or {}).get("Datastream@iot.id"),
            "latest": None if latest is None else {
                "result": latest.result, "phenomenonTime": _iso(latest.phenomenon_time_start),
                "label": _when(latest.phenomenon_time_start)},
            "points": points,
            "sta": f"{base_url}/sta/v1.1/Datastreams({ds.id})",
        })
    flagged: dict[str, int] = {}
    for stream in datastreams:
        for p in stream["points"]:
            for flag in p["flags"]:
                flagged[flag] = flagged.get(flag, 0) + 1
    return {
        "id": thing.id, "name": thing.name, "description": thing.description, "properties": props,
        "longitude": point[0] if point else None, "latitude": point[1] if point else None,
        "window": {"days": days, "start": _iso(start), "end": _iso(end)},
        "datastreams": datastreams, "qcFlagCounts": flagged,
        "simulated": bool(props.get("simulated")), "calibrations": _calibrations(session, thing_id, datastreams, base_url),
        "links": {"self": f"{base_url}/sensors/things/{thing.id}", "json": f"{base_url}/sensors/things/{thing.id}.json",
                  "sensorThings": f"{base_url}/sta/v1.1/Things({thing.id})"},
    }


def _calibrations(session: Any, thing_id: int, datastreams: list[dict[str, Any]], base_url: str) -> list[dict[str, Any]]:
    """The calibrations of the Thing's low-cost Datastreams (newest version first), as the API shows them."""
    from .calibration.service import calibration_json, list_calibrations

    labels = {s["id"]: s["label"] for s in datastreams}
    out = []
    for found in list_calibrations(session, thing_id=thing_id):
        item = calibration_json(found, f"{base_url}/sta/v1.1")
        reference = session.get(Datastream, found.reference_datastream_id)
        item["lowCostLabel"] = labels.get(found.datastream_id, f"Datastream {found.datastream_id}")
        item["referenceName"] = reference.name if reference is not None else ""
        item["referenceThing"] = reference.thing_id if reference is not None else None
        item["window"] = f"{_when(found.fit_start)} to {_when(found.fit_end)}"
        refit = (found.stats or {}).get("refit")
        item["origin"] = (f"Refitted from version {refit['from']['version']}: held-out error (RMSE) "
                          f"{refit['candidateRmse']} against {refit['currentRmse']}" if isinstance(refit, dict)
                          else "Fitted on request")
        checks = (found.stats or {}).get("refitChecks") or []
        item["lastCheck"] = checks[-1] if checks else None
        out.append(item)
    return out


def chart(stream: dict[str, Any], start: str | None, end: str | None, width: int = 640, height: int = 200) -> dict[str, Any]:
    """The SVG geometry of one Datastream's line chart: axis ticks, the line's points (gaps split it)."""
    left, right, top, bottom = 48, 12, 12, 28
    values = [(p["phenomenonTime"], _number(p["result"])) for p in stream["points"]]
    numbers = [v for _, v in values if v is not None]
    if not numbers or start is None or end is None:
        return {"width": width, "height": height, "lines": [], "ticks": [], "xticks": [], "count": 0}
    t0 = datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()
    t1 = datetime.fromisoformat(end.replace("Z", "+00:00")).timestamp()
    low, high = min(0.0, min(numbers)), max(numbers)
    if high <= low:
        high = low + 1.0
    span_t = max(t1 - t0, 1.0)

    def x(ts: float) -> float:
        return round(left + (ts - t0) / span_t * (width - left - right), 1)

    def y(v: float) -> float:
        return round(top + (high - v) / (high - low) * (height - top - bottom), 1)

    lines: list[list[tuple[float, float]]] = [[]]
    previous: float | None = None
    for when, value in values:
        ts = datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()
        if value is None:
            continue
        if previous is not None and ts - previous > 3600 * 1.5 and lines[-1]:
            lines.append([])  # a gap in the data is a gap in the line
        lines[-1].append((x(ts), y(value)))
        previous = ts
    ticks = [{"y": y(low + (high - low) * k / 4), "label": f"{low + (high - low) * k / 4:.0f}"} for k in range(5)]
    xticks = []
    day = datetime.fromtimestamp(t0, tz=timezone.utc).replace(hour=0, minute=0, second=0) + timedelta(days=1)
    while day.timestamp() <= t1:
        xticks.append({"x": x(day.timestamp()), "label": day.strftime("%-d %b")})
        day += timedelta(days=1)
    return {"width": width, "height": height, "left": left, "bottom": height - bottom, "right": width - right,
            "top": top, "ticks": ticks, "xticks": xticks, "count": len(numbers),
            "lines": [" ".join(f"{a},{b}" for a, b in line) for line in lines if line],
            "dots": [{"x": a, "y": b} for line in lines if len(line) == 1 for a, b in line]}


def table_rows(datastreams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per hour in the window, one cell per Datastream (the chart's data as a table), newest first."""
    by_time: dict[str, dict[int, dict[str, Any]]] = {}
    for stream in datastreams:
        for p in stream["points"]:
            by_time.setdefault(p["phenomenonTime"], {})[stream["id"]] = p
    rows = []
    for when in sorted(by_time, reverse=True):
        cells = by_time[when]
        rows.append({"time": when, "label": _when(datetime.fromisoformat(when.replace("Z", "+00:00"))),
                     "cells": [cells.get(s["id"]) for s in datastreams]})
    return rows


@router.get("/sensors/things/{thing_id}")
def thing_page(thing_id: str, request: Request, ctx: Context = CtxDep) -> Response:
    """One Thing: its latest readings, a chart of the last days with a table of the same data, its QC flags."""
    try:
        number = int(thing_id)
    except ValueError:
        raise NotFound(f"‘{thing_id}’ is not a sensor Thing id (a whole number, like /sensors/things/1).") from None
    days = _days(request)
    view = thing_view(ctx.session, number, days, ctx.base_url)
    charts = [{"stream": s, **chart(s, view["window"]["start"], view["window"]["end"])} for s in view["datastreams"]]
    page = {"thing": view, "charts": charts, "rows": table_rows(view["datastreams"]), "days": days,
            "max_days": MAX_DAYS, "glossary": [(k, FLAG_NAMES[k], v) for k, v in FLAG_GLOSSARY.items()],
            "flag_names": FLAG_NAMES}
    return render(ctx, "sensors/thing.html", page, view)
