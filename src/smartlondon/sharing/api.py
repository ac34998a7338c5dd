"""The LODA JSON API: agreements (create, approve, suspend) and the gateway ``POST /api/sharing/queries``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..core.errors import NotFound
from ..core.web import Context, CtxDep, json_body
from . import agreements, gateway

router = APIRouter(prefix="/api/sharing", tags=["sharing"])


@router.post("/agreements", summary="Draft a data-sharing agreement")
async def create_agreement(request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """Draft an agreement (an editor or admin of a controller organisation)."""
    body = await json_body(request)
    agreement = agreements.create_agreement(ctx.session, body, by=ctx.actor)
    return JSONResponse(agreements.public_record(agreement, include_withheld=True, base_url=ctx.base_url),
                        status_code=201)


@router.get("/agreements/{slug}", summary="An agreement, in full, for its parties")
def get_agreement(slug: str, ctx: Context = CtxDep) -> dict[str, Any]:
    """The agreement with withheld fields shown to members of its parties, withheld to others."""
    agreement = agreements.get_agreement(ctx.session, slug)
    party = ctx.actor.is_sysadmin or any(p.organisation_id in ctx.actor.roles for p in agreement.parties)
    return agreements.public_record(agreement, include_withheld=party, base_url=ctx.base_url)


@router.put("/agreements/{slug}", summary="Change a draft agreement")
async def update_agreement(slug: str, request: Request, ctx: Context = CtxDep) -> dict[str, Any]:
    """Replace a draft's fields (same body as drafting; the short name stays); approvals so far are cleared."""
    body = await json_body(request)
    agreement = agreements.get_agreement(ctx.session, slug)
    agreements.update_agreement(ctx.session, agreement, body, by=ctx.actor)
    return agreements.public_record(agreement, include_withheld=True, base_url=ctx.base_url)


@router.post("/agreements/{slug}/approve", summary="Approve an agreement for one controller")
async def approve_agreement(slug: str, request: Request, ctx: Context = CtxDep) -> dict[str, Any]:
    """An admin of a controller organisation approves for it (optionally {"organisation": slug, "officer": "Name, role"})."""
    body = await json_body(request)
    agreement = agreements.get_agreement(ctx.session, slug)
    officer = body.get("officer")
    agreements.approve(ctx.session, agreement, ctx.actor, organisation=body.get("organisation"),
                       officer_name=str(officer) if officer else None)
    return agreements.public_record(agreement, include_withheld=True, base_url=ctx.base_url)


@router.post("/agreements/{slug}/status", summary="Suspend, reinstate or end an agreement")
async def agreement_status(slug: str, request: Request, ctx: Context = CtxDep) -> dict[str, Any]:
    """Body: {"status": "suspended"|"approved"|"ended"|"expired", "reason": "..."}."""
    body = await json_body(request)
    agreement = agreements.get_agreement(ctx.session, slug)
    agreements.set_status(ctx.session, agreement, str(body.get("status") or ""), by=ctx.actor,
                          reason=str(body.get("reason") or ""))
    return agreements.public_record(agreement, include_withheld=True, base_url=ctx.base_url)


@router.post("/queries", summary="Run a query through the LODA gateway")
async def run_query(request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """Run a declarative aggregate or SQL under an agreement; the safe table, or the refusal with its reasons."""
    body = await json_body(request)
    status, payload = gateway.submit(ctx.session, ctx.settings, ctx.actor, body)
    return JSONResponse(payload, status_code=status)


@router.get("/queries/{query_id}", summary="A query you ran, and its outcome")
def get_query(query_id: str, ctx: Context = CtxDep) -> dict[str, Any]:
    """The same body as the POST returned; released once a review approves it."""
    if not query_id.isdigit():
        raise NotFound(f"There is no query {query_id}.")
    return gateway.view(gateway.get_query(ctx.session, ctx.actor, int(query_id)))
