"""The UK Daily Air Quality Index (DAQI): the index (1-10) and band of a concentration, and what it means.

The DAQI was recommended by the Committee on the Medical Effects of Air Pollutants (COMEAP, 2011) and is
used by Defra's UK-AIR. Each pollutant has its own averaging time: nitrogen dioxide uses the hourly
mean, PM2.5 and PM10 the 24-hour running mean. The index of a period is that of its worst pollutant.
The thresholds below are the upper bounds (µg/m³) of indexes 1 to 9; anything above the last is 10.
The advice is written in our own words after Defra's published guidance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: upper bounds (µg/m³, inclusive) of indexes 1..9 for each species, as the DAQI tables give them
THRESHOLDS: dict[str, tuple[float, ...]] = {
    "NO2": (67, 134, 200, 267, 334, 400, 467, 534, 600),
    "PM25": (11, 23, 35, 41, 47, 53, 58, 64, 70),
    "PM10": (16, 33, 50, 58, 66, 75, 83, 91, 100),
}
#: the averaging period each species' index is defined on
AVERAGING = {"NO2": "hourly mean", "PM25": "24-hour running mean", "PM10": "24-hour running mean"}
#: hours in the averaging period of each species
AVERAGING_HOURS = {"NO2": 1, "PM25": 24, "PM10": 24}


@dataclass(frozen=True)
class Band:
    """One of the four DAQI bands."""

    name: str
    indexes: tuple[int, ...]
    colour: str  # hex colour (the DAQI's conventional band colour), for maps and legends
    general: str  # advice for the general population
    at_risk: str  # advice for adults and children with lung or heart problems, and older people


BANDS: tuple[Band, ...] = (
    Band("Low", (1, 2, 3), "#00b050",
         "Enjoy your usual outdoor activities.",
         "Enjoy your usual outdoor activities."),
    Band("Moderate", (4, 5, 6), "#ffbf00",
         "Enjoy your usual outdoor activities.",
         "If you have a lung or heart condition, or you are older, think about doing less strenuous "
         "exercise outdoors if you notice symptoms."),
    Band("High", (7, 8, 9), "#e60000",
         "If you notice sore eyes, a cough or a sore throat, think about doing less strenuous activity "
         "outdoors.",
         "If you have a lung or heart condition, or you are older, do less strenuous physical activity, "
         "especially outdoors, and use your reliever inhaler more often if you have asthma."),
    Band("Very High", (10,), "#7030a0",
         "Do less strenuous physical activity outdoors, especially if you notice a cough, sore eyes or "
         "a sore throat.",
         "If you have a lung or heart condition, or you are older, avoid strenuous physical activity; "
         "if you have asthma you may need your reliever inhaler more often."),
)


def species_key(species: str) -> str:
    """``NO2``, ``PM25`` or ``PM10`` from a spelling such as ``pm2.5`` or ``PM2.5``."""
    key = species.upper().replace(".", "").replace("_", "")
    if key not in THRESHOLDS:
        raise ValueError(f"no DAQI for {species!r}: use NO2, PM2.5 or PM10")
    return key


def index(species: str, concentration: float | np.ndarray) -> int | np.ndarray:
    """The DAQI index (1-10) of a concentration (µg/m³, averaged as ``AVERAGING`` says); 0 where NaN.

    Concentrations are rounded to whole µg/m³ before banding, as the published tables are in whole numbers.
    """
    bounds = np.asarray(THRESHOLDS[species_key(species)], dtype=float)
    values = np.asarray(concentration, dtype=float)
    result = np.where(np.isfinite(values), np.searchsorted(bounds, np.round(np.maximum(values, 0)), side="left") + 1, 0)
    return int(result) if result.ndim == 0 else result


def band(index_value: int) -> Band:
    """The band of a DAQI index (1-10)."""
    for candidate in BANDS:
        if index_value in candidate.indexes:
            return candidate
    raise ValueError(f"a DAQI index is 1 to 10, not {index_value!r}")


def describe(species: str, concentration: float) -> dict[str, object]:
    """Index, band name, colour and advice of one concentration (for pages and JSON)."""
    value = index(species, concentration)
    if value == 0:
        return {"index": None, "band": None, "colour": None, "general": None, "at_risk": None}
    chosen = band(int(value))
    return {"index": int(value), "band": chosen.name, "colour": chosen.colour, "general": chosen.general,
            "at_risk": chosen.at_risk}
