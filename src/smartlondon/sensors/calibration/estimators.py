"""Calibration models for low-cost sensors: estimators with ``fit`` / ``predict``, as in scikit-learn.

A model learns how a low-cost sensor's raw reading relates to a co-located reference monitor's
reading, given the air's relative humidity and temperature, and then predicts the reference value
from new raw readings. Every model:

* ``fit(pairs)`` learns its parameters from :class:`Pairs` and returns itself;
* ``predict(raw, humidity, temperature)`` gives calibrated values (NumPy arrays in and out; a
  missing covariate, NaN, is replaced by the mean it had in the fit);
* ``params`` (a JSON-able dict) and ``from_params(params)`` store and restore it;
* ``fit_stats`` says how well it did: n, and R², RMSE, MAE, bias of the raw readings (``before``)
  and of the calibrated ones (``after``) against the reference;
* ``kind`` names the model and ``code_version`` the version of its code.

``KINDS`` maps each kind to its class: add a better model by subclassing :class:`CalibrationModel`
and registering it there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ...core.errors import BadRequest

COVARIATES = ("humidity", "temperature")


@dataclass
class Pairs:
    """Co-located readings: raw low-cost values with the reference values and covariates of the same hours."""

    raw: np.ndarray
    reference: np.ndarray
    humidity: np.ndarray  # NaN where unknown
    temperature: np.ndarray  # NaN where unknown
    times: list[Any] = field(default_factory=list)

    @classmethod
    def of(cls, raw: Any, reference: Any, humidity: Any = None, temperature: Any = None,
           times: list[Any] | None = None) -> "Pairs":
        """Pairs from sequences (a covariate given as None is unknown throughout)."""
        r = np.asarray(raw, dtype=float)
        nan = np.full(r.shape, np.nan)
        return cls(r, np.asarray(reference, dtype=float),
                   nan.copy() if humidity is None else np.asarray(humidity, dtype=float),
                   nan.copy() if temperature is None else np.asarray(temperature, dtype=float), list(times or []))

    def __len__(self) -> int:
        return int(self.raw.shape[0])


def agreement(predicted: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """R², RMSE, MAE and mean bias (predicted minus reference) of one series against the reference."""
    error = predicted - reference
    total = float(np.sum((reference - reference.mean()) ** 2))
    r2 = round(1.0 - float(np.sum(error ** 2)) / total, 4) if total > 0 else None  # None: the reference never varied
    return {"r2": r2, "rmse": round(float(np.sqrt(np.mean(error ** 2))), 4),
            "mae": round(float(np.mean(np.abs(error))), 4), "bias": round(float(np.mean(error)), 4)}


class CalibrationModel(ABC):
    """The interface of every calibration model (see the module docstring)."""

    kind: ClassVar[str] = ""
    code_version: ClassVar[str] = "1"
    description: ClassVar[str] = ""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.fit_stats: dict[str, Any] = {}

    @abstractmethod
    def fit(self, pairs: Pairs) -> "CalibrationModel":
        """Learn the parameters from co-located pairs; returns the model."""

    @abstractmethod
    def predict(self, raw: Any, humidity: Any = None, temperature: Any = None) -> np.ndarray:
        """Calibrated values of raw readings (NaN covariates are taken at their fit mean)."""

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "CalibrationModel":
        """A fitted model from stored ``params``."""
        model = cls()
        model.params = dict(params)
        return model

    def _stats(self, pairs: Pairs) -> dict[str, Any]:
        after = self.predict(pairs.raw, pairs.humidity, pairs.temperature)
        return {"n": len(pairs), "before": agreement(pairs.raw, pairs.reference),
                "after": agreement(after, pairs.reference)}


class LinearHumidityTemperature(CalibrationModel):
    """reference ≈ a + b·raw + c·RH + d·T, by ordinary least squares.

    A covariate with no known value in the fit (the sensor has no humidity stream, say) is left
    out of the model (its coefficient is 0, and ``terms`` lists what was used).
    """

    kind = "linear-humidity-temperature"
    description = "reference ≈ a + b·raw + c·RH + d·T (least squares)"

    def _design(self, raw: np.ndarray, humidity: np.ndarray, temperature: np.ndarray, terms: list[str]) -> np.ndarray:
        means = self.params.get("means", {})
        columns = [np.ones_like(raw), raw]
        for name, values in (("humidity", humidity), ("temperature", temperature)):
            if name in terms:
                columns.append(np.where(np.isnan(values), means.get(name, 0.0), values))
        return np.column_stack(columns)

    def _terms(self, pairs: Pairs) -> list[str]:
        terms = ["intercept", "raw"]
        for name in COVARIATES:
            values = getattr(pairs, name)
            known = values[~np.isnan(values)]
            if known.size >= max(3, len(pairs) // 2) and float(np.ptp(known)) > 0:
                terms.append(name)
        return terms

    def _check(self, pairs: Pairs, terms: list[str]) -> None:
        if len(pairs) < len(terms) + 2:
            raise BadRequest(f"Too few co-located pairs to fit a calibration: {len(pairs)} (at least "
                             f"{len(terms) + 2} are needed). Choose a longer window where both sensors reported.")
        if float(np.ptp(pairs.raw)) == 0:
            raise BadRequest("The low-cost sensor's readings do not vary over the window, so no calibration "
                             "can be fitted. Choose another window.")

    def _solve(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        if weights is None:
            coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        else:
            w = np.sqrt(weights)
            coef, *_ = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)
        return coef

    def fit(self, pairs: Pairs) -> "LinearHumidityTemperature":
        """Least squares over the pairs."""
        terms = self._terms(pairs)
        self._check(pairs, terms)
        self.params = {"terms": terms, "means": {n: round(float(np.nanmean(getattr(pairs, n))), 4)
                                                 for n in terms if n in COVARIATES}}
        x = self._design(pairs.raw, pairs.humidity, pairs.temperature, terms)
        coef = self._fit_coefficients(x, pairs.reference)
        self.params["coefficients"] = {name: 0.0 for name in ("intercept", "raw", *COVARIATES)}
        for name, value in zip(terms, coef):
            self.params["coefficients"][name] = round(float(value), 6)
        self.fit_stats = self._stats(pairs)
        return self

    def _fit_coefficients(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self._solve(x, y)

    def predict(self, raw: Any, humidity: Any = None, temperature: Any = None) -> np.ndarray:
        """a + b·raw + c·RH + d·T."""
        r = np.atleast_1d(np.asarray(raw, dtype=float))
        nan = np.full(r.shape, np.nan)
        h = nan if humidity is None else np.broadcast_to(np.asarray(humidity, dtype=float), r.shape)
        t = nan if temperature is None else np.broadcast_to(np.asarray(temperature, dtype=float), r.shape)
        terms = self.params["terms"]
        coefficients = self.params["coefficients"]
        x = self._design(r, h, t, terms)
        return x @ np.array([coefficients[name] for name in terms])


class RobustLinearHumidityTemperature(LinearHumidityTemperature):
    """The same terms, fitted with Huber weights (iteratively reweighted least squares).

    Low-cost sensors glitch: a few wild readings pull ordinary least squares off; the Huber loss
    (k = 1.345 robust standard deviations) gives them less weight.
    """

    kind = "robust-linear-humidity-temperature"
    description = "reference ≈ a + b·raw + c·RH + d·T (Huber-weighted least squares)"

    def _fit_coefficients(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        coef = self._solve(x, y)
        for _ in range(50):
            residual = y - x @ coef
            scale = float(np.median(np.abs(residual - np.median(residual)))) / 0.6745 or 1e-9
            k = 1.345 * scale
            weights = np.where(np.abs(residual) <= k, 1.0, k / np.maximum(np.abs(residual), 1e-12))
            new = self._solve(x, y, weights)
            if np.allclose(new, coef, rtol=1e-7, atol=1e-9):
                return new
            coef = new
        return coef


KINDS: dict[str, type[CalibrationModel]] = {
    cls.kind: cls for cls in (LinearHumidityTemperature, RobustLinearHumidityTemperature)}
DEFAULT_KIND = LinearHumidityTemperature.kind


def model_of(kind: str) -> type[CalibrationModel]:
    """The model class of a kind; 400 naming the kinds if unknown."""
    if kind not in KINDS:
        raise BadRequest(f"Unknown calibration model kind {kind!r}; use one of {', '.join(KINDS)}.")
    return KINDS[kind]
