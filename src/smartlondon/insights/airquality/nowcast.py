"""The hourly air quality nowcast: every species, every hour, on a 100 m grid and at every LSOA.

One run (``run_nowcast``) reads the sensor hub's readings of one hour (the LAQN reference monitors, and
calibrated low-cost Datastreams where they have a value that hour), refreshes the estimator with them
(``AirQualityModel`` fitted on the hub's last 14 days and cached per species and day; ``KrigingSiteType``
when the history is too short), predicts the cells of a 100 m grid inside the 33 boroughs and every
LSOA's representative point, writes the grid as ``<data_dir>/nowcast/<species>/<YYYYMMDDTHH>.npz`` and
then, in one database transaction, the run, its LSOA and borough rows, the catalogue dataset's dates and
the retention of old hours. Grid cells and LSOA points are treated as background (roadside 0).

The store functions (``latest_run``, ``runs``, ``area_values``, ``area_series``, ``grid``, ``grid_png``,
``legend``) are what the pages and the API read. See docs/insights-airquality.md, "Nowcast".
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from ...core.background import TickingThread, run_during_lifespan
from ...core.db import Database, utcnow
from ...settings import Settings
from ..models import NowcastAreaRow, NowcastRunRow
from . import daqi
from .nowcast_geo import COLOURS_VERSION, Frame, Geography, frame_for, load_geography, render_png
from .nowcast_geo import legend as _legend

log = logging.getLogger(__name__)

SPECIES = ("NO2", "PM25", "PM10")
DISPLAY = {"NO2": "NO₂", "PM25": "PM2.5", "PM10": "PM10"}
MIN_REFERENCE_SITES = 5  # fewer reference sites with a reading that hour: no nowcast
HISTORY_DAYS = 14  # the model learns from this many days before the run's day
MIN_HISTORY_HOURS = 72  # fewer hours of history: kriging with a site-type term instead of the model
ROAD_TYPES = frozenset({"Roadside", "Kerbside"})
CELL = 100.0
HISTORY_CELL = 1000.0  # runs without a stored grid average the boroughs over this coarser grid
DATASET_SLUG = "air-quality-nowcast-london-hourly"
DATASET_TITLE = "Air quality nowcast for London (hourly)"
LAYERS = ("mean", "std")


class NowcastError(Exception):
    """A nowcast cannot be made or found (too few readings, unknown species, no grid for that hour)."""


@dataclass
class NowcastRun:
    """One stored nowcast: a species at an hour and how it was made."""

    id: int
    species: str
    hour: datetime
    created_at: datetime
    method: str
    model_version: str
    n_reference_sites: int
    n_sensor_sites: int
    n_cells: int
    seconds: float
    grid_file: str | None = None  # relative to <data_dir>/nowcast; None: area values only

    @property
    def has_grid(self) -> bool:
        """Whether a grid was stored for this hour."""
        return self.grid_file is not None


@dataclass
class Grid:
    """A run's grid: ``mean[i, j]``/``std[i, j]`` at the cell whose south-west corner is
    (``origin_easting + j * cell``, ``origin_northing + i * cell``) (row 0 southernmost); NaN outside London."""

    mean: np.ndarray
    std: np.ndarray
    origin_easting: float
    origin_northing: float
    cell: float
    bounds_wgs84: tuple[tuple[float, float], tuple[float, float]]
    hour: datetime
    species: str

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return self.mean.shape  # type: ignore[return-value]


def species_of(species: str) -> str:
    """``NO2``, ``PM25`` or ``PM10`` from any accepted spelling; NowcastError otherwise."""
    try:
        return daqi.species_key(species)
    except ValueError as exc:
        raise NowcastError(f"Unknown species {species!r}: use NO2, PM2.5 or PM10.") from exc


def hour_start(value: datetime) -> datetime:
    """The UTC start of the hour holding ``value`` (naive values are taken as UTC)."""
    value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return value.replace(minute=0, second=0, microsecond=0)


def stamp(hour: datetime) -> str:
    """``YYYYMMDDTHH`` of an hour (file names)."""
    return hour_start(hour).strftime("%Y%m%dT%H")


def nowcast_dir(settings: Settings) -> Path:
    """Where grids, cached frames and models live: ``<data_dir>/nowcast``."""
    return Path(settings.data_dir) / "nowcast"


# --- the store ------------------------------------------------------------------------------------

def _run(row: NowcastRunRow) -> NowcastRun:
    return NowcastRun(row.id, row.species, hour_start(row.hour), row.created_at, row.method, row.model_version,
                      row.n_reference_sites, row.n_sensor_sites, row.n_cells, row.seconds, row.grid_file)


def latest_run(session: Session, species: str) -> NowcastRun | None:
    """The newest run of a species, or None."""
    row = session.scalar(select(NowcastRunRow).where(NowcastRunRow.species == species_of(species))
                         .order_by(NowcastRunRow.hour.desc()).limit(1))
    return _run(row) if row is not None else None


def get_run(session: Session, species: str, hour: datetime) -> NowcastRun | None:
    """The run of a species at an hour, or None."""
    row = session.scalar(select(NowcastRunRow).where(NowcastRunRow.species == species_of(species),
                                                     NowcastRunRow.hour == hour_start(hour)))
    return _run(row) if row is not None else None


def runs(session: Session, species: str, since: datetime | None = None, until: datetime | None = None) -> list[NowcastRun]:
    """Runs of a species with ``since <= hour <= until``, newest first."""
    query = select(NowcastRunRow).where(NowcastRunRow.species == species_of(species))
    if since is not None:
        query = query.where(NowcastRunRow.hour >= hour_start(since))
    if until is not None:
        query = query.where(NowcastRunRow.hour <= hour_start(until))
    return [_run(r) for r in session.scalars(query.order_by(NowcastRunRow.hour.desc()))]


def area_values(session: Session, run_id: int, kind: str = "lsoa") -> dict[str, tuple[float, float]]:
    """A run's values by area code: ``kind`` ``lsoa`` (at the LSOA's point) or ``borough`` (mean over its cells)."""
    if kind not in ("lsoa", "borough"):
        raise NowcastError(f"Unknown area kind {kind!r}: use lsoa or borough.")
    rows = session.execute(select(NowcastAreaRow.area_code, NowcastAreaRow.mean, NowcastAreaRow.std)
                           .where(NowcastAreaRow.run_id == run_id, NowcastAreaRow.area_kind == kind)
                           .order_by(NowcastAreaRow.area_code))
    return {code: (float(m), float(s)) for code, m, s in rows}


def area_series(session: Session, species: str, area_code: str, hours: int = 48,
                until: datetime | None = None) -> list[tuple[datetime, float, float]]:
    """(hour, mean, std) of one area over the ``hours`` hours up to ``until`` (default: the latest run), oldest first."""
    key = species_of(species)
    if until is None:
        newest = latest_run(session, key)
        if newest is None:
            return []
        until = newest.hour
    end = hour_start(until)
    start = end - timedelta(hours=hours - 1)
    rows = session.execute(
        select(NowcastRunRow.hour, NowcastAreaRow.mean, NowcastAreaRow.std)
        .join(NowcastAreaRow, NowcastAreaRow.run_id == NowcastRunRow.id)
        .where(NowcastRunRow.species == key, NowcastAreaRow.area_code == area_code,
               NowcastRunRow.hour >= start, NowcastRunRow.hour <= end)
        .order_by(NowcastRunRow.hour))
    return [(hour_start(h), float(m), float(s)) for h, m, s in rows]


def grid(settings: Settings, run: NowcastRun) -> Grid:
    """The run's stored grid; NowcastError if the run has none (hours computed for area values only)."""
    if run.grid_file is None:
        raise NowcastError(f"No grid was stored for {DISPLAY[run.species]} at {run.hour:%Y-%m-%d %H:00} UTC "
                           "(only its LSOA and borough values).")
    path = nowcast_dir(settings) / run.grid_file
    if not path.is_file():
        raise NowcastError(f"The grid file of {DISPLAY[run.species]} at {run.hour:%Y-%m-%d %H:00} UTC is missing.")
    with np.load(path) as stored:
        bounds = stored["bounds"]
        return Grid(stored["mean"], stored["std"], float(stored["origin"][0]), float(stored["origin"][1]),
                    float(stored["cell"]), ((float(bounds[0]), float(bounds[1])), (float(bounds[2]), float(bounds[3]))),
                    run.hour, run.species)


def grid_png(settings: Settings, run: NowcastRun, layer: str = "mean") -> bytes:
    """The run's grid layer (``mean``: the level scale; ``std``: the uncertainty scale) as a lon/lat-regular PNG
    for a Leaflet imageOverlay over ``Grid.bounds_wgs84``; cached next to the grid (named with the colours'
    version, so a change of colours is not hidden by an older image)."""
    if layer not in LAYERS:
        raise NowcastError(f"Unknown layer {layer!r}: use mean or std.")
    g = grid(settings, run)
    path = (nowcast_dir(settings) / run.grid_file).with_name(  # type: ignore[operator]
        f"{stamp(run.hour)}-{layer}-c{COLOURS_VERSION}.png")
    if path.is_file() and path.stat().st_mtime >= (nowcast_dir(settings) / run.grid_file).stat().st_mtime:  # type: ignore[operator]
        return path.read_bytes()
    data = render_png(g.mean if layer == "mean" else g.std, layer, run.species, g.origin_easting, g.origin_northing,
                      g.cell, nowcast_dir(settings) / "frames")
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return data


def _drop_images(grid_path: Path, hour: datetime) -> None:
    """Delete the cached images of a grid (every layer and colours version)."""
    for image in grid_path.parent.glob(f"{stamp(hour)}-*.png"):
        image.unlink(missing_ok=True)


def legend(layer: str, species: str) -> list[tuple[str, str]]:
    """(label, colour) of each colour of a layer's PNG (``mean``: DAQI indexes of the species; ``std``)."""
    if layer not in LAYERS:
        raise NowcastError(f"Unknown layer {layer!r}: use mean or std.")
    return _legend(layer, species_of(species))


# --- reading the sensor hub -------------------------------------------------------------------------

@dataclass
class Station:
    """A Datastream of the species in the hub, where it stands and whether it is a reference monitor."""

    datastream_id: int
    code: str  # LAQN site code, or the lamppost code
    reference: bool
    easting: float
    northing: float
    roadside: float


def hub_stations(session: Session, species: str) -> list[Station]:
    """The species' LAQN reference Datastreams and calibrated low-cost Datastreams, with positions."""
    from ...sensors import service as sensors_service
    from ...sensors.models import Datastream
    from .nowcast_geo import TO_BNG

    chosen: list[tuple[int, int, bool, dict[str, Any]]] = []
    for ds_id, thing_id, props in session.execute(select(Datastream.id, Datastream.thing_id, Datastream.properties)):
        props = props or {}
        if props.get("speciesCode") != species:
            continue
        if props.get("derived") and props.get("derivation") == "calibration":
            chosen.append((ds_id, thing_id, False, props))
        elif not props.get("derived") and not props.get("lowCost") and not props.get("lamppostCode") \
                and props.get("siteCode"):
            chosen.append((ds_id, thing_id, True, props))
    if not chosen:
        return []
    things = {t["id"]: t for t in sensors_service.thing_positions(session, {c[1] for c in chosen})}
    out = []
    for ds_id, thing_id, reference, props in chosen:
        thing = things.get(thing_id)
        if thing is None or thing["lon"] is None:
            continue
        tprops = thing["properties"]
        site_type = tprops.get("siteType") if reference else tprops.get("nearestSiteType", tprops.get("siteType"))
        e, n = TO_BNG.transform(thing["lon"], thing["lat"])
        code = str(tprops.get("siteCode") or tprops.get("lamppostCode") or props.get("siteCode") or f"DS{ds_id}")
        out.append(Station(int(ds_id), code, reference, float(e), float(n), 1.0 if site_type in ROAD_TYPES else 0.0))
    return out


def hourly_values(session: Session, stations: list[Station], start: datetime,
                  end: datetime) -> dict[tuple[int, datetime], float]:
    """Mean value per (Datastream, UTC hour) over ``[start, end)``."""
    from ...sensors.models import Observation

    if not stations:
        return {}
    sums: dict[tuple[int, datetime], list[float]] = {}
    ids = [s.datastream_id for s in stations]
    for i in range(0, len(ids), 500):
        query = (select(Observation.datastream_id, Observation.phenomenon_time_start, Observation.result_number)
                 .where(Observation.datastream_id.in_(ids[i:i + 500]), Observation.phenomenon_time_start >= start,
                        Observation.phenomenon_time_start < end, Observation.result_number.is_not(None)))
        for ds_id, when, value in session.execute(query):
            if value is None or not np.isfinite(value):
                continue
            key = (int(ds_id), hour_start(when))
            acc = sums.setdefault(key, [0.0, 0.0])
            acc[0] += float(value)
            acc[1] += 1
    return {k: v[0] / v[1] for k, v in sums.items()}


def eligible_hours(session: Session, species: str, after: datetime | None = None, limit: int = 48,
                   min_sites: int = MIN_REFERENCE_SITES, now: datetime | None = None) -> list[datetime]:
    """Complete hours (newest first, at most ``limit``, newer than ``after``) with readings from at least
    ``min_sites`` reference Datastreams of the species."""
    from ...sensors.models import Observation

    stations = [s for s in hub_stations(session, species_of(species)) if s.reference]
    if not stations:
        return []
    cutoff = hour_start(now or utcnow())  # the current hour is not complete
    query = (select(Observation.phenomenon_time_start, func.count(func.distinct(Observation.datastream_id)))
             .where(Observation.datastream_id.in_([s.datastream_id for s in stations]),
                    Observation.result_number.is_not(None), Observation.phenomenon_time_start < cutoff)
             .group_by(Observation.phenomenon_time_start)
             .having(func.count(func.distinct(Observation.datastream_id)) >= min_sites)
             .order_by(Observation.phenomenon_time_start.desc()).limit(limit * 4))
    if after is not None:
        query = query.where(Observation.phenomenon_time_start >= hour_start(after) + timedelta(hours=1))
    hours: list[datetime] = []
    for when, _count in session.execute(query):
        h = hour_start(when)
        if h not in hours and (after is None or h > hour_start(after)):
            hours.append(h)
        if len(hours) >= limit:
            break
    return hours


# --- the estimator -------------------------------------------------------------------------------

_MODELS: dict[str, Any] = {}
_MODELS_LOCK = threading.Lock()


def _hour_number(hour: datetime) -> float:
    return float(int(hour_start(hour).timestamp()) // 3600)


def _design(stations: list[Station], values: dict[tuple[int, datetime], float],
            hours: list[datetime]) -> tuple[np.ndarray, np.ndarray]:
    rows, ys = [], []
    for h in hours:
        hn = _hour_number(h)
        for s in stations:
            v = values.get((s.datastream_id, h))
            if v is not None:
                rows.append((hn, s.easting, s.northing, s.roadside))
                ys.append(v)
    return np.array(rows, dtype=float).reshape(-1, 4), np.array(ys, dtype=float)


def _context(stations: list[Station]) -> Any:
    from . import data
    from .evaluation import Context

    places = {s.code: (s.easting, s.northing) for s in stations if s.reference}
    try:
        weather = data.read_weather()
    except Exception:  # the bundled weather is optional input: without it the model's weather features are NaN
        weather = None
    try:
        traffic = data.read_traffic()
    except Exception:
        traffic = None
    return Context(weather, places, traffic)


def estimator_for(session: Session, settings: Settings, species: str, hour: datetime,
                  stations: list[Station]) -> tuple[Any, str, str, tuple[np.ndarray, np.ndarray] | None]:
    """The estimator for an hour, its method and version, and (for the kriging fallback, fitted by the caller
    with the hour's readings) the history to fit it on. The model is fitted once per species and day on the
    ``HISTORY_DAYS`` days before that day, and cached on disk and in memory."""
    from .estimators import AirQualityModel, KrigingSiteType
    from .evaluation import make_estimator

    day = hour_start(hour).replace(hour=0)
    path = nowcast_dir(settings) / "models" / f"{species}-{day:%Y%m%d}-v{AirQualityModel.FORMAT}.joblib"
    with _MODELS_LOCK:
        model = _MODELS.get(str(path))
        if model is None and path.is_file():
            import joblib

            try:
                model = joblib.load(path)
            except Exception:  # an unreadable cache is refitted
                model = None
        reference = [s for s in stations if s.reference]
        if model is None:
            history = hourly_values(session, reference, day - timedelta(days=HISTORY_DAYS), day)
            hours_seen = sorted({h for (_, h) in history})
            if len(hours_seen) < MIN_HISTORY_HOURS:
                # too little history for the model: kriging with a site-type term, its correlogram fitted on it
                return KrigingSiteType(), "kriging-sitetype", f"KrigingSiteType ({len(hours_seen)} h of history)", \
                    _design(reference, history, hours_seen)
            X, y = _design(reference, history, hours_seen)
            model = make_estimator("model", _context(stations)).fit(X, y)
            model.nowcast_history_hours_ = len(hours_seen)
            import joblib

            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            joblib.dump(model, tmp)
            tmp.replace(path)
        if len(_MODELS) > 6:  # a few days of every species stay in memory
            _MODELS.clear()
        _MODELS[str(path)] = model
    hours_used = getattr(model, "nowcast_history_hours_", "?")
    return model, "model", f"AirQualityModel {day:%Y-%m-%d} ({hours_used} h of history)", None


# --- the job -------------------------------------------------------------------------------------

Progress = Callable[[str], None]


def _note(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def run_nowcast(db: Database, settings: Settings, species: str, hour: datetime | None = None, *,
                progress: Progress | None = None, store_grid: bool = True, cell: float | None = None,
                min_sites: int = MIN_REFERENCE_SITES) -> NowcastRun:
    """Nowcast one species at one hour (None: the latest complete hour with enough reference readings),
    store it and return the run; re-running an hour replaces it. ``store_grid=False`` stores only the
    LSOA and borough values (boroughs then average a 1 km grid). Raises NowcastError when too few
    reference sites have a reading that hour (nothing is written)."""
    started = time.perf_counter()
    key = species_of(species)
    cell = float(cell or (CELL if store_grid else HISTORY_CELL))
    with db.session() as session:
        stations = hub_stations(session, key)
        if not any(s.reference for s in stations):
            raise NowcastError(f"The sensor hub has no {DISPLAY[key]} reference Datastreams: load the LAQN network "
                               "first (smartlondon sensors laqn load).")
        if hour is None:
            found = eligible_hours(session, key, limit=1, min_sites=min_sites)
            if not found:
                raise NowcastError(f"No complete hour has {DISPLAY[key]} readings from at least {min_sites} "
                                   "reference sites in the sensor hub.")
            hour = found[0]
        hour = hour_start(hour)
        _note(progress, "reading the hour's observations")
        now_values = hourly_values(session, stations, hour, hour + timedelta(hours=1))
        reporting = [s for s in stations if (s.datastream_id, hour) in now_values]
        n_reference = len({s.code for s in reporting if s.reference})
        n_sensor = len({s.code for s in reporting if not s.reference})
        if n_reference < min_sites:
            raise NowcastError(f"Only {n_reference} reference site(s) have a {DISPLAY[key]} reading for "
                               f"{hour:%Y-%m-%d %H:00} UTC: at least {min_sites} are needed.")
        _note(progress, "fitting or loading the model")
        estimator, method, version, history = estimator_for(session, settings, key, hour, stations)
        geography = load_geography(session)
    X_now, y_now = _design(reporting, now_values, [hour])
    if history is None:
        estimator.set_observations(X_now, y_now)
    else:
        estimator.fit(np.vstack([history[0], X_now]), np.concatenate([history[1], y_now]))
    frame = frame_for(geography, nowcast_dir(settings) / "frames", cell)
    _note(progress, f"predicting {int(frame.inside.sum()):,} cells and {len(geography.lsoa_codes):,} LSOAs")
    mean_cells, std_cells, mean_lsoa, std_lsoa = _predict(estimator, frame, geography, hour)
    values = _areas(frame, geography, mean_cells, std_cells, mean_lsoa, std_lsoa)
    relative = f"{key}/{stamp(hour)}.npz" if store_grid else None
    target = nowcast_dir(settings) / relative if relative else None
    tmp = None
    if target is not None:
        _note(progress, "writing the grid")
        tmp = _write_grid(target, frame, mean_cells, std_cells, hour)
    _note(progress, "storing the run")
    try:
        with db.session() as session:
            run = _store(session, settings, key, hour, method, version, n_reference, n_sensor,
                         int(frame.inside.sum()), relative, values, started)
            if tmp is not None and target is not None:
                tmp.replace(target)
                tmp = None
                _drop_images(target, hour)  # the cached images of a replaced grid
            _retain(session, settings, key)
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    run.seconds = round(time.perf_counter() - started, 3)
    with db.session() as session:  # the whole run's time, including the store
        row = session.get(NowcastRunRow, run.id)
        if row is not None:
            row.seconds = run.seconds
    return run


def run_areas(db: Database, settings: Settings, species: str, hours: list[datetime], *,
              progress: Progress | None = None, cell: float = HISTORY_CELL,
              min_sites: int = MIN_REFERENCE_SITES) -> list[NowcastRun]:
    """Nowcast many hours of a species at once, for their LSOA and borough values only (no grid; boroughs
    average a ``cell`` metre grid): one estimator (that of the newest hour's day) and one prediction per day
    of hours, one transaction per day. Hours with too few reference readings are skipped. Returns the runs
    made, oldest first."""
    key = species_of(species)
    wanted = sorted({hour_start(h) for h in hours})
    if not wanted:
        return []
    made: list[NowcastRun] = []
    with db.session() as session:
        stations = hub_stations(session, key)
        values = hourly_values(session, stations, wanted[0], wanted[-1] + timedelta(hours=1))
        geography = load_geography(session)
    frame = frame_for(geography, nowcast_dir(settings) / "frames", cell)
    east, north = frame.centres()
    points_e = np.concatenate([east, geography.lsoa_easting])
    points_n = np.concatenate([north, geography.lsoa_northing])
    n_points, n_cells = len(points_e), len(east)
    by_day: dict[datetime, list[datetime]] = {}
    for h in wanted:
        n_reference = len({s.code for s in stations if s.reference and (s.datastream_id, h) in values})
        if n_reference >= min_sites:
            by_day.setdefault(h.replace(hour=0), []).append(h)
    if not by_day:
        return []
    with db.session() as session:
        estimator, method, version, history = estimator_for(session, settings, key, max(by_day), stations)
    for day, day_hours in sorted(by_day.items()):
        started = time.perf_counter()
        _note(progress, f"{len(day_hours)} hours of {day:%Y-%m-%d}")
        X_now, y_now = _design(stations, values, day_hours)
        if history is None:
            estimator.set_observations(X_now, y_now)
        else:
            estimator.fit(np.vstack([history[0], X_now]), np.concatenate([history[1], y_now]))
        X = np.column_stack([np.repeat([_hour_number(h) for h in day_hours], n_points), np.tile(points_e, len(day_hours)),
                             np.tile(points_n, len(day_hours)), np.zeros(n_points * len(day_hours))])
        mean, std = estimator.predict(X, return_std=True)
        mean = np.maximum(mean, 0.0)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise NowcastError("The estimator returned no value for some places; nothing was stored.")
        share = (time.perf_counter() - started) / len(day_hours)
        with db.session() as session:
            for i, h in enumerate(day_hours):
                m, sd = mean[i * n_points:(i + 1) * n_points], std[i * n_points:(i + 1) * n_points]
                rows = _areas(frame, geography, m[:n_cells], sd[:n_cells], m[n_cells:], sd[n_cells:])
                reporting = {(s.code, s.reference) for s in stations if (s.datastream_id, h) in values}
                run = _store(session, settings, key, h, method, version, sum(1 for _, r in reporting if r),
                             sum(1 for _, r in reporting if not r), n_cells, None, rows, time.perf_counter() - share)
                made.append(run)
            _retain(session, settings, key)
    return made


def _predict(estimator: Any, frame: Frame, geography: Geography,
             hour: datetime) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    east, north = frame.centres()
    points_e = np.concatenate([east, geography.lsoa_easting])
    points_n = np.concatenate([north, geography.lsoa_northing])
    X = np.column_stack([np.full(len(points_e), _hour_number(hour)), points_e, points_n, np.zeros(len(points_e))])
    mean, std = estimator.predict(X, return_std=True)
    mean = np.maximum(mean, 0.0)  # a concentration is never negative
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        raise NowcastError("The estimator returned no value for some places; nothing was stored.")
    n = len(east)
    return mean[:n], std[:n], mean[n:], std[n:]


def _areas(frame: Frame, geography: Geography, mean_cells: np.ndarray, std_cells: np.ndarray,
           mean_lsoa: np.ndarray, std_lsoa: np.ndarray) -> list[dict[str, Any]]:
    """The area rows: each LSOA's point, and each borough's mean (and mean std) over its cells."""
    which = frame.borough[frame.inside]
    k = len(frame.borough_codes)
    count = np.bincount(which, minlength=k)
    bmean = np.bincount(which, weights=mean_cells, minlength=k) / np.maximum(count, 1)
    bstd = np.bincount(which, weights=std_cells, minlength=k) / np.maximum(count, 1)
    rows = [{"area_code": c, "area_kind": "lsoa", "mean": round(float(m), 3), "std": round(float(s), 3)}
            for c, m, s in zip(geography.lsoa_codes, mean_lsoa, std_lsoa)]
    rows += [{"area_code": c, "area_kind": "borough", "mean": round(float(bmean[i]), 3), "std": round(float(bstd[i]), 3)}
             for i, c in enumerate(frame.borough_codes) if count[i] > 0]
    return rows


def _write_grid(target: Path, frame: Frame, mean_cells: np.ndarray, std_cells: np.ndarray, hour: datetime) -> Path:
    """Write the grid next to ``target`` (a temporary name, renamed when the run is stored)."""
    mean = np.full(frame.shape, np.nan, dtype=np.float32)
    std = np.full(frame.shape, np.nan, dtype=np.float32)
    inside = frame.inside
    mean[inside] = mean_cells
    std[inside] = std_cells
    (south, west), (north, east) = frame.bounds_wgs84
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
    np.savez_compressed(tmp, mean=mean, std=std, origin=np.array([frame.origin_easting, frame.origin_northing]),
                        cell=frame.cell, bounds=np.array([south, west, north, east]),
                        hour=np.array(hour.isoformat()))
    return tmp


def _store(session: Session, settings: Settings, species: str, hour: datetime, method: str, version: str,
           n_reference: int, n_sensor: int, n_cells: int, grid_file: str | None, values: list[dict[str, Any]],
           started: float) -> NowcastRun:
    """Replace the run of (species, hour) and its area rows; touch the catalogue dataset."""
    old = session.scalar(select(NowcastRunRow.id).where(NowcastRunRow.species == species, NowcastRunRow.hour == hour))
    if old is not None:
        session.execute(delete(NowcastAreaRow).where(NowcastAreaRow.run_id == old))
        session.execute(delete(NowcastRunRow).where(NowcastRunRow.id == old))
        session.flush()
    row = NowcastRunRow(species=species, hour=hour, created_at=utcnow(), method=method, model_version=version,
                        n_reference_sites=n_reference, n_sensor_sites=n_sensor, n_cells=n_cells, grid_file=grid_file,
                        seconds=round(time.perf_counter() - started, 3))
    session.add(row)
    session.flush()
    for i in range(0, len(values), 2000):
        session.execute(insert(NowcastAreaRow), [{"run_id": row.id, **v} for v in values[i:i + 2000]])
    touch_catalogue(session, settings, hour)
    session.flush()
    return _run(row)


def _retain(session: Session, settings: Settings, species: str) -> int:
    """Delete the runs (rows and grids) of hours older than ``nowcast_keep_days`` before the newest run."""
    keep = int(getattr(settings, "nowcast_keep_days", 7) or 0)
    if keep <= 0:
        return 0
    newest = session.scalar(select(func.max(NowcastRunRow.hour)).where(NowcastRunRow.species == species))
    if newest is None:
        return 0
    cutoff = hour_start(newest) - timedelta(days=keep)
    old = session.execute(select(NowcastRunRow.id, NowcastRunRow.grid_file, NowcastRunRow.hour)
                          .where(NowcastRunRow.species == species, NowcastRunRow.hour <= cutoff)).all()
    if not old:
        return 0
    ids = [r[0] for r in old]
    session.execute(delete(NowcastAreaRow).where(NowcastAreaRow.run_id.in_(ids)))
    session.execute(delete(NowcastRunRow).where(NowcastRunRow.id.in_(ids)))
    session.flush()
    for _, grid_file, when in old:
        if grid_file:
            path = nowcast_dir(settings) / grid_file
            path.unlink(missing_ok=True)
            _drop_images(path, when)
    return len(ids)


# --- the catalogue dataset --------------------------------------------------------------------------

NOWCAST_API = "/api/airquality/nowcast"


def ensure_catalogue_dataset(session: Session, settings: Settings) -> bool:
    """Create the catalogue dataset of the nowcast (GLA, OGL) with its endpoint resources; False if present."""
    from ...catalogue import service as catalogue
    from ...catalogue.models import Dataset
    from ...core.accounts import COMMAND_LINE

    if session.scalar(select(Dataset.id).where(Dataset.slug == DATASET_SLUG)) is not None:
        return False
    base = settings.base_url.rstrip("/")
    ds = catalogue.create_dataset(session, COMMAND_LINE, {
        "slug": DATASET_SLUG, "title": DATASET_TITLE, "publisher": "greater-london-authority",
        "licence": "OGL-UK-3.0", "frequency": "hourly", "themes": ["environment"],
        "keywords": ["air quality", "nitrogen dioxide", "pm2.5", "pm10", "nowcast", "daqi"],
        "description": ("Hourly estimates of nitrogen dioxide (NO₂), PM2.5 and PM10 on a 100 m grid over Greater "
                        "London and at every LSOA, with a standard deviation saying how sure each estimate is, made "
                        "from the London Air Quality Network's reference monitors and calibrated low-cost sensors "
                        "by the air quality model (see the model card at /insights/airquality/model). Grid cells "
                        "and LSOA points are estimated as background locations, away from a road's kerb. Updated "
                        "every hour; the last 7 days are kept."),
    })
    resources = []
    for key in SPECIES:
        name = DISPLAY[key]
        resources += [
            (f"{name} at every LSOA (CSV)", "CSV", f"{NOWCAST_API}/{key}/lsoa.csv",
             f"The latest hour's {name} at each LSOA's representative point: mean, standard deviation, 90% interval."),
            (f"{name} at every LSOA (GeoJSON)", "GeoJSON", f"{NOWCAST_API}/{key}/lsoa.geojson",
             f"The latest hour's {name} at each LSOA, as points with the DAQI index and band."),
            (f"{name} by borough (GeoJSON)", "GeoJSON", f"{NOWCAST_API}/{key}/boroughs.geojson",
             f"The latest hour's {name} averaged over each borough's 100 m cells."),
            (f"{name} map image (PNG)", "PNG", f"{NOWCAST_API}/{key}/grid.png",
             f"The latest hour's {name} grid as an image coloured by level (legend and bounds: grid.json)."),
        ]
    for title, fmt, path, description in resources:
        catalogue.add_resource(session, COMMAND_LINE, ds, {"title": title, "format": fmt, "url": base + path,
                                                           "description": description})
    return True


def touch_catalogue(session: Session, settings: Settings, hour: datetime) -> None:
    """Move the dataset's temporal coverage and latest hour forward (so its ``modified`` changes)."""
    from ...catalogue import service as catalogue
    from ...catalogue.models import Dataset
    from ...core.accounts import COMMAND_LINE

    ds = session.scalar(select(Dataset).where(Dataset.slug == DATASET_SLUG))
    if ds is None:
        return
    first = session.scalar(select(func.min(NowcastRunRow.hour)))
    last = session.scalar(select(func.max(NowcastRunRow.hour)))
    first_day: date = hour_start(first).date() if first else hour.date()
    last_hour = hour_start(last) if last else hour
    extras = dict(ds.extras or {})
    extras["latest_hour"] = last_hour.isoformat().replace("+00:00", "Z")
    extras["latest_run_at"] = utcnow().replace(microsecond=0).isoformat().replace("+00:00", "Z")
    catalogue.update_dataset(session, COMMAND_LINE, ds, {"temporal_start": first_day.isoformat(),
                                                         "temporal_end": last_hour.date().isoformat(),
                                                         "extras": extras})


# --- many hours, the scheduler, the demo ------------------------------------------------------------

def run_pending(db: Database, settings: Settings, species: str, *, limit: int = 24,
                progress: Progress | None = None, now: datetime | None = None) -> list[NowcastRun]:
    """Run every complete hour newer than the species' latest run that has enough reference readings
    (oldest first, at most ``limit``; with no run yet, only the newest such hour)."""
    key = species_of(species)
    with db.session() as session:
        latest = latest_run(session, key)
        hours = eligible_hours(session, key, after=latest.hour if latest else None,
                               limit=limit if latest else 1, now=now)
    done = []
    for h in sorted(hours):
        done.append(run_nowcast(db, settings, key, h, progress=progress))
    return done


class NowcastScheduler(TickingThread):
    """Runs each new complete hour of every species while ``serve`` runs (``SMARTLONDON_NOWCAST=1``)."""

    thread_name = "aq-nowcast"

    def __init__(self, db: Database, settings: Settings, interval: float) -> None:
        super().__init__(interval)
        self.db = db
        self.settings = settings
        self.made = 0

    def tick(self) -> int:
        """One round: every species' pending hours; returns how many runs were made."""
        made = 0
        for key in SPECIES:
            if self.stopping:
                break
            try:
                made += len(run_pending(self.db, self.settings, key))
            except NowcastError as exc:
                log.info("nowcast %s: %s", key, exc)
        self.made += made
        return made


def install(app: Any) -> None:
    """Run the nowcast scheduler while the app runs, when ``SMARTLONDON_NOWCAST`` is on."""
    settings = app.state.settings
    if not getattr(settings, "nowcast_scheduler", False):
        return
    run_during_lifespan(app, "nowcast", lambda application: NowcastScheduler(
        application.state.db, settings, float(getattr(settings, "nowcast_tick_seconds", 300.0))))


def load_demo(db: Database, settings: Settings, progress: Any = None, history_hours: int = 47) -> dict[str, Any]:
    """The demo's nowcast: the catalogue dataset, the grid of the latest hour with enough readings for each
    species, and the LSOA/borough values of the ``history_hours`` hours before it (no grids)."""
    started = time.perf_counter()
    with db.session() as session:
        dataset_created = ensure_catalogue_dataset(session, settings)
    task = progress.add_task("Nowcasting air quality", total=len(SPECIES) * (history_hours + 1)) if progress else None
    made: dict[str, int] = {}
    for key in SPECIES:
        try:
            with db.session() as session:
                newest = eligible_hours(session, key, limit=1)
                stored = get_run(session, key, newest[0]) if newest else None
            latest = stored if stored is not None and stored.has_grid else run_nowcast(db, settings, key)
        except NowcastError as exc:
            log.warning("demo nowcast %s: %s", key, exc)
            made[key] = 0
            continue
        with db.session() as session:
            have = {r.hour for r in runs(session, key, since=latest.hour - timedelta(hours=history_hours))}
        wanted = [latest.hour - timedelta(hours=back) for back in range(1, history_hours + 1)]
        done = run_areas(db, settings, key, [h for h in wanted if h not in have])
        if progress is not None and task is not None:
            progress.advance(task, history_hours + 1)
        made[key] = 1 + len(done)
    return {"runs": made, "seconds": round(time.perf_counter() - started, 1), "dataset_created": dataset_created}
