"""What the accessibility tests share: axe-core, the system Chromium, and the rule that CI never skips them.

Needs /usr/bin/chromium (Debian package ``chromium``), the ``playwright`` Python package (no
``playwright install``: the system Chromium is used) and node_modules/axe-core (``npm ci``). Without
them the tests are skipped locally, but fail when ``CI`` is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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


@contextmanager
def local_page(browser: Any, base: str, width: int, *, keep_csp: bool = False) -> Iterator[Any]:
    """A page ``width`` CSS pixels wide that may load only from ``base`` (nothing from the internet).

    axe-core is injected as a script, so the site's Content-Security-Policy is bypassed unless
    ``keep_csp`` (for checking that the page's own scripts run under it)."""
    context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=not keep_csp)
    try:
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
                      else route.abort())
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
    finally:
        context.close()


def script_errors(page: Any) -> list[str]:
    """A list that collects the page's script errors and console errors from now on."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return errors


def audit(page: Any, label: str, width: int) -> list[str]:
    """The loaded page's WCAG 2.2 AA violations (axe-core) and, at 320px, sideways scrolling, one line each."""
    page.add_script_tag(path=str(AXE_JS))
    found = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, "
                          "resultTypes: ['violations']})", WCAG_TAGS)["violations"]
    problems = [f"{label}: {v['id']} ({v['impact']}) {v['help']}; first {v['nodes'][0]['target']}" for v in found]
    if width <= 320:  # WCAG 1.4.10 Reflow: no scrolling in two dimensions at 320 CSS pixels
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        if scroll_width > width:
            problems.append(f"{label} scrolls sideways at {width}px ({scroll_width}px wide)")
    return problems


def audit_paths(page: Any, base: str, paths: Iterable[str], width: int,
                ready: Callable[[Any, str], None] | None = None) -> list[str]:
    """Open each path (each must answer 200), wait for ``ready(page, path)`` if given, and audit it."""
    problems: list[str] = []
    for path in paths:
        response = page.goto(base + path)
        assert response is not None and response.status == 200, f"{path}: {response and response.status}"
        if ready is not None:
            ready(page, path)
        problems += audit(page, path, width)
    return problems
