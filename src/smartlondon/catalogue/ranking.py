"""FTS5's own BM25 ranking, computed from an in-memory copy of the index's postings (SQLite).

A broad search asks SQLite to score every matching row with ``bm25()``, which walks each row's
token instances: tens of milliseconds when a word matches tens of thousands of datasets. The
formula itself is cheap, so each process keeps every token instance of the index (dataset,
column, offset, packed in one integer, grouped by term) and computes exactly what FTS5's
``bm25(dataset_fts, 10, 5, 1)`` computes, with numpy, for words, prefixes, phrases, OR and NOT.

The copy is derived, never a second source of truth. It is read from the FTS5 index itself
(``fts5vocab``), so the tokens are the index's own; it lives in the facet counter's state, which
follows every committed index change through ``search_change`` (``facets.py``); changed datasets
are re-tokenised by an in-memory FTS5 table with the same tokenizer. A search in a transaction
that has itself written to the index goes to FTS5, which sees the uncommitted rows.
"""

from __future__ import annotations

import bisect
import math
import sqlite3
import threading
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

COLUMNS = ("title", "keywords", "description")
WEIGHTS = (10.0, 5.0, 1.0)  # the weights of bm25(dataset_fts, ...) in search.py, column by column
TOKENIZER = "porter unicode61 remove_diacritics 2"  # as in migration 0001
K1, B = 1.2, 0.75  # FTS5's bm25 constants
# One token instance = dataset << 24 | column << 22 | offset: sorted codes are in index order, and
# code + 1 is the next token of the same column (phrases).
DOC_SHIFT, COL_SHIFT = 24, 22
OFFSET_MASK = (1 << COL_SHIFT) - 1
_COLUMN_WEIGHT = np.array(WEIGHTS + (0.0,))


def _encode(doc: int, col: int, offset: int) -> int:
    return (doc << DOC_SHIFT) | (col << COL_SHIFT) | min(offset, OFFSET_MASK)


@dataclass
class TextState:
    """Token instances of every indexed term: base arrays from the last load plus an overlay of changes."""

    terms: list[str] = field(default_factory=list)  # in the index's (binary) order
    term_ids: dict[str, int] = field(default_factory=dict)
    ptr: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    codes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    doclen: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    indexed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # rows of the base load
    stale: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    overlay: dict[int, tuple[dict[str, np.ndarray], float]] = field(default_factory=dict)  # doc -> (codes by term, length)
    nrow: int = 0
    tokens: float = 0.0


class _Tokenizer:
    """The index's tokenizer, run by an in-memory FTS5 table (one per process)."""

    def __init__(self) -> None:
        self._conn = sqlite3.connect(":memory:", check_same_thread=False)
        self._conn.execute(f"CREATE VIRTUAL TABLE t USING fts5({', '.join(COLUMNS)}, tokenize = '{TOKENIZER}')")
        self._conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
        self._lock = threading.Lock()
        self._queries: dict[str, list[str]] = {}

    def documents(self, rows: list[tuple[int, str, str, str]]) -> dict[int, tuple[dict[str, np.ndarray], float]]:
        """Each document's token instances by term, and its length, as the index records them."""
        found: dict[int, dict[str, list[int]]] = {doc: {} for doc, *_ in rows}
        lengths: dict[int, int] = dict.fromkeys(found, 0)
        with self._lock:
            self._conn.executemany("INSERT INTO t(rowid, title, keywords, description) VALUES (?, ?, ?, ?)", rows)
            for term, doc, col, offset in self._conn.execute("SELECT term, doc, col, offset FROM v"):
                found[doc].setdefault(term, []).append(_encode(doc, COLUMNS.index(col), offset))
                lengths[doc] += 1
            self._conn.execute("DELETE FROM t")
        return {doc: ({t: np.array(sorted(c), dtype=np.int64) for t, c in terms.items()}, float(lengths[doc]))
                for doc, terms in found.items()}

    def query(self, text: str) -> list[str]:
        """The tokens the index would look up for this query text."""
        tokens = self._queries.get(text)
        if tokens is None:
            with self._lock:
                self._conn.execute("INSERT INTO t(rowid, title, keywords, description) VALUES (1, ?, '', '')", (text,))
                tokens = [r[0] for r in self._conn.execute("SELECT term FROM v ORDER BY offset")]
                self._conn.execute("DELETE FROM t")
            if len(self._queries) > 10000:
                self._queries.clear()
            self._queries[text] = tokens
        return tokens


_tokenizer: _Tokenizer | None = None
_tokenizer_lock = threading.Lock()


def tokenizer() -> _Tokenizer:
    """The process's tokenizer."""
    global _tokenizer
    with _tokenizer_lock:
        if _tokenizer is None:
            _tokenizer = _Tokenizer()
        return _tokenizer


def load(conn: Any) -> TextState:
    """Read every token instance from the FTS5 index (``conn``: a SQLAlchemy connection to SQLite)."""
    raw = conn.connection.dbapi_connection
    raw.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.dataset_fts_instances "
                "USING fts5vocab(main, dataset_fts, instance)")
    column = " ".join(f"WHEN '{c}' THEN {i << COL_SHIFT}" for i, c in enumerate(COLUMNS))
    # One row per term, its instances packed as text: reading 100,000 datasets' tokens one row each
    # would cost seconds of Python objects; this costs one string per term.
    rows = raw.execute(
        f"SELECT term, group_concat((doc << {DOC_SHIFT}) | (CASE col {column} END) | min(\"offset\", {OFFSET_MASK}))"
        " FROM temp.dataset_fts_instances GROUP BY term").fetchall()
    max_doc = raw.execute("SELECT coalesce(max(rowid), 0) FROM dataset_fts").fetchone()[0]
    state = TextState(nrow=raw.execute("SELECT count(*) FROM dataset_fts").fetchone()[0])
    ptr = [0]
    parts: list[np.ndarray] = []
    for term, packed in rows:
        codes = np.fromstring(packed, dtype=np.int64, sep=",")  # text mode: supported and fast
        codes.sort()
        parts.append(codes)
        ptr.append(ptr[-1] + len(codes))
        state.term_ids[term] = len(state.terms)
        state.terms.append(term)
    if sorted(state.terms) != state.terms:  # bisect for prefixes needs code-point order
        order = sorted(range(len(state.terms)), key=state.terms.__getitem__)
        parts = [parts[i] for i in order]
        state.terms = [state.terms[i] for i in order]
        state.term_ids = {t: i for i, t in enumerate(state.terms)}
        ptr = [0, *np.cumsum([len(p) for p in parts]).tolist()]
    state.ptr = np.array(ptr, dtype=np.int64)
    state.codes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    state.doclen = np.bincount(state.codes >> DOC_SHIFT, minlength=max_doc + 1).astype(np.float64)
    state.tokens = float(len(state.codes))
    state.stale = np.zeros(max_doc + 1, dtype=bool)
    state.indexed = np.zeros(max_doc + 1, dtype=bool)
    state.indexed[[r[0] for r in raw.execute("SELECT rowid FROM dataset_fts")]] = True
    return state


def apply_changes(conn: Any, state: TextState, changed: list[int]) -> TextState:
    """A copy of ``state`` with these datasets re-read from the index (copy on write)."""
    if not changed:
        return state
    raw = conn.connection.dbapi_connection
    ids = sorted(set(changed))
    rows: list[tuple[int, str, str, str]] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows += raw.execute(f"SELECT rowid, title, keywords, description FROM dataset_fts "
                            f"WHERE rowid IN ({', '.join('?' * len(chunk))})", chunk).fetchall()
    fresh = tokenizer().documents(rows)
    new = replace(state, overlay=dict(state.overlay), stale=state.stale.copy())
    for doc in ids:
        if doc in new.overlay:  # take out what the copy counted for this dataset so far
            new.nrow -= 1
            new.tokens -= new.overlay.pop(doc)[1]
        elif doc < len(new.stale) and not new.stale[doc] and new.indexed[doc]:
            new.nrow -= 1
            new.tokens -= new.doclen[doc]
        if doc < len(new.stale):
            new.stale[doc] = True
        if doc in fresh:
            new.overlay[doc] = fresh[doc]
            new.nrow += 1
            new.tokens += fresh[doc][1]
    return new


def _instances(state: TextState, token: str, prefix: bool) -> np.ndarray:
    """The instance codes of a token, or of every term starting with it."""
    if prefix:
        lo = bisect.bisect_left(state.terms, token)
        hi = bisect.bisect_left(state.terms, token + "\U0010ffff")
    else:
        term_id = state.term_ids.get(token)
        lo, hi = (term_id, term_id + 1) if term_id is not None else (0, 0)
    codes = state.codes[int(state.ptr[lo]):int(state.ptr[hi])] if hi > lo else state.codes[:0]
    if len(codes) and state.stale.any():
        codes = codes[~state.stale[codes >> DOC_SHIFT]]
    if state.overlay:
        extra = [c for terms, _ in state.overlay.values() for t, c in terms.items()
                 if (t.startswith(token) if prefix else t == token)]
        if extra:
            codes = np.sort(np.concatenate([codes, *extra]))
    elif prefix and hi - lo > 1:
        codes = np.sort(codes)
    return codes


def _phrase_instances(state: TextState, tokens: list[str], prefix: bool) -> np.ndarray:
    """Where the tokens occur one after another in one column: the code of each first token."""
    starts = _instances(state, tokens[0], prefix and len(tokens) == 1)
    for step, token in enumerate(tokens[1:], start=1):
        if not len(starts):
            break
        following = _instances(state, token, prefix and step == len(tokens) - 1) - step
        if not len(following):
            return following
        at = np.minimum(np.searchsorted(following, starts), len(following) - 1)
        starts = starts[following[at] == starts]  # both sorted: a binary search per start
    return starts


def score(state: TextState, clauses: list[list[Any]], excluded: list[Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(ids ascending, FTS5 bm25 scores) of the matches, or None if FTS5 must answer."""
    tok = tokenizer()
    groups: list[list[tuple[list[str], bool]]] = []
    for clause in clauses:
        group = []
        for term in clause:
            tokens = tok.query(term.text)
            if not tokens:
                return None
            group.append((tokens, bool(term.prefix)))
        groups.append(group)
    banned = []
    for term in excluded:
        tokens = tok.query(term.text)
        if not tokens:
            return None
        banned.append((tokens, bool(term.prefix)))
    if state.nrow <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    size = max(len(state.doclen), max(state.overlay, default=-1) + 1)
    mask = np.ones(size, dtype=bool)
    phrases: list[tuple[float, np.ndarray]] = []
    for group in groups:
        either = np.zeros(size, dtype=bool)
        for tokens, prefix in group:
            starts = _phrase_instances(state, tokens, prefix)
            freq = np.bincount(starts >> DOC_SHIFT, weights=_COLUMN_WEIGHT[(starts >> COL_SHIFT) & 3],
                               minlength=size)
            hits = int(np.count_nonzero(freq))
            idf = math.log((state.nrow - hits + 0.5) / (hits + 0.5))
            phrases.append((idf if idf > 0 else 1e-6, freq))
            either |= freq > 0
        mask &= either
    for tokens, prefix in banned:
        mask[_phrase_instances(state, tokens, prefix) >> DOC_SHIFT] = False
    ids = np.flatnonzero(mask)
    if not len(ids):
        return ids.astype(np.int64), np.zeros(0)
    length = np.zeros(len(ids))
    inside = ids < len(state.doclen)
    length[inside] = np.where(state.stale[ids[inside]], 0.0, state.doclen[ids[inside]])
    for doc, (_, doc_length) in state.overlay.items():
        if doc < size and mask[doc]:
            length[np.searchsorted(ids, doc)] = doc_length
    norm = K1 * (1 - B + B * length / (state.tokens / state.nrow))
    total = np.zeros(len(ids))
    for idf, freq in phrases:
        f = freq[ids]
        total += idf * (f * (K1 + 1.0)) / (f + norm)
    return ids.astype(np.int64), -total
