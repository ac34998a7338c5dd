"""Data-sharing agreements (the ICO Data Sharing Code's fields) and restricted datasets in the catalogue.

An agreement names its controllers and recipients (organisations), its purposes (W3C DPV terms) and a
plain-English statement, the lawful basis (UK GDPR Art. 6, and an Art. 9 condition when special category
data is covered), the public benefit, the restricted datasets and fields it covers, the identifiability
allowed, retention, dates, DPIA reference and status. It is approved when an officer (an admin) of every
controller has approved it. The public register shows everything except the fields the agreement withholds.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core import accounts, audit
from ..core.accounts import Actor
from ..core.db import utcnow
from ..core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from ..core.models import Organisation, User
from .models import (IDENTIFIABILITY, PROFILES, Agreement, AgreementDataset, AgreementParty, RestrictedDataset)
from .store import check_identifier

DPV = "https://w3id.org/dpv#"
#: A small vocabulary of W3C Data Privacy Vocabulary (DPV) purpose terms, with their labels.
PURPOSES: dict[str, str] = {
    "dpv:PublicBenefit": "Public benefit",
    "dpv:ImprovePublicServices": "Improve public services",
    "dpv:ProvideOfficialStatistics": "Provide official statistics",
    "dpv:PublicPolicyMaking": "Public policy making",
    "dpv:ProtectionOfPublicSecurity": "Protection of public security",
    "dpv:ServiceProvision": "Service provision",
    "dpv:ResearchAndDevelopment": "Research and development",
    "dpv:ScientificResearch": "Scientific research",
    "dpv:AcademicResearch": "Academic research",
    "dpv:EnforceSecurity": "Enforce security",
    "dpv:FraudPreventionAndDetection": "Fraud prevention and detection",
    "dpv:LegalCompliance": "Legal compliance",
}
#: UK GDPR Article 6(1) lawful bases.
ARTICLE_6: dict[str, str] = {
    "6(1)(a)": "Consent", "6(1)(b)": "Contract", "6(1)(c)": "Legal obligation",
    "6(1)(d)": "Vital interests", "6(1)(e)": "Public task", "6(1)(f)": "Legitimate interests",
}
#: UK GDPR Article 9(2) conditions for processing special category data.
ARTICLE_9: dict[str, str] = {
    "9(2)(a)": "Explicit consent", "9(2)(b)": "Employment, social security and social protection",
    "9(2)(c)": "Vital interests", "9(2)(d)": "Not-for-profit bodies", "9(2)(e)": "Made public by the data subject",
    "9(2)(f)": "Legal claims or judicial acts", "9(2)(g)": "Reasons of substantial public interest",
    "9(2)(h)": "Health or social care", "9(2)(i)": "Public health", "9(2)(j)": "Archiving, research and statistics",
}
#: Fields of the public register that an agreement may withhold (mark sensitive).
WITHHOLDABLE = ("dpia_reference", "retention", "officers", "purpose_statement", "public_benefit")
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")
RESTRICTED_BANNER = "Access through the LODA gateway under an agreement"


def purpose_iri(term: str) -> str:
    """The full IRI of a ``dpv:`` purpose term."""
    return DPV + term.split(":", 1)[1] if term.startswith("dpv:") else term


# --- restricted datasets ----------------------------------------------------------------------

def register_restricted_dataset(session: Session, *, slug: str, title: str, owner_org: str | Organisation,
                                description: str, table: str, fields: list[dict[str, Any]],
                                subject_column: str | None, area_field: str | None = None) -> Any:
    """Create or update the catalogue dataset of a restricted table: public metadata, no downloads."""
    from ..catalogue import service as catalogue

    org = owner_org if isinstance(owner_org, Organisation) else accounts.get_organisation(session, owner_org)
    check_identifier(table, "table")
    errors: dict[str, str] = {}
    clean: list[dict[str, Any]] = []
    for i, f in enumerate(fields or []):
        name = str(f.get("name", ""))
        if not re.match(r"^[a-z][a-z0-9_]{0,62}$", name):
            errors[f"fields.{i}.name"] = f"'{name}' is not a valid field name."
            continue
        clean.append({"name": name, "type": str(f.get("type", "VARCHAR")), "description": str(f.get("description", "")),
                      "identifier": bool(f.get("identifier", False)), "sensitive": bool(f.get("sensitive", False))})
    names = {f["name"] for f in clean}
    if not clean:
        errors["fields"] = "List the dataset's fields."
    if subject_column and subject_column not in names:
        errors["subject_column"] = f"'{subject_column}' is not one of the fields."
    if area_field and area_field not in names:
        errors["area_field"] = f"'{area_field}' is not one of the fields."
    if errors:
        raise ValidationFailed("The restricted dataset is not valid.", errors)
    extras = {"access_rights": "restricted", "access_note": RESTRICTED_BANNER,
              "loda_gateway": "/api/sharing/queries"}
    data = {"title": title, "description": description, "publisher": org.slug, "extras": extras}
    existing = session.scalar(select(RestrictedDataset).where(RestrictedDataset.slug == slug))
    actor = accounts.COMMAND_LINE
    if existing is not None:
        ds = catalogue.get_dataset(session, actor, slug)
        catalogue.update_dataset(session, actor, ds, data)
        record = existing
    else:
        ds = catalogue.create_dataset(session, actor, {**data, "slug": slug})
        record = RestrictedDataset(dataset_id=ds.id, slug=ds.slug)
        session.add(record)
    record.title, record.owner_org_id, record.owner = title, org.id, org
    record.table_name, record.subject_column, record.fields, record.area_field = table, subject_column, clean, area_field
    session.flush()
    return ds


def get_restricted(session: Session, slug: str) -> RestrictedDataset:
    """The restricted dataset with this slug; 404 if none."""
    found = session.scalar(select(RestrictedDataset).where(RestrictedDataset.slug == slug))
    if found is None:
        raise NotFound(f"There is no restricted dataset called '{slug}'.")
    return found


# --- agreements ---------------------------------------------------------------------------------

def _date(value: Any, name: str, errors: dict[str, str]) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except (TypeError, ValueError):
        errors[name] = "Enter a date like 2025-04-01."
        return None


def _orgs(session: Session, value: Any, name: str, errors: dict[str, str]) -> list[Organisation]:
    if not isinstance(value, list) or not value:
        errors[name] = "List at least one organisation (by its short name)."
        return []
    out = []
    for slug in value:
        org = session.scalar(select(Organisation).where(Organisation.slug == str(slug)))
        if org is None:
            errors[name] = f"There is no organisation called '{slug}'."
        elif org not in out:
            out.append(org)
    return out


def _actor(by: Actor | User) -> Actor:
    return by if isinstance(by, Actor) else accounts.actor_for(by, "service")


def validate_agreement(session: Session, data: dict[str, Any], *, slug_taken: bool = True) -> dict[str, Any]:
    """The agreement's fields, checked and cleaned; 422 listing every problem (the API and the form share it)."""
    errors: dict[str, str] = {}
    slug = str(data.get("slug") or "")
    if not SLUG.match(slug):
        errors["slug"] = "Enter a short name of lowercase letters, numbers and hyphens."
    elif slug_taken and session.scalar(select(Agreement.id).where(Agreement.slug == slug)) is not None:
        raise Conflict(f"The name '{slug}' is already used by another agreement.", {"slug": "Already in use."})
    title = str(data.get("title") or "").strip()
    if not title:
        errors["title"] = "Enter the agreement's title."
    controllers = _orgs(session, data.get("controllers"), "controllers", errors)
    recipients = _orgs(session, data.get("recipients"), "recipients", errors)
    purposes = data.get("purposes")
    if not isinstance(purposes, list) or not purposes:
        errors["purposes"] = f"List at least one DPV purpose, such as {', '.join(list(PURPOSES)[:3])}."
    else:
        unknown = [p for p in purposes if p not in PURPOSES]
        if unknown:
            errors["purposes"] = f"Unknown purpose {unknown[0]!r}: use one of {', '.join(PURPOSES)}."
    statement = str(data.get("purpose_statement") or "").strip()
    if not statement:
        errors["purpose_statement"] = "Say in plain English what the data will be used for."
    basis = str(data.get("lawful_basis") or "")
    if basis not in ARTICLE_6:
        errors["lawful_basis"] = f"Choose a UK GDPR Article 6 basis: {', '.join(ARTICLE_6)}."
    condition = data.get("special_condition") or None
    if condition is not None and condition not in ARTICLE_9:
        errors["special_condition"] = f"Choose a UK GDPR Article 9 condition: {', '.join(ARTICLE_9)}."
    benefit = str(data.get("public_benefit") or "").strip()
    if not benefit:
        errors["public_benefit"] = "Describe the public benefit expected."
    identifiability = str(data.get("identifiability") or "aggregate")
    if identifiability not in IDENTIFIABILITY:
        errors["identifiability"] = f"Choose one of {', '.join(IDENTIFIABILITY)}."
    profile = str(data.get("disclosure_profile") or "nhs")
    if profile not in PROFILES:
        errors["disclosure_profile"] = f"Choose one of {', '.join(PROFILES)}."
    budget = data.get("dp_epsilon_budget")
    if budget is not None and (not isinstance(budget, (int, float)) or isinstance(budget, bool) or budget <= 0):
        errors["dp_epsilon_budget"] = "Give a positive number, or leave it out for no differential privacy."
    start = _date(data.get("start_date"), "start_date", errors)
    end = _date(data.get("end_date"), "end_date", errors)
    if start and end and end < start:
        errors["end_date"] = "The end date must be on or after the start date."
    withheld = data.get("withheld") or []
    if not isinstance(withheld, list) or any(w not in WITHHOLDABLE for w in withheld):
        errors["withheld"] = f"Withhold only some of: {', '.join(WITHHOLDABLE)}."
    officers = data.get("officers") or {}
    if not isinstance(officers, dict):
        errors["officers"] = "Give the officers as {\"organisation\": \"Name, role\"}."
        officers = {}
    covered: list[tuple[RestrictedDataset, list[str]]] = []
    items = data.get("datasets")
    if not isinstance(items, list) or not items:
        errors["datasets"] = "List the restricted datasets covered, as [{\"dataset\": slug, \"fields\": [...]}]."
        items = []
    special = False
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors[f"datasets.{i}"] = "Give each dataset as {\"dataset\": slug, \"fields\": [...]}."
            continue
        rd = session.scalar(select(RestrictedDataset).where(RestrictedDataset.slug == str(item.get("dataset"))))
        if rd is None:
            errors[f"datasets.{i}"] = f"There is no restricted dataset called '{item.get('dataset')}'."
            continue
        fields = item.get("fields") or [f["name"] for f in rd.fields]
        bad = [f for f in fields if rd.field(str(f)) is None]
        if bad:
            errors[f"datasets.{i}.fields"] = f"'{bad[0]}' is not a field of {rd.slug}."
            continue
        special = special or any(rd.field(f)["sensitive"] for f in fields)  # type: ignore[index]
        covered.append((rd, [str(f) for f in fields]))
    if special and condition is None and "special_condition" not in errors:
        errors["special_condition"] = ("The agreement covers special category fields: give a UK GDPR Article 9 "
                                       "condition, such as 9(2)(h).")
    if errors:
        raise ValidationFailed("The agreement is not valid: " + "; ".join(errors.values()), errors)
    return {"slug": slug, "title": title, "controllers": controllers, "recipients": recipients,
            "purposes": [str(p) for p in purposes], "purpose_statement": statement,  # type: ignore[union-attr]
            "lawful_basis": basis, "special_condition": condition, "public_benefit": benefit,
            "identifiability": identifiability, "disclosure_profile": profile,
            "dp_epsilon_budget": float(budget) if budget is not None else None,
            "retention": str(data.get("retention") or ""), "start_date": start, "end_date": end,
            "dpia_reference": str(data.get("dpia_reference") or ""), "withheld": list(withheld),
            "officers": officers, "covered": covered}


def may_draft(actor: Actor, controllers: list[Organisation]) -> bool:
    """True if the actor may draft or edit an agreement with these controllers (an editor or admin of one)."""
    return actor.is_sysadmin or any(actor.can_edit(o.id) for o in controllers)


def _apply(agreement: Agreement, clean: dict[str, Any]) -> None:
    """Write checked fields onto the agreement (parties and datasets replaced)."""
    for name in ("title", "purposes", "purpose_statement", "lawful_basis", "special_condition", "public_benefit",
                 "identifiability", "disclosure_profile", "dp_epsilon_budget", "retention", "start_date",
                 "end_date", "dpia_reference", "withheld"):
        setattr(agreement, name, clean[name])
    officers = clean["officers"]
    agreement.parties = (
        [AgreementParty(organisation=o, organisation_id=o.id, role="controller", position=i,
                        officer_name=str(officers.get(o.slug, ""))) for i, o in enumerate(clean["controllers"])]
        + [AgreementParty(organisation=o, organisation_id=o.id, role="recipient", position=i,
                          officer_name=str(officers.get(o.slug, ""))) for i, o in enumerate(clean["recipients"])])
    agreement.datasets = [AgreementDataset(dataset_id=rd.dataset_id, restricted=rd, position=i, fields=f)
                          for i, (rd, f) in enumerate(clean["covered"])]


def create_agreement(session: Session, data: dict[str, Any], *, by: Actor | User) -> Agreement:
    """Create a draft agreement; 422 listing every problem. Only a controller's editor or admin may."""
    actor = _actor(by)
    accounts.require_authenticated(actor)
    clean = validate_agreement(session, data)
    if not may_draft(actor, clean["controllers"]):
        raise Forbidden("Only an editor or admin of a controller organisation can draft this agreement.")
    now = utcnow()
    agreement = Agreement(slug=clean["slug"], status="draft", created_by=actor.label, created=now, modified=now)
    _apply(agreement, clean)
    session.add(agreement)
    session.flush()
    audit.record(session, actor, "sharing.agreement.create", "sharing_agreement", agreement.slug,
                 after=public_record(agreement, include_withheld=True),
                 summary=f"Drafted agreement “{agreement.title}”")
    return agreement


def update_agreement(session: Session, agreement: Agreement, data: dict[str, Any], *, by: Actor | User) -> Agreement:
    """Change a draft agreement (its short name stays); approvals so far are cleared, since the text changed."""
    actor = _actor(by)
    accounts.require_authenticated(actor)
    if not may_draft(actor, agreement.party_orgs("controller")):
        raise Forbidden("Only an editor or admin of a controller organisation can change this agreement.")
    if agreement.status != "draft":
        raise Conflict(f"The agreement is {agreement.status}; only a draft can be changed.")
    clean = validate_agreement(session, {**data, "slug": agreement.slug}, slug_taken=False)
    if not may_draft(actor, clean["controllers"]):
        raise Forbidden("Keep your own organisation among the controllers: only a controller's editor or admin "
                        "can change the agreement.")
    before = public_record(agreement, include_withheld=True)
    agreement.parties = []
    agreement.datasets = []
    session.flush()  # the old parties and datasets go before the new ones (same primary keys)
    _apply(agreement, clean)
    agreement.modified = utcnow()
    session.flush()
    audit.record(session, actor, "sharing.agreement.update", "sharing_agreement", agreement.slug, before=before,
                 after=public_record(agreement, include_withheld=True),
                 summary=f"Changed draft agreement “{agreement.title}” (approvals so far cleared)")
    return agreement


def history(session: Session, agreement: Agreement) -> list[dict[str, Any]]:
    """The agreement's changes of state from the audit log, oldest first (what, when, why; no user names)."""
    from ..core.models import AuditEvent

    events = session.scalars(select(AuditEvent).where(AuditEvent.object_type == "sharing_agreement",
                                                      AuditEvent.object_id == agreement.slug)
                             .order_by(AuditEvent.id))
    return [{"at": e.at.isoformat() if e.at else None, "action": e.action.rsplit(".", 1)[-1],
             "summary": e.summary, "reason": (e.after or {}).get("reason", "")} for e in events]


def get_agreement(session: Session, slug: str) -> Agreement:
    """The agreement with this slug; 404 if none."""
    found = session.scalar(select(Agreement).where(Agreement.slug == slug))
    if found is None:
        raise NotFound(f"There is no agreement called '{slug}'.")
    return found


def list_agreements(session: Session) -> list[Agreement]:
    """Every agreement, newest first."""
    return list(session.scalars(select(Agreement).order_by(Agreement.created.desc(), Agreement.id.desc())))


def effective_status(agreement: Agreement, today: date | None = None) -> str:
    """The status as of today: an approved agreement past its end date is expired."""
    today = today or utcnow().date()
    if agreement.status == "approved" and agreement.end_date < today:
        return "expired"
    return agreement.status


def approve(session: Session, agreement: Agreement, officer: Actor | User,
            organisation: str | None = None, officer_name: str | None = None) -> Agreement:
    """Record one controller's approval by its officer (an admin); approved once every controller has.

    ``officer_name`` (the officer's name and role, as the register shows it) replaces the one drafted, if given.
    """
    actor = _actor(officer)
    accounts.require_authenticated(actor)
    if agreement.status != "draft":
        raise Conflict(f"The agreement is {agreement.status}; only a draft can be approved.")
    controllers = [p for p in agreement.parties if p.role == "controller"
                   and (organisation is None or p.organisation.slug == organisation)]
    mine = [p for p in controllers if actor.user is not None and actor.roles.get(p.organisation_id) == "admin"]
    if not mine:
        names = ", ".join(p.organisation.name for p in agreement.parties if p.role == "controller")
        raise Forbidden(f"Only an admin (the named officer) of a controller organisation ({names}) can approve "
                        "this agreement for it.")
    mine = [p for p in mine if p.approved_at is None]
    if not mine:
        raise Conflict("Your organisation has already approved this agreement.")
    party = mine[0]
    party.approved_at, party.approved_by_id, party.approved_by = utcnow(), actor.user.id, actor.user  # type: ignore[union-attr]
    if officer_name and officer_name.strip():
        party.officer_name = officer_name.strip()[:200]
    if not party.officer_name:
        party.officer_name = actor.user.display_name or actor.user.username  # type: ignore[union-attr]
    if all(p.approved_at is not None for p in agreement.parties if p.role == "controller"):
        agreement.status, agreement.approved_at = "approved", utcnow()
    agreement.modified = utcnow()
    session.flush()
    audit.record(session, actor, "sharing.agreement.approve", "sharing_agreement", agreement.slug,
                 after={"organisation": party.organisation.slug, "status": agreement.status},
                 organisation_id=party.organisation_id,
                 summary=f"{party.organisation.name} approved agreement “{agreement.title}”")
    return agreement


TRANSITIONS = {"suspended": ("approved",), "approved": ("suspended",), "ended": ("draft", "approved", "suspended"),
               "expired": ("approved",)}


def approvable_for(agreement: Agreement, actor: Actor) -> list[AgreementParty]:
    """The controller parties this actor (their admin) may still approve the draft for."""
    if agreement.status != "draft" or actor.user is None:
        return []
    return [p for p in agreement.parties if p.role == "controller" and p.approved_at is None
            and actor.roles.get(p.organisation_id) == "admin"]


def may_set_status(agreement: Agreement, actor: Actor) -> bool:
    """True if the actor may suspend, reinstate or end the agreement (a controller's admin, or a sysadmin)."""
    return actor.is_sysadmin or any(actor.can_admin(p.organisation_id) for p in agreement.parties
                                    if p.role == "controller")


def set_status(session: Session, agreement: Agreement, status: str, *, by: Actor | User, reason: str) -> Agreement:
    """Suspend, reinstate (approved), end or expire an agreement; only a controller's admin may."""
    actor = _actor(by)
    accounts.require_authenticated(actor)
    if status not in TRANSITIONS:
        raise ValidationFailed(f"Choose a status of {', '.join(TRANSITIONS)}.", {"status": "Not a status you can set."})
    if not (reason or "").strip():
        raise ValidationFailed("Say why the status changes.", {"reason": "Enter a reason."})
    if not actor.is_sysadmin and not any(actor.can_admin(p.organisation_id) for p in agreement.parties
                                         if p.role == "controller"):
        raise Forbidden("Only an admin of a controller organisation can change this agreement's status.")
    if agreement.status not in TRANSITIONS[status]:
        raise Conflict(f"An agreement that is {agreement.status} cannot become {status}.")
    before = agreement.status
    agreement.status, agreement.status_reason, agreement.modified = status, reason.strip(), utcnow()
    session.flush()
    audit.record(session, actor, f"sharing.agreement.{status}", "sharing_agreement", agreement.slug,
                 before={"status": before}, after={"status": status, "reason": reason.strip()},
                 summary=f"Agreement “{agreement.title}” is now {status}")
    return agreement


def public_record(agreement: Agreement, *, include_withheld: bool = False, base_url: str = "") -> dict[str, Any]:
    """The agreement as the public register shows it (withheld fields say so instead of their value)."""
    def party(p: AgreementParty) -> dict[str, Any]:
        out: dict[str, Any] = {"organisation": p.organisation.slug, "name": p.organisation.name}
        if p.role == "controller":
            out["approved"] = p.approved_at.isoformat() if p.approved_at else None
        if include_withheld or "officers" not in agreement.withheld:
            out["officer"] = p.officer_name
        return out

    record: dict[str, Any] = {
        "slug": agreement.slug, "title": agreement.title, "status": effective_status(agreement),
        "status_reason": agreement.status_reason,
        "url": f"{base_url}/sharing/agreements/{agreement.slug}",
        "controllers": [party(p) for p in agreement.parties if p.role == "controller"],
        "recipients": [party(p) for p in agreement.parties if p.role == "recipient"],
        "purposes": [{"term": t, "iri": purpose_iri(t), "label": PURPOSES.get(t, t)} for t in agreement.purposes],
        "purpose_statement": agreement.purpose_statement,
        "lawful_basis": {"article": agreement.lawful_basis, "label": ARTICLE_6.get(agreement.lawful_basis, "")},
        "special_condition": ({"article": agreement.special_condition,
                               "label": ARTICLE_9.get(agreement.special_condition, "")}
                              if agreement.special_condition else None),
        "public_benefit": agreement.public_benefit,
        "datasets": [{"dataset": d.restricted.slug, "title": d.restricted.title, "fields": list(d.fields)}
                     for d in agreement.datasets],
        "identifiability": agreement.identifiability, "disclosure_profile": agreement.disclosure_profile,
        "dp_epsilon_budget": agreement.dp_epsilon_budget, "retention": agreement.retention,
        "start_date": agreement.start_date.isoformat(), "end_date": agreement.end_date.isoformat(),
        "dpia_reference": agreement.dpia_reference,
        "approved_at": agreement.approved_at.isoformat() if agreement.approved_at else None,
        "withheld": list(agreement.withheld),
    }
    if not include_withheld:
        for name in agreement.withheld:
            if name in record:
                record[name] = "withheld"
    return record
