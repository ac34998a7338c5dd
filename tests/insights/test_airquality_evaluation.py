"""Leave-one-site-out never leaks: a held-out site's readings cannot change its own predictions."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from smartlondon.insights.airquality import data
from smartlondon.insights.airquality.evaluation import Context, evaluate, leave_one_site_out, metrics
from tests.insights.extracts import SITES, write_extract


@pytest.fixture(scope="module")
def observations(tmp_path_factory: pytest.TempPathFactory) -> data.Observations:
    return data.read_observations(write_extract(tmp_path_factory.mktemp("laqn"), days=2), "NO2",
                                  data.read_sites(SITES))


@pytest.fixture(scope="module")
def context() -> Context:
    sites = data.read_sites(SITES)
    return Context(data.read_weather(), {c: (e, n) for c, e, n in zip(sites.codes, sites.easting, sites.northing)},
                   data.read_traffic())


@pytest.mark.parametrize("method", ["idw", "kriging", "kriging-sitetype", "model"])
def test_changing_a_held_out_sites_readings_never_changes_its_own_predictions(
        observations: data.Observations, context: Context, method: str) -> None:
    options = {"calibration_folds": 3} if method == "model" else {}
    before, _ = leave_one_site_out(observations, method, context, **options)
    target = int(np.nonzero(observations.sites.codes == "MY1")[0][0])
    values = observations.values.copy()
    values[:, target] = values[:, target] * 3 + 100  # Marylebone Road, made absurd
    after, _ = leave_one_site_out(replace(observations, values=values), method, context, **options)
    mine = before.site == target
    assert np.array_equal(before.mean[mine], after.mean[mine])
    assert np.array_equal(before.std[mine], after.std[mine])
    assert not np.array_equal(before.observed[mine], after.observed[mine])
    # ... while the other sites, trained with the changed readings, do see the change
    assert not np.allclose(before.mean[~mine], after.mean[~mine])


def test_every_reading_of_every_usable_site_is_predicted_once(observations: data.Observations) -> None:
    predictions, seconds = leave_one_site_out(observations, "idw")
    assert len(predictions.observed) == observations.n_readings
    assert set(np.unique(predictions.site)) == set(range(len(observations.sites.codes)))
    assert seconds["fit_seconds"] >= 0 and seconds["predict_seconds"] > 0


def test_metrics_are_the_textbook_ones() -> None:
    observed = np.array([10.0, 20.0, 30.0, 40.0])
    mean = np.array([12.0, 18.0, 33.0, 40.0])
    std = np.array([1.0, 1.0, 1.0, 1.0])
    m = metrics(observed, mean, std)
    assert m["rmse"] == pytest.approx(np.sqrt((4 + 4 + 9 + 0) / 4))
    assert m["mae"] == pytest.approx(7 / 4)
    assert m["bias"] == pytest.approx(3 / 4)
    assert m["r2"] == pytest.approx(1 - 17 / 500)
    assert m["coverage90"] == pytest.approx(0.25)  # only the exact one is within 1.645
    assert m["n_predictions"] == 4


def test_evaluation_reports_per_site_type_and_counts(observations: data.Observations) -> None:
    result = evaluate(observations, "kriging-sitetype")
    assert result["n_sites"] == len(observations.sites.codes)
    assert result["n_predictions"] == observations.n_readings
    assert {"Roadside", "Kerbside", "Urban Background"} <= set(result["by_site_type"])
    assert sum(t["n_sites"] for t in result["by_site_type"].values()) == result["n_sites"]
    assert result["by_site_type"]["Kerbside"]["bias"] < 0  # kerbside sites are underestimated from the others
