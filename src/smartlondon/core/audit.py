"""The audit log: an append-only record of every write, shown as each dataset's history."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .accounts import Actor
from .models import AuditEvent

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def record(session: Session, actor: Actor, action: str, object_type: str, object_id: str, *,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
           dataset_id: int | None = None, organisation_id: int | None = None,
           summary: str = "") -> AuditEvent:
    """Append one event to the audit log, in the caller's transaction."""
    event = AuditEvent(
        actor_id=actor.user.id if actor.user else None, actor=actor.label, action=action,
        object_type=object_type, object_id=object_id, dataset_id=dataset_id,
        organisation_id=organisation_id, before=before, after=after, summary=summary,
        request_id=request_id.get(),
    )
    session.add(event)
    return event


def dataset_history(session: Session, dataset_id: int, limit: int = 200) -> list[AuditEvent]:
    """The events about one dataset and its resources, newest first."""
    query = (select(AuditEvent).where(AuditEvent.dataset_id == dataset_id)
             .order_by(AuditEvent.id.desc()).limit(limit))
    return list(session.scalars(query))


def changed_fields(event: AuditEvent) -> list[tuple[str, Any, Any]]:
    """The fields an event changed, as (field, before, after)."""
    before, after = event.before or {}, event.after or {}
    keys = [k for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]
    return [(k, before.get(k), after.get(k)) for k in keys]
