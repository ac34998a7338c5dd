"""Shared parts of the sensor benchmarks (sensors_ingest.py, sensors_query.py): a fresh database,
a fleet of Things/Datastreams written with raw inserts, the floor's raw bulk insert of Observation
rows, an API token, and a live ``smartlondon serve`` subprocess.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import httpx
from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("SMARTLONDON_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
UNIT = {"name": "microgram per cubic metre", "symbol": "µg/m³", "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3"}
#: Datastream ids start here, far above what a test database holds, so MQTT messages on the shared
#: broker that another process's bridge picks up are refused there (no such Datastream) rather than stored.
STREAM_BASE = 900_000_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fresh_database(backend: str, workdir: Path, name: str) -> str:
    """Create an empty database for the run and return its URL."""
    if backend == "sqlite":
        path = workdir / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def build_fleet(db, streams: int, per_thing: int = 5) -> list[int]:  # type: ignore[no-untyped-def]
    """Things (each with a Location and its FeatureOfInterest) with ``per_thing`` Datastreams each; the Datastream ids."""
    from smartlondon.sensors.models import (
        Datastream, FeatureOfInterest, Location, ObservedProperty, Sensor, Thing, ThingLocation,
    )

    things = (streams + per_thing - 1) // per_thing
    with db.session() as s:
        s.execute(insert(Sensor), [{"id": 1, "name": "Low-cost sensor", "description": "", "encoding_type": "text/html",
                                    "sensor_metadata": "https://example.org/"}])
        s.execute(insert(ObservedProperty), [{"id": i, "name": n, "definition": f"urn:bench:{n}", "description": ""}
                                             for i, n in enumerate(["NO2", "PM10", "PM2.5", "O3", "SO2"], 1)])
        s.execute(insert(Thing), [{"id": i, "name": f"Lamppost {i}", "description": "", "properties": {}}
                                  for i in range(1, things + 1)])
        points = [{"type": "Point", "coordinates": [-0.5 + (i % 100) / 100, 51.3 + (i // 100) / 100]}
                  for i in range(1, things + 1)]
        s.execute(insert(Location), [{"id": i, "name": f"Lamppost {i}", "description": "", "location": points[i - 1],
                                      "encoding_type": "application/geo+json", "properties": {}}
                                     for i in range(1, things + 1)])
        s.execute(insert(ThingLocation), [{"thing_id": i, "location_id": i} for i in range(1, things + 1)])
        s.execute(insert(FeatureOfInterest), [{"id": i, "name": f"Lamppost {i}", "description": "",
                                               "encoding_type": "application/geo+json", "feature": points[i - 1],
                                               "properties": {}, "source_location_id": i}
                                              for i in range(1, things + 1)])
        ids = [STREAM_BASE + i for i in range(1, streams + 1)]
        s.execute(insert(Datastream), [{"id": d, "name": f"D{d}", "description": "", "observation_type": MEASUREMENT,
                                        "unit_of_measurement": UNIT, "thing_id": (d - STREAM_BASE - 1) // per_thing + 1,
                                        "sensor_id": 1, "observed_property_id": (d - STREAM_BASE - 1) % 5 + 1,
                                        "properties": {}}
                                       for d in ids])
    if db.dialect == "postgresql":
        with db.engine.begin() as conn:
            for table in ("sta_thing", "sta_location", "sta_feature_of_interest", "sta_datastream",
                          "sta_sensor", "sta_observed_property"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    return ids


def thing_of(stream_id: int, per_thing: int = 5) -> int:
    return (stream_id - STREAM_BASE - 1) // per_thing + 1


def floor_insert(db, rows: Iterable[tuple[int, int, datetime, float]], first_id: int) -> int:  # type: ignore[no-untyped-def]
    """The raw bulk insert: ``(datastream, feature, time, value)`` rows straight into sta_observation.

    SQLite: the driver's executemany of one INSERT; PostgreSQL: COPY FROM STDIN (psycopg). Ids are
    given (from ``first_id``). Returns how many rows.
    """
    n = 0
    raw = db.engine.raw_connection()
    try:
        if db.dialect == "sqlite":
            cur = raw.cursor()
            data = []
            for i, (ds, foi, when, value) in enumerate(rows):
                data.append((first_id + i, when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f"),
                             json.dumps(value), value, "{}", ds, foi))
            cur.executemany("INSERT INTO sta_observation (id, phenomenon_time_start, result, result_number, parameters, "
                            "datastream_id, feature_of_interest_id) VALUES (?, ?, ?, ?, ?, ?, ?)", data)
            n = len(data)
        else:
            cur = raw.cursor()
            with cur.copy("COPY sta_observation (id, phenomenon_time_start, result, result_number, parameters, "
                          "datastream_id, feature_of_interest_id) FROM STDIN") as copy:
                buf = io.StringIO()
                for i, (ds, foi, when, value) in enumerate(rows):
                    buf.write(f"{first_id + i}\t{when.isoformat()}\t{value}\t{value}\t{{}}\t{ds}\t{foi}\n")
                    n += 1
                    if n % 50_000 == 0:
                        copy.write(buf.getvalue())
                        buf = io.StringIO()
                copy.write(buf.getvalue())
        raw.commit()
    finally:
        raw.close()
    return n


def api_token(db) -> str:  # type: ignore[no-untyped-def]
    """A sysadmin's API token (writes through /sta/v1.1 need one)."""
    from smartlondon.core import accounts

    with db.session() as session:
        user = accounts.create_user(session, username="bench-loader", email="bench@example.org",
                                    password="bench-password-123", sysadmin=True)
        _, secret = accounts.create_token(session, user, "benchmark", 1)
    return secret


def start_server(url: str, workdir: Path, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """The search benchmark's server start, with no MQTT bridge unless ``extra_env`` asks for one."""
    from search import start_server as serve

    return serve(url, workdir, {"SMARTLONDON_MQTT_URL": "", **(extra_env or {})})


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except OSError:
        return "uptime unavailable"
