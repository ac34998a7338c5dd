"""WCAG 2.2 AA on the charter pages: axe-core in headless Chromium, at desktop width and at 320px.

The same method as ``tests/web/test_accessibility.py`` (the app under uvicorn, the system Chromium,
axe-core from node_modules); skipped locally without them, failed under CI.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.catalogue.live_server import serve_app
from tests.web.axe import AXE_JS, WCAG_TAGS, browser  # noqa: F401  (browser is a fixture)
from smartlondon.catalogue import service
from smartlondon.core.accounts import COMMAND_LINE

PAGES = ["/charter", "/charter/borough", "/charter/publisher/camden", "/charter/borough/E09000007",
         "/dataset/air-quality-sites/charter", "/dataset/air-quality-sites", "/dataset?openness=3"]






@pytest.fixture
def site(app, db) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        good = service.create_dataset(session, COMMAND_LINE, {
            "title": "Air quality monitoring sites", "slug": "air-quality-sites", "publisher": "camden",
            "description": "Where the London Air Quality Network measures air pollution, and since when.",
            "keywords": ["air quality"], "themes": ["environment"], "boroughs": ["E09000007"],
            "frequency": "annual"})
        service.add_resource(session, COMMAND_LINE, good, {"title": "Sites", "url": "https://example.org/sites.csv"})
        closed = service.create_dataset(session, COMMAND_LINE, {
            "title": "Contracts register", "publisher": "camden", "licence": "other-closed",
            "boroughs": ["E09000007"]})
        service.add_resource(session, COMMAND_LINE, closed, {"title": "Register", "url": "https://example.org/r.pdf"})
    with serve_app(app) as url:
        yield url


@pytest.mark.parametrize("width", [1280, 320])
def test_charter_pages_have_no_wcag_22_aa_violations(browser, site, width: int) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
    try:
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(site)
                      else route.abort())
        page = context.new_page()
        page.set_default_timeout(15_000)
        problems = []
        for path in PAGES:
            response = page.goto(site + path)
            assert response is not None and response.status == 200, path
            page.add_script_tag(path=str(AXE_JS))
            found = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, "
                                  "resultTypes: ['violations']})", WCAG_TAGS)["violations"]
            problems += [f"{path}: {v['id']} ({v['impact']}) {v['help']}; first {v['nodes'][0]['target']}"
                         for v in found]
            if width == 320:
                scroll_width = page.evaluate("document.documentElement.scrollWidth")
                if scroll_width > width:
                    problems.append(f"{path} scrolls sideways at 320px ({scroll_width}px wide)")
        assert not problems, "\n".join(problems)
    finally:
        context.close()
