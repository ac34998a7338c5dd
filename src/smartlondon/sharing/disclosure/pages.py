"""Pages of output review: the queue at ``/sharing/reviews`` and one review with its decision form.

Signed-in reviewers only. Each page has a JSON twin (``.json`` or ``Accept: application/json``). The decision
form works without JavaScript: POST ``/sharing/reviews/<id>`` with ``decision`` (approve or reject) and ``reason``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from ...core.errors import PlatformError
from ...core.pages import flash, form_text, pop_flash
from ...core.web import Context, CtxDep, FormDep, render
from . import review
from .api import status_filter
from .rules import PROFILES

router = APIRouter(tags=["pages"], include_in_schema=False)
STATUS_TAGS = {"pending": ("Waiting for review", "govuk-tag--yellow"), "released": ("Released", "govuk-tag--green"),
               "refused": ("Refused", "govuk-tag--red")}


@router.get("/sharing/reviews")
def reviews_page(status: str | None = None, ctx: Context = CtxDep) -> Response:
    """The review queue."""
    chosen = status_filter(status)
    found = [review.review_view(r) for r in review.list_reviews(ctx.session, ctx.actor, chosen)]
    page = {"reviews": found, "status": chosen or "all", "tags": STATUS_TAGS,
            "statuses": [("pending", "Waiting"), ("released", "Released"), ("refused", "Refused"), ("all", "All")]}
    return render(ctx, "sharing/reviews.html", page, data={"status": chosen or "all", "reviews": found})


def _review_page(ctx: Context, review_id: int, errors: dict[str, str] | None = None,
                 values: dict[str, str] | None = None, status: int = 200) -> Response:
    found = review.get_review(ctx.session, ctx.actor, review_id)
    view = review.review_view(found)
    user = ctx.actor.user
    can_decide = (found.status == "pending" and user is not None and found.requested_by_id != user.id
                  and all(d.reviewer_id != user.id for d in found.decisions))
    page = {"review": view, "tags": STATUS_TAGS, "profile": PROFILES.get(found.profile),
            "can_decide": can_decide, "errors": errors or {}, "values": values or {},
            "is_requester": user is not None and found.requested_by_id == user.id,
            "flash": pop_flash(ctx.request),
            "suppressed": {(m[0], m[1]) for m in view["proposed"].get("suppressed", [])}}
    return render(ctx, "sharing/review.html", page, data=view, status=status)


@router.get("/sharing/reviews/{review_id}")
def review_page(review_id: int, ctx: Context = CtxDep) -> Response:
    """One review: the proposed output, the rule results, the decisions and the decision form."""
    return _review_page(ctx, review_id)


@router.post("/sharing/reviews/{review_id}")
def decide_page(review_id: int, ctx: Context = CtxDep, form: FormData = FormDep) -> Response:
    """Record the signed-in reviewer's decision from the form."""
    decision, reason = form_text(form, "decision", 20), form_text(form, "reason", 5000)
    errors: dict[str, Any] = {}
    if decision not in review.DECISIONS:
        errors["decision"] = "Choose whether to approve or reject the output."
    if not reason:
        errors["reason"] = "Say why the output is safe to release, or why it is not."
    if errors:
        return _review_page(ctx, review_id, errors, {"decision": decision, "reason": reason}, status=422)
    try:
        decided = review.decide(ctx.session, ctx.actor, review_id, decision, reason, ctx.settings.data_dir)
    except PlatformError as exc:
        if exc.status in (401, 404):
            raise
        return _review_page(ctx, review_id, {"decision": exc.message}, {"decision": decision, "reason": reason},
                            status=exc.status)
    titles = {"pending": "Your approval is recorded: one more reviewer must approve",
              "released": "The output is released", "refused": "The output is refused"}
    flash(ctx.request, titles[decided.status])
    return RedirectResponse(f"/sharing/reviews/{review_id}", status_code=303)
