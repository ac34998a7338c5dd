"""The fixed CLI contract: `smartlondon insights airquality evaluate ... --json` on a small real extract,
its readable table, and clear errors (non-zero exit) for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from smartlondon.cli import main
from tests.insights.extracts import SITES, write_extract

KEYS = {"rmse": float, "mae": float, "r2": float, "bias": float, "coverage90": float, "n_sites": int,
        "n_predictions": int, "fit_seconds": float, "predict_seconds": float, "by_site_type": dict}


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_extract(tmp_path_factory.mktemp("laqn"), days=2)


def _run(*args: str) -> tuple[int, str, str]:
    """Exit code, standard output, and the messages (stderr, with the terminal's line wrapping undone)."""
    result = CliRunner().invoke(main, ["insights", "airquality", *args])
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


@pytest.mark.parametrize("method", ["idw", "kriging", "kriging-sitetype"])
def test_evaluate_prints_one_json_object_with_the_contracts_keys(extract: Path, method: str) -> None:
    code, out, _ = _run("evaluate", "--observations", str(extract), "--sites", str(SITES), "--species", "NO2",
                        "--method", method, "--json")
    assert code == 0, out
    result = json.loads(out)
    for key, kind in KEYS.items():
        assert isinstance(result[key], kind), key
    assert result["n_sites"] == 18 and result["n_predictions"] > 500
    assert 0 < result["rmse"] < 40 and 0 <= result["coverage90"] <= 1
    assert result["by_site_type"]["Roadside"]["n_sites"] >= 5


def test_the_real_command_runs_our_model_in_a_subprocess(extract: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "smartlondon.cli", "insights", "airquality", "evaluate",
                           "--observations", str(extract), "--sites", str(SITES), "--species", "PM2.5",
                           "--method", "model", "--json"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["species"] == "PM25" and result["method"] == "model"
    assert set(KEYS) <= set(result)
    assert result["rmse"] > 0 and result["n_sites"] >= 10


def test_without_json_it_prints_a_table(extract: Path) -> None:
    code, out, _ = _run("evaluate", "--observations", str(extract), "--sites", str(SITES), "--species", "PM10",
                        "--method", "idw", "--every", "2")
    assert code == 0
    assert "PM10 by idw" in out and "all sites" in out and "Roadside" in out and "every 2th hour" in out


def test_unknown_species_is_a_clear_error(extract: Path) -> None:
    code, out, err = _run("evaluate", "--observations", str(extract), "--sites", str(SITES), "--species", "NOX",
                          "--method", "idw", "--json")
    assert code == 1 and "Unknown species 'NOX'" in err


def test_missing_columns_are_named(extract: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("site,when,value\nMY1,2023-01-01 00:00:00,3\n")
    code, out, err = _run("evaluate", "--observations", str(bad), "--sites", str(SITES), "--species", "NO2",
                          "--method", "idw", "--json")
    assert code == 1 and "lacks the column(s) site_code, species_code, measurement_date_gmt" in err
    code, out, err = _run("evaluate", "--observations", str(extract), "--sites", str(bad), "--species", "NO2",
                          "--method", "idw", "--json")
    assert code == 1 and "@SiteCode" in err


def test_no_overlapping_sites_is_a_clear_error(extract: Path, tmp_path: Path) -> None:
    other = tmp_path / "sites.csv"
    other.write_text("@SiteCode,@SiteType,@Latitude,@Longitude\nZZ1,Roadside,51.5,-0.1\nZZ2,Suburban,51.6,-0.2\n")
    code, out, err = _run("evaluate", "--observations", str(extract), "--sites", str(other), "--species", "NO2",
                          "--method", "kriging", "--json")
    assert code == 1 and "no overlapping sites" in err
    assert out.strip() == ""  # nothing half written on stdout


def test_too_few_usable_sites_says_what_to_change(extract: Path, tmp_path: Path) -> None:
    two = tmp_path / "two-sites.csv"
    two.write_text("@SiteCode,@SiteType,@Latitude,@Longitude\nMY1,Kerbside,51.52254,-0.15459\n"
                   "BL0,Urban Background,51.52253,-0.12589\n")
    code, out, err = _run("evaluate", "--observations", str(extract), "--sites", str(two), "--species", "NO2",
                          "--method", "idw", "--json")
    assert code == 1 and "at least 3 are needed" in err and out.strip() == ""
