"""The review queue as pages (no JavaScript needed): the list of proposals, one proposal with what it changes
and the accept/reject form, and the form to propose a new place or a correction.

Forms carry the site's CSRF token. Every page has a JSON twin (``.json`` or ``Accept: application/json``).
Decisions and proposals go through ``places.review``, which checks who may do what.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from ..core.errors import BadRequest, Conflict, Forbidden, NotFound, ValidationFailed
from ..core.pages import flash, form_text, pop_flash
from ..core.web import Context, CtxDep, FormDep, render
from . import review, service
from .models import PlaceProposal

router = APIRouter(tags=["pages"], include_in_schema=False)
ACTION_TEXT = {"create": "New place", "update": "Correction", "retire": "Retirement"}
FIELD_TEXT = {"kind": "Kind", "name": "Name", "alt_names": "Other names", "identifiers": "Identifiers",
              "geometry": "Location or footprint", "properties": "Other facts", "status": "Status",
              "successors": "Replaced by", "crs": "Coordinate reference system"}


def _shown(value: Any) -> str:
    """A proposed or current value as text for the diff table."""
    if value is None or value == [] or value == {}:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict) and value.get("type") == "Point":
        lon, lat = value.get("coordinates", [None, None])[:2]
        return f"Point at longitude {lon}, latitude {lat}"
    if isinstance(value, dict) and "type" in value:
        return f"{value['type']} (see JSON)"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_shown(v)}" for k, v in value.items())
    return str(value)


def _row(proposal: PlaceProposal) -> dict[str, Any]:
    data = review.proposal_dict(proposal)
    data.update(kind=review.kind_of(proposal), action_text=ACTION_TEXT.get(proposal.action, proposal.action),
                title=(proposal.payload or {}).get("name") or proposal.target_uid or "",
                href=f"/places/review/{proposal.id}")
    return data


@router.get("/places/review", summary="The review queue")
def review_list(request: Request, ctx: Context = CtxDep) -> Response:
    """Proposals filtered by status, kind and organisation."""
    q = request.query_params
    status = q.get("status", "pending")
    if status not in (*review.STATUSES, "all"):
        raise BadRequest("status must be pending, accepted, rejected or all.", {"status": "Unknown status."})
    kinds = {k.code: k.label for k in service.kinds(ctx.session)}
    kind = q.get("kind") or ""
    if kind and kind not in kinds:
        raise BadRequest(f"Unknown kind {kind!r}; use one of: {', '.join(sorted(kinds))}.", {"kind": "Unknown kind."})
    source = q.get("organisation") or ""
    uid = q.get("place") or ""
    rows = [_row(p) for p in review.find(ctx.session, None if status == "all" else status, kind or None,
                                         source or None, uid or None)]
    data = {"status": status, "kind": kind or None, "organisation": source or None, "place": uid or None,
            "count": len(rows), "proposals": rows}
    page = {**data, "kinds": kinds, "sources": review.sources(ctx.session),
            "can_review": review.can_review(ctx.session, ctx.actor), "flash": pop_flash(request)}
    return render(ctx, "places/review_list.html", page, data=data)


def _proposal_page(ctx: Context, proposal: PlaceProposal, errors: dict[str, str] | None = None,
                   reason: str = "", status: int = 200) -> Response:
    data = _row(proposal)
    data["diff"] = review.diff(ctx.session, proposal)
    rows = [{"field": FIELD_TEXT.get(d["field"], d["field"]), "now": _shown(d["now"]), "proposed": _shown(d["proposed"])}
            for d in data["diff"]]
    page = {"proposal": data, "rows": rows, "errors": errors or {}, "reason": reason,
            "can_review": review.can_review(ctx.session, ctx.actor) and proposal.status == "pending",
            "flash": pop_flash(ctx.request)}
    return render(ctx, "places/proposal.html", page, data=data, status=status)


def _proposal(ctx: Context, proposal_id: str) -> PlaceProposal:
    if not proposal_id.isdigit():
        raise NotFound(f"There is no proposal {proposal_id!r}.")
    return review.get_proposal(ctx.session, int(proposal_id))


@router.get("/places/review/{proposal_id}", summary="One proposal")
def proposal_page(proposal_id: str, ctx: Context = CtxDep) -> Response:
    """A proposal: who proposed what, what it changes, and (for reviewers) the decision form."""
    return _proposal_page(ctx, _proposal(ctx, proposal_id))


@router.post("/places/review/{proposal_id}", summary="Accept or reject a proposal")
def decide(proposal_id: str, ctx: Context = CtxDep, form: FormData = FormDep) -> Response:
    """Accept or reject with a reason; back to the proposal with a message, or the form with what to fix."""
    proposal = _proposal(ctx, proposal_id)
    decision = form_text(form, "decision")
    reason = form_text(form, "reason", 2000)
    errors: dict[str, str] = {}
    if decision not in ("accept", "reject"):
        errors["decision"] = "Choose whether to accept or reject the proposal."
    if not reason:
        errors["reason"] = "Enter the reason for your decision."
    if errors:
        return _proposal_page(ctx, proposal, errors, reason, 422)
    try:
        review.decide(ctx.session, ctx.actor, proposal.id, decision == "accept", reason)
    except (ValidationFailed, Conflict) as exc:
        ctx.session.rollback()
        proposal = _proposal(ctx, proposal_id)
        return _proposal_page(ctx, proposal, {"decision": exc.message}, reason, exc.status)
    flash(ctx.request, f"Proposal {proposal.id} {'accepted' if decision == 'accept' else 'rejected'}",
          f"The reason is recorded{' in the history of ' + proposal.result_uid if proposal.result_uid else ''}.")
    return RedirectResponse(f"/places/review/{proposal.id}", status_code=303)


# --- proposing ---------------------------------------------------------------------------------

def _propose_page(ctx: Context, target: Any, values: dict[str, str], errors: dict[str, str],
                  status: int = 200) -> Response:
    actor = ctx.actor
    is_editor = bool(actor.editable_organisations()) or actor.is_sysadmin
    kinds = [k for k in service.kinds(ctx.session) if is_editor or k.community]
    page = {"target": service.place_dict(ctx.session, target, history=False) if target is not None else None,
            "values": values, "errors": errors, "signed_in": actor.is_authenticated, "is_editor": is_editor,
            "kinds": [{"value": "", "text": "Choose a kind"}] + [
                {"value": k.code, "text": k.label, "selected": values.get("kind") == k.code} for k in kinds],
            "community": [k.label for k in service.kinds(ctx.session) if k.community]}
    data = {"target": target.uid if target is not None else None, "signed_in": actor.is_authenticated,
            "kinds": [k.code for k in kinds], "errors": errors}
    return render(ctx, "places/propose.html", page, data=data, status=status)


@router.get("/places/propose", summary="Propose a new place or a correction")
def propose_form(request: Request, ctx: Context = CtxDep) -> Response:
    """The form: a new place, or (with ``uid``) a correction to one."""
    uid = request.query_params.get("uid") or ""
    target = service.get_place(ctx.session, uid) if uid else None
    return _propose_page(ctx, target, {"uid": uid}, {})


def _number(values: dict[str, str], name: str, errors: dict[str, str], low: float, high: float) -> float | None:
    raw = values.get(name, "")
    if not raw:
        return None
    try:
        number = float(raw)
    except ValueError:
        errors[name] = f"Enter the {'longitude' if name == 'lon' else 'latitude'} as a number, like " \
                       f"{'-0.1276' if name == 'lon' else '51.5072'}."
        return None
    if not low <= number <= high:
        errors[name] = f"The {'longitude' if name == 'lon' else 'latitude'} must be between {low} and {high}."
        return None
    return number


@router.post("/places/propose", summary="Send a proposal")
def propose(ctx: Context = CtxDep, form: FormData = FormDep) -> Response:
    """Queue a proposal from the form; back to the form with what to fix, or on to the proposal's page."""
    if not ctx.actor.is_authenticated:
        raise Forbidden("Sign in to propose a place or a correction.")
    values = {name: form_text(form, name, 5000) for name in ("uid", "kind", "name", "alt_names", "lon", "lat", "reason")}
    target = service.get_place(ctx.session, values["uid"]) if values["uid"] else None
    errors: dict[str, str] = {}
    lon = _number(values, "lon", errors, -180, 180)
    lat = _number(values, "lat", errors, -90, 90)
    if (lon is None) != (lat is None) and not errors:
        errors["lat" if lat is None else "lon"] = "Give both the longitude and the latitude, or neither."
    alt_names = [line.strip() for line in values["alt_names"].splitlines() if line.strip()]
    geometry = {"type": "Point", "coordinates": [lon, lat]} if lon is not None and lat is not None else None
    if target is None:
        if not values["kind"]:
            errors["kind"] = "Choose the kind of place."
        if not values["name"]:
            errors["name"] = "Enter the name of the place."
        body: dict[str, Any] = {"action": "create", "kind": values["kind"], "name": values["name"],
                                "alt_names": alt_names, "reason": values["reason"]}
        if geometry:
            body["geometry"] = geometry
    else:
        changes: dict[str, Any] = {}
        if values["name"] and values["name"] != target.name:
            changes["name"] = values["name"]
        if alt_names:
            changes["alt_names"] = alt_names
        if geometry:
            changes["geometry"] = geometry
        if not changes and not errors:
            errors["name"] = "Change the name, add other names or give a new location: nothing would change."
        body = {"action": "update", "uid": target.uid, "changes": changes, "reason": values["reason"]}
    if not errors:
        try:
            proposal = review.propose(ctx.session, ctx.actor, body)
        except ValidationFailed as exc:
            fields = {("lon" if k == "geometry" else k): exc.message for k in (exc.fields or {"name": ""})}
            errors.update(fields)
        else:
            flash(ctx.request, "Thank you: your proposal is in the review queue",
                  "A reviewer will accept or reject it and give a reason.")
            return RedirectResponse(f"/places/review/{proposal.id}", status_code=303)
    ctx.session.rollback()
    return _propose_page(ctx, target, values, errors, 422)
