"""Refitting applied calibrations as new co-located pairs arrive (docs/sensors-calibration.md).

A low-cost sensor drifts, so an applied (active) calibration is checked again every
``calibration_refit_days`` (``SMARTLONDON_CALIBRATION_REFIT_DAYS``, default 7; 0 turns refits off):

1. **Enough new pairs?** The hours since the end of the calibration's fit window in which both
   the low-cost and the reference Datastream reported (QC-flagged values left out, as in a fit).
   Fewer than ``MIN_NEW_PAIRS`` (48): no refit.
2. **Held-out recent pairs.** The most recent quarter of those new hours (at least
   ``MIN_HELD_OUT``) is held out. A candidate of the same kind is fitted on the pairs of a window
   as long as the original fit window, ending where the held-out hours begin; the held-out hours
   are never seen by the fit.
3. **Better?** The current and the candidate model both predict the held-out hours. The candidate
   becomes a new version, and is applied (new raw Observations are calibrated with it; values
   already calibrated keep the version that made them), only if its RMSE there is at least
   ``MIN_GAIN`` (2 %) lower than the current one's.

Every check, refit or not, is recorded with its reason, the pair counts and both held-out RMSEs in
the checked calibration's ``stats.refitChecks`` (the last ``KEEP_CHECKS``); a new version also
carries ``stats.refit`` (what it replaced and why). The Thing page lists every version.
:class:`RefitScheduler` runs :func:`refit_due` in ``serve``; ``smartlondon sensors calibrate
--refit-due`` runs it once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import select

from ...core.background import TickingThread, run_during_lifespan
from ...core.db import Database
from ...core.errors import PlatformError
from .. import service as sta_service
from . import service
from .estimators import KINDS, Pairs, agreement
from .models import Calibration

MIN_NEW_PAIRS = 48
MIN_HELD_OUT = 12
HELD_OUT_FRACTION = 0.25
MIN_GAIN = 0.02
KEEP_CHECKS = 20


@dataclass
class RefitDecision:
    """What one check of one calibration decided, and why."""

    calibration_id: int
    datastream_id: int
    version: int
    refit: bool
    reason: str
    checked_at: datetime
    new_pairs: int = 0
    held_out: int = 0
    current_rmse: float | None = None
    candidate_rmse: float | None = None
    new_calibration_id: int | None = None
    new_version: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        """The JSON kept in ``stats.refitChecks``."""
        return {"at": sta_service.format_time(self.checked_at), "refit": self.refit, "reason": self.reason,
                "newPairs": self.new_pairs, "heldOut": self.held_out, "currentRmse": self.current_rmse,
                "candidateRmse": self.candidate_rmse, "newVersion": self.new_version}


def pairs_between(session: Any, calibration: Calibration, start: datetime, end: datetime) -> Pairs:
    """The co-located hourly pairs of a calibration's Datastreams in ``[start, end)`` (as a fit builds them)."""
    raw = service._hourly(session, calibration.datastream_id, start, end, True)  # noqa: SLF001
    reference = service._hourly(session, calibration.reference_datastream_id, start, end, True)  # noqa: SLF001
    hours = sorted(set(raw) & set(reference))
    covariates = {name: service._hourly(session, sid, start, end, True) if sid else {}  # noqa: SLF001
                  for name, sid in (("humidity", calibration.humidity_datastream_id),
                                    ("temperature", calibration.temperature_datastream_id))}
    return Pairs.of([raw[h] for h in hours], [reference[h] for h in hours],
                    [covariates["humidity"].get(h, np.nan) for h in hours],
                    [covariates["temperature"].get(h, np.nan) for h in hours],
                    [datetime.fromtimestamp(h * 3600, timezone.utc) for h in hours])


def _rmse(model: Any, pairs: Pairs) -> float:
    return float(agreement(model.predict(pairs.raw, pairs.humidity, pairs.temperature), pairs.reference)["rmse"])


def _slice(pairs: Pairs, start: int, stop: int | None = None) -> Pairs:
    return Pairs(pairs.raw[start:stop], pairs.reference[start:stop], pairs.humidity[start:stop],
                 pairs.temperature[start:stop], pairs.times[start:stop])


def last_checked(calibration: Calibration) -> datetime:
    """When the calibration was last fitted, made by a refit, or checked."""
    stats = calibration.stats or {}
    checks = stats.get("refitChecks") or []
    when = service._utc(calibration.fit_end)  # noqa: SLF001
    stamps = [checks[-1].get("at")] if checks else []
    if isinstance(stats.get("refit"), dict):
        stamps.append(stats["refit"].get("at"))
    for stamp in stamps:
        if isinstance(stamp, str):
            when = max(when, datetime.fromisoformat(stamp.replace("Z", "+00:00")))
    return when


def check_calibration(session: Any, calibration: Calibration, now: datetime, base_url: str = "") -> RefitDecision:
    """Check one applied calibration: refit it into a new, applied version when that is better (see the module)."""
    now = now.astimezone(timezone.utc)
    decision = RefitDecision(calibration.id, calibration.datastream_id, calibration.version, False, "", now)
    fit_end = service._utc(calibration.fit_end)  # noqa: SLF001
    new = pairs_between(session, calibration, fit_end, now)
    decision.new_pairs = len(new)
    if len(new) < MIN_NEW_PAIRS:
        decision.reason = (f"Only {len(new)} new co-located hours since the fit window ended; a refit needs "
                           f"{MIN_NEW_PAIRS}.")
        return _record(calibration, decision)
    held = max(MIN_HELD_OUT, math.ceil(len(new) * HELD_OUT_FRACTION))
    held_out = _slice(new, len(new) - held)
    decision.held_out = held
    holdout_start = held_out.times[0]
    length = service._utc(calibration.fit_end) - service._utc(calibration.fit_start)  # noqa: SLF001
    train_start = holdout_start - max(length, timedelta(hours=MIN_NEW_PAIRS))
    train = pairs_between(session, calibration, train_start, holdout_start)
    model_class = KINDS[calibration.kind]
    try:
        candidate = model_class().fit(train)
    except PlatformError as exc:
        decision.reason = f"The candidate could not be fitted on {len(train)} pairs: {exc.message}"
        return _record(calibration, decision)
    current = model_class.from_params(calibration.params)
    decision.current_rmse = round(_rmse(current, held_out), 4)
    decision.candidate_rmse = round(_rmse(candidate, held_out), 4)
    if not decision.candidate_rmse < decision.current_rmse * (1 - MIN_GAIN):
        decision.reason = (f"The refitted model is not better on the {held} most recent held-out hours (RMSE "
                           f"{decision.candidate_rmse} against {decision.current_rmse} now; it must be "
                           f"{MIN_GAIN:.0%} lower): version {calibration.version} stays.")
        return _record(calibration, decision)
    made = Calibration(
        datastream_id=calibration.datastream_id, reference_datastream_id=calibration.reference_datastream_id,
        derived_datastream_id=calibration.derived_datastream_id,
        humidity_datastream_id=calibration.humidity_datastream_id,
        temperature_datastream_id=calibration.temperature_datastream_id, kind=candidate.kind,
        code_version=candidate.code_version, version=calibration.version + 1, params=candidate.params,
        fit_start=train_start, fit_end=holdout_start, distance_m=calibration.distance_m, active=False,
        stats={**candidate.fit_stats, "refit": {
            "at": sta_service.format_time(now), "from": {"@iot.id": calibration.id, "version": calibration.version},
            "heldOut": held, "heldOutWindow": f"{sta_service.format_time(holdout_start)}/"
                                             f"{sta_service.format_time(held_out.times[-1])}",
            "currentRmse": decision.current_rmse, "candidateRmse": decision.candidate_rmse}})
    latest = session.scalar(select(Calibration.version).where(Calibration.datastream_id == calibration.datastream_id)
                            .order_by(Calibration.version.desc()).limit(1))
    made.version = int(latest or 0) + 1
    session.add(made)
    session.flush()
    service.apply_calibration(session, made.id, base_url=base_url)
    decision.refit = True
    decision.new_calibration_id, decision.new_version = made.id, made.version
    decision.reason = (f"Refitted on {len(train)} pairs: held-out RMSE {decision.candidate_rmse} against "
                       f"{decision.current_rmse} of version {calibration.version} on the {held} most recent hours; "
                       f"version {made.version} applied.")
    return _record(calibration, decision)


def _record(calibration: Calibration, decision: RefitDecision) -> RefitDecision:
    stats = dict(calibration.stats or {})
    checks = list(stats.get("refitChecks") or [])
    checks.append(decision.as_record())
    stats["refitChecks"] = checks[-KEEP_CHECKS:]
    calibration.stats = stats   # a new dict, so the change is written
    return decision


def refit_due(db: Database, refit_days: float, now: datetime | None = None, base_url: str = "",
              force: bool = False) -> list[RefitDecision]:
    """Check every applied calibration last checked ``refit_days`` or more ago (each in its own transaction)."""
    now = now or datetime.now(timezone.utc)
    with db.session() as session:
        active = [(c.id, last_checked(c)) for c in session.scalars(
            select(Calibration).where(Calibration.active.is_(True)).order_by(Calibration.id))]
    decisions = []
    for calibration_id, checked in active:
        if not force and (refit_days <= 0 or now - checked < timedelta(days=refit_days)):
            continue
        with db.session() as session:
            calibration = session.get(Calibration, calibration_id)
            if calibration is None or not calibration.active:
                continue
            decisions.append(check_calibration(session, calibration, now, base_url))
    return decisions


class RefitScheduler(TickingThread):
    """Checks due calibrations in a daemon thread of ``serve`` (hourly), until stopped."""

    thread_name = "calibration-refit"

    def __init__(self, db: Database, refit_days: float, base_url: str = "", tick_seconds: float = 3600.0) -> None:
        super().__init__(tick_seconds)
        self.db, self.refit_days, self.base_url = db, refit_days, base_url
        self.decisions: list[RefitDecision] = []

    def tick(self) -> list[RefitDecision]:
        """One round: every calibration due."""
        self.decisions = refit_due(self.db, self.refit_days, base_url=self.base_url)
        return self.decisions


def install(app: Any) -> None:
    """Run the refit scheduler for the app's lifetime when the settings switch it on."""
    settings = app.state.settings
    days = float(getattr(settings, "calibration_refit_days", 0) or 0)
    if getattr(settings, "calibration_refit_scheduler", False) and days > 0:
        root = settings.base_url.rstrip("/") + "/sta/v1.1"
        run_during_lifespan(app, "calibration_refit", lambda application: RefitScheduler(
            application.state.db, days, root))
