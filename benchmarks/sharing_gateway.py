"""Gateway overhead: an aggregate through the whole LODA gateway vs the same aggregate run bare in DuckDB.

    .venv/bin/python benchmarks/sharing_gateway.py [--rows 10000000] [--repeat 7] [--optouts 1000]

Builds a throwaway platform (SQLite metadata, a restricted DuckDB store) with ``--rows`` synthetic person
rows (one per person: borough, deprivation decile, age, a smoke-alarm flag), an approved agreement, an
analyst, and ``--optouts`` opted-out people. Then, several times each:

* **gateway**: ``gateway.submit`` with count and mean age by borough and decile where age >= 65 — the
  agreement check, the opt-out filter, the aggregate, disclosure control (nhs profile: suppression, the
  dominance rules on the mean, secondary suppression, the release ledger), the subject set (from the subject
  index) and the hash-chained log entry, committed;
* **bare**: the same count and mean by the same two dimensions with the same filter, straight in DuckDB.

Prints the median (p50) and p95 of each, the ratio of the p50s and the load average. Target: gateway <= 1.5 x
bare. The first gateway call (a warm-up, not timed) builds the subject index of the filtered column.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from smartlondon.core import accounts, migrate, reference  # noqa: E402
from smartlondon.core.db import Database  # noqa: E402
from smartlondon.settings import Settings  # noqa: E402
from smartlondon.sharing import agreements, gateway  # noqa: E402
from smartlondon.sharing.store import RestrictedStore  # noqa: E402

BOROUGHS = ["Barking and Dagenham", "Barnet", "Bexley", "Brent", "Bromley", "Camden", "City of London", "Croydon",
            "Ealing", "Enfield", "Greenwich", "Hackney", "Hammersmith and Fulham", "Haringey", "Harrow", "Havering",
            "Hillingdon", "Hounslow", "Islington", "Kensington and Chelsea", "Kingston upon Thames", "Lambeth",
            "Lewisham", "Merton", "Newham", "Redbridge", "Richmond upon Thames", "Southwark", "Sutton",
            "Tower Hamlets", "Waltham Forest", "Wandsworth", "Westminster"]


def build(root: Path, rows: int, optouts: int) -> tuple[Settings, Database, RestrictedStore, accounts.Actor]:
    """A platform with the synthetic restricted table, an approved agreement, an analyst and opt-outs."""
    settings = Settings(data_dir=root, database_url=f"sqlite:///{root / 'bench.db'}", secret_key="bench").resolved()
    db = Database(settings.database_url)
    migrate.upgrade(db)
    store = RestrictedStore(settings)
    t0 = time.perf_counter()
    boroughs = "[" + ", ".join("'" + b.replace("'", "''") + "'" for b in BOROUGHS) + "]"
    relation = store.connect(read_only=False).sql(
        f"SELECT 'pn' || lpad(i::VARCHAR, 9, '0') AS person, {boroughs}[(hash(i) % 33)::INTEGER + 1] AS borough, "
        f"((hash(i * 7) % 10) + 1)::INTEGER AS decile, (hash(i * 13) % 100)::INTEGER AS age, "
        f"(hash(i * 17) % 4 = 0) AS smoke_alarm FROM range({rows}) r(i)")
    store.load_rows("bench_people", {"person": "VARCHAR", "borough": "VARCHAR", "decile": "INTEGER",
                                     "age": "INTEGER", "smoke_alarm": "BOOLEAN"}, relation, subject_column="person")
    print(f"loaded {rows:,} rows into the restricted store in {time.perf_counter() - t0:.1f} s")
    with db.session() as session:
        reference.seed(session)
        officer = accounts.create_user(session, username="lfb-officer", email="o@example.org", password=None)
        accounts.set_role(session, officer, accounts.get_organisation(session, "london-fire-brigade"), "admin")
        analyst = accounts.create_user(session, username="analyst", email="a@example.org", password=None)
        accounts.set_role(session, analyst, accounts.get_organisation(session, "camden"), "member")
        agreements.register_restricted_dataset(
            session, slug="bench-people", title="Synthetic people", owner_org="london-fire-brigade",
            description="Synthetic rows for the gateway benchmark.", table="bench_people", subject_column="person",
            area_field="borough", fields=[{"name": n, "type": t, "identifier": n == "person"} for n, t in (
                ("person", "VARCHAR"), ("borough", "VARCHAR"), ("decile", "INTEGER"), ("age", "INTEGER"),
                ("smoke_alarm", "BOOLEAN"))])
        actor = accounts.actor_for(officer, "cli")
        made = agreements.create_agreement(session, {
            "slug": "bench", "title": "Benchmark", "controllers": ["london-fire-brigade"], "recipients": ["camden"],
            "purposes": ["dpv:PublicBenefit"], "purpose_statement": "Benchmark.", "lawful_basis": "6(1)(e)",
            "public_benefit": "Faster analysis.", "datasets": [{"dataset": "bench-people"}],
            "start_date": "2024-01-01", "end_date": "2099-12-31"}, by=actor)
        agreements.approve(session, made, actor)
        try:
            from smartlondon.sharing.privacy import optouts as privacy_optouts

            for i in range(optouts):
                privacy_optouts.register_pseudonyms(session, {"bench": f"pn{(i * 9973) % rows:09d}"})
        except ImportError:
            print("privacy opt-outs not installed: no opt-outs")
    with db.session() as session:
        analyst_actor = accounts.actor_for(accounts.get_user(session, "analyst"), "token")
    return settings, db, store, analyst_actor


def _timed(module: object, name: str, spent: dict[str, list[float]]) -> None:
    """Wrap ``module.name`` so that each call's time is added to ``spent[name]`` (benchmark only)."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent.setdefault(name, []).append(time.perf_counter() - t0)

    setattr(module, name, wrapper)


def main() -> None:
    """Run the benchmark and print p50 for the gateway and for bare DuckDB."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--optouts", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sharing-bench-") as tmp:
        settings, db, store, analyst = build(Path(tmp), args.rows, args.optouts)
        body = {"agreement": "bench", "purpose": "dpv:PublicBenefit", "disclosure": {"profile": "nhs"},
                "query": {"dataset": "bench-people", "measures": [{"op": "count"}, {"op": "mean", "field": "age"}],
                          "by": ["borough", "decile"], "where": {"age": {">=": 65}}}}
        bare_sql = ("SELECT borough, decile, count(*), avg(age) FROM bench_people WHERE age >= 65 "
                    "GROUP BY borough, decile ORDER BY borough, decile")
        gateway_times, bare_times = [], []
        spent: dict[str, list[float]] = {}
        from smartlondon.sharing import accesslog

        for name in ("submit", "run_aggregate", "_excluded", "_subject_set", "_indexed_subject_set", "_dominance",
                     "_control"):
            _timed(gateway, name, spent)
        _timed(accesslog, "append", spent)
        cur = store.connect()
        cur.execute(bare_sql).fetchall()  # warm both paths once
        t0 = time.perf_counter()
        with db.session() as session:
            gateway.submit(session, settings, analyst, body)
        print(f"first gateway call (builds the subject index of 'age') {(time.perf_counter() - t0) * 1000:.0f} ms")
        load_before = os.getloadavg()
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            cur.execute(bare_sql).fetchall()
            bare_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with db.session() as session:
                status, result = gateway.submit(session, settings, analyst, body)
            gateway_times.append(time.perf_counter() - t0)
        cur.close()
        g, b = statistics.median(gateway_times), statistics.median(bare_times)

        def p95(times: list[float]) -> float:
            return sorted(times)[min(len(times) - 1, round(0.95 * (len(times) - 1)))]

        print(f"rows {args.rows:,}, opt-outs {args.optouts}, repetitions {args.repeat}; last gateway status "
              f"{status} {result['status']}, {len((result.get('table') or {}).get('rows', []))} rows released")
        print(f"load average (1, 5, 15 min) before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
              f"after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"bare DuckDB aggregate   p50 {b * 1000:8.1f} ms   p95 {p95(bare_times) * 1000:8.1f} ms   (floor)")
        print(f"through the gateway     p50 {g * 1000:8.1f} ms   p95 {p95(gateway_times) * 1000:8.1f} ms")
        print(f"ratio gateway / bare        {g / b:8.2f} x   (p50s; target <= 1.5 x)")
        labels = {"submit": "gateway.submit before the commit", "run_aggregate": "aggregate + opt-outs",
                  "_excluded": "opt-out lookup", "_indexed_subject_set": "subject set from the index (beside it)",
                  "_subject_set": "subject bitmap (second pass)", "_dominance": "dominance (exact pass)",
                  "_control": "disclosure control (nhs, ledger)", "append": "access log entry"}
        for name, label in labels.items():
            times = spent.get(name, [])[1:]  # without the warm-up call
            if times:
                print(f"  of which {label:34s} p50 {statistics.median(times) * 1000:8.1f} ms")
        store.close()
        db.dispose()


if __name__ == "__main__":
    main()
