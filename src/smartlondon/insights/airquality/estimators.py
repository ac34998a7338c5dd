"""The estimators of hourly air quality at any point: three baselines and our model.

Every estimator follows scikit-learn: ``fit(X, y)`` with one row per reading (see ``features.COLUMNS``)
and ``predict(X, return_std=True)`` giving the concentration and a standard deviation at any
(hour, point); ``mean ± 1.645 std`` is the stated 90% interval. A prediction at hour ``t`` uses the
training readings of hour ``t`` (the field); an hour with no training readings gives NaN.

* ``InverseDistance``: inverse distance weighting (power 2) of the hour's readings; its std is the
  weighted spread of the readings used (not calibrated: it is the baseline).
* ``OrdinaryKriging``: a correlogram pooled over every hour (exponential with a nugget, fitted to
  the readings standardised hour by hour), scaled by each hour's own variance; kriging variance.
* ``KrigingSiteType``: kriging with an external drift (the roadside/kerbside indicator), so roads and
  background get their own level each hour; the correlogram is fitted to the residuals of that drift.
* ``AirQualityModel`` (ours): kriging with a site-type term, corrected by gradient boosting
  (``HistGradientBoostingRegressor``) on what is known at a place with no monitor (the same hour at
  the other sites, site type, traffic, weather, time),
  its 90% interval calibrated by conformal prediction on out-of-fold residuals of the training sites.
"""

from __future__ import annotations

import warnings
from abc import ABCMeta, abstractmethod

import numpy as np
from scipy.optimize import curve_fit
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils.validation import check_is_fitted

from .data import Traffic, Weather
from .features import (
    FEATURES, HOUR, Field, StaticFeatures, WeatherFeatures, field_features, time_features,
    unique_points,
)

Z90 = 1.6448536269514722  # the normal quantile of a central 90% interval
MIN_STD = 0.5  # µg/m³: no estimate is surer than this


class FieldEstimator(RegressorMixin, BaseEstimator, metaclass=ABCMeta):
    """What the estimators share: the training readings as an hourly field, predictions hour by hour."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> "FieldEstimator":
        """Learn from readings ``y`` at the (hour, point) rows of ``X``."""
        X, y = _checked(X, y)
        self.field_ = Field.from_training(X, y)
        self._fit_field()
        return self

    def set_observations(self, X: np.ndarray, y: np.ndarray) -> "FieldEstimator":
        """Replace the readings predictions are made from (e.g. the latest hour) without refitting the model."""
        X, y = _checked(X, y)
        self.field_ = Field.from_training(X, y)
        return self

    def _fit_field(self) -> None:
        """Fit whatever the estimator learns from the whole field (nothing by default)."""

    def predict(self, X: np.ndarray, return_std: bool = False):  # type: ignore[no-untyped-def]
        """The concentration at each (hour, point) of ``X`` and, with ``return_std``, its standard deviation."""
        check_is_fitted(self, "field_")
        X = np.asarray(X, dtype=float)
        mean = np.full(len(X), np.nan)
        std = np.full(len(X), np.nan)
        h = self.field_.hour_index(X[:, HOUR])
        known = h >= 0
        if known.any():
            m, s = self._predict_rows(X[known], h[known])
            mean[known], std[known] = m, np.maximum(s, MIN_STD)
        return (mean, std) if return_std else mean

    @abstractmethod
    def _predict_rows(self, X: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of known-hour rows ``X`` (``h``: their hour indexes)."""


def _checked(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or X.shape[1] < 4 or len(X) != len(y):
        raise ValueError("X must have the columns hour, easting, northing, roadside and one row per value of y")
    keep = np.isfinite(y) & np.isfinite(X[:, :4]).all(axis=1)
    if not keep.any():
        raise ValueError("there are no readings to learn from")
    return X[keep], y[keep]


def _by_pattern(field: Field, h: np.ndarray, usable: np.ndarray | None = None):  # type: ignore[no-untyped-def]
    """Group query rows by which training locations have a reading at their hour: (rows, locations)."""
    hours, hour_of_row = np.unique(h, return_inverse=True)  # patterns per hour, then per row (a grid is one hour)
    present = np.isfinite(field.values[hours])
    if usable is not None:
        present &= usable[None, :]
    patterns, pattern_of_hour = np.unique(present, axis=0, return_inverse=True)
    inverse = pattern_of_hour.ravel()[hour_of_row.ravel()]
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(patterns) + 1))
    for p, pattern in enumerate(patterns):
        rows = order[bounds[p]:bounds[p + 1]]
        if len(rows) and pattern.any():
            yield rows, np.nonzero(pattern)[0]


class InverseDistance(FieldEstimator):
    """Inverse distance weighting of the same hour's readings."""

    def __init__(self, power: float = 2.0) -> None:
        self.power = power

    def _predict_rows(self, X: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        points, inverse = unique_points(X)
        dist = self.field_.distances(points[:, 0], points[:, 1])
        weight = 1.0 / np.maximum(dist, 1.0) ** self.power
        mean = np.full(len(X), np.nan)
        std = np.full(len(X), np.nan)
        for start in range(0, len(X), 50_000):
            r = slice(start, start + 50_000)
            v = self.field_.values[h[r]]
            ok = np.isfinite(v)
            w = np.where(ok, weight[inverse[r]], 0.0)
            w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-300)
            v0 = np.where(ok, v, 0.0)
            m = (w * v0).sum(axis=1)
            mean[r] = m
            std[r] = np.sqrt((w * (v0 - m[:, None]) ** 2).sum(axis=1))
        return mean, std


# --- kriging ---------------------------------------------------------------------------------

def _exponential(h: np.ndarray, nugget: float, range_m: float) -> np.ndarray:
    """Semivariance of a unit-sill exponential model with a nugget, at lag ``h`` (0 at lag 0)."""
    return np.where(h > 0, nugget + (1 - nugget) * (1 - np.exp(-h / range_m)), 0.0)


def _pooled_correlogram(field: Field, residuals: np.ndarray, bins: int = 15) -> tuple[float, float]:
    """Nugget and range of the exponential model fitted to the semivariogram of hour-standardised residuals."""
    dist = field.distances(field.easting, field.northing)
    iu = np.triu_indices(len(field.easting), k=1)
    lags = dist[iu]
    edges = np.quantile(lags, np.linspace(0, 1, bins + 1)) if len(lags) else np.array([0.0, 1.0])
    which = np.clip(np.searchsorted(edges, lags, side="right") - 1, 0, bins - 1)
    gamma = np.zeros(bins)
    count = np.zeros(bins)
    for r in residuals:
        ok = np.isfinite(r)
        if ok.sum() < 3:
            continue
        pair_ok = ok[iu[0]] & ok[iu[1]]
        half_sq = 0.5 * (r[iu[0]] - r[iu[1]]) ** 2
        np.add.at(gamma, which[pair_ok], half_sq[pair_ok])
        np.add.at(count, which[pair_ok], 1)
    used = count > 0
    if used.sum() < 3:
        return 0.5, 10_000.0
    centres = np.array([lags[which == b].mean() if (which == b).any() else np.nan for b in range(bins)])
    x, g = centres[used], gamma[used] / count[used]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (nugget, range_m), _ = curve_fit(_exponential, x, g, p0=(0.3, 5000.0),
                                             bounds=([0.0, 100.0], [0.99, 200_000.0]), sigma=1 / np.sqrt(count[used]))
    except (RuntimeError, ValueError):
        nugget, range_m = 0.5, 10_000.0
    return float(nugget), float(range_m)


def _standardised(values: np.ndarray, drift: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per hour, the residuals from the hour's mean (or least-squares drift) divided by their spread."""
    out = np.full_like(values, np.nan)
    scale = np.full(len(values), np.nan)
    for t, row in enumerate(values):
        ok = np.isfinite(row)
        if ok.sum() < 3:
            continue
        if drift is None or len(np.unique(drift[ok])) < 2:
            resid = row[ok] - row[ok].mean()
        else:
            F = np.column_stack([np.ones(ok.sum()), drift[ok]])
            coef, *_ = np.linalg.lstsq(F, row[ok], rcond=None)
            resid = row[ok] - F @ coef
        sd = resid.std()
        if sd > 0:
            scale[t] = sd
            out[t, ok] = resid / sd
    return out, scale


class OrdinaryKriging(FieldEstimator):
    """Ordinary kriging, hour by hour, with a correlogram pooled over hours and each hour's own sill."""

    drift_column: int | None = None

    def _fit_field(self) -> None:
        drift = self._drift(self.field_.roadside)
        resid, _ = _standardised(self.field_.values, drift)
        self.nugget_, self.range_ = _pooled_correlogram(self.field_, resid)

    def _drift(self, roadside: np.ndarray) -> np.ndarray | None:
        return None

    def _predict_rows(self, X: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        field = self.field_
        mean = np.full(len(X), np.nan)
        var = np.full(len(X), np.nan)
        points, inverse = unique_points(X)
        dist_q = field.distances(points[:, 0], points[:, 1])
        dist_s = field.distances(field.easting, field.northing)
        drift_sites = self._drift(field.roadside)
        drift_points = self._drift(points[:, 2])
        _, hour_scale = _standardised(field.values, drift_sites)
        for rows, locs in _by_pattern(field, h):
            uses_drift = drift_sites is not None and len(np.unique(drift_sites[locs])) > 1
            n_drift = 2 if uses_drift else 1
            n = len(locs)
            if n < n_drift + 1:
                v = field.values[h[rows]][:, locs]
                mean[rows] = v.mean(axis=1)
                var[rows] = np.nan
                continue
            A = np.zeros((n + n_drift, n + n_drift))
            A[:n, :n] = _exponential(dist_s[np.ix_(locs, locs)], self.nugget_, self.range_)
            A[:n, n] = A[n, :n] = 1.0
            if uses_drift:
                A[:n, n + 1] = A[n + 1, :n] = drift_sites[locs]
            qpts, qinv = np.unique(inverse[rows], return_inverse=True)
            b = np.zeros((n + n_drift, len(qpts)))
            b[:n] = _exponential(dist_q[np.ix_(qpts, locs)], self.nugget_, self.range_).T
            b[n] = 1.0
            if uses_drift:
                b[n + 1] = drift_points[qpts]
            solution = np.linalg.lstsq(A, b, rcond=None)[0] if np.linalg.cond(A) > 1e12 else np.linalg.solve(A, b)
            weights = solution[:n].T  # query points x locations
            variance = np.maximum((solution * b).sum(axis=0), 0.0)  # standardised kriging variance
            v = field.values[h[rows]][:, locs]
            mean[rows] = (weights[qinv] * v).sum(axis=1)
            var[rows] = variance[qinv] * hour_scale[h[rows]] ** 2
        fallback = ~np.isfinite(var)
        if fallback.any():  # too few readings that hour to estimate a variance: use the readings' spread
            spread = np.nanstd(field.values[h[fallback]], axis=1)
            var[fallback] = np.where(np.isfinite(spread), spread, 0.0) ** 2
        return mean, np.sqrt(var)


    def leave_one_out(self) -> np.ndarray:
        """Each training reading as kriged from the same hour's other readings (closed form: one matrix inverse
        per pattern of reporting sites, no refitting), shaped like ``field_.values``; NaN where undefined."""
        field = self.field_
        out = np.full(field.values.shape, np.nan)
        dist_s = field.distances(field.easting, field.northing)
        drift = self._drift(field.roadside)
        for rows, locs in _by_pattern(field, np.arange(len(field.hours))):
            uses_drift = drift is not None and len(np.unique(drift[locs])) > 1
            n_drift = 2 if uses_drift else 1
            n = len(locs)
            if n < n_drift + 2:
                continue
            A = np.zeros((n + n_drift, n + n_drift))
            A[:n, :n] = _exponential(dist_s[np.ix_(locs, locs)], self.nugget_, self.range_)
            A[:n, n] = A[n, :n] = 1.0
            if uses_drift:
                A[:n, n + 1] = A[n + 1, :n] = drift[locs]
            inverse = np.linalg.pinv(A)
            values = field.values[rows][:, locs].T  # locations x hours
            solved = inverse[:, :n] @ values
            diagonal = np.diag(inverse)[:n]
            ok = np.abs(diagonal) > 1e-9  # removing this site leaves the system singular (the only one of its type)
            loo = np.full_like(values, np.nan)
            loo[ok] = values[ok] - solved[:n][ok] / diagonal[ok, None]
            out[np.ix_(rows, locs)] = loo.T
        return out


class KrigingSiteType(OrdinaryKriging):
    """Kriging with an external drift: the hour's level differs between roadside/kerbside and background."""

    def _drift(self, roadside: np.ndarray) -> np.ndarray | None:
        return (np.asarray(roadside) > 0.5).astype(float)


# --- our model -------------------------------------------------------------------------------

def _location_index(field: Field, X: np.ndarray) -> np.ndarray:
    """For each row of ``X``, the nearest location of the field."""
    points, inverse = unique_points(X)
    return field.distances(points[:, 0], points[:, 1]).argmin(axis=1)[inverse]


class AirQualityModel(FieldEstimator):
    """Kriging with a site-type term, corrected by gradient boosting on what is known where there is no
    monitor, with a conformal 90% interval.

    The baseline is ``KrigingSiteType`` of the hour's readings; for training readings it is their
    closed-form leave-one-out kriging (``leave_one_out``), so the trees learn corrections from exactly
    what a place with no monitor sees. The trees (slow learning rate, large leaves) see the kriged
    value and these features (``features.FEATURES``): the same hour at the other monitors (inverse-distance fields of
    background and roadside sites, the nearest background reading and its distance, the hour's means,
    median and spread), the site type, distance to the centre, DfT traffic flows within 100 m, 300 m
    and 1 km, HGVs within 300 m, distance to a major road, the nearest count point's flow, ERA5
    weather at the nearest covered site, hour of day and day of week. Every training row's features
    leave out its own site, so training sees exactly what a place with no monitor sees.

    The interval: the training sites are split into ``calibration_folds`` groups; each group is
    predicted by a model fitted without it; a scale model learns the size of those out-of-site errors
    and the 90% quantile of the errors divided by that scale (split conformal, by site) sets the std.
    """

    def __init__(self, weather: Weather | None = None, weather_places: dict | None = None,
                 traffic: Traffic | None = None, max_iter: int = 100, learning_rate: float = 0.03,
                 max_leaf_nodes: int = 15, min_samples_leaf: int = 1000, max_training_rows: int | None = 15_000,
                 calibration_folds: int = 3, random_state: int = 0) -> None:
        self.weather = weather
        self.weather_places = weather_places
        self.traffic = traffic
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.max_training_rows = max_training_rows
        self.calibration_folds = calibration_folds
        self.random_state = random_state

    def _booster(self, loss: str = "squared_error", max_iter: int | None = None) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(loss=loss, max_iter=max_iter or self.max_iter,
                                             learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
                                             min_samples_leaf=self.leaf_size_, l2_regularization=1.0,
                                             early_stopping=False, random_state=self.random_state)

    @staticmethod
    def _baseline(F: np.ndarray, kriged: np.ndarray) -> np.ndarray:
        base = np.where(np.isfinite(kriged), kriged, F[:, FEATURES.index("baseline")])
        return np.where(np.isfinite(base), base, np.nan_to_num(F[:, FEATURES.index("idw_all")]))

    def features(self, X: np.ndarray) -> np.ndarray:
        """The feature matrix (``features.FEATURES``) of each (hour, point) row, from the current field."""
        X = np.asarray(X, dtype=float)
        points, inverse = unique_points(X)
        static = self.static_.at(points)[inverse]
        return np.column_stack([field_features(self.field_, X), static, self.weather_.at(X), time_features(X)])

    def fit(self, X: np.ndarray, y: np.ndarray) -> "AirQualityModel":
        """Learn the booster and its calibrated interval from readings ``y`` at the rows of ``X``."""
        X, y = _checked(X, y)
        self.field_ = Field.from_training(X, y)
        self.static_ = StaticFeatures(self.traffic)
        self.weather_ = WeatherFeatures(self.weather, self.weather_places or {})
        rng = np.random.default_rng(self.random_state)
        if self.max_training_rows and len(X) > self.max_training_rows:
            keep = np.sort(rng.choice(len(X), self.max_training_rows, replace=False))
            X, y = X[keep], y[keep]
        self.kriging_ = KrigingSiteType()
        self.kriging_.field_ = self.field_
        self.kriging_._fit_field()
        loo = self.kriging_.leave_one_out()  # each training reading kriged without its own site
        kriged = loo[self.field_.hour_index(X[:, HOUR]), _location_index(self.field_, X)]
        F = np.column_stack([self.features(X), kriged])
        base = self._baseline(F, kriged)
        y = y - base  # the booster learns corrections to the regression-kriging-like baseline
        self.leaf_size_ = max(20, min(self.min_samples_leaf, len(y) // 15))  # a leaf spans several sites' readings
        self.booster_ = self._booster().fit(F, y)
        # out-of-site residuals: sites in groups, each group predicted by a booster fitted without it
        _, site = unique_points(X)
        n_sites = site.max() + 1
        groups = rng.permutation(n_sites) % max(2, min(self.calibration_folds, n_sites))
        oof = np.full(len(y), np.nan)
        for g in np.unique(groups):
            held = groups[site] == g
            if held.all() or not held.any():
                continue
            oof[held] = self._booster(max_iter=max(50, self.max_iter // 2)).fit(F[~held], y[~held]).predict(F[held])
        ok = np.isfinite(oof)
        abs_err = np.abs(y[ok] - oof[ok])
        scale_features = np.column_stack([F[ok], oof[ok]])
        self.scale_ = self._booster(loss="absolute_error", max_iter=50).fit(scale_features, abs_err)
        scale = np.maximum(self.scale_.predict(scale_features), MIN_STD)
        self.conformal_ = float(np.quantile(abs_err / scale, 0.90)) if ok.any() else Z90
        return self

    def _predict_rows(self, X: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.kriging_.field_ = self.field_  # the current readings (after set_observations too)
        kriged = self.kriging_.predict(X)
        F = np.column_stack([self.features(X), kriged])
        correction = self.booster_.predict(F)
        mean = self._baseline(F, kriged) + correction
        scale = np.maximum(self.scale_.predict(np.column_stack([F, correction])), MIN_STD)
        return mean, scale * self.conformal_ / Z90


#: the methods of the evaluation command, by their name there
METHODS = {"model": AirQualityModel, "idw": InverseDistance, "kriging": OrdinaryKriging,
           "kriging-sitetype": KrigingSiteType}
