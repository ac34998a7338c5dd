"""Data trusts: a steward organisation holds data for its members under published terms of use, and
keeps a public, append-only log of every access request it approved or refused, and why."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import audit
from ...core.accounts import SLUG, Actor, get_organisation, require_authenticated
from ...core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from .models import DECISIONS, TRUST_ROLES, Trust, TrustDecision, TrustMember


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value.strip() if isinstance(value, str) else ""


def _may_steward(actor: Actor, trust: Trust) -> None:
    require_authenticated(actor)
    if not (actor.is_sysadmin or actor.roles.get(trust.steward_id) in ("editor", "admin")):
        raise Forbidden(f"Only an editor or admin of {trust.steward.name}, the trust's steward, can do this.")


def create_trust(session: Session, actor: Actor, data: dict[str, Any]) -> Trust:
    """Create a trust with its steward, purpose and terms of use (a sysadmin or the steward's admin)."""
    require_authenticated(actor)
    errors: dict[str, str] = {}
    slug, name = _text(data, "slug"), _text(data, "name")
    if not SLUG.match(slug):
        errors["slug"] = "Enter a short name of lowercase letters, numbers and hyphens."
    if not name:
        errors["name"] = "Enter the trust's name."
    if not _text(data, "terms_of_use"):
        errors["terms_of_use"] = "Write the terms on which members' data may be used."
    if not _text(data, "steward"):
        errors["steward"] = "Name the steward organisation (its short name)."
    datasets = data.get("datasets") or []
    if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
        errors["datasets"] = "Give the datasets held in trust as a list of dataset short names."
    if errors:
        raise ValidationFailed("The trust is not valid.", errors)
    steward = get_organisation(session, _text(data, "steward"))
    if not actor.can_admin(steward.id):
        raise Forbidden(f"Only a sysadmin or an admin of {steward.name} can make it the steward of a trust.")
    if session.scalar(select(Trust.id).where(Trust.slug == slug)) is not None:
        raise Conflict(f"The name '{slug}' is already used by another trust.", {"slug": "Already in use."})
    trust = Trust(slug=slug, name=name, steward_id=steward.id, steward=steward, purpose=_text(data, "purpose"),
                  terms_of_use=_text(data, "terms_of_use"), datasets=list(datasets))
    session.add(trust)
    session.flush()
    session.add(TrustMember(trust_id=trust.id, organisation_id=steward.id, role="steward"))
    audit.record(session, actor, "trust.create", "trust", slug, after={"name": name, "steward": steward.slug},
                 organisation_id=steward.id, summary=f"Created data trust {name}")
    session.flush()
    session.refresh(trust)
    return trust


def get_trust(session: Session, slug: str) -> Trust:
    """The trust with this slug; 404 if none."""
    trust = session.scalar(select(Trust).where(Trust.slug == slug))
    if trust is None:
        raise NotFound(f"There is no data trust called '{slug}'.")
    return trust


def list_trusts(session: Session) -> list[Trust]:
    """Every trust, by name."""
    return list(session.scalars(select(Trust).order_by(Trust.name)))


def add_member(session: Session, actor: Actor, trust: Trust, organisation: str, role: str = "member") -> TrustMember:
    """Add an organisation to a trust as a member or beneficiary (the steward's editors)."""
    _may_steward(actor, trust)
    if role not in TRUST_ROLES or role == "steward":
        raise ValidationFailed(f"Unknown role '{role}'.", {"role": "Use 'member' or 'beneficiary'."})
    org = get_organisation(session, organisation)
    existing = session.get(TrustMember, (trust.id, org.id))
    if existing is not None:
        raise Conflict(f"{org.name} is already a {existing.role} of {trust.name}.")
    member = TrustMember(trust_id=trust.id, organisation_id=org.id, role=role, organisation=org)
    session.add(member)
    audit.record(session, actor, "trust.member", "trust", trust.slug, after={"organisation": org.slug, "role": role},
                 organisation_id=trust.steward_id, summary=f"{org.name} joined {trust.name} as {role}")
    session.flush()
    session.expire(trust, ["members"])
    return member


def record_decision(session: Session, actor: Actor, trust: Trust, data: dict[str, Any]) -> TrustDecision:
    """Append a decision on an access request to the trust's public log (the steward's editors)."""
    _may_steward(actor, trust)
    errors: dict[str, str] = {}
    decision = _text(data, "decision")
    if decision not in DECISIONS:
        errors["decision"] = "Choose 'approved' or 'refused'."
    for key, message in (("requester", "Name who asked for access."),
                         ("request_summary", "Say what was asked for and for what purpose."),
                         ("reasons", "Give the reasons for the decision: the public log shows them.")):
        if not _text(data, key):
            errors[key] = message
    datasets = data.get("datasets") or []
    if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
        errors["datasets"] = "Give the datasets asked for as a list of dataset short names."
    decided_on = data.get("decided_on") or date.today().isoformat()
    try:
        day = decided_on if isinstance(decided_on, date) else date.fromisoformat(str(decided_on))
    except ValueError:
        errors["decided_on"] = "Give the date as YYYY-MM-DD."
        day = date.today()
    if errors:
        raise ValidationFailed("The decision is not valid.", errors)
    entry = TrustDecision(trust_id=trust.id, requester=_text(data, "requester"),
                          request_summary=_text(data, "request_summary"), datasets=list(datasets),
                          decision=decision, reasons=_text(data, "reasons"),
                          agreement_slug=_text(data, "agreement") or None, decided_by=actor.label, decided_on=day)
    session.add(entry)
    session.flush()
    session.expire(trust, ["decisions"])
    return entry


def trust_dict(trust: Trust, *, with_decisions: bool = True) -> dict[str, Any]:
    """A trust as its page and JSON twin show it."""
    out: dict[str, Any] = {
        "slug": trust.slug, "name": trust.name, "steward": {"slug": trust.steward.slug, "name": trust.steward.name},
        "purpose": trust.purpose, "terms_of_use": trust.terms_of_use, "datasets": list(trust.datasets or []),
        "members": [{"organisation": m.organisation.slug, "name": m.organisation.name, "role": m.role,
                     "joined": m.joined.date().isoformat()} for m in trust.members],
        "decisions_approved": sum(1 for d in trust.decisions if d.decision == "approved"),
        "decisions_refused": sum(1 for d in trust.decisions if d.decision == "refused"),
        "url": f"/sharing/trusts/{trust.slug}",
    }
    if with_decisions:
        out["decisions"] = [{"id": d.id, "decided_on": d.decided_on.isoformat(), "requester": d.requester,
                             "request": d.request_summary, "datasets": list(d.datasets or []),
                             "decision": d.decision, "reasons": d.reasons, "agreement": d.agreement_slug,
                             "decided_by": d.decided_by} for d in trust.decisions]
    return out
