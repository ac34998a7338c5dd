"""The scorecard's inputs from other parts of the catalogue, imported only when needed.

Table validation and GSS columns come from ``smartlondon.catalogue.tabular``, DCAT-AP validation
from ``smartlondon.catalogue.dcat``. An installation (or a version) without them is normal: each
function then returns None, and the checks it feeds are "not checked", never failed. A failure
inside them is logged and treated the same way, so it can never undo the change being scored;
on PostgreSQL it runs in a savepoint, so a failed statement does not abort the transaction.
"""

from __future__ import annotations

import importlib
import logging
from functools import lru_cache
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


@lru_cache(maxsize=None)
def _provider(module: str, name: str) -> Callable[..., Any] | None:
    try:
        found = getattr(importlib.import_module(f"smartlondon.catalogue.{module}"), name, None)
    except ImportError:
        return None
    return found if callable(found) else None


@contextmanager
def _guarded(session: Session) -> Iterator[None]:
    """Run another part's read in a savepoint on PostgreSQL (SQLite keeps the transaction after an error)."""
    if session.get_bind().dialect.name == "postgresql":
        with session.begin_nested():
            yield
    else:
        yield


def schema_results(session: Session, resource_ids: list[int]) -> dict[int, dict[str, Any]] | None:
    """{resource id: {status, valid, errors, rows}} from the tabular store, or None if unavailable."""
    fn = _provider("tabular", "validation_summary")
    if fn is None:
        return None
    if not resource_ids:
        return {}
    try:
        with _guarded(session):
            found = fn(session, resource_ids) or {}
    except Exception:  # another part's failure must not undo the change being scored
        log.exception("table validation results could not be read")
        return None
    wanted = {str(i): i for i in resource_ids}
    return {wanted[str(k)]: dict(v) for k, v in found.items() if str(k) in wanted and isinstance(v, dict)}


def gss_columns(session: Session, resource_ids: list[int]) -> dict[int, list[str]] | None:
    """{resource id: names of columns holding GSS codes}, or None if unavailable."""
    fn = _provider("tabular", "gss_columns")
    if fn is None:
        return None
    out: dict[int, list[str]] = {}
    try:
        with _guarded(session):
            for rid in resource_ids:
                out[rid] = [str(c) for c in (fn(session, rid) or [])]
    except Exception:
        log.exception("GSS columns could not be read")
        return None
    return out


def dcat_available() -> bool:
    """True if DCAT-AP validation is installed."""
    return _provider("dcat", "validate_dataset") is not None


def validate_dcat(session: Session, dataset_id: int) -> list[str] | None:
    """The DCAT-AP problems of a dataset's record (empty if valid), or None if it cannot be validated."""
    fn = _provider("dcat", "validate_dataset")
    if fn is None:
        return None
    try:
        with _guarded(session):
            return [str(p) for p in (fn(session, dataset_id) or [])]
    except Exception:
        log.exception("DCAT-AP validation of dataset %s failed", dataset_id)
        return None
