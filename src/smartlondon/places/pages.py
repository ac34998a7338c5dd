"""The register's pages: one place (names, identifiers, areas, history, a map) and, for an area, what lies in it.

Every page has a JSON twin (``.json`` suffix or ``Accept: application/json``). The map is a static
inline SVG drawn on the server from the British National Grid geometry, so it needs no JavaScript
and no tiles; the same facts are in the tables beside it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from markupsafe import Markup, escape

from ..core.errors import NotFound
from ..core.web import Context, CtxDep, render
from . import service

router = APIRouter(tags=["pages"], include_in_schema=False)
AREA_LISTS = ("msoa", "lsoa", "station", "aq-site", "school", "park", "cultural-venue", "building")


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


@router.get("/places/{uid:path}", summary="A place")
def place_page(uid: str, ctx: Context = CtxDep) -> Response:
    """A place's page: map, names, identifiers, containing areas, history; for an area, its contents."""
    if not uid.startswith("ldn:"):
        raise NotFound("Place identifiers start with 'ldn:', for example /places/ldn:borough:E09000007.")
    place = service.get_place(ctx.session, uid)
    data = service.place_dict(ctx.session, place)
    contents: dict[str, list[dict[str, str]]] = {}
    if place.kind in ("borough", "ward", "msoa", "lsoa"):
        for member in service.contained_places(ctx.session, place):
            contents.setdefault(member.kind, []).append({"uid": member.uid, "name": member.name})
    data["contents"] = contents
    page = {"place": data, "contents": {k: contents[k] for k in AREA_LISTS if k in contents},
            "map": svg_map(place.geometry_bng, place.name)}
    return render(ctx, "places/place.html", page, data=data)
