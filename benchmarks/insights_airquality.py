"""Air quality benchmark: predicting one hour on a 100 m grid over Greater London (~160,000 points).

Fits our model (``AirQualityModel``: site levels times the hour's anomaly field kriged in log space) and
kriging with a site-type term on the full Q1 2023 NO2 readings of every site, then times
``predict(X, return_std=True)`` for one hour on a 100 m grid covering the Greater London bounding box
clipped to a 22.6 km circle round Charing Cross (about 160,000 cells), beside the floor: the raw kriging
solve of the same hour on the same cells (``KrigingSiteType._predict_rows``, no level look-up, no
back-transform, no interval).
The issue's target is at most 5 s for the whole grid.

    .venv/bin/python benchmarks/insights_airquality.py [--observations LAQN.csv.gz] [--sites SITES.csv]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from smartlondon.insights.airquality import data, features
from smartlondon.insights.airquality.evaluation import Context, make_estimator, usable_sites

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "air-quality"


def london_grid(step: float = 100.0, radius: float = 22_600.0) -> np.ndarray:
    """(easting, northing) of 100 m cells within ``radius`` of Charing Cross."""
    east, north = np.meshgrid(np.arange(features.CENTRE[0] - radius, features.CENTRE[0] + radius, step),
                              np.arange(features.CENTRE[1] - radius, features.CENTRE[1] + radius, step))
    keep = np.hypot(east - features.CENTRE[0], north - features.CENTRE[1]) <= radius
    return np.column_stack([east[keep], north[keep]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observations", type=Path, default=SHARED / "laqn-hourly-2023Q1.csv.gz")
    parser.add_argument("--sites", type=Path, default=SHARED / "laqn-sites.csv")
    args = parser.parse_args()
    sites = data.read_sites(args.sites)
    obs = data.read_observations(args.observations, "NO2", sites)
    X, y = features.design(obs, usable_sites(obs))
    context = Context(data.read_weather(), {c: (e, n) for c, e, n in zip(sites.codes, sites.easting, sites.northing)},
                      data.read_traffic())
    grid = london_grid()
    hour = features.hour_numbers(obs.hours[8 * 24 + 8: 8 * 24 + 9])[0]  # a Monday morning in January
    G = np.column_stack([np.full(len(grid), hour), grid, np.zeros(len(grid))])
    print(f"grid: {len(G):,} cells of 100 m, one hour")
    print("one thread (threadpoolctl); wall clock and this process's CPU time (the machine is shared)")
    for method in ("model", "kriging-sitetype"):
        started = time.perf_counter()
        estimator = make_estimator(method, context).fit(X, y)
        fit = time.perf_counter() - started
        started, cpu = time.perf_counter(), time.process_time()
        mean, std = estimator.predict(G, return_std=True)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"{method:<18} fit {fit:6.1f} s   predict grid {seconds:5.2f} s (CPU {cpu:5.2f} s)   "
              f"mean {np.nanmean(mean):5.1f} µg/m³, std {np.nanmean(std):4.1f}   target ≤ 5 s")
        if method == "model":
            G2 = G.copy()
            G2[:, 0] += 1  # the next hour
            started, cpu = time.perf_counter(), time.process_time()
            estimator.predict(G2, return_std=True)
            print(f"{'  next hour':<18} {'':>13}   predict grid {time.perf_counter() - started:5.2f} s "
                  f"(CPU {time.process_time() - cpu:5.2f} s)")
            h = estimator.field_.hour_index(G[:, 0])
            _, anomaly = estimator._current_parts()
            started, cpu = time.perf_counter(), time.process_time()
            anomaly._predict_rows(G, h)
            print(f"{'  floor: kriging':<18} {'':>13}   predict grid {time.perf_counter() - started:5.2f} s "
                  f"(CPU {time.process_time() - cpu:5.2f} s) "
                  "(the raw kriging solve of the hour's anomalies on the same cells)")

if __name__ == "__main__":
    with threadpool_limits(limits=1):
        main()
