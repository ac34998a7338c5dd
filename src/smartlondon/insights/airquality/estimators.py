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
* ``AirQualityModel`` (ours): in log space, a place's long-run level plus the hour's shared anomaly
  field: the level learned per training site and predicted at a new place from its type and the
  nearby sites' levels, the anomaly kriged hour by hour with a roadside drift; its 90% interval
  calibrated by split conformal prediction over groups of training sites.
"""

from __future__ import annotations

import warnings
from abc import ABCMeta, abstractmethod

import numpy as np
from scipy.optimize import curve_fit
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from .data import Traffic, Weather
from .features import HOUR, SAME_PLACE_METRES, Field, StaticFeatures, unique_points

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
        hour_scale = np.full(len(field.hours), np.nan)
        needed = np.unique(h)  # only the hours asked for (a grid is one hour, not the whole history)
        hour_scale[needed] = _standardised(field.values[needed], drift_sites)[1]
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

def site_levels(log_values: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Each location's long-run level in log space: the site term of an additive hour + site fit
    (``log y[h, l] ≈ hour[h] + level[l]``, alternating means over the readings there are), centred on 0.
    Alternating means, not raw site means, so a site that misses dirty hours is not thought clean."""
    hour = np.nanmean(log_values, axis=1)
    level = np.zeros(log_values.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an hour with no reading at all stays NaN
        for _ in range(iterations):
            level = np.nanmean(log_values - hour[:, None], axis=0)
            level -= np.nanmean(level)
            hour = np.nanmean(log_values - level[None, :], axis=1)
    return np.nan_to_num(level)


class SiteLevels:
    """The long-run level of a place with no monitor: a ridge regression of the training sites' levels on
    site features (by default only roadside or not), plus an exponentially weighted mean of the
    nearby training sites' departures from that regression (weights ``exp(-d / range)``, shrunk towards
    the regression by a prior weight), so a place near dirtier-than-their-type sites is thought dirtier."""

    def __init__(self, features: np.ndarray, easting: np.ndarray, northing: np.ndarray, levels: np.ndarray,
                 ridge: float, range_m: float, prior: float) -> None:
        self.mu = features.mean(axis=0)
        self.sd = features.std(axis=0) + 1e-9
        A = self._design(features)
        penalty = np.eye(A.shape[1]) * ridge
        penalty[0, 0] = 0.0
        self.coef = np.linalg.solve(A.T @ A + penalty, A.T @ levels)
        self.easting, self.northing = easting, northing
        self.departure = levels - A @ self.coef
        self.range_m, self.prior = range_m, prior

    def _design(self, features: np.ndarray) -> np.ndarray:
        return np.column_stack([np.ones(len(features)), (features - self.mu) / self.sd])

    def predict(self, features: np.ndarray, easting: np.ndarray, northing: np.ndarray) -> np.ndarray:
        """The level at each point (a training site at the very point is ignored: this is for unseen places)."""
        d = np.hypot(easting[:, None] - self.easting[None, :], northing[:, None] - self.northing[None, :])
        w = np.where(d < SAME_PLACE_METRES, 0.0, np.exp(-d / self.range_m))
        return self._design(features) @ self.coef + (w @ self.departure) / (w.sum(axis=1) + self.prior)


class AirQualityModel(FieldEstimator):
    """Our model: a place's long-run level times the hour's shared field, in log space, with a conformal 90%
    interval.

    ``log(y + shift) = level(place) + anomaly(hour, place)``. Fitting: each training site's long-run
    ``level`` is the site term of an additive hour + site fit of its log readings (``site_levels``); the
    hourly ``anomaly`` (log reading minus the site's level) is spatially smooth and is kriged hour by
    hour with a roadside/background drift (``KrigingSiteType`` in log space, so roads get their own rush
    hours). At a place with no monitor the level is predicted by ``SiteLevels`` (roadside or not, plus
    the nearby sites' departures from their type, within ``level_range_m``); at a training monitor its
    own level is used. The estimate is the mean of the log-normal this describes, ``exp(log centre + sd² / 2) -
    shift`` (``log_mean``; with ``log_mean=False`` its median ``exp(log centre) - shift``, which is biased low).
    With ``use_traffic`` the level regression also sees the DfT traffic features
    (``features.STATIC_FEATURES``; off by default: it did not help on Q1 2023, see the docs).

    The std: the log-space variance is the kriging variance of the anomaly plus the mean squared
    leave-one-site-out error of the level regression over the training sites; the interval
    ``exp(log mean ± 1.645 sd) - shift`` gives a half-width, and a split conformal factor by site
    (training sites in ``calibration_folds`` groups, each group predicted by a model fitted without
    it: the 90% quantile of |error| / std) scales it so that ``mean ± 1.645 std`` covers 90% of
    out-of-site readings. ``weather``/``weather_places`` are accepted for the common signature and not used.
    """

    #: changes whenever a fitted model's attributes change, so that caches of older fits are not loaded
    FORMAT = 3

    def __init__(self, weather: Weather | None = None, weather_places: dict | None = None,
                 traffic: Traffic | None = None, shift: float = 2.0, level_ridge: float = 1.0,
                 level_range_m: float = 2000.0, level_prior: float = 1.0, use_traffic: bool = False,
                 log_mean: bool = True, calibration_folds: int = 3, calibration_rows: int | None = 30_000,
                 random_state: int = 0) -> None:
        self.weather = weather
        self.weather_places = weather_places
        self.traffic = traffic
        self.shift = shift
        self.level_ridge = level_ridge
        self.level_range_m = level_range_m
        self.level_prior = level_prior
        self.use_traffic = use_traffic
        self.log_mean = log_mean
        self.calibration_folds = calibration_folds
        self.calibration_rows = calibration_rows
        self.random_state = random_state

    # the parts, shared by the fit and its calibration folds
    def _site_features(self, points: np.ndarray) -> np.ndarray:
        """Features of each (easting, northing, roadside) point for the level regression."""
        if self.use_traffic and self.traffic is not None:
            static = self.static_.at(points)
            return np.nan_to_num(static, nan=np.nanmean(static) if np.isfinite(static).any() else 0.0)
        return points[:, 2:3].astype(float)

    def _fit_parts(self, field: Field) -> tuple[np.ndarray, SiteLevels, KrigingSiteType]:
        logs = np.log(np.maximum(field.values, 0.0) + self.shift)
        levels = site_levels(logs)
        points = np.column_stack([field.easting, field.northing, field.roadside])
        model = SiteLevels(self._site_features(points), field.easting, field.northing, levels,
                           self.level_ridge, self.level_range_m, self.level_prior)
        anomaly = KrigingSiteType()
        anomaly.field_ = Field(field.hours, field.easting, field.northing, field.roadside, logs - levels[None, :])
        anomaly._fit_field()
        return levels, model, anomaly

    def _raw(self, X: np.ndarray, h: np.ndarray, field: Field, levels: np.ndarray, model: SiteLevels,
             anomaly: KrigingSiteType, level_var: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean and uncalibrated symmetric std at rows ``X`` (hour indexes ``h`` into ``anomaly.field_``); a row
        at a location of ``field`` (the sites the levels were learned at) takes that site's own ``levels``."""
        points, inverse = unique_points(X)
        d = field.distances(points[:, 0], points[:, 1])
        nearest = d.argmin(axis=1)
        at_site = d[np.arange(len(points)), nearest] < SAME_PLACE_METRES
        level = model.predict(self._site_features(points), points[:, 0], points[:, 1])
        level = np.where(at_site, levels[nearest], level)
        level_variance = np.where(at_site, 0.0, level_var)
        m, s = anomaly._predict_rows(X, h)
        centre = m + level[inverse]
        sd = np.sqrt(np.nan_to_num(s) ** 2 + level_variance[inverse])
        # the mean of the log-normal, not its median exp(centre): the median of a right-skewed quantity sits
        # below its mean, so the median would be biased low and score a larger squared error
        mean = np.exp(centre + (0.5 * sd ** 2 if self.log_mean else 0.0)) - self.shift
        half = 0.5 * (np.exp(centre + Z90 * sd) - np.exp(centre - Z90 * sd))
        return mean, half / Z90

    def _level_variance(self, field: Field, levels: np.ndarray) -> float:
        """Mean squared leave-one-site-out error of the level regression over these sites."""
        points = np.column_stack([field.easting, field.northing, field.roadside])
        F = self._site_features(points)
        n = len(levels)
        if n < 4:
            return float(np.var(levels)) if n > 1 else 0.0
        errors = []
        for i in range(n):
            keep = np.arange(n) != i
            model = SiteLevels(F[keep], field.easting[keep], field.northing[keep], levels[keep],
                               self.level_ridge, self.level_range_m, self.level_prior)
            errors.append(model.predict(F[i:i + 1], field.easting[i:i + 1], field.northing[i:i + 1])[0] - levels[i])
        return float(np.mean(np.square(errors)))

    def fit(self, X: np.ndarray, y: np.ndarray) -> "AirQualityModel":
        """Learn the site levels, the anomaly correlogram and the calibrated interval from readings ``y``."""
        X, y = _checked(X, y)
        self.field_ = Field.from_training(X, y)
        self.static_ = StaticFeatures(self.traffic if self.use_traffic else None)
        self.training_field_ = self.field_  # where the levels were learned (``field_`` follows set_observations)
        self.levels_, self.level_model_, self.anomaly_ = self._fit_parts(self.field_)
        self.level_variance_ = self._level_variance(self.field_, self.levels_)
        self.conformal_ = self._calibrate(X, y)
        self._current = None
        return self

    def _calibrate(self, X: np.ndarray, y: np.ndarray) -> float:
        """Split conformal by site: the 90% quantile of |error| / std of each site group predicted without it."""
        rng = np.random.default_rng(self.random_state)
        _, site = unique_points(X)
        n_sites = int(site.max()) + 1
        if n_sites < 4:
            return Z90
        groups = rng.permutation(n_sites) % max(2, min(self.calibration_folds, n_sites))
        ratios = []
        for g in np.unique(groups):
            held = groups[site] == g
            if held.all() or not held.any():
                continue
            inner = Field.from_training(X[~held], y[~held])
            levels, model, anomaly = self._fit_parts(inner)
            rows = np.nonzero(held)[0]
            if self.calibration_rows and len(rows) > self.calibration_rows // len(np.unique(groups)):
                rows = np.sort(rng.choice(rows, self.calibration_rows // len(np.unique(groups)), replace=False))
            h = inner.hour_index(X[rows, HOUR])
            rows, h = rows[h >= 0], h[h >= 0]
            if not len(rows):
                continue
            mean, std = self._raw(X[rows], h, inner, levels, model, anomaly,
                                  self._level_variance(inner, levels))
            ok = np.isfinite(mean) & (std > 0)
            ratios.append(np.abs(mean[ok] - y[rows][ok]) / np.maximum(std[ok], MIN_STD))
        if not ratios:
            return Z90
        return float(np.quantile(np.concatenate(ratios), 0.90))

    def _current_parts(self) -> tuple[np.ndarray, "KrigingSiteType"]:
        """The levels of the current readings' locations and the anomaly kriging on them (remembered per field,
        so every hour's ``set_observations`` pays once)."""
        cached = getattr(self, "_current", None)
        if cached is not None and cached[0] is self.field_:
            return cached[1], cached[2]
        field = self.field_
        train = self.training_field_
        points = np.column_stack([field.easting, field.northing, field.roadside])
        d = train.distances(field.easting, field.northing)
        nearest = d.argmin(axis=1)
        known = d[np.arange(len(points)), nearest] < SAME_PLACE_METRES
        predicted = self.level_model_.predict(self._site_features(points), field.easting, field.northing)
        levels = np.where(known, self.levels_[nearest], predicted)
        anomaly = KrigingSiteType()
        anomaly.nugget_, anomaly.range_ = self.anomaly_.nugget_, self.anomaly_.range_
        logs = np.log(np.maximum(field.values, 0.0) + self.shift)
        anomaly.field_ = Field(field.hours, field.easting, field.northing, field.roadside, logs - levels[None, :])
        self._current = (field, levels, anomaly)
        return levels, anomaly

    def _predict_rows(self, X: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, anomaly = self._current_parts()
        # a monitor the model was fitted on keeps its learned level even in an hour it has no reading
        mean, std = self._raw(X, h, self.training_field_, self.levels_, self.level_model_, anomaly,
                              self.level_variance_)
        return mean, std * self.conformal_ / Z90


#: the methods of the evaluation command, by their name there
METHODS = {"model": AirQualityModel, "idw": InverseDistance, "kriging": OrdinaryKriging,
           "kriging-sitetype": KrigingSiteType}
