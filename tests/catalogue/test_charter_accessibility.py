"""WCAG 2.2 AA on the charter pages: axe-core in headless Chromium, at desktop width and at 320px.

The same method as ``tests/web/test_accessibility.py`` (the app under uvicorn, the system Chromium,
axe-core from node_modules); skipped locally without them, failed under CI.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.catalogue.live_server import serve_app
from tests.web.axe import audit_paths, browser, local_page  # noqa: F401  (browser is a fixture)
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
    with local_page(browser, site, width) as page:
        problems = audit_paths(page, site, PAGES, width)
    assert not problems, "\n".join(problems)
