"""Harvest benchmark: 10,000 datasets from another smartlondon through its CKAN API, beside the floor.

A source instance is loaded with generated datasets (``catalogue_generator``, as the search
benchmark does) and served with ``smartlondon serve``. The floor is the source's own
``package_search`` paging: the same pages (``rows``, ``start``, ``sort=id asc``) fetched in the
same run without doing anything with them. Then a fresh target database harvests the source
(every dataset and resource written through the catalogue service, one transaction per
record, audit log, search index and change events included), and harvests it again with
nothing changed (the idempotent re-run).

    .venv/bin/python benchmarks/harvest.py                      # 10,000 datasets, SQLite target
    .venv/bin/python benchmarks/harvest.py --datasets 1000 --backend postgresql
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ["SMARTLONDON_HARVEST_SCHEDULER"] = "0"  # the served source instance has nothing to harvest itself

from search import fresh_database, load, log, postgres_available, start_server  # noqa: E402

from smartlondon.catalogue.harvest import runner, sources  # noqa: E402
from smartlondon.core import migrate, reference  # noqa: E402
from smartlondon.core.accounts import COMMAND_LINE  # noqa: E402
from smartlondon.core.db import Database  # noqa: E402


def floor(base: str, rows: int) -> tuple[float, int, int]:
    """Fetch every page of package_search as a harvester would, doing nothing with it."""
    started = time.perf_counter()
    seen = pages = start = 0
    with httpx.Client(timeout=60) as client:
        while True:
            body = client.get(f"{base}/api/3/action/package_search",
                              params={"rows": rows, "start": start, "sort": "id asc"}).json()
            results = body["result"]["results"]
            pages += 1
            seen += len(results)
            start += len(results)
            if not results or start >= body["result"]["count"]:
                break
    return time.perf_counter() - started, seen, pages


def target_database(backend: str, workdir: Path) -> Database:
    if backend == "sqlite":
        path = workdir / "target.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        import psycopg

        admin = os.environ.get("SMARTLONDON_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS smartlondon_bench_harvest")
            conn.execute("CREATE DATABASE smartlondon_bench_harvest")
        url = admin.rsplit("/", 1)[0] + "/smartlondon_bench_harvest"
    db = Database(url)
    migrate.upgrade(db)
    with db.session() as session:
        reference.seed(session)
    return db


def run(backend: str, base: str, n: int, rows: int, workdir: Path) -> None:
    db = target_database(backend, workdir)
    with db.session() as session:
        source = sources.create_source(session, COMMAND_LINE, {
            "slug": "source-instance", "name": "Source instance", "type": "ckan", "url": base,
            "organisation": "greater-london-authority", "schedule": "manual",
            "config": {"page_size": rows, "read_timeout": 120, "max_pages": 100000}}).id
    floor_s, floor_n, pages = floor(base, rows)
    started = time.perf_counter()
    job = runner.run_job(db, sources.start_job(db, source, requested_by="benchmark", mode="full"))
    first = time.perf_counter() - started
    assert job.status == "finished", job.message
    started = time.perf_counter()
    again = runner.run_job(db, sources.start_job(db, source, requested_by="benchmark", mode="full"))
    second = time.perf_counter() - started
    floor2_s, _, _ = floor(base, rows)
    log(f"\n{backend} target, {n:,} datasets, {pages} pages of {rows}:")
    log(f"  | | time | datasets/s | vs floor |")
    log(f"  |---|---|---|---|")
    log(f"  | floor: package_search paging only | {floor_s:.1f} s | {floor_n / floor_s:,.0f} | 1.0x |")
    log(f"  | harvest, first run ({job.created:,} created, {job.errors} errors) | {first:.1f} s | "
        f"{job.created / first:,.0f} | {first / floor_s:.1f}x |")
    log(f"  | harvest, re-run with nothing changed ({again.unchanged:,} unchanged) | {second:.1f} s | "
        f"{again.seen / second:,.0f} | {second / floor2_s:.1f}x |")
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=100, help="package_search page size")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite",
                        help="the harvesting (target) database; the source instance is SQLite")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench-harvest")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    log(f"Loading the source instance with {args.datasets:,} generated datasets")
    source_url = fresh_database("sqlite", args.workdir)
    load(Database(source_url), args.datasets)
    server, base = start_server(source_url, args.workdir)
    try:
        backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
        for backend in backends:
            if backend == "postgresql" and not postgres_available():
                log("PostgreSQL does not answer: skipped")
                continue
            run(backend, base, args.datasets, args.rows, args.workdir)
    finally:
        server.terminate()
        server.wait(10)
    shutil.rmtree(args.workdir / "files", ignore_errors=True)


if __name__ == "__main__":
    main()
