"""Pages of privacy by design, each with its JSON twin.

* ``/sharing/pseudonymisation``: the published pseudonymisation parameters (never a key).
* ``/sharing/trusts`` and ``/sharing/trusts/{slug}``: data trusts, their members, terms and decision log.
* ``/sharing/subject-requests`` and ``/sharing/subject-requests/{reference}``: a controller's requests with
  their deadlines (overdue ones flagged), and the recipients' confirmations (for signed-in officers).
* ``/sharing/your-data``: a Londoner enters their request's reference and access code and sees every use
  of data about them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from ...core import accounts
from ...core.accounts import require_authenticated
from ...core.errors import PlatformError
from ...core.web import Context, CtxDep, FormDep, render
from ..store import RestrictedStore
from . import optouts, subjects, trusts
from .pseudonyms import KIND_LABELS, Pseudonymiser

router = APIRouter(tags=["pages"], include_in_schema=False)

SYNTHETIC = ("The person-level records in this demo are synthetic: generated per area from real 2011 Census "
             "household counts and the English Indices of Deprivation 2019. No real person's data is held.")


@router.get("/sharing/pseudonymisation")
def pseudonymisation_page(ctx: Context = CtxDep) -> Response:
    """The published pseudonymisation parameters and epochs."""
    params = Pseudonymiser(ctx.settings).parameters()
    params["optouts"] = optouts.summary(ctx.session)
    return render(ctx, "sharing/privacy_pseudonymisation.html", {"params": params}, data=params)


@router.get("/sharing/trusts")
def trusts_page(ctx: Context = CtxDep) -> Response:
    """Every data trust."""
    items = [trusts.trust_dict(t, with_decisions=False) for t in trusts.list_trusts(ctx.session)]
    return render(ctx, "sharing/trusts.html", {"trusts": items}, data={"trusts": items})


def _trust_page(ctx: Context, slug: str, errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
                status: int = 200, data: Any = None) -> Response:
    record = trusts.get_trust(ctx.session, slug)
    trust = trusts.trust_dict(record)
    steward = ctx.actor.is_sysadmin or ctx.actor.roles.get(record.steward_id) in ("editor", "admin")
    page = {"trust": trust, "can_decide": steward, "errors": errors or {}, "values": values or {}}
    return render(ctx, "sharing/trust.html", page, data=trust if data is None else data, status=status)


@router.get("/sharing/trusts/{slug}")
def trust_page(slug: str, ctx: Context = CtxDep) -> Response:
    """A trust: steward, members, terms of use and the public decision log."""
    return _trust_page(ctx, slug)


@router.post("/sharing/trusts/{slug}/decisions")
def trust_decision_form(slug: str, ctx: Context = CtxDep, form: FormData = FormDep) -> Response:
    """The steward records a decision from the trust's page (no JavaScript needed)."""
    values = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    data: dict[str, Any] = {**values, "datasets": [d for d in values.get("datasets", "").split() if d]}
    try:
        trusts.record_decision(ctx.session, ctx.actor, trusts.get_trust(ctx.session, slug), data)
    except PlatformError as exc:
        if exc.status in (401, 403, 404):
            raise
        return _trust_page(ctx, slug, exc.fields, values, exc.status, exc.as_dict())
    return RedirectResponse(f"/sharing/trusts/{slug}#decisions", status_code=303)


@router.get("/sharing/subject-requests")
def requests_page(ctx: Context = CtxDep) -> Response:
    """The data-subject requests the signed-in officer's organisations handle or must act on."""
    items = [subjects.request_dict(r) for r in subjects.list_requests(ctx.session, ctx.actor)]
    summary = {"open": sum(1 for r in items if r["status"] == "open"),
               "overdue": sum(1 for r in items if r["overdue"])}
    return render(ctx, "sharing/subject_requests.html", {"requests": items, "summary": summary},
                  data={"requests": items, **summary})


def _form_page(ctx: Context, values: dict[str, Any], errors: dict[str, str], message: str = "") -> dict[str, Any]:
    require_authenticated(ctx.actor)
    orgs = [o for o in accounts.list_organisations(ctx.session) if ctx.actor.can_admin(o.id)]
    datasets = {o.slug: [d.slug for d in subjects.controller_datasets(ctx.session, o)] for o in orgs}
    return {"organisations": orgs, "datasets": datasets, "values": values, "errors": errors, "message": message,
            "kinds": subjects.KIND_LABELS, "identifier_kinds": KIND_LABELS, "scopes": optouts.SCOPE_LABELS}


@router.get("/sharing/subject-requests/new")
def new_request_form(ctx: Context = CtxDep) -> Response:
    """The form where a controller's officer records a request received from an identified person."""
    page = _form_page(ctx, {"received_on": date.today().isoformat(), "identifier_kind": "nhs_number"}, {})
    return render(ctx, "sharing/subject_request_new.html", page,
                  data={"how": "POST the same fields as JSON to /api/sharing/subject-requests"})


@router.post("/sharing/subject-requests/new")
def new_request(ctx: Context = CtxDep, form: FormData = FormDep) -> Response:
    """Open the request; the person's access code is shown once, on the page that follows."""
    values = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    data: dict[str, Any] = {k: v for k, v in values.items() if k not in ("changes", "identifier")}
    data["identifier"] = values.get("identifier", "")
    changes: dict[str, str] = {}
    for line in values.get("changes", "").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip():
            changes[name.strip()] = value.strip()
    if values.get("kind") == "rectification":
        data["changes"] = changes
    if values.get("kind") == "erasure":
        data.pop("dataset", None)
    try:
        request, code = subjects.open_request(ctx.session, ctx.settings, ctx.actor, data)
    except PlatformError as exc:
        if exc.status in (401, 403):
            raise
        values.pop("identifier", None)  # never echo an identifier back into a page
        fields = {("identifier" if k in KIND_LABELS else k): v for k, v in exc.fields.items()}
        page = _form_page(ctx, values, fields or {"kind": exc.message}, exc.message)
        return render(ctx, "sharing/subject_request_new.html", page, status=exc.status, data=exc.as_dict())
    item = subjects.request_dict(request)
    return render(ctx, "sharing/subject_request_opened.html", {"item": item, "code": code},
                  data={**item, "access_code": code}, status=201)


@router.get("/sharing/subject-requests/{reference}")
def request_page(reference: str, ctx: Context = CtxDep) -> Response:
    """One request: its deadline, what was done and each recipient's confirmation."""
    request = subjects.visible_request(ctx.session, ctx.actor, reference)
    item = subjects.request_dict(request, viewer=ctx.actor)
    can_confirm = {p.id for p in request.propagations
                   if p.confirmed_at is None and (ctx.actor.is_sysadmin or p.organisation_id in ctx.actor.roles)}
    store = RestrictedStore(ctx.settings)
    uses = subjects.uses_of(ctx.session, request, store) if request.kind == "access" else []
    return render(ctx, "sharing/subject_request.html",
                  {"item": item, "can_confirm": can_confirm, "uses": uses,
                   "is_controller": ctx.actor.can_admin(request.organisation_id)},
                  data={**item, "uses": uses})


@router.post("/sharing/subject-requests/{reference}/recipients/{propagation_id}/confirm")
def confirm_form(reference: str, propagation_id: int, ctx: Context = CtxDep, form: FormData = FormDep) -> Response:
    """A recipient confirms, from the request's page, that it has acted."""
    request = subjects.visible_request(ctx.session, ctx.actor, reference)
    subjects.confirm_propagation(ctx.session, ctx.actor, request, propagation_id, str(form.get("note") or ""))
    return RedirectResponse(f"/sharing/subject-requests/{request.reference}", status_code=303)


def _your_data(ctx: Context, reference: str, code: str) -> dict[str, Any]:
    request = subjects.check_access_code(ctx.session, ctx.settings, reference, code)
    return {"reference": request.reference, "controller": request.organisation.name,
            "kind": subjects.KIND_LABELS[request.kind], "received_on": request.received_on.isoformat(),
            "status": request.status, "uses": subjects.uses_of(ctx.session, request, RestrictedStore(ctx.settings)),
            "synthetic_note": SYNTHETIC}


@router.get("/sharing/your-data")
def your_data_form(ctx: Context = CtxDep) -> Response:
    """The form where a Londoner enters their request's reference and access code."""
    page = {"result": None, "errors": {}, "values": {}, "today": date.today().isoformat()}
    return render(ctx, "sharing/subject_your_data.html", page,
                  data={"how": "POST reference and code to /api/sharing/your-data"})


@router.post("/sharing/your-data")
def your_data(ctx: Context = CtxDep, form: FormData = FormDep) -> Response:
    """How data about the person was used: every logged use that read their records."""
    reference, code = str(form.get("reference") or ""), str(form.get("code") or "")
    try:
        result = _your_data(ctx, reference, code)
    except PlatformError as exc:
        page = {"result": None, "errors": exc.fields, "message": exc.message, "values": {"reference": reference}}
        return render(ctx, "sharing/subject_your_data.html", page, status=exc.status, data=exc.as_dict())
    return render(ctx, "sharing/subject_your_data.html", {"result": result, "errors": {}, "values": {}}, data=result)
