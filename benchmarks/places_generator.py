"""A register of up to millions of places for the places benchmarks (issue 5, item 8).

The real areas and points come first, from ``../shared/data`` through the register's own importer:
33 boroughs, 983 MSOAs, 4,835 LSOAs, 470 TfL stations, 88 LAQN sites. The rest is SYNTHETIC:
buildings (small square footprints, 8-20 m a side) and lampposts (points), placed at random inside
the real LSOAs (rejection sampling against each LSOA polygon): buildings in proportion to each LSOA's
households (census HHOLDS), lampposts in proportion to its area. Buildings are named like a London
address on one of a handful of streets per LSOA ("12 Acton Road"; street words are the first words of
real station names) and carry a made-up UPRN from 990,000,000,000 up, which no real UPRN uses;
lampposts are named "Lamp column <LSOA code>-<n>". Nothing here is real data about buildings or
lampposts.

The places are written with ``service.bulk_create``, the register's bulk path (the same one the
importer uses): checked keys and identifiers, names, identifiers, a version per place and the
containing areas (borough, MSOA, LSOA) from the geometry.

    .venv/bin/python benchmarks/places_generator.py --size 1000000 [--backend sqlite|postgresql]

A built SQLite register is kept in ``var/bench/places-<size>.db`` and reused by the other
``places_*`` benchmarks (``--rebuild`` to start again); PostgreSQL uses the database
``smartlondon_bench_places`` (dropped and recreated through ``SMARTLONDON_BENCH_PG_ADMIN``, default
``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import shapely
from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from smartlondon.core import migrate, reference  # noqa: E402
from smartlondon.core.db import Database  # noqa: E402
from smartlondon.places import importer, service, spatial  # noqa: E402
from smartlondon.places.models import Place  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
BENCH_DIR = ROOT / "var" / "bench"
PG_ADMIN = os.environ.get("SMARTLONDON_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_NAME = "smartlondon_bench_places"
SUFFIXES = ("Road", "Street", "Lane", "Avenue", "Gardens", "Close", "Way", "Place", "Grove", "Terrace")
BUILDING_SHARE = 0.6
FIRST_UPRN = 990_000_000_000


def log(message: str) -> None:
    """Progress on standard error (the results table goes to standard output)."""
    print(message, file=sys.stderr, flush=True)


def rss_mb() -> float:
    """The peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> str:
    """The machine's 1/5/15-minute load averages (it is shared: say how busy it was)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def database(backend: str, size: int, rebuild: bool = False) -> tuple[Database, bool]:
    """The benchmark database and whether it already holds a register of ``size`` places."""
    if backend == "postgresql":
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_NAME}"
        if rebuild:
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {PG_NAME}"))
                conn.execute(text(f"CREATE DATABASE {PG_NAME}"))
                admin.dispose()
            with create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        db = Database(url)
    else:
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        path = BENCH_DIR / f"places-{size}.db"
        if rebuild:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        db = Database(f"sqlite:///{path}")
    try:
        with db.session() as session:
            have = session.scalar(select(func.count()).select_from(Place))
        return db, have == size
    except Exception:
        return db, False


def _points_in(polygon: shapely.Polygon, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random points (lon, lat) inside ``polygon``."""
    if n <= 0:
        return np.zeros((0, 2))
    x0, y0, x1, y1 = polygon.bounds
    out: list[np.ndarray] = []
    need = n
    shapely.prepare(polygon)
    while need > 0:
        draw = max(16, int(need * 1.5 * (x1 - x0) * (y1 - y0) / max(polygon.area, 1e-12)))
        xs, ys = rng.uniform(x0, x1, draw), rng.uniform(y0, y1, draw)
        inside = shapely.contains_xy(polygon, xs, ys)
        got = np.column_stack([xs[inside], ys[inside]])[:need]
        out.append(got)
        need -= len(got)
    return np.vstack(out)


def synthetic_places(session, count: int, seed: int = 5) -> Iterator[service.NewPlace]:  # type: ignore[no-untyped-def]
    """``count`` generated buildings and lampposts inside the real LSOAs (see the module docstring)."""
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    words = sorted({n.split()[0].strip(",.'") for n in session.scalars(
        select(Place.name).where(Place.kind == "station")) if n.split()[0].isalpha() and len(n.split()[0]) > 2})
    lsoas = []
    for uid, props, geometry in session.execute(select(Place.uid, Place.properties, Place.geometry)
                                                .where(Place.kind == "lsoa").order_by(Place.uid)):
        geom = shapely.geometry.shape(geometry)
        households = float((props or {}).get("HHOLDS") or 1)
        lsoas.append((uid.split(":")[-1], geom, households, spatial.to_bng(geom).area))
    if not lsoas:
        raise SystemExit("Load the real LSOAs first (the generator places everything inside them).")
    buildings = int(count * BUILDING_SHARE)
    share_b = np.array([h for _, _, h, _ in lsoas]) / sum(h for _, _, h, _ in lsoas)
    share_l = np.array([a for _, _, _, a in lsoas]) / sum(a for _, _, _, a in lsoas)
    per_b = rng.multinomial(buildings, share_b)
    per_l = rng.multinomial(count - buildings, share_l)
    serial = 0
    for (code, geom, _, _), nb, nl in zip(lsoas, per_b, per_l):
        streets = [f"{pick.choice(words)} {pick.choice(SUFFIXES)}" for _ in range(pick.randint(4, 12))]
        pts = _points_in(geom, int(nb + nl), rng)
        east, north = spatial._TO_BNG.transform(pts[:, 0], pts[:, 1])
        half = rng.uniform(4.0, 10.0, int(nb))
        ring_e = np.column_stack([east[:nb] - half, east[:nb] + half, east[:nb] + half, east[:nb] - half,
                                  east[:nb] - half]).round(3)
        ring_n = np.column_stack([north[:nb] - half, north[:nb] - half, north[:nb] + half, north[:nb] + half,
                                  north[:nb] - half]).round(3)
        ring_lon, ring_lat = spatial._TO_WGS84.transform(ring_e, ring_n)
        ring_lon, ring_lat = np.round(ring_lon, spatial.PRECISION), np.round(ring_lat, spatial.PRECISION)
        for j in range(int(nb + nl)):
            serial += 1
            lon, lat = round(float(pts[j, 0]), spatial.PRECISION), round(float(pts[j, 1]), spatial.PRECISION)
            if j < nb:
                lons, lats = ring_lon[j].tolist(), ring_lat[j].tolist()
                fp = spatial.Footprint(
                    wgs84={"type": "Polygon", "coordinates": [[list(c) for c in zip(lons, lats)]]},
                    bng={"type": "Polygon", "coordinates": [[list(c) for c in zip(ring_e[j].tolist(),
                                                                                   ring_n[j].tolist())]]},
                    bbox=(min(lons), min(lats), max(lons), max(lats)), point=(lon, lat), shape=None)  # type: ignore[arg-type]
                name = f"{pick.randint(1, 240)} {pick.choice(streets)}"
                yield service.NewPlace(kind="building", key=f"b{serial}", name=name, footprint=fp,
                                       identifiers={"uprn": [str(FIRST_UPRN + serial)]})
            else:
                fp = spatial.Footprint(wgs84={"type": "Point", "coordinates": [lon, lat]},
                                       bng={"type": "Point", "coordinates": [round(float(east[j]), 3),
                                                                             round(float(north[j]), 3)]},
                                       bbox=(lon, lat, lon, lat), point=(lon, lat), shape=None)  # type: ignore[arg-type]
                yield service.NewPlace(kind="lamppost", key=f"l{serial}", name=f"Lamp column {code}-{j - nb + 1}",
                                       footprint=fp)


def build(db: Database, size: int) -> dict[str, float]:
    """Migrate, load the real areas and points, then generate places until the register holds ``size``."""
    started = time.perf_counter()
    migrate.upgrade(db)
    with db.session() as session:
        reference.seed(session)
    with db.session() as session:
        importer.load_london(session, DATA)
    real_seconds = time.perf_counter() - started
    with db.session() as session:
        real = session.scalar(select(func.count()).select_from(Place))
    log(f"real areas and points: {real:,} places in {real_seconds:.1f} s")
    wanted = max(0, size - real)
    started = time.perf_counter()
    done = 0
    with db.session() as session:
        def progress() -> Iterator[service.NewPlace]:
            nonlocal done
            for item in synthetic_places(session, wanted):
                done += 1
                if done % 100_000 == 0:
                    log(f"  generated and written {done:,} ({done / (time.perf_counter() - started):,.0f}/s, "
                        f"peak RSS {rss_mb():,.0f} MB)")
                yield item
        result = service.bulk_create(session, progress(), source="synthetic benchmark generator",
                                     actor="benchmark", chunk=5000)
    seconds = time.perf_counter() - started
    if db.dialect == "sqlite":
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    else:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE place"))
    log(f"synthetic: {result.created:,} places in {seconds:.1f} s ({result.created / max(seconds, 1e-9):,.0f}/s), "
        f"{len(result.refused)} refused; peak RSS {rss_mb():,.0f} MB")
    return {"real": real, "real_s": real_seconds, "synthetic": result.created, "synthetic_s": seconds}


def register(backend: str, size: int, rebuild: bool = False) -> Database:
    """The benchmark register of ``size`` places, built if it is not there yet."""
    db, ready = database(backend, size, rebuild)
    if not ready:
        if not rebuild:
            db.dispose()
            db, _ = database(backend, size, rebuild=True)
        build(db, size)
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    log(f"load average before: {load_average()}")
    db, ready = database(args.backend, args.size, args.rebuild)
    if ready:
        log(f"{args.backend}: a register of {args.size:,} places is already built (--rebuild to start again)")
        return
    db.dispose()
    db, _ = database(args.backend, args.size, rebuild=True)
    figures = build(db, args.size)
    print(f"| backend | places | real (s) | synthetic places/s | peak RSS (MB) | load |\n|---|---|---|---|---|---|\n"
          f"| {args.backend} | {args.size:,} | {figures['real_s']:.1f} | "
          f"{figures['synthetic'] / max(figures['synthetic_s'], 1e-9):,.0f} | {rss_mb():,.0f} | {load_average()} |")


if __name__ == "__main__":
    main()
