"""What the output review tests share: a gateway query queued for two-person review."""

from __future__ import annotations

from smartlondon.core import accounts
from smartlondon.core.db import Database
from smartlondon.sharing import disclosure
from smartlondon.sharing.disclosure.types import AggregateResult
from smartlondon.sharing.models import SharingQuery

ROWS = [{"ward": "Gospel Oak", "age": 81, "lives_alone": True},
        {"ward": "Kentish Town", "age": 77, "lives_alone": False}]


class AgreementRef:
    """The agreement fields disclosure control reads (the gateway's tests use whole agreements)."""

    id, slug = 1, "home-fire-safety"


def queue(db: Database, requester: str) -> tuple[int, int]:
    """A gateway query whose SQL output declares no count columns, so it waits for review: (query id, review id)."""
    with db.session() as session:
        user = accounts.get_user(session, requester)
        record = SharingQuery(user_id=user.id, purpose="dpv:PublicBenefit", body={"query": {"sql": "SELECT ..."}},
                              status="review")
        session.add(record)
        session.flush()
        result = AggregateResult(["fire-visits"], ["ward", "age", "lives_alone"], [], ROWS, query_kind="sql")
        outcome = disclosure.clear(session, result, agreement=AgreementRef(), profile="nhs", query_id=record.id,
                                   requested_by=user)
        assert outcome.status == "review"
        record.disclosure = outcome.summary
        return record.id, outcome.summary["review_id"]
