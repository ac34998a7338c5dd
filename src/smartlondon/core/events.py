"""In-process change events: how one part of the platform reacts to another's writes.

A service emits an event inside its transaction (``emit``). Subscribers are of two kinds:

- ``during`` subscribers run at once, in the same session and transaction, so what they write
  (a derived score, a cached count) commits or rolls back with the change itself;
- ``after_commit`` subscribers run once the transaction has committed, with the engine, for work
  that must see the committed data or is too slow to hold a transaction open (loading a file into
  the analytics store). If the transaction rolls back they never run.

Subscribers register at import time with ``@subscribe("dataset.changed")``. Events in use:
``dataset.changed`` and ``dataset.deleted`` (``dataset_id``), ``resource.changed`` and
``resource.deleted`` (``resource_id``, ``dataset_id``), ``resource.loaded`` (after commit, once the
analytics store has loaded a resource: ``resource_id``, ``dataset_id``).

Derived work that only needs doing once per transaction (re-indexing a dataset, rescoring it) is
*deferred*: ``defer(session, "search.index", dataset_id)`` collects keys, and the batch handler
registered with ``@deferred("search.index")`` runs once, with every key, just before the
transaction commits (or earlier, when a reader in the same transaction calls ``run_deferred``). A
dataset created with ten resources is then indexed and scored once, not eleven times.
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
_DEFERRED = "smartlondon.events.deferred"
_batch: dict[str, Callable[[Session, list[Any]], None]] = {}


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


def deferred(name: str) -> Callable[[Callable[[Session, list[Any]], None]], Callable[[Session, list[Any]], None]]:
    """Register the decorated function as the batch handler of deferred work ``name``."""
    def register(fn: Callable[[Session, list[Any]], None]) -> Callable[[Session, list[Any]], None]:
        _batch[name] = fn
        return fn
    return register


def defer(session: Session, name: str, key: Any) -> None:
    """Ask for ``name``'s batch handler to run for ``key`` once, before this transaction commits.

    Handlers run in the order their work was first deferred; keys are kept in order, without repeats.
    A handler must tolerate keys whose rows a rolled-back savepoint removed again.
    """
    session.info.setdefault(_DEFERRED, {}).setdefault(name, {})[key] = None


def run_deferred(session: Session) -> None:
    """Run the deferred work of this transaction now (readers call this to see their own writes)."""
    pending: dict[str, dict[Any, None]] | None = session.info.get(_DEFERRED)
    while pending:
        name = next(iter(pending))
        keys = list(pending.pop(name))
        _batch[name](session, keys)  # it may defer more work; the loop picks that up


@event.listens_for(Session, "before_commit")
def _run_deferred_before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return
    run_deferred(session)


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
    session.info.pop(_DEFERRED, None)
