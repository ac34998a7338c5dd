"""The public view, "how data about Londoners is used": every logged use, live from the access log.

For each use: which organisation used which restricted datasets, under which agreement, for what purpose,
with what public benefit and what was released. No personal data: the subject sets stay in the log.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..core.models import Organisation
from .agreements import PURPOSES
from .models import AccessLogEntry, Agreement, RestrictedDataset


def uses(session: Session, *, dataset: str | None = None, organisation: str | None = None,
         borough: str | None = None) -> dict[str, Any]:
    """The uses of restricted data (latest outcome per query), filtered, with the filters' choices."""
    agreements = {a.slug: a for a in session.scalars(select(Agreement))}
    titles = {d.slug: d.title for d in session.scalars(select(RestrictedDataset))}
    orgs = {o.slug: o.name for o in session.scalars(select(Organisation))}
    entries = list(session.scalars(select(AccessLogEntry).order_by(AccessLogEntry.id)))
    by_query: dict[Any, dict[str, Any]] = {}
    for e in entries:
        key = e.query_id if e.query_id is not None else f"entry-{e.id}"
        if key in by_query and e.released.get("after_review"):
            by_query[key]["result"] = _result(e.released)
            continue
        a = agreements.get(e.agreement)
        by_query[key] = {
            "at": e.at.isoformat(), "organisation": e.organisation, "organisation_name": orgs.get(e.organisation, e.organisation),
            "datasets": [{"slug": d, "title": titles.get(d, d)} for d in e.datasets],
            "agreement": e.agreement, "agreement_title": a.title if a else e.agreement,
            "purpose": e.purpose, "purpose_label": PURPOSES.get(e.purpose, e.purpose),
            "benefit": a.public_benefit if a and "public_benefit" not in a.withheld else "",
            "boroughs": list(e.boroughs), "rows_read": e.rows_read, "result": _result(e.released),
        }
    rows = list(reversed(by_query.values()))
    all_datasets = sorted({d["slug"] for r in rows for d in r["datasets"]})
    all_orgs = sorted({r["organisation"] for r in rows})
    all_boroughs = sorted({b for r in rows for b in r["boroughs"]})
    if dataset:
        rows = [r for r in rows if any(d["slug"] == dataset for d in r["datasets"])]
    if organisation:
        rows = [r for r in rows if r["organisation"] == organisation]
    if borough:
        rows = [r for r in rows if not r["boroughs"] or borough in r["boroughs"]]
    return {"uses": rows, "count": len(rows),
            "filters": {"dataset": dataset or "", "organisation": organisation or "", "borough": borough or ""},
            "choices": {"datasets": [{"slug": d, "title": titles.get(d, d)} for d in all_datasets],
                        "organisations": [{"slug": o, "name": orgs.get(o, o)} for o in all_orgs],
                        "boroughs": all_boroughs}}


def _result(released: dict[str, Any]) -> str:
    status = released.get("status", "")
    if status == "released":
        text = f"Released a table of {released.get('rows', 0)} rows"
        if released.get("suppressed"):
            text += f", {released['suppressed']} cells suppressed"
        if released.get("profile"):
            text += f" ({released['profile']} disclosure control)"
        elif released.get("dp"):
            text += " (differential privacy)"
        return text + "."
    if status == "review":
        return "Waiting for two-person review."
    return "Refused by disclosure control." if status == "refused" else status


def log_anchors(session: Session) -> dict[str, Any]:
    """The published heads of the access log (newest first) and the log's current head, for anyone to copy."""
    from . import accesslog

    rows = [accesslog.anchor_json(a) for a in accesslog.anchors(session)]
    last = session.execute(select(AccessLogEntry.id, AccessLogEntry.hash).order_by(AccessLogEntry.id.desc())
                           .limit(1)).first()
    count = session.scalar(select(func.count()).select_from(AccessLogEntry)) or 0
    return {"anchors": rows, "count": len(rows), "every": accesslog.ANCHOR_EVERY,
            "current": {"sequence": int(count), "entry_id": last[0] if last else None,
                        "head_hash": last[1] if last else accesslog.GENESIS}}
