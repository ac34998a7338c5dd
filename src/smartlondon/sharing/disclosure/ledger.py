"""The release ledger: every released aggregate with its true cell counts, and the differencing check.

Differencing: two releases of the same datasets and dimensions whose filters differ by exactly one group
(one value added to or removed from one IN list, one condition added or dropped, or one bound of a range
moved) let anyone subtract one table from the other and read the small group left over.
Two releases with the same filter over data that changed in between (people added, erased or opted out) are
not compared: rounding is what protects them. For each cell of a
new aggregate we compare its TRUE people count with the earlier release's; a difference of 1 to
threshold - 1 people in a cell the earlier release showed is a hit, and the new cell is suppressed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Release
from .rules import Profile, Table
from .types import AggregateResult


def canonical_where(where: dict[str, Any] | None) -> dict[str, Any]:
    """The filter in one canonical form: IN lists sorted and de-duplicated, ranges as {op: value}."""
    canon: dict[str, Any] = {}
    for name, condition in sorted((where or {}).items()):
        if isinstance(condition, dict):
            canon[name] = {op: condition[op] for op in sorted(condition)}
        elif isinstance(condition, (list, tuple, set)):
            canon[name] = sorted({json.dumps(v, sort_keys=True) for v in condition})
            canon[name] = [json.loads(v) for v in canon[name]]
        else:
            canon[name] = [condition]
    return canon


def _atoms(where: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """One entry per elementary condition: (field, "in") -> set of values, (field, op) -> bound."""
    atoms: dict[tuple[str, str], Any] = {}
    for name, condition in where.items():
        if isinstance(condition, dict):
            for op, value in condition.items():
                atoms[(name, op)] = value
        else:
            atoms[(name, "in")] = frozenset(json.dumps(v, sort_keys=True) for v in condition)
    return atoms


def differ_by_one_group(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True if the two canonical filters select populations that differ by exactly one group."""
    left, right = _atoms(a), _atoms(b)
    if left == right:
        return False
    added, dropped = set(right) - set(left), set(left) - set(right)
    changed = [k for k in set(left) & set(right) if left[k] != right[k]]
    if len(added) + len(dropped) == 1 and not changed:
        return True  # one condition added or dropped
    if added or dropped or len(changed) != 1:
        return False
    (key,) = changed
    if key[1] == "in":
        return len(left[key] ^ right[key]) == 1  # one value added to or removed from an IN list
    return True  # one bound of a range moved: the slice between the two bounds is the group


#: ``json.dumps(x, default=str)`` without building an encoder per call (a table has hundreds of cells)
_JSON = json.JSONEncoder(default=str)


def _key_of(dimensions: list[str], key: tuple[Any, ...] | list[Any]) -> str:
    """A cell's identity independent of dimension order."""
    return _JSON.encode(sorted(zip(dimensions, key)))


def ledger_cells(table: Table) -> list[dict[str, Any]]:
    """The private record of a released table: each cell's key, true counts and whether it was shown."""
    return [{"key": list(c.key), "n": c.n, "count": c.count, "shown": not c.suppressed, "margin": c.margin}
            for c in table.cells.values()]


def differencing_hits(session: Session, result: AggregateResult, table: Table,
                      profile: Profile) -> list[dict[str, Any]]:
    """Earlier releases this aggregate could be differenced against, with the cells each would reveal."""
    where = canonical_where(result.where)
    hits: list[dict[str, Any]] = []
    candidates = session.execute(select(Release.id, Release.filters).where(
        Release.dataset_key == dataset_key(result.datasets),
        Release.dimension_key == dimension_key(result.dimensions)).order_by(Release.id)).all()
    verdicts: dict[str, bool] = {}  # each distinct filter is compared once
    matching = []
    for rid, filters in candidates:
        text = json.dumps(filters, sort_keys=True)
        if text not in verdicts:
            verdicts[text] = differ_by_one_group(where, filters)
        if verdicts[text]:
            matching.append(rid)
    for release in (session.get(Release, rid) for rid in matching):
        assert release is not None
        old = {_key_of(release.dimensions, cell["key"]): cell for cell in release.cells}
        revealed: list[tuple[Any, ...]] = []
        for cell in table.cells.values():
            before = old.get(_key_of(table.dimensions, cell.key))
            if before is not None and not before["shown"]:
                continue
            old_n = before["n"] if before else 0
            old_count = before.get("count") if before else 0
            gaps = [abs(cell.n - old_n)]
            if cell.count is not None and old_count is not None:
                gaps.append(abs(cell.count - old_count))
            if any(0 < gap < profile.threshold for gap in gaps) and (before is not None or cell.n > 0):
                revealed.append(cell.key)
        if revealed:
            hits.append({"release": release.id, "query": release.query_id, "cells": revealed})
    return hits


def dataset_key(datasets: list[str]) -> str:
    """The ledger's lookup key for a set of datasets."""
    return ",".join(sorted(set(datasets)))


def dimension_key(dimensions: list[str]) -> str:
    """The ledger's lookup key for a set of dimensions (order does not matter)."""
    return ",".join(sorted(dimensions))


def record(session: Session, result: AggregateResult, cells: list[dict[str, Any]], *, profile: str,
           query_id: str | int, agreement: Any = None, requested_by_id: int | None = None) -> Release:
    """Add a released aggregate to the ledger (once: the same table released again adds nothing to compare)."""
    datasets, dimensions = dataset_key(result.datasets), dimension_key(result.dimensions)
    filters = canonical_where(result.where)
    # the cells as they come (keys hold the margin marker, not its text): each key is encoded as JSON, so the
    # digest is the same as over the stored form, which is only made for a release not seen before
    by_key = sorted((_key_of(result.dimensions, c["key"]), c["n"], c["count"], c["shown"]) for c in cells)
    digest = hashlib.sha256(json.dumps([datasets, dimensions, filters, by_key], sort_keys=True,
                                       default=str).encode()).hexdigest()
    same = session.scalar(select(Release).where(Release.digest == digest, Release.dataset_key == datasets,
                                                Release.dimension_key == dimensions).limit(1))
    if same is not None:
        return same
    stored = json.loads(_JSON.encode(cells))
    release = Release(
        query_id=str(query_id), agreement_id=getattr(agreement, "id", None),
        agreement_slug=getattr(agreement, "slug", "") or "", requested_by_id=requested_by_id,
        dataset_key=datasets, dimension_key=dimensions, datasets=list(result.datasets),
        dimensions=list(result.dimensions), measures=list(result.measures), filters=filters,
        query_kind=result.query_kind, profile=profile, cells=stored, digest=digest)
    session.add(release)
    session.flush()
    return release
