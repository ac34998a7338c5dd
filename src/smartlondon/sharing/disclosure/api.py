"""JSON API of disclosure control: output reviews (two-person approval) and privacy budgets.

* ``GET /api/sharing/reviews`` (``?status=pending|released|refused|all``), ``GET /api/sharing/reviews/<id>``:
  reviewers only.
* ``POST /api/sharing/reviews/<id>/approve`` and ``/reject`` with ``{"reason": "..."}``: a reviewer's decision.
* ``GET /api/sharing/privacy-budgets/<agreement>``: the agreement's differential privacy budget and releases
  (public, like the agreement itself).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ...core.errors import ValidationFailed
from ...core.web import Context, CtxDep, json_body
from . import dp, review

router = APIRouter(prefix="/api/sharing", tags=["sharing: disclosure control"])
STATUSES = ("pending", "released", "refused", "all")


def status_filter(status: str | None) -> str | None:
    """The review status asked for (None: every status); 422 if unknown."""
    status = status or "pending"
    if status not in STATUSES:
        raise ValidationFailed(f"Unknown review status '{status}'.", {"status": f"Choose one of {', '.join(STATUSES)}."})
    return None if status == "all" else status


@router.get("/reviews", summary="Output reviews (reviewers only)")
def list_reviews(status: str | None = None, ctx: Context = CtxDep) -> dict[str, Any]:
    """Reviews in a status (default: pending)."""
    reviews = review.list_reviews(ctx.session, ctx.actor, status_filter(status))
    return {"reviews": [review.review_view(r) for r in reviews]}


@router.get("/reviews/{review_id}", summary="One output review (reviewers only)")
def get_review(review_id: int, ctx: Context = CtxDep) -> dict[str, Any]:
    """The review: the proposed output, the rule results and the decisions so far."""
    return review.review_view(review.get_review(ctx.session, ctx.actor, review_id))


async def _reason(request: Request) -> str:
    body = await json_body(request)
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed("Give a reason for your decision.",
                               {"reason": "Send {\"reason\": \"...\"} saying why the output is (or is not) safe."})
    return reason


@router.post("/reviews/{review_id}/approve", summary="Approve an output (a second, different reviewer releases it)")
async def approve(review_id: int, request: Request, ctx: Context = CtxDep) -> dict[str, Any]:
    """Record an approval; the second approval by another reviewer releases the output."""
    reason = await _reason(request)
    decided = review.decide(ctx.session, ctx.actor, review_id, "approve", reason, ctx.settings.data_dir)
    return review.review_view(decided)


@router.post("/reviews/{review_id}/reject", summary="Reject an output (one rejection refuses it)")
async def reject(review_id: int, request: Request, ctx: Context = CtxDep) -> dict[str, Any]:
    """Record a rejection: the output is refused."""
    reason = await _reason(request)
    decided = review.decide(ctx.session, ctx.actor, review_id, "reject", reason, ctx.settings.data_dir)
    return review.review_view(decided)


@router.get("/privacy-budgets/{agreement}", summary="An agreement's differential privacy budget")
def privacy_budget(agreement: str, ctx: Context = CtxDep) -> dict[str, Any]:
    """Total, spent and remaining epsilon, and the releases that spent it."""
    from ..agreements import get_agreement

    found = get_agreement(ctx.session, agreement)
    return {"agreement": found.slug, **dp.budget_of(ctx.session, found),
            "releases": [{"query": r.query_id, "epsilon": r.epsilon, "measures": r.measures,
                          "mechanism": r.mechanism, "at": r.created.isoformat()}
                         for r in dp.releases_of(ctx.session, found)]}
