"""WCAG 2.2 AA on the tabular data API's pages: axe-core in headless Chromium, at desktop width and at 320px.

The same method as ``tests/web/test_accessibility.py`` (the app under uvicorn, the system Chromium,
axe-core from node_modules); skipped locally without them, failed under CI.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.catalogue.live_server import serve_app
from tests.web.axe import audit_paths, browser, local_page  # noqa: F401  (browser is a fixture)
from smartlondon.app import create_app
from smartlondon.catalogue import service
from smartlondon.catalogue.tabular import loader
from smartlondon.core.accounts import COMMAND_LINE
from smartlondon.core.storage import LocalStorage
from tests.catalogue.tabular_support import csv_bytes, tab_settings

SCHEMA = {"fields": [{"name": "site", "type": "string", "title": "Site code"},
                     {"name": "value", "type": "number", "constraints": {"minimum": 0}}]}






@pytest.fixture
def site(settings, db) -> Iterator[tuple[str, list[str]]]:  # type: ignore[no-untyped-def]
    """The app under uvicorn with tables in every state; returns its address and the pages to check."""
    app = create_app(tab_settings(settings), db)
    storage = LocalStorage(app.state.settings.files_dir)
    files = {
        "good.csv": csv_bytes(["site", "value"], [["BG1", 1.5], ["BL0", 2]]),
        "problems.csv": csv_bytes(["site", "value"], [["BG1", "N/A"], ["BL0", -2], ["", ""], ["CD1", 4]]),
        "broken.xlsx": b"not a workbook",
    }
    with db.session() as session:
        ds = service.create_dataset(session, COMMAND_LINE, {"title": "Air quality readings", "slug": "air-readings",
                                                            "publisher": "camden"})
        ids = {}
        for name, content in files.items():
            stored = storage.store_stream(iter([content]), 10 ** 6)
            res = service.add_resource(session, COMMAND_LINE, ds, {"title": name, "table_schema": SCHEMA
                                       if name != "broken.xlsx" else None}, stored=stored, filename=name)
            ids[name] = res.uuid
        link = service.add_resource(session, COMMAND_LINE, ds, {"title": "Elsewhere",
                                                                "url": "https://example.org/readings.csv"})
        ids["link"] = link.uuid
    loader.run_pending(db.engine, app.state.settings)
    base = "/dataset/air-readings"
    pages = [base, f"{base}/resource/{ids['problems.csv']}", *(f"{base}/resource/{ids[k]}/validation" for k in ids)]
    with serve_app(app) as url:
        yield url, pages


@pytest.mark.parametrize("width", [1280, 320])
def test_tabular_pages_have_no_wcag_22_aa_violations(browser, site, width: int) -> None:  # type: ignore[no-untyped-def]
    address, pages = site
    with local_page(browser, address, width) as page:
        problems = audit_paths(page, address, pages, width)
    assert not problems, "\n".join(problems)
