"""Nowcast benchmark: one whole hour (read the hub + predict the 100 m grid and every LSOA + store + both PNGs)
beside its floor, the estimator's ``predict`` alone on the same rows, measured in the same run.

Loads the demo's LAQN network (every site, NO2/PM2.5/PM10, 31 March 2023 and the 13 days before) into a
fresh SQLite sensor hub under a temporary directory, then for each species: a cold run (fits and caches the
model, builds the grid frame), a warm run of the same hour (what the hourly scheduler pays), and the floor.

    .venv/bin/python benchmarks/insights_nowcast.py [--species NO2 PM25 PM10] [--database-url URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from smartlondon.core import migrate, reference
from smartlondon.core.db import Database
from smartlondon.insights.airquality import nowcast as nc
from smartlondon.insights.airquality.nowcast_geo import bundled_geography, frame_for
from smartlondon.sensors.laqn import load_demo_network
from smartlondon.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--species", nargs="+", default=["NO2", "PM25", "PM10"])
    parser.add_argument("--database-url", default="", help="an empty database to use instead of a SQLite file")
    parser.add_argument("--threads", type=int, default=1, help="OpenMP/BLAS threads (the machine is shared)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of the hour (the median is printed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(limits=args.threads):
        folder = Path(tmp)
        db = Database(args.database_url or f"sqlite:///{folder / 'bench.db'}")
        migrate.upgrade(db)
        with db.session() as session:
            reference.seed(session)
        settings = Settings(data_dir=folder / "var", database_url=db.url, secret_key="bench").resolved()
        started = time.perf_counter()
        summary = load_demo_network(db)
        print(f"hub: {summary.sites} LAQN sites, {summary.observations_created:,} observations loaded in "
              f"{time.perf_counter() - started:.1f} s ({db.dialect})")
        for key in args.species:
            cold_started = time.perf_counter()
            run = nc.run_nowcast(db, settings, key)
            cold = time.perf_counter() - cold_started
            # the floor: the same estimator, refreshed with the hour's readings, predicting the same rows
            geography = bundled_geography()
            frame = frame_for(geography, nc.nowcast_dir(settings) / "frames", nc.CELL)
            east, north = frame.centres()
            e = np.concatenate([east, geography.lsoa_easting])
            n = np.concatenate([north, geography.lsoa_northing])
            X = np.column_stack([np.full(len(e), float(int(run.hour.timestamp()) // 3600)), e, n, np.zeros(len(e))])
            wholes, stores, floors = [], [], []
            for _ in range(args.repeat):  # interleaved, so both see the same machine
                started = time.perf_counter()
                run = nc.run_nowcast(db, settings, key, run.hour)
                stored = time.perf_counter() - started
                nc.grid_png(settings, run, "mean")
                nc.grid_png(settings, run, "std")
                wholes.append(time.perf_counter() - started)
                stores.append(stored)
                model = next(iter(v for k, v in nc._MODELS.items() if f"/{key}-" in k), None)  # noqa: SLF001
                if model is not None and run.method == "model":
                    started = time.perf_counter()
                    model.predict(X, return_std=True)
                    floors.append(time.perf_counter() - started)
            whole, floor = float(np.median(wholes)), float(np.median(floors)) if floors else float("nan")
            print(f"{nc.DISPLAY[key]:<6} {run.hour:%Y-%m-%d %H:00}  {run.method:<16} sites {run.n_reference_sites:>3}  "
                  f"rows {len(X):,} ({run.n_cells:,} cells + {len(geography.lsoa_codes):,} LSOAs)")
            print(f"   cold run (fit + cache the model, build the frame) {cold:6.2f} s")
            print(f"   whole hour (read + predict + store + 2 PNGs): median {whole:5.2f} s, min {min(wholes):5.2f} s "
                  f"(of which PNGs {whole - float(np.median(stores)):4.2f} s)")
            print(f"   floor (predict alone, same rows):               median {floor:5.2f} s, min "
                  f"{min(floors) if floors else float('nan'):5.2f} s   overhead (median) {whole - floor:5.2f} s")
        db.dispose()


if __name__ == "__main__":
    main()
