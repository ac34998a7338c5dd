"""LODA's public pages: the register of agreements (HTML, JSON, CSV) and the record of uses.

* ``/sharing/agreements`` (+ ``.json``, ``.csv``): every agreement, sensitive fields withheld.
* ``/sharing/agreements/{slug}`` (+ ``.json``): one agreement as GOV.UK summary lists.
* ``/sharing/uses`` (+ ``.json``): who used which restricted data, why, with what benefit and result.
* ``/sharing/agreements/new`` and ``/sharing/agreements/{slug}/edit``: the form for a draft agreement (an editor
  or admin of a controller organisation), validated by ``agreements.validate_agreement`` as the API is.
* ``/sharing/agreements/{slug}/approve``, ``/suspend``, ``/reinstate``, ``/end``: a confirmation page (GET) and
  its CSRF-protected form (POST) for each change of state; no JavaScript needed.
* ``/sharing/uses/log-anchors`` (+ ``.json``): the published head hashes of the access log (docs/sharing.md).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from ..core import accounts
from ..core.errors import Conflict, Forbidden, ValidationFailed
from ..core.pages import flash, form_text, needs_sign_in, pop_flash
from ..core.web import Context, CtxDep, FormDep, render, wants_json
from . import agreements, uses as uses_view
from .models import IDENTIFIABILITY, PROFILES, Agreement, RestrictedDataset

router = APIRouter(tags=["pages"], include_in_schema=False)
CSV_COLUMNS = ("slug", "title", "status", "controllers", "recipients", "purposes", "purpose_statement",
               "lawful_basis", "special_condition", "public_benefit", "datasets", "identifiability",
               "disclosure_profile", "retention", "start_date", "end_date", "dpia_reference", "approved_at")


def _register(ctx: Context) -> list[dict[str, Any]]:
    return [agreements.public_record(a, base_url=ctx.base_url) for a in agreements.list_agreements(ctx.session)]


@router.get("/sharing/agreements.csv")
def agreements_csv(ctx: Context = CtxDep) -> Response:
    """The public register as CSV, one agreement a row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in _register(ctx):
        cells = {**r, "controllers": "; ".join(p["name"] for p in r["controllers"]),
                 "recipients": "; ".join(p["name"] for p in r["recipients"]),
                 "purposes": "; ".join(p["term"] for p in r["purposes"]),
                 "lawful_basis": f"{r['lawful_basis']['article']} {r['lawful_basis']['label']}",
                 "special_condition": (f"{r['special_condition']['article']} {r['special_condition']['label']}"
                                       if r["special_condition"] else ""),
                 "datasets": "; ".join(f"{d['dataset']} ({', '.join(d['fields'])})" for d in r["datasets"])}
        writer.writerow([cells.get(c) if cells.get(c) is not None else "" for c in CSV_COLUMNS])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="sharing-agreements.csv"'})


@router.get("/sharing/agreements")
def agreements_page(ctx: Context = CtxDep) -> Response:
    """The public register of data-sharing agreements."""
    register = _register(ctx)
    return render(ctx, "sharing/agreements.html", {"agreements": register},
                  {"agreements": register, "count": len(register)})


# --- the agreement form (new and edit) ------------------------------------------------------------

IDENTIFIABILITY_TEXT = {"aggregate": "Aggregate outputs only", "pseudonymised": "Pseudonymised rows",
                        "identifiable": "Identifiable rows"}
IDENTIFIABILITY_HINT = {"aggregate": "Analysts receive only tables that pass disclosure control.",
                        "pseudonymised": "Analysts may read rows whose direct identifiers are replaced by pseudonyms.",
                        "identifiable": "Analysts may read rows that identify people. Needs the strongest case."}
PROFILE_TEXT = {"nhs": "NHS: suppress counts of 1 to 7, round to 5", "ons": "ONS: suppress counts below 10, round to 5"}
WITHHOLD_TEXT = {"dpia_reference": "DPIA reference", "retention": "Retention", "officers": "Names of the officers",
                 "purpose_statement": "Plain-English purpose", "public_benefit": "Public benefit"}
#: The order of the form's fields, so the error summary lists problems as the page shows them.
FORM_ORDER = ("slug", "title", "controllers", "recipients", "purposes", "purpose_statement", "lawful_basis",
              "special_condition", "public_benefit", "datasets", "identifiability", "disclosure_profile",
              "dp_epsilon_budget", "retention", "start_date-day", "end_date-day", "dpia_reference", "withheld",
              "officers")
DATE_PARTS = ("day", "month", "year")
FORM_MESSAGES = {"controllers": "Choose at least one controller organisation.",
                 "recipients": "Choose at least one recipient organisation.",
                 "purposes": "Choose at least one purpose.",
                 "lawful_basis": "Choose the lawful basis under UK GDPR Article 6."}


def _restricted(ctx: Context) -> list[RestrictedDataset]:
    from sqlalchemy import select

    return list(ctx.session.scalars(select(RestrictedDataset).order_by(RestrictedDataset.title)))


def _form_values(form: FormData) -> dict[str, Any]:
    """What the browser sent, kept as typed so the form can show it again."""
    values: dict[str, Any] = {name: form_text(form, name, 5000) for name in (
        "slug", "title", "purpose_statement", "lawful_basis", "special_condition", "public_benefit",
        "identifiability", "disclosure_profile", "dp_epsilon_budget", "retention", "dpia_reference")}
    for name in ("controllers", "recipients", "purposes", "withheld"):
        values[name] = [str(v) for v in form.getlist(name) if isinstance(v, str) and v]
    values["fields"] = {}
    for key in form.keys():
        if key.startswith("fields-"):
            values["fields"][key[len("fields-"):]] = [str(v) for v in form.getlist(key) if isinstance(v, str) and v]
    for which in ("start_date", "end_date"):
        for part in DATE_PARTS:
            values[f"{which}-{part}"] = form_text(form, f"{which}-{part}", 10)
    return values


def _iso_date(values: dict[str, Any], which: str) -> str:
    """The date input's three parts as an ISO date, or what was typed (which the service then refuses)."""
    day, month, year = (values.get(f"{which}-{p}", "") for p in DATE_PARTS)
    if day.isdigit() and month.isdigit() and year.isdigit() and len(year) == 4:
        return f"{year}-{int(month):02d}-{int(day):02d}"
    return "-".join(v for v in (year, month, day) if v) or ""


def _service_body(values: dict[str, Any]) -> dict[str, Any]:
    """The form's values as the body the JSON API takes (one source of truth: the same validation)."""
    body: dict[str, Any] = {k: values[k] for k in (
        "slug", "title", "controllers", "recipients", "purposes", "purpose_statement", "lawful_basis",
        "public_benefit", "identifiability", "disclosure_profile", "retention", "dpia_reference", "withheld")}
    body["special_condition"] = values["special_condition"] or None
    budget = values["dp_epsilon_budget"]
    try:
        body["dp_epsilon_budget"] = float(budget) if budget else None
    except ValueError:
        body["dp_epsilon_budget"] = budget  # refused by the service with its message
    body["datasets"] = [{"dataset": slug, "fields": fields} for slug, fields in values["fields"].items() if fields]
    body["start_date"], body["end_date"] = _iso_date(values, "start_date"), _iso_date(values, "end_date")
    return body


def _values_of(agreement: Agreement) -> dict[str, Any]:
    """A saved agreement as form values (for the edit page)."""
    values: dict[str, Any] = {
        "slug": agreement.slug, "title": agreement.title, "purpose_statement": agreement.purpose_statement,
        "lawful_basis": agreement.lawful_basis, "special_condition": agreement.special_condition or "",
        "public_benefit": agreement.public_benefit, "identifiability": agreement.identifiability,
        "disclosure_profile": agreement.disclosure_profile,
        "dp_epsilon_budget": "" if agreement.dp_epsilon_budget is None else f"{agreement.dp_epsilon_budget:g}",
        "retention": agreement.retention, "dpia_reference": agreement.dpia_reference,
        "controllers": [o.slug for o in agreement.party_orgs("controller")],
        "recipients": [o.slug for o in agreement.party_orgs("recipient")],
        "purposes": list(agreement.purposes), "withheld": list(agreement.withheld),
        "fields": {d.restricted.slug: list(d.fields) for d in agreement.datasets}}
    for which, day in (("start_date", agreement.start_date), ("end_date", agreement.end_date)):
        values[f"{which}-day"], values[f"{which}-month"], values[f"{which}-year"] = (
            str(day.day), str(day.month), str(day.year))
    return values


def _page_errors(errors: dict[str, str], body: dict[str, Any], datasets: list[RestrictedDataset]) -> dict[str, str]:
    """The service's error keys as the ids of the form's inputs, in the page's order."""
    first_field = {rd.slug: f"fields-{rd.slug}" for rd in datasets}
    out: dict[str, str] = {}
    for key, message in errors.items():
        if key in ("start_date", "end_date"):
            if key == "start_date" or "after" not in message:
                message = f"Enter a real {'start' if key == 'start_date' else 'end'} date, for example 1 4 2025."
            out[f"{key}-day"] = message
        elif key.startswith("datasets."):
            index = int(key.split(".")[1])
            slug = body["datasets"][index]["dataset"] if index < len(body["datasets"]) else ""
            out[first_field.get(slug, next(iter(first_field.values()), "datasets"))] = message
        elif key in FORM_MESSAGES and message.startswith(("List at least", "Choose a UK GDPR Article 6")):
            out[key] = FORM_MESSAGES[key]  # the API's wording names JSON values; the form's names the choices
        elif key == "datasets":
            out[next(iter(first_field.values()), "datasets")] = "Choose the fields of at least one restricted dataset."
        else:
            out[key] = message
    order = {name: i for i, name in enumerate(FORM_ORDER)}
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], order["datasets"])))


def _choices(ctx: Context, datasets: list[RestrictedDataset]) -> dict[str, Any]:
    return {
        "organisations": [{"value": o.slug, "text": o.name} for o in accounts.list_organisations(ctx.session)],
        "purposes": [{"value": k, "text": v, "hint": agreements.purpose_iri(k)} for k, v in agreements.PURPOSES.items()],
        "article_6": [{"value": k, "text": f"Article {k}: {v}"} for k, v in agreements.ARTICLE_6.items()],
        "article_9": [{"value": k, "text": f"Article {k}: {v}"} for k, v in agreements.ARTICLE_9.items()],
        "identifiability": [{"value": k, "text": IDENTIFIABILITY_TEXT[k], "hint": IDENTIFIABILITY_HINT[k]}
                            for k in IDENTIFIABILITY],
        "profiles": [{"value": k, "text": PROFILE_TEXT.get(k, k)} for k in PROFILES],
        "withholdable": [{"value": k, "text": WITHHOLD_TEXT.get(k, k)} for k in agreements.WITHHOLDABLE],
        "datasets": [{"slug": rd.slug, "title": rd.title, "owner": rd.owner.name if rd.owner else "",
                      "fields": [{"value": f["name"], "text": f["name"], "description": f.get("description", ""),
                                  "sensitive": bool(f.get("sensitive"))} for f in rd.fields]}
                     for rd in datasets],
    }


def _form_page(ctx: Context, values: dict[str, Any], errors: dict[str, str], *, agreement: Agreement | None = None,
               status: int = 200) -> Response:
    datasets = _restricted(ctx)
    choices = _choices(ctx, datasets)
    page = {"values": values, "errors": errors, "choices": choices, "agreement": agreement,
            "action": f"/sharing/agreements/{agreement.slug}/edit" if agreement else "/sharing/agreements/new"}
    data: dict[str, Any] = {"editing": agreement.slug if agreement else None,
                            "fields": {"purposes": list(agreements.PURPOSES), "lawful_basis": list(agreements.ARTICLE_6),
                                       "special_condition": list(agreements.ARTICLE_9),
                                       "identifiability": list(IDENTIFIABILITY), "disclosure_profile": list(PROFILES),
                                       "withheld": list(agreements.WITHHOLDABLE),
                                       "organisations": [o["value"] for o in choices["organisations"]],
                                       "datasets": {d["slug"]: [f["value"] for f in d["fields"]]
                                                    for d in choices["datasets"]}},
                            "api": "/api/sharing/agreements"}
    if errors:
        data["error"] = {"status": status, "code": "validation_failed", "message": "; ".join(errors.values()),
                         "fields": errors}
    return render(ctx, "sharing/agreement_form.html", page, data, status=status)


def _require_drafter(ctx: Context) -> None:
    """403 unless the actor can edit for some organisation (the service checks the controllers exactly)."""
    if not (ctx.actor.is_sysadmin or ctx.actor.editable_organisations()):
        raise Forbidden("Only an editor or admin of an organisation can draft a data-sharing agreement.")


@router.get("/sharing/agreements/new")
def new_agreement_form(ctx: Context = CtxDep) -> Response:
    """The form for a new draft agreement."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    _require_drafter(ctx)
    return _form_page(ctx, {"identifiability": "aggregate", "disclosure_profile": "nhs", "fields": {}}, {})


def _save(ctx: Context, form: FormData, agreement: Agreement | None) -> Response:
    values = _form_values(form)
    body = _service_body(values)
    try:
        if agreement is None:
            saved = agreements.create_agreement(ctx.session, body, by=ctx.actor)
        else:
            saved = agreements.update_agreement(ctx.session, agreement, body, by=ctx.actor)
    except (ValidationFailed, Conflict) as exc:
        if isinstance(exc, Conflict) and "slug" not in exc.fields:
            raise
        ctx.session.rollback()
        if agreement is not None:
            agreement = agreements.get_agreement(ctx.session, agreement.slug)
        errors = _page_errors(exc.fields or {"title": exc.message}, body, _restricted(ctx))
        return _form_page(ctx, values, errors, agreement=agreement, status=exc.status)
    flash(ctx.request, "Draft agreement saved" if agreement is None else "Draft agreement changed",
          "An admin of each controller organisation must now approve it as its named officer.")
    return RedirectResponse(f"/sharing/agreements/{saved.slug}", status_code=303)


@router.post("/sharing/agreements/new")
def create_agreement_form(ctx: Context = CtxDep, form: FormData = FormDep) -> Response:
    """Save a new draft agreement, or show the form again with what to fix."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    _require_drafter(ctx)
    return _save(ctx, form, None)


def _editable(ctx: Context, slug: str) -> Agreement:
    agreement = agreements.get_agreement(ctx.session, slug)
    if not agreements.may_draft(ctx.actor, agreement.party_orgs("controller")):
        raise Forbidden("Only an editor or admin of a controller organisation can change this agreement.")
    if agreement.status != "draft":
        raise Conflict(f"The agreement is {agreement.status}; only a draft can be changed.")
    return agreement


@router.get("/sharing/agreements/{slug}/edit")
def edit_agreement_form(slug: str, ctx: Context = CtxDep) -> Response:
    """The form for changing a draft agreement."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    agreement = _editable(ctx, slug)
    return _form_page(ctx, _values_of(agreement), {}, agreement=agreement)


@router.post("/sharing/agreements/{slug}/edit")
def update_agreement_form(slug: str, ctx: Context = CtxDep, form: FormData = FormDep) -> Response:
    """Save the changed draft, or show the form again with what to fix."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    return _save(ctx, form, _editable(ctx, slug))


# --- approve, suspend, reinstate, end: a confirmation page and its form ------------------------------

ACTIONS = {
    "approve": {"title": "Approve this agreement", "button": "Approve the agreement", "done": "Approval recorded"},
    "suspend": {"title": "Suspend this agreement", "button": "Suspend the agreement", "status": "suspended",
                "done": "The agreement is suspended",
                "warning": "While it is suspended the gateway refuses every query made under it."},
    "reinstate": {"title": "Reinstate this agreement", "button": "Reinstate the agreement", "status": "approved",
                  "done": "The agreement is reinstated", "warning": "Queries under it will be allowed again."},
    "end": {"title": "End this agreement", "button": "End the agreement", "status": "ended",
            "done": "The agreement has ended",
            "warning": "Ending cannot be undone: a new agreement is needed to share this data again."},
}


def _action_page(ctx: Context, agreement: Agreement, action: str, values: dict[str, str],
                 errors: dict[str, str], status: int = 200) -> Response:
    parties = agreements.approvable_for(agreement, ctx.actor) if action == "approve" else []
    page = {"a": agreements.public_record(agreement, include_withheld=True, base_url=ctx.base_url),
            "action": action, "text": ACTIONS[action], "values": values, "errors": errors,
            "parties": [{"value": p.organisation.slug, "text": p.organisation.name, "officer": p.officer_name}
                        for p in parties]}
    data: dict[str, Any] = {"agreement": agreement.slug, "action": action,
                            "organisations": [p["value"] for p in page["parties"]]}
    if errors:
        data["error"] = {"status": status, "code": "validation_failed", "message": "; ".join(errors.values()),
                         "fields": errors}
    return render(ctx, "sharing/agreement_action.html", page, data, status=status)


def _check_action(ctx: Context, agreement: Agreement, action: str) -> None:
    """403/409 before showing a form the actor could not use."""
    if action == "approve":
        if not agreements.approvable_for(agreement, ctx.actor):
            if agreement.status != "draft":
                raise Conflict(f"The agreement is {agreement.status}; only a draft can be approved.")
            raise Forbidden("Only an admin (the named officer) of a controller organisation that has not yet "
                            "approved can approve this agreement.")
        return
    if not agreements.may_set_status(agreement, ctx.actor):
        raise Forbidden("Only an admin of a controller organisation can change this agreement's status.")
    target = ACTIONS[action]["status"]
    if agreement.status not in agreements.TRANSITIONS[target]:
        raise Conflict(f"An agreement that is {agreement.status} cannot become {target}.")


def _known_action(action: str) -> str:
    if action not in ACTIONS:
        from ..core.errors import NotFound

        raise NotFound(f"There is no agreement action '{action}'.")
    return action


@router.get("/sharing/agreements/{slug}/{action}")
def agreement_action_page(slug: str, action: str, ctx: Context = CtxDep) -> Response:
    """The confirmation page for approving, suspending, reinstating or ending an agreement."""
    _known_action(action)
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    agreement = agreements.get_agreement(ctx.session, slug)
    _check_action(ctx, agreement, action)
    return _action_page(ctx, agreement, action, {}, {})


@router.post("/sharing/agreements/{slug}/{action}")
def agreement_action(slug: str, action: str, ctx: Context = CtxDep, form: FormData = FormDep) -> Response:
    """Approve (recording the officer's name and role), suspend, reinstate or end, after confirmation."""
    _known_action(action)
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    agreement = agreements.get_agreement(ctx.session, slug)
    _check_action(ctx, agreement, action)
    values = {"organisation": form_text(form, "organisation", 100), "officer": form_text(form, "officer", 200),
              "reason": form_text(form, "reason", 2000)}
    errors: dict[str, str] = {}
    if action == "approve":
        mine = [p.organisation.slug for p in agreements.approvable_for(agreement, ctx.actor)]
        if len(mine) > 1 and values["organisation"] not in mine:
            errors["organisation"] = "Choose the organisation you approve for."
        if not values["officer"]:
            errors["officer"] = "Enter your name and role, as the public register will show them."
    elif not values["reason"]:
        errors["reason"] = "Say why, for the agreement's public history."
    if errors:
        return _action_page(ctx, agreement, action, values, errors, status=422)
    if action == "approve":
        agreements.approve(ctx.session, agreement, ctx.actor, organisation=values["organisation"] or None,
                           officer_name=values["officer"])
        text = ("Every controller has approved: the agreement is in force."
                if agreement.status == "approved" else "The other controllers must approve it too.")
    else:
        agreements.set_status(ctx.session, agreement, ACTIONS[action]["status"], by=ctx.actor,
                              reason=values["reason"])
        text = "The change and its reason are in the agreement's history."
    flash(ctx.request, ACTIONS[action]["done"], text)
    return RedirectResponse(f"/sharing/agreements/{agreement.slug}", status_code=303)


@router.get("/sharing/agreements/{slug}")
def agreement_page(slug: str, ctx: Context = CtxDep) -> Response:
    """One agreement of the public register."""
    agreement = agreements.get_agreement(ctx.session, slug)
    record = agreements.public_record(agreement, base_url=ctx.base_url)
    budget = None
    if agreement.dp_epsilon_budget is not None:
        try:
            from .disclosure.dp import budget_of

            budget = budget_of(ctx.session, agreement)
        except ImportError:  # pragma: no cover - disclosure control not installed
            budget = None
    record["dp_budget"] = budget
    record["history"] = agreements.history(ctx.session, agreement)
    actor = ctx.actor
    actions = []
    if agreement.status == "draft" and agreements.may_draft(actor, agreement.party_orgs("controller")):
        actions.append(("edit", "Change the draft"))
    for party in agreements.approvable_for(agreement, actor):
        actions.append(("approve", f"Approve as {party.organisation.name}’s named officer"))
        break
    if agreements.may_set_status(agreement, actor) and actor.is_authenticated:
        for action in ("suspend", "reinstate", "end"):
            if agreement.status in agreements.TRANSITIONS[ACTIONS[action]["status"]]:
                actions.append((action, ACTIONS[action]["button"]))
    page = {"a": record, "actions": actions,
            "flash": None if wants_json(ctx.request) else pop_flash(ctx.request)}  # JSON twins leave the message
    return render(ctx, "sharing/agreement.html", page, record)


@router.get("/sharing/uses")
def uses_page(ctx: Context = CtxDep, dataset: str = "", organisation: str = "", borough: str = "") -> Response:
    """How data about Londoners is used: every use, from the access log."""
    data = uses_view.uses(ctx.session, dataset=dataset or None, organisation=organisation or None,
                          borough=borough or None)
    return render(ctx, "sharing/uses.html", data, data)


@router.get("/sharing/uses/log-anchors")
def log_anchors_page(ctx: Context = CtxDep) -> Response:
    """The access log's published heads, so that deleting its newest entries can be detected from outside."""
    data = uses_view.log_anchors(ctx.session)
    return render(ctx, "sharing/log_anchors.html", data, data)
