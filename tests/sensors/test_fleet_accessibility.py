"""WCAG 2.2 AA on a simulated lamppost's page (calibration tables, calibrated and raw charts), with axe-core.

Reuses the sensor accessibility test's method (``tests/web/axe.py``: the app under uvicorn, headless
Chromium, axe-core from node_modules) at desktop width and at 320px.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smartlondon.sensors import fleet
from tests.catalogue.live_server import serve_app
from tests.sensors.test_fleet import loaded  # noqa: F401  (the fixture: BL0 reference, the fleet, calibrations)
from tests.web.axe import audit_paths, browser, local_page  # noqa: F401  (browser is a fixture)


@pytest.fixture
def site(app, loaded) -> Iterator[tuple[str, int]]:  # type: ignore[no-untyped-def]  # noqa: F811
    with loaded.session() as session:
        thing_id = fleet.fleet_things(session)["LP-BL0"]
    with serve_app(app) as url:
        yield url, thing_id


@pytest.mark.parametrize("width", [1280, 320])
def test_lamppost_page_has_no_wcag_22_aa_violations(browser, site, width: int) -> None:  # type: ignore[no-untyped-def]
    url, thing_id = site
    with local_page(browser, url, width) as page:
        problems = audit_paths(page, url, [f"/sensors/things/{thing_id}", f"/sensors/things/{thing_id}?days=1"], width)
    assert not problems, "\n".join(problems)
