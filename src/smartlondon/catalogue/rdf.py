"""The catalogue as DCAT-AP 3 RDF: ``/catalog.{ttl,rdf,jsonld}``, ``/dataset/<slug>.{ttl,rdf,jsonld}``.

``/catalog`` and ``/dataset/<slug>`` also answer in RDF when the client's ``Accept`` header prefers
Turtle, RDF/XML or JSON-LD (``RdfNegotiationMiddleware`` sends such requests for a dataset page to
its RDF twin). The catalogue is paged with Hydra and can be filtered with ``modified_since``.
Records that cannot be expressed are left out, counted in ``X-Skipped-Records`` and listed at
``/catalog/problems``; they never turn the catalogue into an error.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.errors import BadRequest, NotFound, PlatformError
from ..core.web import Context, CtxDep, render
from . import dcat, dumps, service

log = logging.getLogger(__name__)

router = APIRouter(tags=["DCAT-AP"])

RDF_TYPES = {"ttl": "text/turtle", "rdf": "application/rdf+xml", "jsonld": "application/ld+json"}
SUFFIX_FOR_TYPE = {media: suffix for suffix, media in RDF_TYPES.items()}
PAGE_OFFERS = ["text/html", "application/json", *RDF_TYPES.values()]


class RecordCorrupt(PlatformError):
    """A stored record cannot be written as DCAT-AP (500): its data was changed behind the platform's back."""

    status = 500
    code = "record_corrupt"


class NotAcceptable(PlatformError):
    """None of the representations on offer is acceptable to the client (406)."""

    status = 406
    code = "not_acceptable"


# --- content negotiation -----------------------------------------------------------------------

def _accept_ranges(header: str) -> list[tuple[str, str, float]]:
    ranges = []
    for part in header.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if "/" not in media:
            continue
        kind, _, subtype = media.partition("/")
        quality = 1.0
        for param in fields[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = max(0.0, min(1.0, float(value)))
                except ValueError:
                    quality = 0.0
        ranges.append((kind, subtype, quality))
    return ranges


def negotiate(accept: str | None, offers: list[str]) -> str | None:
    """The offered media type the ``Accept`` header prefers (ties go to the earlier offer); None if none."""
    if not accept or not accept.strip():
        return offers[0]
    ranges = _accept_ranges(accept)
    best, best_quality = None, 0.0
    for offer in offers:
        kind, _, subtype = offer.partition("/")
        quality, specificity = 0.0, -1
        for r_kind, r_subtype, r_quality in ranges:
            if (r_kind, r_subtype) == (kind, subtype):
                level = 2
            elif r_kind == kind and r_subtype == "*":
                level = 1
            elif (r_kind, r_subtype) == ("*", "*"):
                level = 0
            else:
                continue
            if level > specificity:
                quality, specificity = r_quality, level
        if quality > best_quality:
            best, best_quality = offer, quality
    return best


class RdfNegotiationMiddleware:
    """Serve ``/dataset/<slug>`` as its RDF twin when the client prefers Turtle, RDF/XML or JSON-LD."""

    PATH = re.compile(r"^/dataset/[^/.]+$")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD") or not self.PATH.match(path)
                or (scope.get("state") or {}).get("json_suffix")):
            await self.app(scope, receive, send)
            return
        accept = next((v.decode("latin-1") for k, v in scope.get("headers") or [] if k == b"accept"), None)
        chosen = negotiate(accept, PAGE_OFFERS)
        if chosen in SUFFIX_FOR_TYPE:  # changed in place, as JsonSuffixMiddleware does, so the logs see the route
            scope["path"] = f"{path}.{SUFFIX_FOR_TYPE[chosen]}"
            scope["raw_path"] = scope["path"].encode()

        async def send_with_vary(message: Message) -> None:
            if message["type"] == "http.response.start":  # the answer depends on Accept: say so to caches
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"vary"]
                varies = [v.decode("latin-1") for k, v in message.get("headers", []) if k.lower() == b"vary"]
                names = [n.strip() for v in varies for n in v.split(",") if n.strip()]
                if "accept" not in {n.lower() for n in names}:
                    names.append("Accept")
                headers.append((b"vary", ", ".join(names).encode("latin-1")))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_vary)


# --- the catalogue -----------------------------------------------------------------------------

def catalogue_info(ctx: Context) -> dcat.CatalogueInfo:
    """The catalogue's own description, from the settings."""
    settings = ctx.settings
    return dcat.CatalogueInfo(base_url=ctx.base_url, title=settings.site_name,
                              description=settings.catalogue_description,
                              publisher_slug=settings.catalogue_publisher)


def _whole_number(raw: str | None, name: str, default: int, minimum: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if not minimum <= value <= maximum:
        message = f"{name} must be a whole number from {minimum} to {maximum}; got '{raw}'."
        raise BadRequest(message, {name: message})
    return value


def _suffix(fmt: str) -> str:
    if fmt not in RDF_TYPES:
        raise NotFound(f"The catalogue's RDF is available as .ttl (Turtle), .rdf (RDF/XML) and .jsonld "
                       f"(JSON-LD), not .{fmt}.")
    return fmt


def rdf_response(graph: Any, suffix: str, headers: dict[str, str] | None = None, head: bool = False) -> Response:
    """A graph serialised as Turtle, RDF/XML or JSON-LD."""
    _, media_type = dcat.FORMATS[suffix]
    body = dcat.serialize(graph, suffix)
    return Response(b"" if head else body, media_type=media_type,
                    headers={"Content-Length": str(len(body)), **(headers or {})})


def _catalog(request: Request, ctx: Context, suffix: str, address: str) -> Response:
    params = request.query_params
    page = _whole_number(params.get("page"), "page", 1, 1, 10**9)
    page_size = _whole_number(params.get("page_size"), "page_size", dcat.DEFAULT_PAGE_SIZE, 1, dcat.MAX_PAGE_SIZE)
    raw_since = params.get("modified_since")
    try:
        since = dcat.parse_modified_since(raw_since)
    except ValueError:
        message = (f"modified_since must be an ISO 8601 date or date and time, like 2024-05-01 or "
                   f"2024-05-01T10:00:00Z; got '{raw_since}'.")
        raise BadRequest(message, {"modified_since": message}) from None
    result = dcat.catalog_page(ctx.session, catalogue_info(ctx), page=page, page_size=page_size,
                               modified_since=since, page_address=address)
    if page > result.pages:
        raise NotFound(f"The catalogue has {result.pages} page(s) of {result.page_size} datasets; "
                       f"there is no page {page}.")
    headers = {"X-Total-Count": str(result.total), "X-Skipped-Records": str(len(result.skipped)),
               "Vary": "Accept", "Link": _link_header(result, ctx.base_url, address, request)}
    return rdf_response(result.graph, suffix, headers, head=request.method == "HEAD")


def _link_header(result: dcat.CatalogPage, base_url: str, address: str, request: Request) -> str:
    def href(number: int) -> str:
        params = {k: v for k, v in request.query_params.items() if k in ("page_size", "modified_since")}
        return f"<{base_url}{address}?{urlencode({'page': number, **params})}>"

    links = [f'{href(1)}; rel="first"', f'{href(result.pages)}; rel="last"']
    if result.page > 1:
        links.append(f'{href(min(result.page - 1, result.pages))}; rel="prev"')
    if result.page < result.pages:
        links.append(f'{href(result.page + 1)}; rel="next"')
    return ", ".join(links)


PAGE = Query(None, description="Page number, from 1")
PAGE_SIZE = Query(None, description="Datasets per page, 1 to 1000 (default 100)")
MODIFIED_SINCE = Query(None, description="Only datasets changed at or after this ISO 8601 date or date-time, "
                                         "e.g. 2024-05-01T10:00:00Z")
PAGING_DOC = ("`page` (from 1), `page_size` (1 to 1000, default 100) and `modified_since` (an ISO 8601 date or "
              "date-time: only datasets changed since then). Hydra paging links (`hydra:PartialCollectionView`) "
              "are in the graph and in the `Link` header; `X-Skipped-Records` counts records left out because "
              "they cannot be expressed (see /catalog/problems).")


@router.api_route("/catalog", methods=["GET", "HEAD"], summary="The catalogue as DCAT-AP 3 (content negotiation)",
                  description="Turtle, RDF/XML or JSON-LD, chosen by the `Accept` header (default Turtle). "
                              + PAGING_DOC)
def catalog_negotiated(request: Request, ctx: Context = CtxDep,
                       page: str | None = PAGE, page_size: str | None = PAGE_SIZE,
                       modified_since: str | None = MODIFIED_SINCE) -> Response:
    """The catalogue in the RDF serialisation the client prefers."""
    chosen = negotiate(request.headers.get("accept"), list(RDF_TYPES.values()))
    if chosen is None:
        raise NotAcceptable("The catalogue is available as text/turtle, application/rdf+xml and "
                            "application/ld+json. Send one of them in the Accept header, or use /catalog.ttl.")
    return _catalog(request, ctx, SUFFIX_FOR_TYPE[chosen], "/catalog")


@router.api_route("/catalog.{fmt}", methods=["GET", "HEAD"], summary="The catalogue as DCAT-AP 3",
                  description="`fmt`: `ttl` (Turtle), `rdf` (RDF/XML) or `jsonld` (JSON-LD). " + PAGING_DOC)
def catalog_rdf(fmt: str, request: Request, ctx: Context = CtxDep,
                page: str | None = PAGE, page_size: str | None = PAGE_SIZE,
                modified_since: str | None = MODIFIED_SINCE) -> Response:
    """The catalogue in one RDF serialisation, a page at a time."""
    suffix = _suffix(fmt)
    return _catalog(request, ctx, suffix, f"/catalog.{suffix}")


@router.api_route("/dataset/{slug}.{fmt}", methods=["GET", "HEAD"], summary="A dataset as DCAT-AP 3",
                  description="`fmt`: `ttl`, `rdf` or `jsonld`. `/dataset/{slug}` answers the same with "
                              "`Accept: text/turtle` (or RDF/XML, JSON-LD).")
def dataset_rdf(slug: str, fmt: str, request: Request, ctx: Context = CtxDep) -> Response:
    """One dataset and its distributions in RDF (private ones only for those who may see them)."""
    suffix = _suffix(fmt)
    ds = service.get_dataset(ctx.session, ctx.actor, slug)
    try:
        graph = dcat.dataset_graph(ctx.session, ctx.base_url, ds.id)
    except dcat.RecordError as exc:
        log.error("dataset cannot be expressed in DCAT-AP", extra={"fields": {"dataset": ds.slug, "reason": str(exc)}})
        raise RecordCorrupt(f"The dataset '{ds.slug}' cannot be shown as DCAT-AP because its stored record is "
                            f"damaged: {exc}. Its publisher or an administrator needs to correct it.") from None
    headers = {"Vary": "Accept", "Link": f'<{ctx.base_url}/dataset/{ds.slug}>; rel="alternate"; type="text/html"'}
    return rdf_response(graph, suffix, headers, head=request.method == "HEAD")


_problems_cache: dict[tuple[str, str], tuple[str, list[dcat.Skipped]]] = {}


@router.get("/catalog/problems", include_in_schema=False)
def catalog_problems(request: Request, ctx: Context = CtxDep) -> Response:
    """Public datasets the DCAT-AP catalogue leaves out, and why (HTML, or JSON with .json)."""
    stamp = dumps.catalogue_stamp(ctx.session)
    key = (str(ctx.session.get_bind().engine.url), ctx.base_url)
    cached = _problems_cache.get(key)
    if cached is None or cached[0] != stamp:  # checked again only once the catalogue has changed
        cached = _problems_cache[key] = (stamp, dcat.catalogue_problems(ctx.session, ctx.base_url))
    problems = cached[1]
    data = {"count": len(problems), "problems": [
        {**p.as_dict(), "url": f"{ctx.base_url}/dataset/{p.slug}" if p.slug else None} for p in problems]}
    return render(ctx, "catalogue/catalog_problems.html", {"problems": problems}, data)
