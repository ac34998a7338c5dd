"""WCAG 2.2 AA: axe-core checks the main pages, rendered by the real app in headless Chromium.

The app runs under uvicorn on a free local port; Chromium loads each page (desktop width, and 320 CSS
pixels for the reflow criterion), axe-core is injected and must report no violations.

Needs /usr/bin/chromium (Debian package ``chromium``), the ``playwright`` Python package (no
``playwright install``: the system Chromium is used) and node_modules/axe-core (``npm ci``). Without
them the tests are skipped locally, but fail when ``CI`` is set: CI must never skip them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.catalogue.live_server import serve_app
from tests.web.axe import audit, browser, local_page  # noqa: F401  (browser is a fixture)
from smartlondon.catalogue import service
from smartlondon.core.accounts import COMMAND_LINE

DESKTOP, NARROW = 1280, 320

DATASETS = [
    {"title": "Air quality monitoring sites", "slug": "air-quality-sites", "publisher": "camden",
     "description": "Where the **London Air Quality Network** measures air pollution.\n\n"
                    "- nitrogen dioxide\n- particulates", "keywords": ["air quality", "no2"],
     "themes": ["environment", "health"], "frequency": "monthly", "temporal_start": "2023-01-01",
     "temporal_end": "2023-12-31", "boroughs": ["E09000007"], "bbox": [-0.2135, 51.5128, -0.1053, 51.5729],
     "geography": "point", "contact_name": "Air Quality Team", "contact_email": "air@camden.example.org",
     "featured": True},
    {"title": "Air traffic noise complaints", "slug": "air-noise", "publisher": "camden",
     "description": "Complaints about aircraft noise.", "keywords": ["noise"], "themes": ["environment"]},
    {"title": "Bus stop locations", "slug": "bus-stops", "publisher": "camden",
     "description": "Every bus stop in Camden.", "keywords": ["buses"], "themes": ["transport"],
     "featured": True},
]
SITES_CSV = ("site_code,site_name,borough,latitude,longitude,opened\n" + "".join(
    f"CD{i},Camden site number {i} with a long name,Camden,51.5{i:02d},-0.1{i:02d},2001-01-{i % 28 + 1:02d}\n"
    for i in range(1, 40))).encode()






@pytest.fixture
def site(app, client, db, editor) -> Iterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    """The app, with a few datasets and an uploaded CSV, served by uvicorn on a free local port.

    Its templates come compiled from the suite's shared cache (``compiled_templates`` in tests/conftest.py).
    """
    with db.session() as session:
        for body in DATASETS:
            service.create_dataset(session, COMMAND_LINE, dict(body))
    upload = client.post("/api/datasets/air-quality-sites/resources", headers=editor.headers,
                         data={"title": "Monitoring sites"}, files={"upload": ("sites.csv", SITES_CSV, "text/csv")})
    assert upload.status_code == 201, upload.text

    with serve_app(app) as url:
        yield {"base": url, "resource": upload.json()["id"],
               "username": editor.username, "password": editor.password}


# --- how to reach each page ----------------------------------------------------------------------

def failed_sign_in(page, site) -> None:  # type: ignore[no-untyped-def]
    page.goto(site["base"] + "/sign-in")
    page.fill("#username", site["username"])
    page.fill("#password", "not-the-password")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert page.locator(".govuk-error-summary").count() == 1


def new_dataset_with_errors(page, site) -> None:  # type: ignore[no-untyped-def]
    page.goto(site["base"] + "/sign-in")
    page.fill("#username", site["username"])
    page.fill("#password", site["password"])
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    page.goto(site["base"] + "/dataset/new")
    with page.expect_navigation():
        page.get_by_role("button", name="Publish dataset").click()
    assert page.locator(".govuk-error-summary").count() == 1


PAGES: dict[str, str | Callable[..., None]] = {
    "home": "/",
    "search": "/dataset?q=air",
    "dataset": "/dataset/air-quality-sites",
    "history": "/dataset/air-quality-sites/history",
    "preview": "/dataset/air-quality-sites/resource/{resource}",
    "organisations": "/organisation",
    "organisation": "/organisation/camden",
    "sign-in": "/sign-in",
    "accessibility": "/accessibility",
    "sign-in-error": failed_sign_in,
    "new-dataset-errors": new_dataset_with_errors,
}
NARROW_TOO = {"search", "dataset"}
CASES = [pytest.param(name, DESKTOP, id=name) for name in PAGES] + \
        [pytest.param(name, NARROW, id=f"{name}-320px") for name in PAGES if name in NARROW_TOO]


@pytest.mark.parametrize(("name", "width"), CASES)
def test_page_has_no_wcag_22_aa_violations(browser, site, name: str,  # type: ignore[no-untyped-def]
                                           width: int) -> None:
    # Only our own server: no map tiles or anything else from the internet.
    with local_page(browser, site["base"], width) as page:
        target = PAGES[name]
        if callable(target):
            target(page, site)
        else:
            response = page.goto(site["base"] + target.format(**site))
            assert response is not None and response.status == 200, f"{target}: {response and response.status}"
        problems = audit(page, page.url, width)
    assert not problems, f"WCAG 2.2 AA problems at {width}px:\n" + "\n".join(problems)
