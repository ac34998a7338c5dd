"""LODA's public pages: the register of agreements (HTML, JSON, CSV) and the record of uses.

* ``/sharing/agreements`` (+ ``.json``, ``.csv``): every agreement, sensitive fields withheld.
* ``/sharing/agreements/{slug}`` (+ ``.json``): one agreement as GOV.UK summary lists.
* ``/sharing/uses`` (+ ``.json``): who used which restricted data, why, with what benefit and result.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from ..core.web import Context, CtxDep, render
from . import agreements, uses as uses_view

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
    return render(ctx, "sharing/agreement.html", {"a": record}, record)


@router.get("/sharing/uses")
def uses_page(ctx: Context = CtxDep, dataset: str = "", organisation: str = "", borough: str = "") -> Response:
    """How data about Londoners is used: every use, from the access log."""
    data = uses_view.uses(ctx.session, dataset=dataset or None, organisation=organisation or None,
                          borough=borough or None)
    return render(ctx, "sharing/uses.html", data, data)
