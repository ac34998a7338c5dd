"""Quality control on ingest: new Observations get their flags as they are stored (sensors/qc.py check_on_ingest)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from smartlondon.core.db import Database
from smartlondon.sensors import service
from smartlondon.sensors.models import Observation
from smartlondon.sensors.qc import RULES_VERSION, Rules, flags_for, run_qc
from tests.sensors.sta_support import Network, build_network

ROOT = "http://testserver/sta/v1.1"


@pytest.fixture
def network(db: Database) -> Network:
    return build_network(db)


def _stream(db: Database, network: Network) -> int:
    with db.session() as session:
        return service.create_from_path(session, "Datastreams", {
            "name": "NO2 test analyser", "description": "fed one value at a time",
            "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "unitOfMeasurement": {"name": "microgram per cubic metre", "symbol": "µg/m³",
                                  "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3"},
            "properties": {"species": "NO2"},
            "Thing": {"@iot.id": network.things["MY1"]}, "Sensor": {"@iot.id": network.sensors["NO2"]},
            "ObservedProperty": {"@iot.id": network.observed_properties["NO2"]}}, ROOT)["@iot.id"]


def _faulty_series(network: Network) -> list[tuple[datetime, float]]:
    """Real Marylebone Road NO2 with a spike (hour 10), a flat line (20-26), an out-of-range value (27),
    a stuck-at-zero run (28-30) and a gap (31-33 missing)."""
    real = network.values["MY1/NO2"]
    values = [v for _, v in real]
    out = []
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
        out.append((real[0][0] + timedelta(hours=hour), value))
    return out


def _flags(db: Database, stream_id: int) -> list[tuple[int, list[str] | None]]:
    with db.session() as session:
        return [(hour, (q or {}).get("qc", {}).get("flags") if isinstance(q, dict) else None)
                for hour, q in enumerate(session.scalars(
                    select(Observation.result_quality).where(Observation.datastream_id == stream_id)
                    .order_by(Observation.phenomenon_time_start)))]


def test_flags_are_set_as_each_observation_arrives_and_match_a_batch_run(db: Database, network: Network) -> None:
    stream_id = _stream(db, network)
    series = _faulty_series(network)
    seen: dict[int, list[str]] = {}
    for i, (when, value) in enumerate(series):
        with db.session() as session:  # one message, one transaction: as MQTT or single POSTs arrive
            made = service.create_from_path(session, f"Datastreams({stream_id})/Observations",
                                            {"phenomenonTime": service.format_time(when), "result": value}, ROOT)
        assert made["resultQuality"]["qc"]["version"] == RULES_VERSION
        seen[i] = made["resultQuality"]["qc"]["flags"]
    # at arrival: out of range at once, the gap at once, the stuck run once it reaches 3 values
    by_hour = {int((when - series[0][0]).total_seconds() // 3600): i for i, (when, _) in enumerate(series)}
    assert seen[by_hour[27]] == ["range"]
    assert seen[by_hour[30]] == ["stuck"]
    assert seen[by_hour[34]] == ["gap"]
    assert seen[by_hour[10]] == []  # a spike needs its next neighbour: not known yet when it arrives
    on_ingest = _flags(db, stream_id)
    # ... and once the next one came, the earlier values got what it revealed: the same as a batch run
    with db.session() as session:
        run_qc(session, stream_id)
    assert on_ingest == _flags(db, stream_id)
    flagged = {by_hour_key: flags for by_hour_key, flags in on_ingest if flags}
    assert flagged[by_hour[10]] == ["spike"]
    assert all(flagged[by_hour[h]] == ["flat_line"] for h in range(20, 27))
    assert flagged[by_hour[28]] == ["stuck"]


def test_bulk_paths_flag_too_and_keep_what_clients_put_in_result_quality(client: TestClient, db: Database,
                                                                         network: Network, editor) -> None:  # type: ignore[no-untyped-def]
    stream_id = _stream(db, network)
    series = _faulty_series(network)
    response = client.post("/sta/v1.1/CreateObservations", headers=editor.headers, json=[{
        "Datastream": {"@iot.id": stream_id}, "components": ["phenomenonTime", "result"],
        "dataArray": [[service.format_time(t), v] for t, v in series]}])
    assert response.status_code == 201
    on_ingest = _flags(db, stream_id)
    with db.session() as session:
        run_qc(session, stream_id)
    assert on_ingest == _flags(db, stream_id)
    assert sum(1 for _, f in on_ingest if f) == 13
    made = client.post(f"/sta/v1.1/Datastreams({stream_id})/Observations", headers=editor.headers,
                       json={"phenomenonTime": "2023-01-03T00:00:00Z", "result": 2000, "resultQuality": "calibrated"})
    assert made.json()["resultQuality"] == {"original": "calibrated",
                                             "qc": {"version": RULES_VERSION, "flags": ["range", "gap"]}}  # hours after the last
    made = client.post(f"/sta/v1.1/Datastreams({stream_id})/Observations", headers=editor.headers,
                       json={"phenomenonTime": "2023-01-03T01:00:00Z", "result": 20, "resultQuality": {"lab": "A"}})
    assert made.json()["resultQuality"] == {"lab": "A", "qc": {"version": RULES_VERSION, "flags": []}}


def test_non_numeric_results_get_no_qc_entry(client: TestClient, db: Database, network: Network, editor) -> None:  # type: ignore[no-untyped-def]
    with db.session() as session:
        stream_id = service.create_from_path(session, "Datastreams", {
            "name": "Status", "description": "words", "unitOfMeasurement": {"name": "", "symbol": "", "definition": ""},
            "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CategoryObservation",
            "Thing": {"@iot.id": network.things["MY1"]}, "Sensor": {"@iot.id": network.sensors["NO2"]},
            "ObservedProperty": {"@iot.id": network.observed_properties["NO2"]}}, ROOT)["@iot.id"]
    made = client.post(f"/sta/v1.1/Datastreams({stream_id})/Observations", headers=editor.headers,
                       json={"phenomenonTime": "2023-01-03T00:00:00Z", "result": "ok"})
    assert made.status_code == 201 and made.json()["resultQuality"] is None


def test_a_request_for_several_datastreams_flags_each_as_a_batch_run_would(client: TestClient, db: Database,
                                                                          network: Network, editor) -> None:  # type: ignore[no-untyped-def]
    # two Datastreams in each request (the values before each one's batch are read with one query), the
    # first request large enough for COPY on PostgreSQL, the second continuing both series from what is stored
    streams = [_stream(db, network), _stream(db, network)]
    series = _faulty_series(network)
    shifted = [(when, value + 3.0) for when, value in series]  # a different series for the second stream
    for part in (slice(0, 30), slice(30, None)):
        response = client.post("/sta/v1.1/CreateObservations", headers=editor.headers, json=[
            {"Datastream": {"@iot.id": stream_id}, "components": ["phenomenonTime", "result"],
             "dataArray": [[service.format_time(t), v] for t, v in values[part]]}
            for stream_id, values in zip(streams, (series, shifted))])
        assert response.status_code == 201 and "error" not in response.json()
    for stream_id, values, flagged in zip(streams, (series, shifted), (13, 10)):  # shifted: no stuck-at-zero run
        on_ingest = _flags(db, stream_id)
        with db.session() as session:
            run_qc(session, stream_id)
        assert on_ingest == _flags(db, stream_id)
        assert sum(1 for _, f in on_ingest if f) == flagged
        stream = client.get(f"/sta/v1.1/Datastreams({stream_id})").json()
        assert stream["phenomenonTime"] == f"{service.format_time(values[0][0])}/{service.format_time(values[-1][0])}"
        latest = client.get(f"/sta/v1.1/Datastreams({stream_id})/Observations"
                            "?$top=1&$orderby=phenomenonTime desc").json()
        assert latest["value"][0]["result"] == values[-1][1]


def _reference_flags(series: list[tuple[datetime, float]], rules: Rules) -> list[list[str]]:
    """The rules written out value by value, to hold the array implementation to."""
    values = [v for _, v in series]
    out: list[list[str]] = []
    for i, (when, v) in enumerate(series):
        flags = []
        if (rules.minimum is not None and v < rules.minimum) or (rules.maximum is not None and v > rules.maximum):
            flags.append("range")
        if rules.spike is not None and 0 < i < len(series) - 1:
            up, down = v - values[i - 1], v - values[i + 1]
            if (up > rules.spike and down > rules.spike) or (up < -rules.spike and down < -rules.spike):
                flags.append("spike")
        first = i
        while first > 0 and values[first - 1] == v:
            first -= 1
        last = i
        while last + 1 < len(values) and values[last + 1] == v:
            last += 1
        if last - first + 1 >= rules.flat_line_count:
            flags.append("flat_line")
        if last - first + 1 >= rules.stuck_count and v in (0.0, rules.minimum, rules.maximum):
            flags.append("stuck")
        if rules.expected_seconds and i and (when - series[i - 1][0]).total_seconds() > rules.expected_seconds * 1.5:
            flags.append("gap")
        out.append(flags)
    return out


def test_the_rules_flag_random_series_as_written_value_by_value() -> None:
    rnd = random.Random(4)
    for _ in range(500):
        when, series = datetime(2023, 1, 1, tzinfo=timezone.utc), []
        for _ in range(rnd.randint(0, 30)):
            when += timedelta(seconds=rnd.choice([3600, 3600, 5400, 5401, 60]))
            series.append((when, rnd.choice([0.0, -0.0, 41.5, 41.5, 41.5, 1000.0, -5.0, rnd.uniform(-10, 1100)])))
        rules = Rules(minimum=rnd.choice([None, -5.0]), maximum=rnd.choice([None, 1000.0]),
                      spike=rnd.choice([None, 150.0]), flat_line_count=rnd.choice([2, 3, 6]),
                      stuck_count=rnd.choice([1, 3]), expected_seconds=rnd.choice([None, 3600.0]))
        assert flags_for(series, rules) == _reference_flags(series, rules)
