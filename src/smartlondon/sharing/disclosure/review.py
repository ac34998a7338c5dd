"""Two-person review of outputs the rules cannot clear: two independent reviewers approve, one rejection refuses.

A reviewer holds the "reviewer" role in an organisation, and may not review an output they requested. The
same reviewer cannot count twice. On the second approval the proposed output is released: it goes into the
release ledger and the gateway's query is marked released (``sharing.gateway.mark_released``).

Who may review which output (the organisation rule):

* a reviewer sees and decides only outputs of agreements to which one of their reviewer organisations is a
  party (a controller, which shares the data, or a recipient); reviewers of other organisations get 403 and do
  not see the output in their queue; an output whose agreement cannot be found can be reviewed by nobody;
* the releasing approval needs a controller: of the two approvals at least one comes from a reviewer of a
  controller organisation. So reviewers of the requester's (recipient) organisation alone can never release an
  output; a second recipient-side approval is refused (403) and the output keeps waiting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import audit
from ...core.accounts import Actor, require_authenticated
from ...core.db import utcnow
from ...core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from . import ledger
from .models import Review, ReviewDecision
from .types import AggregateResult, Outcome

APPROVALS_NEEDED = 2
DECISIONS = ("approve", "reject")


def open_review(session: Session, *, query_id: str | int, agreement: Any, requested_by_id: int | None,
                profile: str, reasons: list[str], rule_results: dict[str, Any], proposed: dict[str, Any],
                ledger_entry: dict[str, Any] | None) -> Review:
    """Queue an output for two-person review; ``proposed`` is the table that approval would release."""
    review = Review(query_id=str(query_id), agreement_id=getattr(agreement, "id", None),
                    agreement_slug=getattr(agreement, "slug", "") or "", requested_by_id=requested_by_id,
                    status="pending", profile=profile, reasons=list(reasons), rule_results=rule_results,
                    proposed=proposed, ledger_entry=ledger_entry)
    session.add(review)
    session.flush()
    return review


def require_reviewer(actor: Actor) -> None:
    """Raise 401/403 unless the actor is an output reviewer."""
    require_authenticated(actor)
    if not actor.can_review_outputs:
        raise Forbidden("Only output reviewers can see and decide reviews. Ask an organisation admin to give "
                        "you the 'reviewer' role.")


def _reviewer_orgs(actor: Actor) -> set[int]:
    """Ids of the organisations in which the actor holds the reviewer role."""
    return {org for org, role in actor.roles.items() if role == "reviewer"} if actor.user is not None else set()


def agreement_of(session: Session, review: Review) -> Any:
    """The agreement the reviewed output was asked under (by its unique short name, else its id), or None."""
    from ..models import Agreement

    if review.agreement_slug:
        found = session.scalar(select(Agreement).where(Agreement.slug == review.agreement_slug))
        if found is not None:
            return found
    return session.get(Agreement, review.agreement_id) if review.agreement_id is not None else None


def reviewer_roles(session: Session, actor: Actor, review: Review) -> set[str]:
    """The parts ("controller", "recipient") the actor's reviewer organisations play in the review's agreement."""
    agreement = agreement_of(session, review)
    mine = _reviewer_orgs(actor)
    if agreement is None or not mine:
        return set()
    return {p.role for p in agreement.parties if p.organisation_id in mine}


def require_reviewer_of(session: Session, actor: Actor, review: Review) -> set[str]:
    """403 unless the actor reviews for a party of the review's agreement; the parts their organisations play."""
    roles = reviewer_roles(session, actor, review)
    if not roles:
        raise Forbidden(f"Only reviewers of an organisation that is a party to agreement '{review.agreement_slug}' "
                        "can see and decide this output.")
    return roles


def get_review(session: Session, actor: Actor, review_id: int) -> Review:
    """The review with this id (reviewers of a party to its agreement only); 404 if none."""
    require_reviewer(actor)
    review = session.get(Review, review_id)
    if review is None:
        raise NotFound(f"There is no review {review_id}.")
    require_reviewer_of(session, actor, review)
    return review


def list_reviews(session: Session, actor: Actor, status: str | None = "pending", limit: int = 200) -> list[Review]:
    """Reviews in a status (default: pending), oldest first, of agreements the actor's organisations are party to."""
    from ..models import Agreement, AgreementParty

    require_reviewer(actor)
    slugs = (select(Agreement.slug).join(AgreementParty, AgreementParty.agreement_id == Agreement.id)
             .where(AgreementParty.organisation_id.in_(sorted(_reviewer_orgs(actor)))))
    query = select(Review).where(Review.agreement_slug.in_(slugs)).order_by(Review.id).limit(limit)
    if status:
        query = query.where(Review.status == status)
    return list(session.scalars(query))


def _controller_approved(session: Session, review: Review) -> bool:
    """True if an approval so far came from a reviewer who reviews for a controller of the agreement."""
    from ...core.accounts import actor_for
    from ...core.models import User

    for d in review.decisions:
        user = session.get(User, d.reviewer_id) if d.decision == "approve" else None
        if user is not None and "controller" in reviewer_roles(session, actor_for(user, "service"), review):
            return True
    return False


def decide(session: Session, actor: Actor, review_id: int, decision: str, reason: str,
           data_dir: Path | None = None) -> Review:
    """Record one reviewer's approval or rejection; release after two approvals, refuse after a rejection.

    ``data_dir``: where the access log's head file is kept, for an anchor due at the log entry the decision adds.
    """
    require_reviewer(actor)
    # lock the review (PostgreSQL) so that two reviewers deciding at once both count
    review = session.scalar(select(Review).where(Review.id == review_id).with_for_update(of=Review)
                            .execution_options(populate_existing=True))
    if review is None:
        raise NotFound(f"There is no review {review_id}.")
    assert actor.user is not None
    if decision not in DECISIONS:
        raise ValidationFailed(f"Unknown decision '{decision}'.", {"decision": "Choose approve or reject."})
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Give a reason for your decision.",
                               {"reason": "Say why the output is safe to release, or why it is not."})
    roles = require_reviewer_of(session, actor, review)
    if review.requested_by_id is not None and review.requested_by_id == actor.user.id:
        raise Forbidden("You requested this output, so you cannot review it. Two other reviewers must decide.")
    if review.status != "pending":
        raise Conflict(f"Review {review.id} has already been decided: the output was {review.status}.")
    if any(d.reviewer_id == actor.user.id for d in review.decisions):
        raise Conflict("You have already decided this review. A second, different reviewer must decide it.")
    approved_so_far = sum(d.decision == "approve" for d in review.decisions)
    if (decision == "approve" and approved_so_far + 1 >= APPROVALS_NEEDED and "controller" not in roles
            and not _controller_approved(session, review)):
        raise Forbidden("The releasing approval must include a reviewer of a controller organisation (one that "
                        "shares the data): reviewers of the recipients alone cannot release an output.")
    session.add(ReviewDecision(review=review, reviewer_id=actor.user.id, reviewer=actor.user.username,
                               decision=decision, reason=reason))
    session.flush()
    approvals = sum(d.decision == "approve" for d in review.decisions)
    if decision == "reject":
        review.status, review.decided_at = "refused", utcnow()
    elif approvals >= APPROVALS_NEEDED:
        review.status, review.decided_at = "released", utcnow()
        if review.ledger_entry:
            entry = review.ledger_entry
            result = AggregateResult(entry["datasets"], entry["dimensions"], entry["measures"], [],
                                     where=entry["where"], query_kind=entry["query_kind"])
            ledger.record(session, result, entry["cells"], profile=review.profile, query_id=review.query_id,
                          agreement=_AgreementRef(review.agreement_id, review.agreement_slug),
                          requested_by_id=review.requested_by_id)
    audit.record(session, actor, f"sharing.review.{decision}", "sharing_review", str(review.id),
                 after={"decision": decision, "reason": reason, "status": review.status},
                 summary=f"{actor.label} {'approved' if decision == 'approve' else 'rejected'} output review "
                         f"{review.id}")
    if review.status != "pending":
        _tell_gateway(session, review, data_dir)
    return review


class _AgreementRef:
    """The id and slug of an agreement, as the ledger records them."""

    def __init__(self, id: int | None, slug: str) -> None:  # noqa: A002
        self.id, self.slug = id, slug


def outcome_of(review: Review) -> Outcome:
    """What the requester sees for a reviewed output: nothing while pending or refused, the table once released."""
    summary = {**review.rule_results, "review_id": review.id, "review_status": review.status,
               "approvals": sum(d.decision == "approve" for d in review.decisions),
               "approvals_needed": APPROVALS_NEEDED}
    columns = list(review.proposed.get("columns", []))
    if review.status == "released":
        summary["suppressed"] = review.proposed.get("suppressed", [])
        reasons = [f"Released after two-person review ({', '.join(d.reviewer for d in review.decisions)})."]
        return Outcome("released", columns, [list(r) for r in review.proposed.get("rows", [])], summary, reasons)
    if review.status == "refused":
        rejected = [d for d in review.decisions if d.decision == "reject"]
        reasons = [f"A reviewer refused the output: {d.reason}" for d in rejected] or list(review.reasons)
        return Outcome("refused", columns, [], summary, reasons)
    return Outcome("review", columns, [], summary, list(review.reasons))


def _tell_gateway(session: Session, review: Review, data_dir: Path | None) -> None:
    """Pass the decided outcome to the gateway's query record (and so to the access log)."""
    from ..gateway import mark_released

    mark_released(session, review.query_id, outcome_of(review), data_dir)


def review_view(review: Review) -> dict[str, Any]:
    """A review as the JSON API and the pages show it."""
    return {
        "id": review.id, "query": review.query_id, "agreement": review.agreement_slug, "status": review.status,
        "requested_by": review.requested_by.username if review.requested_by else None,
        "profile": review.profile, "created": review.created.isoformat() if review.created else None,
        "decided_at": review.decided_at.isoformat() if review.decided_at else None,
        "reasons": list(review.reasons), "rule_results": review.rule_results, "proposed": review.proposed,
        "approvals": sum(d.decision == "approve" for d in review.decisions),
        "approvals_needed": APPROVALS_NEEDED,
        "decisions": [{"reviewer": d.reviewer, "decision": d.decision, "reason": d.reason,
                       "at": d.at.isoformat() if d.at else None} for d in review.decisions],
    }
