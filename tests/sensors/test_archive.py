"""Retention and archive: old Observations move to Parquet and read back through the same API.

The network of ``sta_support`` (48 real LAQN hours from 2023-01-01) plus 30 real-looking hours of
December 2022 on Marylebone Road NO2. With the clock at 2023-01-02T12:00Z and one day of retention,
December and the first 12 hours of January of each Datastream move to Parquet; every read of the
standard must answer exactly as before.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from smartlondon.cli import main
from smartlondon.core.db import Database
from smartlondon.sensors import archive
from smartlondon.sensors.archive import ArchiveSegment
from smartlondon.sensors.models import Datastream, Latest, Observation
from smartlondon.settings import Settings
from tests.sensors.sta_support import Network, build_network

NOW = datetime(2023, 1, 2, 12, tzinfo=timezone.utc)
DAY = timedelta(days=1)
STA = "/sta/v1.1"


@pytest.fixture
def network(db: Database) -> Network:
    net = build_network(db)
    stream = net.datastreams["MY1/NO2"]
    feature = net.features["MY1"]
    start = datetime(2022, 12, 30, 18, tzinfo=timezone.utc)
    with db.session() as session:
        for hour in range(30):
            when = start + timedelta(hours=hour)
            value = 40.0 + (hour * 7) % 23 + 0.25
            session.add(Observation(datastream_id=stream, feature_of_interest_id=feature, phenomenon_time_start=when,
                                    result_time=when, result=value, result_number=value,
                                    parameters={"note": "December"} if hour % 5 == 0 else None))
        # the newest row of the table (SQLite would give the highest id again, so it is never archived)
        session.add(Observation(multi_datastream_id=net.multi_datastream, feature_of_interest_id=net.features["BL0"],
                                phenomenon_time_start=datetime(2023, 1, 3, tzinfo=timezone.utc), result=[20.0, 15.0]))
    return net


def _reads(client: TestClient, net: Network) -> dict[str, Any]:
    """Every read whose answer must not change when Observations are archived."""
    stream = net.datastreams["MY1/NO2"]
    base = f"{STA}/Datastreams({stream})/Observations"
    queries = {
        "all": base,
        "window": base + "?$filter=phenomenonTime ge 2022-12-31T20:00:00Z and phenomenonTime lt 2023-01-01T06:00:00Z",
        "filter-order-count": base + "?$filter=result gt 50&$orderby=result desc,id&$count=true",
        "desc-top-skip": base + "?$orderby=phenomenonTime desc&$top=5&$skip=40&$count=true",
        "count": base + "?$count=true&$top=3",
        "select": base + "?$select=id,result,parameters&$filter=year(phenomenonTime) eq 2022",
        "data-array": base + "?$resultFormat=dataArray&$select=id,phenomenonTime,result&$top=20",
        "expand": base + "?$top=3&$expand=FeatureOfInterest($select=name),Datastream($select=name)",
        "ext-latest": f"{STA}/ext/latest",
        "aggregates-day": f"{STA}/ext/aggregates?datastreams={stream},{net.datastreams['BL0/NO2']}&interval=day",
        "aggregates-6h": f"{STA}/ext/aggregates?datastreams={stream}&interval=PT6H&from=2022-12-31T00:00:00Z"
                         "&to=2023-01-01T18:00:00Z&functions=avg,count",
        "things-latest": f"{STA}/Things?$expand=Datastreams/Observations($top=1;$orderby=phenomenonTime desc)",
    }
    out = {name: client.get(url).json() for name, url in queries.items()}
    pages, url = [], base + "?$top=25"
    while url:
        body = client.get(url.replace("http://testserver", "")).json()
        pages.append(body)
        url = body.get("@iot.nextLink")
    out["pages"] = pages
    first = out["all"]["value"][0]["@iot.id"]
    out["one"] = client.get(f"{STA}/Observations({first})?$expand=Datastream($select=id)").json()
    out["one-nested"] = client.get(f"{STA}/Datastreams({stream})/Observations({first})").json()
    out["one-value"] = client.get(f"{STA}/Observations({first})/result").json()
    return out


def _rounded(value: Any) -> Any:
    """Floats to 9 significant digits: a sum over hot and archived rows may add in another order."""
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _archive(db: Database, settings: Settings, **kwargs: Any) -> archive.Report:
    return archive.archive(db, settings.archive_dir, DAY, now=NOW, **kwargs)


def test_archived_observations_read_exactly_as_hot(db: Database, client: TestClient, settings: Settings,
                                                   network: Network) -> None:
    before = _reads(client, network)
    assert len(before["pages"]) == 4 and before["count"]["@iot.count"] == 78
    with db.session() as session:
        hot_before = session.scalar(select(func.count()).select_from(Observation))
    report = _archive(db, settings)
    # December and the first 12 hours of January on Marylebone Road; 12 hours on each Bloomsbury stream
    assert report.segments == 4
    with db.session() as session:
        segments = session.scalars(select(ArchiveSegment).order_by(ArchiveSegment.id)).all()
        hot_after = session.scalar(select(func.count()).select_from(Observation))
    assert hot_before - hot_after == report.rows == sum(s.row_count for s in segments)
    assert {s.month for s in segments} == {"2022-12", "2023-01"}
    for segment in segments:
        path = settings.archive_dir / segment.path
        assert path.exists() and archive.file_checksum(path) == segment.checksum
        assert path.name == f"observations-{segment.min_id}-{segment.max_id}.parquet"
        assert segment.time_start <= segment.time_end < NOW - DAY
    after = _reads(client, network)
    for name in before:
        assert _rounded(after[name]) == _rounded(before[name]), name


def test_a_query_that_touches_no_archived_range_does_not_read_the_archive(
        db: Database, client: TestClient, settings: Settings, network: Network, monkeypatch) -> None:
    _archive(db, settings)
    stream = network.datastreams["MY1/NO2"]
    loads: list[int] = []
    real = archive.load
    monkeypatch.setattr(archive, "load", lambda session, folder, found, *bounds: loads.append(len(found)) or real(
        session, folder, found, *bounds))
    base = f"{STA}/Datastreams({stream})/Observations"
    hot = client.get(base + "?$filter=phenomenonTime ge 2023-01-02T00:00:00Z").json()
    expected = [t for t, _ in network.values["MY1/NO2"] if t >= datetime(2023, 1, 2, tzinfo=timezone.utc)]
    assert len(hot["value"]) == len(expected) and loads == []
    december = client.get(base + "?$filter=phenomenonTime lt 2023-01-01T00:00:00Z and result ge 0&$count=true").json()
    assert december["@iot.count"] == 30 and loads == [1]   # only the December segment


def test_a_crash_between_steps_leaves_the_rows(db: Database, client: TestClient, settings: Settings,
                                              network: Network) -> None:
    before = _reads(client, network)
    with db.session() as session:
        hot_before = session.scalar(select(func.count()).select_from(Observation))
    for failing in ("written", "verified", "deleted"):
        def crash(step: str, failing: str = failing) -> None:
            if step == failing:
                raise RuntimeError(f"power cut after {step}")

        with pytest.raises(RuntimeError, match="power cut"):
            _archive(db, settings, on_step=crash)
        with db.session() as session:
            assert session.scalar(select(func.count()).select_from(Observation)) == hot_before
            assert session.scalar(select(func.count()).select_from(ArchiveSegment)) == 0
        assert _rounded(_reads(client, network)) == _rounded(before)
    # the file of the interrupted segment may be left; the next run rewrites it and completes
    report = _archive(db, settings)
    assert report.segments == 4
    assert _rounded(_reads(client, network)) == _rounded(before)


def test_a_file_that_does_not_verify_deletes_nothing(db: Database, settings: Settings, network: Network,
                                                     monkeypatch) -> None:
    with db.session() as session:
        hot_before = session.scalar(select(func.count()).select_from(Observation))
    monkeypatch.setattr(archive, "_parquet_summary", lambda path: (0, 0, 0, 0))
    with pytest.raises(archive.ArchiveError, match="nothing was deleted"):
        _archive(db, settings)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ArchiveSegment)) == 0
        assert session.scalar(select(func.count()).select_from(Observation)) == hot_before


def test_restore_puts_every_row_back(db: Database, client: TestClient, settings: Settings, network: Network) -> None:
    before = _reads(client, network)
    with db.session() as session:
        rows_before = session.execute(select(Observation.__table__).order_by(Observation.id)).all()
    _archive(db, settings)
    files = list(Path(settings.archive_dir).rglob("*.parquet"))
    assert len(files) == 4
    report = archive.restore(db, settings.archive_dir)
    assert report.segments == 4
    with db.session() as session:
        assert session.execute(select(Observation.__table__).order_by(Observation.id)).all() == rows_before
        assert session.scalar(select(func.count()).select_from(ArchiveSegment)) == 0
    assert not any(f.exists() for f in files)
    assert _rounded(_reads(client, network)) == _rounded(before)


def test_retention_per_datastream_and_the_latest_stays(db: Database, settings: Settings, network: Network) -> None:
    my1, pm10 = network.datastreams["MY1/NO2"], network.datastreams["BL0/PM10"]
    with db.session() as session:
        session.get(Datastream, pm10).properties = {"species": "PM10", "retentionDays": 0}
        latest_before = session.execute(select(Latest.__table__).order_by(Latest.datastream_id)).all()
    _archive(db, settings)
    with db.session() as session:
        archived = set(session.scalars(select(ArchiveSegment.datastream_id)))
        assert pm10 not in archived and my1 in archived
        assert session.execute(select(Latest.__table__).order_by(Latest.datastream_id)).all() == latest_before
    # everything older than a day ago would go, except the latest Observation of each Datastream
    report = archive.archive(db, settings.archive_dir, timedelta(0), my1, now=NOW + timedelta(days=30))
    assert report.rows == 48 - 12 - 1
    with db.session() as session:
        left = session.scalars(select(Observation.id).where(Observation.datastream_id == my1)).all()
        assert left == [session.scalar(select(Latest.observation_id).where(Latest.datastream_id == my1))]


def test_the_commands(db: Database, settings: Settings, network: Network, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", db.url)
    monkeypatch.setenv("SMARTLONDON_ARCHIVE_PATH", str(tmp_path / "cold"))
    runner = CliRunner()
    stream = network.datastreams["MY1/NO2"]
    result = runner.invoke(main, ["sensors", "archive", "--older-than", "1d", "--datastream", str(stream),
                                  "--now", "2023-01-02T12:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "Archived 42 observations in 2 segments" in result.output
    assert len(list((tmp_path / "cold").rglob("*.parquet"))) == 2
    bad = runner.invoke(main, ["sensors", "archive", "--older-than", "soon"])
    assert bad.exit_code == 2 and "is not an age" in bad.output
    missing = runner.invoke(main, ["sensors", "archive", "--datastream", "9999"])
    assert missing.exit_code == 1 and "There is no Datastream with id 9999" in missing.output
    result = runner.invoke(main, ["sensors", "restore"])
    assert result.exit_code == 0, result.output
    assert "Restored 42 observations from 2 segments" in result.output
    # without --older-than: the setting (days), 0 meaning never
    monkeypatch.setenv("SMARTLONDON_ARCHIVE_AFTER_DAYS", "0")
    never = runner.invoke(main, ["sensors", "archive", "--now", "2023-01-02T12:00:00Z"])
    assert never.exit_code == 0 and "Nothing archived" in never.output
    monkeypatch.setenv("SMARTLONDON_ARCHIVE_AFTER_DAYS", "1")
    result = runner.invoke(main, ["sensors", "archive", "--datastream", str(stream), "--now", "2023-01-02T12:00:00Z"])
    assert result.exit_code == 0 and "Archived 42 observations in 2 segments" in result.output, result.output


def test_archived_observations_are_read_only_until_restored(  # type: ignore[no-untyped-def]
        db: Database, client: TestClient, settings: Settings, network: Network, editor) -> None:
    _archive(db, settings)
    with db.session() as session:
        segment = session.scalars(select(ArchiveSegment).order_by(ArchiveSegment.id)).first()
    url = f"{STA}/Observations({segment.min_id})"
    assert client.get(url).status_code == 200
    patch = client.patch(url, json={"result": 1.0}, headers=editor.headers)
    assert patch.status_code == 404
    assert client.delete(url, headers=editor.headers).status_code == 404
    assert client.get(url).status_code == 200
    assert client.get(f"{STA}/Observations(999999)").status_code == 404
