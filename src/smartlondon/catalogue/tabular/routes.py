"""HTTP routes of the tabular data API: dumps, each resource's validation report, and loading on request.

* ``GET /datastore/dump/<resource_id>?format=csv|tsv|json|parquet`` (CKAN's dump, streamed);
* ``GET /dataset/<slug>/resource/<rid>/validation`` (and its JSON twin): the load's status, the
  schema the table was loaded with and the Frictionless validation report;
* ``POST /dataset/<slug>/resource/<rid>/validation``: an editor asks for a (re)load, which is how
  linked files get into the store ("links only on request").

The searches themselves are CKAN actions (``actions.py``) served by the CKAN router.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy import select
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ...core.errors import Forbidden, NotFound
from ...core.pages import flash, needs_sign_in, pop_flash
from ...core.web import Context, CtxDep, FormDep, render, wants_json
from .. import service
from ..download import content_disposition
from ..models import Dataset, Resource
from . import loader
from .dump import prepare_dump
from .models import TabularTable

router = APIRouter(tags=["datastore"])
pages = APIRouter(include_in_schema=False)

STATUS_LABELS = {"pending": ("Waiting to load", "govuk-tag--grey"), "loading": ("Loading", "govuk-tag--blue"),
                 "loaded": ("Loaded", "govuk-tag--green"), "failed": ("Could not load", "govuk-tag--red")}
ERRORS_SHOWN = 100
ERROR_TITLES = {
    "type-error": "Values that do not fit the column’s type", "constraint-error": "Values that break a constraint",
    "unique-error": "Repeated values in a unique column", "primary-key": "Repeated primary keys",
    "missing-cell": "Rows with too few cells", "extra-cell": "Rows with too many cells", "blank-row": "Blank rows",
    "blank-label": "Columns without a name", "duplicate-label": "Repeated column names",
    "incorrect-label": "Column names that differ from the schema", "extra-label": "Columns not in the schema",
    "missing-label": "Schema fields missing from the file", "source-error": "The file could not be read",
}


@router.get("/datastore/dump/{resource_id}", summary="Download a resource's table (CKAN's datastore dump)")
def datastore_dump(resource_id: str, request: Request, ctx: Context = CtxDep) -> Response:
    """The whole table (or the rows and columns that `q`, `filters`, `fields`, `sort`, `limit` and `offset`
    pick) as `format` = csv (default), tsv, json (CKAN's `{"fields", "records"}`) or parquet; `bom=true`
    starts CSV/TSV with a byte order mark (for Excel). Streamed, whatever the table's size."""
    dump = prepare_dump(ctx.session, ctx.actor, ctx.settings, resource_id, dict(request.query_params))
    headers = {"Content-Disposition": content_disposition(dump.filename), "Cache-Control": "no-cache"}
    chunks = dump.chunks()
    return StreamingResponse(chunks, media_type=dump.media_type, headers=headers,
                             background=BackgroundTask(lambda: dump.path.unlink(missing_ok=True)))


# --- the validation report page --------------------------------------------------------------------------

def status_view(row: TabularTable | None, ds: Dataset, res: Resource) -> dict[str, Any] | None:
    """What the dataset page shows next to a resource: a status tag, a one-line summary and a link."""
    if row is None:
        return None
    label, tag = STATUS_LABELS.get(row.status, (row.status, "govuk-tag--grey"))
    if row.status == "loaded":
        rows = f"{row.row_count:,} row{'' if row.row_count == 1 else 's'}"
        problems = ("no problems found" if row.valid else
                    f"{row.error_count:,} problem{'' if row.error_count == 1 else 's'} found")
        summary = f"{rows}; {problems}."
    elif row.status == "failed":
        summary = (row.error or "The file could not be loaded.").rstrip(".") + "."
    elif row.available:
        summary = "A new version is being loaded; the API serves the previous one until it is ready."
    else:
        summary = "Its rows will be searchable through the API once loaded."
    if row.status == "loaded" and not row.valid:
        tag = "govuk-tag--yellow"
        label = "Loaded with problems"
    return {"status": row.status, "label": label, "tag_class": tag, "summary": summary, "valid": row.valid,
            "url": f"/dataset/{ds.slug}/resource/{res.uuid}/validation"}


def statuses_for(request: Request, ds: Dataset) -> dict[int, dict[str, Any]]:
    """Status views of every resource of a dataset, in one query (kept for the rest of the request)."""
    cache = getattr(request.state, "tabular_statuses", None)
    if cache is None:
        cache = {}
        request.state.tabular_statuses = cache
    if ds.id not in cache:
        ids = [r.id for r in ds.resources]
        found: dict[int, dict[str, Any]] = {}
        if ids:
            with request.app.state.db.session() as session:
                rows = {row.resource_id: row for row in session.scalars(
                    select(TabularTable).where(TabularTable.resource_id.in_(ids)))}
                for res in ds.resources:
                    view = status_view(rows.get(res.id), ds, res)
                    if view is not None:
                        found[res.id] = view
        cache[ds.id] = found
    return cache[ds.id]


def _report_page_data(ctx: Context, ds: Dataset, res: Resource, row: TabularTable | None) -> dict[str, Any]:
    base = ctx.base_url
    rid = res.uuid
    data: dict[str, Any] = {
        "dataset": ds.slug, "resource": rid, "title": res.title,
        "loadable": loader.loadable_kind(res) is not None, "status": row.status if row else "not-tabular",
        "valid": row.valid if row else None, "rows": row.row_count if row else None,
        "errors": row.error_count if row else 0, "error": row.error if row else None,
        "requested_at": row.requested_at.isoformat() if row and row.requested_at else None,
        "loaded_at": row.loaded_at.isoformat() if row and row.loaded_at else None,
        "schema_source": row.schema_source if row else None, "schema": row.table_schema if row else None,
        "gss_columns": list(row.gss_columns or []) if row else [], "report": row.report if row else None,
    }
    if row is not None and row.available:
        data["api"] = {
            "datastore_search": f"{base}/api/3/action/datastore_search?resource_id={rid}",
            "datastore_info": f"{base}/api/3/action/datastore_info?id={rid}",
            "dump": {fmt: f"{base}/datastore/dump/{rid}?format={fmt}" for fmt in ("csv", "tsv", "json", "parquet")},
        }
    return data


@pages.get("/dataset/{slug}/resource/{rid}/validation")
def validation_page(slug: str, rid: str, request: Request, ctx: Context = CtxDep) -> Response:
    """A resource's table: load status, the schema it was loaded with, and the Frictionless validation report."""
    ds = service.get_dataset(ctx.session, ctx.actor, slug)
    res = service.get_resource(ctx.session, ctx.actor, ds, rid)
    row = ctx.session.scalar(select(TabularTable).where(TabularTable.resource_id == res.id))
    data = _report_page_data(ctx, ds, res, row)
    if wants_json(request):
        return render(ctx, "catalogue/tabular_validation.html", {}, data)
    report = (row.report or {}) if row else {}
    task = (report.get("tasks") or [{}])[0]
    summary = report.get("summary") or {}
    by_type = [{"type": kind, "title": ERROR_TITLES.get(kind, kind.replace("-", " ").capitalize()), "count": n}
               for kind, n in sorted((summary.get("byType") or {}).items(), key=lambda kv: -kv[1])]
    page = {"ds": ds, "res": res, "row": row, "data": data, "view": status_view(row, ds, res),
            "by_type": by_type, "errors": (task.get("errors") or [])[:ERRORS_SHOWN],
            "listed": len(task.get("errors") or []), "warnings": task.get("warnings") or [],
            "fields": (row.table_schema or {}).get("fields", []) if row else [],
            "can_edit": ctx.actor.can_edit(ds.organisation_id), "flash": pop_flash(request),
            "errors_shown": ERRORS_SHOWN}
    return render(ctx, "catalogue/tabular_validation.html", page, data)


@pages.post("/dataset/{slug}/resource/{rid}/validation")
async def request_load(slug: str, rid: str, request: Request, ctx: Context = CtxDep,
                       form: FormData = FormDep) -> Response:
    """Ask for the resource to be loaded (again) into the data store: editors only; links load only this way."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect

    def work() -> str:
        ds = service.get_dataset(ctx.session, ctx.actor, slug)
        res = service.get_resource(ctx.session, ctx.actor, ds, rid)
        if not ctx.actor.can_edit(ds.organisation_id):
            raise Forbidden(f"You are not an editor of {ds.organisation.name}, so you cannot load its data.")
        if loader.loadable_kind(res) is None:
            raise NotFound("This resource is not a CSV, TSV, XLSX or Parquet file, so it has no table to load.")
        loader.request_load(ctx.session, res, force=True)
        ctx.session.commit()
        return res.title

    title = await run_in_threadpool(work)
    binding = loader.binding_for(request.app.state.db.engine)
    if binding is not None and binding.wake is not None:
        binding.wake()
    flash(request, "Load requested", f"‘{title}’ will be loaded into the data API shortly. This page shows "
                                     "its progress.")
    location = f"/dataset/{quote(slug)}/resource/{quote(rid)}/validation"
    if wants_json(request):
        return Response(status_code=202, headers={"Location": location})
    return RedirectResponse(location, status_code=303)
