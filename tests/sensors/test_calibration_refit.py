"""Calibration refits: a new version only when it is better on held-out recent pairs, and why, recorded.

The site of ``test_calibration`` (a reference NO2 monitor and a lamppost 14 m away) is calibrated
on its first 48 hours. Then 96 more hours arrive: either the low-cost sensor drifts (it reads 25 %
high from then on), or it does not. A refit check must make and apply version 2 in the first case
only, and say why in both.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from smartlondon.cli import main
from smartlondon.core.db import Database
from smartlondon.sensors import service
from smartlondon.sensors.calibration import refit
from smartlondon.sensors.calibration.models import Calibration
from smartlondon.sensors.calibration.service import fit_calibration
from smartlondon.sensors.models import Observation
from tests.sensors.test_calibration import A, B, D, ROOT, START, _site

DRIFT = 1.25


def _more_hours(db: Database, ids: dict[str, int], first: int, last: int, drift: float) -> None:
    """Hours ``first..last-1`` of the site: the low-cost sensor reads ``drift`` times what it did."""
    ref_rows, raw_rows, t_rows = [], [], []
    for h in range(first, last):
        when = START + timedelta(hours=h)
        temperature = 8 + 6 * math.sin(h / 24 * 2 * math.pi)
        true_raw = 40 + 25 * math.sin(h / 7) + (h % 5)
        ref_rows.append((when, round(A + B * true_raw + D * temperature, 4)))
        raw_rows.append((when, round(true_raw * drift, 4)))
        t_rows.append((when, round(temperature, 4)))
    with db.session() as session:
        service.bulk_insert(session, ids["reference"], ref_rows)
        service.bulk_insert(session, ids["raw"], raw_rows)
        service.bulk_insert(session, ids["temperature"], t_rows)


def _calibrated_site(db: Database) -> tuple[dict[str, int], int]:
    ids = _site(db, hours=48)
    with db.session() as session:
        made = fit_calibration(session, ids["raw"], ids["reference"], START, START + timedelta(hours=48),
                               base_url=ROOT)
        return ids, made.id


def _versions(db: Database, stream: int) -> list[Calibration]:
    with db.session() as session:
        return list(session.scalars(select(Calibration).where(Calibration.datastream_id == stream)
                                    .order_by(Calibration.version)))


def test_a_drifted_sensor_is_refitted_into_a_better_applied_version(db: Database, client: TestClient) -> None:
    ids, first = _calibrated_site(db)
    _more_hours(db, ids, 48, 144, DRIFT)
    now = START + timedelta(hours=144)
    [decision] = refit.refit_due(db, 7, now=now, base_url=ROOT, force=True)
    assert decision.refit and decision.new_version == 2
    assert decision.new_pairs == 96 and decision.held_out == 24
    assert decision.candidate_rmse < decision.current_rmse * 0.1   # the drift costs the old model dearly
    v1, v2 = _versions(db, ids["raw"])
    assert not v1.active and v2.active and v2.derived_datastream_id == v1.derived_datastream_id
    assert v2.stats["refit"]["from"]["version"] == 1 and v2.fit_end <= now - timedelta(hours=24)
    assert v1.stats["refitChecks"][-1]["refit"] is True and "version 2 applied" in v1.stats["refitChecks"][-1]["reason"]
    # a raw reading arriving now is calibrated with version 2, and is right again
    when = now + timedelta(hours=1)
    temperature = 8 + 6 * math.sin(145 / 24 * 2 * math.pi)
    true_raw = 40 + 25 * math.sin(145 / 7) + (145 % 5)
    with db.session() as session:
        service.bulk_insert(session, ids["temperature"], [(when, temperature)])
        service.bulk_insert(session, ids["raw"], [(when, true_raw * DRIFT)])
    with db.session() as session:
        newest = session.scalars(select(Observation).where(Observation.datastream_id == v2.derived_datastream_id)
                                 .order_by(Observation.phenomenon_time_start.desc()).limit(1)).one()
    assert newest.parameters["calibration"]["version"] == 2
    assert abs(newest.result - (A + B * true_raw + D * temperature)) < 0.5
    # the Thing page shows the version history, with why each version was made
    page = client.get(f"/sensors/things/{ids['lamppost']}")
    assert page.status_code == 200 and 'id="calibration-history"' in page.text
    assert "Refitted from version 1" in page.text and "Fitted on request" in page.text
    twin = client.get(f"/sensors/things/{ids['lamppost']}.json").json()
    assert [c["version"] for c in twin["calibrations"]] == [2, 1]


def test_no_new_version_when_the_refit_is_no_better_or_pairs_are_few(db: Database) -> None:
    ids, first = _calibrated_site(db)
    _more_hours(db, ids, 48, 60, 1.0)
    [few] = refit.refit_due(db, 7, now=START + timedelta(hours=60), force=True)
    assert not few.refit and few.new_pairs == 12 and "a refit needs 48" in few.reason
    _more_hours(db, ids, 60, 144, 1.0)   # no drift: the fitted model still holds
    [same] = refit.refit_due(db, 7, now=START + timedelta(hours=144), force=True)
    assert not same.refit and "version 1 stays" in same.reason
    assert same.candidate_rmse is not None and same.current_rmse is not None
    [v1] = _versions(db, ids["raw"])
    assert v1.active and [c["refit"] for c in v1.stats["refitChecks"]] == [False, False]
    # checked just now: not due again for refit_days
    assert refit.refit_due(db, 7, now=START + timedelta(hours=150)) == []
    assert len(refit.refit_due(db, 7, now=START + timedelta(days=14))) == 1


def test_the_scheduler_and_the_command(db: Database, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ids, first = _calibrated_site(db)
    _more_hours(db, ids, 48, 144, DRIFT)
    scheduler = refit.RefitScheduler(db, 7, ROOT)
    [decision] = scheduler.tick()    # the data is of 2023: long due
    assert decision.refit and decision.new_version == 2
    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", db.url)
    monkeypatch.setenv("SMARTLONDON_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SMARTLONDON_CALIBRATION_REFIT_DAYS", "7")
    again = CliRunner().invoke(main, ["sensors", "calibrate", "--refit-due"])
    assert again.exit_code == 0, again.output
    assert "No applied calibration is due" in again.output     # version 2 was made by the tick just now
    monkeypatch.setenv("SMARTLONDON_CALIBRATION_REFIT_DAYS", "0")
    off = CliRunner().invoke(main, ["sensors", "calibrate", "--refit-due"])
    assert off.exit_code != 0 and "off" in off.output
    missing = CliRunner().invoke(main, ["sensors", "calibrate", "--low-cost", "1"])
    assert missing.exit_code != 0 and "--reference" in missing.output
