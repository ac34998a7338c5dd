"""WCAG 2.2 AA on the harvest pages: axe-core in headless Chromium, at desktop width and at 320px.

The same method as ``tests/web/test_accessibility.py``: the app under uvicorn, the system
Chromium, axe-core from node_modules; skipped locally without them, failed under CI. Covers the
sources list, a source, a job report with errors and warnings, and the add form with and
without its error summary (signed in as an organisation admin).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.axe import AXE_JS, WCAG_TAGS, browser  # noqa: F401  (browser is a fixture)
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


def _check(page: Any, path: str, width: int) -> list[str]:
    page.add_script_tag(path=str(AXE_JS))
    found = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, "
                          "resultTypes: ['violations']})", WCAG_TAGS)["violations"]
    problems = [f"{path}: {v['id']} ({v['impact']}) {v['help']}; first {v['nodes'][0]['target']}" for v in found]
    if width == 320:
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        if scroll_width > width:
            problems.append(f"{path} scrolls sideways at 320px ({scroll_width}px wide)")
    return problems


@pytest.mark.parametrize("width", [1280, 320])
def test_harvest_pages_have_no_wcag_22_aa_violations(browser, site, width: int) -> None:
    base, job_id = site
    context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
    try:
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
                      else route.abort())
        page = context.new_page()
        page.set_default_timeout(15_000)
        problems: list[str] = []
        for path in ("/harvest", "/harvest/birmingham", f"/harvest/birmingham/job/{job_id}"):
            response = page.goto(base + path)
            assert response is not None and response.status == 200, path
            problems += _check(page, path, width)
        page.goto(base + "/sign-in?next=/harvest/new")
        page.fill("#username", "camden-admin")
        page.fill("#password", "camden-admin-password-123")
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url(base + "/harvest/new")
        problems += _check(page, "/harvest/new", width)
        page.fill("#url", "not a web address")
        page.click("form[action='/harvest/new'] button")
        page.wait_for_selector(".govuk-error-summary")
        problems += _check(page, "/harvest/new (with errors)", width)
        page.goto(base + "/harvest/birmingham")
        problems += _check(page, "/harvest/birmingham (as its admin)", width)
        assert not problems, "\n".join(problems)
    finally:
        context.close()
