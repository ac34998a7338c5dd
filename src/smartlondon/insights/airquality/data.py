"""Readers of the air quality inputs: LAQN hourly observations (long format) and sites, ERA5 weather by
site, DfT traffic counts; every reader checks its columns and says what is wrong with a file.

Everything is read with DuckDB (no pandas) into numpy arrays: observations become a dense matrix of
hours x sites (NaN where there is no reading), the shape every estimator and the evaluation work on.
Coordinates are British National Grid metres (EPSG:27700).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import duckdb
import numpy as np

from ...core.errors import BadRequest

BUNDLED = Path(__file__).resolve().parents[1] / "data"
BUNDLED_WEATHER = BUNDLED / "era5-weather-by-site-2023Q1.csv.gz"
BUNDLED_TRAFFIC = BUNDLED / "dft-aadf-london-2022-2024.csv.gz"
BUNDLED_COUNT_POINTS = BUNDLED / "dft-count-points-london.csv.gz"

#: the species the estimators predict: our name -> LAQN species code
SPECIES = {"NO2": "NO2", "PM25": "PM25", "PM10": "PM10"}
SPECIES_ALIASES = {"PM2.5": "PM25", "PM2_5": "PM25"}
#: site types with a road next to the monitor (the rest are background)
ROAD_TYPES = frozenset({"Roadside", "Kerbside"})
SITE_COLUMNS = ("@SiteCode", "@SiteType", "@Latitude", "@Longitude")
OBSERVATION_COLUMNS = ("site_code", "species_code", "measurement_date_gmt", "value")
WEATHER_COLUMNS = ("site_code", "time", "temperature_2m", "precipitation", "wind_speed_10m", "wind_direction_10m")
TRAFFIC_COLUMNS = ("count_point_id", "year", "easting", "northing", "road_type", "all_motor_vehicles", "all_hgvs")
WEATHER_VARIABLES = ("temperature_2m", "precipitation", "wind_speed_10m", "wind_direction_10m")


@dataclass(frozen=True)
class Sites:
    """Monitoring sites: code, site type and position (BNG metres)."""

    codes: np.ndarray
    site_types: np.ndarray
    easting: np.ndarray
    northing: np.ndarray

    @property
    def roadside(self) -> np.ndarray:
        """1.0 where the site is Roadside or Kerbside, else 0.0."""
        return np.isin(self.site_types, list(ROAD_TYPES)).astype(float)

    def subset(self, codes: np.ndarray) -> "Sites":
        """These sites, in the order of ``codes`` (each must be present)."""
        index = {c: i for i, c in enumerate(self.codes)}
        rows = np.array([index[c] for c in codes], dtype=int)
        return Sites(self.codes[rows], self.site_types[rows], self.easting[rows], self.northing[rows])


@dataclass(frozen=True)
class Observations:
    """One species' hourly values: ``values[h, s]`` at ``hours[h]`` (GMT hour start) and site ``sites.codes[s]``."""

    species: str
    hours: np.ndarray  # datetime64[h], sorted, unique
    sites: Sites
    values: np.ndarray  # float, NaN = no reading

    @property
    def n_readings(self) -> int:
        """How many hourly values there are."""
        return int(np.isfinite(self.values).sum())

    def with_hours(self, rows: np.ndarray) -> "Observations":
        """Only these hours (row indexes or a boolean mask)."""
        return Observations(self.species, self.hours[rows], self.sites, self.values[rows])


@dataclass(frozen=True)
class Weather:
    """Hourly weather at named sites: ``values[h, s, v]`` for ``WEATHER_VARIABLES[v]``."""

    hours: np.ndarray
    codes: np.ndarray
    values: np.ndarray

    def at(self, hours: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Weather for each (hour, site code) pair; NaN where the file does not cover it."""
        out = np.full((len(hours), len(WEATHER_VARIABLES)), np.nan)
        h = np.searchsorted(self.hours, hours)
        h_ok = (h < len(self.hours)) & (self.hours[np.minimum(h, len(self.hours) - 1)] == hours)
        index = {c: i for i, c in enumerate(self.codes)}
        s = np.array([index.get(c, -1) for c in codes], dtype=int)
        ok = h_ok & (s >= 0)
        out[ok] = self.values[h[ok], s[ok]]
        return out


@dataclass(frozen=True)
class Traffic:
    """DfT count points: position (BNG metres), annual average daily flows, and whether on a major road."""

    easting: np.ndarray
    northing: np.ndarray
    motor_vehicles: np.ndarray
    hgvs: np.ndarray
    major: np.ndarray


def normalise_species(species: str) -> str:
    """The LAQN code of ``species`` (NO2, PM25 or PM10; PM2.5 is accepted), or a BadRequest."""
    code = SPECIES_ALIASES.get(species.upper(), species.upper())
    if code not in SPECIES:
        raise BadRequest(f"Unknown species {species!r}: use one of {', '.join(SPECIES)} (PM2.5 is PM25).")
    return code


def _columns(con: duckdb.DuckDBPyConnection, path: Path, required: tuple[str, ...], what: str) -> None:
    if not Path(path).is_file():
        raise BadRequest(f"The {what} file {path} does not exist.")
    try:
        found = [r[0] for r in con.execute("DESCRIBE SELECT * FROM read_csv(?, header = true, all_varchar = true)",
                                            [str(path)]).fetchall()]
    except duckdb.Error as exc:
        raise BadRequest(f"The {what} file {path} is not a readable CSV file: {str(exc).splitlines()[0]}") from exc
    missing = [c for c in required if c not in found]
    if missing:
        raise BadRequest(f"The {what} file {path} lacks the column(s) {', '.join(missing)}; it needs "
                         f"{', '.join(required)} (found {', '.join(found[:12])}).")


def _to_bng(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from pyproj import Transformer

    transformer = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)
    easting, northing = transformer.transform(lon, lat)
    return np.asarray(easting, dtype=float), np.asarray(northing, dtype=float)


def read_sites(path: Path) -> Sites:
    """The sites with a position, from a file in the format of LAQN's site list (``laqn-sites.csv``)."""
    con = duckdb.connect()
    _columns(con, path, SITE_COLUMNS, "sites")
    rows = con.execute(
        'SELECT "@SiteCode", "@SiteType", TRY_CAST("@Latitude" AS DOUBLE), TRY_CAST("@Longitude" AS DOUBLE) '
        "FROM read_csv(?, header = true, all_varchar = true) "
        'WHERE TRY_CAST("@Latitude" AS DOUBLE) IS NOT NULL AND TRY_CAST("@Longitude" AS DOUBLE) IS NOT NULL '
        'AND "@SiteCode" IS NOT NULL ORDER BY "@SiteCode"', [str(path)]).fetchall()
    if not rows:
        raise BadRequest(f"The sites file {path} has no site with a latitude and longitude.")
    seen: dict[str, tuple] = {}
    for row in rows:
        seen.setdefault(row[0], row)
    rows = list(seen.values())
    lat = np.array([r[2] for r in rows])
    lon = np.array([r[3] for r in rows])
    if not (np.all(np.abs(lat) <= 90) and np.all(np.abs(lon) <= 180)):
        raise BadRequest(f"The sites file {path} has @Latitude/@Longitude values that are not degrees.")
    easting, northing = _to_bng(lat, lon)
    return Sites(np.array([r[0] for r in rows], dtype=object), np.array([r[1] or "" for r in rows], dtype=object),
                 easting, northing)


def read_observations(path: Path, species: str, sites: Sites) -> Observations:
    """One species' hourly values at the sites that are in ``sites`` (LAQN long format, ``.csv`` or ``.csv.gz``)."""
    code = normalise_species(species)
    con = duckdb.connect()
    _columns(con, path, OBSERVATION_COLUMNS, "observations")
    try:
        rows = con.execute(
            "SELECT site_code AS code, TRY_CAST(measurement_date_gmt AS TIMESTAMP) AS stamp, "
            "TRY_CAST(value AS DOUBLE) AS value FROM read_csv(?, header = true, all_varchar = true) "
            "WHERE upper(species_code) = ? AND TRY_CAST(value AS DOUBLE) IS NOT NULL "
            "AND TRY_CAST(measurement_date_gmt AS TIMESTAMP) IS NOT NULL", [str(path), code]).fetchnumpy()
    except duckdb.Error as exc:
        raise BadRequest(f"The observations file {path} could not be read: {str(exc).splitlines()[0]}") from exc
    if len(rows["code"]) == 0:
        raise BadRequest(f"The observations file {path} has no {code} readings.")
    site_codes = np.asarray(rows["code"], dtype=object)
    known = np.isin(site_codes, sites.codes)
    if not known.any():
        raise BadRequest(f"None of the sites with {code} readings in {path} is in the sites file "
                         f"(e.g. {', '.join(sorted(set(site_codes[:1000]))[:5])}): no overlapping sites.")
    site_codes = site_codes[known]
    hours_all = np.asarray(rows["stamp"]).astype("datetime64[h]")[known]
    values = np.asarray(rows["value"], dtype=float)[known]
    hours, h_index = np.unique(hours_all, return_inverse=True)
    codes, s_index = np.unique(site_codes.astype(str), return_inverse=True)
    matrix = np.full((len(hours), len(codes)), np.nan)
    matrix[h_index, s_index] = values
    matrix[matrix < 0] = np.nan  # negative concentrations are instrument noise below zero, not readings
    return Observations(code, hours, sites.subset(codes.astype(object)), matrix)


def read_weather(path: Path | None = None) -> Weather:
    """Hourly ERA5 weather by LAQN site (the bundled Q1 2023 file unless ``path`` is given)."""
    path = Path(path or BUNDLED_WEATHER)
    return _read_weather_cached(str(path.resolve()))


@lru_cache(maxsize=4)
def _read_weather_cached(path: str) -> Weather:
    con = duckdb.connect()
    _columns(con, Path(path), WEATHER_COLUMNS, "weather")
    cols = ", ".join(f"TRY_CAST({v} AS DOUBLE)" for v in WEATHER_VARIABLES)
    data = con.execute(f"SELECT site_code, TRY_CAST(time AS TIMESTAMP), {cols} "
                       "FROM read_csv(?, header = true, all_varchar = true) "
                       "WHERE TRY_CAST(time AS TIMESTAMP) IS NOT NULL", [path]).fetchnumpy()
    keys = list(data.keys())
    codes_all = np.asarray(data[keys[0]], dtype=object).astype(str)
    hours_all = np.asarray(data[keys[1]]).astype("datetime64[h]")
    hours, h_index = np.unique(hours_all, return_inverse=True)
    codes, s_index = np.unique(codes_all, return_inverse=True)
    values = np.full((len(hours), len(codes), len(WEATHER_VARIABLES)), np.nan)
    for v, key in enumerate(keys[2:]):
        values[h_index, s_index, v] = np.asarray(data[key], dtype=float)
    return Weather(hours, codes.astype(object), values)


def read_traffic(aadf: Path | None = None, count_points: Path | None = None) -> Traffic:
    """DfT traffic flows by count point, averaged over the years in the file (bundled London files by default)."""
    return _read_traffic_cached(str(Path(aadf or BUNDLED_TRAFFIC).resolve()),
                                str(Path(count_points or BUNDLED_COUNT_POINTS).resolve()))


@lru_cache(maxsize=4)
def _read_traffic_cached(aadf: str, count_points: str) -> Traffic:
    con = duckdb.connect()
    _columns(con, Path(aadf), TRAFFIC_COLUMNS, "traffic (DfT AADF)")
    _columns(con, Path(count_points), ("count_point_id", "easting", "northing"), "count points")
    rows = con.execute(
        "WITH flows AS (SELECT count_point_id AS id, avg(TRY_CAST(all_motor_vehicles AS DOUBLE)) AS mv, "
        "avg(TRY_CAST(all_hgvs AS DOUBLE)) AS hgv, any_value(road_type) AS road_type, "
        "any_value(TRY_CAST(easting AS DOUBLE)) AS e, any_value(TRY_CAST(northing AS DOUBLE)) AS n "
        "FROM read_csv(?, header = true, all_varchar = true) GROUP BY count_point_id), "
        "points AS (SELECT count_point_id AS id, any_value(TRY_CAST(easting AS DOUBLE)) AS e, "
        "any_value(TRY_CAST(northing AS DOUBLE)) AS n FROM read_csv(?, header = true, all_varchar = true) "
        "GROUP BY count_point_id) "
        "SELECT coalesce(p.e, f.e), coalesce(p.n, f.n), f.mv, coalesce(f.hgv, 0), f.road_type = 'Major' "
        "FROM flows f LEFT JOIN points p USING (id) WHERE f.mv IS NOT NULL "
        "AND coalesce(p.e, f.e) IS NOT NULL ORDER BY f.id", [aadf, count_points]).fetchall()
    if not rows:
        raise BadRequest(f"The traffic file {aadf} has no count point with a flow and a position.")
    arr = np.array([[r[0], r[1], r[2], r[3], 1.0 if r[4] else 0.0] for r in rows], dtype=float)
    return Traffic(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4].astype(bool))
