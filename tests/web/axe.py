"""What the accessibility tests share: axe-core, the system Chromium, and the rule that CI never skips them.

Needs /usr/bin/chromium (Debian package ``chromium``), the ``playwright`` Python package (no
``playwright install``: the system Chromium is used) and node_modules/axe-core (``npm ci``). Without
them the tests are skipped locally, but fail when ``CI`` is set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
AXE_JS = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def unavailable(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, which must run every accessibility check."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this check must not be skipped)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless system Chromium for the whole module."""
    if not AXE_JS.is_file():
        unavailable(f"{AXE_JS} is missing: run `npm ci`")
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing: install the Debian package `chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright Python package is missing: install requirements.lock")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
