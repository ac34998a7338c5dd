"""WCAG 2.2 AA on the page of the access log's published anchors, at desktop and phone widths."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smartlondon.sharing import accesslog
from tests.catalogue.live_server import serve_app
from tests.web.axe import audit_paths, browser, local_page  # noqa: F401  (browser is a fixture)

from .conftest import query_body


@pytest.fixture
def site(app, client, db, agreement, analyst) -> Iterator[str]:  # type: ignore[no-untyped-def]
    client.post("/api/sharing/queries", json=query_body(), headers=analyst.headers)
    with db.session() as session:
        accesslog.publish_anchor(session)
    with serve_app(app) as url:
        yield url


@pytest.mark.parametrize("width", [1280, 320])
def test_the_anchor_page_has_no_wcag_22_aa_violations(browser, site, width: int) -> None:  # type: ignore[no-untyped-def]
    with local_page(browser, site, width) as page:
        problems = audit_paths(page, site, ["/sharing/uses/log-anchors"], width)
    assert not problems, "\n".join(problems)
