"""The simulated smart lamppost fleet (sensors/fleet.py): made, backfilled, calibrated, and publishing live."""

from __future__ import annotations

import csv
import dataclasses
import gzip
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from smartlondon.app import create_app
from smartlondon.core.db import Database
from smartlondon.sensors import fleet, laqn
from smartlondon.sensors.calibration.service import list_calibrations
from smartlondon.sensors.models import Datastream, Observation
from smartlondon.sensors.mqtt import MqttBridge
from tests.sensors.mqtt_support import BROKER_URL, require_broker, unique_client_id, wait_until

ROOT = "http://testserver/sta/v1.1"
HOURS = 48
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "air-quality"


@lru_cache(maxsize=1)
def _source_no2() -> dict[str, dict[datetime, float]]:
    """The real LAQN hourly NO2 from 18 March 2023 by site, from the source file in ../shared/data."""
    out: dict[str, dict[datetime, float]] = {}
    with gzip.open(SHARED / "laqn-hourly-2023Q1.csv.gz", "rt", encoding="utf-8") as fh:
        for row_site, row_species, when, value in csv.reader(fh):
            if row_species == "NO2" and value and when >= "2023-03-18":
                out.setdefault(row_site, {})[datetime.fromisoformat(when).replace(tzinfo=timezone.utc)] = float(value)
    return out


@pytest.fixture
def loaded(db: Database, tmp_path: Path) -> Database:
    """Reference monitors at Camden - Bloomsbury (BL0, with a co-located lamppost), the fleet, HOURS hours of it."""
    sites = tmp_path / "sites.csv"
    with (laqn.DEMO_DIR / laqn.SITES_FILE).open(encoding="utf-8-sig") as fh:
        lines = fh.read().splitlines()
    sites.write_text("\n".join([lines[0]] + [line for line in lines[1:] if ",BL0," in line]) + "\n", encoding="utf-8")
    laqn.load_laqn(db, sites_path=sites, hourly_path=laqn.DEMO_DIR / laqn.DEMO_HOURLY_FILE, days=2,
                   species={"NO2", "PM25"}, base_url=ROOT)
    fleet.create_fleet(db, ROOT)
    fleet.backfill(db, ROOT, hours=HOURS)
    assert fleet.calibrate_colocated(db, ROOT) == 2  # NO2 and PM2.5 at the BL0 lamppost: its reference is loaded
    return db


def _series(db: Database, datastream_id: int) -> dict[datetime, float]:
    with db.session() as session:
        return {t: v for t, v in session.execute(select(Observation.phenomenon_time_start, Observation.result_number)
                                                 .where(Observation.datastream_id == datastream_id))}


def test_fleet_readings_track_the_real_laqn_levels_nearby_and_calibration_corrects_them(loaded: Database) -> None:
    with loaded.session() as session:
        streams = fleet.fleet_streams(session)
        things = fleet.fleet_things(session)
        calibrations = list_calibrations(session)
    assert len(things) == 12 and len(streams) == 12 * 5
    for lamp in fleet.FLEET[:8]:
        real = _source_no2()[lamp.site]
        ours = _series(loaded, streams[(lamp.code, "no2")])
        hours = sorted(set(real) & set(ours))
        assert len(hours) >= HOURS - 4
        correlation = np.corrcoef([real[h] for h in hours], [ours[h] for h in hours])[0, 1]
        assert correlation > 0.9, (lamp.code, correlation)
        assert abs(np.mean([ours[h] for h in hours]) - np.mean([real[h] for h in hours])) > 2  # ... but misread
    # the co-located BL0 lamppost is calibrated against the real reference; the calibrated values are closer
    no2 = next(c for c in calibrations if c.datastream_id == streams[("LP-BL0", "no2")])
    assert no2.stats["after"]["rmse"] < no2.stats["before"]["rmse"] / 2 and no2.stats["after"]["r2"] > 0.8
    assert no2.params["terms"] == ["intercept", "raw", "temperature"]  # ERA5 temperature, no humidity in ERA5
    assert no2.distance_m == pytest.approx(22, abs=1)
    calibrated = _series(loaded, no2.derived_datastream_id)
    assert len(calibrated) == len(_series(loaded, streams[("LP-BL0", "no2")]))
    # the same readings again: reading() is a pure function of (lamppost, stream, hour)
    lamp = fleet.FLEET[0]
    when = fleet.EPOCH + timedelta(hours=5)
    assert fleet.reading(lamp, "no2", when) == _series(loaded, streams[(lamp.code, "no2")])[when]
    assert fleet.reading(lamp, "ev", when) in fleet.EV_STATES
    # loading again adds nothing
    assert fleet.backfill(loaded, ROOT, hours=HOURS) == 0 and fleet.calibrate_colocated(loaded, ROOT) == 0


def _count_at(db: Database, when: datetime) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Observation)
                                  .where(Observation.phenomenon_time_start == when)) or 0)


def test_publisher_through_the_service_layer_continues_the_series_and_is_calibrated(loaded: Database) -> None:
    publisher = fleet.FleetPublisher(loaded, 60, ROOT)
    expected = len(publisher.messages())  # the next hour's readings ...
    assert expected >= 12 * 4
    publisher.clock = None  # (messages() moved the clock: start again from the stored latest)
    assert publisher.tick() == expected
    when = fleet.EPOCH + timedelta(hours=HOURS)
    assert publisher.clock == when
    # ... stored, plus the calibrated values of BL0's two low-cost sensors, computed on ingest
    assert _count_at(loaded, when) == expected + 2
    with loaded.session() as session:
        derived = [c.derived_datastream_id for c in list_calibrations(session)]
        qualities = list(session.scalars(select(Observation.result_quality).where(Observation.phenomenon_time_start == when)))
    assert all(_series(loaded, d).get(when) is not None for d in derived)
    assert sum(1 for q in qualities if isinstance(q, dict) and "qc" in q) >= 12 * 3  # QC on ingest, numeric ones


def test_publisher_through_mosquitto(loaded: Database) -> None:
    require_broker()
    bridge = MqttBridge(loaded, BROKER_URL, base_url=ROOT, client_id=unique_client_id("fleet-bridge"))
    bridge.start()
    publisher = fleet.FleetPublisher(loaded, 3600, ROOT, BROKER_URL, client_id=unique_client_id("fleet"))
    try:
        assert bridge.wait_ready(10)
        publisher.start()  # ticks once at once, then waits an hour
        when = fleet.EPOCH + timedelta(hours=HOURS)
        wait_until(lambda: publisher.published > 0, timeout=10)
        wait_until(lambda: _count_at(loaded, when) >= publisher.published + 2, timeout=20)
    finally:
        publisher.stop()
        bridge.stop()
    with loaded.session() as session:
        lamppost = fleet.fleet_streams(session)[("LP-BL0", "no2")]
    assert _series(loaded, lamppost)[when] == fleet.reading(fleet.FLEET[0], "no2", when)


def test_serve_runs_the_fleet_when_the_setting_is_on(loaded: Database, settings) -> None:  # type: ignore[no-untyped-def]
    app = create_app(dataclasses.replace(settings, demo_fleet=True, demo_fleet_seconds=0.05), loaded)
    with TestClient(app):
        wait_until(lambda: _count_at(loaded, fleet.EPOCH + timedelta(hours=HOURS + 1)) > 0, timeout=20)
    assert app.state.demo_fleet.published >= 12 * 4 * 2


@pytest.fixture
def client_loaded(loaded: Database, settings) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(create_app(settings, loaded)) as client:
        yield client


def test_the_fleet_is_on_the_map_and_its_pages_say_it_is_simulated_and_calibrated(client_loaded: TestClient,
                                                                                   loaded: Database) -> None:
    listed = client_loaded.get("/sensors.json").json()["sensors"]
    lampposts = [s for s in listed if s["siteType"] == "Smart lamppost (simulated)"]
    assert len(lampposts) == 12 and all(s["latitude"] and s["longitude"] for s in lampposts)
    with loaded.session() as session:
        thing_id = fleet.fleet_things(session)["LP-BL0"]
    page = client_loaded.get(f"/sensors/things/{thing_id}")
    assert page.status_code == 200
    assert "simulated for the demo" in page.text and "Calibration" in page.text
    assert "Nitrogen dioxide (calibrated)" in page.text and "Nitrogen dioxide (low-cost, raw)" in page.text
    view = client_loaded.get(f"/sensors/things/{thing_id}.json").json()
    assert view["simulated"] is True
    [no2] = [c for c in view["calibrations"] if "Nitrogen" in c["lowCostLabel"]]
    assert no2["fitStatistics"]["after"]["rmse"] < no2["fitStatistics"]["before"]["rmse"]
    derived = [s for s in view["datastreams"] if s["derivedFrom"]]
    assert len(derived) == 2 and all(s["points"] for s in derived)
    # the NGSI-LD Streetlight view lists the lampposts
    streetlights = client_loaded.get("/ngsi-ld/v1/entities", params={"type": "Streetlight", "limit": 50}).json()
    assert len(streetlights) == 12
    with loaded.session() as session:
        assert session.scalar(select(func.count()).select_from(Datastream)) == 2 * 1 + 12 * 5 + 2
