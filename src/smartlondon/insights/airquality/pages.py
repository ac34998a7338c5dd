"""The air quality pages: the nowcast map and the model card (each with its JSON twin).

* ``/insights/airquality``: the latest hourly nowcast of one species (a GET form chooses NO2, PM2.5
  or PM10): the hour it is for (and how old it is), a Leaflet map of the grid image over the borough
  outlines with the uncertainty as a second layer (no remote tiles), the legend, and a table of the
  same data per borough (level, 90% range, DAQI band), sortable by links. Without JavaScript the
  grid image is an ``<img>`` with a text alternative. JSON twin: ``/insights/airquality.json``.
* ``/insights/airquality/model``: renders the card stored by ``smartlondon insights airquality card
  --write``; nothing is recomputed.
* ``/insights/airquality/assets/{name}``: the map's script and style sheet (the CSP allows only
  same-origin files).
* ``/insights/airquality/my-area...``: ``area_pages`` (included in this router).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...core.errors import BadRequest
from ...core.web import Context, CtxDep, asset_file, render
from . import card, daqi
from .area_pages import router as area_router
from .presentation import (SPECIES_NAMES, area_names, hour_label, iso, nowcast_module, species_of, staleness,
                           value_row)

router = APIRouter(tags=["pages"], include_in_schema=False)

ASSETS = Path(__file__).resolve().parents[1] / "static"
ASSET_TYPES = {"airquality-map.js": "text/javascript", "airquality.css": "text/css"}
SORTS = ("name", "level", "range", "band")
_BOUNDS: dict[tuple[int, str], Any] = {}


def card_view(base_url: str) -> dict[str, Any]:
    """The model card as the page and its JSON twin show it."""
    stored = card.load()
    evaluations = stored.get("evaluations", {}) if stored else {}
    site_types = []
    for species, block in evaluations.items():
        for method in ("model", "kriging-sitetype", "kriging", "idw"):
            m = block["methods"].get(method)
            for kind, scores in (m or {}).get("by_site_type", {}).items():
                site_types.append({"species": species, "method": method, "method_label": card.METHOD_LABELS[method],
                                   "site_type": kind, **scores})
    return {"description": card.DESCRIPTION, "generated": stored.get("generated") if stored else None,
            "evaluated": bool(evaluations), "rows": card.rows(stored) if stored else [],
            "site_types": site_types,
            "targets": {s: b.get("rmse_below_kriging_sitetype") for s, b in evaluations.items()},
            "periods": {s: b.get("period") for s, b in evaluations.items()},
            "links": {"self": f"{base_url}/insights/airquality/model",
                      "json": f"{base_url}/insights/airquality/model.json"}}


@router.get("/insights/airquality/model")
def model_card_page(request: Request, ctx: Context = CtxDep) -> Response:
    """The air quality model card: what it does, its inputs, its evaluation, its limits."""
    view = card_view(ctx.base_url)
    return render(ctx, "insights/airquality-model.html", {"card": view, "labels": card.SPECIES_LABELS}, view)


@router.get("/insights/airquality/assets/{name}")
def asset(name: str) -> Response:
    """The air quality map's script and style sheet."""
    return asset_file(ASSETS, ASSET_TYPES, name, "air quality page")


def _bounds(settings: Any, run: Any) -> Any:
    """The grid image's ((south, west), (north, east)), or None when the run's grid file is gone."""
    key = (run.id, iso(run.created_at) or "")
    if key not in _BOUNDS:
        nowcast = nowcast_module()
        if not getattr(run, "grid_file", True):
            return None
        try:
            found = nowcast.grid(settings, run).bounds_wgs84
        except (nowcast.NowcastError, OSError, ValueError, LookupError):
            return None
        if len(_BOUNDS) > 64:
            _BOUNDS.clear()
        _BOUNDS[key] = [[float(found[0][0]), float(found[0][1])], [float(found[1][0]), float(found[1][1])]]
    return _BOUNDS[key]


def _sort(request: Request) -> tuple[str, str]:
    sort = request.query_params.get("sort") or "name"
    order = request.query_params.get("order") or ("desc" if sort in ("level", "range", "band") else "asc")
    if sort not in SORTS:
        raise BadRequest(f"sort must be one of {', '.join(SORTS)}; got ‘{sort}’.", {"sort": "Unknown column."})
    if order not in ("asc", "desc"):
        raise BadRequest(f"order must be asc or desc; got ‘{order}’.", {"order": "Unknown order."})
    return sort, order


def map_view(ctx: Context, species: str, sort: str, order: str, now: datetime | None = None) -> dict[str, Any]:
    """The latest nowcast of ``species`` per borough, with links to the grid image and the data."""
    nowcast = nowcast_module()
    base = ctx.base_url
    api = f"{base}/api/airquality/nowcast/{species}"
    run = nowcast.latest_run(ctx.session, species)
    links = {"self": f"{base}/insights/airquality?species={species}",
             "json": f"{base}/insights/airquality.json?species={species}",
             "api": f"{base}/api/airquality/nowcast", "modelCard": f"{base}/insights/airquality/model",
             "myArea": f"{base}/insights/airquality/my-area"}
    view: dict[str, Any] = {"species": species, "speciesName": SPECIES_NAMES[species],
                            "averaging": daqi.AVERAGING[species], "run": None, "hour": None, "hourLabel": None,
                            "staleness": None, "boroughs": [], "sort": sort, "order": order,
                            "legend": {"mean": [], "std": []}, "bounds": None, "images": None,
                            "links": links}
    if run is None:
        return view
    hour = iso(run.hour)
    links.update({"grid": f"{api}/grid.png?layer=mean&hour={hour}", "uncertainty": f"{api}/grid.png?layer=std&hour={hour}",
                  "gridJson": f"{api}/grid.json?hour={hour}", "lsoaGeojson": f"{api}/lsoa.geojson?hour={hour}",
                  "boroughsGeojson": f"{api}/boroughs.geojson?hour={hour}", "lsoaCsv": f"{api}/lsoa.csv?hour={hour}",
                  "runs": api, "outlines": f"{base}/sensors/boroughs.geojson"})
    here = f"/api/airquality/nowcast/{species}/grid.png?hour={hour}"  # same-origin paths for the page's image and map
    view["images"] = {"mean": f"{here}&layer=mean", "std": f"{here}&layer=std"}
    values = nowcast.area_values(ctx.session, run.id, kind="borough")
    names = area_names(ctx.session, list(values))
    rows = [value_row(species, code, names.get(code, code), mean, std) for code, (mean, std) in values.items()]
    keys = {"name": lambda r: r["name"].lower(), "level": lambda r: r["mean"], "range": lambda r: r["upper"] - r["lower"],
            "band": lambda r: (r["daqi"]["index"] or 0, r["mean"])}
    rows.sort(key=keys[sort], reverse=order == "desc")
    view.update({
        "run": {"id": run.id, "hour": hour, "createdAt": iso(run.created_at), "method": run.method,
                "modelVersion": run.model_version, "referenceSites": run.n_reference_sites,
                "sensorSites": run.n_sensor_sites, "cells": run.n_cells, "seconds": run.seconds},
        "hour": hour, "hourLabel": hour_label(run.hour), "staleness": staleness(run.hour, now),
        "boroughs": rows,
        "legend": {layer: [{"label": label, "colour": colour} for label, colour in nowcast.legend(layer, species)]
                   for layer in ("mean", "std")},
        "bounds": _bounds(ctx.settings, run)})
    return view


def _sort_links(species: str, sort: str, order: str) -> dict[str, dict[str, str]]:
    """Per column: the link that sorts by it (flipping the order of the current column) and its aria-sort."""
    out = {}
    for column in SORTS:
        if column == sort:
            flip = "asc" if order == "desc" else "desc"
            out[column] = {"href": f"/insights/airquality?species={species}&sort={column}&order={flip}",
                           "aria": "ascending" if order == "asc" else "descending"}
        else:
            first = "asc" if column == "name" else "desc"
            out[column] = {"href": f"/insights/airquality?species={species}&sort={column}&order={first}", "aria": "none"}
    return out


@router.get("/insights/airquality")
def map_page(request: Request, ctx: Context = CtxDep) -> Response:
    """The latest hourly estimate of one pollutant across London: map, legend and a table per borough."""
    species = species_of(request.query_params.get("species"))
    sort, order = _sort(request)
    view = map_view(ctx, species, sort, order)
    page = {"view": view, "species_choices": [{"value": k, "text": v, "checked": k == species}
                                              for k, v in SPECIES_NAMES.items()],
            "sort_links": _sort_links(species, sort, order)}
    return render(ctx, "insights/airquality-map.html", page, view)


router.include_router(area_router)  # /insights/airquality/my-area and /insights/airquality/my-area/{code}
