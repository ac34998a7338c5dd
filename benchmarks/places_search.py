"""Name search on a large register (issue 5, item 8): p50/p95 of a search beside the bare index lookup.

Ours: what ``GET /places/search`` does for each request without the HTTP layer: read the register's
version stamp, take the in-memory name index (``matching.register_index``), and rank up to 10
candidates (``MatchIndex.search``) for the query. Floor, in the same run: the bare lookup of the
query's normalised form in the same index (one dict lookup, no ranking, no typo tolerance).

Queries: every TfL station name, 200 borough/LSOA names, 300 generated building names from the
register, and the same names with one letter dropped (typos), shuffled. Also measured: building the
index from the database (time and memory) and bringing it up to date after one edit (the
incremental path: no rebuild). Target: search p95 <= 20 ms.

    .venv/bin/python benchmarks/places_search.py --size 1000000 [--backend sqlite|postgresql] [--queries 2000]
"""

from __future__ import annotations

import argparse
import random
import time

from sqlalchemy import func, select

from places_generator import load_average, log, percentile, register, rss_mb  # type: ignore[import-not-found]
from smartlondon.places import matching, service
from smartlondon.places.models import Place


def queries(session, n: int, seed: int = 7) -> list[str]:  # type: ignore[no-untyped-def]
    """Real and generated names, and the same with a letter dropped."""
    pick = random.Random(seed)
    names = list(session.scalars(select(Place.name).where(Place.kind == "station")))
    names += pick.sample(list(session.scalars(select(Place.name).where(Place.kind.in_(("borough", "lsoa"))))), 200)
    buildings = list(session.scalars(select(Place.name).where(Place.kind == "building").limit(20000)))
    names += pick.sample(buildings, min(300, len(buildings)))
    typos = []
    for name in names:
        at = pick.randrange(len(name))
        typos.append(name[:at] + name[at + 1:])
    out = names + typos
    pick.shuffle(out)
    return (out * (n // len(out) + 1))[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    db = register(args.backend, args.size)
    cache = matching.IndexCache()
    with db.session() as session:
        size = session.scalar(select(func.count()).select_from(Place).where(Place.status == "active"))
        asked = queries(session, args.queries)
        before = rss_mb()
        started = time.perf_counter()
        index = matching.register_index(session, cache)
        build = time.perf_counter() - started
        log(f"index of {len(index):,} places built in {build:.1f} s; peak RSS {before:,.0f} -> {rss_mb():,.0f} MB")
    refreshes = []
    for n in range(5):  # an edit, then the next search's refresh of the index (in place, no rebuild)
        with db.session() as session:
            uid = session.scalar(select(Place.uid).where(Place.kind == "building").offset(n * 1000).limit(1))
            service.update_place(session, uid, {"alt_names": [f"Benchmark House {n}"]}, source="benchmark")
        with db.session() as session:
            started = time.perf_counter()
            same = matching.register_index(session, cache)
            refreshes.append(time.perf_counter() - started)
            assert same is index and cache.rebuilds == 1
            assert same.search(f"Benchmark House {n}")[0].record.uid == uid
    refresh = percentile(refreshes, 50)
    ours: list[float] = []
    floor: list[float] = []
    found = 0
    log(f"load average before the queries: {load_average()}")
    with db.session() as session:
        for q in asked:
            started = time.perf_counter()
            result = matching.register_index(session, cache).search(q, limit=10)
            ours.append((time.perf_counter() - started) * 1000)
            found += bool(result)
            started = time.perf_counter()
            index.by_form.get(matching.normalise(q), ())
            floor.append((time.perf_counter() - started) * 1000)
    print(f"\n| backend | places | queries | ours p50 (ms) | ours p95 (ms) | floor p50 (ms) | floor p95 (ms) | "
          f"index build (s) | refresh after an edit (ms, median of 5) | peak RSS (MB) | load (1/5/15 min) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.backend} | {size:,} | {len(asked):,} ({found / len(asked):.0%} found) | "
          f"{percentile(ours, 50):.2f} | {percentile(ours, 95):.2f} | {percentile(floor, 50):.3f} | "
          f"{percentile(floor, 95):.3f} | {build:.1f} | {refresh * 1000:.0f} | {rss_mb():,.0f} | {load_average()} |")
    print(f"\ntarget: search p95 <= 20 ms -> {'met' if percentile(ours, 95) <= 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
