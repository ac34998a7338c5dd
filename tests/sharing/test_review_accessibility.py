"""WCAG 2.2 AA on the output review pages: axe-core in headless Chromium, at desktop width and at 320px.

The same method as the other accessibility tests (``tests/web/axe.py``): the review queue, a review with its
proposed output and decision form, and the form with its error summary, signed in as a reviewer.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smartlondon.core import accounts
from smartlondon.sharing import agreements
from tests.catalogue.live_server import serving
from tests.sharing.conftest import agreement_data
from tests.sharing.review_support import queue
from tests.web.axe import audit, browser, local_page  # noqa: F401  (browser is a fixture)


@pytest.fixture
def site(db, tmp_path, make_account, visits) -> Iterator[tuple[str, int]]:  # type: ignore[no-untyped-def]
    with db.session() as session:  # Camden, whose reviewer reviews, is a party to the output's agreement
        agreements.create_agreement(session, agreement_data(), by=accounts.COMMAND_LINE)
    make_account("analyst", camden="member")
    make_account("reviewer-one", camden="reviewer")
    _, review_id = queue(db, "analyst")
    with serving(db, tmp_path / "live") as server:
        yield server.url, review_id


@pytest.mark.parametrize("width", [1280, 320])
def test_review_pages_have_no_wcag_22_aa_violations(browser, site, width: int) -> None:  # type: ignore[no-untyped-def]
    base, review_id = site
    with local_page(browser, base, width) as page:
        page.goto(base + "/sign-in?next=/sharing/reviews")
        page.fill("#username", "reviewer-one")
        page.fill("#password", "reviewer-one-password-123")
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url(base + "/sharing/reviews")
        problems = audit(page, "/sharing/reviews", width)
        page.goto(base + f"/sharing/reviews/{review_id}")
        problems += audit(page, f"/sharing/reviews/{review_id}", width)
        page.click(f"form[action='/sharing/reviews/{review_id}'] button")
        page.wait_for_selector(".govuk-error-summary")
        problems += audit(page, f"/sharing/reviews/{review_id} (with errors)", width)
    assert not problems, "\n".join(problems)
