"""Bounding-box queries on a large register (issue 5, item 8): p50/p95 beside the bare spatial index.

Ours: ``spatial.query_ids(session, box)``, the query behind ``/places/api/within?bbox=`` and the OGC
API items' ``bbox``: every active place whose geometry intersects the box, exactly (SQLite: the
R*Tree for candidates, then shapely for those not wholly inside the box; PostgreSQL: the GiST index
and ``ST_Intersects``). Floor, in the same run: the bare index query for the same box (SQLite: ``SELECT
id FROM place_rtree WHERE ...``; PostgreSQL: ``SELECT id FROM place WHERE geom && envelope``), which
gives bounding-box candidates only.

Boxes: ``--box-m`` metres a side (default 250, a street-level map view) centred on randomly chosen
places of the register, so they fall where places are. Target: p95 <= 20 ms.

    .venv/bin/python benchmarks/places_bbox.py --size 1000000 [--backend sqlite|postgresql] [--runs 500]
"""

from __future__ import annotations

import argparse
import math
import random
import time

from shapely.geometry import box
from sqlalchemy import func, select, text

from places_generator import load_average, log, percentile, register  # type: ignore[import-not-found]
from smartlondon.places import spatial
from smartlondon.places.models import Place


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--box-m", type=float, default=250.0)
    args = parser.parse_args()
    db = register(args.backend, args.size)
    pick = random.Random(11)
    with db.session() as session:
        size = session.scalar(select(func.count()).select_from(Place))
        top = session.scalar(select(func.max(Place.id)))
        centres = []
        while len(centres) < args.runs:
            row = session.execute(select(Place.point_lon, Place.point_lat).where(Place.id == pick.randint(1, top))).first()
            if row and row[0] is not None:
                centres.append((row[0], row[1]))
    half_lat = args.box_m / 2 / 111320.0
    boxes = [(x - half_lat / math.cos(math.radians(y)), y - half_lat, x + half_lat / math.cos(math.radians(y)),
              y + half_lat) for x, y in centres]
    if db.dialect == "postgresql":
        floor_sql = text("SELECT id FROM place WHERE geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)")
    else:
        floor_sql = text("SELECT id FROM place_rtree WHERE max_lon >= :x0 AND min_lon <= :x1 "
                         "AND max_lat >= :y0 AND min_lat <= :y1")
    ours: list[float] = []
    floor: list[float] = []
    hits: list[int] = []
    log(f"load average before: {load_average()}")
    with db.session() as session:
        spatial.query_ids(session, box(*boxes[0]))  # the first query pays for the connection's set-up
        for x0, y0, x1, y1 in boxes:
            started = time.perf_counter()
            found = spatial.query_ids(session, box(x0, y0, x1, y1))
            ours.append((time.perf_counter() - started) * 1000)
            hits.append(len(found))
            started = time.perf_counter()
            session.execute(floor_sql, {"x0": x0, "y0": y0, "x1": x1, "y1": y1}).fetchall()
            floor.append((time.perf_counter() - started) * 1000)
    print(f"\n| backend | places | box | runs | places per box (mean) | ours p50 (ms) | ours p95 (ms) | "
          f"floor p50 (ms) | floor p95 (ms) | load (1/5/15 min) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.backend} | {size:,} | {args.box_m:.0f} m | {len(boxes)} | {sum(hits) / len(hits):,.0f} | "
          f"{percentile(ours, 50):.2f} | {percentile(ours, 95):.2f} | {percentile(floor, 50):.2f} | "
          f"{percentile(floor, 95):.2f} | {load_average()} |")
    print(f"\ntarget: bbox p95 <= 20 ms -> {'met' if percentile(ours, 95) <= 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
