"""OGC API - Features (Part 1 Core, GeoJSON; Part 2 CRS by reference) over the register at /places/ogc.

One collection per kind. Items are GeoJSON Features whose ``id`` is the place's ``ldn:`` uid.
``crs`` chooses CRS84 (WGS84 lon/lat) or EPSG:27700 (British National Grid, from the stored
reprojection); ``bbox-crs`` says which CRS ``bbox`` is in. Every resource is also HTML when the client
asks for it (``f=html``, or a browser's ``Accept: text/html`` without ``f``): the same facts in tables,
with a map (Leaflet on the borough outlines; an SVG drawing without JavaScript). ``f=json`` forces JSON.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select

from ..core.errors import BadRequest, NotFound
from ..core.web import Context, CtxDep, html
from . import service, spatial
from .routing import JsonErrorRoute
from .models import Place, PlaceKind

router = APIRouter(prefix="/places/ogc", tags=["places: OGC API - Features"], route_class=JsonErrorRoute)
DEFAULT_LIMIT = 10
MAX_LIMIT = 10000
GEOJSON = "application/geo+json"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
]
CRS_LIST = [spatial.CRS84, spatial.BNG]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/places/ogc"


def _json(data: Any, media: str = "application/json", headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, media_type=media, headers=headers)


def wants_html(request: Request) -> bool:
    """HTML when asked with ``f=html``, or by a browser (Accept text/html) without ``f``; 400 for other ``f``."""
    f = request.query_params.get("f")
    if f not in (None, "", "html", "json", "geojson"):
        raise BadRequest("f must be html, json or geojson.", {"f": "Unknown format."})
    if f:
        return f == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "json" not in accept.split("text/html")[0]


def _html_link(request: Request, path: str = "") -> str:
    """The HTML twin of a resource: its own address with f=html (other parameters kept)."""
    params = {k: v for k, v in request.query_params.items() if k != "f"}
    params["f"] = "html"
    return f"{_base(request)}{path}?{urlencode(params)}"


def _page(ctx: Context, template: str, body: dict[str, Any], **extra: Any) -> Response:
    """The HTML encoding of an OGC resource: the JSON ``body`` and anything else the template needs."""
    return html(ctx, template, {"body": body, "json_href": _json_href(ctx.request), **extra})


def _json_href(request: Request) -> str:
    params = {k: v for k, v in request.query_params.items() if k != "f"}
    params["f"] = "json"
    return f"{request.url.path}?{urlencode(params)}"


@router.get("", summary="Landing page")
def landing(request: Request, ctx: Context = CtxDep) -> Response:
    """The OGC API landing page: links to the API definition, conformance and collections."""
    base = _base(request)
    body = {"title": "London places register", "description": "Names, identifiers and footprints of "
                  "London's areas, stations, sites and objects, by kind.", "links": [
                      {"href": base, "rel": "self", "type": "application/json", "title": "This document"},
                      {"href": str(request.base_url).rstrip("/") + "/openapi.json", "rel": "service-desc",
                       "type": "application/vnd.oai.openapi+json;version=3.0", "title": "The API definition"},
                      {"href": base + "/conformance", "rel": "conformance", "type": "application/json",
                       "title": "Conformance classes"},
                      {"href": base + "/collections", "rel": "data", "type": "application/json",
                       "title": "Collections (one per kind)"},
                      {"href": _html_link(request), "rel": "alternate", "type": "text/html",
                       "title": "This document as HTML"}]}
    if wants_html(request):
        return _page(ctx, "places/ogc_landing.html", body, conformance=CONFORMANCE)
    return _json(body)


@router.get("/conformance", summary="Conformance classes")
def conformance(request: Request, ctx: Context = CtxDep) -> Response:
    """The conformance classes this API implements."""
    if wants_html(request):
        return _page(ctx, "places/ogc_landing.html", {"conformsTo": CONFORMANCE}, conformance=CONFORMANCE,
                     conformance_only=True)
    return _json({"conformsTo": CONFORMANCE})


def _collection(request: Request, kind: PlaceKind, extent: tuple[Any, ...] | None) -> dict[str, Any]:
    base = _base(request) + f"/collections/{kind.code}"
    out: dict[str, Any] = {
        "id": kind.code, "title": kind.label, "description": kind.description or f"{kind.label}s in London.",
        "itemType": "feature", "crs": CRS_LIST, "storageCrs": spatial.CRS84,
        "links": [{"href": base, "rel": "self", "type": "application/json"},
                  {"href": base + "/items", "rel": "items", "type": GEOJSON, "title": "Items as GeoJSON"},
                  {"href": base + "?f=html", "rel": "alternate", "type": "text/html", "title": "As HTML"},
                  {"href": base + "/items?f=html", "rel": "items", "type": "text/html", "title": "Items as HTML"}]}
    if extent and extent[0] is not None:
        out["extent"] = {"spatial": {"bbox": [[round(v, 6) for v in extent[:4]]], "crs": spatial.CRS84},
                         "temporal": {"interval": [[extent[4].isoformat() if extent[4] else None, None]],
                                      "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}}
    return out


def _extents(ctx: Context) -> dict[str, tuple[Any, ...]]:
    rows = ctx.session.execute(select(Place.kind, func.min(Place.min_lon), func.min(Place.min_lat),
                                      func.max(Place.max_lon), func.max(Place.max_lat), func.min(Place.updated_at))
                               .where(Place.status == "active").group_by(Place.kind))
    return {r[0]: tuple(r[1:]) for r in rows}


@router.get("/collections", summary="Collections: one per kind of place")
def collections(request: Request, ctx: Context = CtxDep) -> Response:
    """Every kind of place, as a feature collection."""
    extents = _extents(ctx)
    body = {"links": [{"href": _base(request) + "/collections", "rel": "self", "type": "application/json"},
                      {"href": _html_link(request, "/collections"), "rel": "alternate", "type": "text/html",
                       "title": "As HTML"}],
            "collections": [_collection(request, k, extents.get(k.code)) for k in service.kinds(ctx.session)]}
    if wants_html(request):
        counts = service.counts_by_kind(ctx.session)
        return _page(ctx, "places/ogc_collections.html", body, counts=counts)
    return _json(body)


def _kind(ctx: Context, kind: str) -> PlaceKind:
    service.seed_kinds(ctx.session)
    found = ctx.session.get(PlaceKind, kind)
    if found is None:
        raise NotFound(f"There is no collection {kind!r}; see /places/ogc/collections.")
    return found


@router.get("/collections/{kind}", summary="One collection")
def collection(kind: str, request: Request, ctx: Context = CtxDep) -> Response:
    """A kind of place as a collection, with its extent."""
    found = _kind(ctx, kind)
    body = _collection(request, found, _extents(ctx).get(kind))
    if wants_html(request):
        counts = service.counts_by_kind(ctx.session)
        return _page(ctx, "places/ogc_collections.html", {"collections": [body]}, counts=counts, single=body)
    return _json(body)


def _feature(place: Place, crs: str, base: str) -> dict[str, Any]:
    geometry = place.geometry_bng if crs == spatial.BNG else place.geometry
    props: dict[str, Any] = {"name": place.name, "kind": place.kind, "status": place.status,
                             "updated": place.updated_at.isoformat()}
    props.update({k: v for k, v in (place.properties or {}).items() if k not in props})
    return {"type": "Feature", "id": place.uid, "geometry": geometry, "properties": props,
            "links": [{"href": f"{base}/collections/{place.kind}/items/{place.uid}", "rel": "self", "type": GEOJSON}]}


def _parse_instant(value: str) -> datetime | None:
    if value in ("", ".."):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"The datetime {value!r} is not an RFC 3339 date-time (for example 2024-01-31T00:00:00Z) "
                         "or an interval start/end with '..' for open ends.", {"datetime": "Not a date-time."}) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}.", {name: "Out of range."})
    return int(raw)


@router.get("/collections/{kind}/items", summary="Features of a collection")
def items(kind: str, request: Request, ctx: Context = CtxDep) -> Response:
    """Places of a kind as GeoJSON, filtered by ``bbox`` (in ``bbox-crs``) and ``datetime`` (last update), paged."""
    _kind(ctx, kind)
    q = request.query_params
    crs = spatial.normalise_crs(q.get("crs"), "crs")
    region = spatial.parse_bbox(q.get("bbox"), q.get("bbox-crs") or spatial.CRS84)
    if q.get("bbox-crs") and not q.get("bbox"):
        spatial.normalise_crs(q.get("bbox-crs"), "bbox-crs")
    limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0, 10 ** 9)
    ids = spatial.query_ids(ctx.session, region, kinds=[kind]) if region is not None else []
    query = select(Place).where(Place.id.in_(ids)) if region is not None else \
        select(Place).where(Place.kind == kind, Place.status == "active")
    when = q.get("datetime")
    if when:
        if "/" in when:
            start_raw, end_raw = when.split("/", 1)
            start, end = _parse_instant(start_raw), _parse_instant(end_raw)
            if start is not None:
                query = query.where(Place.updated_at >= start)
            if end is not None:
                query = query.where(Place.updated_at <= end)
        else:
            instant = _parse_instant(when)
            if instant is None:
                raise BadRequest("datetime '..' needs a start or an end.", {"datetime": "Open on both ends."})
            query = query.where(Place.updated_at == instant)
    if region is not None and len(ids) > 30000:
        raise BadRequest("The bbox matches too many places; make it smaller.", {"bbox": "Too large."})
    matched = ctx.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    places = list(ctx.session.scalars(query.order_by(Place.id).offset(offset).limit(limit)))
    base = _base(request)
    here = f"{base}/collections/{kind}/items"

    def link(rel: str, new_offset: int) -> dict[str, Any]:
        params = {k: v for k, v in q.items() if k != "offset"}
        params.update(offset=str(new_offset), limit=str(limit))
        return {"href": f"{here}?{urlencode(params)}", "rel": rel, "type": GEOJSON}

    links = [link("self", offset)]
    if offset + len(places) < matched:
        links.append(link("next", offset + limit))
    if offset > 0:
        links.append(link("prev", max(0, offset - limit)))
    body = {"type": "FeatureCollection", "features": [_feature(p, crs, base) for p in places],
            "numberMatched": matched, "numberReturned": len(places),
            "timeStamp": datetime.now(timezone.utc).isoformat(timespec="seconds"), "links": links}
    if wants_html(request):
        pages = {link["rel"]: link["href"] for link in links if link["rel"] in ("next", "prev")}
        on_map = {k: v for k, v in q.items() if k not in ("f", "crs")}
        return _page(ctx, "places/ogc_items.html", body, kind=_kind(ctx, kind), crs=crs, limit=limit, offset=offset,
                     pages=pages, map_href=f"{request.url.path}?{urlencode({**on_map, 'f': 'json'})}")
    links.append({"href": _html_link(request, f"/collections/{kind}/items"), "rel": "alternate", "type": "text/html",
                  "title": "As HTML"})
    return _json(body, GEOJSON, {"Content-Crs": f"<{crs}>"})


@router.get("/collections/{kind}/items/{uid:path}", summary="One feature")
def item(kind: str, uid: str, request: Request, ctx: Context = CtxDep) -> Response:
    """One place as a GeoJSON Feature (retired places too: their status says so)."""
    _kind(ctx, kind)
    crs = spatial.normalise_crs(request.query_params.get("crs"), "crs")
    place = ctx.session.scalar(select(Place).where(Place.uid == uid, Place.kind == kind))
    if place is None:
        raise NotFound(f"There is no {kind} {uid!r}.")
    feature = _feature(place, crs, _base(request))
    feature["links"].append({"href": f"{_base(request)}/collections/{kind}", "rel": "collection",
                             "type": "application/json"})
    if place.successors:
        feature["properties"]["successors"] = place.successors
    if wants_html(request):
        from .pages import svg_map

        return _page(ctx, "places/ogc_item.html", feature, kind=_kind(ctx, kind), crs=crs,
                     map=svg_map(place.geometry_bng, place.name), place_href=f"/places/{place.uid}")
    feature["links"].append({"href": _html_link(request, f"/collections/{kind}/items/{uid}"), "rel": "alternate",
                             "type": "text/html", "title": "As HTML"})
    return _json(feature, GEOJSON, {"Content-Crs": f"<{crs}>"})
