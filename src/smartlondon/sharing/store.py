"""The restricted store: the DuckDB file holding person-level rows that only the sharing gateway reads.

It is never the analytics store and nothing in it is ever downloadable. Every table with person rows has:

* a subject column holding the person's pseudonym (from the privacy pseudonymiser), named at load time;
* ``_subject_no``: a dense integer per distinct pseudonym, from the store's ``_subjects`` table, so that the
  access log can keep the set of people a use touched as a compact bitmap;
* ``_row``: a row id that is never reused (from a sequence).

One DuckDB database instance is opened per store file and process; callers get cursors of it.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from ..core.errors import NotFound, ValidationFailed
from ..settings import Settings

IDENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
TYPES = {"VARCHAR", "TEXT", "INTEGER", "BIGINT", "SMALLINT", "DOUBLE", "REAL", "FLOAT", "BOOLEAN", "DATE",
         "TIMESTAMP", "DECIMAL(18,2)", "HUGEINT"}
SYSTEM_COLUMNS = ("_subject_no", "_row")
EXCLUSION_SLOTS = 4  # per table: opt-out sets materialised as boolean columns _excl_1 .. _excl_4
CHUNK = 100_000

_instances: dict[Path, duckdb.DuckDBPyConnection] = {}
_known: dict[Path, dict[str, int]] = {}       # pseudonym -> subject number (never changes once given)
_unknown: dict[Path, set[str]] = {}           # pseudonyms not in the store (forgotten when rows load)
_instances_lock = threading.Lock()
_write_lock = threading.RLock()
#: (store path, table, column) -> the column's range-encoded bitmaps (``_Ranges``; None: the column has too many
#: values to index; for column "" the bitmap of everyone with a row). Forgotten whenever the table's rows change
#: (``_forget``).
_bitmaps: dict[tuple[Path, str, str], Any] = {}
#: (store path, table, column) -> (least value, largest value, has NULLs), forgotten with the bitmaps.
_stats: dict[tuple[Path, str, str], tuple[Any, Any, bool]] = {}
#: (store path, table, "") -> the table's (subject column, one row per subject, highest subject number)
_infos: dict[tuple[Path, str, str], tuple[str | None, bool, int]] = {}
#: (store path, table, slot) -> the key of the opt-out set whose rows the in-memory copy holds (``exclusion``)
_side: dict[tuple[Path, str, str], str] = {}
SIDE_DB = "_optout_rows"  # in-memory database attached to each store instance: the opted-out rows' copies
INDEX_MAX_VALUES = 128  # columns with more distinct values are not indexed (the gateway scans instead)


def quote(name: str) -> str:
    """A DuckDB identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def check_identifier(name: str, what: str = "name") -> str:
    """``name`` if it is a safe lower-case identifier; 422 saying what to fix otherwise."""
    if not isinstance(name, str) or not IDENT.match(name):
        raise ValidationFailed(f"'{name}' is not a valid {what}: use lower-case letters, digits and underscores, "
                               "starting with a letter (at most 63 characters).", {what: "Not a valid name."})
    return name


class RestrictedStore:
    """The restricted DuckDB store of one platform (``settings.restricted_store``)."""

    def __init__(self, settings: Settings | Path | str) -> None:
        path = settings.restricted_store if isinstance(settings, Settings) else Path(settings)
        self.path = Path(path).absolute()

    # --- connections -------------------------------------------------------------------------

    def _instance(self) -> duckdb.DuckDBPyConnection:
        with _instances_lock:
            conn = _instances.get(self.path)
            if conn is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = duckdb.connect(str(self.path))
                conn.execute("CREATE TABLE IF NOT EXISTS _subjects (pseudonym VARCHAR PRIMARY KEY, "
                             "subject_no BIGINT NOT NULL UNIQUE)")
                conn.execute("CREATE TABLE IF NOT EXISTS _tables (name VARCHAR PRIMARY KEY, subject_column VARCHAR, "
                             "one_row_per_subject BOOLEAN NOT NULL DEFAULT false, max_subject_no BIGINT)")
                conn.execute("CREATE SEQUENCE IF NOT EXISTS _row_seq START 1")
                conn.execute("CREATE TABLE IF NOT EXISTS _exclusions (name VARCHAR, slot INTEGER, key VARCHAR, "
                             "used TIMESTAMP, PRIMARY KEY (name, slot))")
                conn.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {SIDE_DB}")
                _instances[self.path] = conn
            return conn

    def connect(self, read_only: bool = True) -> duckdb.DuckDBPyConnection:
        """A connection (cursor) to the store; ``read_only`` callers must not write through it."""
        return self._instance().cursor()

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor closed when the block ends."""
        cur = self.connect()
        try:
            yield cur
        finally:
            cur.close()

    def close(self) -> None:
        """Close this store's database instance (tests and shutdown)."""
        for cache in (_bitmaps, _stats, _side, _infos):
            for key in [k for k in cache if k[0] == self.path]:
                cache.pop(key, None)
        with _instances_lock:
            conn = _instances.pop(self.path, None)
            _known.pop(self.path, None)
            _unknown.pop(self.path, None)
        if conn is not None:
            conn.close()

    # --- tables ----------------------------------------------------------------------------------

    def tables(self) -> list[str]:
        """The data tables of the store (not its bookkeeping tables)."""
        with self.cursor() as cur:
            rows = cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                               "AND table_name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    def columns(self, table: str) -> dict[str, str]:
        """The columns of ``table`` (name -> DuckDB type), including ``_subject_no`` and ``_row``."""
        check_identifier(table, "table")
        with self.cursor() as cur:
            rows = cur.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
                               "'main' AND table_name = ? AND column_name NOT LIKE '\\_excl\\_%' ESCAPE '\\' "
                               "ORDER BY ordinal_position", [table]).fetchall()
        if not rows:
            raise NotFound(f"The restricted store has no table called '{table}'.")
        return {name: kind for name, kind in rows}

    def table_info(self, table: str) -> tuple[str | None, bool]:
        """The table's subject column and whether it holds one row per subject."""
        column, one, _ = self._info(table)
        return column, one

    def max_subject_no(self, table: str) -> int:
        """The highest subject number in ``table`` when it was last loaded (0 if none)."""
        return self._info(table)[2]

    def _info(self, table: str) -> tuple[str | None, bool, int]:
        key = (self.path, table, "")
        if key not in _infos:  # read on every query; changes only with the rows (then forgotten)
            with self.cursor() as cur:
                row = cur.execute("SELECT subject_column, one_row_per_subject, max_subject_no FROM _tables "
                                  "WHERE name = ?", [table]).fetchone()
            if row is None:
                raise NotFound(f"The restricted store has no table called '{table}'.")
            _infos[key] = (row[0], bool(row[1]), int(row[2] or 0))
        return _infos[key]

    def drop(self, table: str) -> None:
        """Remove a table and its bookkeeping (its subjects' numbers stay: they are never reused)."""
        check_identifier(table, "table")
        _forget(self.path, table)
        with _write_lock, self.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {quote(table)}")
            cur.execute("DELETE FROM _tables WHERE name = ?", [table])
            cur.execute("DELETE FROM _exclusions WHERE name = ?", [table])

    def load_rows(self, table: str, columns: dict[str, str], rows: Iterable[tuple[Any, ...]] | Any, *,
                  subject_column: str | None) -> int:
        """Append rows to ``table`` (created on first load); returns the number of rows loaded.

        ``rows`` is an iterable of tuples in ``columns`` order, or a DuckDB relation of this store with
        those columns. The subject column's pseudonyms get their dense ``_subject_no``.
        """
        check_identifier(table, "table")
        if not columns:
            raise ValidationFailed("Give the table at least one column.", {"columns": "Empty."})
        for name, kind in columns.items():
            check_identifier(name, "column")
            if kind.upper() not in TYPES:
                raise ValidationFailed(f"The column '{name}' has the type '{kind}', which the store does not take: "
                                       f"use one of {', '.join(sorted(TYPES))}.", {name: "Unknown type."})
        if subject_column is not None and subject_column not in columns:
            raise ValidationFailed(f"The subject column '{subject_column}' is not one of the columns.",
                                   {"subject_column": "Not a column."})
        names = list(columns)
        defs = ", ".join(f"{quote(n)} {columns[n].upper()}" for n in names)
        stage = f"_stage_{threading.get_ident()}"
        with _write_lock, self.cursor() as cur:
            cur.execute(f"CREATE OR REPLACE TABLE {quote(stage)} ({defs})")
            try:
                if isinstance(rows, duckdb.DuckDBPyRelation):
                    rows.insert_into(stage)
                else:
                    self._stage_tuples(cur, stage, names, rows)
                loaded = self._append(cur, table, columns, stage, subject_column)
            finally:
                cur.execute(f"DROP TABLE IF EXISTS {quote(stage)}")
        return loaded

    @staticmethod
    def _stage_tuples(cur: duckdb.DuckDBPyConnection, stage: str, names: list[str],
                      rows: Iterable[tuple[Any, ...]]) -> None:
        """Insert tuples in chunks, one list parameter per column (far faster than row by row)."""
        select = ", ".join(f"unnest(${i + 1})" for i in range(len(names)))
        chunk: list[tuple[Any, ...]] = []

        def flush() -> None:
            if chunk:
                cols = [list(c) for c in zip(*chunk)]
                cur.execute(f"INSERT INTO {quote(stage)} SELECT {select}", cols)
                chunk.clear()

        for row in rows:
            if len(row) != len(names):
                raise ValidationFailed(f"A row has {len(row)} values but there are {len(names)} columns.",
                                       {"rows": "Wrong number of values."})
            chunk.append(tuple(row))
            if len(chunk) >= CHUNK:
                flush()
        flush()

    def _append(self, cur: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str], stage: str,
                subject_column: str | None) -> int:
        names = list(columns)
        existing = cur.execute("SELECT subject_column FROM _tables WHERE name = ?", [table]).fetchone()
        if existing is None:
            defs = ", ".join(f"{quote(n)} {columns[n].upper()}" for n in names)
            slots = "".join(f", _excl_{i} BOOLEAN DEFAULT false" for i in range(1, EXCLUSION_SLOTS + 1))
            cur.execute(f"CREATE TABLE {quote(table)} ({defs}, _subject_no BIGINT, _row BIGINT NOT NULL{slots})")
            cur.execute("INSERT INTO _tables (name, subject_column) VALUES (?, ?)", [table, subject_column])
        else:
            have = [c for c in self.columns(table) if c not in SYSTEM_COLUMNS]
            if have != names or existing[0] != subject_column:
                raise ValidationFailed(f"The table '{table}' exists with other columns ({', '.join(have)}); "
                                       "drop it first or load the same columns.", {"columns": "Do not match."})
        cols = ", ".join(quote(n) for n in names)
        if subject_column:
            subj = quote(subject_column)
            cur.execute(f"""INSERT INTO _subjects
                SELECT p, (SELECT coalesce(max(subject_no), 0) FROM _subjects) + row_number() OVER (ORDER BY p)
                FROM (SELECT DISTINCT {subj} AS p FROM {quote(stage)} WHERE {subj} IS NOT NULL) s
                WHERE NOT EXISTS (SELECT 1 FROM _subjects x WHERE x.pseudonym = s.p)""")
            cur.execute(f"""INSERT INTO {quote(table)} ({cols}, _subject_no, _row)
                SELECT {', '.join('s.' + quote(n) for n in names)}, x.subject_no, nextval('_row_seq')
                FROM {quote(stage)} s LEFT JOIN _subjects x ON x.pseudonym = s.{subj}""")
        else:
            cur.execute(f"INSERT INTO {quote(table)} ({cols}, _subject_no, _row) "
                        f"SELECT {cols}, NULL, nextval('_row_seq') FROM {quote(stage)}")
        loaded = cur.execute(f"SELECT count(*) FROM {quote(stage)}").fetchone()[0]
        cur.execute("DELETE FROM _exclusions WHERE name = ?", [table])  # new rows: every materialised set is stale
        self._refresh_info(cur, table, subject_column)
        _unknown.pop(self.path, None)
        _forget(self.path, table)
        return int(loaded)

    @staticmethod
    def _refresh_info(cur: duckdb.DuckDBPyConnection, table: str, subject_column: str | None) -> None:
        one, top = False, 0
        if subject_column:
            total, distinct, top = cur.execute(f"SELECT count(*), count(DISTINCT _subject_no), "
                                               f"coalesce(max(_subject_no), 0) FROM {quote(table)}").fetchone()
            one = total == distinct
        cur.execute("UPDATE _tables SET one_row_per_subject = ?, max_subject_no = ? WHERE name = ?", [one, top, table])

    # --- opt-outs --------------------------------------------------------------------------------

    def exclusion_filter(self, table: str, excluded: set[int] | list[int]) -> str:
        """A condition leaving out the rows of these subjects ("" if none).

        Opt-out sets change rarely and queries are many, so a set is materialised once as a boolean column
        of the table (one of a few slots, the oldest reused first); later queries with the same set
        test that column instead of probing a hash table per row. Loading rows forgets the slots.
        """
        slot, _ = self._exclusion_slot(table, excluded)
        return "" if slot is None else f"NOT _excl_{slot}"

    def exclusion(self, table: str, excluded: set[int] | list[int]) -> tuple[str, str | None]:
        """The condition leaving these subjects' rows out ("" if none, as ``exclusion_filter``) and the name of
        a small in-memory table holding a copy of their rows (None if none).

        Counts and sums are additive, so an aggregate without the opt-outs equals the aggregate of the whole
        table minus the same aggregate over the copy: the big scan then needs no filter column at all. The
        copy lives in an in-memory database attached to the store (never written to disk), is made once per
        opt-out set, and is dropped, like the subject index, whenever the table's rows change (loading,
        rectification, erasure, re-pseudonymising), so no erased or corrected value survives in it.
        """
        slot, key = self._exclusion_slot(table, excluded)
        if slot is None:
            return "", None
        name = f"{SIDE_DB}.{quote(f'{table}_{slot}')}"
        if _side.get((self.path, table, str(slot))) != key:
            with _write_lock, self.cursor() as cur:
                cur.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {quote(table)} WHERE _excl_{slot}")
                _side[(self.path, table, str(slot))] = key
        return f"NOT _excl_{slot}", name

    def _exclusion_slot(self, table: str, excluded: set[int] | list[int]) -> tuple[int | None, str]:
        """The slot whose ``_excl_<slot>`` column marks these subjects' rows (made on first use; None if no one
        is excluded), and the key of the set."""
        check_identifier(table, "table")
        if not excluded:
            return None, ""
        nos = sorted({int(n) for n in excluded})
        key = _exclusion_key(nos)
        with self.cursor() as cur:
            hit = cur.execute("SELECT slot FROM _exclusions WHERE name = ? AND key = ?", [table, key]).fetchone()
        if hit is None:
            with _write_lock, self.cursor() as cur:
                hit = cur.execute("SELECT slot FROM _exclusions WHERE name = ? AND key = ?", [table, key]).fetchone()
                if hit is None:
                    used = {r[0]: r[1] for r in cur.execute("SELECT slot, used FROM _exclusions WHERE name = ?",
                                                            [table]).fetchall()}
                    free = [i for i in range(1, EXCLUSION_SLOTS + 1) if i not in used]
                    slot = free[0] if free else min(used, key=lambda i: used[i])
                    cur.execute("CREATE OR REPLACE TEMP TABLE _excl_set (n BIGINT PRIMARY KEY)")
                    cur.execute("INSERT INTO _excl_set SELECT unnest(?)", [nos])
                    cur.execute("DELETE FROM _exclusions WHERE name = ? AND slot = ?", [table, slot])
                    cur.execute(f"UPDATE {quote(table)} SET _excl_{slot} = (_subject_no IN (SELECT n FROM _excl_set))")
                    cur.execute("INSERT INTO _exclusions VALUES (?, ?, ?, now())", [table, slot, key])
                    _side.pop((self.path, table, str(slot)), None)
                    hit = (slot,)
        return int(hit[0]), key

    def column_stats(self, table: str, column: str) -> tuple[Any, Any, bool]:
        """The least and largest value of a column and whether it holds NULLs (cached until the rows change)."""
        check_identifier(table, "table")
        key = (self.path, table, column)
        if key not in _stats:
            with self.cursor() as cur:
                low, high, nulls = cur.execute(f"SELECT min({quote(column)}), max({quote(column)}), "
                                               f"count(*) > count({quote(column)}) FROM {quote(table)}").fetchone()
            _stats[key] = (low, high, bool(nulls))
        return _stats[key]

    # --- subjects (for data-subject requests) ----------------------------------------------------

    def subject_nos(self, pseudonyms: Iterable[str]) -> dict[str, int]:
        """The subject numbers of these pseudonyms (those the store has seen)."""
        wanted = set(pseudonyms)
        known = _known.setdefault(self.path, {})
        unknown = _unknown.setdefault(self.path, set())
        ask = sorted(p for p in wanted if p not in known and p not in unknown)
        if ask:  # numbers never change once given, so each pseudonym is looked up once
            with self.cursor() as cur:
                rows = cur.execute("SELECT pseudonym, subject_no FROM _subjects WHERE pseudonym IN (SELECT unnest(?))",
                                   [ask]).fetchall()
            found = {p: int(n) for p, n in rows}
            known.update(found)
            unknown.update(p for p in ask if p not in found)
        return {p: known[p] for p in wanted if p in known}

    def _subject_column(self, table: str) -> str:
        column, _ = self.table_info(check_identifier(table, "table"))
        if not column:
            raise ValidationFailed(f"The table '{table}' has no subject column.", {"table": "No subjects."})
        return column

    def update_rows(self, table: str, subject_pseudonym: str, changes: dict[str, Any]) -> int:
        """Rectify: set ``changes`` on every row of this subject in ``table``; returns rows changed."""
        column = self._subject_column(table)
        allowed = set(self.columns(table)) - set(SYSTEM_COLUMNS) - {column}
        if not changes:
            raise ValidationFailed("Say which fields to change.", {"changes": "Empty."})
        for name in changes:
            if name not in allowed:
                raise ValidationFailed(f"'{name}' is not a field of '{table}' that can be changed.", {name: "Unknown."})
        sets = ", ".join(f"{quote(n)} = ?" for n in changes)
        with _write_lock, self.cursor() as cur:
            count = cur.execute(f"SELECT count(*) FROM {quote(table)} WHERE {quote(column)} = ?",
                                [subject_pseudonym]).fetchone()[0]
            cur.execute(f"UPDATE {quote(table)} SET {sets} WHERE {quote(column)} = ?",
                        [*changes.values(), subject_pseudonym])
            _forget(self.path, table)
        return int(count)

    def delete_subject(self, table: str, pseudonym: str) -> int:
        """Erase: delete every row of this subject from ``table``; returns rows deleted."""
        column = self._subject_column(table)
        with _write_lock, self.cursor() as cur:
            count = cur.execute(f"SELECT count(*) FROM {quote(table)} WHERE {quote(column)} = ?",
                                [pseudonym]).fetchone()[0]
            cur.execute(f"DELETE FROM {quote(table)} WHERE {quote(column)} = ?", [pseudonym])
            _forget(self.path, table)
        return int(count)

    def rewrite(self, tables: Iterable[str], work: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        """Run ``work(cursor)`` in one write transaction under the store's write lock; returns what it returns.

        For changes made in place to stored rows, such as re-pseudonymising: all of ``work`` commits or, if it
        raises, none of it. ``tables`` names the tables whose rows ``work`` changes; in the same transaction
        their bookkeeping (one row per subject, highest subject number) is refreshed and their materialised
        opt-out sets dropped, and afterwards their cached indexes and statistics and the store's cached
        subject numbers are forgotten (``work`` may have changed ``_subjects`` too).
        """
        names = [check_identifier(t, "table") for t in tables]
        with _write_lock, self.cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                result = work(cur)
                for name in names:
                    row = cur.execute("SELECT subject_column FROM _tables WHERE name = ?", [name]).fetchone()
                    if row is None:
                        raise NotFound(f"The restricted store has no table called '{name}'.")
                    cur.execute("DELETE FROM _exclusions WHERE name = ?", [name])
                    self._refresh_info(cur, name, row[0])
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                _known.pop(self.path, None)
                _unknown.pop(self.path, None)
                for name in names:
                    _forget(self.path, name)
        return result


# --- the subject index: per-value bitmaps of one-row-per-subject tables ------------------------------------

def _exclusion_key(nos: Iterable[int]) -> str:
    return hashlib.sha256(",".join(map(str, sorted({int(n) for n in nos}))).encode()).hexdigest()


def _forget(path: Path, table: str) -> None:
    """Drop the cached bitmaps, column statistics and opt-out row copies of ``table`` (its rows changed)."""
    copies = [k[2] for k in _side if k[0] == path and k[1] == table]
    for cache in (_bitmaps, _stats, _side, _infos):
        for key in [k for k in cache if k[0] == path and k[1] == table]:
            cache.pop(key, None)
    conn = _instances.get(path)
    if conn is not None and copies:
        with _write_lock:
            cur = conn.cursor()
            try:
                for slot in copies:
                    cur.execute(f"DROP TABLE IF EXISTS {SIDE_DB}.{quote(f'{table}_{slot}')}")
            finally:
                cur.close()


def _compatible(values: Iterable[Any], params: Iterable[Any]) -> bool:
    """Whether Python comparison of these parameters with the column's values means what DuckDB's would."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return True
    if kinds <= {int, float}:
        return all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in params)
    if kinds == {str}:
        return all(isinstance(p, str) for p in params)
    return False  # booleans, dates, decimals: leave the comparison to DuckDB


_END = object()  # marks the end of a column's values when looking for runs
_TESTS = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
          "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


class _Ranges:
    """A range-encoded bitmap index of one column: its distinct values in order and, for the ``i``-th, the
    packed bitmap of the subjects whose value is among the first ``i + 1`` (so any run of consecutive values,
    such as the answer to ``>=``, ``<`` or ``=``, is one or two bitmaps, not one per value)."""

    __slots__ = ("values", "cumulative")

    def __init__(self, values: list[Any], cumulative: list[Any]) -> None:
        self.values, self.cumulative = values, cumulative

    def run(self, first: int, last: int) -> Any:
        """The subjects whose value is one of ``values[first..last]`` (a new packed bitmap)."""
        import numpy as np

        if first == 0:
            return self.cumulative[last].copy()
        return np.bitwise_and(self.cumulative[last], np.invert(self.cumulative[first - 1]))


class SubjectIndex:
    """For a table with one row per subject: per column, range-encoded bitmaps of its subjects by value.

    A filter of ``IN`` lists and comparisons on indexed columns then gives the set of subjects whose rows it
    reads by AND-ing a few bitmaps in numpy, without reading the table again. Bit ``i`` of a bitmap (numpy's
    big-endian ``packbits`` order) is subject number ``i + 1``. Built lazily per column, on the first query
    that filters on it, and forgotten when the table's rows change.
    """

    def __init__(self, store: RestrictedStore, table: str) -> None:
        self.store, self.table = store, table
        self.top = max(store.max_subject_no(table), 1)

    def _column(self, column: str) -> _Ranges | None:
        key = (self.store.path, self.table, column)
        if key in _bitmaps:
            return _bitmaps[key]
        import numpy as np

        with self.store.cursor() as cur:
            values = [r[0] for r in cur.execute(f"SELECT DISTINCT {quote(column)} FROM {quote(self.table)} "
                                                f"LIMIT {INDEX_MAX_VALUES + 1}").fetchall()]
            if len(values) > INDEX_MAX_VALUES:
                _bitmaps[key] = None
                return None
            known = [v for v in values if v is not None]
            try:
                known.sort()
            except TypeError:  # values Python cannot order: runs are then shorter, the answers the same
                pass
            got = cur.execute(f"SELECT coalesce(list_position(?, {quote(column)}), 0)::USMALLINT AS code, "
                              f"_subject_no FROM {quote(self.table)}", [known]).fetchnumpy()
        codes, subjects = np.asarray(got["code"]), np.asarray(got["_subject_no"], dtype=np.int64) - 1
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(known) + 2))
        bits = np.zeros(self.top, dtype=bool)
        cumulative = []
        for i in range(1, len(known) + 1):
            bits[subjects[order[bounds[i]:bounds[i + 1]]]] = True
            cumulative.append(np.packbits(bits))
        ranges = _Ranges(known, cumulative)
        _bitmaps[key] = ranges
        return ranges

    def _present(self) -> Any:
        """The packed bitmap of the subjects who have a row in the table."""
        key = (self.store.path, self.table, "")  # "" is never a column name
        maps = _bitmaps.get(key)
        if maps is None:
            import numpy as np

            with self.store.cursor() as cur:
                got = cur.execute(f"SELECT _subject_no FROM {quote(self.table)} WHERE _subject_no IS NOT NULL"
                                  ).fetchnumpy()
            bits = np.zeros(self.top, dtype=bool)
            bits[np.asarray(got["_subject_no"], dtype=np.int64) - 1] = True
            maps = _bitmaps[key] = {None: np.packbits(bits)}
        return maps[None]

    def subjects(self, where: dict[str, Any], excluded: Iterable[int]) -> Any | None:
        """The packed bitmap of subjects whose rows match ``where`` and are not excluded; None if not indexable."""
        import numpy as np

        size = (self.top + 7) // 8
        acc = self._present().copy()
        for column, cond in sorted(where.items()):
            ranges = self._column(column)
            if ranges is None:
                return None
            pairs = [("=", v) for v in cond] if isinstance(cond, list) else list(cond.items())
            if not _compatible(ranges.values, [v for _, v in pairs]):
                return None
            hit = np.zeros(size, dtype=np.uint8)
            first = None
            for i, value in enumerate([*ranges.values, _END]):  # each run of matching values: one or two bitmaps
                ok = value is not _END and (
                    any(_TESTS[op](value, v) for op, v in pairs) if isinstance(cond, list)
                    else all(_TESTS[op](value, v) for op, v in pairs))
                if ok and first is None:
                    first = i
                elif not ok and first is not None:
                    np.bitwise_or(hit, ranges.run(first, i - 1), out=hit)
                    first = None
            np.bitwise_and(acc, hit, out=acc)
        nos = np.fromiter((int(n) - 1 for n in excluded if 0 < int(n) <= self.top), dtype=np.int64)
        if nos.size:
            mask = np.zeros(size, dtype=np.uint8)
            np.bitwise_or.at(mask, nos // 8, (0x80 >> (nos % 8)).astype(np.uint8))
            np.bitwise_and(acc, np.invert(mask), out=acc)
        return acc
