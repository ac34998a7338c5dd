"""Retention and archive: old Observations move to Parquet files and stay readable through the API.

A Datastream keeps ``retention`` days of Observations "hot" in ``sta_observation`` (the command's
``--older-than``, default 90 days; a Datastream's ``properties.retentionDays`` overrides it, ``0``
meaning never archive). :func:`archive` moves older ones, one *segment* per Datastream and calendar
month (UTC), to ``<archive_dir>/datastream=<id>/month=<YYYY-MM>/observations-<min id>-<max id>.parquet``,
written by DuckDB, and records each segment in the manifest table ``sta_archive_segment`` (Datastream,
time range, id range, row count, path, SHA-256 checksum).

The move of one segment is crash-safe: in one database transaction the rows are read, the file is
written to a temporary name, fsynced, renamed and its directory fsynced, then read back and
verified (row count, id sum, id range, checksum); only then are the manifest row inserted and the
rows deleted (by id, each one checked), and the transaction committed. A crash before the commit
leaves the rows (and maybe the file, which no manifest row names and the next run overwrites, as
its name follows from its ids); after it, the file and its manifest row. Never neither.

Reading: :func:`observation_source` answers, for a query on one Datastream's Observations, whether
the query can touch an archived range (manifest pruning on the Datastream, on the ``phenomenonTime``
bounds of the ``$filter`` and on the ``$skiptoken``). Only then are the matching segments' rows
read (DuckDB) into a temporary table of the session's own database with the same column types as
``sta_observation``, and the query runs unchanged on ``sta_observation UNION ALL`` that table, so
``$filter``, ``$orderby``, paging, ``$count`` and the JSON are those of hot rows. The Observation of
``sta_latest`` is never archived, so the last-value table is unaffected. :func:`collection_source`
does the same for Observations of any Datastream (the top-level ``/Observations``, those of a
FeatureOfInterest, a nested ``$expand`` of Datastreams or FeaturesOfInterest); for the whole
unfiltered set it leaves the choice of segments to the page read (:func:`load_page`: ``$count`` from
the manifest's row counts, ``$orderby=phenomenonTime`` with ``$top`` from the newest or oldest
segments only). :func:`lambda_source` loads what an ``any``/``all`` over Observations in a
``$filter`` can need. See docs/sensors-archive.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column, ForeignKey, Index, Integer, MetaData, String, Table, delete, func, insert, select, text,
    union_all,
)
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column
from sqlalchemy.schema import CreateTable

from ..core.db import Base, Database, UTCDateTime
from .models import Datastream, Latest, Observation, ObservationId

DEFAULT_RETENTION_DAYS = 90
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)
_TIME_COLUMNS = ("phenomenon_time_start", "phenomenon_time_end", "result_time", "valid_time_start", "valid_time_end")
_JSON_COLUMNS = ("result", "result_quality", "parameters")
_COLUMNS = [c.name for c in Observation.__table__.columns]
_DELETE_BATCH = 5_000


class ArchiveSegment(Base):
    """One Parquet file of archived Observations: one Datastream, (part of) one UTC month."""

    __tablename__ = "sta_archive_segment"
    __table_args__ = (
        Index("ix_sta_archive_segment_datastream_time", "datastream_id", "time_start", "time_end"),
        Index("ix_sta_archive_segment_ids", "min_id", "max_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    datastream_id: Mapped[int] = mapped_column(ForeignKey("sta_datastream.id", ondelete="CASCADE"))
    month: Mapped[str] = mapped_column(String(7))                  # 2023-01
    time_start: Mapped[datetime] = mapped_column(UTCDateTime)      # earliest phenomenon time (start)
    time_end: Mapped[datetime] = mapped_column(UTCDateTime)        # latest phenomenon time (start)
    min_id: Mapped[int] = mapped_column(ObservationId)
    max_id: Mapped[int] = mapped_column(ObservationId)
    row_count: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(1000))                # relative to the archive directory
    checksum: Mapped[str] = mapped_column(String(64))              # SHA-256 of the file, hex
    created: Mapped[datetime] = mapped_column(UTCDateTime)


class ArchiveError(RuntimeError):
    """An archive or restore step that failed its check (nothing was deleted)."""


@dataclass
class Report:
    """What one archive or restore run did."""

    segments: int = 0
    rows: int = 0
    bytes: int = 0


# --- policy -------------------------------------------------------------------------------------

def parse_age(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m`` or a plain number of days, as a duration."""
    value = text.strip().lower()
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    number, unit = (value[:-1], value[-1]) if value and value[-1] in units else (value, "d")
    if not number.isdigit():
        raise ValueError(f"{text!r} is not an age: use a number of days such as 90d, or hours such as 12h.")
    return timedelta(seconds=int(number) * units[unit])


def retention_of(properties: dict[str, Any] | None, default: timedelta) -> timedelta | None:
    """A Datastream's hot retention: ``properties.retentionDays`` (0: keep everything hot) or ``default``."""
    days = (properties or {}).get("retentionDays")
    if isinstance(days, bool) or not isinstance(days, (int, float)) or days < 0:
        return default
    return None if days == 0 else timedelta(days=days)


def _month_start(when: datetime) -> datetime:
    return when.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(when: datetime) -> datetime:
    return (when.replace(day=28) + timedelta(days=4)).replace(day=1)


@dataclass(frozen=True)
class Chunk:
    """The Observations of one Datastream due to move into one segment: ``start <= time < end``."""

    datastream_id: int
    start: datetime
    end: datetime

    @property
    def month(self) -> str:
        """``YYYY-MM`` of the chunk."""
        return self.start.strftime("%Y-%m")


def plan(session: Session, older_than: timedelta, datastream_id: int | None = None,
         now: datetime | None = None) -> list[Chunk]:
    """The (Datastream, month) chunks whose Observations are older than their retention."""
    now = now or datetime.now(timezone.utc)
    streams = select(Datastream.id, Datastream.properties).order_by(Datastream.id)
    if datastream_id is not None:
        streams = streams.where(Datastream.id == datastream_id)
    chunks: list[Chunk] = []
    for stream_id, properties in session.execute(streams).all():
        keep = retention_of(properties, older_than)
        if keep is None:
            continue
        cutoff = now - keep
        first = session.execute(select(func.min(Observation.phenomenon_time_start)).where(
            Observation.datastream_id == stream_id, Observation.phenomenon_time_start < cutoff)).scalar()
        if first is None:
            continue
        month = _month_start(first)
        while month < cutoff:
            chunks.append(Chunk(stream_id, month, min(_next_month(month), cutoff)))
            month = _next_month(month)
    return chunks


# --- writing and reading Parquet ----------------------------------------------------------------

_DUCKDB: Any = None
_DUCKDB_LOCK = threading.Lock()


def _duckdb() -> Any:
    """A cursor of the process's in-memory DuckDB (opening DuckDB costs tens of ms; a cursor is cheap)."""
    global _DUCKDB
    with _DUCKDB_LOCK:
        if _DUCKDB is None:
            import duckdb

            _DUCKDB = duckdb.connect()
            _DUCKDB.execute("SET TimeZone = 'UTC'")
        return _DUCKDB.cursor()


def _micros(value: datetime | None) -> int | None:
    return None if value is None else (value - _EPOCH) // _US


def _from_micros(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


_SELECT_PARQUET = ", ".join(
    f"epoch_us({c}) AS {c}" if c in _TIME_COLUMNS else c for c in _COLUMNS)


def write_parquet(rows: list[Any], path: Path) -> None:
    """Write Observation rows to ``path`` (Parquet, via a temporary name), fsynced and renamed into place."""
    import numpy as np

    columns: dict[str, Any] = {}
    for name in _COLUMNS:
        values = [getattr(r, name) for r in rows]
        if name in _TIME_COLUMNS:
            values = [_micros(v) for v in values]
        elif name in _JSON_COLUMNS:
            values = [None if v is None else json.dumps(v) for v in values]
        columns[name] = np.array(values, dtype=object)
    casts = []
    for name in _COLUMNS:
        if name in _TIME_COLUMNS:
            casts.append(f"make_timestamp({name}::BIGINT)::TIMESTAMPTZ AS {name}")
        elif name in _JSON_COLUMNS:
            casts.append(f"{name}::VARCHAR AS {name}")
        elif name == "result_number":
            casts.append(f"{name}::DOUBLE AS {name}")
        else:
            casts.append(f"{name}::BIGINT AS {name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    con = _duckdb()
    try:
        con.register("rows_in", columns)
        target = str(temporary).replace("'", "''")
        con.execute(f"COPY (SELECT {', '.join(casts)} FROM rows_in) TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
    finally:
        con.close()
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def file_checksum(path: Path) -> str:
    """SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_parquet(paths: Iterable[Path], start: datetime | None = None, end: datetime | None = None,
                 end_included: bool = True, feature_ids: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    """Observation rows (as ``sta_observation`` column values) from archived Parquet files, optionally
    only those whose phenomenon time (start) is in ``[start, end]`` (``end`` excluded unless ``end_included``)
    and only those of the FeaturesOfInterest ``feature_ids``."""
    files = [str(p) for p in paths]
    if not files:
        return []
    con = _duckdb()
    try:
        listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        where, params = [], []
        if start is not None:
            where.append("epoch_us(phenomenon_time_start) >= ?")
            params.append(_micros(start))
        if end is not None:
            where.append("epoch_us(phenomenon_time_start) " + ("<= ?" if end_included else "< ?"))
            params.append(_micros(end))
        if feature_ids is not None:
            where.append(f"feature_of_interest_id IN ({', '.join('?' for _ in feature_ids)})" if feature_ids
                         else "false")
            params.extend(feature_ids)
        condition = (" WHERE " + " AND ".join(where)) if where else ""
        result = con.execute(f"SELECT {_SELECT_PARQUET} FROM read_parquet([{listing}]){condition}", params).fetchall()
    finally:
        con.close()
    rows = []
    for values in result:
        row = dict(zip(_COLUMNS, values))
        for name in _TIME_COLUMNS:
            row[name] = _from_micros(row[name])
        for name in _JSON_COLUMNS:
            if row[name] is not None:
                row[name] = json.loads(row[name])
        rows.append(row)
    return rows


def _parquet_summary(path: Path) -> tuple[int, int, int, int]:
    con = _duckdb()
    try:
        target = str(path).replace("'", "''")
        count, total, low, high = con.execute(
            f"SELECT count(*), coalesce(sum(id), 0), min(id), max(id) FROM read_parquet('{target}')").fetchone()
    finally:
        con.close()
    return int(count), int(total), int(low or 0), int(high or 0)


# --- archiving and restoring ----------------------------------------------------------------------

def segment_path(datastream_id: int, month: str, min_id: int, max_id: int) -> str:
    """Where a segment lives, relative to the archive directory."""
    return f"datastream={datastream_id}/month={month}/observations-{min_id}-{max_id}.parquet"


def archive_chunk(db: Database, archive_dir: Path, chunk: Chunk,
                  on_step: Callable[[str], None] | None = None) -> ArchiveSegment | None:
    """Move one chunk's Observations to a verified Parquet segment (see the module's docstring)."""
    step = on_step or (lambda _name: None)
    with db.session() as session:
        latest = select(Latest.observation_id).where(Latest.datastream_id == chunk.datastream_id).scalar_subquery()
        query = (select(Observation.__table__)
                 .where(Observation.datastream_id == chunk.datastream_id,
                        Observation.phenomenon_time_start >= chunk.start,
                        Observation.phenomenon_time_start < chunk.end,
                        Observation.id != func.coalesce(latest, -1))
                 .order_by(Observation.phenomenon_time_start, Observation.id))
        if db.dialect == "postgresql":
            query = query.with_for_update()
        else:  # SQLite gives a new row max(id) + 1: keep the newest row, so no archived id is given again
            query = query.where(Observation.id < select(func.max(Observation.id)).scalar_subquery())
        rows = session.execute(query).all()
        if not rows:
            return None
        ids = [r.id for r in rows]
        relative = segment_path(chunk.datastream_id, chunk.month, min(ids), max(ids))
        path = archive_dir / relative
        write_parquet(rows, path)
        step("written")
        count, total, low, high = _parquet_summary(path)
        if (count, total, low, high) != (len(ids), sum(ids), min(ids), max(ids)):
            raise ArchiveError(f"{relative} does not hold the rows written (count {count} for {len(ids)}); "
                               "nothing was deleted.")
        segment = ArchiveSegment(
            datastream_id=chunk.datastream_id, month=chunk.month,
            time_start=min(r.phenomenon_time_start for r in rows), time_end=max(r.phenomenon_time_start for r in rows),
            min_id=min(ids), max_id=max(ids), row_count=len(ids), path=relative, checksum=file_checksum(path),
            created=datetime.now(timezone.utc))
        step("verified")
        session.add(segment)
        deleted = 0
        for i in range(0, len(ids), _DELETE_BATCH):
            part = ids[i:i + _DELETE_BATCH]
            deleted += session.execute(delete(Observation).where(Observation.id.in_(part)),
                                       execution_options={"synchronize_session": False}).rowcount
        if deleted != len(ids):
            raise ArchiveError(f"{deleted} of {len(ids)} rows of {relative} could be deleted (changed meanwhile?); "
                               "nothing was deleted.")
        step("deleted")
        session.flush()
        session.expunge(segment)
    return segment


def archive(db: Database, archive_dir: Path, older_than: timedelta, datastream_id: int | None = None,
            now: datetime | None = None, progress: Any = None,
            on_step: Callable[[str], None] | None = None) -> Report:
    """Archive every chunk due (older than the retention), one verified segment at a time."""
    with db.session() as session:
        chunks = plan(session, older_than, datastream_id, now)
    report = Report()
    task = progress.add_task("Archiving", total=len(chunks)) if progress is not None else None
    for chunk in chunks:
        segment = archive_chunk(db, archive_dir, chunk, on_step)
        if segment is not None:
            report.segments += 1
            report.rows += segment.row_count
            report.bytes += (archive_dir / segment.path).stat().st_size
        if progress is not None:
            progress.advance(task)
    return report


def restore(db: Database, archive_dir: Path, datastream_id: int | None = None, progress: Any = None) -> Report:
    """Move archived segments back into ``sta_observation`` (checksum checked), then remove their files."""
    with db.session() as session:
        query = select(ArchiveSegment.id).order_by(ArchiveSegment.id)
        if datastream_id is not None:
            query = query.where(ArchiveSegment.datastream_id == datastream_id)
        segment_ids = list(session.execute(query).scalars())
    report = Report()
    task = progress.add_task("Restoring", total=len(segment_ids)) if progress is not None else None
    for segment_id in segment_ids:
        with db.session() as session:
            segment = session.get(ArchiveSegment, segment_id)
            if segment is None:
                continue
            path = archive_dir / segment.path
            if not path.exists():
                raise ArchiveError(f"The archive file {path} of segment {segment_id} is missing: nothing restored.")
            if file_checksum(path) != segment.checksum:
                raise ArchiveError(f"The archive file {path} does not match its checksum: nothing restored.")
            rows = read_parquet([path])
            if len(rows) != segment.row_count:
                raise ArchiveError(f"{path} holds {len(rows)} rows, the manifest says {segment.row_count}.")
            session.execute(insert(Observation.__table__), rows)
            session.delete(segment)
            report.segments += 1
            report.rows += len(rows)
            report.bytes += path.stat().st_size
        path.unlink(missing_ok=True)
        if progress is not None:
            progress.advance(task)
    return report


# --- reading archived rows through the query path -------------------------------------------------

_TEMP_METADATA = MetaData()
ARCHIVED = Table(
    "sta_observation_archived", _TEMP_METADATA,
    *[Column(c.name, c.type, primary_key=c.primary_key) for c in Observation.__table__.columns],
    prefixes=["TEMPORARY"],
)


def segments(session: Session, datastream_id: int, start: datetime | None = None, end: datetime | None = None,
             end_inclusive: bool = True) -> list[ArchiveSegment]:
    """The segments of a Datastream whose time range meets ``[start, end]`` (manifest pruning)."""
    query = select(ArchiveSegment).where(ArchiveSegment.datastream_id == datastream_id)
    if start is not None:
        query = query.where(ArchiveSegment.time_end >= start)
    if end is not None:
        query = query.where(ArchiveSegment.time_start <= end if end_inclusive else ArchiveSegment.time_start < end)
    return list(session.execute(query.order_by(ArchiveSegment.time_start)).scalars())


def segments_with_id(session: Session, observation_id: int) -> list[ArchiveSegment]:
    """The segments whose id range holds ``observation_id``."""
    return list(session.execute(select(ArchiveSegment).where(
        ArchiveSegment.min_id <= observation_id, ArchiveSegment.max_id >= observation_id)).scalars())


def archived_count(session: Session, datastream_id: int) -> int:
    """How many of a Datastream's Observations are archived (from the manifest)."""
    return int(session.execute(select(func.coalesce(func.sum(ArchiveSegment.row_count), 0)).where(
        ArchiveSegment.datastream_id == datastream_id)).scalar_one())


def _with_temporary_table(session: Session) -> Any:
    """The session's connection, with the temporary table. On PostgreSQL the table is created in a
    transaction of its own and committed, so it lives as long as the pooled connection and later
    reads need no DDL (inside the read's transaction it would be dropped again at its end)."""
    if session.get_bind().dialect.name != "postgresql":
        connection = session.connection()
        connection.execute(CreateTable(ARCHIVED, if_not_exists=True))
        return connection
    for _attempt in range(3):   # after a commit the session may be given another pooled connection
        connection = session.connection()
        if connection.execute(text("SELECT to_regclass('pg_temp.sta_observation_archived')")).scalar() is not None:
            return connection
        if session.in_transaction() and (session.new or session.dirty or session.deleted):
            break   # never commit someone's pending changes: create it inside this transaction instead
        connection.execute(CreateTable(ARCHIVED, if_not_exists=True))
        session.commit()
    connection = session.connection()
    connection.execute(CreateTable(ARCHIVED, if_not_exists=True))
    return connection


_LOADED = "sta_archive_loaded"   # session.info key: {segment id: the bounds its rows were loaded with}
_WHOLE = ("whole",)


def load(session: Session, archive_dir: Path, found: list[ArchiveSegment], start: datetime | None = None,
         end: datetime | None = None, end_included: bool = True, feature_ids: tuple[int, ...] | None = None) -> Any:
    """Load the segments' rows (within the time bounds the query implies, if given, and of some
    FeaturesOfInterest, if given) into the session's temporary table; the Observation model over
    ``sta_observation UNION ALL`` that table, to query as if every row were hot.

    Loads add up within one session (a collection and its nested ``$expand`` may each need
    segments): the first load of a session empties the table, a segment already loaded with the
    same bounds is not read again, and one loaded with other bounds is replaced by all its rows."""
    connection = _with_temporary_table(session)
    loaded: dict[int, tuple[Any, ...]] | None = session.info.get(_LOADED)
    if loaded is None:
        connection.execute(delete(ARCHIVED))
        loaded = session.info[_LOADED] = {}
    wanted = (start, end, end_included, feature_ids)
    partial: list[ArchiveSegment] = []
    whole: list[ArchiveSegment] = []
    for segment in found:
        before = loaded.get(segment.id)
        if before is None:
            partial.append(segment)
        elif before != wanted and before != _WHOLE:
            connection.execute(delete(ARCHIVED).where(
                ARCHIVED.c.datastream_id == segment.datastream_id,
                ARCHIVED.c.id >= segment.min_id, ARCHIVED.c.id <= segment.max_id))
            whole.append(segment)
    rows = read_parquet((archive_dir / s.path for s in partial), start, end, end_included, feature_ids)
    rows += read_parquet(archive_dir / s.path for s in whole)
    if rows:
        connection.execute(insert(ARCHIVED), rows)
    loaded.update({s.id: wanted for s in partial})
    loaded.update({s.id: _WHOLE for s in whole})
    return union_model()


def union_model() -> Any:
    """A new alias of the Observation model over ``sta_observation UNION ALL`` the temporary table (what
    :func:`load` filled); each correlated subquery (an ``any``/``all`` over Observations) needs its own."""
    hot = select(*Observation.__table__.columns)
    cold = select(*ARCHIVED.columns)
    return aliased(Observation, union_all(hot, cold).subquery("sta_observation_all"), adapt_on_names=True)


def time_bounds(expr: Any, variable: str | None = None) -> tuple[datetime | None, datetime | None, bool]:
    """The ``phenomenonTime`` bounds a parsed ``$filter`` implies through its top-level ``and``s:
    (lowest start, highest start, whether the highest itself is included). With ``variable``, the
    bounds on ``variable/phenomenonTime`` (the body of ``Observations/any(variable: ...)``)."""
    from .sta import odata

    wanted = ("phenomenonTime",) if variable is None else (variable, "phenomenonTime")
    low: datetime | None = None
    high: datetime | None = None
    high_included = True
    flipped = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge", "eq": "eq"}

    def visit(node: Any) -> None:
        nonlocal low, high, high_included
        if not isinstance(node, odata.Binary):
            return
        if node.op == "and":
            visit(node.left)
            visit(node.right)
            return
        op, path, literal = node.op, node.left, node.right
        if isinstance(path, odata.Literal) and isinstance(literal, odata.Path):
            op, path, literal = flipped.get(op, op), literal, path
        if not (isinstance(path, odata.Path) and path.segments == wanted
                and isinstance(literal, odata.Literal) and literal.type == "datetime"):
            return
        value = literal.value
        if op in ("gt", "ge", "eq"):
            low = value if low is None else max(low, value)
        if op in ("lt", "le", "eq") and (high is None or value <= high):
            high_included = op != "lt" and (high is None or value < high or high_included)
            high = value

    if expr is not None:
        visit(expr)
    return low, high, high_included


def _observation_lambdas(expr: Any) -> list[Any]:
    """The ``any``/``all`` over Observations anywhere in a parsed ``$filter`` (nested ones too)."""
    from .sta import odata

    found: list[Any] = []

    def visit(node: Any) -> None:
        if isinstance(node, odata.Binary):
            visit(node.left)
            visit(node.right)
        elif isinstance(node, odata.Unary):
            visit(node.operand)
        elif isinstance(node, odata.Call):
            for arg in node.args:
                visit(arg)
        elif isinstance(node, odata.Lambda):
            if node.collection[-1] == "Observations":
                found.append(node)
            if node.body is not None:
                visit(node.body)

    if expr is not None:
        visit(expr)
    return found


def lambda_source(session: Session, archive_dir: Path, filter_expr: Any) -> bool:
    """For a ``$filter`` with ``any``/``all`` over Observations (``Datastreams?$filter=Observations/any(o:
    o/result gt 40)``): load the archived rows those lambdas can need and say whether there are any
    (each lambda must then read :func:`union_model` instead of the table).

    An ``any`` with ``o/phenomenonTime`` bounds in its body needs only the segments within them; an
    ``all``, or an ``any`` without bounds, needs every segment (an ``all`` is false as soon as one
    row, in or out of any time range, fails its condition)."""
    lambdas = _observation_lambdas(filter_expr)
    if not lambdas or not has_archive(session):
        return False
    lows: list[datetime | None] = []
    highs: list[tuple[datetime | None, bool]] = []
    for node in lambdas:
        if node.op != "any" or node.body is None:
            lows.append(None)
            highs.append((None, True))
            continue
        low, high, high_included = time_bounds(node.body, node.variable)
        lows.append(low)
        highs.append((high, high_included))
    low = None if None in lows else min(lows)  # type: ignore[type-var]
    if any(h is None for h, _ in highs):
        high, high_included = None, True
    else:
        high = max(h for h, _ in highs)  # type: ignore[type-var]
        high_included = any(inc for h, inc in highs if h == high)
    query = select(ArchiveSegment)
    if low is not None:
        query = query.where(ArchiveSegment.time_end >= low)
    if high is not None:
        query = query.where(ArchiveSegment.time_start <= high if high_included else ArchiveSegment.time_start < high)
    found = list(session.execute(query.order_by(ArchiveSegment.min_id)).scalars())
    if not found:
        return False
    load(session, archive_dir, found, low, high, high_included)
    return True


def has_archive(session: Session) -> bool:
    """True when any segment is archived (one index read)."""
    return session.execute(select(ArchiveSegment.id).limit(1)).first() is not None


def observation_source(session: Session, archive_dir: Path, datastream_id: int, filter_expr: Any,
                       after: datetime | None = None) -> Any:
    """For a query on one Datastream's Observations: the model to query (hot + the archived segments the
    query can touch), or None when it touches no archived range (the plain table is then enough)."""
    low, high, high_included = time_bounds(filter_expr)
    if after is not None:
        low = after if low is None else max(low, after)
    found = segments(session, datastream_id, low, high, high_included)
    if not found:
        return None
    return load(session, archive_dir, found, low, high, high_included)



def streams_source(session: Session, archive_dir: Path, datastream_ids: list[int], start: datetime | None,
                   end: datetime | None) -> Any:
    """For a query over ``[start, end)`` of several Datastreams (aggregates): as :func:`observation_source`."""
    query = select(ArchiveSegment).where(ArchiveSegment.datastream_id.in_(datastream_ids))
    if start is not None:
        query = query.where(ArchiveSegment.time_end >= start)
    if end is not None:
        query = query.where(ArchiveSegment.time_start < end)
    found = list(session.execute(query).scalars())
    return load(session, archive_dir, found, start, end, False) if found else None


def collection_source(session: Session, archive_dir: Path, filter_expr: Any, *, datastream_ids: list[int] | None = None,
                      feature_id: int | None = None, feature_ids: list[int] | None = None, after_id: int | None = None,
                      first_rows: int | None = None) -> Any:
    """For a query on Observations of any Datastream (the top-level ``/Observations``, those of a
    FeatureOfInterest, a nested ``$expand`` of Datastreams or FeaturesOfInterest): as
    :func:`observation_source`, pruning the manifest by the ``phenomenonTime`` bounds of the
    ``$filter``, by ``datastream_ids`` and by ``after_id`` (a ``$skiptoken`` in id order);
    ``feature_id`` or ``feature_ids`` (the manifest does not know them) are pushed into the Parquet scan.

    ``first_rows`` (only for an unfiltered page in id order) reads just the segments that can hold
    the first ``first_rows`` ids: segments in id order until they hold that many rows, then every
    segment whose id range starts below the largest id read.

    The whole unfiltered set otherwise (the top-level ``/Observations`` with ``$orderby`` or
    ``$count``) is not loaded here: which segments its page needs depends on ``$orderby``, ``$top``
    and ``$count``, which the page read knows. The alias is returned at once and the read
    (query.fetch_page) loads them with :func:`take_deferred` and :func:`load_page`."""
    low, high, high_included = time_bounds(filter_expr)
    query = select(ArchiveSegment)
    if datastream_ids is not None:
        query = query.where(ArchiveSegment.datastream_id.in_(sorted(set(datastream_ids))))
    if low is not None:
        query = query.where(ArchiveSegment.time_end >= low)
    if high is not None:
        query = query.where(ArchiveSegment.time_start <= high if high_included else ArchiveSegment.time_start < high)
    if after_id is not None:
        query = query.where(ArchiveSegment.max_id > after_id)
    found = list(session.execute(query.order_by(ArchiveSegment.min_id)).scalars())
    features = tuple(sorted({feature_id} if feature_ids is None else set(feature_ids))) \
        if feature_id is not None or feature_ids is not None else None
    if first_rows is not None and filter_expr is None and features is None:
        found = _first_segments(found, first_rows, after_id)
    if not found:
        return None
    if filter_expr is None and datastream_ids is None and features is None and first_rows is None:
        source = union_model()
        session.info[_DEFERRED] = Deferred(source, archive_dir, found, after_id)
        return source
    return load(session, archive_dir, found, low, high, high_included, features)


_DEFERRED = "sta_archive_deferred"   # session.info key: the Deferred load of the whole unfiltered set


@dataclass
class Deferred:
    """The segments of the whole, unfiltered set of Observations, not loaded yet (:func:`collection_source`)."""

    source: Any                       # the alias the read will query
    archive_dir: Path
    found: list[ArchiveSegment]       # every segment (after the ``$skiptoken``, if any), in ``min_id`` order
    after_id: int | None


def take_deferred(session: Session, source: Any) -> Deferred | None:
    """The deferred load of ``source`` (once), or None when its rows are loaded already."""
    deferred = session.info.get(_DEFERRED)
    if deferred is None or deferred.source is not source:
        return None
    del session.info[_DEFERRED]
    return deferred


def archived_total(session: Session) -> int:
    """How many Observations are archived in all (from the manifest)."""
    return int(session.execute(select(func.coalesce(func.sum(ArchiveSegment.row_count), 0))).scalar_one())


def load_page(session: Session, deferred: Deferred, rows: int, keyset: bool, time_order: str | None) -> None:
    """Load only the segments that can hold the first ``rows`` Observations of a page of the whole set:
    in id order (``keyset``) as :func:`collection_source`'s ``first_rows``; with ``$orderby`` on
    ``phenomenonTime`` first (``time_order`` "asc"/"desc"), by :func:`_time_segments` and only their rows
    at or beyond the time of the ``rows``-th Observation; none for ``rows`` 0 (``$top=0``); otherwise all.
    Always loads (an empty list still empties the temporary table)."""
    found = deferred.found
    if rows <= 0:
        load(session, deferred.archive_dir, [])
    elif keyset:
        load(session, deferred.archive_dir, _first_segments(found, rows, deferred.after_id))
    elif time_order is not None:
        newest = time_order == "desc"
        chosen, cut = _time_segments(session, deferred.archive_dir, found, rows, newest)
        load(session, deferred.archive_dir, chosen, cut if newest else None, None if newest else cut)
    else:
        load(session, deferred.archive_dir, found)


def _time_segments(session: Session, archive_dir: Path, found: list[ArchiveSegment], rows: int,
                   newest: bool) -> tuple[list[ArchiveSegment], datetime | None]:
    """Of ``found``, those that can hold one of the ``rows`` newest (``newest``) or oldest Observations,
    and the phenomenon time of the ``rows``-th of them (every one is at it or beyond it), if known.

    One query reads the phenomenon times of the ``rows`` newest (oldest) hot rows. A time ``t`` is a
    safe cut when at least ``rows`` Observations are known to be at ``t`` or newer (older): the hot
    ones among those read, plus every row of the segments lying wholly on that side of ``t``. Then
    every row of the page is at ``t`` or beyond it, and only the segments reaching ``t`` are needed.
    The newest (oldest) safe cut among the segments' bounds and the last hot time read is taken.
    DuckDB then reads the ``rows`` newest (oldest) times of those segments (one column of their
    files), which with the hot ones give the exact time of the ``rows``-th Observation, so that
    only the rows at it or beyond are loaded, not whole segments."""
    column = Observation.phenomenon_time_start
    hot = list(session.execute(select(column).order_by(column.desc() if newest else column.asc()).limit(rows))
               .scalars())

    def beyond(a: datetime, b: datetime) -> bool:   # a is at b or newer (older)
        return a >= b if newest else a <= b

    cuts = {s.time_start if newest else s.time_end for s in found}
    if len(hot) >= rows:
        cuts.add(hot[-1])
    for cut in sorted(cuts, reverse=newest):
        known = sum(1 for t in hot if beyond(t, cut)) + sum(
            s.row_count for s in found if beyond(s.time_start if newest else s.time_end, cut))
        if known >= rows:
            chosen = [s for s in found if beyond(s.time_end if newest else s.time_start, cut)]
            break
    else:
        chosen = found
    if not chosen:
        return chosen, None
    merged = sorted(hot + _parquet_times([archive_dir / s.path for s in chosen], rows, newest), reverse=newest)
    return chosen, (merged[rows - 1] if len(merged) >= rows else None)


def _parquet_times(paths: list[Path], rows: int, newest: bool) -> list[datetime]:
    """The ``rows`` newest (or oldest) phenomenon times (start) in some segment files."""
    con = _duckdb()
    try:
        listing = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
        result = con.execute(f"SELECT epoch_us(phenomenon_time_start) AS t FROM read_parquet([{listing}]) "
                             f"ORDER BY t {'DESC' if newest else 'ASC'} LIMIT ?", [rows]).fetchall()
    finally:
        con.close()
    return [_from_micros(t) for (t,) in result]


def _first_segments(found: list[ArchiveSegment], rows: int, after_id: int | None) -> list[ArchiveSegment]:
    """Of ``found`` (in ``min_id`` order), those that can hold one of the ``rows`` smallest ids above ``after_id``."""
    taken: list[ArchiveSegment] = []
    counted = 0
    for segment in found:
        if counted >= rows:
            break
        taken.append(segment)
        if after_id is None or segment.min_id > after_id:
            counted += segment.row_count
    if counted < rows:
        return found
    largest = max(s.max_id for s in taken)
    return [s for s in found if s in taken or s.min_id <= largest]
