"""CKAN Action API benchmark: package_search as harvesters and people use it, beside the floor.

A catalogue of generated datasets (``catalogue_generator``, as the search benchmark builds it)
is served with ``smartlondon serve``. Two workloads, each timed beside its floor in the same run:

1. **Harvest paging**: every page of ``package_search?rows=1000&sort=id asc&start=...`` (full
   package dicts with resources, tags, groups, organization, extras). Floor: the raw driver
   reading the same page from the database (the page of datasets in id order, then their
   resources and their keywords and themes: the rows a package dict is made of).
2. **Searches**: 300 varied searches (words, phrases, prefixes, ``fq`` filters, sorts, later
   pages; half of them asking for five facets) with ``rows=20``. Floor: the database's own
   full-text query for the same search (the ranked page of ids, as in ``search.py``).

    .venv/bin/python benchmarks/ckan.py                          # 20,000 datasets, SQLite and PostgreSQL
    .venv/bin/python benchmarks/ckan.py --datasets 5000 --backend sqlite
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from catalogue_generator import queries  # noqa: E402
from search import (  # noqa: E402
    PG_ADMIN, floor_statement, load, log, percentile, postgres_available, start_server,
)

from smartlondon.core.db import Database  # noqa: E402

FACETS = '["organization", "groups", "tags", "res_format", "license_id"]'
FORMAT_OF_GROUP = {"Tables": "CSV", "Reports": "PDF", "Geospatial": "GeoJSON"}


def ckan_params(native: dict[str, str], n: int) -> dict[str, str]:
    """The CKAN package_search parameters for one of the search benchmark's searches."""
    params: dict[str, str] = {"rows": "20"}
    if native.get("q"):
        params["q"] = native["q"]
    fq = []
    if native.get("publisher"):
        fq.append(f"organization:{native['publisher']}")
    if native.get("theme"):
        fq.append(f"groups:{native['theme']}")
    if native.get("format"):
        fq.append(f"res_format:{FORMAT_OF_GROUP[native['format']]}")
    if fq:
        params["fq"] = " ".join(fq)
    if native.get("sort"):
        params["sort"] = {"updated": "metadata_modified desc", "title": "title_string asc"}[native["sort"]]
    if native.get("page"):
        params["start"] = str((int(native["page"]) - 1) * 20)
    if n % 2 == 0:
        params["facet.field"] = FACETS
    return params


def page_floor(backend: str, execute, rows: int, start: int) -> int:  # type: ignore[no-untyped-def]
    """Read one harvest page's rows with the raw driver; returns how many datasets."""
    mark = "?" if backend == "sqlite" else "%s"
    public = "private = 0" if backend == "sqlite" else "NOT private"
    page = execute(f"SELECT * FROM dataset WHERE state = 'active' AND {public} ORDER BY uuid "
                   f"LIMIT {rows} OFFSET {start}", [])
    ids = [row[0] for row in page]
    if ids:
        marks = ", ".join([mark] * len(ids))
        execute(f"SELECT * FROM resource WHERE dataset_id IN ({marks}) ORDER BY dataset_id, position", ids)
        execute(f"SELECT dataset_id, keyword FROM dataset_keyword WHERE dataset_id IN ({marks}) UNION ALL "
                f"SELECT dataset_id, theme FROM dataset_theme WHERE dataset_id IN ({marks})", ids + ids)
    return len(ids)


def fresh_database(backend: str, workdir: Path) -> str:
    """An empty database of this benchmark's own (not shared with the other benchmarks)."""
    if backend == "sqlite":
        path = workdir / "bench.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS smartlondon_bench_ckan")
        conn.execute("CREATE DATABASE smartlondon_bench_ckan")
    return PG_ADMIN.rsplit("/", 1)[0] + "/smartlondon_bench_ckan"


def run(backend: str, n: int, n_searches: int, workdir: Path) -> None:
    log(f"\n== {backend}: a catalogue of {n:,} datasets")
    url = fresh_database(backend, workdir)
    db = Database(url)
    load(db, n)
    proc, base = start_server(url, workdir)
    if backend == "sqlite":
        raw = sqlite3.connect(url.removeprefix("sqlite:///"))
    else:
        import psycopg

        raw = psycopg.connect(url)
    execute = lambda sql, args: raw.execute(sql, args).fetchall()  # noqa: E731
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            # 1. harvest paging -----------------------------------------------------------------
            api_pages: list[float] = []
            floor_pages: list[float] = []
            start = seen = 0
            client.get("/api/3/action/package_search", params={"rows": 10})  # warm up
            while True:
                t0 = time.perf_counter()
                floor_count = page_floor(backend, execute, 1000, start)
                floor_pages.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                body = client.get("/api/3/action/package_search",
                                  params={"rows": 1000, "start": start, "sort": "id asc"}).json()["result"]
                api_pages.append((time.perf_counter() - t0) * 1000)
                assert len(body["results"]) == floor_count
                seen += len(body["results"])
                start += 1000
                if start >= body["count"]:
                    break
            total_api, total_floor = sum(api_pages) / 1000, sum(floor_pages) / 1000
            log(f"  harvest paging: {len(api_pages)} pages of 1,000, {seen:,} full package dicts")
            log(f"  {'':28}{'total s':>9}{'datasets/s':>12}{'page p50 ms':>13}{'page p95 ms':>13}")
            log(f"  {'package_search (ours)':28}{total_api:>9.2f}{seen / total_api:>12,.0f}"
                f"{statistics.median(api_pages):>13.1f}{percentile(api_pages, 95):>13.1f}")
            log(f"  {'raw rows of the page (floor)':28}{total_floor:>9.2f}{seen / total_floor:>12,.0f}"
                f"{statistics.median(floor_pages):>13.1f}{percentile(floor_pages, 95):>13.1f}")
            log(f"  ratio: {total_api / total_floor:.1f}x the floor")

            # 2. searches ---------------------------------------------------------------------
            searches = queries(n_searches)
            for native in searches[:30]:
                client.get("/api/3/action/package_search", params=ckan_params(native, 1))
                execute(*floor_statement(db, native))
            api_times: list[float] = []
            floor_times: list[float] = []
            faceted: list[float] = []
            for i, native in enumerate(searches):
                sql, args = floor_statement(db, native)
                t0 = time.perf_counter()
                execute(sql, args)
                floor_times.append((time.perf_counter() - t0) * 1000)
                params = ckan_params(native, i)
                t0 = time.perf_counter()
                response = client.get("/api/3/action/package_search", params=params)
                elapsed = (time.perf_counter() - t0) * 1000
                response.raise_for_status()
                api_times.append(elapsed)
                if "facet.field" in params:
                    faceted.append(elapsed)
            log(f"  {n_searches} searches (rows=20; half with 5 facets)")
            log(f"  {'':28}{'p50 ms':>9}{'p95 ms':>9}")
            log(f"  {'package_search (ours)':28}{statistics.median(api_times):>9.2f}{percentile(api_times, 95):>9.2f}")
            log(f"  {'  of which with facets':28}{statistics.median(faceted):>9.2f}{percentile(faceted, 95):>9.2f}")
            log(f"  {'raw full-text (floor)':28}{statistics.median(floor_times):>9.2f}"
                f"{percentile(floor_times, 95):>9.2f}")
    finally:
        raw.close()
        proc.terminate()
        proc.wait(10)
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=20_000)
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    workdir = ROOT / "var" / "bench-ckan"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        if backend == "postgresql" and not postgres_available():
            log("\n== postgresql: not reachable, skipped")
            continue
        run(backend, args.datasets, args.searches, workdir)


if __name__ == "__main__":
    main()
