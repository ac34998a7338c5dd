"""Tabular store benchmark: load a 1,000,000-row CSV and time datastore_search on it, beside the floors.

The file is LAQN-shaped hourly air quality readings built from the real Q1 2023 file in
``../shared/data/air-quality`` (its sites, species, timestamps and values; the real 666,072 rows,
then the same sites and species shifted on by 13 weeks with their values jittered, until there are
a million), with each site's borough GSS code from the real boundary file.

* Load: our loader end to end (whole-file type inference, validation of every cell, the
  Frictionless report, staging, the atomic swap into the store, the row in the main database),
  beside the floor, DuckDB's own ``read_csv`` of the same file into a table; the floor is shown
  both with whole-file type detection (``sample_size=-1``, the same promise ours makes) and with
  DuckDB's default sample.
* Search: a few hundred varied ``datastore_search`` calls (filters, full text, sorts, deep pages,
  fields, distinct, CSV records), timed through the CKAN API in process (FastAPI's test client) and
  as a service call, beside the floor, the same SQL on an open DuckDB connection.

    .venv/bin/python benchmarks/tabular.py                   # 1,000,000 rows, 300 searches
    .venv/bin/python benchmarks/tabular.py --rows 200000 --searches 100
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "src"))

from smartlondon.catalogue import service  # noqa: E402
from smartlondon.catalogue.tabular import loader, query  # noqa: E402
from smartlondon.core import migrate, reference  # noqa: E402
from smartlondon.core.accounts import ANONYMOUS, COMMAND_LINE  # noqa: E402
from smartlondon.core.db import Database  # noqa: E402
from smartlondon.core.storage import LocalStorage  # noqa: E402
from smartlondon.settings import Settings  # noqa: E402


def log(message: str) -> None:
    print(message, flush=True)


def borough_codes() -> dict[str, str]:
    """LAQN site code -> GSS code of its borough (site list joined to the boundary file by name)."""
    import csv

    import shapefile

    names = {rec["NAME"]: rec["GSS_CODE"]
             for rec in shapefile.Reader(str(DATA / "boundaries" / "London_Borough_Excluding_MHW.shp")).records()}
    codes: dict[str, str] = {}
    with open(DATA / "air-quality" / "laqn-sites.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            authority = row["@LocalAuthorityName"]
            match = names.get(authority) or next((code for name, code in names.items() if name.startswith(authority)),
                                                 None)
            if match:
                codes[row["@SiteCode"]] = match
    return codes


def generate(path: Path, rows: int) -> None:
    """Write the LAQN-shaped CSV of ``rows`` rows."""
    conn = duckdb.connect()
    conn.execute("CREATE TABLE site_gss (site_code VARCHAR, borough_gss VARCHAR)")
    conn.executemany("INSERT INTO site_gss VALUES (?, ?)", list(borough_codes().items()))
    source = DATA / "air-quality" / "laqn-hourly-2023Q1.csv.gz"
    conn.execute(f"""CREATE TABLE real AS SELECT site_code, species_code, CAST(measurement_date_gmt AS TIMESTAMP) AS ts,
                     TRY_CAST(value AS DOUBLE) AS value FROM read_csv('{source}', all_varchar = true)""")
    conn.execute(f"""
        COPY (
          WITH copies AS (
            SELECT r.*, g.generate_series AS k FROM real r, generate_series(0, 3) g
          )
          SELECT site_code, species_code,
                 strftime(ts + INTERVAL (13 * k) WEEK, '%Y-%m-%d %H:%M:%S') AS measurement_date_gmt,
                 CASE WHEN value IS NULL THEN NULL WHEN k = 0 THEN value
                      ELSE round(greatest(0, value * (0.8 + 0.4 * hash(site_code, ts, k) % 1000 / 1000.0)), 1) END
                   AS value,
                 coalesce(s.borough_gss, 'E09000001') AS borough_gss
          FROM copies LEFT JOIN site_gss s USING (site_code)
          ORDER BY k, site_code, species_code, ts
          LIMIT {rows}
        ) TO '{path}' (FORMAT csv, HEADER true)""")
    conn.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def floor_load(path: Path, sample_all: bool) -> tuple[float, int]:
    conn = duckdb.connect()
    conn.execute("SET enable_progress_bar = false")
    options = ", sample_size = -1" if sample_all else ""
    started = time.perf_counter()
    conn.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{path}'{options})")
    elapsed = time.perf_counter() - started
    count = conn.execute("SELECT count(*) FROM t").fetchone()[0]  # type: ignore[index]
    conn.close()
    return elapsed, count


def searches(n: int, rid: str, seed: int = 7) -> list[dict[str, Any]]:
    """Varied datastore_search parameters over the readings table."""
    rng = random.Random(seed)
    sites = ["MY1", "KC1", "BL0", "CD1", "HK6", "GR4", "TH4", "IS6", "BG1", "CT3", "WM6", "EI1"]
    species = ["NO2", "PM10", "PM25", "O3", "SO2", "CO"]
    shapes = [
        lambda: {"filters": {"site_code": rng.choice(sites)}},
        lambda: {"filters": {"site_code": rng.choice(sites), "species_code": rng.choice(species)}},
        lambda: {"filters": {"species_code": [rng.choice(species), rng.choice(species)]}, "sort": "value desc"},
        lambda: {"q": rng.choice(sites).lower()},
        lambda: {"q": {"species_code": rng.choice(["pm", "no", "o3"])}, "limit": 50},
        lambda: {"sort": "measurement_date_gmt desc, site_code", "limit": 20},
        lambda: {"offset": rng.choice([0, 100, 10_000, 250_000, 900_000])},
        lambda: {"filters": {"borough_gss": rng.choice(["E09000033", "E09000007", "E09000020", "E09000019"])},
                 "fields": "site_code,measurement_date_gmt,value", "limit": 1000},
        lambda: {"filters": {"measurement_date_gmt": f"2023-0{rng.randint(1, 3)}-{rng.randint(10, 28)} 12:00:00"}},
        lambda: {"fields": ["species_code"], "distinct": True, "sort": "species_code"},
        lambda: {"filters": {"site_code": rng.choice(sites)}, "records_format": "csv", "limit": 500},
        lambda: {"include_total": False, "offset": rng.randint(0, 500_000)},
    ]
    return [{"resource_id": rid, **rng.choice(shapes)()} for _ in range(n)]


def floor_sql(params: dict[str, Any], known: dict[str, str]) -> tuple[list[str], list[Any]]:
    """The SQL our service runs for a search (the floor runs it on an open connection)."""
    from smartlondon.catalogue.tabular.schema import Params
    from smartlondon.catalogue.tabular.store import quote_ident

    rid = params["resource_id"]
    p = Params()
    where = query.where_clauses(params.get("filters") or {}, params.get("q"), known, p)
    fields = params.get("fields")
    selected = (fields.split(",") if isinstance(fields, str) else fields) or list(known)
    distinct = bool(params.get("distinct"))
    sort = query.parse_sort(params.get("sort"), known) or ([] if distinct else [("_id", "asc")])
    if sort and not distinct and "_id" not in {n for n, _ in sort}:
        sort.append(("_id", "asc"))
    source = quote_ident(rid) + (" WHERE " + " AND ".join(where) if where else "")
    order = " ORDER BY " + ", ".join(f"{quote_ident(n)} {d}" for n, d in sort) if sort else ""
    cols = ", ".join(quote_ident(c) for c in selected)
    statements = [f"SELECT {'DISTINCT ' if distinct else ''}{cols} FROM {source}{order} "
                  f"LIMIT {int(params.get('limit', 100))} OFFSET {int(params.get('offset', 0))}"]
    if params.get("include_total", True):
        statements.append(f"SELECT count(*) FROM (SELECT DISTINCT {cols} FROM {source})" if distinct
                          else f"SELECT count(*) FROM {source}")
    return statements, p.values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="smartlondon-tabular-bench-"))
    try:
        csv_path = work / "laqn-readings.csv"
        log(f"Generating {args.rows:,} LAQN-shaped rows ...")
        generate(csv_path, args.rows)
        log(f"  {csv_path.stat().st_size / 1024 ** 2:.0f} MB")

        settings = Settings(data_dir=work / "var", secret_key="bench", datastore_workers=0,
                            datastore_inline_bytes=0).resolved()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.database_url)
        migrate.upgrade(db)
        with db.session() as session:
            reference.seed(session)
        stored = LocalStorage(settings.files_dir).store_file(csv_path, settings.max_upload_bytes)
        with db.session() as session:
            ds = service.create_dataset(session, COMMAND_LINE, {"title": "LAQN hourly readings", "publisher": "camden"})
            res = service.add_resource(session, COMMAND_LINE, ds, {"title": "Readings"}, stored=stored,
                                       filename="laqn-readings.csv")
            resource_id, rid = res.id, res.uuid

        log("Loading: ours and the floors in turn, three rounds, best of each ...")
        ours, full_times, sampled_times = [], [], []
        for _ in range(3):  # interleaved, so a noisy machine moves all three alike
            started = time.perf_counter()
            row = loader.load_resource(db.engine, settings, resource_id)
            ours.append(time.perf_counter() - started)
            assert row.status == "loaded" and row.row_count == args.rows, (row.status, row.error, row.row_count)
            full_times.append(floor_load(csv_path, True)[0])
            sampled_times.append(floor_load(csv_path, False)[0])
        load, full, sampled = min(ours), min(full_times), min(sampled_times)
        log(f"  schema: {[(f['name'], f['type']) for f in row.table_schema['fields']]}; GSS columns {row.gss_columns}")
        log(f"  ours {load:.2f} s ({args.rows / load:,.0f} rows/s); floor read_csv whole-file types {full:.2f} s "
            f"({load / full:.2f}x), default sample {sampled:.2f} s ({load / sampled:.2f}x)")

        from fastapi.testclient import TestClient

        from smartlondon.app import create_app

        app = create_app(replace(settings, datastore_rows_max=32000), db)
        plans = searches(args.searches, rid)
        api_times: list[float] = []
        service_times: list[float] = []
        floor_times: list[float] = []
        conn = duckdb.connect(str(settings.analytics_store), read_only=True)
        known = {r[0]: r[1] for r in conn.execute(f'DESCRIBE SELECT * FROM "{rid}"').fetchall()}
        conn.close()

        def floor(params: dict[str, Any]) -> float:
            statements, values = floor_sql(params, known)
            with loader.store_for(settings).reading() as raw:  # the same open connection our searches use
                assert raw is not None
                started = time.perf_counter()
                raw.execute(statements[0], values).fetchall()
                if len(statements) > 1:
                    raw.execute(statements[1], values).fetchall()
                return time.perf_counter() - started

        with TestClient(app) as client:
            for params in plans[:10]:  # warm up
                client.post("/api/3/action/datastore_search", json=params)
            for params in plans:  # the three ways, one after the other, so a noisy machine moves them alike
                started = time.perf_counter()
                got = client.post("/api/3/action/datastore_search", json=params)
                api_times.append(time.perf_counter() - started)
                assert got.status_code == 200, got.text
                with db.session() as session:
                    started = time.perf_counter()
                    query.datastore_search(session, ANONYMOUS, settings, dict(params))
                    service_times.append(time.perf_counter() - started)
                floor_times.append(floor(params))

        def line(name: str, times: list[float]) -> str:
            return (f"  {name:28} p50 {statistics.median(times) * 1000:7.1f} ms   "
                    f"p95 {percentile(times, 95) * 1000:7.1f} ms   max {max(times) * 1000:7.1f} ms")

        log(f"datastore_search over {args.rows:,} rows, {len(plans)} varied searches:")
        log(line("CKAN API (in process)", api_times))
        log(line("service call", service_times))
        log(line("floor: DuckDB, open conn", floor_times))
        log(f"  p95 ratio API / floor: {percentile(api_times, 95) / percentile(floor_times, 95):.2f}x")
        loader.store_for(settings).release_readers()
        db.dispose()
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
