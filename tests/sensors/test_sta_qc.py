"""Extension: quality control flags in resultQuality (sensors/qc.py, `smartlondon sensors qc`)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from smartlondon.cli import main
from smartlondon.core.db import Database
from smartlondon.core.errors import BadRequest, NotFound
from smartlondon.sensors import service
from smartlondon.sensors.models import Observation
from smartlondon.sensors.qc import RULES_VERSION, run_qc
from tests.sensors.sta_support import Network, build_network


@pytest.fixture
def network(db: Database) -> Network:
    return build_network(db)


def _faulty_stream(db: Database, network: Network) -> tuple[int, dict[str, object]]:
    """A NO2 Datastream at Marylebone Road fed the real hourly values with faults put in.

    Hours 0-9: real; 10: a spike (+400); 11-19: real; 20-26: the same value seven times (flat line);
    27: 1500 µg/m³ (out of range); 28-30: 0, 0, 0 (stuck at the floor); 31-33 missing; 34-: real.
    """
    real = network.values["MY1/NO2"]
    start = real[0][0]
    values = [v for _, v in real]
    series: list[tuple[object, float]] = []
    for hour in range(40):
        if 31 <= hour <= 33:
            continue
        value = values[hour % len(values)]
        if hour == 10:
            value = values[9] + 400
        elif 20 <= hour <= 26:
            value = 41.5
        elif hour == 27:
            value = 1500.0
        elif 28 <= hour <= 30:
            value = 0.0
        series.append((start + timedelta(hours=hour), value))
    with db.session() as session:
        created = service.create_from_path(session, "Datastreams", {
            "name": "NO2 test analyser at Marylebone Road", "description": "A faulty analyser",
            "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "unitOfMeasurement": {"name": "microgram per cubic metre", "symbol": "µg/m³",
                                  "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3"},
            "properties": {"species": "NO2"},
            "Thing": {"@iot.id": network.things["MY1"]}, "Sensor": {"@iot.id": network.sensors["NO2"]},
            "ObservedProperty": {"@iot.id": network.observed_properties["NO2"]}}, "http://testserver/sta/v1.1")
        stream_id = created["@iot.id"]
        service.bulk_insert(session, stream_id, series)
    return stream_id, {"start": start}


def _flags(db: Database, stream_id: int) -> dict[int, list[str]]:
    with db.session() as session:
        rows = session.execute(select(Observation.phenomenon_time_start, Observation.result_quality)
                               .where(Observation.datastream_id == stream_id)
                               .order_by(Observation.phenomenon_time_start)).all()
    start = rows[0][0]
    out = {}
    for when, quality in rows:
        assert quality["qc"]["version"] == RULES_VERSION
        out[int((when - start).total_seconds() // 3600)] = quality["qc"]["flags"]
    return out


def test_each_rule_flags_the_fault_it_is_for_and_real_values_pass(db: Database, network: Network) -> None:
    stream_id, _ = _faulty_stream(db, network)
    with db.session() as session:
        report = run_qc(session, stream_id)
    assert report.checked == 37
    flags = _flags(db, stream_id)
    assert flags[10] == ["spike"]
    assert all(flags[h] == ["flat_line"] for h in range(20, 27))
    assert flags[27] == ["range", "spike"]  # 1500 is both implausible and a jump from both neighbours
    assert all(flags[h] == ["stuck"] for h in range(28, 31))
    assert flags[34] == ["gap"]
    clean = [h for h in flags if h < 10 or 11 <= h < 20 or h > 34]
    assert clean and all(flags[h] == [] for h in clean)
    assert report.flagged == {"range": 1, "spike": 2, "flat_line": 7, "stuck": 3, "gap": 1}


def test_flags_show_in_result_quality_through_the_api_and_recompute_over_a_range(
        db: Database, network: Network, client: TestClient) -> None:
    stream_id, info = _faulty_stream(db, network)
    start = info["start"]
    with db.session() as session:
        run_qc(session, stream_id)
        row = session.scalars(select(Observation).where(Observation.datastream_id == stream_id)
                              .order_by(Observation.phenomenon_time_start).offset(10).limit(1)).one()
        row.result_number = 60.0  # corrected by hand: a recompute of that hour's range clears the spike
        row.result = 60.0
    with db.session() as session:
        report = run_qc(session, stream_id, start + timedelta(hours=10), start + timedelta(hours=11))
    assert report.checked == 1 and report.flagged == {}
    body = client.get(f"/sta/v1.1/Datastreams({stream_id})/Observations",
                      params={"$orderby": "phenomenonTime asc", "$top": "30"}).json()
    qualities = [o["resultQuality"] for o in body["value"]]
    assert qualities[10] == {"qc": {"version": RULES_VERSION, "flags": []}}
    assert qualities[27] == {"qc": {"version": RULES_VERSION, "flags": ["range", "spike"]}}


def test_qc_errors_change_nothing(db: Database, network: Network) -> None:
    stream = network.datastreams["MY1/NO2"]
    with db.session() as session:
        with pytest.raises(NotFound):
            run_qc(session, 9999)
        first = network.values["MY1/NO2"][0][0]
        with pytest.raises(BadRequest):
            run_qc(session, stream, first + timedelta(hours=5), first)
    with db.session() as session:
        qualities = session.scalars(select(Observation.result_quality).where(Observation.datastream_id == stream)).all()
    assert qualities and all(q is None for q in qualities)


def test_the_command_checks_one_or_every_datastream(db: Database, network: Network, monkeypatch) -> None:
    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", db.url)
    runner = CliRunner()
    stream = network.datastreams["BL0/PM10"]
    result = runner.invoke(main, ["sensors", "qc", "--datastream", str(stream)])
    assert result.exit_code == 0, result.output
    assert f"Datastream {stream}: {len(network.values['BL0/PM10'])} observations checked" in result.output
    result = runner.invoke(main, ["sensors", "qc", "--all"])
    assert result.exit_code == 0, result.output
    assert result.output.count("observations checked") == 3
    with db.session() as session:
        qualities = session.scalars(select(Observation.result_quality)
                                    .where(Observation.datastream_id.is_not(None))).all()
    assert all(q["qc"]["version"] == RULES_VERSION for q in qualities)
    bad = runner.invoke(main, ["sensors", "qc"])
    assert bad.exit_code != 0 and "Give either --datastream ID or --all" in bad.output
    bad_time = runner.invoke(main, ["sensors", "qc", "--all", "--from", "yesterday"])
    assert bad_time.exit_code == 2 and "is not an ISO 8601 time" in bad_time.output
    missing = runner.invoke(main, ["sensors", "qc", "--datastream", "9999"])
    assert missing.exit_code == 1 and "There is no Datastream with id 9999" in missing.output


def test_default_ranges_apply_only_in_their_unit_and_a_datastream_can_set_its_own(
        db: Database, network: Network) -> None:
    first = network.values["MY1/NO2"][0][0]
    ids = {}
    with db.session() as session:
        for name, props in (("ppb", {"species": "NO2"}), ("own", {"species": "NO2", "qc": {"min": 0, "max": 100}})):
            created = service.create_from_path(session, "Datastreams", {
                "name": f"NO2 in ppb ({name})", "description": "A low-cost sensor reporting parts per billion",
                "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
                "unitOfMeasurement": {"name": "parts per billion", "symbol": "ppb",
                                      "definition": "http://qudt.org/vocab/unit/PPB"},
                "properties": props,
                "Thing": {"@iot.id": network.things["MY1"]}, "Sensor": {"@iot.id": network.sensors["NO2"]},
                "ObservedProperty": {"@iot.id": network.observed_properties["NO2"]}}, "http://testserver/sta/v1.1")
            ids[name] = created["@iot.id"]
            service.bulk_insert(session, ids[name], [(first + timedelta(hours=h), v)
                                                     for h, v in enumerate([20.0, 1500.0, 22.0])])
    with db.session() as session:
        assert run_qc(session, ids["ppb"]).flagged == {}
        assert run_qc(session, ids["own"]).flagged == {"range": 1}


def test_pollutants_are_recognised_the_ways_the_laqn_loader_describes_them() -> None:
    from smartlondon.sensors.qc import stream_pollutant

    assert stream_pollutant({"siteCode": "MY1", "speciesCode": "PM25"}) == "pm25"
    assert stream_pollutant({}, "PM2.5 particulate matter") == "pm25"
    assert stream_pollutant({}, "PM1 particulate matter") is None
    assert stream_pollutant(None, "Something", "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/8") == "no2"
    assert stream_pollutant({}, "x", None, {"laqnSpeciesCode": "O3"}) == "o3"
    assert stream_pollutant({"species": "BENZ"}, "Benzene") is None


def test_a_long_datastream_is_checked_window_by_window_with_the_same_flags(db: Database, network: Network,
                                                                         monkeypatch) -> None:
    from smartlondon.sensors import qc

    stream_id, _ = _faulty_stream(db, network)
    monkeypatch.setattr(qc, "WINDOW", timedelta(hours=5))  # eight windows over the 40 hours
    with db.session() as session:
        report = run_qc(session, stream_id)
    assert report.checked == 37
    assert report.flagged == {"range": 1, "spike": 2, "flat_line": 7, "stuck": 3, "gap": 1}
    flags = _flags(db, stream_id)
    assert flags[10] == ["spike"] and all(flags[h] == ["flat_line"] for h in range(20, 27))
