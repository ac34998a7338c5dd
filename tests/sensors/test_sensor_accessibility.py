"""WCAG 2.2 AA on the sensor pages: axe-core in headless Chromium, at desktop width and at 320px.

The same method as ``tests/catalogue/test_charter_accessibility.py`` (the app under uvicorn, the
system Chromium, axe-core from node_modules, the shared ``tests/web/axe.py``); skipped locally
without them, failed under CI. The map runs (its script, Leaflet and the borough outlines are all
served by the app), so the checks cover the page as a browser with JavaScript shows it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.catalogue.live_server import serve_app
from tests.web.axe import audit_paths, browser, local_page, script_errors  # noqa: F401  (browser is a fixture)
from smartlondon.sensors import laqn


@pytest.fixture
def site(app, db) -> Iterator[str]:  # type: ignore[no-untyped-def]
    laqn.load_laqn(db, limit_sites=3, days=2)
    with serve_app(app) as url:
        yield url


def test_map_draws_under_the_sites_content_security_policy(browser, site) -> None:  # type: ignore[no-untyped-def]
    with local_page(browser, site, 1280, keep_csp=True) as page:
        errors = script_errors(page)
        response = page.goto(site + "/sensors")
        assert response is not None and response.status == 200
        # the borough outlines (33) and a marker per site (3), all served by the app itself
        page.locator("#sensor-map path.leaflet-interactive").nth(2).wait_for()
        assert page.locator("#sensor-map path").count() >= 33 + 3
        assert page.locator("#sensor-map .sensors-map__fallback").count() == 0
        page.locator("#sensor-map path.leaflet-interactive").first.click()
        page.locator(".leaflet-popup-content a.govuk-link").wait_for()
        assert not errors, errors


@pytest.mark.parametrize("width", [1280, 320])
def test_sensor_pages_have_no_wcag_22_aa_violations(browser, site, width: int) -> None:  # type: ignore[no-untyped-def]
    def map_drawn(page, path: str) -> None:  # type: ignore[no-untyped-def]
        if path == "/sensors":  # check the page with its map drawn
            page.locator("#sensor-map path.leaflet-interactive").nth(2).wait_for()

    with local_page(browser, site, width) as page:
        problems = audit_paths(page, site, ["/sensors", "/sensors/things/3", "/sensors/things/1?days=1"], width,
                               ready=map_drawn)
    assert not problems, "\n".join(problems)
