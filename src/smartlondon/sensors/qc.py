"""Quality control of Observations: versioned rules whose flags go into ``resultQuality``.

Each checked Observation gets ``result_quality = {"qc": {"version": "1", "flags": [...]}}`` (other
keys already in ``result_quality`` are kept). An empty ``flags`` list means it passed every rule.

Rules, version ``RULES_VERSION`` (numeric results only; a non-numeric result gets no qc entry):

* ``range``: the value lies outside the plausible range of its ObservedProperty in its unit (see
  ``RANGES``, in ``UNITS``: a Datastream in another unit gets no default range or spike threshold);
  a Datastream may set its own in ``properties.qc.min`` / ``properties.qc.max``;
* ``spike``: the value differs from BOTH neighbours (previous and next Observation) by more than the
  spike threshold, in the same direction (``SPIKES``; ``properties.qc.spike``);
* ``flat_line``: it belongs to a run of at least ``flatLineCount`` (default 6) consecutive exactly
  equal values (``properties.qc.flatLineCount``);
* ``stuck``: it belongs to a run of at least ``stuckCount`` (default 3) consecutive values pinned at
  zero or at a bound of the range (an instrument at its floor or full scale);
* ``gap``: it is the first value after missing expected values: the time since the previous
  Observation is more than the expected interval (default one hour; ``properties.qc.expectedSeconds``).

:func:`run_qc` (re)computes a Datastream over a time range, in windows of 31 days: per window one
ordered read (plus a margin on each side so runs and neighbours at the edges are seen), the rules as
numpy array operations over that series, one UPDATE by primary key per 5,000 rows. Recompute by
command (``smartlondon sensors qc``) or after an ingest batch.

:func:`check_on_ingest` gives new Observations their flags as they are stored (every write path of
``sensors/service.py`` calls it before its INSERT): per Datastream in the batch, an indexed read
of the few values before the batch's earliest (enough for a run to reach its length; one query
for all the batch's Datastreams), the same rules over those plus the batch, and the values before
gain the flags the new ones reveal (the last one's spike, a run that now reaches its length). The
newest value cannot be a spike yet (it has no next neighbour): it gets that flag when the next
value arrives. For values that arrive in time order this gives exactly the flags a batch run
gives; values arriving out of order are checked against the values before them only (re-run the
batch command for exact flags).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import func, select, text, union_all, update
from sqlalchemy.orm import Session

from ..core.errors import BadRequest, NotFound
from .models import Datastream, Observation, ObservedProperty

RULES_VERSION = "1"
FLAGS = ("range", "spike", "flat_line", "stuck", "gap")
FLAG_TEXT = {
    "range": "outside the plausible range for what is measured",
    "spike": "a sudden jump away from both neighbouring values",
    "flat_line": "part of a run of identical consecutive values",
    "stuck": "part of a run of values pinned at zero or at the instrument's floor or ceiling",
    "gap": "the first value after expected values were missing",
}

# plausible ranges and spike thresholds, in µg/m³ (mg/m³ for CO), by pollutant key
# the lower bounds tolerate the small negative readings reference analysers give near zero (the
# LAQN's ratified data has them: -0.1 to -5 µg/m³), and flag anything below
RANGES: dict[str, tuple[float, float]] = {
    "no2": (-5.0, 1000.0), "no": (-5.0, 2000.0), "nox": (-5.0, 3000.0), "o3": (-5.0, 600.0),
    "pm10": (-5.0, 1000.0), "pm25": (-5.0, 800.0), "so2": (-5.0, 2000.0), "co": (-0.5, 50.0),
}
SPIKES: dict[str, float] = {"no2": 150.0, "no": 300.0, "nox": 400.0, "o3": 120.0, "pm10": 150.0,
                            "pm25": 100.0, "so2": 200.0, "co": 10.0}

# the unit the built-in ranges and thresholds are in
UNITS: dict[str, str] = {key: "ug/m3" for key in RANGES} | {"co": "mg/m3"}


def _normal_unit(symbol: str | None) -> str | None:
    if not symbol:
        return None
    return symbol.replace("µ", "u").replace("μ", "u").replace("³", "3").replace(" ", "").lower()


_KEYS = {"NO2": "no2", "NITROGENDIOXIDE": "no2", "NO": "no", "NITRICOXIDE": "no", "NOX": "nox",
         "O3": "o3", "OZONE": "o3", "PM10": "pm10", "PM25": "pm25", "PM2.5": "pm25", "SO2": "so2",
         "SULPHURDIOXIDE": "so2", "SULFURDIOXIDE": "so2", "CO": "co", "CARBONMONOXIDE": "co"}


# the EEA air quality pollutant vocabulary (http://dd.eionet.europa.eu/vocabulary/aq/pollutant/<n>)
_EEA = {"1": "so2", "5": "pm10", "6001": "pm25", "7": "o3", "8": "no2", "9": "nox", "10": "co", "38": "no"}


def pollutant_key(*names: Any) -> str | None:
    """The pollutant key (``no2``, ``pm25``...) of a species code, ObservedProperty name or EEA URI, if any."""
    for name in names:
        if not isinstance(name, str) or not name:
            continue
        if "eionet.europa.eu/vocabulary/aq/pollutant/" in name:
            key = _EEA.get(name.rstrip("/").rsplit("/", 1)[-1])
        else:
            flat = name.upper().replace(" ", "").replace("_", "").replace("-", "")
            key = _KEYS.get(flat) or _KEYS.get(flat.removesuffix("PARTICULATEMATTER"))
        if key:
            return key
    return None


def stream_pollutant(stream_properties: Any, observed_name: Any = None, observed_definition: Any = None,
                     observed_properties: Any = None) -> str | None:
    """The pollutant a Datastream measures: from its ``properties`` (``species``, ``speciesCode``), its
    ObservedProperty's ``properties.laqnSpeciesCode``, definition URI (EEA vocabulary) or name."""
    own = stream_properties if isinstance(stream_properties, dict) else {}
    theirs = observed_properties if isinstance(observed_properties, dict) else {}
    return pollutant_key(own.get("species"), own.get("speciesCode"), theirs.get("laqnSpeciesCode"),
                         observed_definition, observed_name)


@dataclass(frozen=True)
class Rules:
    """The rule parameters for one Datastream."""

    minimum: float | None = None
    maximum: float | None = None
    spike: float | None = None
    flat_line_count: int = 6
    stuck_count: int = 3
    expected_seconds: float | None = 3600.0


def rules_for(stream: Datastream, observed: ObservedProperty | None) -> Rules:
    """The rules of a Datastream: its pollutant's defaults, overridden by ``properties.qc``."""
    props = stream.properties or {}
    key = stream_pollutant(props, observed.name if observed else None, observed.definition if observed else None,
                           observed.properties if observed else None)
    symbol = (stream.unit_of_measurement or {}).get("symbol") if isinstance(stream.unit_of_measurement, dict) else None
    if key is not None and _normal_unit(symbol) != UNITS.get(key):
        key = None  # the built-in ranges are per pollutant AND unit: another unit gets no default range or spike
    low, high = RANGES.get(key or "", (None, None))
    own = props.get("qc") if isinstance(props.get("qc"), dict) else {}
    expected = own.get("expectedSeconds", 3600.0)
    return Rules(minimum=own.get("min", low), maximum=own.get("max", high),
                 spike=own.get("spike", SPIKES.get(key or "")),
                 flat_line_count=int(own.get("flatLineCount", 6)), stuck_count=int(own.get("stuckCount", 3)),
                 expected_seconds=float(expected) if expected else None)


def flags_for(series: list[tuple[datetime, float]], rules: Rules) -> list[list[str]]:
    """The flags of each value of a time-ordered series (each list in ``FLAGS`` order).

    Values with the same flags share one list (those with none, one empty list): treat the lists
    as read-only.
    """
    codes = flag_codes([t for t, _ in series], [v for _, v in series], rules)
    lists = _flag_lists()
    return [lists[code] for code in codes.tolist()]


def _flag_lists() -> list[list[str]]:
    """The flag list of every bit code (index: the code), fresh for each caller to share among its values."""
    return [[f for bit, f in enumerate(FLAGS) if code >> bit & 1] for code in range(1 << len(FLAGS))]


def flag_codes(times: list[datetime], values: list[float], rules: Rules) -> np.ndarray:
    """The flags of each value of a time-ordered series as bits (bit ``i`` set: ``FLAGS[i]``).

    Each rule is a few array operations over the whole series (numpy), so a batch of thousands of
    values costs about as much as a handful of Python-level steps per value.
    """
    n = len(values)
    v = np.asarray(values, dtype=np.float64)
    codes = np.zeros(n, dtype=np.int64)
    if n == 0:
        return codes
    low, high, spike = rules.minimum, rules.maximum, rules.spike
    if low is not None or high is not None:
        outside = np.zeros(n, dtype=bool)
        if low is not None:
            outside |= v < low
        if high is not None:
            outside |= v > high
        codes |= outside * _BIT["range"]
    if spike is not None and n > 2:
        up, down = v[1:-1] - v[:-2], v[1:-1] - v[2:]
        jumped = ((up > spike) & (down > spike)) | ((up < -spike) & (down < -spike))
        codes[1:-1] |= jumped * _BIT["spike"]
    # runs of exactly equal values: each value's run length
    starts = np.concatenate(([True], v[1:] != v[:-1]))
    run = np.cumsum(starts) - 1
    length = np.bincount(run)[run]
    codes |= (length >= rules.flat_line_count) * _BIT["flat_line"]
    pinned = v == 0.0
    for bound in (low, high):
        if bound is not None:
            pinned |= v == bound
    codes |= ((length >= rules.stuck_count) & pinned) * _BIT["stuck"]
    if rules.expected_seconds and n > 1:
        limit = rules.expected_seconds * 1.5
        steps = np.fromiter(((b - a).total_seconds() for a, b in zip(times, times[1:])), dtype=np.float64,
                            count=n - 1)
        codes[1:] |= (steps > limit) * _BIT["gap"]
    return codes


_BIT = {flag: 1 << i for i, flag in enumerate(FLAGS)}


@dataclass
class QcReport:
    """What one run did."""

    datastream_id: int
    checked: int
    flagged: dict[str, int]


WINDOW = timedelta(days=31)  # a run reads and writes one window of this length at a time


def run_qc(session: Session, datastream_id: int, start: datetime | None = None,
           end: datetime | None = None) -> QcReport:
    """(Re)compute the QC flags of a Datastream's numeric Observations with phenomenon time in [start, end).

    Works through the range in windows of ``WINDOW`` (each read with a margin on both sides), so a
    long Datastream is never held in memory at once.
    """
    stream = session.get(Datastream, datastream_id)
    if stream is None:
        raise NotFound(f"There is no Datastream with id {datastream_id}.")
    if start is not None and end is not None and end <= start:
        raise BadRequest("The end of the time range must be later than its start.")
    rules = rules_for(stream, session.get(ObservedProperty, stream.observed_property_id))
    margin = timedelta(seconds=(rules.expected_seconds or 3600.0)
                       * (max(rules.flat_line_count, rules.stuck_count) + 1))
    numeric = (Observation.datastream_id == datastream_id, Observation.result_number.is_not(None))
    first, last = session.execute(select(func.min(Observation.phenomenon_time_start),
                                         func.max(Observation.phenomenon_time_start)).where(*numeric)).one()
    report = QcReport(datastream_id, 0, {})
    if first is None:
        return report
    low = max(start, first) if start is not None else first
    high = min(end, last + timedelta(microseconds=1)) if end is not None else last + timedelta(microseconds=1)
    counts = {f: 0 for f in FLAGS}
    while low < high:
        upto = min(low + WINDOW, high)
        rows = session.execute(
            select(Observation.id, Observation.phenomenon_time_start, Observation.result_number,
                   Observation.result_quality)
            .where(*numeric, Observation.phenomenon_time_start >= low - margin,
                   Observation.phenomenon_time_start < upto + margin)
            .order_by(Observation.phenomenon_time_start, Observation.id)).all()
        flags = flags_for([(r.phenomenon_time_start, r.result_number) for r in rows], rules)
        updates: list[dict[str, Any]] = []
        for row, row_flags in zip(rows, flags):
            if not low <= row.phenomenon_time_start < upto:
                continue
            quality = dict(row.result_quality) if isinstance(row.result_quality, dict) else (
                {} if row.result_quality is None else {"original": row.result_quality})
            quality["qc"] = {"version": RULES_VERSION, "flags": row_flags}
            updates.append({"id": row.id, "result_quality": quality})
            for f in row_flags:
                counts[f] += 1
        _write(session, updates)
        report.checked += len(updates)
        low = upto
    report.flagged = {f: c for f, c in counts.items() if c}
    return report


def _write(session: Session, updates: list[dict[str, Any]]) -> None:
    """Store the new ``result_quality`` values: one statement per 5,000 rows."""
    postgres = session.get_bind().dialect.name == "postgresql"
    for i in range(0, len(updates), 5000):
        chunk = updates[i:i + 5000]
        if postgres:  # one UPDATE ... FROM unnest(arrays): several times faster than executemany
            session.execute(text(
                "UPDATE sta_observation AS o SET result_quality = CAST(v.q AS jsonb) "
                "FROM unnest(CAST(:ids AS bigint[]), CAST(:qs AS text[])) AS v(id, q) WHERE o.id = v.id"),
                {"ids": [u["id"] for u in chunk], "qs": [json.dumps(u["result_quality"]) for u in chunk]})
        else:
            session.execute(update(Observation), chunk)


def run_qc_all(session: Session, start: datetime | None = None, end: datetime | None = None) -> list[QcReport]:
    """QC every Datastream (each in turn, all in the caller's transaction)."""
    ids = session.scalars(select(Datastream.id).order_by(Datastream.id)).all()
    return [run_qc(session, i, start, end) for i in ids]


# --- on ingest ------------------------------------------------------------------------------------

_RULES_CACHE = "smartlondon.qc.rules"
_CHANGING = ("spike", "flat_line", "stuck")  # what a later value can add to an earlier one
_START = itemgetter("phenomenon_time_start")
_NUMBER = itemgetter("result_number")


def _quality_with(quality: Any, flags: list[str]) -> dict[str, Any]:
    out = dict(quality) if isinstance(quality, dict) else ({} if quality is None else {"original": quality})
    out["qc"] = {"version": RULES_VERSION, "flags": flags}
    return out


def _stream_rules(session: Session, datastream_id: int) -> Rules | None:
    cache: dict[int, Rules | None] = session.info.setdefault(_RULES_CACHE, {})
    if datastream_id not in cache:
        stream = session.get(Datastream, datastream_id)
        cache[datastream_id] = None if stream is None else rules_for(
            stream, session.get(ObservedProperty, stream.observed_property_id))
    return cache[datastream_id]


def _load_rules(session: Session, datastream_ids: set[int]) -> None:
    """Fill the rules cache for several Datastreams with two queries (one ``get`` pair each otherwise)."""
    cache: dict[int, Rules | None] = session.info.setdefault(_RULES_CACHE, {})
    missing = sorted(datastream_ids - set(cache))
    if len(missing) < 2:
        return
    streams = {s.id: s for s in session.scalars(select(Datastream).where(Datastream.id.in_(missing)))}
    wanted = sorted({s.observed_property_id for s in streams.values() if s.observed_property_id is not None})
    observed = {o.id: o for o in session.scalars(select(ObservedProperty).where(ObservedProperty.id.in_(wanted)))}
    for datastream_id in missing:
        stream = streams.get(datastream_id)
        cache[datastream_id] = None if stream is None else rules_for(stream, observed.get(stream.observed_property_id))


def _values_before(session: Session, wanted: dict[int, tuple[datetime, int]]) -> dict[int, list[Any]]:
    """Per Datastream ``{id: (time, k)}``, its last ``k`` numeric Observations before ``time``, oldest first.

    One query for all of them (a UNION ALL of one indexed, limited read per Datastream).
    """
    out: dict[int, list[Any]] = {ds: [] for ds in wanted}
    if not wanted:
        return out
    parts = [select(Observation.datastream_id, Observation.id, Observation.phenomenon_time_start,
                    Observation.result_number, Observation.result_quality)
             .where(Observation.datastream_id == ds, Observation.result_number.is_not(None),
                    Observation.phenomenon_time_start < first)
             .order_by(Observation.phenomenon_time_start.desc(), Observation.id.desc()).limit(k).subquery()
             for ds, (first, k) in sorted(wanted.items())]
    query = select(*parts[0].c) if len(parts) == 1 else union_all(*(select(*part.c) for part in parts))
    for row in session.execute(query):
        out[row.datastream_id].append(row)
    for rows in out.values():
        rows.sort(key=lambda r: (r.phenomenon_time_start, r.id))
    return out


def check_on_ingest(session: Session, rows: list[dict[str, Any]]) -> None:
    """Set the QC flags of new Observation rows (``result_quality``) before they are inserted."""
    by_stream: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        stream_id = row.get("datastream_id")
        if stream_id is not None and row.get("result_number") is not None:
            group = by_stream.get(stream_id)
            if group is None:
                by_stream[stream_id] = [row]
            else:
                group.append(row)
    _load_rules(session, set(by_stream))
    rules_of: dict[int, Rules] = {}
    starts_of: dict[int, list[datetime]] = {}
    for datastream_id, group in by_stream.items():
        rules = _stream_rules(session, datastream_id)
        if rules is None:
            continue
        starts = list(map(_START, group))
        if any(b < a for a, b in zip(starts, starts[1:])):  # rows usually arrive in time order
            group.sort(key=_START)
            starts = list(map(_START, group))
        rules_of[datastream_id], starts_of[datastream_id] = rules, starts
    before_of = _values_before(session, {ds: (starts_of[ds][0], max(rules.flat_line_count, rules.stuck_count) + 1)
                                         for ds, rules in rules_of.items()})
    for datastream_id, rules in rules_of.items():
        group, starts, before = by_stream[datastream_id], starts_of[datastream_id], before_of[datastream_id]
        codes = flag_codes([r.phenomenon_time_start for r in before] + starts,
                           [r.result_number for r in before] + list(map(_NUMBER, group)), rules).tolist()
        lists = _flag_lists()
        shared: dict[int, dict[str, Any]] = {}  # rows with no quality of their own share one entry per flag set
        for row, code in zip(group, codes[len(before):]):
            quality = row.get("result_quality")
            if quality is None:
                entry = shared.get(code)
                if entry is None:
                    entry = shared[code] = _quality_with(None, lists[code])
                row["result_quality"] = entry
            else:
                row["result_quality"] = _quality_with(quality, lists[code])
        flags = [lists[code] for code in codes[:len(before)]]
        updates: list[dict[str, Any]] = []
        for old, row_flags in zip(before, flags):
            quality = old.result_quality
            if not (isinstance(quality, dict) and isinstance(quality.get("qc"), dict)):
                continue  # never checked: leave it to the batch command
            had = list(quality["qc"].get("flags") or [])
            gained = [f for f in row_flags if f in _CHANGING and f not in had]
            if gained:
                updates.append({"id": old.id, "result_quality": _quality_with(
                    quality, [f for f in FLAGS if f in had or f in gained])})
        if updates:
            _write(session, updates)
