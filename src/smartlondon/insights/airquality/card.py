"""The air quality model card: what the model does, its inputs, its evaluation table and its known limits.

The evaluation table is computed by ``smartlondon insights airquality card --write`` (leave-one-site-out,
every method, NO2, PM2.5 and PM10) and stored as JSON in ``insights/data/``, so the page renders it
without recomputing anything.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .data import BUNDLED

CARD_PATH = BUNDLED / "airquality-model-card.json"
METHOD_LABELS = {"model": "Our model (site levels x kriged log field + conformal interval)", "idw": "Inverse distance weighting",
                 "kriging": "Ordinary kriging", "kriging-sitetype": "Kriging with a site-type term"}
SPECIES_LABELS = {"NO2": "Nitrogen dioxide (NO2)", "PM25": "Fine particles (PM2.5)", "PM10": "Particles (PM10)"}
METRIC_KEYS = ("rmse", "mae", "r2", "bias", "coverage90", "interval90_width", "n_sites", "n_predictions",
               "fit_seconds", "predict_seconds")

DESCRIPTION = {
    "name": "smartlondon air quality everywhere",
    "purpose": ("Estimates the hourly concentration of nitrogen dioxide (NO2), fine particles (PM2.5) and "
                "particles (PM10) at any point in London, including the many places with no monitor, with "
                "a 90% interval saying how wrong the estimate may be."),
    "how": ("Works in log space: the concentration at a place and hour is its long-run level times the hour's "
            "shared pattern. Each monitor's long-run level is learned from its own history (an hour + site "
            "fit); the hour's departures from those levels are smooth across London and are kriged hour by "
            "hour with a separate roadside term (roads have their own rush hours). The estimate is the mean of "
            "the log-normal distribution this gives, not its median, which would be biased low. At a place with no "
            "monitor the level is predicted from whether it is beside a road and from the levels of the monitors "
            "within about 2 km (how much dirtier or cleaner than their type they are). The 90% interval adds "
            "the kriging variance and the error of that level prediction (measured by leaving each training "
            "site out), and a conformal factor, fitted on groups of training sites left out in turn, scales it "
            "so that it covers 90% of readings at sites the model did not see."),
    "inputs": [
        "London Air Quality Network hourly readings at the other monitors, the same hour, and the monitors' "
        "long-run levels (LAQN, Imperial College London, Open Government Licence v2)",
        "Site type at the point: beside a road (Roadside or Kerbside) or background",
        "Its position (distance to the monitors nearby)",
    ],
    "evaluation": ("Leave-one-site-out cross-validation: each monitoring site in turn is removed entirely (none of "
                   "its readings, at any hour, is used to fit the model, its interval, or its features) and its "
                   "readings are predicted from the other sites. Sites with readings for fewer than 75% of the "
                   "hours are left out. Every method is scored in the same run on the same readings."),
    "limits": [
        "For nitrogen dioxide it is only slightly better than kriging with a site-type term at places with no "
        "monitor (see the table), far from the target of an error 15% below that baseline; for PM10 it is "
        "better than every baseline; for PM2.5 inverse distance weighting is better.",
        "Its settings were chosen by comparing a handful of variants on the same first-quarter 2023 nitrogen "
        "dioxide data the table reports, so that figure is somewhat optimistic; its latest change (the mean "
        "instead of the median) was chosen on other hours of that quarter than the table's.",
        "The table is over every 6th hour of the quarter (348 hours), not every hour.",
        "It is evaluated at monitor sites, which are not a random sample of London: roadside sites on busy "
        "roads are over-represented and quiet residential streets under-represented.",
        "Kerbside sites (a few metres from very busy roads) remain the hardest: the model, like every baseline, "
        "underestimates them and its interval covers too few of their readings, because what makes a site's "
        "long-run level high (street canyons, distance to the kerb) is not in its inputs.",
        "Road traffic counts and weather are not used: traffic counts did not predict a site's long-run level, "
        "and the hour's shared pattern already carries what the weather does.",
        "Low-cost sensor readings are not used yet: they will be once their calibration is evaluated the same way.",
        "The 90% interval is calibrated over all held-out readings; at a single site it can be too narrow or too "
        "wide (see the coverage by site type).",
    ],
}


def build(results: list[dict[str, Any]], source: dict[str, str] | None = None) -> dict[str, Any]:
    """The card's stored form: the description and, per species, every method's scores."""
    evaluations: dict[str, dict[str, Any]] = {}
    for r in results:
        entry = {k: r.get(k) for k in METRIC_KEYS}
        entry["by_site_type"] = r.get("by_site_type", {})
        entry["hours_used"] = r.get("hours_used")
        evaluations.setdefault(r["species"], {"period": r.get("period"), "methods": {}})["methods"][r["method"]] = entry
    for species, block in evaluations.items():
        methods = block["methods"]
        if "model" in methods and "kriging-sitetype" in methods and methods["kriging-sitetype"]["rmse"]:
            block["rmse_below_kriging_sitetype"] = 1 - methods["model"]["rmse"] / methods["kriging-sitetype"]["rmse"]
    return {"generated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "source": source or {},
            "description": DESCRIPTION, "evaluations": evaluations}


def save(card: dict[str, Any], path: Path) -> None:
    """Write the card as JSON."""
    Path(path).write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")


def load(path: Path | None = None) -> dict[str, Any] | None:
    """The stored card, or None if it has not been written yet."""
    path = Path(path or CARD_PATH)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def rows(card: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (species, method) for the evaluation table, in a fixed order."""
    out = []
    for species in ("NO2", "PM25", "PM10"):
        block = card.get("evaluations", {}).get(species)
        if not block:
            continue
        for method in ("model", "kriging-sitetype", "kriging", "idw"):
            m = block["methods"].get(method)
            if m:
                out.append({"species": species, "species_label": SPECIES_LABELS[species], "method": method,
                            "method_label": METHOD_LABELS[method], **{k: m.get(k) for k in METRIC_KEYS}})
    return out


def text_table(card: dict[str, Any]) -> str:
    """The evaluation table as plain text (what the ``card`` command prints)."""
    lines = [f"{'species':<8}{'method':<18}{'sites':>6}{'RMSE':>8}{'MAE':>8}{'R²':>7}{'bias':>8}{'cover90':>9}"]
    for r in rows(card):
        lines.append(f"{r['species']:<8}{r['method']:<18}{r['n_sites']:>6}{r['rmse']:>8.2f}{r['mae']:>8.2f}"
                     f"{r['r2']:>7.2f}{r['bias']:>8.2f}{r['coverage90']:>9.3f}")
    for species, block in card.get("evaluations", {}).items():
        if "rmse_below_kriging_sitetype" in block:
            gain = block["rmse_below_kriging_sitetype"]
            lines.append(f"{species}: our model's RMSE is {abs(gain):.1%} {'below' if gain >= 0 else 'above'} that of "
                         "kriging with a site-type term")
    return "\n".join(lines)
