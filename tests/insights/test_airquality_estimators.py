"""Each air quality estimator on a small real LAQN extract (3 days, 18 sites): sane errors and a positive std."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smartlondon.insights.airquality import data, features
from smartlondon.insights.airquality.evaluation import Context, make_estimator
from tests.insights.extracts import SITES, write_extract

METHODS = ["idw", "kriging", "kriging-sitetype", "model"]
SMALL_MODEL = {"calibration_folds": 3}


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_extract(tmp_path_factory.mktemp("laqn"))


@pytest.fixture(scope="module")
def sites() -> data.Sites:
    return data.read_sites(SITES)


@pytest.fixture(scope="module")
def context(sites: data.Sites) -> Context:
    places = {c: (e, n) for c, e, n in zip(sites.codes, sites.easting, sites.northing)}
    return Context(data.read_weather(), places, data.read_traffic())


def _options(method: str) -> dict:
    return SMALL_MODEL if method == "model" else {}


@pytest.mark.parametrize("species", ["NO2", "PM25", "PM10"])
@pytest.mark.parametrize("method", METHODS)
def test_estimator_predicts_a_held_out_site_with_a_sane_error_and_std(extract: Path, sites: data.Sites,
                                                                        context: Context, method: str,
                                                                        species: str) -> None:
    obs = data.read_observations(extract, species, sites)
    held = int(np.nonzero(obs.sites.codes == "BL0")[0][0])  # North Kensington, urban background
    others = np.array([s for s in range(len(obs.sites.codes)) if s != held])
    X, y = features.design(obs, others)
    estimator = make_estimator(method, context, **_options(method)).fit(X, y)
    wanted = np.isfinite(obs.values[:, held])
    mean, std = estimator.predict(features.query(obs, held)[wanted], return_std=True)
    truth = obs.values[wanted, held]
    assert mean.shape == truth.shape and np.isfinite(mean).all()
    assert (std > 0).all()
    rmse = float(np.sqrt(((mean - truth) ** 2).mean()))
    spread = float(np.nanstd(obs.values))
    assert rmse < 1.5 * spread + 5, f"{method} {species}: RMSE {rmse:.1f} against a spread of {spread:.1f}"


@pytest.mark.parametrize("method", METHODS)
def test_predict_serves_many_points_at_once_and_nan_for_an_hour_it_has_no_readings_for(
        extract: Path, sites: data.Sites, context: Context, method: str) -> None:
    obs = data.read_observations(extract, "NO2", sites)
    X, y = features.design(obs)
    estimator = make_estimator(method, context, **_options(method)).fit(X, y)
    hour = features.hour_numbers(obs.hours[10:11])[0]
    east, north = np.meshgrid(np.linspace(520_000, 540_000, 40), np.linspace(170_000, 190_000, 40))
    grid = np.column_stack([np.full(east.size, hour), east.ravel(), north.ravel(), np.zeros(east.size)])
    mean, std = estimator.predict(grid, return_std=True)
    assert np.isfinite(mean).all() and (std > 0).all()
    assert 0 < mean.mean() < 150  # µg/m³ of NO2 in January
    missing = estimator.predict(np.array([[hour + 10_000, 530_000.0, 180_000.0, 0.0]]))
    assert np.isnan(missing).all()


def test_kriging_is_exact_at_a_monitor_and_our_model_takes_new_readings_without_refitting(
        extract: Path, sites: data.Sites, context: Context) -> None:
    obs = data.read_observations(extract, "NO2", sites)
    X, y = features.design(obs)
    kriged = make_estimator("kriging").fit(X, y).predict(X[:50])
    assert np.allclose(kriged, y[:50], atol=1e-6)
    ours = make_estimator("model", context, **SMALL_MODEL).fit(X, y)
    levels, conformal = ours.levels_.copy(), ours.conformal_
    here = X[:, features.EASTING] == X[0, features.EASTING]  # the first site's readings
    before = ours.predict(X[here])
    after = ours.set_observations(X[~here], y[~here] * 1.5).predict(X[here])  # a dirtier hour elsewhere
    assert np.array_equal(ours.levels_, levels) and ours.conformal_ == conformal  # the nowcast path: same model
    assert np.nanmean(after) > np.nanmean(before) + 2


def test_site_levels_find_the_dirtier_site_even_when_it_misses_the_dirty_hours() -> None:
    from smartlondon.insights.airquality.estimators import site_levels

    hours = np.array([10.0, 10.0, 40.0, 40.0])  # the hour's shared level (µg/m³)
    logs = np.log(np.column_stack([hours, 2 * hours, 0.5 * hours]))
    logs[2:, 1] = np.nan  # the dirtiest site misses the dirty hours: its raw mean looks like the others'
    levels = site_levels(logs)
    assert np.allclose(levels - levels[0], np.log([1.0, 2.0, 0.5]), atol=1e-6)


def test_our_model_uses_a_monitors_own_level_and_predicts_roadside_dirtier_than_background(
        extract: Path, sites: data.Sites, context: Context) -> None:
    obs = data.read_observations(extract, "NO2", sites)
    X, y = features.design(obs)
    ours = make_estimator("model", context, **SMALL_MODEL).fit(X, y)
    # a place far from any monitor, as roadside and as background, at every hour
    hours = features.hour_numbers(obs.hours)
    road = np.column_stack([hours, np.full(len(hours), 527_000.0), np.full(len(hours), 176_000.0),
                            np.ones(len(hours))])
    background = road.copy()
    background[:, features.ROADSIDE] = 0.0
    assert np.nanmean(ours.predict(road)) > np.nanmean(ours.predict(background)) + 5
    # at a monitor itself the kriging is exact: its own readings come back
    assert np.allclose(ours.predict(X[:40]), y[:40], atol=1e-6)


def test_our_model_beats_kriging_with_a_site_type_term_at_held_out_sites_on_the_extract(
        extract: Path, sites: data.Sites, context: Context) -> None:
    """Every site of the extract held out in turn (NO2): our model's RMSE is below the baseline's and its 90%
    interval covers a sane share of the held-out readings."""
    from smartlondon.insights.airquality.evaluation import evaluate

    obs = data.read_observations(extract, "NO2", sites)
    ours = evaluate(obs, "model", context, calibration_folds=3)
    baseline = evaluate(obs, "kriging-sitetype", context)
    assert ours["n_predictions"] == baseline["n_predictions"] > 500
    assert ours["rmse"] < baseline["rmse"], (ours["rmse"], baseline["rmse"])
    assert 0.75 <= ours["coverage90"] <= 0.99, ours["coverage90"]


def test_our_model_estimates_the_mean_not_the_median_so_held_out_sites_are_not_underestimated(
        extract: Path, sites: data.Sites, context: Context) -> None:
    """The log-space median ``exp(centre)`` sits below the mean of a skewed concentration; the estimate is the
    log-normal mean, above the median wherever the model is unsure, and less biased at held-out sites."""
    from smartlondon.insights.airquality.evaluation import leave_one_site_out, metrics

    obs = data.read_observations(extract, "NO2", sites)
    mean_run, _ = leave_one_site_out(obs, "model", context, calibration_folds=3)
    median_run, _ = leave_one_site_out(obs, "model", context, calibration_folds=3, log_mean=False)
    assert np.all(mean_run.mean >= median_run.mean - 1e-9)
    assert np.mean(mean_run.mean > median_run.mean + 0.5) > 0.9  # unseen places: the level alone is unsure
    as_mean = metrics(mean_run.observed, mean_run.mean, mean_run.std)
    as_median = metrics(median_run.observed, median_run.mean, median_run.std)
    assert as_median["bias"] < 0
    assert abs(as_mean["bias"]) < abs(as_median["bias"]), (as_mean["bias"], as_median["bias"])
