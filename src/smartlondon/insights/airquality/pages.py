"""The model card page: ``/insights/airquality/model`` (HTML) and ``/insights/airquality/model.json``.

It renders the card stored by ``smartlondon insights airquality card --write``; nothing is recomputed.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...core.web import Context, CtxDep, render
from . import card

router = APIRouter(tags=["pages"], include_in_schema=False)


def card_view(base_url: str) -> dict[str, Any]:
    """The model card as the page and its JSON twin show it."""
    stored = card.load()
    evaluations = stored.get("evaluations", {}) if stored else {}
    site_types = []
    for species, block in evaluations.items():
        for method in ("model", "kriging-sitetype", "kriging", "idw"):
            m = block["methods"].get(method)
            for kind, scores in (m or {}).get("by_site_type", {}).items():
                site_types.append({"species": species, "method": method, "method_label": card.METHOD_LABELS[method],
                                   "site_type": kind, **scores})
    return {"description": card.DESCRIPTION, "generated": stored.get("generated") if stored else None,
            "evaluated": bool(evaluations), "rows": card.rows(stored) if stored else [],
            "site_types": site_types,
            "targets": {s: b.get("rmse_below_kriging_sitetype") for s, b in evaluations.items()},
            "periods": {s: b.get("period") for s, b in evaluations.items()},
            "links": {"self": f"{base_url}/insights/airquality/model",
                      "json": f"{base_url}/insights/airquality/model.json"}}


@router.get("/insights/airquality/model")
def model_card_page(request: Request, ctx: Context = CtxDep) -> Response:
    """The air quality model card: what it does, its inputs, its evaluation, its limits."""
    view = card_view(ctx.base_url)
    return render(ctx, "insights/airquality-model.html", {"card": view, "labels": card.SPECIES_LABELS}, view)
