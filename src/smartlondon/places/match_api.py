"""Finding places by name: the search page, bulk CSV matching and the reconciliation service.

- ``GET /places/search?q=&kind=&area=&limit=``: ranked places for a name or identifier (HTML
  page with a form and a results table; JSON twin with ``.json`` or ``Accept: application/json``);
- ``GET /places/match``: a form to upload a CSV; ``POST /places/match`` (multipart: ``upload``,
  ``column``, optional ``kind`` and ``area``): the same CSV with match columns added;
- ``/places/reconcile`` and its preview and suggest services (``places.reconcile``).

Every route reads the in-memory index of ``matching.register_index``, rebuilt when the register changes.
"""

from __future__ import annotations

import codecs
import csv
import io
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ..core.errors import BadRequest, PayloadTooLarge, PlatformError
from ..core.uploads import receive_multipart
from ..core.web import Context, CtxDep, json_body, render
from . import reconcile
from .matching import MATCH_COLUMNS, IndexCache, MatchIndex, match_rows, register_index

router = APIRouter(tags=["places"])

MAX_MATCH_BYTES = 10 * 1024 * 1024
MAX_MATCH_ROWS = 20_000
SEARCH_LIMIT = 20


def index_of(ctx: Context) -> MatchIndex:
    """The register's match index for this application (one cache per app)."""
    state = ctx.request.app.state
    cache = getattr(state, "place_match_cache", None)
    if cache is None:
        cache = state.place_match_cache = IndexCache()
    return register_index(ctx.session, cache)


def _check_kind(index: MatchIndex, kind: str | None) -> str | None:
    kind = (kind or "").strip() or None
    if kind is not None and kind not in index.kinds:
        raise BadRequest(f"There are no places of kind '{kind}'. Kinds are: {', '.join(sorted(index.kinds))}.",
                         {"kind": "Unknown kind."})
    return kind


# --- search --------------------------------------------------------------------------------------

@router.get("/places/search", summary="Find places by name or identifier")
def search_page(ctx: Context = CtxDep, q: str = "", kind: str = "", area: str = "",
                limit: int = SEARCH_LIMIT) -> Response:
    """Places whose names or identifiers fit ``q``, best first, optionally of one kind and in one area."""
    if not 1 <= limit <= 100:
        raise BadRequest("'limit' must be between 1 and 100.", {"limit": "Out of range."})
    index = index_of(ctx)
    kind_value = _check_kind(index, kind)
    area_record = index.resolve_area(area) if area.strip() else None
    found = index.search(q, kind=kind_value, area=area_record.uid if area_record else None, limit=limit) if q.strip() else []
    results = []
    for c in found:
        item = c.as_dict()
        item["url"] = f"{ctx.base_url}/places/{c.record.uid}"
        borough = index.record(c.record.areas.get("borough", "")) if c.record.areas.get("borough") else None
        item["borough"] = borough.name if borough else None
        results.append(item)
    data = {"query": q, "kind": kind_value, "area": area_record.uid if area_record else None,
            "area_name": area_record.name if area_record else None, "count": len(results), "results": results}
    kinds = [{"value": "", "text": "Any kind"}] + [
        {"value": k, "text": reconcile.kind_label(k), "selected": k == kind_value} for k in sorted(index.kinds)]
    page = {**data, "kinds": kinds, "area_input": area, "reconcile_url": f"{ctx.base_url}/places/reconcile"}
    return render(ctx, "places/search.html", page, data)


# --- bulk CSV matching ----------------------------------------------------------------------------

@router.get("/places/match", include_in_schema=False)
def match_form(ctx: Context = CtxDep) -> Response:
    """The form to upload a spreadsheet (CSV) of names to match."""
    index = index_of(ctx)
    kinds = [{"value": "", "text": "Any kind"}] + [
        {"value": k, "text": reconcile.kind_label(k)} for k in sorted(index.kinds)]
    page = {"kinds": kinds, "max_rows": MAX_MATCH_ROWS, "max_mb": MAX_MATCH_BYTES // (1024 * 1024),
            "columns": list(MATCH_COLUMNS)}
    return render(ctx, "places/match.html", page)


def _read_csv(data: bytes, column: str) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of an uploaded CSV; 400 if it is empty, not UTF-8 or lacks ``column``."""
    if not data.strip():
        raise BadRequest("The file is empty. Upload a CSV with a header row and one name per row.",
                         {"upload": "Empty file."})
    try:
        text = codecs.decode(data, "utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest("The file is not UTF-8 text. Save it as 'CSV UTF-8' and upload it again.",
                         {"upload": "Not UTF-8."}) from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h for h in (reader.fieldnames or []) if h is not None]
    if column not in header:
        raise BadRequest(f"The file has no column called '{column}'. Its columns are: {', '.join(header)}.",
                         {"column": "Not in the file."})
    clash = [c for c in MATCH_COLUMNS if c in header]
    if clash:
        raise BadRequest(f"The file already has the column(s) {', '.join(clash)}, which matching adds. Rename them.",
                         {"upload": "Column names clash."})
    rows = []
    for row in reader:
        if len(rows) >= MAX_MATCH_ROWS:
            raise PayloadTooLarge(f"The file has more than {MAX_MATCH_ROWS:,} rows. Split it, or use the command "
                                  "`smartlondon places match`, which has no limit.")
        rows.append({k: (v if isinstance(v, str) else "") for k, v in row.items() if k is not None})
    return header, rows


@router.post("/places/match", summary="Match a CSV column of names to places",
             response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def match_csv(request: Request, ctx: Context = CtxDep) -> Response:
    """The uploaded CSV with ``match_uid``, ``match_name``, ``match_kind``, ``score``, ``matched`` and
    ``alternatives`` columns added (multipart fields: ``upload``, ``column``, ``kind``, ``area``)."""
    storage = request.app.state.storage
    limit = min(MAX_MATCH_BYTES, ctx.settings.max_upload_bytes)
    upload = await receive_multipart(request, storage, limit)
    try:
        if upload.file is None:
            raise BadRequest("Choose a CSV file to upload (in the field 'upload').", {"upload": "No file."})
        stored = upload.file.commit()
        try:
            data = b"".join(storage.open_range(stored.key))  # at most MAX_MATCH_BYTES
        finally:
            storage.delete(stored.key)
    finally:
        upload.discard()
    return await run_in_threadpool(_match_upload, ctx, data, upload.fields, upload.filename)


def _match_upload(ctx: Context, data: bytes, fields: dict[str, str], filename: str | None) -> Response:
    column = fields.get("column", "").strip()
    if not column:
        raise BadRequest("Say which column holds the names (the field 'column').", {"column": "Missing."})
    index = index_of(ctx)
    kind = _check_kind(index, fields.get("kind"))
    area_text = fields.get("area", "").strip()
    area = index.resolve_area(area_text).uid if area_text else None
    header, rows = _read_csv(data, column)
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=header + list(MATCH_COLUMNS), extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in match_rows(index, rows, column, kind=kind, area=area):
        writer.writerow(row)
    stem = (filename or "places").rsplit(".", 1)[0] or "places"
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in stem)[:80]
    return Response(out.getvalue().encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{safe}-matched.csv"'})


# --- the reconciliation service ---------------------------------------------------------------------

def _reconcile_response(request: Request, payload: Any, callback: str | None) -> Response:
    if callback:
        return Response(reconcile.jsonp(callback, payload), media_type="application/javascript")
    return JSONResponse(payload, headers={"Access-Control-Allow-Origin": "*"})


def _json_error(exc: PlatformError) -> JSONResponse:
    """Reconciliation clients read JSON only, so its errors are always JSON."""
    return JSONResponse(exc.as_dict(), status_code=exc.status, headers={"Access-Control-Allow-Origin": "*"})


@router.get("/places/reconcile", summary="Reconciliation service: manifest, or queries")
def reconcile_get(request: Request, ctx: Context = CtxDep, queries: str | None = None,
                  callback: str | None = None, extend: str | None = None) -> Response:
    """The service manifest; with ``queries``, the candidates for each query; with ``extend``, property values."""
    try:
        index = index_of(ctx)
        if extend is not None:
            payload: Any = reconcile.extend(reconcile.parse_extend(extend), index)
        elif queries is None:
            payload = reconcile.manifest(ctx.base_url, index, f"{ctx.settings.site_name}: London places")
        else:
            payload = reconcile.run_queries(reconcile.parse_queries(queries), index)
        return _reconcile_response(request, payload, callback)
    except PlatformError as exc:
        return _json_error(exc)


@router.post("/places/reconcile", summary="Reconciliation service: a batch of queries")
async def reconcile_post(request: Request, ctx: Context = CtxDep) -> Response:
    """The candidates for each query of the batch (form field ``queries``, or a JSON body)."""
    try:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.form()
            raw: Any = form.get("queries")
            raw_extend: Any = form.get("extend")
            if raw is None and raw_extend is None:
                raise BadRequest("Send the queries in a form field called 'queries' (or a data extension request "
                                 "in 'extend').", {"queries": "Missing."})
        else:
            body = await json_body(request)
            raw_extend = body.get("extend")
            raw = body.get("queries", body)
        if raw_extend is not None:
            wanted = reconcile.parse_extend(raw_extend)
            return _reconcile_response(request, await run_in_threadpool(
                lambda: reconcile.extend(wanted, index_of(ctx))), None)
        queries = reconcile.parse_queries(raw)

        def run() -> dict[str, Any]:
            return reconcile.run_queries(queries, index_of(ctx))

        return _reconcile_response(request, await run_in_threadpool(run), None)
    except PlatformError as exc:
        return _json_error(exc)


@router.get("/places/reconcile/properties", summary="Reconciliation service: properties to extend data with")
def reconcile_properties(request: Request, ctx: Context = CtxDep, type: str | None = None, limit: int | None = None,
                         callback: str | None = None) -> Response:
    """The properties (codes, containing areas, kind, coordinates) OpenRefine can add as columns."""
    try:
        return _reconcile_response(request, reconcile.propose_properties(index_of(ctx), type, limit), callback)
    except PlatformError as exc:
        return _json_error(exc)


@router.get("/places/reconcile/preview", include_in_schema=False)
def reconcile_preview(ctx: Context = CtxDep, id: str = "") -> HTMLResponse:
    """A small HTML card about one place, for OpenRefine's preview."""
    return HTMLResponse(reconcile.preview_html(index_of(ctx), id, ctx.base_url))


@router.get("/places/reconcile/suggest/entity", summary="Reconciliation service: entity suggestions")
def reconcile_suggest(request: Request, ctx: Context = CtxDep, prefix: str = "", type: str | None = None,
                      callback: str | None = None) -> Response:
    """Places whose names start like ``prefix`` (or fit it), for OpenRefine's search box."""
    try:
        index = index_of(ctx)
        kind = _check_kind(index, type)
        return _reconcile_response(request, reconcile.suggest(index, prefix, kind), callback)
    except PlatformError as exc:
        return _json_error(exc)
