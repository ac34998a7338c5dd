"""What every estimator sees: the layout of ``X``, the hourly field of training observations, and the
static features of a place with no monitor (site type, distance to the centre, traffic nearby).

``X`` has one row per (hour, point) with the columns of ``COLUMNS``: the hour as hours since
1970-01-01 GMT, easting and northing in British National Grid metres, and 1.0 if the point is
beside a road (a Roadside or Kerbside monitor, or a grid cell the caller marks as such).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .data import Observations, Traffic

HOUR, EASTING, NORTHING, ROADSIDE = 0, 1, 2, 3
COLUMNS = ("hour", "easting", "northing", "roadside")
SAME_PLACE_METRES = 1.0  # closer than this is the same monitor
CENTRE = (530_000.0, 180_500.0)  # Charing Cross, BNG metres
EPOCH = np.datetime64("1970-01-01T00", "h")


def hour_numbers(hours: np.ndarray) -> np.ndarray:
    """GMT hour starts (datetime64) as hours since 1970 (float)."""
    return (hours.astype("datetime64[h]") - EPOCH).astype(np.int64).astype(float)


def design(observations: Observations, sites: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``X`` and ``y`` for every reading of these sites (column indexes; all by default), hour by hour."""
    values = observations.values if sites is None else observations.values[:, sites]
    chosen = np.arange(observations.values.shape[1]) if sites is None else np.asarray(sites)
    h, s = np.nonzero(np.isfinite(values))
    site = chosen[s]
    X = np.column_stack([hour_numbers(observations.hours)[h], observations.sites.easting[site],
                         observations.sites.northing[site], observations.sites.roadside[site]])
    return X, values[h, s]


def query(observations: Observations, site: int) -> np.ndarray:
    """``X`` for one site at every hour of ``observations`` (where it has a reading or not)."""
    n = len(observations.hours)
    return np.column_stack([hour_numbers(observations.hours), np.full(n, observations.sites.easting[site]),
                            np.full(n, observations.sites.northing[site]),
                            np.full(n, observations.sites.roadside[site])])


@dataclass
class Field:
    """Training observations as a dense matrix: ``values[h, l]`` at hour ``hours[h]`` and location ``l``."""

    hours: np.ndarray  # float hours since 1970, sorted unique
    easting: np.ndarray
    northing: np.ndarray
    roadside: np.ndarray
    values: np.ndarray  # NaN = no reading

    @classmethod
    def from_training(cls, X: np.ndarray, y: np.ndarray) -> "Field":
        """Group rows of ``X``/``y`` by hour and by location (points within a metre are one location)."""
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        hours, h = np.unique(X[:, HOUR], return_inverse=True)
        keys = np.round(X[:, [EASTING, NORTHING]] / SAME_PLACE_METRES).astype(np.int64)
        _, first, loc = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        loc = loc.ravel()
        values = np.full((len(hours), len(first)), np.nan)
        values[h, loc] = y
        return cls(hours, X[first, EASTING], X[first, NORTHING], X[first, ROADSIDE], values)

    def hour_index(self, hours: np.ndarray) -> np.ndarray:
        """Row of each hour in the field, or -1 where the training data have no such hour."""
        i = np.searchsorted(self.hours, hours)
        i = np.minimum(i, max(len(self.hours) - 1, 0))
        return np.where((len(self.hours) > 0) & (self.hours[i] == hours), i, -1)

    def distances(self, easting: np.ndarray, northing: np.ndarray) -> np.ndarray:
        """Distance (m) from each point to each training location."""
        return np.hypot(easting[:, None] - self.easting[None, :], northing[:, None] - self.northing[None, :])


def unique_points(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (easting, northing, roadside) of ``X`` and each row's index into them."""
    keys = np.round(X[:, [EASTING, NORTHING]] / SAME_PLACE_METRES).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return X[first][:, [EASTING, NORTHING, ROADSIDE]], inverse.ravel()


# --- the features of our model ------------------------------------------------------------------

TRAFFIC_RADII = (100.0, 300.0, 1000.0)
STATIC_FEATURES = ("roadside", "centre_km") + tuple(f"log_flow_{int(r)}m" for r in TRAFFIC_RADII) + (
    "log_hgv_300m", "major_road_m", "log_nearest_flow")


class StaticFeatures:
    """Features of a place that do not change by the hour: site type, distance to the centre, traffic nearby."""

    def __init__(self, traffic: Traffic | None) -> None:
        self.traffic = traffic
        self._last: tuple[int, np.ndarray] | None = None
        self._tree = cKDTree(np.column_stack([traffic.easting, traffic.northing])) if traffic is not None else None
        if traffic is not None:
            major = traffic.major
            self._major_tree = cKDTree(np.column_stack([traffic.easting[major], traffic.northing[major]])) \
                if major.any() else None

    def at(self, points: np.ndarray) -> np.ndarray:
        """Static features for each (easting, northing, roadside) row of ``points`` (the last set is remembered,
        so a fixed grid pays for its traffic look-ups once, not every hour)."""
        key = hash(points.tobytes())
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        out = self._compute(points)
        self._last = (key, out)
        return out

    def _compute(self, points: np.ndarray) -> np.ndarray:
        n = len(points)
        out = np.full((n, len(STATIC_FEATURES)), np.nan)
        out[:, 0] = points[:, 2]
        out[:, 1] = np.hypot(points[:, 0] - CENTRE[0], points[:, 1] - CENTRE[1]) / 1000
        if self._tree is None or self.traffic is None:
            return out
        xy = points[:, :2]
        flows = self.traffic.motor_vehicles
        for k, radius in enumerate(TRAFFIC_RADII):
            total = np.zeros(n)
            for i, found in enumerate(self._tree.query_ball_point(xy, radius)):
                if found:
                    total[i] = flows[found].sum()
            out[:, 2 + k] = np.log1p(total)
        hgv = np.zeros(n)
        for i, found in enumerate(self._tree.query_ball_point(xy, 300.0)):
            if found:
                hgv[i] = self.traffic.hgvs[found].sum()
        out[:, 2 + len(TRAFFIC_RADII)] = np.log1p(hgv)
        if self._major_tree is not None:
            out[:, 3 + len(TRAFFIC_RADII)] = np.minimum(self._major_tree.query(xy)[0], 5000.0)
        _, nearest = self._tree.query(xy)
        out[:, 4 + len(TRAFFIC_RADII)] = np.log1p(flows[nearest])
        return out
