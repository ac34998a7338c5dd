"""The model card: built from a real (small) evaluation, stored as JSON, rendered as a page with a JSON twin."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from smartlondon.insights.airquality import card, data
from smartlondon.insights.airquality.evaluation import evaluate
from tests.insights.extracts import SITES, write_extract


@pytest.fixture(scope="module")
def stored_card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("card")
    observations = data.read_observations(write_extract(directory, days=2), "NO2", data.read_sites(SITES))
    results = [dict(evaluate(observations, method), hours_used="every hour")
               for method in ("idw", "kriging", "kriging-sitetype")]
    path = directory / "card.json"
    card.save(card.build(results, source={"observations": "extract"}), path)
    return path


@pytest.fixture
def with_card(stored_card: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(card, "CARD_PATH", stored_card)
    return stored_card


def test_the_card_page_shows_the_evaluation_table_and_the_limits(client: TestClient, with_card: Path) -> None:
    page = client.get("/insights/airquality/model")
    assert page.status_code == 200
    html = page.text
    assert "<h1 class=\"govuk-heading-l\">Air quality everywhere</h1>" in html
    assert "Kriging with a site-type term" in html and "Inverse distance weighting" in html
    assert "Known limits" in html and "Kerbside" in html
    assert 'href="/insights/airquality/model.json"' in html


def test_the_card_has_a_json_twin_with_every_method(client: TestClient, with_card: Path) -> None:
    for response in (client.get("/insights/airquality/model.json"),
                     client.get("/insights/airquality/model", headers={"Accept": "application/json"})):
        assert response.status_code == 200
        body = response.json()
        methods = {row["method"] for row in body["rows"] if row["species"] == "NO2"}
        assert methods == {"idw", "kriging", "kriging-sitetype"}
        row = body["rows"][0]
        assert {"rmse", "mae", "r2", "bias", "coverage90", "n_sites"} <= set(row)
        assert body["description"]["limits"] and body["evaluated"] is True


def test_without_a_stored_evaluation_the_page_says_how_to_make_one(client: TestClient, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(card, "CARD_PATH", tmp_path / "absent.json")
    page = client.get("/insights/airquality/model")
    assert page.status_code == 200 and "smartlondon insights airquality card --write" in page.text
    assert client.get("/insights/airquality/model.json").json()["evaluated"] is False


def test_the_card_text_table_compares_with_kriging(stored_card: Path) -> None:
    text = card.text_table(card.load(stored_card))
    assert "kriging-sitetype" in text and "NO2" in text
