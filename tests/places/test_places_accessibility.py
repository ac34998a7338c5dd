"""WCAG 2.2 AA on the register's pages: place and area pages, the review queue, a proposal, the propose form and
the OGC API's HTML, with axe-core in headless Chromium at desktop width and at 320px (``tests/web/axe.py``).

The maps run (Leaflet, the script and the borough outlines are served by the app), so the checks cover the
pages as a browser with JavaScript shows them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smartlondon.places import review
from smartlondon.core import accounts
from tests.catalogue.live_server import serve_app
from tests.web.axe import audit, audit_paths, browser, local_page, script_errors  # noqa: F401  (browser is a fixture)

from .test_places_links import BLOOMSBURY, EUSTON_ROAD, add_datasets, add_thing, load_camden

PATHS = ["/places/ldn:borough:E09000007", "/places/ldn:aq-site:BL0", "/places/review", "/places/review/1",
         "/places/propose", "/places/ogc?f=html", "/places/ogc/collections?f=html",
         "/places/ogc/collections/aq-site/items?f=html&limit=5",
         "/places/ogc/collections/aq-site/items/ldn:aq-site:BL0?f=html"]
MAPPED = {"/places/ldn:borough:E09000007", "/places/ldn:aq-site:BL0",
          "/places/ogc/collections/aq-site/items?f=html&limit=5",
          "/places/ogc/collections/aq-site/items/ldn:aq-site:BL0?f=html"}


@pytest.fixture
def site(app, db, make_account) -> Iterator[str]:  # type: ignore[no-untyped-def]
    load_camden(db)
    add_datasets(db)
    add_thing(db, "Camden - Bloomsbury", BLOOMSBURY, siteCode="BL0", siteType="Urban Background")
    add_thing(db, "Lamppost EUS-014", EUSTON_ROAD)
    make_account("camden-editor", camden="editor")
    make_account("gla-admin", greater_london_authority="admin")
    with db.session() as session:
        editor = accounts.actor_for(accounts.get_user(session, "camden-editor"), "session")
        review.propose(session, editor, {"action": "update", "uid": "ldn:aq-site:BL0",
                                         "changes": {"name": "Bloomsbury (Russell Square)"}, "reason": "local name"})
    with serve_app(app) as url:
        yield url


def _map_drawn(page, path: str) -> None:  # type: ignore[no-untyped-def]
    if path in MAPPED:
        page.locator(".app-place-map--live .leaflet-interactive").first.wait_for()


def test_the_place_map_draws_under_the_sites_content_security_policy(browser, site) -> None:  # type: ignore[no-untyped-def]
    with local_page(browser, site, 1280, keep_csp=True) as page:
        errors = script_errors(page)
        response = page.goto(site + "/places/ldn:borough:E09000007")
        assert response is not None and response.status == 200
        page.locator(".app-place-map--live .leaflet-interactive").nth(2).wait_for()  # Camden and its 2 sensors
        assert page.locator(".app-place-map--live svg.app-place-map").count() == 0  # the drawing gave way to the map
        assert not errors, errors


@pytest.mark.parametrize("width", [1280, 320])
def test_place_pages_have_no_wcag_22_aa_violations(browser, site, width: int) -> None:  # type: ignore[no-untyped-def]
    with local_page(browser, site, width) as page:
        problems = audit_paths(page, site, PATHS, width, ready=_map_drawn)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("width", [1280, 320])
def test_the_forms_of_a_signed_in_reviewer_have_no_wcag_22_aa_violations(browser, site, width: int) -> None:  # type: ignore[no-untyped-def]
    with local_page(browser, site, width) as page:
        page.goto(site + "/sign-in")
        page.fill("#username", "gla-admin")
        page.fill("#password", "gla-admin-password-123")
        page.locator("main form button[type=submit]").click()
        page.wait_for_load_state()
        problems = audit_paths(page, site, ["/places/propose", "/places/propose?uid=ldn:aq-site:BL0",
                                            "/places/review/1"], width)
        assert 'name="decision"' in page.content()  # the reviewer's form was audited too
        page.goto(site + "/places/propose")
        page.locator("main form button[type=submit]").click()  # nothing filled in: the error summary and messages
        page.locator(".govuk-error-summary").wait_for()
        problems += audit(page, "/places/propose (errors)", width)
    assert not problems, "\n".join(problems)
