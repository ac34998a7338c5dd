"""WCAG 2.2 AA on the agreement form, its error state and the confirmation pages (axe-core, 1280px and 320px).

Signed in as the London Fire Brigade's admin: the new-agreement form, the form after an empty submission (error
summary and every field's error), the agreement page with its actions, and the suspend and end confirmations.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.catalogue.live_server import serving
from tests.web.axe import audit, audit_paths, browser, local_page  # noqa: F401  (browser is a fixture)


@pytest.fixture
def site(db, tmp_path, agreement) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with serving(db, tmp_path / "live") as server:
        yield server.url


@pytest.mark.parametrize("width", [1280, 320])
def test_agreement_forms_have_no_wcag_22_aa_violations(browser, site, width: int) -> None:  # type: ignore[no-untyped-def]
    base = site
    with local_page(browser, base, width) as page:
        page.goto(base + "/sign-in?next=/sharing/agreements/new")
        page.fill("#username", "lfb-officer")
        page.fill("#password", "lfb-officer-password-123")
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url(base + "/sharing/agreements/new")
        problems = audit(page, "/sharing/agreements/new", width)
        page.click("form[action='/sharing/agreements/new'] button")
        page.wait_for_selector(".govuk-error-summary")
        assert page.locator(".govuk-error-summary a").count() >= 8  # every missing field is listed
        problems += audit(page, "/sharing/agreements/new (with errors)", width)
        problems += audit_paths(page, base, ["/sharing/agreements/home-fire-safety",
                                             "/sharing/agreements/home-fire-safety/suspend",
                                             "/sharing/agreements/home-fire-safety/end"], width)
        page.click("form[action='/sharing/agreements/home-fire-safety/end'] button")
        page.wait_for_selector(".govuk-error-summary")
        problems += audit(page, "/sharing/agreements/home-fire-safety/end (with errors)", width)
    assert not problems, "\n".join(problems)
