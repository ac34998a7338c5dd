"""Charter scorecard benchmark: what scoring costs, each figure beside its floor, in one run.

1. Writes: publishing datasets through the catalogue service (a dataset, then a link resource:
   two ``dataset.changed`` events, two commits), with the scorecard recomputed in each
   transaction; the floor is the same writes with the scorecard's subscription removed.
2. ``catalogue score``: rescoring every one of N generated datasets (the search benchmark's
   generator); the floor is loading the same datasets, batch by batch, with the same ORM
   statements and no scoring.
3. League tables: ``/charter.json`` and the biggest publisher's page through the app (in process);
   the floor is the raw grouped SQL the tables are built from.
4. Link checker: links spread over local web servers, through ``linkcheck.run`` (checks, stored
   results, rescoring); the floor is plain ``httpx`` HEAD requests to the same URLs, with the same
   concurrency.

    .venv/bin/python benchmarks/charter.py                         # SQLite, 20,000 datasets
    .venv/bin/python benchmarks/charter.py --backend postgresql --datasets 100000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from search import PG_ADMIN, load  # noqa: E402

from smartlondon.catalogue import service  # noqa: E402
from smartlondon.catalogue.charter import linkcheck, scores  # noqa: E402
from smartlondon.catalogue.models import Dataset, Resource  # noqa: E402
from smartlondon.core import events, migrate, reference  # noqa: E402
from smartlondon.core.accounts import COMMAND_LINE  # noqa: E402
from smartlondon.core.db import Database  # noqa: E402
from smartlondon.core.storage import LocalStorage  # noqa: E402
from smartlondon.settings import Settings  # noqa: E402


def log(message: str) -> None:
    print(message, flush=True)


def line(what: str, ours: float, floor: float, unit: str, rate: bool = False) -> None:
    """One figure beside its floor; the ratio is how many times the floor's cost ours is (1.0 = the floor)."""
    cost = floor / ours if rate else ours / floor
    log(f"  {what:<44} ours {ours:9.2f} {unit:<12} floor {floor:9.2f} {unit:<12} cost {cost:5.2f}x the floor")


# --- 1. writes ------------------------------------------------------------------------------------

def publish_many(db: Database, n: int, tag: str) -> float:
    """Seconds per dataset for n datasets, each created and given a link, one commit each."""
    started = time.perf_counter()
    for i in range(n):
        with db.session() as session:
            ds = service.create_dataset(session, COMMAND_LINE, {
                "title": f"Air quality {tag} {i}", "publisher": "camden", "frequency": "monthly",
                "description": "Nitrogen dioxide measured by the London Air Quality Network, hour by hour.",
                "keywords": ["air quality"], "themes": ["environment"], "boroughs": ["E09000007"]})
        with db.session() as session:
            service.add_resource(session, COMMAND_LINE, session.get(Dataset, ds.id),
                                 {"title": "Readings", "url": f"https://example.org/{tag}/{i}.csv"})
    return (time.perf_counter() - started) / n


def bench_writes(url_of, n: int, rounds: int = 6) -> None:  # type: ignore[no-untyped-def]
    log(f"1. publishing {n:,} datasets with a link each (2 commits per dataset), in {rounds} alternating rounds")
    dbs = {}
    for label in ("ours", "floor"):
        dbs[label] = db = Database(url_of(f"writes_{label}"))
        migrate.upgrade(db)
        with db.session() as session:
            reference.seed(session)
    timings: dict[str, list[float]] = {"ours": [], "floor": []}
    per_round = max(1, n // rounds)
    for number in range(rounds + 1):  # round 0 warms up both
        for label in ("ours", "floor") if number % 2 else ("floor", "ours"):
            if label == "floor":
                events.unsubscribe("dataset.changed", scores._rescore_changed)
            try:
                seconds = publish_many(dbs[label], 10 if number == 0 else per_round, f"{label}{number}")
            finally:
                if label == "floor":
                    events.subscribe("dataset.changed")(scores._rescore_changed)
            if number:
                timings[label].append(seconds)
    for label, db in dbs.items():
        with db.session() as session:
            scored = session.scalar(select(func.count()).select_from(scores.DatasetScore))
        log(f"  {label}: {scored:,} scorecards stored")
        db.dispose()
    line("ms per published dataset (median of rounds)", statistics.median(timings["ours"]) * 1000,
         statistics.median(timings["floor"]) * 1000, "ms")


# --- 2. rescoring everything ----------------------------------------------------------------------------

def bench_rescore(db: Database, n: int) -> None:
    log(f"2. rescoring every one of {n:,} datasets")
    with db.session() as session:
        ids = list(session.scalars(select(Dataset.id).order_by(Dataset.id)))
    started = time.perf_counter()
    for start in range(0, len(ids), 500):
        with db.session() as session:
            datasets = list(session.scalars(select(Dataset).where(Dataset.id.in_(ids[start:start + 500]))))
            for ds in datasets:
                _ = (ds.licence.is_open, len(ds.keywords), len(ds.themes), len(ds.areas), len(ds.resources))
    floor = time.perf_counter() - started
    started = time.perf_counter()
    count = scores.rescore_all(db)
    ours = time.perf_counter() - started
    log(f"  scored {count:,} datasets in {ours:.1f} s; loading them alone took {floor:.1f} s")
    line("datasets per second", count / ours, count / floor, "datasets/s", rate=True)


# --- 3. league tables ----------------------------------------------------------------------------------

def bench_league(db: Database, settings: Settings) -> None:
    from fastapi.testclient import TestClient

    from smartlondon.app import create_app

    log("3. league tables (p50 of 20)")
    with db.session() as session:
        biggest = session.execute(text(
            "SELECT o.slug FROM dataset d JOIN organisation o ON o.id = d.organisation_id "
            "GROUP BY o.slug ORDER BY count(*) DESC LIMIT 1")).scalar_one()
    checks = ("licence", "openness", "links", "timeliness", "metadata", "schema", "dcat", "gss")
    fails = ", ".join(f"sum(CASE WHEN check_{c} = 'fail' THEN 1 ELSE 0 END)" for c in checks)
    every = ", ".join(f"sum(CASE WHEN check_{c} = '{s}' THEN 1 ELSE 0 END)" for c in checks
                      for s in ("pass", "fail", "not-applicable", "not-checked"))
    floor_sql = [  # the same grouped scans the pages make, through the raw connection
        f"SELECT organisation_id, count(*), avg(score), avg(stars), {fails} FROM dataset_score "
        "WHERE public = :t GROUP BY organisation_id",
        f"SELECT {every} FROM dataset_score WHERE public = :t",
        "SELECT stars, count(*) FROM dataset_score WHERE public = :t GROUP BY stars",
    ]

    def timed(fn) -> float:  # type: ignore[no-untyped-def]
        runs = []
        for _ in range(20):
            started = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - started)
        return statistics.median(runs) * 1000

    def floor() -> None:
        with db.engine.connect() as conn:
            for sql in floor_sql:
                conn.execute(text(sql), {"t": True}).all()

    from smartlondon.catalogue.charter import league as league_tables

    app = create_app(settings, db)
    with TestClient(app) as client:
        def league() -> None:
            assert client.get("/charter.json").status_code == 200

        def league_cold() -> None:  # the first view after a change: the tables are computed
            league_tables.forget(db.engine)
            league()

        def publisher() -> None:
            assert client.get(f"/charter/publisher/{biggest}.json").status_code == 200

        floor_ms = timed(floor)
        line("/charter.json, first view after a change", timed(league_cold), floor_ms, "ms")
        line("/charter.json, kept (30 s)", timed(league), floor_ms, "ms")
        line(f"/charter/publisher/{biggest}.json", timed(publisher), floor_ms, "ms")


# --- 4. link checker -------------------------------------------------------------------------------------

class _Quick(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD


def bench_links(db: Database, settings: Settings, n: int, hosts: int = 20, concurrency: int = 10) -> None:
    log(f"4. link checker: {n:,} links over {hosts} local hosts, {concurrency} at once")
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Quick) for _ in range(hosts)]
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    urls = [f"http://127.0.0.1:{servers[i % hosts].server_address[1]}/file-{i}.csv" for i in range(n)]
    with db.session() as session:
        rows = list(session.scalars(select(Resource).order_by(Resource.id).limit(n)))
        for res, url in zip(rows, urls):
            res.url = url
    urls = urls[:len(rows)]

    async def floor() -> None:
        limit = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            async def head(url: str) -> None:
                async with limit:
                    (await client.head(url)).raise_for_status()
            await asyncio.gather(*(head(u) for u in urls))

    started = time.perf_counter()
    asyncio.run(floor())
    floor_s = time.perf_counter() - started
    options = linkcheck.LinkCheckOptions(timeout=10, concurrency=concurrency, host_delay=0, allow_private=True)
    with db.session() as session:
        items = [i for i in linkcheck.due(session, options, everything=True) if i.url in set(urls)]
    started = time.perf_counter()
    report = linkcheck.run(db, LocalStorage(settings.files_dir), options, items=items)
    ours = time.perf_counter() - started
    log(f"  {linkcheck.summary(report)}")
    line("links per second (checked, stored, rescored)", len(items) / ours, len(urls) / floor_s, "links/s", rate=True)
    for server in servers:
        server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=20_000)
    parser.add_argument("--writes", type=int, default=500)
    parser.add_argument("--links", type=int, default=2000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="charter-bench-"))

    def url_of(name: str) -> str:
        """A new, empty database of its own (never the search benchmark's, which may be running too)."""
        if args.backend == "sqlite":
            return f"sqlite:///{workdir / name}.db"
        import psycopg

        database = f"smartlondon_charter_bench_{name}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database}")
            conn.execute(f"CREATE DATABASE {database}")
        return PG_ADMIN.rsplit("/", 1)[0] + "/" + database

    log(f"charter benchmark on {args.backend} in {workdir}")
    bench_writes(url_of, args.writes)
    db = Database(url_of("catalogue"))
    log(f"loading {args.datasets:,} generated datasets")
    load(db, args.datasets)
    settings = Settings(data_dir=workdir / "var", database_url=db.url, secret_key="bench").resolved()
    bench_rescore(db, args.datasets)
    bench_league(db, settings)
    bench_links(db, settings, args.links)
    db.dispose()


if __name__ == "__main__":
    main()
