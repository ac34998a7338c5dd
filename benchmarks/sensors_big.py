"""The sensor query benchmark at the issue's size (up to 100 million Observations), PostgreSQL only.

Loads hourly Observations for ``--streams`` Datastreams straight into ``sta_observation`` in the
database (``INSERT ... SELECT`` over ``generate_series``, one statement per ``--chunk`` hours of all
Datastreams, each committed), with the secondary indexes dropped during the load and built again
after it; stops at ``--target`` rows or after ``--minutes`` of loading, whichever comes first, and
says how many it reached. Then, as ``sensors_query.py`` does, through a live ``smartlondon serve``:
p50/p95 of a 24-hour window of one Datastream (random Datastream and day), of latest-of-5,000
through ``$expand=Observations($top=1;$orderby=phenomenonTime desc)`` and through ``/ext/latest``,
each beside the same SQL run directly (the floor). The database (``--database``, default
``smartlondon_bench_sensors_big``) is dropped and recreated at the start and dropped at the end
unless ``--keep``.

    .venv/bin/python benchmarks/sensors_big.py --target 100000000 --minutes 20
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import text

from sensors_common import (  # type: ignore[import-not-found]
    PG_ADMIN, STREAM_BASE, build_fleet, fresh_database, log, percentile, start_server, stop_server, uptime,
)
from sensors_query import iso, time_http, time_sql, windows  # type: ignore[import-not-found]
from smartlondon.core import migrate
from smartlondon.core.db import Database

START = datetime(2023, 1, 1, tzinfo=timezone.utc)  # as sensors_query.windows() assumes
SECONDARY = {  # dropped for the load, built again after it
    "ix_sta_observation_datastream_time": "(datastream_id, phenomenon_time_start, id)",
    "ix_sta_observation_feature_of_interest_id": "(feature_of_interest_id)",
    "ix_sta_observation_multi_datastream_time": "(multi_datastream_id, phenomenon_time_start, id)",
}
FOREIGN = ("fk_sta_observation_datastream_id_sta_datastream", "fk_sta_observation_feature_of_interest_id",
           "fk_sta_observation_multi_datastream_id_sta_multi_datastream")


def load(url: str, streams: int, target: int, minutes: float, chunk_hours: int) -> tuple[int, int, float, float]:
    """Load hour by hour until ``target`` rows or ``minutes``; (rows, hours, load seconds, index seconds)."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        definitions = {name: conn.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s",
                                          (name,)).fetchone() for name in FOREIGN}
        for name in FOREIGN:
            conn.execute(f"ALTER TABLE sta_observation DROP CONSTRAINT IF EXISTS {name}")
        for name in SECONDARY:
            conn.execute(f"DROP INDEX IF EXISTS {name}")
        started = time.perf_counter()
        rows = hours = 0
        while rows < target and time.perf_counter() - started < minutes * 60:
            step = min(chunk_hours, max(1, (target - rows) // streams))
            conn.execute(
                "INSERT INTO sta_observation (id, phenomenon_time_start, result, result_number, parameters, "
                "datastream_id, feature_of_interest_id) "
                "SELECT %(first)s::bigint + (h - %(h0)s::int)::bigint * %(n)s::int + s, "
                "%(start)s::timestamptz + make_interval(hours => h), "
                "to_jsonb(v), v, '{}'::jsonb, %(base)s::int + s + 1, s / 5 + 1 "
                "FROM generate_series(%(h0)s::int, %(h1)s::int) AS h, generate_series(0, %(n)s::int - 1) AS s, "
                "LATERAL (SELECT round((5 + (s * 7 + h * 13) %% 90 + 0.5)::numeric, 1)::float8 AS v) AS val",
                {"first": rows + 1, "h0": hours, "h1": hours + step - 1, "n": streams, "start": START,
                 "base": STREAM_BASE})
            rows += step * streams
            hours += step
            log(f"  {rows:,} rows ({rows / (time.perf_counter() - started):,.0f}/s)")
        load_seconds = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '512MB'")
        for name, columns in SECONDARY.items():
            conn.execute(f"CREATE INDEX {name} ON sta_observation {columns}")
            log(f"  index {name} built")
        for name, row in definitions.items():
            if row is not None:  # the foreign keys again, trusted (the generator wrote only valid ids)
                conn.execute(f"ALTER TABLE sta_observation ADD CONSTRAINT {name} {row[0]} NOT VALID")
        index_seconds = time.perf_counter() - started
        end = START + timedelta(hours=hours - 1)
        conn.execute("INSERT INTO sta_latest (datastream_id, observation_id, phenomenon_time_start, result) "
                     "SELECT o.datastream_id, o.id, o.phenomenon_time_start, o.result FROM sta_observation o "
                     "WHERE o.datastream_id BETWEEN %(lo)s AND %(hi)s AND o.phenomenon_time_start = %(end)s",
                     {"lo": STREAM_BASE + 1, "hi": STREAM_BASE + streams, "end": end})
        conn.execute("UPDATE sta_datastream SET phenomenon_time_start = %s, phenomenon_time_end = %s", (START, end))
        conn.execute("SELECT setval(pg_get_serial_sequence('sta_observation', 'id'), (SELECT max(id) FROM sta_observation))")
        conn.execute("VACUUM ANALYZE sta_observation")
        conn.execute("ANALYZE")
    return rows, hours, load_seconds, index_seconds


def check_window(body: dict) -> None:  # type: ignore[type-arg]
    assert len(body["value"]) == 24, len(body["value"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--target", type=int, default=100_000_000, help="rows to load at most")
    parser.add_argument("--minutes", type=float, default=20, help="stop loading after this long")
    parser.add_argument("--chunk", type=int, default=500, help="hours of all Datastreams per INSERT")
    parser.add_argument("--runs", type=int, default=200, help="window queries")
    parser.add_argument("--latest-runs", type=int, default=20)
    parser.add_argument("--database", default="smartlondon_bench_sensors_big")
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = fresh_database("postgresql", workdir, args.database)
        db = Database(url)
        try:
            migrate.upgrade(db)
            streams = build_fleet(db, args.streams)
            log(f"loading up to {args.target:,} rows or {args.minutes} minutes")
            rows, hours, load_s, index_s = load(db.engine.url.render_as_string(hide_password=False), args.streams,
                                                args.target, args.minutes, args.chunk)
            size = db.engine.connect().execute(text("SELECT pg_size_pretty(pg_total_relation_size('sta_observation'))")).scalar()
            cases = windows(streams, hours, args.runs)
            window_sql = ("SELECT id, phenomenon_time_start, phenomenon_time_end, result_time, result FROM sta_observation "
                          "WHERE datastream_id = %(ds)s AND phenomenon_time_start >= %(s)s AND phenomenon_time_start < %(e)s "
                          "ORDER BY phenomenon_time_start, id LIMIT 100")
            out: dict[str, list[float]] = {}
            out["window_floor"] = time_sql(db, window_sql, [{"ds": ds, "s": s, "e": e} for ds, s, e in cases])
            latest_sql = ("SELECT d.id, d.name, l.observation_id, l.phenomenon_time_start, l.result FROM sta_datastream d "
                          "LEFT JOIN sta_latest l ON l.datastream_id = d.id ORDER BY d.id LIMIT 5000")
            out["latest_floor"] = time_sql(db, latest_sql, [{}] * args.latest_runs)
            proc, base = start_server(url, workdir)
            try:
                with httpx.Client(base_url=base, timeout=300) as client:
                    out["window"] = time_http(client, [
                        f"/sta/v1.1/Datastreams({ds})/Observations?$filter=phenomenonTime ge {iso(s)} and "
                        f"phenomenonTime lt {iso(e)}&$top=100" for ds, s, e in cases],
                        check_window)
                    out["latest"] = time_http(client, ["/sta/v1.1/Datastreams?$top=5000&$expand=Observations($top=1;"
                                                       "$orderby=phenomenonTime desc)"] * args.latest_runs, lambda body: None)
                    out["ext_latest"] = time_http(client, ["/sta/v1.1/ext/latest"] * args.latest_runs, lambda body: None)
            finally:
                stop_server(proc)
        finally:
            db.dispose()
            if not args.keep:
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {args.database}")
    print(f"\nSensor queries at size, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; PostgreSQL; "
          f"{rows:,} observations ({args.streams:,} Datastreams x {hours:,} hours; target {args.target:,}), "
          f"loaded in {load_s:,.0f} s ({rows / load_s:,.0f} rows/s) + {index_s:,.0f} s of index builds; "
          f"sta_observation {size}; load: {uptime()}\n")
    print("| query | ours p50 (ms) | ours p95 (ms) | floor p95: same SQL direct (ms) | target p95 |")
    print("|---|---:|---:|---:|---|")
    for label, key, floor, target in (("24-hour window, one Datastream", "window", "window_floor", "<= 10 ms"),
                                      ("latest of 5,000: $expand=Observations($top=1)", "latest", "latest_floor", "<= 50 ms"),
                                      ("latest of 5,000: /ext/latest", "ext_latest", "latest_floor", "<= 50 ms")):
        print(f"| {label} | {percentile(out[key], 50):.2f} | {percentile(out[key], 95):.2f} | "
              f"{percentile(out[floor], 95):.2f} | {target} |")


if __name__ == "__main__":
    main()
