"""Fitting, applying and listing calibrations of low-cost Datastreams (no HTTP here).

* :func:`fit_calibration` pairs a low-cost Datastream with a co-located reference Datastream hour by
  hour over a window (each side's values averaged per UTC hour; values QC flagged ``range``,
  ``stuck`` or ``spike`` left out), adds the hour's relative humidity and air temperature when the
  low-cost or the reference Thing has Datastreams of them, fits a model (``estimators.KINDS``) and
  stores it as the next version for that low-cost Datastream; with ``apply`` it becomes the active
  one at once.
* :func:`apply_calibration` makes a calibration the active one: it creates (or relabels) the
  derived calibrated Datastream and fills it with the calibrated values of the raw Observations it
  does not cover yet; with ``recompute`` it first removes every calibrated value so that all are
  recomputed with this version. Without ``recompute``, calibrated values keep the version that
  made them (in their ``parameters.calibration``).
* :func:`write_calibrated` writes calibrated Observations for raw rows, through the service layer's
  ``Writer`` (so ``sta_latest``, spans, QC and MQTT notifications treat them like any other).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select

from ...core.errors import BadRequest, NotFound
from .. import service
from ..models import Datastream, Location, Observation, ObservedProperty, ThingLocation
from .estimators import DEFAULT_KIND, KINDS, Pairs, model_of
from .models import Calibration

TEMPERATURE_DEFINITION = "http://vocab.nerc.ac.uk/standard_name/air_temperature/"
HUMIDITY_DEFINITION = "http://vocab.nerc.ac.uk/standard_name/relative_humidity/"
DEFAULT_DISTANCE_M = 50.0
MAX_DISTANCE_M = 5000.0
EXCLUDED_FLAGS = {"range", "stuck", "spike"}
COVARIATE_REACH = timedelta(hours=2)  # a covariate value stands for the two hours after it


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def thing_point(session: Any, thing_id: int) -> tuple[float, float] | None:
    """(longitude, latitude) of a Thing's first Location, when it is a point."""
    geometry = session.scalar(select(Location.location).join(ThingLocation, ThingLocation.location_id == Location.id)
                              .where(ThingLocation.thing_id == thing_id).order_by(Location.id).limit(1))
    if isinstance(geometry, dict) and geometry.get("type") == "Feature":
        geometry = geometry.get("geometry")
    if isinstance(geometry, dict) and geometry.get("type") == "Point":
        coords = geometry.get("coordinates") or []
        if len(coords) >= 2:
            return float(coords[0]), float(coords[1])
    return None


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres between two (longitude, latitude) points."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def covariate_stream(session: Any, definition: str, thing_ids: list[int]) -> int | None:
    """The first Datastream measuring ``definition`` on the first of ``thing_ids`` that has one."""
    for thing_id in thing_ids:
        found = session.scalar(select(Datastream.id).join(ObservedProperty, ObservedProperty.id == Datastream.observed_property_id)
                               .where(Datastream.thing_id == thing_id, ObservedProperty.definition == definition)
                               .order_by(Datastream.id).limit(1))
        if found is not None:
            return int(found)
    return None


def _hourly(session: Any, datastream_id: int, start: datetime, end: datetime, skip_flagged: bool) -> dict[int, float]:
    """Mean numeric value per UTC hour (epoch hour number) of a Datastream in [start, end)."""
    sums: dict[int, list[float]] = {}
    for when, value, quality in session.execute(
            select(Observation.phenomenon_time_start, Observation.result_number, Observation.result_quality)
            .where(Observation.datastream_id == datastream_id, Observation.result_number.is_not(None),
                   Observation.phenomenon_time_start >= start, Observation.phenomenon_time_start < end)):
        if skip_flagged and isinstance(quality, dict) and isinstance(quality.get("qc"), dict) \
                and EXCLUDED_FLAGS & set(quality["qc"].get("flags") or []):
            continue
        hour = int(_utc(when).timestamp()) // 3600
        sums.setdefault(hour, []).append(float(value))
    return {h: sum(v) / len(v) for h, v in sums.items()}


def _stream(session: Any, datastream_id: Any, role: str) -> Datastream:
    if isinstance(datastream_id, bool) or not isinstance(datastream_id, int) or datastream_id <= 0:
        raise BadRequest(f"{role} must be a Datastream id (a positive whole number); got {datastream_id!r}.")
    stream = session.get(Datastream, datastream_id)
    if stream is None:
        raise BadRequest(f"{role} names Datastream {datastream_id}, which does not exist.")
    return stream


def fit_calibration(session: Any, low_cost_id: Any, reference_id: Any, start: datetime, end: datetime, *,
                    kind: str = DEFAULT_KIND, max_distance_m: float = DEFAULT_DISTANCE_M,
                    humidity_id: int | None = None, temperature_id: int | None = None,
                    apply: bool = True, recompute: bool = False, base_url: str = "") -> Calibration:
    """Fit a calibration of a low-cost Datastream against a co-located reference one over [start, end)."""
    model_class = model_of(kind)
    low = _stream(session, low_cost_id, "lowCost")
    ref = _stream(session, reference_id, "reference")
    if low.id == ref.id:
        raise BadRequest("lowCost and reference are the same Datastream: calibrate a low-cost sensor against "
                         "a different, reference one.")
    if (low.properties or {}).get("derived"):
        raise BadRequest(f"Datastream {low.id} is itself a derived (calibrated) Datastream: calibrate its raw one.")
    if low.observed_property_id != ref.observed_property_id:
        raise BadRequest(f"Datastreams {low.id} and {ref.id} measure different ObservedProperties: a calibration "
                         "pairs readings of the same thing.")
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise BadRequest("The fit window's end must be later than its start.")
    if not 0 < max_distance_m <= MAX_DISTANCE_M:
        raise BadRequest(f"maxDistance must be more than 0 and at most {MAX_DISTANCE_M:.0f} metres.")
    a, b = thing_point(session, low.thing_id), thing_point(session, ref.thing_id)
    distance = None
    if low.thing_id != ref.thing_id:
        if a is None or b is None:
            raise BadRequest("Both sensors' Things need a point Location to check that they are co-located.")
        distance = distance_m(a, b)
        if distance > max_distance_m:
            raise BadRequest(f"The sensors are {distance:.0f} m apart, more than maxDistance ({max_distance_m:.0f} m): "
                             "a calibration needs a reference monitor co-located with the low-cost sensor.")
    things = [low.thing_id, ref.thing_id]
    if humidity_id is not None:
        _stream(session, humidity_id, "humidity")
    if temperature_id is not None:
        _stream(session, temperature_id, "temperature")
    humidity_id = humidity_id or covariate_stream(session, HUMIDITY_DEFINITION, things)
    temperature_id = temperature_id or covariate_stream(session, TEMPERATURE_DEFINITION, things)
    raw = _hourly(session, low.id, start, end, True)
    reference = _hourly(session, ref.id, start, end, True)
    hours = sorted(set(raw) & set(reference))
    if not hours:
        raise BadRequest(f"Datastreams {low.id} and {ref.id} have no hour with readings from both between "
                         f"{service.format_time(start)} and {service.format_time(end)}: choose a window where both reported.")
    covariates = {name: _hourly(session, sid, start, end, True) if sid else {}
                  for name, sid in (("humidity", humidity_id), ("temperature", temperature_id))}
    pairs = Pairs.of([raw[h] for h in hours], [reference[h] for h in hours],
                     [covariates["humidity"].get(h, np.nan) for h in hours],
                     [covariates["temperature"].get(h, np.nan) for h in hours],
                     [datetime.fromtimestamp(h * 3600, timezone.utc) for h in hours])
    model = model_class().fit(pairs)
    version = (session.scalar(select(func.max(Calibration.version)).where(Calibration.datastream_id == low.id)) or 0) + 1
    calibration = Calibration(
        datastream_id=low.id, reference_datastream_id=ref.id, humidity_datastream_id=humidity_id,
        temperature_datastream_id=temperature_id, kind=model.kind, code_version=model.code_version, version=version,
        params=model.params, fit_start=start, fit_end=end, stats=model.fit_stats,
        distance_m=None if distance is None else round(distance, 1), active=False)
    previous = session.scalar(select(Calibration).where(Calibration.datastream_id == low.id,
                                                        Calibration.derived_datastream_id.is_not(None))
                              .order_by(Calibration.version.desc()).limit(1))
    if previous is not None:
        calibration.derived_datastream_id = previous.derived_datastream_id
    session.add(calibration)
    session.flush()
    if apply:
        apply_calibration(session, calibration.id, recompute=recompute, base_url=base_url)
    return calibration


def _derived_properties(raw: Datastream, calibration: Calibration) -> dict[str, Any]:
    props = {k: v for k, v in (raw.properties or {}).items() if k in ("species", "speciesCode", "siteCode", "resolution")}
    props.update({"derived": True, "derivation": "calibration",
                  "derivedFrom": {"Datastream@iot.id": raw.id},
                  "calibration": {"@iot.id": calibration.id, "version": calibration.version, "kind": calibration.kind,
                                  "referenceDatastream@iot.id": calibration.reference_datastream_id}})
    return props


def apply_calibration(session: Any, calibration_id: int, *, recompute: bool = False, base_url: str = "") -> Calibration:
    """Make a calibration the active one for its low-cost Datastream and fill the derived Datastream."""
    calibration = session.get(Calibration, calibration_id)
    if calibration is None:
        raise NotFound(f"There is no calibration with id {calibration_id}.")
    raw = session.get(Datastream, calibration.datastream_id)
    assert raw is not None
    for other in session.scalars(select(Calibration).where(Calibration.datastream_id == raw.id,
                                                           Calibration.id != calibration.id, Calibration.active.is_(True))):
        other.active = False
    calibration.active = True
    properties = _derived_properties(raw, calibration)
    derived_id = calibration.derived_datastream_id
    if derived_id is None or session.get(Datastream, derived_id) is None:
        made = service.create_from_path(session, "Datastreams", {
            "name": f"{raw.name} (calibrated)",
            "description": f"Calibrated values of Datastream {raw.id} ({raw.name}), derived by a "
                           f"{calibration.kind} calibration against reference Datastream "
                           f"{calibration.reference_datastream_id}.",
            "observationType": raw.observation_type, "unitOfMeasurement": raw.unit_of_measurement,
            "properties": properties, "Thing": {"@iot.id": raw.thing_id}, "Sensor": {"@iot.id": raw.sensor_id},
            "ObservedProperty": {"@iot.id": raw.observed_property_id}}, base_url)
        derived_id = int(made["@iot.id"])
    else:
        service.update_at_path(session, f"Datastreams({derived_id})", {"properties": properties}, base_url)
    calibration.derived_datastream_id = derived_id
    for other in session.scalars(select(Calibration).where(Calibration.datastream_id == raw.id,
                                                           Calibration.derived_datastream_id.is_(None))):
        other.derived_datastream_id = derived_id
    session.flush()
    if recompute:
        session.execute(delete(Observation).where(Observation.datastream_id == derived_id))
        service.refresh_stream(session, Datastream, derived_id)
    backfill(session, calibration, base_url)
    return calibration


def backfill(session: Any, calibration: Calibration, base_url: str = "", chunk: int = 5000) -> int:
    """Calibrate the raw Observations newer than the derived Datastream's newest value; returns how many."""
    derived_id = calibration.derived_datastream_id
    assert derived_id is not None
    newest = session.scalar(select(func.max(Observation.phenomenon_time_start))
                            .where(Observation.datastream_id == derived_id))
    query = (select(Observation.id, Observation.phenomenon_time_start, Observation.phenomenon_time_end,
                    Observation.result, Observation.result_number, Observation.feature_of_interest_id)
             .where(Observation.datastream_id == calibration.datastream_id, Observation.result_number.is_not(None))
             .order_by(Observation.phenomenon_time_start, Observation.id))
    if newest is not None:
        query = query.where(Observation.phenomenon_time_start > newest)
    rows = [{"id": r.id, "phenomenon_time_start": _utc(r.phenomenon_time_start),
             "phenomenon_time_end": r.phenomenon_time_end, "result": r.result, "result_number": r.result_number,
             "feature_of_interest_id": r.feature_of_interest_id, "datastream_id": calibration.datastream_id}
            for r in session.execute(query)]
    writer = service.Writer(session, base_url)
    for i in range(0, len(rows), chunk):
        write_calibrated(writer, calibration, rows[i:i + chunk])
    service.flush_events(session)
    return len(rows)


def _covariate_at(session: Any, datastream_id: int | None, times: list[datetime]) -> np.ndarray:
    """The value of a covariate Datastream at each time: its latest value at or before it, within reach."""
    out = np.full(len(times), np.nan)
    if datastream_id is None or not times:
        return out
    low, high = min(times) - COVARIATE_REACH, max(times)
    found = session.execute(select(Observation.phenomenon_time_start, Observation.result_number)
                            .where(Observation.datastream_id == datastream_id, Observation.result_number.is_not(None),
                                   Observation.phenomenon_time_start >= low, Observation.phenomenon_time_start <= high)
                            .order_by(Observation.phenomenon_time_start)).all()
    if not found:
        return out
    stamps = np.array([_utc(t).timestamp() for t, _ in found])
    values = np.array([float(v) for _, v in found])
    wanted = np.array([_utc(t).timestamp() for t in times])
    at = np.searchsorted(stamps, wanted, side="right") - 1
    ok = (at >= 0) & (wanted - stamps[np.clip(at, 0, None)] <= COVARIATE_REACH.total_seconds())
    out[ok] = values[at[ok]]
    return out


def write_calibrated(writer: Any, calibration: Calibration, rows: list[dict[str, Any]]) -> int:
    """Store the calibrated Observations of raw Observation rows (ids set) in the derived Datastream."""
    rows = [r for r in rows if r.get("result_number") is not None]
    if not rows or calibration.derived_datastream_id is None:
        return 0
    session = writer.session
    times = [_utc(r["phenomenon_time_start"]) for r in rows]
    model = KINDS[calibration.kind].from_params(calibration.params)
    predicted = model.predict([r["result_number"] for r in rows],
                              _covariate_at(session, calibration.humidity_datastream_id, times),
                              _covariate_at(session, calibration.temperature_datastream_id, times))
    label = {"@iot.id": calibration.id, "version": calibration.version, "kind": calibration.kind}
    out = []
    for row, value in zip(rows, predicted):
        result = round(float(value), 2)
        out.append({"phenomenon_time_start": row["phenomenon_time_start"],
                    "phenomenon_time_end": row.get("phenomenon_time_end"), "result_time": None,
                    "result": result, "result_number": result, "result_quality": None,
                    "valid_time_start": None, "valid_time_end": None,
                    "parameters": {"calibration": label, "rawObservation@iot.id": row["id"]},
                    "datastream_id": calibration.derived_datastream_id, "multi_datastream_id": None,
                    "feature_of_interest_id": row["feature_of_interest_id"]})
    writer.insert_observations(out)
    return len(out)


def list_calibrations(session: Any, *, datastream_id: int | None = None, thing_id: int | None = None,
                      active_only: bool = False) -> list[Calibration]:
    """Calibrations, newest first, optionally of one low-cost Datastream or of one Thing's Datastreams."""
    query = select(Calibration).order_by(Calibration.datastream_id, Calibration.version.desc())
    if datastream_id is not None:
        query = query.where(Calibration.datastream_id == datastream_id)
    if thing_id is not None:
        query = query.where(Calibration.datastream_id.in_(select(Datastream.id).where(Datastream.thing_id == thing_id)))
    if active_only:
        query = query.where(Calibration.active.is_(True))
    return list(session.scalars(query))


def calibration_json(calibration: Calibration, root: str) -> dict[str, Any]:
    """A calibration as the API shows it (``root``: the SensorThings service root)."""
    def link(datastream_id: int | None) -> str | None:
        return None if datastream_id is None else f"{root}/Datastreams({datastream_id})"

    return {
        "@iot.id": calibration.id, "@iot.selfLink": f"{root}/ext/calibrations/{calibration.id}",
        "kind": calibration.kind, "codeVersion": calibration.code_version, "version": calibration.version,
        "active": calibration.active, "created": service.format_time(calibration.created),
        "fitWindow": f"{service.format_time(calibration.fit_start)}/{service.format_time(calibration.fit_end)}",
        "distanceMetres": calibration.distance_m,
        "lowCostDatastream@iot.id": calibration.datastream_id,
        "lowCostDatastream@iot.navigationLink": link(calibration.datastream_id),
        "referenceDatastream@iot.id": calibration.reference_datastream_id,
        "referenceDatastream@iot.navigationLink": link(calibration.reference_datastream_id),
        "derivedDatastream@iot.id": calibration.derived_datastream_id,
        "derivedDatastream@iot.navigationLink": link(calibration.derived_datastream_id),
        "humidityDatastream@iot.id": calibration.humidity_datastream_id,
        "temperatureDatastream@iot.id": calibration.temperature_datastream_id,
        "params": calibration.params, "fitStatistics": calibration.stats,
    }
