"""WCAG 2.2 AA on the harvest pages: axe-core in headless Chromium, at desktop width and at 320px.

The same method as ``tests/web/test_accessibility.py``: the app under uvicorn, the system
Chromium, axe-core from node_modules; skipped locally without them, failed under CI. Covers the
sources list, a source, a job report with errors and warnings, and the add form with and
without its error summary (signed in as an organisation admin).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.web.axe import audit, audit_paths, browser, local_page  # noqa: F401  (browser is a fixture)
from smartlondon.catalogue.harvest import runner, sources
from smartlondon.core.accounts import COMMAND_LINE
from tests.catalogue.harvest_portal import Portal, birmingham_packages, ckan_package_search
from tests.catalogue.live_server import serving







@pytest.fixture
def site(db, tmp_path, make_account) -> Iterator[tuple[str, int]]:
    portal = Portal().start()
    packages = birmingham_packages()[1:4]
    packages.append({"name": "lost", "title": "A record without an id"})
    portal.routes["/api/3/action/package_search"] = ckan_package_search(packages)
    with db.session() as session:
        source = sources.create_source(session, COMMAND_LINE, {
            "slug": "birmingham", "name": "Birmingham", "type": "ckan", "url": portal.url,
            "organisation": "camden", "schedule": "daily", "config": {"retries": 0}}).id
    job = runner.run_job(db, sources.start_job(db, source, requested_by="tests"))
    make_account("camden-admin", camden="admin")
    try:
        with serving(db, tmp_path / "live") as server:
            yield server.url, job.id
    finally:
        portal.stop()


@pytest.mark.parametrize("width", [1280, 320])
def test_harvest_pages_have_no_wcag_22_aa_violations(browser, site, width: int) -> None:
    base, job_id = site
    with local_page(browser, base, width) as page:
        problems = audit_paths(page, base, ("/harvest", "/harvest/birmingham", f"/harvest/birmingham/job/{job_id}"),
                               width)
        page.goto(base + "/sign-in?next=/harvest/new")
        page.fill("#username", "camden-admin")
        page.fill("#password", "camden-admin-password-123")
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url(base + "/harvest/new")
        problems += audit(page, "/harvest/new", width)
        page.fill("#url", "not a web address")
        page.click("form[action='/harvest/new'] button")
        page.wait_for_selector(".govuk-error-summary")
        problems += audit(page, "/harvest/new (with errors)", width)
        page.goto(base + "/harvest/birmingham")
        problems += audit(page, "/harvest/birmingham (as its admin)", width)
    assert not problems, "\n".join(problems)
