"""The register's pages: one place (names, identifiers, areas, history, a map, its datasets and sensors) and,
for an area, what lies in it (paged tables with counts).

Every page has a JSON twin (``.json`` suffix or ``Accept: application/json``). The map is a Leaflet
map on the borough outlines (no remote tiles) drawn by ``/places/assets/places-map.js``; without
JavaScript a static inline SVG drawn on the server from the British National Grid geometry stands
in its place, and the same facts are in the tables beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup, escape

from ..core.errors import BadRequest, NotFound
from ..core.web import Context, CtxDep, asset_file, render
from . import links, review_pages, service

router = APIRouter(tags=["pages"], include_in_schema=False)
router.include_router(review_pages.router)  # /places/review, /places/propose: before /places/{uid}
AREA_KINDS = ("borough", "ward", "msoa", "lsoa")
AREA_LISTS = ("ward", "msoa", "lsoa", "station", "aq-site", "school", "park", "cultural-venue", "building",
              "lamppost")
PAGE_SIZE = 50
JSON_CONTENTS = 1000  # the JSON twin lists the first 1,000 places of each kind; "counts" has every total
ASSETS = Path(__file__).with_name("static")
ASSET_TYPES = {"places-map.js": "text/javascript", "places.css": "text/css"}


def svg_map(geometry: dict[str, Any] | None, label: str, size: int = 320) -> Markup:
    """A static SVG drawing of a British National Grid geometry (north up, equal scale)."""
    if not geometry:
        return Markup("")
    rings: list[list[list[float]]] = []
    points: list[list[float]] = []
    kind, coords = geometry["type"], geometry["coordinates"]
    if kind == "Point":
        points.append(coords)
    elif kind == "Polygon":
        rings.extend(coords)
    elif kind == "MultiPolygon":
        for polygon in coords:
            rings.extend(polygon)
    elif kind == "LineString":
        rings.append(coords)
    xs = [p[0] for r in rings for p in r] + [p[0] for p in points]
    ys = [p[1] for r in rings for p in r] + [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    span = max(x1 - x0, y1 - y0, 200.0) * 1.1
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2

    def at(p: list[float]) -> str:
        return f"{(p[0] - cx) / span * size + size / 2:.1f},{(cy - p[1]) / span * size + size / 2:.1f}"

    paths = "".join(f'<path d="M{" L".join(at(p) for p in ring)} Z" />' for ring in rings)
    dots = "".join(f'<circle cx="{at(p).split(",")[0]}" cy="{at(p).split(",")[1]}" r="6" />' for p in points)
    return Markup(f'<svg class="app-place-map" role="img" aria-label="Map of {escape(label)}" width="{size}" '
                  f'height="{size}" viewBox="0 0 {size} {size}" xmlns="http://www.w3.org/2000/svg">'
                  f'<rect width="{size}" height="{size}" fill="#f3f2f1" />'
                  f'<g fill="#1d70b8" fill-opacity="0.25" stroke="#1d70b8" stroke-width="1.5" '
                  f'fill-rule="evenodd">{paths}{dots}</g></svg>')


def page_number(request: Request, name: str) -> int:
    """The 1-based page asked for in query parameter ``name`` (400 if it is not a whole number)."""
    raw = request.query_params.get(name) or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise BadRequest(f"{name} must be a whole number from 1.", {name: "Not a page number."})
    return int(raw)


def pager(request: Request, name: str, page: int, total: int, size: int = PAGE_SIZE) -> dict[str, Any] | None:
    """Previous/next links for one paged table (None when everything fits on one page)."""
    pages = max(1, -(-total // size))
    if pages == 1:
        return None

    def href(number: int) -> str:
        params = {k: v for k, v in request.query_params.items() if k != name}
        params[name] = str(number)
        return f"{request.url.path}?{urlencode(params)}"

    out: dict[str, Any] = {"page": page, "pages": pages}
    if page > 1:
        out["previous"] = {"href": href(page - 1), "labelText": f"{page - 1} of {pages}"}
    if page < pages:
        out["next"] = {"href": href(page + 1), "labelText": f"{page + 1} of {pages}"}
    return out


@router.get("/places/assets/{name}")
def asset(name: str) -> Response:
    """The place map's script (the CSP allows only same-origin files)."""
    return asset_file(ASSETS, ASSET_TYPES, name, "places page")


@router.get("/places/{uid:path}", summary="A place")
def place_page(uid: str, request: Request, ctx: Context = CtxDep) -> Response:
    """A place's page: map, names, identifiers, containing areas, history, datasets and sensors; for an area,
    its contents."""
    if not uid.startswith("ldn:"):
        raise NotFound("Place identifiers start with 'ldn:', for example /places/ldn:borough:E09000007.")
    place = service.get_place(ctx.session, uid)
    data = service.place_dict(ctx.session, place)
    counts = service.contained_counts(ctx.session, place) if place.kind in AREA_KINDS else {}
    order = [k for k in AREA_LISTS if k in counts] + sorted(k for k in counts if k not in AREA_LISTS)
    data["contents"] = {kind: [{"uid": u, "name": n} for u, n in service.contained_page(
        ctx.session, place, kind, limit=JSON_CONTENTS)] for kind in order}
    data["counts"] = {kind: counts[kind] for kind in order}
    tables: list[dict[str, Any]] = []
    for kind in order:
        number = page_number(request, f"page-{kind}")
        rows = service.contained_page(ctx.session, place, kind, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
        tables.append({"kind": kind, "label": kind_label(kind), "count": counts[kind],
                       "rows": [{"uid": u, "name": n} for u, n in rows],
                       "pager": pager(request, f"page-{kind}", number, counts[kind])})
    number = page_number(request, "page-datasets")
    total, datasets = links.datasets_about_page(ctx.session, place, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
    data["datasets"] = {"count": total, "page": number, "items": datasets}
    sensors = links.sensors_about(ctx.session, place)
    data["sensors"] = {"count": len(sensors), "items": sensors}
    number_s = page_number(request, "page-sensors")
    page = {"place": data, "tables": tables, "map": svg_map(place.geometry_bng, place.name),
            "datasets": datasets, "datasets_count": total,
            "datasets_pager": pager(request, "page-datasets", number, total),
            "sensors": sensors[(number_s - 1) * PAGE_SIZE:number_s * PAGE_SIZE], "sensors_count": len(sensors),
            "sensors_pager": pager(request, "page-sensors", number_s, len(sensors)),
            "is_area": place.kind in AREA_KINDS, "kind_label": kind_label(place.kind)}
    return render(ctx, "places/place.html", page, data=data)


def kind_label(kind: str) -> str:
    """A kind as people read it in a heading: MSOA, LSOA, Station, Air quality site."""
    return {"msoa": "MSOA", "lsoa": "LSOA", "aq-site": "Air quality site", "cultural-venue": "Cultural venue"}.get(
        kind, kind.replace("-", " ").capitalize())
