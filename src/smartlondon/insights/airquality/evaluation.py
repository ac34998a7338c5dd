"""Leave-one-site-out evaluation: each site in turn is held out whole (it contributes nothing to training,
not even its own past), predicted from the others, and scored: RMSE, MAE, R², bias and the coverage
of the stated 90% interval, overall and per site type.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .data import Observations, Traffic, Weather
from .estimators import METHODS, Z90, FieldEstimator
from .features import design, query

MIN_CAPTURE = 0.75  # a site is evaluated (and used) if it has readings for at least this share of the hours


@dataclass
class Context:
    """What our model may use besides the readings: weather (and where its sites are) and traffic."""

    weather: Weather | None = None
    weather_places: dict[str, tuple[float, float]] = field(default_factory=dict)
    traffic: Traffic | None = None


def make_estimator(method: str, context: Context | None = None, **options: Any) -> FieldEstimator:
    """A fresh estimator for ``method`` (one of ``METHODS``)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    if method == "model":
        context = context or Context()
        return METHODS[method](weather=context.weather, weather_places=context.weather_places,
                               traffic=context.traffic, **options)
    return METHODS[method](**options)


@dataclass
class Predictions:
    """Every held-out prediction of a run: the reading, the estimate, its std, and whose site it was."""

    site: np.ndarray  # index into the observations' sites
    observed: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def usable_sites(observations: Observations, min_capture: float = MIN_CAPTURE) -> np.ndarray:
    """Column indexes of the sites with readings for at least ``min_capture`` of the hours."""
    capture = np.isfinite(observations.values).mean(axis=0)
    return np.nonzero(capture >= min_capture)[0]


def leave_one_site_out(observations: Observations, method: str, context: Context | None = None,
                       min_capture: float = MIN_CAPTURE, progress: Callable[[int], None] | None = None,
                       threads: int = 1, **options: Any) -> tuple[Predictions, dict[str, float]]:
    """Predict every reading of every usable site from a model fitted to the other usable sites only."""
    sites = usable_sites(observations, min_capture)
    if len(sites) < 3:
        raise ValueError(f"only {len(sites)} site(s) have {observations.species} readings for "
                         f"{min_capture:.0%} of the hours: at least 3 are needed")
    parts: list[tuple[np.ndarray, ...]] = []
    seconds = {"fit_seconds": 0.0, "predict_seconds": 0.0}
    with threadpool_limits(limits=threads):  # many small fits: threads only wait for each other
        for held_out in sites:
            parts.append(_hold_out(observations, sites, held_out, method, context, options, seconds))
            if progress:
                progress(1)
    joined = [np.concatenate(p) for p in zip(*parts)]
    return Predictions(*joined), seconds


def _hold_out(observations: Observations, sites: np.ndarray, held_out: int, method: str, context: Context | None,
              options: dict[str, Any], seconds: dict[str, float]) -> tuple[np.ndarray, ...]:
    """Fit without ``held_out`` (no reading of it, at any hour) and predict its readings."""
    others = sites[sites != held_out]
    X, y = design(observations, others)  # the held-out site's readings are not in here, at any hour
    started = time.perf_counter()
    estimator = make_estimator(method, context, **options).fit(X, y)
    seconds["fit_seconds"] += time.perf_counter() - started
    wanted = np.isfinite(observations.values[:, held_out])
    started = time.perf_counter()
    mean, std = estimator.predict(query(observations, held_out)[wanted], return_std=True)
    seconds["predict_seconds"] += time.perf_counter() - started
    observed = observations.values[wanted, held_out]
    return np.full(len(observed), held_out), observed, mean, std


def metrics(observed: np.ndarray, mean: np.ndarray, std: np.ndarray) -> dict[str, float | int | None]:
    """RMSE, MAE, R², bias (estimate minus reading), coverage of mean ± 1.645 std, mean interval width."""
    ok = np.isfinite(observed) & np.isfinite(mean)
    o, m, s = observed[ok], mean[ok], std[ok]
    if not len(o):
        return {"rmse": None, "mae": None, "r2": None, "bias": None, "coverage90": None, "interval90_width": None,
                "n_predictions": 0}
    err = m - o
    total = ((o - o.mean()) ** 2).sum()
    return {"rmse": float(np.sqrt((err ** 2).mean())), "mae": float(np.abs(err).mean()),
            "r2": float(1 - (err ** 2).sum() / total) if total > 0 else None, "bias": float(err.mean()),
            "coverage90": float((np.abs(err) <= Z90 * s).mean()), "interval90_width": float((2 * Z90 * s).mean()),
            "n_predictions": int(len(o))}


def evaluate(observations: Observations, method: str, context: Context | None = None,
             min_capture: float = MIN_CAPTURE, progress: Callable[[int], None] | None = None,
             **options: Any) -> dict[str, Any]:
    """The leave-one-site-out scores of ``method`` on ``observations``: overall, per site type and per site."""
    predictions, seconds = leave_one_site_out(observations, method, context, min_capture, progress, **options)
    sites = observations.sites
    held = np.unique(predictions.site)
    missing = int((~np.isfinite(predictions.mean)).sum())
    result: dict[str, Any] = {"method": method, "species": observations.species,
                              **metrics(predictions.observed, predictions.mean, predictions.std),
                              "n_sites": int(len(held)), "n_unpredicted": missing,
                              "period": {"start": str(observations.hours[0]) + ":00Z",
                                         "end": str(observations.hours[-1]) + ":00Z",
                                         "hours": int(len(observations.hours))},
                              "fit_seconds": round(seconds["fit_seconds"], 3),
                              "predict_seconds": round(seconds["predict_seconds"], 3)}
    by_type: dict[str, Any] = {}
    site_type = sites.site_types[predictions.site]
    for kind in sorted(set(site_type)):
        rows = site_type == kind
        by_type[kind] = {**metrics(predictions.observed[rows], predictions.mean[rows], predictions.std[rows]),
                         "n_sites": int(len(np.unique(predictions.site[rows])))}
    result["by_site_type"] = by_type
    result["by_site"] = {str(sites.codes[s]): {"site_type": str(sites.site_types[s]),
                                               **metrics(*(a[predictions.site == s] for a in
                                                           (predictions.observed, predictions.mean,
                                                            predictions.std)))}
                         for s in held}
    return result
