"""WCAG 2.2 AA on the air quality map and "where you are" pages (axe-core in headless Chromium, 1280 and
320 px, no sideways scrolling), the map under the site's Content-Security-Policy, and the map page
without JavaScript. The pages show real nowcast runs (``test_airquality_pages.load_aq``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.catalogue.live_server import serve_app
from tests.insights.test_airquality_pages import CAMDEN, load_aq
from tests.web.axe import audit, audit_paths, browser, local_page, script_errors  # noqa: F401

LSOA = "E01000855"  # the Camden LSOA holding the Bloomsbury monitoring site


@pytest.fixture
def site(app, db, settings, tmp_path: Path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    load_aq(db, settings, tmp_path, history=3)
    with serve_app(app) as url:
        yield url


def _map_drawn(page: Any, path: str) -> None:
    if path.startswith("/insights/airquality?") or path == "/insights/airquality":
        page.locator("#aq-map img.leaflet-image-layer").first.wait_for()
        page.locator("#aq-map path").nth(32).wait_for(state="attached")


@pytest.mark.parametrize("width", [1280, 320])
def test_air_quality_pages_have_no_wcag_22_aa_violations(browser, site, width: int) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    paths = ["/insights/airquality", "/insights/airquality?species=PM25&sort=level&order=desc",
             "/insights/airquality/my-area", f"/insights/airquality/my-area/{CAMDEN}", f"/insights/airquality/my-area/{LSOA}"]
    with local_page(browser, site, width) as page:
        problems = audit_paths(page, site, paths, width, ready=_map_drawn)
        # the error states: no match (with the summary), several matches (the choices), an unknown code (404)
        for path, status in (("/insights/airquality/my-area?q=Zzyzx+Qwerty", 422),
                             ("/insights/airquality/my-area?q=Euston", 422),
                             ("/insights/airquality/my-area/E01999999", 404)):
            response = page.goto(site + path)
            assert response is not None and response.status == status, path
            problems += audit(page, path, width)
    assert not problems, "\n".join(problems)


def test_the_map_draws_both_layers_under_the_content_security_policy(browser, site) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    with local_page(browser, site, 1280, keep_csp=True) as page:
        errors = script_errors(page)
        response = page.goto(site + "/insights/airquality")
        assert response is not None and response.status == 200
        _map_drawn(page, "/insights/airquality")
        layer = page.locator("#aq-map img.leaflet-image-layer").first
        assert "layer=mean" in (layer.get_attribute("src") or "")
        page.wait_for_function("() => { const i = document.querySelector('#aq-map img.leaflet-image-layer');"
                               " return i && i.complete && i.naturalWidth > 0; }")
        assert page.locator("#aq-map .aq-map__image").count() == 0  # the static image gave way to the map
        # the layer control switches to the uncertainty layer
        page.get_by_label("Uncertainty (standard deviation)").check()
        page.wait_for_function("() => [...document.querySelectorAll('#aq-map img.leaflet-image-layer')]"
                               ".some(i => i.src.includes('layer=std') && i.complete && i.naturalWidth > 0)")
        assert not errors, errors


def test_without_javascript_the_map_page_shows_the_image_and_the_table(browser, site) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    try:
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(site) else route.abort())
        page = context.new_page()
        response = page.goto(site + "/insights/airquality")
        assert response is not None and response.status == 200
        image = page.locator("#aq-map img.aq-map__image")
        assert image.is_visible() and "Map of estimated NO₂ across London" in (image.get_attribute("alt") or "")
        page.wait_for_function("() => { const i = document.querySelector('#aq-map img.aq-map__image');"
                               " return i.complete && i.naturalWidth > 0; }")
        assert page.locator("#aq-boroughs tbody tr").count() == 33
        # the pollutant form and the sort links work as plain requests
        page.get_by_label("PM10").check()
        page.get_by_role("button", name="Show").click()
        assert "Air quality in London: PM10" in page.title()
        page.get_by_role("link", name="Level", exact=True).click()
        assert "sort=level" in page.url and page.locator("#aq-boroughs tbody tr").count() == 33
    finally:
        context.close()
