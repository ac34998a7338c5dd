"""In-process change events: how one part of the platform reacts to another's writes.

A service emits an event inside its transaction (``emit``). Subscribers are of two kinds:

- ``during`` subscribers run at once, in the same session and transaction, so what they write
  (a derived score, a cached count) commits or rolls back with the change itself;
- ``after_commit`` subscribers run once the transaction has committed, with the engine, for work
  that must see the committed data or is too slow to hold a transaction open (loading a file into
  the analytics store). If the transaction rolls back they never run.

Subscribers register at import time with ``@subscribe("dataset.changed")``. Events in use:
``dataset.changed`` and ``dataset.deleted`` (``dataset_id``), ``resource.changed`` and
``resource.deleted`` (``resource_id``, ``dataset_id``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

DuringHandler = Callable[..., None]
AfterHandler = Callable[..., None]

_during: dict[str, list[DuringHandler]] = defaultdict(list)
_after: dict[str, list[AfterHandler]] = defaultdict(list)
_PENDING = "smartlondon.events.pending"


def subscribe(name: str, *, after_commit: bool = False) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register the decorated function for event ``name`` (in the transaction, or after commit)."""
    def register(fn: Callable[..., None]) -> Callable[..., None]:
        handlers = _after[name] if after_commit else _during[name]
        if fn not in handlers:
            handlers.append(fn)
        return fn
    return register


def unsubscribe(name: str, fn: Callable[..., None]) -> None:
    """Remove a subscriber (tests use this)."""
    for table in (_during, _after):
        if fn in table[name]:
            table[name].remove(fn)


def emit(session: Session, name: str, **payload: Any) -> None:
    """Announce a change: run ``during`` subscribers now and queue ``after_commit`` ones."""
    for fn in list(_during.get(name, ())):
        fn(session, **payload)
    if _after.get(name):
        session.info.setdefault(_PENDING, []).append((name, payload))


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a SAVEPOINT was released: the transaction has not committed yet
        return
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    engine = _engine_of(session)
    for name, payload in pending:
        for fn in list(_after.get(name, ())):
            try:
                fn(engine, **payload)
            except Exception:  # one failing reaction must not undo or hide the committed change
                log.exception("after-commit handler %s for %s failed", getattr(fn, "__name__", fn), name)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    if session.in_nested_transaction():  # only a SAVEPOINT was rolled back: the transaction goes on
        return
    session.info.pop(_PENDING, None)
