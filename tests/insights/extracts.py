"""Small real extracts of the LAQN data (3 days, 15 sites) for the air quality tests, cut from /work/shared/data."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tests.conftest import SHARED_DATA

AIR = SHARED_DATA / "air-quality"
LAQN = AIR / "laqn-hourly-2023Q1.csv.gz"
SITES = AIR / "laqn-sites.csv"
#: 18 sites of every type, spread over London, most measuring NO2, PM2.5 and PM10
EXTRACT_SITES = ("BL0", "BQ7", "BT4", "BX2", "EN5", "GN3", "GN6", "GR9", "HK6", "HV1", "KC1", "LB4", "LW2", "MY1",
                 "SK6", "SK8", "TL6", "WM0")


def write_extract(directory: Path, days: int = 3, sites: tuple[str, ...] = EXTRACT_SITES,
                  start: str = "2023-01-09") -> Path:
    """Write the readings of ``sites`` for ``days`` days from ``start`` (every species) as a .csv.gz file."""
    path = directory / "laqn-extract.csv.gz"
    codes = ", ".join(f"'{s}'" for s in sites)
    duckdb.connect().execute(
        f"COPY (SELECT * FROM read_csv('{LAQN}', header = true, all_varchar = true) WHERE site_code IN ({codes}) "
        f"AND measurement_date_gmt >= '{start}' AND CAST(measurement_date_gmt AS TIMESTAMP) < "
        f"TIMESTAMP '{start}' + INTERVAL {days} DAY) TO '{path}' (HEADER, COMPRESSION gzip)")
    return path
