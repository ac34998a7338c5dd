"""The nowcast as JSON, GeoJSON, CSV and PNG: ``/api/airquality/nowcast`` (docs/insights-airquality.md, "Nowcast").

Every endpoint takes ``?hour=`` (an ISO 8601 time; the hour holding it, UTC unless the time says
otherwise) and defaults to the species' latest run. 404 for an unknown species, hour or area; 400 for
an hour that does not parse.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from ...core.db import Database
from ...core.errors import BadRequest, NotFound
from ...core.web import database, settings_of
from ...settings import Settings
from . import daqi
from . import nowcast as nc
from .nowcast_geo import TO_WGS84, load_geography

router = APIRouter(prefix="/api/airquality/nowcast", tags=["air quality nowcast"])
Z90 = 1.6448536269514722
MAX_HOURS = 24 * 14


def _species(species: str) -> str:
    try:
        return nc.species_of(species)
    except nc.NowcastError as exc:
        raise NotFound(str(exc)) from exc


def _hour(text: str | None) -> datetime | None:
    if text in (None, ""):
        return None
    cleaned = text.strip().replace("Z", "+00:00")  # type: ignore[union-attr]
    candidates = [cleaned]
    if " " in cleaned:  # a "+01:00" offset sent unescaped arrives as " 01:00"
        head, _, tail = cleaned.rpartition(" ")
        candidates.append(f"{head}+{tail}")
    for candidate in candidates:
        try:
            value = datetime.fromisoformat(candidate)
            break
        except ValueError:
            continue
    else:
        raise BadRequest(f"hour={text!r} is not a time: give it as ISO 8601, like 2023-03-31T23:00Z.",
                         {"hour": "Not an ISO 8601 time."})
    return nc.hour_start(value if value.tzinfo else value.replace(tzinfo=timezone.utc))


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _run(session: Session, species: str, hour: datetime | None) -> nc.NowcastRun:
    key = _species(species)
    run = nc.get_run(session, key, hour) if hour is not None else nc.latest_run(session, key)
    if run is None:
        raise NotFound(f"There is no {nc.DISPLAY[key]} nowcast for {hour:%Y-%m-%d %H:00} UTC." if hour is not None
                       else f"There is no {nc.DISPLAY[key]} nowcast yet.")
    return run


def _base(settings: Settings) -> str:
    return settings.base_url.rstrip("/") + "/api/airquality/nowcast"


def run_json(run: nc.NowcastRun, settings: Settings) -> dict[str, Any]:
    """A run and the links to its data."""
    base = f"{_base(settings)}/{run.species}"
    q = f"?hour={_iso(run.hour)}"
    links = {"self": base + q, "lsoa_geojson": f"{base}/lsoa.geojson{q}", "lsoa_csv": f"{base}/lsoa.csv{q}",
             "boroughs_geojson": f"{base}/boroughs.geojson{q}"}
    if run.has_grid:
        links.update({"grid_json": f"{base}/grid.json{q}", "grid_png_mean": f"{base}/grid.png{q}&layer=mean",
                      "grid_png_std": f"{base}/grid.png{q}&layer=std"})
    return {"species": run.species, "name": nc.DISPLAY[run.species], "hour": _iso(run.hour),
            "created_at": _iso(run.created_at), "method": run.method, "model_version": run.model_version,
            "n_reference_sites": run.n_reference_sites, "n_sensor_sites": run.n_sensor_sites, "n_cells": run.n_cells,
            "has_grid": run.has_grid, "seconds": run.seconds, "unit": "µg/m³", "links": links}


@router.get("")
def nowcast_index(request: Request, db: Database = Depends(database),
                  settings: Settings = Depends(settings_of)) -> JSONResponse:
    """The latest run of each species, with links."""
    with db.session() as session:
        latest = {key: nc.latest_run(session, key) for key in nc.SPECIES}
    return JSONResponse({"species": [{"species": k, "name": nc.DISPLAY[k], "averaging": daqi.AVERAGING[k],
                                      "latest": run_json(r, settings) if r else None,
                                      "links": {"runs": f"{_base(settings)}/{k}"}} for k, r in latest.items()],
                         "dataset": f"{settings.base_url.rstrip('/')}/dataset/{nc.DATASET_SLUG}"})


@router.get("/{species}")
def nowcast_runs(species: str, hour: str | None = None, db: Database = Depends(database),
                 settings: Settings = Depends(settings_of)) -> JSONResponse:
    """The species' stored runs, newest first (``?hour=``: that run only)."""
    key = _species(species)
    when = _hour(hour)
    with db.session() as session:
        if when is not None:
            return JSONResponse(run_json(_run(session, key, when), settings))
        found = nc.runs(session, key)
    return JSONResponse({"species": key, "name": nc.DISPLAY[key], "count": len(found),
                         "runs": [run_json(r, settings) for r in found]})


def _lsoa_rows(db: Database, species: str, hour: str | None) -> tuple[nc.NowcastRun, list[dict[str, Any]]]:
    when = _hour(hour)
    with db.session() as session:
        run = _run(session, species, when)
        values = nc.area_values(session, run.id, "lsoa")
        geography = load_geography(session)
    lon, lat = TO_WGS84.transform(geography.lsoa_easting, geography.lsoa_northing)
    where = {c: (round(float(x), 6), round(float(y), 6)) for c, x, y in zip(geography.lsoa_codes, lon, lat)}
    rows = []
    for code, (mean, std) in values.items():
        if code not in where:
            continue
        described = daqi.describe(run.species, mean)
        rows.append({"lsoa": code, "lon": where[code][0], "lat": where[code][1], "mean": mean, "std": std,
                     "lower90": round(max(mean - Z90 * std, 0.0), 3), "upper90": round(mean + Z90 * std, 3),
                     "daqi_index": described["index"], "daqi_band": described["band"]})
    return run, rows


def _feature(geometry: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def _geojson(run: nc.NowcastRun, features: list[dict[str, Any]], settings: Settings) -> Response:
    body = {"type": "FeatureCollection", "name": f"{run.species} nowcast {_iso(run.hour)}",
            "nowcast": run_json(run, settings), "features": features}
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/geo+json",
                    headers={"Cache-Control": "public, max-age=300"})


@router.get("/{species}/lsoa.geojson")
def nowcast_lsoa_geojson(species: str, hour: str | None = None, db: Database = Depends(database),
                         settings: Settings = Depends(settings_of)) -> Response:
    """Every LSOA's representative point with the hour's mean, std, 90% interval and DAQI index and band."""
    run, rows = _lsoa_rows(db, species, hour)
    features = [_feature({"type": "Point", "coordinates": [r["lon"], r["lat"]]},
                         {k: v for k, v in r.items() if k not in ("lon", "lat")}) for r in rows]
    return _geojson(run, features, settings)


@router.get("/{species}/lsoa.csv")
def nowcast_lsoa_csv(species: str, hour: str | None = None, db: Database = Depends(database)) -> Response:
    """The same as lsoa.geojson, as CSV (one row per LSOA)."""
    run, rows = _lsoa_rows(db, species, hour)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["lsoa", "species", "hour", "lon", "lat", "mean", "std", "lower90", "upper90", "daqi_index",
                     "daqi_band"])
    for r in rows:
        writer.writerow([r["lsoa"], run.species, _iso(run.hour), r["lon"], r["lat"], r["mean"], r["std"], r["lower90"],
                         r["upper90"], r["daqi_index"] or "", r["daqi_band"] or ""])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="nowcast-{run.species}-{nc.stamp(run.hour)}'
                                                    f'-lsoa.csv"', "Cache-Control": "public, max-age=300"})


@router.get("/{species}/boroughs.geojson")
def nowcast_boroughs_geojson(species: str, hour: str | None = None, db: Database = Depends(database),
                             settings: Settings = Depends(settings_of)) -> Response:
    """Each borough (its footprint) with the mean and std over its 100 m cells at that hour."""
    from shapely.geometry import mapping

    from .nowcast_geo import to_wgs84

    when = _hour(hour)
    with db.session() as session:
        run = _run(session, species, when)
        values = nc.area_values(session, run.id, "borough")
        geography = load_geography(session)
    features = []
    for code, name, shape_bng in zip(geography.borough_codes, geography.borough_names, geography.borough_shapes):
        if code not in values:
            continue
        mean, std = values[code]
        described = daqi.describe(run.species, mean)
        features.append(_feature(mapping(to_wgs84(shape_bng)), {
            "borough": code, "name": name, "mean": mean, "std": std,
            "lower90": round(max(mean - Z90 * std, 0.0), 3), "upper90": round(mean + Z90 * std, 3),
            "daqi_index": described["index"], "daqi_band": described["band"]}))
    return _geojson(run, features, settings)


def _grid_run(db: Database, species: str, hour: str | None) -> nc.NowcastRun:
    when = _hour(hour)
    with db.session() as session:
        run = _run(session, species, when)
    if not run.has_grid:
        raise NotFound(f"No grid was stored for {nc.DISPLAY[run.species]} at {run.hour:%Y-%m-%d %H:00} UTC "
                       "(only LSOA and borough values): ask for a later hour.")
    return run


@router.get("/{species}/grid.json")
def nowcast_grid_json(species: str, hour: str | None = None, db: Database = Depends(database),
                      settings: Settings = Depends(settings_of)) -> JSONResponse:
    """The grid's geometry: bounds (lat/lon), cell size, shape and hour, and the PNG layers' legends."""
    run = _grid_run(db, species, hour)
    try:
        g = nc.grid(settings, run)
    except nc.NowcastError as exc:
        raise NotFound(str(exc)) from exc
    (south, west), (north, east) = g.bounds_wgs84
    return JSONResponse({"species": run.species, "hour": _iso(run.hour), "cell_metres": g.cell, "crs": "EPSG:27700",
                         "origin": {"easting": g.origin_easting, "northing": g.origin_northing},
                         "shape": {"rows": g.shape[0], "columns": g.shape[1]}, "cells_in_london": run.n_cells,
                         "bounds": [[south, west], [north, east]],
                         "legend": {layer: [{"label": label, "colour": colour} for label, colour in
                                            nc.legend(layer, run.species)] for layer in nc.LAYERS},
                         "links": run_json(run, settings)["links"]},
                        headers={"Cache-Control": "public, max-age=300"})


@router.get("/{species}/grid.png")
def nowcast_grid_png(species: str, request: Request, hour: str | None = None, layer: str = "mean",
                     db: Database = Depends(database), settings: Settings = Depends(settings_of)) -> Response:
    """The grid as a PNG for a map overlay (``layer=mean``: DAQI index colours; ``layer=std``: uncertainty)."""
    if layer not in nc.LAYERS:
        raise BadRequest(f"layer={layer!r} is not a layer: use mean or std.", {"layer": "Use mean or std."})
    run = _grid_run(db, species, hour)
    etag = f'"{run.species}-{nc.stamp(run.hour)}-{layer}-{int(run.created_at.timestamp())}"'
    cache = "public, max-age=86400" if hour else "public, max-age=300"
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": cache})
    try:
        data = nc.grid_png(settings, run, layer)
    except nc.NowcastError as exc:
        raise NotFound(str(exc)) from exc
    return Response(data, media_type="image/png", headers={"ETag": etag, "Cache-Control": cache})


@router.get("/{species}/areas/{code}")
def nowcast_area(species: str, code: str, hours: int = 48, until: str | None = None,
                 db: Database = Depends(database)) -> JSONResponse:
    """One LSOA's or borough's values over the last ``hours`` hours (oldest first), with DAQI bands."""
    key = _species(species)
    if not 1 <= hours <= MAX_HOURS:
        raise BadRequest(f"hours must be between 1 and {MAX_HOURS}.", {"hours": "Out of range."})
    end = _hour(until)
    with db.session() as session:
        latest = nc.latest_run(session, key)
        series = nc.area_series(session, key, code, hours, end)
        if not series:
            known = latest is not None and code in nc.area_values(session, latest.id, "lsoa") | nc.area_values(
                session, latest.id, "borough")
            raise NotFound(f"There are no {nc.DISPLAY[key]} nowcast values for {code!r} in that period." if known
                           else f"{code!r} is not an LSOA or borough code with {nc.DISPLAY[key]} nowcast values.")
    points = []
    for when, mean, std in series:
        described = daqi.describe(key, mean)
        points.append({"hour": _iso(when), "mean": mean, "std": std, "lower90": round(max(mean - Z90 * std, 0.0), 3),
                       "upper90": round(mean + Z90 * std, 3), "daqi_index": described["index"],
                       "daqi_band": described["band"]})
    return JSONResponse({"species": key, "name": nc.DISPLAY[key], "area": code, "unit": "µg/m³",
                         "averaging": daqi.AVERAGING[key], "count": len(points), "series": points})
