"""Sensor archive benchmark: moving old Observations to Parquet, and reading them back through the API.

* archive: Observations/s moved by ``sensors.archive.archive`` (read, Parquet written by DuckDB,
  fsynced, verified, manifest row, rows deleted: one transaction per Datastream and month), beside
  the floor: the same rows read from the database and written to Parquet by DuckDB alone (no fsync,
  no verification, no delete);
* read: p50/p95 of a 24-hour window ``Datastreams(id)/Observations?$filter=phenomenonTime ge X and
  phenomenonTime lt Y`` in process through the whole HTTP stack, on hot rows and on archived rows,
  beside the floor: DuckDB reading the same window straight from the segment's Parquet file;
* whole set: p50/p95 of the top-level ``/Observations`` with ``$count=true&$top=0``, with
  ``$orderby=phenomenonTime desc&$top=10`` and with ``$orderby=phenomenonTime&$top=10`` (the oldest,
  all archived), and how many segments each read, beside the floor: the database counting (ordering)
  the hot rows alone plus DuckDB doing the same over every segment file.

    .venv/bin/python benchmarks/sensors_archive.py [DATABASE_URL] [--streams 20] [--days 60] [--runs 40]

The database given is wiped first (default: a temporary SQLite file).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert, select, text

from smartlondon.app import create_app
from smartlondon.core import migrate
from smartlondon.core.db import Database
from smartlondon.sensors import archive
from smartlondon.sensors.models import (
    Datastream, FeatureOfInterest, Latest, Observation, ObservedProperty, Sensor, Thing,
)
from smartlondon.settings import Settings

START = datetime(2023, 1, 1, tzinfo=timezone.utc)


def build(db: Database, streams: int, days: int) -> int:
    """``streams`` Datastreams with hourly Observations over ``days`` days, and their sta_latest rows."""
    with db.session() as s:
        s.execute(insert(Sensor), [{"id": 1, "name": "s", "description": "", "encoding_type": "text/html"}])
        s.execute(insert(ObservedProperty), [{"id": 1, "name": "NO2", "definition": "urn:x", "description": ""}])
        s.execute(insert(Thing), [{"id": 1, "name": "T", "description": ""}])
        s.execute(insert(FeatureOfInterest), [{"id": 1, "name": "f", "description": "",
                                               "encoding_type": "application/geo+json",
                                               "feature": {"type": "Point", "coordinates": [0, 51]}}])
        s.execute(insert(Datastream), [{"id": d, "name": f"D{d}", "description": "", "observation_type": "m",
                                        "unit_of_measurement": {"symbol": "µg/m³"}, "thing_id": 1, "sensor_id": 1,
                                        "observed_property_id": 1} for d in range(1, streams + 1)])
        oid = 0
        for d in range(1, streams + 1):
            rows = []
            for h in range(days * 24):
                oid += 1
                value = round(5 + (d * 7 + h * 13) % 90 + 0.5, 1)
                rows.append({"id": oid, "datastream_id": d, "feature_of_interest_id": 1, "result": value,
                             "result_number": value, "phenomenon_time_start": START + timedelta(hours=h)})
            s.execute(insert(Observation), rows)
            s.execute(insert(Latest), [{"datastream_id": d, "observation_id": oid,
                                        "phenomenon_time_start": rows[-1]["phenomenon_time_start"],
                                        "result": rows[-1]["result"]}])
    return oid


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?")
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    url = args.url or f"sqlite:///{tmp / 'bench.db'}"
    db = Database(url)
    if db.dialect == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    migrate.upgrade(db)
    total = build(db, args.streams, args.days)
    now = START + timedelta(days=args.days)
    keep = timedelta(days=args.days // 2)

    archive._duckdb().close()   # open DuckDB once before timing anything
    # floor: the same rows read and written to Parquet by DuckDB, nothing else
    started = time.perf_counter()
    floor_rows = 0
    with db.session() as session:
        for chunk in archive.plan(session, keep, now=now):
            rows = session.execute(select(Observation.__table__).where(
                Observation.datastream_id == chunk.datastream_id, Observation.phenomenon_time_start >= chunk.start,
                Observation.phenomenon_time_start < chunk.end)).all()
            if rows:
                archive.write_parquet(rows, tmp / "floor" / f"{chunk.datastream_id}-{chunk.month}.parquet")
                floor_rows += len(rows)
    floor_seconds = time.perf_counter() - started

    archive_dir = tmp / "archive"
    started = time.perf_counter()
    report = archive.archive(db, archive_dir, keep, now=now)
    ours_seconds = time.perf_counter() - started

    app = create_app(Settings(data_dir=tmp / "var", database_url=url, secret_key="x", base_url="http://bench",
                              archive_path=archive_dir).resolved(), db)
    client = TestClient(app)
    rng = random.Random(4)
    cold_days, hot_days = args.days // 2 - 1, args.days // 2
    timings: dict[str, list[float]] = {"hot": [], "archived": [], "floor": []}
    with db.session() as session:
        segments = {(s.datastream_id, s.month): s.path for s in session.scalars(select(archive.ArchiveSegment))}
    import duckdb

    con = duckdb.connect()
    for i in range(args.runs + 3):
        stream = rng.randint(1, args.streams)
        days = (("hot", hot_days + rng.randrange(args.days - hot_days - 1)), ("archived", rng.randrange(cold_days)))
        for kind, day in days:
            begin = START + timedelta(days=day)
            iso = begin.isoformat().replace("+00:00", "Z")
            end = (begin + timedelta(days=1)).isoformat().replace("+00:00", "Z")
            t0 = time.perf_counter()
            body = client.get(f"/sta/v1.1/Datastreams({stream})/Observations?$filter=phenomenonTime ge {iso} and "
                              f"phenomenonTime lt {end}").json()
            elapsed = (time.perf_counter() - t0) * 1000
            assert len(body["value"]) == 24, (kind, len(body["value"]))
            if kind == "archived":
                path = archive_dir / segments[(stream, begin.strftime("%Y-%m"))]
                t0 = time.perf_counter()
                low = (begin - archive._EPOCH) // archive._US
                con.execute(f"SELECT {archive._SELECT_PARQUET} FROM read_parquet('{path}') WHERE "
                            "epoch_us(phenomenon_time_start) >= ? AND epoch_us(phenomenon_time_start) < ? "
                            "ORDER BY phenomenon_time_start, id", [low, low + 86_400_000_000]).fetchall()
                floor = (time.perf_counter() - t0) * 1000
                if i >= 3:
                    timings["floor"].append(floor)
            if i >= 3:
                timings[kind].append(elapsed)
    print(f"\nSensor archive, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {db.dialect}; {args.streams} "
          f"Datastreams x {args.days} days hourly = {total:,} Observations; load average {os.getloadavg()[0]:.1f}\n")
    print("| what | ours | floor |")
    print("|---|---:|---:|")
    print(f"| archive, Observations/s ({report.rows:,} rows, {report.segments} segments) | "
          f"{report.rows / ours_seconds:,.0f} | {floor_rows / floor_seconds:,.0f} (read + DuckDB Parquet write only) |")
    hot = timings["hot"]
    print(f"| 24-hour window, hot rows, p50 / p95 ms | {statistics.median(hot):.1f} / {pct(hot, .95):.1f} | - |")
    print(f"| 24-hour window, archived rows, p50 / p95 ms | {statistics.median(timings['archived']):.1f} / "
          f"{pct(timings['archived'], .95):.1f} | {statistics.median(timings['floor']):.1f} / "
          f"{pct(timings['floor'], .95):.1f} "
          "(DuckDB on the segment file) |")
    whole_set(db, client, con, archive_dir, args.runs)


def whole_set(db: Database, client: TestClient, con: object, archive_dir: Path, runs: int) -> None:
    """The top-level ``/Observations`` over the whole set: ``$count``, newest and oldest ten."""
    with db.session() as session:
        files = [str(archive_dir / p) for p in session.scalars(select(archive.ArchiveSegment.path))]
    listing = "[" + ", ".join(f"'{f}'" for f in files) + "]"
    cases = {
        "$count=true&$top=0": ("SELECT count(*) FROM sta_observation", f"SELECT count(*) FROM read_parquet({listing})"),
        "$orderby=phenomenonTime desc&$top=10": (
            "SELECT * FROM sta_observation ORDER BY phenomenon_time_start DESC, id DESC LIMIT 11",
            f"SELECT {archive._SELECT_PARQUET} FROM read_parquet({listing}) "
            "ORDER BY phenomenon_time_start DESC, id DESC LIMIT 11"),
        "$orderby=phenomenonTime&$top=10": (
            "SELECT * FROM sta_observation ORDER BY phenomenon_time_start, id LIMIT 11",
            f"SELECT {archive._SELECT_PARQUET} FROM read_parquet({listing}) ORDER BY phenomenon_time_start, id LIMIT 11"),
    }
    loaded: list[int] = []
    real = archive.load

    def counting_load(session: object, folder: Path, found: list, *rest: object) -> object:
        loaded.append(len(found))
        return real(session, folder, found, *rest)  # type: ignore[arg-type]

    archive.load = counting_load  # type: ignore[assignment]
    print(f"\nWhole set, top-level /Observations ({len(files)} segments); load average {os.getloadavg()[0]:.1f}\n")
    print("| query | segments read | ours p50 / p95 ms | floor p50 / p95 ms (hot SQL + DuckDB on every segment) |")
    print("|---|---:|---:|---:|")
    try:
        for query, (hot_sql, cold_sql) in cases.items():
            ours, floor = [], []
            for i in range(runs + 3):
                loaded.clear()
                t0 = time.perf_counter()
                response = client.get(f"/sta/v1.1/Observations?{query}")
                elapsed = (time.perf_counter() - t0) * 1000
                assert response.status_code == 200, response.text
                t0 = time.perf_counter()
                with db.engine.connect() as conn:
                    conn.execute(text(hot_sql)).all()
                con.execute(cold_sql).fetchall()  # type: ignore[attr-defined]
                if i >= 3:
                    ours.append(elapsed)
                    floor.append((time.perf_counter() - t0) * 1000)
            print(f"| `{query}` | {sum(loaded)} | {statistics.median(ours):.1f} / {pct(ours, .95):.1f} | "
                  f"{statistics.median(floor):.1f} / {pct(floor, .95):.1f} |")
    finally:
        archive.load = real  # type: ignore[assignment]


if __name__ == "__main__":
    main()
