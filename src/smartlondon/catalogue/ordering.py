"""Sort keys of every dataset in memory, so a filtered or text search sorts its matches in numpy (SQLite).

Sorting tens of thousands of matches by date or title in SQL means reading each matching row;
with the keys held as arrays (microseconds since the epoch, and each title's rank) the same order
costs one ``lexsort``. The order is exactly the database's own: newest first then highest id for
``updated`` and ``created``; ``title_sort`` in binary (code point) order then id for ``title``, as
SQLite's default collation sorts. Like the facet columns, the keys live in the facet counter's
state and follow every committed index change (``facets.py``).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

SORTS = ("updated", "created", "title")


@dataclass
class SortKeys:
    """Base arrays indexed by dataset id, plus the keys of datasets changed since the load."""

    modified: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    created: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    title_rank: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    titles: list[tuple[str, int]] = field(default_factory=list)  # base (title_sort, id), in order
    overlay: dict[int, tuple[int, int, str]] = field(default_factory=dict)  # id -> (modified, created, title)


def _micros(values: list[str]) -> np.ndarray:
    return np.array(values, dtype="datetime64[us]").astype(np.int64) if values else np.zeros(0, dtype=np.int64)


def _rows(conn: Any, where: str, params: tuple[Any, ...] = ()) -> list[tuple[int, str, str, str]]:
    raw = conn.connection.dbapi_connection
    return raw.execute(f"SELECT id, modified, created, title_sort FROM dataset WHERE state != 'deleted' {where}",
                       params).fetchall()


def load(conn: Any) -> SortKeys:
    """Read the sort keys of every dataset (``conn``: a SQLAlchemy connection to SQLite)."""
    rows = _rows(conn, "ORDER BY title_sort, id")
    size = max((r[0] for r in rows), default=0) + 1
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    keys = SortKeys(modified=np.zeros(size, dtype=np.int64), created=np.zeros(size, dtype=np.int64),
                    title_rank=np.zeros(size, dtype=np.float64))
    keys.modified[ids] = _micros([r[1] for r in rows])
    keys.created[ids] = _micros([r[2] for r in rows])
    keys.title_rank[ids] = np.arange(len(rows), dtype=np.float64)
    keys.titles = [(r[3], r[0]) for r in rows]
    return keys


def apply_changes(conn: Any, keys: SortKeys, changed: list[int]) -> SortKeys:
    """A copy of ``keys`` with these datasets' keys re-read (copy on write)."""
    if not changed:
        return keys
    new = replace(keys, overlay=dict(keys.overlay))
    ids = sorted(set(changed))
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = _rows(conn, f"AND id IN ({', '.join('?' * len(chunk))})", tuple(chunk))
        for doc in chunk:
            new.overlay.pop(doc, None)
        modified, created = _micros([r[1] for r in rows]), _micros([r[2] for r in rows])
        for n, row in enumerate(rows):
            new.overlay[row[0]] = (int(modified[n]), int(created[n]), row[3])
    return new


def order(keys: SortKeys, ids: np.ndarray, sort: str) -> np.ndarray:
    """These (known, visible) dataset ids in the order of ``sort``."""
    if not len(ids):
        return ids
    inside = np.minimum(ids, len(keys.modified) - 1)
    overlaid = [(pos, keys.overlay[i]) for pos, i in enumerate(ids.tolist()) if i in keys.overlay] if keys.overlay else []
    if sort in ("updated", "created"):
        values = (keys.modified if sort == "updated" else keys.created)[inside].copy()
        for pos, entry in overlaid:
            values[pos] = entry[0] if sort == "updated" else entry[1]
        return ids[np.lexsort((-ids, -values))]
    rank = keys.title_rank[inside].copy()
    if overlaid:
        # A changed dataset sits just before the first base title that sorts after it; several
        # changed ones in the same gap keep their own (title, id) order.
        placed = sorted(((entry[2], int(ids[pos])), pos) for pos, entry in overlaid)
        for n, (key, pos) in enumerate(placed):
            rank[pos] = bisect.bisect_left(keys.titles, key) - 0.5 + n * 1e-9
    return ids[np.lexsort((ids, rank))]
