"""Assigning many points to their LSOA (issue 5, item 8): ours beside the bare shapely STRtree query.

Ours: ``spatial.AreaIndex`` (what bulk loads and ``relink`` use): load the 4,835 real LSOAs from the
register, then ``assign(lons, lats)``: each point's containing LSOA (the exact test on prepared
polygons, ties broken by uid), as the database queries would answer. Floor, in the same run: the bare
``shapely.STRtree(polygons).query(points, predicate="intersects")`` on the same polygons and points
(pairs only: no ids, no tie-breaking). On PostgreSQL also the PostGIS join of the same points (a
temporary table) with the LSOAs, for comparison.

Points: ``--points`` (default 1,000,000) drawn at random inside the real LSOAs in proportion to their
households (synthetic, seeded), plus 1% uniformly over a box around London (some fall outside every
LSOA). Target: 1,000,000 assignments <= 30 s on SQLite.

    .venv/bin/python benchmarks/places_assign.py [--points 1000000] [--backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import shapely
from sqlalchemy import select, text

from places_generator import _points_in, load_average, log, register, rss_mb  # type: ignore[import-not-found]
from smartlondon.places import spatial
from smartlondon.places.models import Place


def sample_points(session, n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """``n`` points inside the LSOAs (by households) and 1% anywhere around London."""
    rng = np.random.default_rng(seed)
    rows = [(shapely.geometry.shape(g), float((p or {}).get("HHOLDS") or 1)) for g, p in session.execute(
        select(Place.geometry, Place.properties).where(Place.kind == "lsoa").order_by(Place.uid))]
    outside = n // 100
    per = rng.multinomial(n - outside, np.array([h for _, h in rows]) / sum(h for _, h in rows))
    parts = [_points_in(g, int(k), rng) for (g, _), k in zip(rows, per)]
    lo, hi = spatial.LONDON[:2], spatial.LONDON[2:]
    parts.append(np.column_stack([rng.uniform(lo[0], hi[0], outside), rng.uniform(lo[1], hi[1], outside)]))
    pts = np.vstack(parts)
    order = rng.permutation(len(pts))
    return pts[order, 0], pts[order, 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=10_000, help="the register to read the LSOAs from")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    db = register(args.backend, args.size)
    with db.session() as session:
        lons, lats = sample_points(session, args.points)
        log(f"{len(lons):,} points drawn; load average {load_average()}")
        started = time.perf_counter()
        index = spatial.AreaIndex.load(session, ("lsoa",))
        load_s = time.perf_counter() - started
    started = time.perf_counter()
    assigned = index.assign(lons, lats)
    ours = time.perf_counter() - started
    inside = sum(1 for a in assigned if a)
    polygons = list(index.tree.geometries)
    fresh = [shapely.from_wkb(shapely.to_wkb(g)) for g in polygons]  # unprepared copies
    started = time.perf_counter()
    tree = shapely.STRtree(fresh)
    pairs = tree.query(shapely.points(lons, lats), predicate="intersects")
    floor = time.perf_counter() - started
    floor_inside = len(set(pairs[0].tolist()))
    pg = ""
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            with raw.cursor() as cur:  # type: ignore[union-attr]
                cur.execute("CREATE TEMP TABLE bench_pts (n int, lon float8, lat float8)")
                buf = io.StringIO("".join(f"{i}\t{x}\t{y}\n" for i, (x, y) in enumerate(zip(lons, lats))))
                with cur.copy("COPY bench_pts FROM STDIN") as copy:
                    copy.write(buf.getvalue())
                started = time.perf_counter()
                cur.execute("SELECT count(DISTINCT b.n) FROM bench_pts b JOIN place l ON l.kind = 'lsoa' "
                            "AND ST_Intersects(l.geom, ST_SetSRID(ST_MakePoint(b.lon, b.lat), 4326))")
                pg_inside = cur.fetchone()[0]
                pg = f"{time.perf_counter() - started:.1f} s ({pg_inside:,} inside)"
            conn.rollback()
    print(f"\n| backend | points | LSOAs | ours: load (s) | ours: assign (s) | floor: bare STRtree (s) | "
          f"points in an LSOA (ours / floor) | PostGIS join | peak RSS (MB) | load (1/5/15 min) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.backend} | {len(lons):,} | {len(polygons):,} | {load_s:.1f} | {ours:.1f} | {floor:.1f} | "
          f"{inside:,} / {floor_inside:,} | {pg or 'n/a'} | {rss_mb():,.0f} | {load_average()} |")
    print(f"\ntarget: 1,000,000 assignments <= 30 s on SQLite -> {'met' if load_s + ours <= 30 else 'NOT met'} "
          f"(load + assign: {load_s + ours:.1f} s)")


if __name__ == "__main__":
    main()
