"""What every estimator sees: the layout of ``X``, the hourly field of training observations, and the
features of a place with no monitor (the same hour at other sites, traffic nearby, weather, time).

``X`` has one row per (hour, point) with the columns of ``COLUMNS``: the hour as hours since
1970-01-01 GMT, easting and northing in British National Grid metres, and 1.0 if the point is
beside a road (a Roadside or Kerbside monitor, or a grid cell the caller marks as such).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .data import Observations, Traffic, Weather, WEATHER_VARIABLES

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
FIELD_FEATURES = ("idw_background", "idw_road", "idw_all", "nearest_background", "nearest_background_km",
                  "nearest_site_km", "mean_background", "mean_road", "median_all", "spread_all", "idw_anomaly",
                  "baseline")
STATIC_FEATURES = ("roadside", "centre_km") + tuple(f"log_flow_{int(r)}m" for r in TRAFFIC_RADII) + (
    "log_hgv_300m", "major_road_m", "log_nearest_flow")
WEATHER_FEATURES = ("temperature", "precipitation", "wind_speed", "wind_east", "wind_north")
TIME_FEATURES = ("hour_of_day", "day_of_week")
FEATURES = FIELD_FEATURES + STATIC_FEATURES + WEATHER_FEATURES + TIME_FEATURES


def _idw(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean over locations per (row), ignoring NaN values: values[r, l], weights[r, l]."""
    ok = np.isfinite(values)
    w = np.where(ok, weights, 0.0)
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (np.where(ok, values, 0.0) * w).sum(axis=1) / total, np.nan)


def _nanstat(values: np.ndarray, mask: np.ndarray, fn) -> np.ndarray:  # type: ignore[no-untyped-def]
    chosen = np.where(mask[None, :], values, np.nan)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(chosen, axis=1)


def field_features(field: Field, X: np.ndarray, exclude_same_place: bool = True) -> np.ndarray:
    """The same hour at the other monitors, for each row of ``X`` (a monitor at the row's own place is ignored)."""
    out = np.full((len(X), len(FIELD_FEATURES)), np.nan)
    h = field.hour_index(X[:, HOUR])
    points, inverse = unique_points(X)
    dist = field.distances(points[:, 0], points[:, 1])  # unique points x locations
    if exclude_same_place:
        dist = np.where(dist < SAME_PLACE_METRES, np.inf, dist)
    weight = 1.0 / np.maximum(dist, 50.0) ** 2  # inverse distance squared, capped within 50 m
    road = field.roadside > 0.5
    has = h >= 0
    rows = np.nonzero(has)[0]
    chunk = 20_000
    for start in range(0, len(rows), chunk):
        r = rows[start:start + chunk]
        v = field.values[h[r]]
        if exclude_same_place:
            v = np.where(np.isfinite(dist[inverse[r]]), v, np.nan)
        w = weight[inverse[r]]
        d = dist[inverse[r]]
        out[r, 0] = _idw(np.where(road[None, :], np.nan, v), w)
        out[r, 1] = _idw(np.where(road[None, :], v, np.nan), w)
        out[r, 2] = _idw(v, w)
        bg_d = np.where(np.isfinite(v) & ~road[None, :], d, np.inf)
        nearest = bg_d.argmin(axis=1)
        near_ok = np.isfinite(bg_d[np.arange(len(r)), nearest])
        out[r, 3] = np.where(near_ok, v[np.arange(len(r)), nearest], np.nan)
        out[r, 4] = np.where(near_ok, bg_d[np.arange(len(r)), nearest] / 1000, np.nan)
        all_d = np.where(np.isfinite(v), d, np.inf).min(axis=1)
        out[r, 5] = np.where(np.isfinite(all_d), all_d / 1000, np.nan)
        out[r, 6] = _nanstat(v, ~road, np.nanmean)
        out[r, 7] = _nanstat(v, road, np.nanmean)
        out[r, 8] = _nanstat(v, np.ones_like(road), np.nanmedian)
        out[r, 9] = _nanstat(v, np.ones_like(road), np.nanstd)
        # the hour's level for the site's type, plus the inverse-distance weighted departures of the other
        # sites from their own type's level (a cheap regression kriging); the model learns corrections to it
        level = np.where(road[None, :], out[r, 7][:, None], out[r, 6][:, None])
        out[r, 10] = _idw(v - level, w)
        own_level = np.where(X[r, ROADSIDE] > 0.5, out[r, 7], out[r, 6])
        own_level = np.where(np.isfinite(own_level), own_level, out[r, 2])
        out[r, 11] = own_level + np.nan_to_num(out[r, 10])
    return np.round(out, 6)  # the same value whichever other locations the sums ran over (no last-bit noise)


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


class WeatherFeatures:
    """Hourly weather at a point: that of the nearest place the weather file covers."""

    def __init__(self, weather: Weather | None, places: dict[str, tuple[float, float]]) -> None:
        self.weather = weather
        codes = [c for c in (weather.codes if weather is not None else []) if c in places]
        self.codes = np.array(codes, dtype=object)
        self._tree = cKDTree(np.array([places[c] for c in codes])) if codes else None

    def at(self, X: np.ndarray) -> np.ndarray:
        """Temperature, precipitation, wind speed and wind vector for each row of ``X``; NaN where not covered."""
        out = np.full((len(X), len(WEATHER_FEATURES)), np.nan)
        if self._tree is None or self.weather is None:
            return out
        points, inverse = unique_points(X)
        _, nearest = self._tree.query(points[:, :2])
        hours = (EPOCH + X[:, HOUR].astype(np.int64).astype("timedelta64[h]"))
        w = self.weather.at(hours, self.codes[nearest[inverse]])
        out[:, 0] = w[:, WEATHER_VARIABLES.index("temperature_2m")]
        out[:, 1] = w[:, WEATHER_VARIABLES.index("precipitation")]
        speed = w[:, WEATHER_VARIABLES.index("wind_speed_10m")]
        direction = np.radians(w[:, WEATHER_VARIABLES.index("wind_direction_10m")])
        out[:, 2] = speed
        out[:, 3] = -speed * np.sin(direction)  # wind blowing towards the east (direction is where it comes from)
        out[:, 4] = -speed * np.cos(direction)
        return out


def time_features(X: np.ndarray) -> np.ndarray:
    """Hour of day (GMT) and day of week (Monday 0) of each row."""
    hours = X[:, HOUR].astype(np.int64)
    return np.column_stack([hours % 24, ((hours // 24) + 3) % 7])  # 1970-01-01 was a Thursday
