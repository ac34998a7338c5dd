"""WCAG 2.2 AA on the air quality model card page (axe-core in headless Chromium, desktop and 320px)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from smartlondon.insights.airquality import card
from tests.catalogue.live_server import serve_app
from tests.insights.test_airquality_card import stored_card  # noqa: F401  (a fixture)
from tests.web.axe import audit_paths, browser, local_page  # noqa: F401  (browser is a fixture)


@pytest.fixture
def site(app, stored_card: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:  # type: ignore[no-untyped-def]  # noqa: F811
    monkeypatch.setattr(card, "CARD_PATH", stored_card)
    with serve_app(app) as url:
        yield url


@pytest.mark.parametrize("width", [1280, 320])
def test_model_card_page_has_no_wcag_22_aa_violations(browser, site, width: int) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    with local_page(browser, site, width) as page:
        problems = audit_paths(page, site, ["/insights/airquality/model"], width)
    assert not problems, "\n".join(problems)
