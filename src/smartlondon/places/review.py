"""Proposals and their review: new places, edits and retirements go through a queue before they change the register.

Editors of an organisation may propose anything; any other signed-in member of the public may
propose new places of community kinds (such as cultural venues). Sysadmins review: accepting
applies the change through the service (so it is checked and versioned, crediting the proposer's
organisation), rejecting records the reason. Admins of the register's steward organisation (the
Greater London Authority) review too. A proposal that fails its checks on acceptance is
refused with the message and stays pending, and nothing of it is written.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core import accounts
from ..core.accounts import Actor
from ..core.db import utcnow
from ..core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from ..core.models import Organisation
from . import service
from .models import Place, PlaceKind, PlaceProposal

ACTIONS = ("create", "update", "retire")
STATUSES = ("pending", "accepted", "rejected")
STEWARD = "greater-london-authority"  # the organisation whose admins review proposals, beside sysadmins


def can_review(session: Session, actor: Actor) -> bool:
    """Whether the actor may accept or reject proposals: a sysadmin or an admin of the steward organisation."""
    if actor.is_sysadmin:
        return True
    steward = session.scalar(select(Organisation.id).where(Organisation.slug == STEWARD))
    return steward is not None and actor.roles.get(steward) == "admin"


def kind_of(proposal: PlaceProposal) -> str:
    """The kind of place a proposal is about (from its payload, or the target's identifier)."""
    if proposal.action == "create":
        return str((proposal.payload or {}).get("kind") or "")
    parts = (proposal.target_uid or "").split(":")
    return parts[1] if len(parts) > 2 else ""


def find(session: Session, status: str | None = "pending", kind: str | None = None,
         source: str | None = None, uid: str | None = None) -> list[PlaceProposal]:
    """Proposals filtered by status (None: any), kind of place, proposing organisation and place, newest first."""
    query = select(PlaceProposal)
    if status:
        query = query.where(PlaceProposal.status == status)
    if uid:
        query = query.where((PlaceProposal.target_uid == uid) | (PlaceProposal.result_uid == uid))
    if source:
        query = query.where(PlaceProposal.source == source)
    found = list(session.scalars(query.order_by(PlaceProposal.id.desc()).limit(5000)))
    return [p for p in found if not kind or kind_of(p) == kind]


def sources(session: Session) -> list[str]:
    """Every organisation (or public member) that has proposed something, by name."""
    return sorted(set(session.scalars(select(PlaceProposal.source).distinct())))


def diff(session: Session, proposal: PlaceProposal) -> list[dict[str, Any]]:
    """What the proposal would change: one row per field with the value now and the value proposed."""
    p = dict(proposal.payload or {})
    if proposal.action == "create":
        rows = [{"field": name, "now": None, "proposed": p[name]}
                for name in ("kind", "name", "alt_names", "identifiers", "geometry", "properties") if p.get(name)]
        return rows
    place = session.scalar(select(Place).where(Place.uid == (proposal.target_uid or "")))
    now = service.place_dict(session, place, history=False) if place is not None else {}
    if proposal.action == "retire":
        return [{"field": "status", "now": now.get("status"), "proposed": "retired"},
                {"field": "successors", "now": now.get("successors") or [], "proposed": p.get("successors") or []}]
    rows = []
    current = {"name": now.get("name"), "geometry": now.get("geometry"), "properties": now.get("properties"),
               "alt_names": [n["name"] for n in now.get("names", []) if not n["preferred"]],
               "identifiers": {i["scheme"]: i["value"] for i in now.get("identifiers", []) if i["active"]}}
    for name, value in (p.get("changes") or {}).items():
        rows.append({"field": name, "now": current.get(name), "proposed": value})
    return rows


def _source_of(session: Session, actor: Actor) -> tuple[str, bool]:
    """The organisation a proposal speaks for, and whether the actor is an organisation's editor."""
    org_ids = actor.editable_organisations()
    if org_ids:
        org = session.get(Organisation, org_ids[0])
        return (org.name if org is not None else f"organisation {org_ids[0]}"), True
    return f"public: {actor.label}", False


def propose(session: Session, actor: Actor, data: dict[str, Any]) -> PlaceProposal:
    """Queue a proposal: ``{"action": "create"|"update"|"retire", "uid"?, ...the change}``."""
    accounts.require_authenticated(actor)
    action = data.get("action")
    if action not in ACTIONS:
        raise ValidationFailed("action must be 'create', 'update' or 'retire'.", {"action": "Unknown action."})
    source, is_editor = _source_of(session, actor)
    payload = {k: v for k, v in data.items() if k not in ("action", "uid")}
    target = data.get("uid")
    if action == "create":
        kind = str(payload.get("kind") or "")
        service.seed_kinds(session)
        found = session.get(PlaceKind, kind)
        if found is None:
            raise ValidationFailed(f"The kind {kind!r} is not in the taxonomy.", {"kind": "Unknown kind."})
        if not is_editor and not actor.is_sysadmin and not found.community:
            raise Forbidden(f"Members of the public may propose places of community kinds only; {kind!r} is not one.")
        service._check_name(payload.get("name"))
        if payload.get("geometry") is not None:
            service._footprint_of(payload["geometry"], payload.get("crs"))  # refuse bad geometry now
    else:
        place = service.get_place(session, str(target or ""))
        if not is_editor and not actor.is_sysadmin:
            found = session.get(PlaceKind, place.kind)
            if action == "retire" or found is None or not found.community:
                raise Forbidden("Members of the public may propose corrections to places of community kinds only; "
                                "edits of other places and retirements come from editors of an organisation.")
        if action == "update" and not isinstance(payload.get("changes"), dict):
            raise ValidationFailed("Say what to change, as changes: {field: new value}.", {"changes": "Missing."})
    proposal = PlaceProposal(action=action, target_uid=target, payload=payload, proposer=actor.label,
                             source=source, status="pending", reviewer="", reason=str(data.get("reason") or ""),
                             created_at=utcnow())
    session.add(proposal)
    session.flush()
    return proposal


def get_proposal(session: Session, proposal_id: int) -> PlaceProposal:
    """One proposal; 404 if there is none."""
    found = session.get(PlaceProposal, proposal_id)
    if found is None:
        raise NotFound(f"There is no proposal {proposal_id}.")
    return found


def queue(session: Session, status: str = "pending") -> list[PlaceProposal]:
    """Proposals with ``status``, oldest first."""
    return list(session.scalars(select(PlaceProposal).where(PlaceProposal.status == status).order_by(PlaceProposal.id)))


def decide(session: Session, actor: Actor, proposal_id: int, accept: bool, reason: str) -> PlaceProposal:
    """Accept (apply, versioned) or reject a pending proposal, with a reason."""
    accounts.require_authenticated(actor)
    if not can_review(session, actor):
        raise Forbidden("Only sysadmins and admins of the Greater London Authority review proposals.")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Give a reason for the decision.", {"reason": "Enter a reason."})
    proposal = get_proposal(session, proposal_id)
    if proposal.status != "pending":
        raise Conflict(f"Proposal {proposal_id} was already {proposal.status}.")
    if accept:
        p = dict(proposal.payload)
        with session.begin_nested():
            if proposal.action == "create":
                place = service.create_place(session, kind=p.get("kind", ""), name=p.get("name", ""),
                                             source=proposal.source, actor=f"{proposal.proposer}, accepted by {actor.label}",
                                             geometry=p.get("geometry"), crs=p.get("crs"), key=p.get("key"),
                                             identifiers=p.get("identifiers"), alt_names=p.get("alt_names") or (),
                                             properties=p.get("properties"), reason=reason)
            elif proposal.action == "update":
                place = service.update_place(session, proposal.target_uid or "", p.get("changes") or {},
                                             source=proposal.source,
                                             actor=f"{proposal.proposer}, accepted by {actor.label}", reason=reason)
            else:
                place = service.retire_place(session, proposal.target_uid or "", successors=p.get("successors") or [],
                                             source=proposal.source,
                                             actor=f"{proposal.proposer}, accepted by {actor.label}", reason=reason)
        proposal.result_uid = place.uid
    proposal.status = "accepted" if accept else "rejected"
    proposal.reviewer = actor.label
    proposal.reason = reason
    proposal.decided_at = utcnow()
    session.flush()
    return proposal


def proposal_dict(proposal: PlaceProposal) -> dict[str, Any]:
    """A proposal as JSON."""
    return {"id": proposal.id, "action": proposal.action, "uid": proposal.target_uid, "payload": proposal.payload,
            "proposer": proposal.proposer, "source": proposal.source, "status": proposal.status,
            "reviewer": proposal.reviewer, "reason": proposal.reason, "result_uid": proposal.result_uid,
            "created_at": proposal.created_at.isoformat(),
            "decided_at": proposal.decided_at.isoformat() if proposal.decided_at else None}
