"""The hourly nowcast: a real LAQN extract (3 days, 18 sites) in the sensor hub, predicted on the grid and at
every LSOA, stored, served, and kept in step with its catalogue dataset."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from smartlondon.catalogue.models import Dataset
from smartlondon.core.db import Database
from smartlondon.insights.airquality import nowcast as nc
from smartlondon.insights.models import NowcastAreaRow, NowcastRunRow
from smartlondon.sensors.laqn import load_laqn
from smartlondon.settings import Settings
from tests.insights.extracts import SITES, write_extract

LAST_HOUR = datetime(2023, 1, 11, 23, tzinfo=timezone.utc)  # the extract's last hour (3 days from 9 January)


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_extract(tmp_path_factory.mktemp("laqn"))


@pytest.fixture
def hub(db: Database, extract: Path) -> Database:
    """The sensor hub holding the extract's NO2, PM2.5 and PM10."""
    load_laqn(db, sites_path=SITES, hourly_path=extract, species={"NO2", "PM25", "PM10"})
    return db


def _counts(db: Database) -> tuple[int, int]:
    with db.session() as session:
        return (session.scalar(select(func.count()).select_from(NowcastRunRow)) or 0,
                session.scalar(select(func.count()).select_from(NowcastAreaRow)) or 0)


def test_a_run_writes_the_whole_100m_grid_and_every_area(hub: Database, settings: Settings) -> None:
    run = nc.run_nowcast(hub, settings, "NO2")
    assert run.hour == LAST_HOUR and run.species == "NO2" and run.n_reference_sites >= 15
    assert run.method == "kriging-sitetype"  # 2 days of history: too short for the model
    assert 155_000 <= run.n_cells <= 160_000
    g = nc.grid(settings, run)
    assert g.cell == 100.0 and g.mean.dtype == np.float32
    inside = np.isfinite(g.mean)
    assert inside.sum() == run.n_cells == np.isfinite(g.std).sum()
    assert (~inside).sum() > 0 and (g.mean[inside] >= 0).all() and (g.std[inside] > 0).all()
    (south, west), (north, east) = g.bounds_wgs84
    assert 51.2 < south < 51.35 and 51.65 < north < 51.75 and -0.55 < west < -0.45 and 0.3 < east < 0.4
    with hub.session() as session:
        lsoa = nc.area_values(session, run.id, "lsoa")
        boroughs = nc.area_values(session, run.id, "borough")
        assert nc.latest_run(session, "no2") == run
    assert len(lsoa) == 4835 and len(boroughs) == 33
    assert all(np.isfinite(m) and s > 0 for m, s in list(lsoa.values()) + list(boroughs.values()))
    # the City's borough value is the mean of the grid cells inside it, not of anything else
    assert abs(boroughs["E09000001"][0] - lsoa["E01000001"][0]) < 15

    again = nc.run_nowcast(hub, settings, "NO2", LAST_HOUR)  # idempotent: the hour is replaced, not doubled
    assert again.hour == run.hour and again.created_at > run.created_at
    assert _counts(hub) == (1, 4835 + 33)
    with hub.session() as session:
        assert nc.runs(session, "NO2") == [again]


def test_too_few_reference_readings_stops_the_run_and_writes_nothing(hub: Database, settings: Settings) -> None:
    with pytest.raises(nc.NowcastError, match="at least 40 are needed"):
        nc.run_nowcast(hub, settings, "NO2", LAST_HOUR, min_sites=40)
    with pytest.raises(nc.NowcastError, match="No complete hour"):
        nc.run_nowcast(hub, settings, "PM10", min_sites=40)
    with pytest.raises(nc.NowcastError, match="Unknown species"):
        nc.run_nowcast(hub, settings, "O3")
    assert _counts(hub) == (0, 0)
    assert not list((Path(settings.data_dir) / "nowcast").glob("*/*.npz"))


def test_a_failure_after_the_grid_is_written_leaves_no_run(hub: Database, settings: Settings,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("the catalogue is down")

    monkeypatch.setattr(nc, "touch_catalogue", broken)
    with pytest.raises(RuntimeError, match="catalogue is down"):
        nc.run_nowcast(hub, settings, "PM25", LAST_HOUR, cell=1000)
    assert _counts(hub) == (0, 0)
    assert not [p for p in (Path(settings.data_dir) / "nowcast").rglob("*") if p.suffix in (".npz", ".tmp")
                and "frames" not in p.parts]


def test_each_run_moves_the_catalogue_dataset_on(hub: Database, settings: Settings) -> None:
    with hub.session() as session:
        assert nc.ensure_catalogue_dataset(session, settings) is True
        assert nc.ensure_catalogue_dataset(session, settings) is False
        ds = session.scalar(select(Dataset).where(Dataset.slug == nc.DATASET_SLUG))
        before = ds.modified
        assert ds.organisation.slug == "greater-london-authority" and ds.licence_id == "OGL-UK-3.0"
        assert {r.format for r in ds.resources} >= {"CSV", "GEOJSON", "PNG"}
    nc.run_nowcast(hub, settings, "PM25", LAST_HOUR - timedelta(hours=1), cell=1000)
    with hub.session() as session:
        ds = session.scalar(select(Dataset).where(Dataset.slug == nc.DATASET_SLUG))
        first = ds.modified
        assert first > before and ds.extras["latest_hour"] == "2023-01-11T22:00:00Z"
        assert ds.temporal_end.isoformat() == "2023-01-11"
    nc.run_nowcast(hub, settings, "PM25", LAST_HOUR, cell=1000)
    with hub.session() as session:
        ds = session.scalar(select(Dataset).where(Dataset.slug == nc.DATASET_SLUG))
        assert ds.modified > first and ds.extras["latest_hour"] == "2023-01-11T23:00:00Z"


def test_the_scheduler_runs_a_new_hour_once(hub: Database, settings: Settings) -> None:
    nc.run_nowcast(hub, settings, "NO2", LAST_HOUR - timedelta(hours=1), cell=1000)
    scheduler = nc.NowcastScheduler(hub, settings, 3600)
    made = scheduler.tick()  # NO2: the one newer hour; PM2.5 and PM10: their newest hour (no run yet)
    assert made == 3
    with hub.session() as session:
        assert [r.hour for r in nc.runs(session, "NO2")] == [LAST_HOUR, LAST_HOUR - timedelta(hours=1)]
        assert nc.latest_run(session, "PM10").hour == LAST_HOUR
    assert scheduler.tick() == 0


def test_old_hours_are_dropped_with_their_files(hub: Database, settings: Settings) -> None:
    settings = dataclasses.replace(settings, nowcast_keep_days=1)
    old = nc.run_nowcast(hub, settings, "NO2", LAST_HOUR - timedelta(hours=30), cell=1000)
    path = Path(settings.data_dir) / "nowcast" / old.grid_file
    assert path.is_file()
    nc.run_nowcast(hub, settings, "NO2", LAST_HOUR, cell=1000)
    with hub.session() as session:
        assert [r.hour for r in nc.runs(session, "NO2")] == [LAST_HOUR]
    assert not path.exists()


def test_area_series_and_the_png(hub: Database, settings: Settings) -> None:
    for back in (2, 1):
        nc.run_nowcast(hub, settings, "NO2", LAST_HOUR - timedelta(hours=back), store_grid=False)
    run = nc.run_nowcast(hub, settings, "NO2", LAST_HOUR, cell=1000)
    with hub.session() as session:
        series = nc.area_series(session, "NO2", "E09000007", hours=48)
        assert [h for h, _, _ in series] == [LAST_HOUR - timedelta(hours=2), LAST_HOUR - timedelta(hours=1), LAST_HOUR]
        assert nc.area_series(session, "NO2", "E09000007", hours=2)[0][0] == LAST_HOUR - timedelta(hours=1)
        history = nc.runs(session, "NO2")[-1]
    assert not history.has_grid and history.grid_file is None and history.n_cells == run.n_cells  # both 1 km
    with pytest.raises(nc.NowcastError, match="No grid"):
        nc.grid(settings, history)
    png = nc.grid_png(settings, run, "mean")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == nc.grid_png(settings, run, "mean")
    assert nc.grid_png(settings, run, "std")[:8] == b"\x89PNG\r\n\x1a\n"
    assert [c for _, c in nc.legend("mean", "NO2")][0] == "#ffffcc" and len(nc.legend("std", "PM2.5")) == 7


def test_the_api(hub: Database, settings: Settings, client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/airquality/nowcast/NO2/lsoa.geojson").status_code == 404  # nothing yet
    nc.run_nowcast(hub, settings, "NO2", LAST_HOUR - timedelta(hours=1), store_grid=False)
    nc.run_nowcast(hub, settings, "NO2", LAST_HOUR, cell=1000)
    index = client.get("/api/airquality/nowcast").json()
    no2 = next(s for s in index["species"] if s["species"] == "NO2")
    assert no2["latest"]["hour"] == "2023-01-11T23:00:00Z" and no2["latest"]["has_grid"]
    assert client.get("/api/airquality/nowcast/no2").json()["count"] == 2
    assert client.get("/api/airquality/nowcast/NO2?hour=2023-01-11T22:30Z").json()["has_grid"] is False

    lsoa = client.get("/api/airquality/nowcast/NO2/lsoa.geojson")
    assert lsoa.status_code == 200 and lsoa.headers["content-type"].startswith("application/geo+json")
    body = lsoa.json()
    assert body["type"] == "FeatureCollection" and len(body["features"]) == 4835
    for feature in body["features"][:50]:
        lon, lat = feature["geometry"]["coordinates"]
        assert -0.52 < lon < 0.34 and 51.28 < lat < 51.70
        p = feature["properties"]
        assert p["lower90"] <= p["mean"] <= p["upper90"] and 1 <= p["daqi_index"] <= 10 and p["daqi_band"]
    boroughs = client.get("/api/airquality/nowcast/NO2/boroughs.geojson?hour=2023-01-11T23:00:00%2B00:00").json()
    assert len(boroughs["features"]) == 33 and boroughs["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    csv_text = client.get("/api/airquality/nowcast/NO2/lsoa.csv?hour=2023-01-11T22:00Z").text
    assert csv_text.splitlines()[0].startswith("lsoa,species,hour") and len(csv_text.splitlines()) == 4836

    grid = client.get("/api/airquality/nowcast/NO2/grid.json").json()
    assert grid["cell_metres"] == 1000 and grid["bounds"][0][0] < grid["bounds"][1][0]
    assert grid["legend"]["mean"][0]["colour"] == "#ffffcc"
    png = client.get("/api/airquality/nowcast/NO2/grid.png?layer=std")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert "max-age" in png.headers["cache-control"]
    assert client.get("/api/airquality/nowcast/NO2/grid.png", headers={"If-None-Match": png.headers["etag"].replace(
        "-std-", "-mean-")}).status_code == 304

    series = client.get("/api/airquality/nowcast/NO2/areas/E09000007?hours=48").json()
    assert [p["hour"] for p in series["series"]] == ["2023-01-11T22:00:00Z", "2023-01-11T23:00:00Z"]

    for path, status, words in (
            ("/api/airquality/nowcast/O3", 404, "Unknown species"),
            ("/api/airquality/nowcast/NO2?hour=yesterday", 400, "ISO 8601"),
            ("/api/airquality/nowcast/NO2/lsoa.geojson?hour=2023-01-05T10:00Z", 404, "no NO₂ nowcast"),
            ("/api/airquality/nowcast/NO2/grid.png?hour=2023-01-11T22:00Z", 404, "No grid"),
            ("/api/airquality/nowcast/NO2/grid.png?layer=max", 400, "mean or std"),
            ("/api/airquality/nowcast/NO2/areas/E99999999", 404, "not an LSOA or borough"),
            ("/api/airquality/nowcast/NO2/areas/E09000007?hours=0", 400, "hours")):
        answer = client.get(path)
        assert answer.status_code == status, path
        assert words in json.dumps(answer.json(), ensure_ascii=False), path


def test_many_hours_at_once_use_the_model_fitted_once_a_day(db: Database, settings: Settings, tmp_path: Path) -> None:
    longer = write_extract(tmp_path, days=4)  # 9-12 January: three days of history before the 12th
    load_laqn(db, sites_path=SITES, hourly_path=longer, species={"NO2"})
    day = datetime(2023, 1, 12, tzinfo=timezone.utc)
    made = nc.run_areas(db, settings, "NO2", [day + timedelta(hours=h) for h in range(6)])
    assert [r.hour for r in made] == [day + timedelta(hours=h) for h in range(6)]
    assert {r.method for r in made} == {"model"} and not any(r.has_grid for r in made)
    assert "AirQualityModel 2023-01-12 (72 h of history)" == made[0].model_version
    cached = Path(settings.data_dir) / "nowcast" / "models" / "NO2-20230112-v3.joblib"
    assert cached.is_file()
    stamp_before = cached.stat().st_mtime_ns
    run = nc.run_nowcast(db, settings, "NO2", day + timedelta(hours=6), cell=1000)
    assert run.method == "model" and cached.stat().st_mtime_ns == stamp_before  # the day's model, not refitted
    with db.session() as session:
        series = nc.area_series(session, "NO2", "E09000033", hours=48)
        lsoa = nc.area_values(session, made[0].id, "lsoa")
    assert len(series) == 7 and len(lsoa) == 4835
    assert all(0 <= m < 400 and 0 < s < 200 for _, m, s in series)


def test_the_command(hub: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from smartlondon.cli import main

    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", hub.url)
    monkeypatch.setenv("SMARTLONDON_DATA_DIR", str(settings.data_dir))
    result = CliRunner().invoke(main, ["insights", "airquality", "nowcast", "--species", "PM2.5",
                                       "--hour", "2023-01-11T23:00Z", "--hours", "2"])
    assert result.exit_code == 0, result.output
    assert "PM2.5 2023-01-11 23:00 UTC: kriging-sitetype" in result.output
    with hub.session() as session:
        assert [r.hour for r in nc.runs(session, "PM25")] == [LAST_HOUR, LAST_HOUR - timedelta(hours=1)]
    bad = CliRunner().invoke(main, ["insights", "airquality", "nowcast", "--species", "O3"])
    assert bad.exit_code != 0 and "Unknown species" in bad.output
    bad = CliRunner().invoke(main, ["insights", "airquality", "nowcast", "--hour", "soon"])
    assert bad.exit_code != 0 and "ISO 8601" in bad.output


def test_calibrated_low_cost_readings_join_the_hour(hub: Database, settings: Settings) -> None:
    from smartlondon.sensors import service as sta

    before = nc.run_nowcast(hub, settings, "NO2", LAST_HOUR, cell=1000)
    with hub.session() as session:
        near = nc.area_values(session, before.id, "lsoa")["E01000001"]  # City of London, by Barbican
        thing = sta.create_from_path(session, "Things", {
            "name": "Test lamppost", "description": "a calibrated low-cost NO2 sensor",
            "properties": {"lamppostCode": "LP-TEST", "nearestSiteType": "Urban Background"},
            "Locations": [{"name": "by Barbican", "description": "", "encodingType": "application/geo+json",
                           "location": {"type": "Point", "coordinates": [-0.0955, 51.5205]}}]}, "")
        sensor = sta.create_from_path(session, "Sensors", {"name": "low-cost cell", "description": "",
                                                           "encodingType": "text/html", "metadata": ""}, "")
        prop = sta.create_from_path(session, "ObservedProperties", {"name": "NO2 (test)", "definition": "x",
                                                                    "description": ""}, "")
        stream = sta.create_from_path(session, "Datastreams", {
            "name": "Low-cost NO2 (calibrated)", "description": "", "observationType":
                "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "unitOfMeasurement": {"name": "microgram per cubic metre", "symbol": "µg/m³", "definition": "x"},
            "properties": {"speciesCode": "NO2", "derived": True, "derivation": "calibration"},
            "Thing": {"@iot.id": thing["@iot.id"]}, "Sensor": {"@iot.id": sensor["@iot.id"]},
            "ObservedProperty": {"@iot.id": prop["@iot.id"]}}, "")
        sta.bulk_insert(session, stream["@iot.id"], [(LAST_HOUR, near[0] + 150.0)], "")
    after = nc.run_nowcast(hub, settings, "NO2", LAST_HOUR, cell=1000)
    assert (before.n_sensor_sites, after.n_sensor_sites) == (0, 1)
    assert after.n_reference_sites == before.n_reference_sites
    with hub.session() as session:
        assert nc.area_values(session, after.id, "lsoa")["E01000001"][0] > near[0] + 20


def test_serve_runs_the_scheduler_only_when_asked(db: Database, settings: Settings) -> None:
    from fastapi.testclient import TestClient

    from smartlondon.app import create_app

    with TestClient(create_app(settings, db)) as client:
        assert getattr(client.app.state, "nowcast", None) is None
    on = dataclasses.replace(settings, nowcast_scheduler=True, nowcast_tick_seconds=3600)
    with TestClient(create_app(on, db)) as client:
        scheduler = client.app.state.nowcast
        assert isinstance(scheduler, nc.NowcastScheduler) and scheduler.interval == 3600
    assert scheduler.stopping  # stopped with the app
