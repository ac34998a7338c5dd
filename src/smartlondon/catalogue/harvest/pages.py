"""Harvest pages and API: the sources, each source's jobs, and each job's report.

- ``/harvest``: every source with its last job and when it is next due;
- ``/harvest/<source>``: a source, its options and its jobs; ``/harvest/<source>/job/<id>``: a
  job's counts and its errors and warnings, each with the remote id and the reason;
- forms to add and change a source and to start a job (sysadmins and the admins of the
  source's organisation), with CSRF tokens and an error summary;
- the JSON API under ``/api/harvest`` for the same, with an API token.

Every page has a JSON twin (``.json`` or ``Accept: application/json``). A job started from the
web or the API runs in a background thread of the server; its page shows how far it has got.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ...core.accounts import require_authenticated
from ...core.db import Database
from ...core.errors import Conflict, Forbidden, PlatformError, ValidationFailed
from ...core.pages import flash, form_text, needs_sign_in, pop_flash
from ...core.web import Context, CtxDep, FormDep, json_body, render, wants_json
from . import sources
from .models import HarvestError, HarvestJob, HarvestSource
from .options import OPTIONS, TYPE_LABELS, TYPES, public_config

log = logging.getLogger(__name__)
router = APIRouter(tags=["pages"], include_in_schema=False)
bearer = HTTPBearer(auto_error=False, description="An API token of a sysadmin or an organisation admin")
api = APIRouter(prefix="/api/harvest", tags=["harvest"], dependencies=[Depends(bearer)])

FORM_FIELDS = ("name", "slug", "type", "url", "organisation", "schedule", "config", "active")
STATUS_TAGS = {"queued": "govuk-tag--grey", "running": "govuk-tag--blue", "finished": "govuk-tag--green",
               "failed": "govuk-tag--red"}
COUNT_LABELS = (("seen", "Records read"), ("created", "Created"), ("updated", "Updated"),
                ("unchanged", "Unchanged"), ("withdrawn", "Withdrawn"), ("skipped", "Skipped by filters"),
                ("errors", "Errors"), ("warnings", "Warnings"))


# --- views ----------------------------------------------------------------------------------

def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def job_dict(base_url: str, job: HarvestJob, problems: list[HarvestError] | None = None) -> dict[str, Any]:
    """A job as the JSON twin and the API show it."""
    slug = job.source.slug
    out: dict[str, Any] = {
        "id": job.id, "source": slug, "status": job.status, "mode": job.mode, "trigger": job.trigger,
        "requested_by": job.requested_by, "queued_at": _when(job.queued_at), "started_at": _when(job.started_at),
        "finished_at": _when(job.finished_at), "heartbeat_at": _when(job.heartbeat_at), "pages": job.pages,
        "expected": job.expected, "counts": {name: getattr(job, name) for name, _ in COUNT_LABELS},
        "message": job.message, "watermark": job.watermark,
        "url": f"{base_url}/harvest/{slug}/job/{job.id}",
    }
    if problems is not None:
        out["errors"] = [{"remote_id": p.remote_id, "reason": p.reason, "at": _when(p.at)}
                         for p in problems if p.level == "error"]
        out["warnings"] = [{"remote_id": p.remote_id, "reason": p.reason, "at": _when(p.at)}
                           for p in problems if p.level == "warning"]
    return out


def source_dict(base_url: str, source: HarvestSource, last: HarvestJob | None = None) -> dict[str, Any]:
    """A source as the JSON twin and the API show it (secrets masked)."""
    due = sources.next_due(source)
    return {
        "slug": source.slug, "name": source.name, "type": source.type, "type_label": TYPE_LABELS[source.type],
        "url": source.url, "organisation": {"slug": source.organisation.slug, "name": source.organisation.name},
        "schedule": source.schedule, "config": public_config(source.config), "active": source.active,
        "next_due": _when(due), "created": _when(source.created), "modified": _when(source.modified),
        "last_job": job_dict(base_url, last) if last is not None else None,
        "page": f"{base_url}/harvest/{source.slug}",
    }


def _run_in_background(db: Database, job_id: int) -> None:
    """Run a queued job in a daemon thread of this server."""
    from .runner import run_job

    def work() -> None:
        try:
            run_job(db, job_id)
        except Exception:  # run_job fails the job itself; this only logs what it could not record
            log.exception("background harvest job %s", job_id)

    threading.Thread(target=work, name=f"harvest-job-{job_id}", daemon=True).start()


def _start(ctx: Context, source: HarvestSource, mode: str) -> int:
    if not sources.can_manage(ctx.actor, source.organisation_id):
        raise Forbidden(f"Only a sysadmin or an admin of {source.organisation.name} can start a harvest of "
                        "this source.")
    db: Database = ctx.request.app.state.db
    from .runner import mark_stalled

    mark_stalled(db, ctx.settings.harvest_stall_minutes)  # a dead job must not hold the lock
    job_id = sources.start_job(db, source.id, requested_by=ctx.actor.label, trigger="manual", mode=mode)
    _run_in_background(db, job_id)
    return job_id


# --- pages -----------------------------------------------------------------------------------

@router.get("/harvest")
def harvest_home(request: Request, ctx: Context = CtxDep) -> Response:
    """Every harvest source, its last job and when it is next due."""
    all_sources = sources.list_sources(ctx.session)
    last = sources.latest_jobs(ctx.session, [s.id for s in all_sources])
    data = {"count": len(all_sources),
            "results": [source_dict(ctx.base_url, s, last.get(s.id)) for s in all_sources]}
    can_add = ctx.actor.is_authenticated and bool(sources.manageable_organisations(ctx.session, ctx.actor))
    rows = [{"source": s, "last": last.get(s.id), "due": sources.next_due(s)} for s in all_sources]
    page = {"rows": rows, "can_add": can_add, "flash": pop_flash(request), "status_tags": STATUS_TAGS,
            "type_labels": TYPE_LABELS}
    return render(ctx, "harvest/sources.html", page, data)


def _form_values(source: HarvestSource | None) -> dict[str, Any]:
    if source is None:
        return {"name": "", "slug": "", "type": "ckan", "url": "", "organisation": "", "schedule": "daily",
                "config": "", "active": True}
    config = public_config(source.config)
    return {"name": source.name, "slug": source.slug, "type": source.type, "url": source.url,
            "organisation": source.organisation.slug, "schedule": source.schedule,
            "config": json.dumps(config, indent=2, ensure_ascii=False) if config else "", "active": source.active}


def _form_page(ctx: Context, values: dict[str, Any], errors: dict[str, str], source: HarvestSource | None = None,
               status: int = 200, error: PlatformError | None = None) -> Response:
    organisations = sources.manageable_organisations(ctx.session, ctx.actor)
    if source is not None and source.organisation not in organisations:
        organisations.append(source.organisation)
    if not organisations:
        raise Forbidden("Only a sysadmin or an organisation's admin can manage harvest sources.")
    if source is None and not values.get("organisation") and len(organisations) == 1:
        values["organisation"] = organisations[0].slug
    page = {"values": values, "errors": errors, "source": source, "organisations": organisations,
            "types": [(t, TYPE_LABELS[t]) for t in TYPES], "options": OPTIONS,
            "action": f"/harvest/{source.slug}/edit" if source else "/harvest/new"}
    data: dict[str, Any] = {"values": values, "errors": errors,
                            "choices": {"type": list(TYPES), "organisation": [o.slug for o in organisations]},
                            "options": {k: v[1] for k, v in OPTIONS.items()}}
    if errors:
        data.update(error.as_dict() if error is not None else
                    {"error": {"status": status, "code": "validation_failed",
                               "message": "; ".join(errors.values()), "fields": errors}})
    return render(ctx, "harvest/source_form.html", page, data, status=status)


def _values_from_form(form: FormData, creating: bool) -> dict[str, Any]:
    values: dict[str, Any] = {name: form_text(form, name, 20_000 if name == "config" else 2000)
                              for name in FORM_FIELDS if name != "active"}
    values["active"] = form.get("active") in ("true", "on", "1", "yes")
    if not creating:
        values.pop("slug")
    return values


def _ordered(exc: PlatformError) -> dict[str, str]:
    fields = dict(exc.fields) or {"name": exc.message}
    if isinstance(exc, Conflict) and len(fields) == 1:
        fields = {name: exc.message for name in fields}
    return {**{n: fields[n] for n in FORM_FIELDS if n in fields},
            **{n: m for n, m in fields.items() if n not in FORM_FIELDS}}


@router.get("/harvest/new")
def source_new(request: Request, ctx: Context = CtxDep) -> Response:
    """The form to add a harvest source."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    values = _form_values(None)
    values["organisation"] = request.query_params.get("organisation", "")
    return _form_page(ctx, values, {})


@router.post("/harvest/new")
async def source_create(request: Request, ctx: Context = CtxDep, form: FormData = FormDep) -> Response:
    """Add a source from the form; on problems show the form again with what was typed."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    values = _values_from_form(form, creating=True)

    def work() -> Response:
        try:
            source = sources.create_source(ctx.session, ctx.actor, dict(values))
            ctx.session.commit()
        except (ValidationFailed, Conflict) as exc:
            ctx.session.rollback()
            return _form_page(ctx, values, _ordered(exc), status=exc.status, error=exc)
        flash(request, "Harvest source added", f"‘{source.name}’ is registered. Start a harvest below, or let "
                                               "the scheduler run it.")
        if wants_json(request):
            return JSONResponse(source_dict(ctx.base_url, source), status_code=201,
                                headers={"Location": f"{ctx.base_url}/harvest/{source.slug}"})
        return RedirectResponse(f"/harvest/{source.slug}", status_code=303)

    return await run_in_threadpool(work)


@router.get("/harvest/{slug}")
def source_page(slug: str, request: Request, ctx: Context = CtxDep) -> Response:
    """A source, its options and its jobs, newest first."""
    source = sources.get_source(ctx.session, slug)
    jobs = sources.jobs_of(ctx.session, source)
    data = {**source_dict(ctx.base_url, source, jobs[0] if jobs else None),
            "jobs": [job_dict(ctx.base_url, j) for j in jobs]}
    page = {"source": source, "jobs": jobs, "config": public_config(source.config), "due": sources.next_due(source),
            "can_manage": sources.can_manage(ctx.actor, source.organisation_id), "flash": pop_flash(request),
            "status_tags": STATUS_TAGS, "type_label": TYPE_LABELS[source.type],
            "running": any(j.status in ("queued", "running") for j in jobs)}
    return render(ctx, "harvest/source.html", page, data)


@router.get("/harvest/{slug}/edit")
def source_edit(slug: str, request: Request, ctx: Context = CtxDep) -> Response:
    """The form to change a source, filled in."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    source = sources.get_source(ctx.session, slug)
    if not sources.can_manage(ctx.actor, source.organisation_id):
        raise Forbidden(f"Only a sysadmin or an admin of {source.organisation.name} can change this source.")
    return _form_page(ctx, _form_values(source), {}, source)


@router.post("/harvest/{slug}/edit")
async def source_update(slug: str, request: Request, ctx: Context = CtxDep, form: FormData = FormDep) -> Response:
    """Save the changed source; on problems show the form again with what was typed."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    values = _values_from_form(form, creating=False)

    def work() -> Response:
        source = sources.get_source(ctx.session, slug)
        try:
            sources.update_source(ctx.session, ctx.actor, source, dict(values))
            ctx.session.commit()
        except (ValidationFailed, Conflict) as exc:
            ctx.session.rollback()
            source = sources.get_source(ctx.session, slug)
            return _form_page(ctx, {**values, "slug": source.slug}, _ordered(exc), source, exc.status, exc)
        flash(request, "Changes saved", f"‘{source.name}’ has been updated.")
        if wants_json(request):
            return JSONResponse(source_dict(ctx.base_url, source))
        return RedirectResponse(f"/harvest/{source.slug}", status_code=303)

    return await run_in_threadpool(work)


@router.post("/harvest/{slug}/run")
async def source_run(slug: str, request: Request, ctx: Context = CtxDep, form: FormData = FormDep) -> Response:
    """Start a harvest of the source now; it runs in the background and its report page follows it."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    mode = form_text(form, "mode", 20) or "auto"

    def work() -> tuple[str, int]:
        source = sources.get_source(ctx.session, slug)
        return source.slug, _start(ctx, source, mode)

    try:
        source_slug, job_id = await run_in_threadpool(work)
    except Conflict as exc:
        if wants_json(request):
            raise
        flash(request, "A harvest is already running", exc.message)
        return RedirectResponse(f"/harvest/{slug}", status_code=303)
    location = f"/harvest/{source_slug}/job/{job_id}"
    if wants_json(request):
        return JSONResponse({"job": job_id, "url": ctx.base_url + location}, status_code=202,
                            headers={"Location": ctx.base_url + location})
    flash(request, "Harvest started", "It runs in the background. Refresh this page to see how far it has got.")
    return RedirectResponse(location, status_code=303)


@router.get("/harvest/{slug}/job/{job_id}")
def job_page(slug: str, job_id: int, request: Request, ctx: Context = CtxDep) -> Response:
    """A job's report: its counts, and every error and warning with the remote id and the reason."""
    source = sources.get_source(ctx.session, slug)
    job = sources.get_job(ctx.session, source, job_id)
    problems = sources.job_problems(ctx.session, job)
    data = job_dict(ctx.base_url, job, problems)
    page = {"source": source, "job": job, "counts": [(label, getattr(job, name)) for name, label in COUNT_LABELS],
            "errors": [p for p in problems if p.level == "error"],
            "warnings": [p for p in problems if p.level == "warning"], "flash": pop_flash(request),
            "status_tags": STATUS_TAGS}
    return render(ctx, "harvest/job.html", page, data)


# --- the JSON API ----------------------------------------------------------------------------

@api.get("/sources", summary="List harvest sources")
def api_sources(ctx: Context = CtxDep) -> dict[str, Any]:
    """Every source with its last job and when it is next due."""
    all_sources = sources.list_sources(ctx.session)
    last = sources.latest_jobs(ctx.session, [s.id for s in all_sources])
    return {"count": len(all_sources), "results": [source_dict(ctx.base_url, s, last.get(s.id)) for s in all_sources]}


@api.post("/sources", status_code=201, summary="Add a harvest source")
async def api_create_source(request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """Add a source: `slug`, `name`, `type` (ckan, dcat, datapress, socrata, dcat-us), `url`, `organisation`,
    `schedule` (manual, hourly, daily, weekly or an interval like 6h), `config` (options), `active`."""
    data = await json_body(request)

    def work() -> dict[str, Any]:
        require_authenticated(ctx.actor)
        source = sources.create_source(ctx.session, ctx.actor, data)
        ctx.session.commit()
        return source_dict(ctx.base_url, source)

    body = await run_in_threadpool(work)
    return JSONResponse(body, status_code=201, headers={"Location": body["page"]})


@api.get("/sources/{slug}", summary="A harvest source and its jobs")
def api_source(slug: str, ctx: Context = CtxDep) -> dict[str, Any]:
    """A source with its latest jobs."""
    source = sources.get_source(ctx.session, slug)
    jobs = sources.jobs_of(ctx.session, source)
    return {**source_dict(ctx.base_url, source, jobs[0] if jobs else None),
            "jobs": [job_dict(ctx.base_url, j) for j in jobs]}


@api.patch("/sources/{slug}", summary="Change a harvest source")
async def api_update_source(slug: str, request: Request, ctx: Context = CtxDep) -> dict[str, Any]:
    """Change the fields given (the slug stays)."""
    data = await json_body(request)

    def work() -> dict[str, Any]:
        source = sources.get_source(ctx.session, slug)
        sources.update_source(ctx.session, ctx.actor, source, data)
        ctx.session.commit()
        return source_dict(ctx.base_url, source)

    return await run_in_threadpool(work)


@api.post("/sources/{slug}/jobs", status_code=202, summary="Start a harvest job")
async def api_start_job(slug: str, request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """Start a job now (JSON body optional: `{"mode": "auto" | "full" | "incremental"}`); 409 if one is running.
    The job runs in the background: follow it at the address in `Location`."""
    data = await json_body(request) if await request.body() else {}

    def work() -> tuple[str, int]:
        require_authenticated(ctx.actor)
        source = sources.get_source(ctx.session, slug)
        return source.slug, _start(ctx, source, str(data.get("mode") or "auto"))

    source_slug, job_id = await run_in_threadpool(work)
    url = f"{ctx.base_url}/api/harvest/sources/{source_slug}/jobs/{job_id}"
    return JSONResponse({"job": job_id, "url": url, "page": f"{ctx.base_url}/harvest/{source_slug}/job/{job_id}"},
                        status_code=202, headers={"Location": url})


@api.get("/sources/{slug}/jobs/{job_id}", summary="A harvest job's report")
def api_job(slug: str, job_id: int, ctx: Context = CtxDep) -> dict[str, Any]:
    """A job's status, counts, errors and warnings."""
    source = sources.get_source(ctx.session, slug)
    job = sources.get_job(ctx.session, source, job_id)
    return job_dict(ctx.base_url, job, sources.job_problems(ctx.session, job))
