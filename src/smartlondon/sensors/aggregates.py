"""Aggregates of numeric Observations per time interval, for one or many Datastreams, in one query.

``aggregate(session, [1, 2], "PT1H", start, end, ["avg", "max"])`` groups the Observations of the
Datastreams by stream and by time bucket (the bucket of an Observation is its phenomenon time's
start, floored to a multiple of the interval counted from 1970-01-01T00:00:00Z, so hours and days
start on UTC hour and day boundaries) and computes the functions over ``result_number`` (the
numeric copy of the result; non-numeric results are not counted). One ``SELECT ... GROUP BY``,
whatever the number of Datastreams.

Bucket arithmetic: on SQLite timestamps are stored as text, so the epoch second is ``unixepoch(t)``
(``CAST(strftime('%s', t) AS INTEGER)`` before SQLite 3.38); on PostgreSQL it is
``date_part('epoch', t)`` (double precision: much faster than ``extract``, which is numeric).
"""

from __future__ import annotations

import math
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import BigInteger, Integer, cast, func, select
from sqlalchemy.orm import Session

from .models import Datastream, Observation
from .sta import StaError

FUNCTIONS = ("avg", "min", "max", "sum", "count")
NAMED_INTERVALS = {"minute": 60, "hour": 3600, "day": 86400}
MAX_BUCKETS = 100_000          # rows (Datastreams x buckets) one request may ask for
MAX_DATASTREAMS = 500
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def parse_interval(text: str) -> int:
    """The interval in seconds: ``minute``, ``hour``, ``day`` or an ISO 8601 duration (``PT15M``, ``P1D``).

    Months and years have no fixed length and are refused, as is anything under one second.
    """
    value = (text or "").strip()
    if value.lower() in NAMED_INTERVALS:
        return NAMED_INTERVALS[value.lower()]
    match = _DURATION.match(value.upper())
    if not match or value.upper() in ("P", "PT") or value.upper().endswith("T"):
        raise StaError(400, f"interval {text!r} is not understood: use minute, hour, day or an ISO 8601 "
                            "duration of days, hours, minutes or seconds such as PT15M, PT1H or P1D "
                            "(months and years have no fixed length and are not supported).")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = days * 86400 + hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise StaError(400, f"interval {text!r} must be longer than zero.")
    return total


def parse_time(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 instant (``Z`` or an offset; a naive time is taken as UTC), or None when absent."""
    if text is None or text == "":
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise StaError(400, f"{name}={text!r} is not an ISO 8601 time such as 2023-01-01T00:00:00Z.") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def parse_ids(text: str | None, name: str = "datastreams") -> list[int]:
    """``"1,2,3"`` as ids; 400 for anything that is not a list of positive integers."""
    if not text or not text.strip():
        raise StaError(400, f"{name} is required: a comma-separated list of Datastream ids, such as {name}=1,2,3.")
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) <= 0:
            raise StaError(400, f"{name}: {part!r} is not a Datastream id (a positive integer).")
        if int(part) not in ids:
            ids.append(int(part))
    return ids


def parse_functions(text: str | None) -> list[str]:
    """The aggregate functions asked for (default: all five)."""
    if not text:
        return list(FUNCTIONS)
    names = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in names if f not in FUNCTIONS]
    if unknown or not names:
        raise StaError(400, f"functions: {', '.join(unknown) or repr(text)} not supported; use any of "
                            f"{', '.join(FUNCTIONS)}.")
    return list(dict.fromkeys(names))


def bucket_expression(dialect: str, step: int, observations: Any = Observation) -> Any:
    """The SQL for the start of an Observation's bucket, in seconds since the epoch."""
    column = observations.phenomenon_time_start
    if dialect == "sqlite":
        # unixepoch() (SQLite 3.38+) is twice as fast as strftime('%s'); both drop fractions of a second
        epoch = func.unixepoch(column) if sqlite3.sqlite_version_info >= (3, 38) else cast(
            func.strftime("%s", column), Integer)
        # floor for negative epochs too: x - ((x % step + step) % step)
        return epoch - ((epoch % step + step) % step)
    return cast(func.floor(func.date_part("epoch", column) / step) * step, BigInteger)  # double precision: fast


@dataclass
class Bucket:
    """One interval of one Datastream and its aggregates."""

    start: datetime
    end: datetime
    values: dict[str, float | int | None]


QC_MODES = ("all", "unflagged")


def parse_qc(text: str | None) -> str:
    """``all`` (default): every numeric value; ``unflagged``: leave out values with quality-control flags."""
    if text is None or text == "":
        return "all"
    if text not in QC_MODES:
        raise StaError(400, f"qc={text!r} is not understood; use all (every value) or unflagged (leave out "
                            "values quality control flagged).")
    return text


def _flag_count(dialect: str, observations: Any = Observation) -> Any:
    """SQL: how many QC flags an Observation has (0 when never checked)."""
    if dialect == "sqlite":
        return func.coalesce(func.json_array_length(observations.result_quality, "$.qc.flags"), 0)
    return func.coalesce(func.jsonb_array_length(observations.result_quality["qc"]["flags"]), 0)


def aggregate(session: Session, datastream_ids: list[int], step: int, start: datetime | None,
              end: datetime | None, functions: list[str], qc: str = "all",
              observations: Any = Observation) -> dict[int, list[Bucket]]:
    """Aggregates per Datastream and interval of ``step`` seconds over ``[start, end)``.

    ``qc="unflagged"`` leaves out values whose ``resultQuality.qc.flags`` is not empty.
    ``observations`` is the Observation model or an alias of it (hot and archived rows: sensors/archive.py).

    Raises a 404 StaError for a Datastream that does not exist and a 400 one for a time range that
    is empty or would give more than ``MAX_BUCKETS`` buckets.
    """
    if len(datastream_ids) > MAX_DATASTREAMS:
        raise StaError(400, f"At most {MAX_DATASTREAMS} Datastreams in one request; {len(datastream_ids)} given.")
    if start is not None and end is not None and end <= start:
        raise StaError(400, "to must be later than from.")
    spans = session.execute(
        select(Datastream.id, Datastream.phenomenon_time_start, Datastream.phenomenon_time_end,
               Datastream.unit_of_measurement)
        .where(Datastream.id.in_(datastream_ids))).all()
    found = {row[0] for row in spans}
    missing = [i for i in datastream_ids if i not in found]
    if missing:
        raise StaError(404, f"There is no Datastream with id {', '.join(map(str, missing))}.")
    # size the answer before running it: the span asked for, or the Datastreams' own span
    lows = [start] if start else [r[1] for r in spans if r[1] is not None]
    highs = [end] if end else [r[2] or r[1] for r in spans if (r[2] or r[1]) is not None]
    if lows and highs:
        seconds = (max(highs) - min(lows)).total_seconds()
        buckets = (math.floor(seconds / step) + 1) * len(datastream_ids)
        if buckets > MAX_BUCKETS:
            raise StaError(400, f"That would be about {buckets:,} intervals; at most {MAX_BUCKETS:,} in one request. "
                                "Use a longer interval or a shorter time range (from, to).")
    bucket = bucket_expression(session.get_bind().dialect.name, step, observations).label("bucket")
    value = observations.result_number
    columns = {"avg": func.avg(value), "min": func.min(value), "max": func.max(value),
               "sum": func.sum(value), "count": func.count(value)}
    query = (select(observations.datastream_id, bucket, *[columns[f].label(f) for f in functions])
             .where(observations.datastream_id.in_(datastream_ids), value.is_not(None))
             .group_by(observations.datastream_id, bucket)
             .order_by(observations.datastream_id, bucket))
    if qc == "unflagged":
        query = query.where(_flag_count(session.get_bind().dialect.name, observations) == 0)
    if start is not None:
        query = query.where(observations.phenomenon_time_start >= start)
    if end is not None:
        query = query.where(observations.phenomenon_time_start < end)
    out: dict[int, list[Bucket]] = {i: [] for i in datastream_ids}
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    for row in session.execute(query):
        begin = epoch + timedelta(seconds=int(row.bucket))
        values: dict[str, float | int | None] = {}
        for f in functions:
            v = getattr(row, f)
            values[f] = int(v) if f == "count" else (float(v) if v is not None else None)
        out[row.datastream_id].append(Bucket(begin, begin + timedelta(seconds=step), values))
    return out
