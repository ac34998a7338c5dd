"""JSON routes of the register: one place, reverse geocoding, nearest places and places within an area."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..core.errors import BadRequest
from ..core.web import Context, CtxDep, json_body
from . import service, spatial
from .routing import JsonErrorRoute
from .models import Place

router = APIRouter(prefix="/places/api", tags=["places"], route_class=JsonErrorRoute)
MAX_N = 100
MAX_WITHIN = 10000


def _coordinate(value: str | None, name: str, low: float, high: float) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadRequest(f"Give {name} as a number in degrees (WGS84), for example lon=-0.1246&lat=51.5308.",
                         {name: "Not a number."}) from None
    if not low <= number <= high:
        raise BadRequest(f"{name} must be between {low} and {high}.", {name: "Out of range."})
    return number


def _point(request: Request) -> tuple[float, float]:
    q = request.query_params
    return _coordinate(q.get("lon"), "lon", -180, 180), _coordinate(q.get("lat"), "lat", -90, 90)


def _brief(place: Place, distance: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"uid": place.uid, "kind": place.kind, "name": place.name,
                           "point": {"lon": place.point_lon, "lat": place.point_lat}}
    if distance is not None:
        out["distance_m"] = distance
    return out


def _kinds(request: Request) -> list[str]:
    return [k for part in request.query_params.getlist("kind") for k in part.split(",") if k.strip()]


@router.get("/place/{uid:path}", summary="One place: names, identifiers, areas, geometry, history")
def place(uid: str, ctx: Context = CtxDep) -> JSONResponse:
    """A place with everything the register holds about it."""
    return JSONResponse(service.place_dict(ctx.session, service.get_place(ctx.session, uid)))


@router.get("/reverse", summary="Reverse geocode: the areas containing a point and the places nearest it")
def reverse(request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """Which borough, ward, MSOA and LSOA contain ``lon``/``lat``, and the nearest places."""
    lon, lat = _point(request)
    areas: dict[str, Any] = {k: None for k in spatial.AREA_KINDS}
    for _id, uid, kind, name in spatial.areas_at(ctx.session, lon, lat):
        areas[kind] = areas[kind] or {"uid": uid, "name": name}
    near = spatial.nearest(ctx.session, lon, lat, n=5)
    places = {p.id: p for p in ctx.session.query(Place).filter(Place.id.in_([i for i, _ in near]))}
    return JSONResponse({"lon": lon, "lat": lat, **areas, "in_london": areas["borough"] is not None,
                         "nearest": [_brief(places[i], d) for i, d in near]})


@router.get("/nearest", summary="The N places nearest a point")
def nearest(request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """The ``n`` (default 5, at most 100) active places of ``kind`` nearest ``lon``/``lat``, with distances."""
    lon, lat = _point(request)
    raw = request.query_params.get("n") or "5"
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_N:
        raise BadRequest(f"n must be a whole number from 1 to {MAX_N}.", {"n": "Out of range."})
    kinds = _kinds(request)
    _known_kinds(ctx, kinds)
    near = spatial.nearest(ctx.session, lon, lat, n=int(raw), kinds=kinds)
    places = {p.id: p for p in ctx.session.query(Place).filter(Place.id.in_([i for i, _ in near]))}
    return JSONResponse({"lon": lon, "lat": lat, "kind": kinds, "places": [_brief(places[i], d) for i, d in near]})


def _known_kinds(ctx: Context, kinds: list[str]) -> None:
    known = {k.code for k in service.kinds(ctx.session)}
    unknown = [k for k in kinds if k not in known]
    if unknown:
        raise BadRequest(f"Unknown kind {', '.join(unknown)}; use one of: {', '.join(sorted(known))}.",
                         {"kind": "Unknown kind."})


def _within(ctx: Context, region: Any, kinds: list[str], relation: str) -> JSONResponse:
    _known_kinds(ctx, kinds)
    ids = spatial.query_ids(ctx.session, region, kinds=kinds, relation=relation)
    if len(ids) > MAX_WITHIN:
        raise BadRequest(f"{len(ids)} places match; narrow the area or the kinds (at most {MAX_WITHIN}).",
                         {"bbox": "Too many places."})
    places = ctx.session.query(Place).filter(Place.id.in_(ids)).order_by(Place.kind, Place.name).all() if ids else []
    return JSONResponse({"relation": relation, "kind": kinds, "count": len(places),
                         "places": [_brief(p) for p in places]})


@router.get("/within", summary="Places inside a bounding box")
def within_bbox(request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """Active places whose geometry intersects (or, with ``relation=within``, lies inside) ``bbox``."""
    region = spatial.parse_bbox(request.query_params.get("bbox"), request.query_params.get("bbox-crs") or spatial.CRS84)
    if region is None:
        raise BadRequest("Give a bbox=minlon,minlat,maxlon,maxlat, or POST a GeoJSON polygon.", {"bbox": "Missing."})
    return _within(ctx, region, _kinds(request), request.query_params.get("relation") or "intersects")


@router.post("/within", summary="Places inside a GeoJSON polygon")
async def within_polygon(request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """POST ``{"geometry": <GeoJSON polygon>, "kind": [...], "relation": "intersects"|"within"}``."""
    body = await json_body(request)
    geom = spatial.parse_geometry(body.get("geometry", body if "type" in body else None))
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise BadRequest("The geometry must be a Polygon or MultiPolygon.", {"geometry": "Not a polygon."})
    spatial.footprint(geom, body.get("crs") or spatial.CRS84, check_london=False)  # valid, right CRS
    if (body.get("crs") and spatial.normalise_crs(body["crs"]) == spatial.BNG):
        geom = spatial.to_wgs84(geom)
    kinds = body.get("kind") or []
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    return _within(ctx, geom, kinds, body.get("relation") or "intersects")


# --- proposals and the review queue -------------------------------------------------------------

@router.get("/proposals", summary="The review queue")
def proposals(request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """Proposals with ``status`` (pending by default; accepted and rejected ones are public too)."""
    from . import review

    status = request.query_params.get("status") or "pending"
    if status not in ("pending", "accepted", "rejected"):
        raise BadRequest("status must be pending, accepted or rejected.", {"status": "Unknown status."})
    return JSONResponse({"status": status, "proposals": [review.proposal_dict(p) for p in review.queue(ctx.session, status)]})


@router.post("/proposals", summary="Propose a new place, an edit or a retirement", status_code=201)
async def propose(request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """``{"action": "create", "kind", "name", "geometry", ...}``, ``{"action": "update", "uid", "changes"}`` or
    ``{"action": "retire", "uid", "successors"}``; queued for review."""
    from . import review

    body = await json_body(request)
    proposal = review.propose(ctx.session, ctx.actor, body)
    return JSONResponse(review.proposal_dict(proposal), status_code=201)


@router.post("/proposals/{proposal_id}/{decision}", summary="Accept or reject a proposal (sysadmins)")
async def decide(proposal_id: int, decision: str, request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """``decision`` is ``accept`` or ``reject``; the body is ``{"reason": "..."}``."""
    from . import review

    if decision not in ("accept", "reject"):
        raise BadRequest("Decide with /accept or /reject.", {"decision": "Unknown decision."})
    body = await json_body(request)
    proposal = review.decide(ctx.session, ctx.actor, proposal_id, decision == "accept", str(body.get("reason") or ""))
    return JSONResponse(review.proposal_dict(proposal))
