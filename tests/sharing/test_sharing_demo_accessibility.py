"""WCAG 2.2 AA on the privacy pages (pseudonymisation, trusts, subject requests, "how your data was used"),
filled by the LODA demo: axe-core in the system Chromium at desktop width and at 320px (tests/web/axe.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from smartlondon.sharing import demo
from tests.catalogue.live_server import serve_app
from tests.web.axe import audit, audit_paths, browser, local_page  # noqa: F401  (browser is a fixture)


@pytest.fixture
def site(app, db, settings, make_account) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        summary = demo.load_demo(session, settings, scale=0.005)
    officer = make_account("lfb-dpo", london_fire_brigade="admin")
    with serve_app(app) as url:
        yield {"base": url, "summary": summary, "officer": officer}


def _sign_in(page: Any, base: str, account: Any) -> None:
    page.goto(base + "/sign-in")
    page.fill("#username", account.username)
    page.fill("#password", account.password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


@pytest.mark.parametrize("width", [1280, 320])
def test_privacy_pages_have_no_wcag_22_aa_violations(browser, site, width: int) -> None:  # type: ignore[no-untyped-def]
    base, summary = site["base"], site["summary"]
    paths = ["/sharing/pseudonymisation", "/sharing/trusts", f"/sharing/trusts/{demo.TRUST}", "/sharing/your-data"]
    with local_page(browser, base, width) as page:
        problems = audit_paths(page, base, paths, width)
        # the person's view, filled in and shown
        page.fill("#reference", summary["subject_request"])
        page.fill("#code", summary["access_code"])
        with page.expect_navigation():
            page.get_by_role("button", name="Show how my data was used").click()
        assert page.locator("table.govuk-table").count() == 1
        problems += audit(page, "your-data result", width)
        # a wrong code: the error summary
        page.goto(base + "/sharing/your-data")
        page.fill("#reference", summary["subject_request"])
        page.fill("#code", "AAAAA-BBBBB")
        with page.expect_navigation():
            page.get_by_role("button", name="Show how my data was used").click()
        assert page.locator(".govuk-error-summary").count() == 1
        problems += audit(page, "your-data error", width)
        # an officer's pages, and the request form with its errors
        _sign_in(page, base, site["officer"])
        problems += audit_paths(page, base, ["/sharing/subject-requests", "/sharing/subject-requests/new",
                                             f"/sharing/subject-requests/{summary['subject_request']}"], width)
        page.goto(base + "/sharing/subject-requests/new")
        page.fill("#identifier", "1234567890")
        with page.expect_navigation():
            page.get_by_role("button", name="Record and carry out the request").click()
        assert page.locator(".govuk-error-summary").count() == 1
        problems += audit(page, "new request errors", width)
        # the steward's decision form on the trust page, sent empty: its errors
        page.goto(base + f"/sharing/trusts/{demo.TRUST}")
        with page.expect_navigation():
            page.get_by_role("button", name="Publish the decision").click()
        assert page.locator(".govuk-error-summary").count() == 1
        problems += audit(page, "trust decision errors", width)
    assert not problems, "\n".join(problems)
