"""Data-subject requests: access, rectification, erasure and objection, each with its statutory deadline.

A controller's officer identifies the person (an identifier, pseudonymised at once in every live key
epoch; the identifier itself is never stored) and opens a request, which is carried out at once:

* **access** (UK GDPR Art. 15): everything the controller's restricted datasets hold about the person,
  downloadable as JSON or CSV, and every use that read their rows (from the access log);
* **rectification** (Art. 16) and **erasure** (Art. 17): applied in the restricted store, then passed on
  (Art. 19) to every recipient organisation under the agreements that shared the dataset, each of
  which confirms it has acted; the request is complete when every recipient has confirmed;
* **objection** (Art. 21): an opt-out the gateway honours in every later query.

Every request has its one-month deadline (Art. 12(3)), computed as the ICO advises: the same date in
the next month, the month's last day when there is no such date (31 January -> 28 or 29 February),
moved to the next working day when it falls on a weekend or bank holiday. The person sees how their
data was used with the request's reference and a one-time access code (see ``check_access_code``).
"""

from __future__ import annotations

import calendar
import csv
import hashlib
import hmac
import io
import secrets
from datetime import date, datetime, timedelta, timezone
from typing import Any

import duckdb
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import audit
from ...core.accounts import Actor, get_organisation, require_authenticated
from ...core.db import utcnow
from ...core.errors import Forbidden, NotFound, ValidationFailed
from ...core.models import Organisation
from ...settings import Settings
from ..models import Agreement, AgreementDataset, RestrictedDataset
from ..store import SYSTEM_COLUMNS, RestrictedStore, quote
from . import optouts
from .models import REQUEST_KINDS, Propagation, SubjectRequest
from .pseudonyms import KIND_LABELS as ID_LABELS
from .pseudonyms import KINDS, Pseudonymiser

#: Bank holidays in England and Wales (GOV.UK), which do not count as working days for the deadline.
BANK_HOLIDAYS = frozenset(date.fromisoformat(d) for d in (
    "2025-01-01", "2025-04-18", "2025-04-21", "2025-05-05", "2025-05-26", "2025-08-25", "2025-12-25", "2025-12-26",
    "2026-01-01", "2026-04-03", "2026-04-06", "2026-05-04", "2026-05-25", "2026-08-31", "2026-12-25", "2026-12-28",
    "2027-01-01", "2027-03-26", "2027-03-29", "2027-05-03", "2027-05-31", "2027-08-30", "2027-12-27", "2027-12-28",
))
KIND_LABELS = {"access": "Access (Article 15)", "rectification": "Rectification (Article 16)",
               "erasure": "Erasure (Article 17)", "objection": "Objection and opt-out (Article 21)"}
CODE_DAYS = 90  # how long the person's access code works


# --- the deadline ------------------------------------------------------------------------------

def one_calendar_month_after(day: date) -> date:
    """The corresponding date in the next month, or that month's last day if it has no such date."""
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def is_working_day(day: date) -> bool:
    """True on Monday to Friday, except bank holidays in England and Wales."""
    return day.weekday() < 5 and day not in BANK_HOLIDAYS


def due_date(received: date) -> date:
    """The statutory deadline of a request received on ``received`` (UK GDPR Art. 12(3), ICO method)."""
    due = one_calendar_month_after(received)
    while not is_working_day(due):
        due += timedelta(days=1)
    return due


def is_overdue(request: SubjectRequest, today: date | None = None) -> bool:
    """True if the request is still open after its deadline."""
    return request.status == "open" and (today or date.today()) > request.due_on


# --- finding the person ------------------------------------------------------------------------

def controller_datasets(session: Session, organisation: Organisation) -> list[RestrictedDataset]:
    """The restricted datasets this organisation controls that hold person rows."""
    return list(session.scalars(select(RestrictedDataset).where(
        RestrictedDataset.owner_org_id == organisation.id, RestrictedDataset.subject_column.is_not(None))
        .order_by(RestrictedDataset.slug)))


def _person_rows(store: RestrictedStore, dataset: RestrictedDataset, pseudonyms: list[str]) -> list[dict[str, Any]]:
    if dataset.table_name not in store.tables():
        return []
    with store.cursor() as cur:
        columns = [c for c in store.columns(dataset.table_name) if c not in SYSTEM_COLUMNS]
        result = cur.execute(
            f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(dataset.table_name)} "
            f"WHERE {quote(dataset.subject_column or '')} IN (SELECT unnest(?)) ORDER BY _row", [pseudonyms])
        return [dict(zip(columns, (_plain(v) for v in row))) for row in result.fetchall()]


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (date, datetime)) else value


def _can_officiate(actor: Actor, organisation: Organisation) -> None:
    require_authenticated(actor)
    if not actor.can_admin(organisation.id):
        raise Forbidden(f"Only an admin of {organisation.name} (its data protection officer or a named officer) "
                        "can open or see its data-subject requests.")


def _new_code() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    raw = "".join(secrets.choice(alphabet) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def _code_hash(settings: Settings, reference: str, code: str) -> str:
    normalised = code.strip().upper().replace(" ", "")
    return hmac.new(settings.secret_key.encode(), f"{reference}:{normalised}".encode(), hashlib.sha256).hexdigest()


# --- opening and carrying out requests -----------------------------------------------------------

def open_request(session: Session, settings: Settings, actor: Actor, data: dict[str, Any],
                 *, store: RestrictedStore | None = None, today: date | None = None) -> tuple[SubjectRequest, str]:
    """Open a request for an identified person and carry it out; returns it and the person's access code.

    ``data``: organisation (slug), kind, identifier_kind, identifier, received_on (optional, YYYY-MM-DD),
    and for rectification ``dataset`` + ``changes`` ({field: new value}); for erasure optionally
    ``datasets`` (default: all); for objection ``scope`` ("all" or "research_planning").
    """
    errors: dict[str, str] = {}
    kind = str(data.get("kind") or "")
    if kind not in REQUEST_KINDS:
        errors["kind"] = f"Choose one of {', '.join(REQUEST_KINDS)}."
    identifier_kind = str(data.get("identifier_kind") or "")
    if identifier_kind not in KINDS:
        errors["identifier_kind"] = f"Choose one of {', '.join(KINDS)}."
    if not str(data.get("identifier") or "").strip():
        errors["identifier"] = "Enter the person's identifier, such as their NHS number."
    if not str(data.get("organisation") or "").strip():
        errors["organisation"] = "Name the controller organisation that received the request."
    received = today or date.today()
    if data.get("received_on"):
        try:
            received = date.fromisoformat(str(data["received_on"]))
        except ValueError:
            errors["received_on"] = "Give the date the request was received as YYYY-MM-DD."
    if errors:
        raise ValidationFailed("The request is not valid.", errors)
    organisation = get_organisation(session, str(data["organisation"]))
    _can_officiate(actor, organisation)
    pseudonymiser = Pseudonymiser(settings)
    pseudonyms = pseudonymiser.pseudonyms_of(identifier_kind, str(data["identifier"]))
    store = store or RestrictedStore(settings)
    datasets = controller_datasets(session, organisation)
    details = _check_details(kind, data, datasets, store)
    code = _new_code()
    request = SubjectRequest(
        reference="DSR-" + secrets.token_hex(4).upper(), kind=kind, status="open", organisation_id=organisation.id,
        organisation=organisation, officer_id=actor.user.id if actor.user else None, identifier_kind=identifier_kind,
        pseudonyms={"epochs": pseudonyms, "subject_nos": store.subject_nos(pseudonyms.values())},
        details=details, result={}, received_on=received, due_on=due_date(received))
    request.access_code_hash = _code_hash(settings, request.reference, code)
    request.access_code_expires = utcnow() + timedelta(days=CODE_DAYS)
    session.add(request)
    session.flush()
    _carry_out(session, request, datasets, store)
    audit.record(session, actor, f"subject_request.{kind}", "subject_request", request.reference,
                 after={"kind": kind, "due_on": request.due_on.isoformat(), "result": request.result},
                 organisation_id=organisation.id, summary=f"Opened {kind} request {request.reference}")
    return request, code


def _check_details(kind: str, data: dict[str, Any], datasets: list[RestrictedDataset],
                   store: RestrictedStore) -> dict[str, Any]:
    slugs = {d.slug: d for d in datasets}
    if kind == "rectification":
        dataset, changes = data.get("dataset"), data.get("changes")
        if dataset not in slugs:
            raise ValidationFailed("Say which dataset holds the record to correct.",
                                   {"dataset": f"Choose one of {', '.join(slugs) or 'none'}."})
        if not isinstance(changes, dict) or not changes:
            raise ValidationFailed("Say which fields to correct and their right values.",
                                   {"changes": 'Give an object like {"smoke_alarm": true}.'})
        ds = slugs[str(dataset)]
        protected = {ds.subject_column, *SYSTEM_COLUMNS}
        types = store.columns(ds.table_name) if ds.table_name in store.tables() else {}
        bad = [f for f in changes if f in protected or f not in types]
        if bad:
            raise ValidationFailed(f"These fields cannot be corrected in {dataset}: {', '.join(map(str, bad))}.",
                                   {"changes": f"Use fields of the dataset other than the pseudonym: "
                                               f"{', '.join(sorted(set(types) - protected))}."})
        with store.cursor() as cur:
            for name, value in changes.items():
                try:
                    cur.execute(f"SELECT CAST(? AS {types[name]})", [value]).fetchone()
                except duckdb.Error:
                    raise ValidationFailed(f"'{value}' is not a valid value for {name} ({types[name].lower()}).",
                                           {"changes": f"Give {name} as a {types[name].lower()}."}) from None
        return {"dataset": dataset, "changes": changes}
    if kind == "erasure":
        chosen = data.get("datasets") or list(slugs)
        unknown = [d for d in chosen if d not in slugs] if isinstance(chosen, list) else ["(not a list)"]
        if unknown:
            raise ValidationFailed(f"Not datasets of this controller: {', '.join(map(str, unknown))}.",
                                   {"datasets": f"Choose from {', '.join(slugs) or 'none'}."})
        return {"datasets": chosen, "grounds": str(data.get("grounds") or "")}
    if kind == "objection":
        scope = str(data.get("scope") or "all")
        if scope not in optouts.SCOPE_LABELS:
            raise ValidationFailed(f"Unknown opt-out scope '{scope}'.",
                                   {"scope": "Use 'all' or 'research_planning'."})
        return {"scope": scope, "dataset": data.get("dataset") or None}
    return {}


def _recipients(session: Session, dataset: RestrictedDataset) -> list[tuple[Agreement, Organisation]]:
    """Every recipient organisation under the agreements (past or present, not drafts) covering a dataset."""
    agreements = session.scalars(select(Agreement).join(AgreementDataset).where(
        AgreementDataset.dataset_id == dataset.dataset_id, Agreement.status != "draft").order_by(Agreement.slug))
    return [(a, org) for a in agreements for org in a.party_orgs("recipient") if org.id != dataset.owner_org_id]


def _carry_out(session: Session, request: SubjectRequest, datasets: list[RestrictedDataset],
               store: RestrictedStore) -> None:
    pseudonyms = list(request.pseudonyms["epochs"].values())
    kind = request.kind
    if kind == "access":
        held = {d.slug: len(_person_rows(store, d, pseudonyms)) for d in datasets}
        request.result = {"rows": held, "uses": len(uses_of(session, request, store))}
        _complete(request)
    elif kind == "objection":
        reference = optouts.register_pseudonyms(
            session, request.pseudonyms["epochs"], scope=request.details["scope"],
            dataset_slug=request.details.get("dataset"), source=f"objection {request.reference}")
        request.result = {"optout": reference, "scope": request.details["scope"]}
        _complete(request)
    else:
        targets = ([d for d in datasets if d.slug == request.details["dataset"]] if kind == "rectification"
                   else [d for d in datasets if d.slug in request.details["datasets"]])
        changed: dict[str, int] = {}
        for ds in targets:
            if ds.table_name not in store.tables():
                changed[ds.slug] = 0
                continue
            if kind == "rectification":
                changes = request.details["changes"]
                changed[ds.slug] = sum(store.update_rows(ds.table_name, p, changes) for p in pseudonyms)
            else:
                changed[ds.slug] = sum(store.delete_subject(ds.table_name, p) for p in pseudonyms)
            if changed[ds.slug]:
                seen: set[tuple[int, int]] = set()
                for agreement, org in _recipients(session, ds):
                    if (agreement.id, org.id) in seen:
                        continue
                    seen.add((agreement.id, org.id))
                    request.propagations.append(Propagation(
                        organisation_id=org.id, organisation=org, agreement_slug=agreement.slug,
                        dataset_slug=ds.slug, action="rectify" if kind == "rectification" else "erase", note="",
                        row_level=agreement.identifiability != "aggregate"))
        request.result = {"rows_changed" if kind == "rectification" else "rows_erased": changed}
        if not request.propagations:
            _complete(request)
    session.flush()


def _complete(request: SubjectRequest) -> None:
    request.status = "completed"
    request.completed_at = utcnow()


def confirm_propagation(session: Session, actor: Actor, request: SubjectRequest, propagation_id: int,
                        note: str = "") -> Propagation:
    """A recipient confirms it has rectified or erased its copy; the request completes with the last one."""
    require_authenticated(actor)
    item = next((p for p in request.propagations if p.id == propagation_id), None)
    if item is None:
        raise NotFound(f"Request {request.reference} has no recipient notice {propagation_id}.")
    if not (actor.is_sysadmin or item.organisation_id in actor.roles):
        raise Forbidden(f"Only a member of {item.organisation.name} can confirm that it has acted.")
    if item.confirmed_at is None:
        item.confirmed_at = utcnow()
        item.confirmed_by = actor.label
        item.note = (note or "").strip()
        audit.record(session, actor, "subject_request.confirm", "subject_request", request.reference,
                     after={"organisation": item.organisation.slug, "action": item.action},
                     organisation_id=item.organisation_id,
                     summary=f"{item.organisation.name} confirmed the {item.action} for {request.reference}")
    if request.status == "open" and all(p.confirmed_at for p in request.propagations):
        _complete(request)
    session.flush()
    return item


# --- reading requests -------------------------------------------------------------------------

def get_request(session: Session, reference: str) -> SubjectRequest:
    """The request with this reference; 404 if none."""
    request = session.scalar(select(SubjectRequest).where(SubjectRequest.reference == reference.strip().upper()))
    if request is None:
        raise NotFound(f"There is no data-subject request '{reference}'.")
    return request


def visible_request(session: Session, actor: Actor, reference: str) -> SubjectRequest:
    """A request as its controller's officers, or a recipient asked to act on it, may see it."""
    require_authenticated(actor)
    request = get_request(session, reference)
    recipient = any(p.organisation_id in actor.roles for p in request.propagations)
    if not (actor.can_admin(request.organisation_id) or recipient):
        raise NotFound(f"There is no data-subject request '{reference}'.")
    return request


def list_requests(session: Session, actor: Actor) -> list[SubjectRequest]:
    """The requests this actor may see: its controllers' requests and those its organisations must act on."""
    require_authenticated(actor)
    query = select(SubjectRequest).order_by(SubjectRequest.due_on, SubjectRequest.id)
    if not actor.is_sysadmin:
        admin_of = [org for org, role in actor.roles.items() if role == "admin"]
        acting = select(Propagation.request_id).where(Propagation.organisation_id.in_(list(actor.roles) or [-1]))
        query = query.where(SubjectRequest.organisation_id.in_(admin_of or [-1]) | SubjectRequest.id.in_(acting))
    return list(session.scalars(query))


def uses_of(session: Session, request: SubjectRequest,
            store: RestrictedStore | None = None) -> list[dict[str, Any]]:
    """Every logged use that read rows about the request's person, newest first.

    With ``store``, rows loaded for the person after the request was opened are found too.
    """
    from ..accesslog import uses_touching

    datasets = controller_datasets(session, request.organisation)
    known = set((request.pseudonyms or {}).get("subject_nos", {}).values())
    if store is not None:
        known |= set(store.subject_nos((request.pseudonyms or {}).get("epochs", {}).values()).values())
        from .rekey import aliases_of  # numbers joined by a re-pseudonymisation: uses logged before it

        known |= aliases_of(store, known)
    numbers = sorted(known)
    seen: dict[int, dict[str, Any]] = {}
    for ds in datasets:
        for number in numbers:
            for entry in uses_touching(session, ds.slug, int(number)):
                if entry.id in seen:
                    continue
                agreement = session.scalar(select(Agreement).where(Agreement.slug == entry.agreement))
                seen[entry.id] = {
                    "id": entry.id, "at": entry.at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "organisation": entry.organisation, "agreement": entry.agreement,
                    "agreement_title": agreement.title if agreement else entry.agreement,
                    "purpose": entry.purpose,
                    "purpose_statement": agreement.purpose_statement if agreement else "",
                    "public_benefit": agreement.public_benefit if agreement else "",
                    "datasets": list(entry.datasets or []), "fields": list(entry.fields or []),
                    "released": entry.released or {},
                }
    return sorted(seen.values(), key=lambda u: u["id"], reverse=True)


def person_data(session: Session, settings: Settings, request: SubjectRequest,
                store: RestrictedStore | None = None) -> dict[str, Any]:
    """Everything the controller holds about the request's person, and the uses that touched them."""
    if request.kind != "access":
        raise ValidationFailed("Only an access request has a download.", {"kind": "Open an access request."})
    store = store or RestrictedStore(settings)
    pseudonyms = list(request.pseudonyms["epochs"].values())
    held = {d.slug: {"title": d.title, "rows": _person_rows(store, d, pseudonyms)}
            for d in controller_datasets(session, request.organisation)}
    return {"reference": request.reference, "controller": request.organisation.name,
            "generated": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"), "datasets": held,
            "uses": uses_of(session, request, store),
            "note": "Records are held under pseudonyms; the identifier you gave was not stored."}


def person_csv(data: dict[str, Any]) -> str:
    """The access download as CSV: one line per held field value, then one per use."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "dataset", "row", "field", "value"])
    for slug, held in data["datasets"].items():
        for n, row in enumerate(held["rows"], 1):
            for name, value in row.items():
                writer.writerow(["held", slug, n, name, "" if value is None else value])
    for use in data["uses"]:
        for name in ("at", "organisation", "agreement", "purpose", "public_benefit"):
            writer.writerow(["use", ";".join(use["datasets"]), use["id"], name, use[name]])
    return out.getvalue()


def check_access_code(session: Session, settings: Settings, reference: str, code: str) -> SubjectRequest:
    """The request, if the person's access code matches and has not expired; one message for every failure.

    In production the code is sent through the controller's identity verification (for example GOV.UK
    One Login or the NHS login) rather than handed over with the response.
    """
    failure = ValidationFailed("The reference or the access code is not right, or the code has expired.",
                               {"code": "Check the reference and code in the letter or email you received."})
    try:
        request = get_request(session, reference or "")
    except NotFound:
        raise failure from None
    if (not request.access_code_hash or not code
            or not hmac.compare_digest(request.access_code_hash, _code_hash(settings, request.reference, code))
            or (request.access_code_expires and request.access_code_expires < utcnow())):
        raise failure
    return request


def request_dict(request: SubjectRequest, today: date | None = None,
                 viewer: Actor | None = None) -> dict[str, Any]:
    """A request as its page and JSON twin show it.

    Pseudonyms appear only in a notice to a recipient that holds the person's rows (under a pseudonymised or
    identifiable agreement), and only to that recipient's members: they need them to find the rows to change.
    """
    today = today or date.today()
    pseudonyms = sorted((request.pseudonyms or {}).get("epochs", {}).values())

    def find(p: Propagation) -> list[str] | None:
        if viewer is None or not p.row_level or p.organisation_id not in viewer.roles:
            return None
        return pseudonyms

    return {
        "reference": request.reference, "kind": request.kind, "kind_label": KIND_LABELS[request.kind],
        "status": request.status, "controller": {"slug": request.organisation.slug, "name": request.organisation.name},
        "identifier_kind": request.identifier_kind,
        "identifier_label": ID_LABELS.get(request.identifier_kind, request.identifier_kind),
        "received_on": request.received_on.isoformat(),
        "due_on": request.due_on.isoformat(), "overdue": is_overdue(request, today),
        "days_left": (request.due_on - today).days if request.status == "open" else None,
        "completed_at": request.completed_at.strftime("%Y-%m-%dT%H:%M:%SZ") if request.completed_at else None,
        "details": request.details, "result": request.result,
        "recipients": [{"id": p.id, "organisation": p.organisation.slug, "name": p.organisation.name,
                        "agreement": p.agreement_slug, "dataset": p.dataset_slug, "action": p.action,
                        "notified_at": p.notified_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "confirmed_at": p.confirmed_at.strftime("%Y-%m-%dT%H:%M:%SZ") if p.confirmed_at else None,
                        "confirmed_by": p.confirmed_by, "note": p.note, "row_level": p.row_level,
                        "pseudonyms": find(p)} for p in request.propagations],
        "url": f"/sharing/subject-requests/{request.reference}",
    }
