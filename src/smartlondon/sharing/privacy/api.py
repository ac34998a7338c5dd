"""The JSON API of privacy by design: data-subject requests, opt-outs, data trusts (docs/sharing-privacy.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ...core.accounts import require_authenticated
from ...core.errors import Forbidden, ValidationFailed
from ...core.web import Context, CtxDep, json_body
from ..store import RestrictedStore
from . import optouts, subjects, trusts
from .pseudonyms import Pseudonymiser

router = APIRouter(prefix="/api/sharing", tags=["sharing: privacy"])


@router.post("/subject-requests", status_code=201, summary="Open a data-subject request")
async def open_request(request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """Open (and carry out) an access, rectification, erasure or objection request for an identified person.

    Body: ``{"organisation", "kind", "identifier_kind", "identifier", "received_on"?, ...}``; the response
    holds the person's one-time ``access_code`` (shown only here) for ``/sharing/your-data``.
    """
    data = await json_body(request)
    item, code = subjects.open_request(ctx.session, ctx.settings, ctx.actor, data)
    return JSONResponse({**subjects.request_dict(item), "access_code": code}, status_code=201)


@router.get("/subject-requests/{reference}", summary="A data-subject request")
def get_request(reference: str, ctx: Context = CtxDep) -> dict[str, Any]:
    """The request, its deadline and its recipients' confirmations."""
    return subjects.request_dict(subjects.visible_request(ctx.session, ctx.actor, reference), viewer=ctx.actor)


@router.get("/subject-requests/{reference}/download", summary="Everything held about the person")
def download(reference: str, format: str = "json", ctx: Context = CtxDep) -> Response:
    """An access request's answer: the person's records and the uses that touched them (JSON or CSV)."""
    item = subjects.visible_request(ctx.session, ctx.actor, reference)
    if not ctx.actor.can_admin(item.organisation_id):
        raise Forbidden("Only the controller's officers can download what is held about the person.")
    if format not in ("json", "csv"):
        raise ValidationFailed("Choose format=json or format=csv.", {"format": "Use json or csv."})
    data = subjects.person_data(ctx.session, ctx.settings, item)
    name = f"{item.reference.lower()}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    if format == "csv":
        return Response(subjects.person_csv(data), media_type="text/csv; charset=utf-8", headers=headers)
    return JSONResponse(data, headers=headers)


@router.post("/subject-requests/{reference}/recipients/{propagation_id}/confirm",
             summary="A recipient confirms it has acted")
async def confirm(reference: str, propagation_id: int, request: Request, ctx: Context = CtxDep) -> dict[str, Any]:
    """Mark a recipient's rectification or erasure done (a member of the recipient organisation)."""
    data = await json_body(request)
    item = subjects.visible_request(ctx.session, ctx.actor, reference)
    subjects.confirm_propagation(ctx.session, ctx.actor, item, propagation_id, str(data.get("note") or ""))
    return subjects.request_dict(item, viewer=ctx.actor)


@router.post("/your-data", summary="How data about me was used")
async def your_data(request: Request, ctx: Context = CtxDep) -> dict[str, Any]:
    """For the person: ``{"reference", "code"}`` from their request gives every use that read their records."""
    data = await json_body(request)
    item = subjects.check_access_code(ctx.session, ctx.settings, str(data.get("reference") or ""),
                                      str(data.get("code") or ""))
    return {"reference": item.reference, "controller": item.organisation.name, "status": item.status,
            "uses": subjects.uses_of(ctx.session, item, RestrictedStore(ctx.settings))}


@router.post("/optouts", status_code=201, summary="Record an opt-out")
async def create_optout(request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """Record a national-data-opt-out style flag: ``{"identifier_kind", "identifier", "scope", "dataset"?}``."""
    require_authenticated(ctx.actor)
    if not (ctx.actor.is_sysadmin or any(r == "admin" for r in ctx.actor.roles.values())):
        raise Forbidden("Only a controller's officer (an organisation admin) can record an opt-out.")
    data = await json_body(request)
    reference = optouts.register(ctx.session, Pseudonymiser(ctx.settings), kind=str(data.get("identifier_kind") or ""),
                                 value=str(data.get("identifier") or ""), scope=str(data.get("scope") or "all"),
                                 dataset_slug=data.get("dataset") or None, source=f"recorded by {ctx.actor.label}")
    return JSONResponse({"reference": reference, "scope": data.get("scope") or "all"}, status_code=201)


@router.delete("/optouts/{reference}", summary="Withdraw an opt-out")
def withdraw_optout(reference: str, ctx: Context = CtxDep) -> dict[str, Any]:
    """The person opts back in."""
    require_authenticated(ctx.actor)
    if not (ctx.actor.is_sysadmin or any(r == "admin" for r in ctx.actor.roles.values())):
        raise Forbidden("Only a controller's officer (an organisation admin) can withdraw an opt-out.")
    return {"reference": reference, "withdrawn": optouts.withdraw(ctx.session, reference)}


@router.post("/trusts", status_code=201, summary="Create a data trust")
async def create_trust(request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """``{"slug", "name", "steward", "purpose", "terms_of_use", "datasets"}``."""
    trust = trusts.create_trust(ctx.session, ctx.actor, await json_body(request))
    return JSONResponse(trusts.trust_dict(trust), status_code=201)


@router.post("/trusts/{slug}/members", status_code=201, summary="Add a member to a data trust")
async def add_member(slug: str, request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """``{"organisation", "role": "member" | "beneficiary"}``."""
    data = await json_body(request)
    trust = trusts.get_trust(ctx.session, slug)
    trusts.add_member(ctx.session, ctx.actor, trust, str(data.get("organisation") or ""),
                      str(data.get("role") or "member"))
    return JSONResponse(trusts.trust_dict(trust), status_code=201)


@router.post("/trusts/{slug}/decisions", status_code=201, summary="Log a trust's decision on an access request")
async def add_decision(slug: str, request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """``{"requester", "request_summary", "datasets", "decision": "approved" | "refused", "reasons", "agreement"?}``."""
    trust = trusts.get_trust(ctx.session, slug)
    entry = trusts.record_decision(ctx.session, ctx.actor, trust, await json_body(request))
    return JSONResponse({"id": entry.id, "decision": entry.decision, "trust": trust.slug}, status_code=201)
