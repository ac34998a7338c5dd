"""Each air quality estimator on a small real LAQN extract (3 days, 18 sites): sane errors and a positive std."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smartlondon.insights.airquality import data, features
from smartlondon.insights.airquality.evaluation import Context, make_estimator
from tests.insights.extracts import SITES, write_extract

METHODS = ["idw", "kriging", "kriging-sitetype", "model"]
SMALL_MODEL = {"max_iter": 40, "calibration_folds": 3}


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
    booster = ours.booster_
    here = X[:, features.EASTING] == X[0, features.EASTING]  # the first site's readings
    before = ours.predict(X[here])
    after = ours.set_observations(X[~here], y[~here] * 1.5).predict(X[here])  # a dirtier hour elsewhere
    assert ours.booster_ is booster  # the nowcast path: new readings, same trees
    assert np.nanmean(after) > np.nanmean(before) + 2
