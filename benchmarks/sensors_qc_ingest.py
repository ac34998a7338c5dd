"""What quality control and calibration on ingest cost: bulk ingest with the ingest hooks on and off.

The same ``CreateObservations`` (dataArray) bodies go through the service layer twice, in process,
into fresh databases: once with the hooks of ``sensors/service.py`` (``BEFORE_INSERT``: QC flags;
``AFTER_INSERT``: calibrated Datastreams) as installed, once with the hook lists emptied (what
ingest cost before them), alternating, ``--repeat`` times each. Printed: the best observations per
second of each and the ratio.

    .venv/bin/python benchmarks/sensors_qc_ingest.py --backend sqlite --rows 50000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sensors_common import build_fleet, fresh_database, uptime  # type: ignore[import-not-found]
from smartlondon.core import migrate
from smartlondon.core.db import Database
from smartlondon.sensors import service

START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def rate(url: str, rows: int, per_request: int, hooks: bool) -> float:
    db = Database(url)
    migrate.upgrade(db)
    streams = build_fleet(db, 10)
    saved = (list(service.BEFORE_INSERT), list(service.AFTER_INSERT))
    if not hooks:
        service.BEFORE_INSERT.clear()
        service.AFTER_INSERT.clear()
    try:
        started = time.perf_counter()
        done = 0
        while done < rows:
            body = []
            for stream in streams:
                n = per_request // len(streams)
                first = done // len(streams)
                body.append({"Datastream": {"@iot.id": stream}, "components": ["phenomenonTime", "result"],
                             "dataArray": [[service.format_time(START + timedelta(minutes=first + i)), 20.0 + (first + i) % 50]
                                           for i in range(n)]})
            with db.session() as session:
                service.create_observations(session, body, "http://bench/sta/v1.1")
            done += per_request
        return done / (time.perf_counter() - started)
    finally:
        service.BEFORE_INSERT[:], service.AFTER_INSERT[:] = saved
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--per-request", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, alternating; the best is printed")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"Ingest hooks, {args.rows:,} rows in requests of {args.per_request:,}; load: {uptime()}\n")
    print("| backend | hooks off (obs/s) | hooks on: QC + calibration (obs/s) | on / off |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            runs: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.repeat):  # alternate, best of each: the shared machine's load varies
                for hooks in (False, True):
                    name = f"bench_sensors_hooks_{'on' if hooks else 'off'}"
                    runs[hooks].append(rate(fresh_database(backend, Path(tmp), name), args.rows, args.per_request, hooks))
            off, on = max(runs[False]), max(runs[True])
            print(f"| {backend} | {off:,.0f} | {on:,.0f} | {on / off:.2f} |")


if __name__ == "__main__":
    main()
