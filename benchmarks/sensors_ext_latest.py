"""p95 of "latest of 5,000 Datastreams" through GET /sta/v1.1/ext/latest (sensors extension) and through
the standard's ``Datastreams?$expand=Observations($top=1;$orderby=phenomenonTime desc)`` (and the same
under ``Things``), both served from ``sta_latest``.

    .venv/bin/python benchmarks/sensors_ext_latest.py [DATABASE_URL] [--streams 5000] [--runs 60]

Builds 1,000 Things with 5 Datastreams each, a few Observations per Datastream and their
``sta_latest`` rows (raw bulk inserts), then times the endpoint in process (HTTP stack, SQL and JSON),
its JSON-building SQL alone and the bare join fetched as rows (the floor), and prints p50/p95
beside the 50 ms target. The database given is wiped first: use a scratch one (default: a temporary SQLite file).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert, text

from smartlondon.app import create_app
from smartlondon.core import migrate
from smartlondon.core.db import Database
from smartlondon.sensors.models import Datastream, Latest, Observation, ObservedProperty, Sensor, Thing, FeatureOfInterest
from smartlondon.settings import Settings


def build(db: Database, streams: int) -> None:
    start = datetime(2023, 1, 1, tzinfo=timezone.utc)
    with db.session() as s:
        s.execute(insert(Sensor), [{"id": 1, "name": "s", "description": "", "encoding_type": "text/html"}])
        s.execute(insert(ObservedProperty), [{"id": i, "name": n, "definition": "urn:x", "description": ""}
                                             for i, n in enumerate(["NO2", "PM10", "PM2.5", "O3", "SO2"], 1)])
        things = streams // 5
        s.execute(insert(Thing), [{"id": i, "name": f"T{i}", "description": ""} for i in range(1, things + 1)])
        s.execute(insert(FeatureOfInterest), [{"id": 1, "name": "f", "description": "", "encoding_type":
                                               "application/geo+json", "feature": {"type": "Point", "coordinates": [0, 51]}}])
        s.execute(insert(Datastream), [{"id": i, "name": f"D{i}", "description": "", "observation_type": "m",
                                        "unit_of_measurement": {"symbol": "µg/m³"}, "thing_id": (i - 1) // 5 + 1,
                                        "sensor_id": 1, "observed_property_id": (i - 1) % 5 + 1}
                                       for i in range(1, streams + 1)])
        obs, latest, oid = [], [], 0
        for d in range(1, streams + 1):
            for h in range(4):
                oid += 1
                obs.append({"id": oid, "datastream_id": d, "feature_of_interest_id": 1,
                            "phenomenon_time_start": start + timedelta(hours=h), "result": 10.0 + h,
                            "result_number": 10.0 + h})
            latest.append({"datastream_id": d, "observation_id": oid,
                           "phenomenon_time_start": start + timedelta(hours=3), "result": 13.0})
        s.execute(insert(Observation), obs)
        s.execute(insert(Latest), latest)


def p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url", nargs="?")
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
    db = Database(url)
    if db.dialect == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    migrate.upgrade(db)
    build(db, args.streams)
    if db.dialect == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    app = create_app(Settings(data_dir=Path(tmp) / "var", database_url=url, secret_key="x",
                              base_url="http://bench").resolved(), db)
    client = TestClient(app)
    from smartlondon.sensors.ext_api import _latest_sql

    http, sql, built = [], [], []
    expand: dict[str, list[float]] = {
        "Datastreams?$top=5000&$expand=Observations($top=1;$orderby=phenomenonTime desc)": [],
        "Things?$top=1000&$expand=Datastreams/Observations($top=1;$orderby=phenomenonTime desc)": [],
    }
    statement = text(_latest_sql(db.dialect, ""))
    query = text("SELECT l.datastream_id, l.observation_id, l.phenomenon_time_start, l.result, d.name "
                 "FROM sta_latest l JOIN sta_datastream d ON d.id = l.datastream_id ORDER BY l.datastream_id")
    for i in range(args.runs + 5):
        t0 = time.perf_counter()
        r = client.get("/sta/v1.1/ext/latest")
        t1 = time.perf_counter()
        assert r.status_code == 200 and len(r.json()["value"]) == args.streams
        with db.engine.connect() as conn:
            t2 = time.perf_counter()
            rows = conn.execute(query).all()
            t3 = time.perf_counter()
            conn.execute(statement, {"top": 10000, "skip": 0, "root": "http://bench/sta/v1.1"}).one()
            t4 = time.perf_counter()
        assert len(rows) == args.streams
        for url, times in expand.items():
            t5 = time.perf_counter()
            r = client.get("/sta/v1.1/" + url)
            if i >= 5:
                times.append((time.perf_counter() - t5) * 1000)
            assert r.status_code == 200 and len(r.json()["value"]) == (args.streams if url[0] == "D" else args.streams // 5)
        if i >= 5:  # warm-up
            http.append((t1 - t0) * 1000)
            sql.append((t3 - t2) * 1000)
            built.append((t4 - t3) * 1000)
    print(f"{db.dialect}: latest of {args.streams} Datastreams, {args.runs} runs")
    print(f"  GET /sta/v1.1/ext/latest  p50 {statistics.median(http):7.1f} ms  p95 {p(http, .95):7.1f} ms  (target p95 <= 50 ms)")
    print(f"  its JSON-building SQL     p50 {statistics.median(built):7.1f} ms  p95 {p(built, .95):7.1f} ms")
    for url, times in expand.items():
        print(f"  GET /sta/v1.1/{url}\n                            p50 {statistics.median(times):7.1f} ms  "
              f"p95 {p(times, .95):7.1f} ms  (target p95 <= 50 ms)")
    print(f"  bare SQL (floor)          p50 {statistics.median(sql):7.1f} ms  p95 {p(sql, .95):7.1f} ms")
    print(f"  load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
