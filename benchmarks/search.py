"""Search benchmark: 100,000 datasets, 1,000 varied searches through the HTTP API, beside the floor.

The floor is the database's own full-text query for the same search (the page of ids, ranked),
run through the raw driver in the same process and run, so a noisy machine moves both figures.
Targets (issue 2): API p95 <= 25 ms on SQLite at 100k datasets, and <= 2x the raw query.

    .venv/bin/python benchmarks/search.py                 # SQLite, and PostgreSQL if it answers
    .venv/bin/python benchmarks/search.py --backend sqlite --datasets 20000
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import insert, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from catalogue_generator import generate, queries  # noqa: E402

from smartlondon.catalogue import index  # noqa: E402
from smartlondon.catalogue.models import Dataset, DatasetArea, DatasetKeyword, DatasetTheme, Resource  # noqa: E402
from smartlondon.catalogue.search import BM25, PG_WEIGHTS, fts5_expression, parse_query  # noqa: E402
from smartlondon.core import migrate, reference  # noqa: E402
from smartlondon.core.db import Database  # noqa: E402
from smartlondon.core.models import Organisation  # noqa: E402
from smartlondon.core.reference import format_group  # noqa: E402

PG_ADMIN = os.environ.get("SMARTLONDON_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def log(message: str) -> None:
    print(message, flush=True)


def fresh_database(backend: str, workdir: Path) -> str:
    """Create an empty database for the run and return its URL."""
    if backend == "sqlite":
        path = workdir / "bench.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS smartlondon_bench")
        conn.execute("CREATE DATABASE smartlondon_bench")
    return PG_ADMIN.rsplit("/", 1)[0] + "/smartlondon_bench"


def load(db: Database, n: int) -> None:
    """Bulk-load ``n`` generated datasets, then build the search index from them."""
    started = time.perf_counter()
    migrate.upgrade(db)
    with db.session() as session:
        reference.seed(session)
        orgs = dict(session.execute(select(Organisation.slug, Organisation.id)).all())
    batch: list[dict] = []
    next_resource = 1

    def flush(rows: list[dict]) -> None:
        nonlocal next_resource
        with db.session() as session:
            session.execute(insert(Dataset), [{
                "id": r["id"], "uuid": r["uuid"], "slug": r["slug"], "title": r["title"],
                "title_sort": r["title"].lower(), "description": r["description"],
                "organisation_id": orgs[r["org_slug"]], "licence_id": r["licence_id"], "frequency": r["frequency"],
                "geography": r["geography"], "private": False, "state": "active", "featured": False,
                "created": r["modified"], "modified": r["modified"], "contact_name": "", "contact_email": "",
            } for r in rows])
            session.execute(insert(DatasetKeyword), [
                {"dataset_id": r["id"], "keyword": k, "position": i} for r in rows for i, k in enumerate(r["keywords"])])
            session.execute(insert(DatasetTheme), [{"dataset_id": r["id"], "theme": t} for r in rows for t in r["themes"]])
            areas = [{"dataset_id": r["id"], "gss_code": g} for r in rows for g in r["areas"]]
            if areas:
                session.execute(insert(DatasetArea), areas)
            resources = []
            for r in rows:
                for pos, res in enumerate(r["resources"]):
                    resources.append({"id": next_resource, "uuid": f"{r['uuid'][:-6]}{pos:06d}", "dataset_id": r["id"],
                                      "position": pos, "title": res["title"], "description": "", "kind": "link",
                                      "url": f"https://data.london.gov.uk/{r['slug']}/{pos}", "format": res["format"],
                                      "media_type": "text/csv", "created": r["modified"], "modified": r["modified"]})
                    next_resource += 1
            session.execute(insert(Resource), resources)

    for i, row in enumerate(generate(n), start=1):
        row["id"] = i
        batch.append(row)
        if len(batch) == 5000:
            flush(batch)
            batch = []
            log(f"  loaded {i:,} datasets")
    if batch:
        flush(batch)
    with db.session() as session:
        indexed = index.rebuild(session, batch=5000)
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("SELECT setval('dataset_id_seq', (SELECT max(id) FROM dataset))"))
            conn.execute(text("SELECT setval('resource_id_seq', (SELECT max(id) FROM resource))"))
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("INSERT INTO dataset_fts(dataset_fts) VALUES ('optimize')"))
            conn.execute(text("ANALYZE"))
    log(f"  indexed {indexed:,} datasets in {time.perf_counter() - started:.0f} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(url: str, workdir: Path, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """``smartlondon serve`` on a free port, as a subprocess; (process, base URL) once /healthz answers."""
    port = free_port()
    env = {**os.environ, "SMARTLONDON_DATABASE_URL": url, "SMARTLONDON_DATA_DIR": str(workdir), **(extra_env or {})}
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "smartlondon"), "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def pg_tsquery_sql(clauses: list) -> tuple[str, list]:
    """The same tsquery as the platform builds, as SQL text with parameters for the raw driver."""
    parts, args = [], []
    for clause in clauses:
        alternatives = []
        for term in clause:
            if term.phrase:
                alternatives.append("phraseto_tsquery('english', %s)")
                args.append(term.text)
            elif term.prefix:
                alternatives.append("to_tsquery('simple', %s)")
                args.append("".join(ch for ch in term.text if ch.isalnum()) + ":*")
            else:
                alternatives.append("plainto_tsquery('english', %s)")
                args.append(term.text)
        parts.append("(" + " || ".join(alternatives) + ")")
    return "(" + " && ".join(parts) + ")", args


def floor_statement(db: Database, params: dict[str, str]) -> tuple[str, list]:
    """The raw full-text (or filter) query for a search: the ranked page of ids, nothing more."""
    page = int(params.get("page", 1))
    offset = (page - 1) * 20
    facet = next(((k, v) for k, v in params.items() if k in ("publisher", "theme", "format")), None)
    parsed = parse_query(params.get("q", ""))
    if db.dialect == "sqlite":
        args = [facet[0], facet[1]] if facet else []
        filt = " AND {col} IN (SELECT dataset_id FROM dataset_facet WHERE facet = ? AND value = ?)" if facet else ""
        if parsed.clauses:
            # MATERIALIZED: a rowid IN (...) on the FTS5 table itself would rerun the match per row.
            sql = (f"WITH m AS MATERIALIZED (SELECT rowid AS id, {BM25} AS score "
                   "FROM dataset_fts WHERE dataset_fts MATCH ?) "
                   f"SELECT id FROM m WHERE 1 {filt.format(col='id')} ORDER BY score LIMIT 20 OFFSET {offset}")
            return sql, [fts5_expression(parsed.clauses), *args]
        sql = (f"SELECT id FROM dataset WHERE state = 'active' AND private = 0 {filt.format(col='id')} "
               f"ORDER BY modified DESC LIMIT 20 OFFSET {offset}")
        return sql, args
    conditions, where_args, order_args = [], [], []
    order = "modified DESC"
    if parsed.clauses:
        tsq, tsq_args = pg_tsquery_sql(parsed.clauses)
        conditions.append(f"search_vector @@ {tsq}")
        order = f"ts_rank({PG_WEIGHTS}, search_vector, {tsq}) DESC"
        where_args, order_args = list(tsq_args), list(tsq_args)
    if facet:
        conditions.append("id IN (SELECT dataset_id FROM dataset_facet WHERE facet = %s AND value = %s)")
        where_args += [facet[0], facet[1]]
    args = where_args + order_args
    where = " AND ".join(conditions) or "TRUE"
    return f"SELECT id FROM dataset WHERE {where} ORDER BY {order} LIMIT 20 OFFSET {offset}", args


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def existing_database(backend: str, workdir: Path, n: int) -> str | None:
    """The URL of the previous run's database if it holds ``n`` datasets (for --reuse)."""
    url = (f"sqlite:///{workdir / 'bench.db'}" if backend == "sqlite"
           else PG_ADMIN.rsplit("/", 1)[0] + "/smartlondon_bench")
    try:
        db = Database(url)
        with db.engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM dataset")).scalar()
        db.dispose()
    except Exception:
        return None
    return url if count == n else None


def run(backend: str, n: int, n_queries: int, workdir: Path, reuse: bool = False) -> dict[str, float]:
    url = existing_database(backend, workdir, n) if reuse else None
    if url:
        log(f"\n== {backend}: reusing the catalogue of {n:,} datasets from the last run")
        db = Database(url)
    else:
        log(f"\n== {backend}: building a catalogue of {n:,} datasets")
        url = fresh_database(backend, workdir)
        db = Database(url)
        load(db, n)
    searches = queries(n_queries)
    proc, base = start_server(url, workdir)
    try:
        if backend == "sqlite":
            raw = sqlite3.connect(url.removeprefix("sqlite:///"))
            execute = lambda sql, args: raw.execute(sql, args).fetchall()  # noqa: E731
        else:
            import psycopg

            raw = psycopg.connect(url)
            execute = lambda sql, args: raw.execute(sql, args).fetchall()  # noqa: E731
        api_times: list[float] = []
        raw_times: list[float] = []
        totals = 0
        matches: list[int] = []
        with httpx.Client(base_url=base, timeout=30) as client:
            for params in searches[:50]:  # warm both paths
                client.get("/api/datasets", params=params)
                execute(*floor_statement(db, params))
            for params in searches:
                sql, args = floor_statement(db, params)
                t0 = time.perf_counter()
                execute(sql, args)
                raw_times.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                response = client.get("/api/datasets", params=params)
                api_times.append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()
                matches.append(response.json()["count"])
                totals += matches[-1]
        raw.close()
    finally:
        proc.terminate()
        proc.wait(10)
        db.dispose()
    result = {"api_p50": statistics.median(api_times), "api_p95": percentile(api_times, 95),
              "raw_p50": statistics.median(raw_times), "raw_p95": percentile(raw_times, 95)}
    result["ratio_p95"] = result["api_p95"] / result["raw_p95"]
    log(f"  {n_queries} searches, {totals / n_queries:,.0f} matching datasets on average")
    log(f"  {'':22}{'p50 ms':>10}{'p95 ms':>10}")
    log(f"  {'HTTP API (ours)':22}{result['api_p50']:>10.2f}{result['api_p95']:>10.2f}")
    log(f"  {'raw full-text (floor)':22}{result['raw_p50']:>10.2f}{result['raw_p95']:>10.2f}")
    for low, high in ((0, 1000), (1000, 10000), (10000, 10**9)):
        picked = [i for i, m in enumerate(matches) if low <= m < high]
        if picked:
            api = [api_times[i] for i in picked]
            floor = [raw_times[i] for i in picked]
            label = f"{low:,} to {high:,} matches" if high < 10**9 else f"{low:,}+ matches"
            log(f"  {label:22} {len(picked):4} searches: API p50 {statistics.median(api):6.2f} p95 "
                f"{percentile(api, 95):6.2f} | floor p50 {statistics.median(floor):6.2f} p95 {percentile(floor, 95):6.2f}")
    log(f"  ratio p95 API / floor: {result['ratio_p95']:.2f}x (target <= 2x)"
        + (f"; API p95 target <= 25 ms: {'met' if result['api_p95'] <= 25 else 'NOT met'}"
           if backend == "sqlite" else ""))
    return result


def postgres_available() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
        return True
    except Exception:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--reuse", action="store_true", help="reuse the last run's catalogues if the size matches")
    args = parser.parse_args()
    workdir = ROOT / "var" / "bench"
    if not args.reuse:
        shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    if "postgresql" in backends and not postgres_available():
        log("PostgreSQL is not reachable at " + PG_ADMIN + "; skipping it.")
        backends.remove("postgresql")
    for backend in backends:
        run(backend, args.datasets, args.queries, workdir, args.reuse)


if __name__ == "__main__":
    main()
