"""The base layout: no GOV.UK-reserved branding, accessible chrome, signed-in state."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pytest

from smartlondon.web import assets
from smartlondon.web.templating import make_environment

REPO_ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = REPO_ROOT / "src" / "smartlondon" / "web"
BUILT_CSS = WEB_DIR / "static" / "vendor" / "app.css"

# The path of the Tudor crown in GOV.UK Frontend's logo (header/footer logotype).
CROWN_PATH_START = "M33.1,9.8c.2-.1.3-.3.5-.5"

OGL_LINE = "All content is available under the"
OGL_URL = "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/"

NAV_ITEMS = [
    {"href": "/dataset", "text": "Datasets", "active": True},
    {"href": "/organisation", "text": "Organisations", "active": False},
]


@dataclass
class FakeUser:
    display_name: str


@pytest.fixture(scope="module")
def env() -> jinja2.Environment:
    return make_environment()


def render_error(env: jinja2.Environment, **context) -> str:
    defaults = {
        "status": 404,
        "title": None,
        "message": None,
        "site_name": "London Datastore",
        "nav_items": NAV_ITEMS,
        "current_user": None,
        "csrf_token": None,
    }
    return env.get_template("error.html").render({**defaults, **context})


def test_html_lang_and_title(env):
    html = render_error(env)
    assert '<html lang="en-GB"' in html
    assert "<title>Page not found – London Datastore</title>" in html


def test_skip_link_targets_main(env):
    html = render_error(env)
    assert re.search(r'<a href="#main-content" class="govuk-skip-link"[^>]*>Skip to main content</a>', html)
    assert '<main class="govuk-main-wrapper" id="main-content"' in html


def test_no_govuk_crown_or_logotype(env):
    html = render_error(env)
    assert CROWN_PATH_START not in html
    assert "govuk-header__logotype" not in html
    assert "govuk-logo" not in html
    assert "govuk-footer__crown" not in html
    assert "Crown copyright" not in html
    # GOV.UK favicons / icons show the crown: only our own favicon is linked.
    assert "govuk-icon" not in html
    assert "/images/favicon" not in html
    assert '<link rel="icon" href="/static/favicon.svg"' in html


def test_service_name_and_navigation(env):
    html = render_error(env)
    assert re.search(r'<a href="/" class="govuk-service-navigation__link">\s*London Datastore\s*</a>', html)
    assert re.search(r'href="/dataset" aria-current="true"', html)
    assert 'href="/organisation"' in html


def test_sign_in_link_when_signed_out(env):
    html = render_error(env, current_user=None)
    assert 'href="/sign-in"' in html
    assert "Signed in as" not in html
    assert 'action="/sign-out"' not in html


def test_sign_out_form_with_csrf_token_when_signed_in(env):
    html = render_error(env, current_user=FakeUser("Ada <Lovelace>"), csrf_token="tok&en-123")
    assert "Signed in as <strong>Ada &lt;Lovelace&gt;</strong>" in html
    form = re.search(r'<form method="post" action="/sign-out"[^>]*>(.*?)</form>', html, re.S)
    assert form, "sign-out form missing"
    assert '<input type="hidden" name="csrf_token" value="tok&amp;en-123">' in form.group(1)
    assert 'type="submit"' in form.group(1)
    assert 'href="/sign-in"' not in html


def test_phase_banner_with_feedback_link(env):
    html = render_error(env)
    assert "govuk-phase-banner" in html
    assert "Beta" in html
    assert 'href="/feedback"' in html


def test_footer_links_and_ogl_line(env):
    html = render_error(env)
    footer = html[html.index('<footer class="govuk-template__footer"') :]
    for href in ("/dataset", "/organisation", "/api/docs", "/accessibility"):
        assert f'href="{href}"' in footer
    text = re.sub(r"<[^>]+>", "", footer)
    text = re.sub(r"\s+", " ", text)
    assert (
        "All content is available under the Open Government Licence v3.0, except where otherwise stated" in text
    )
    assert f'href="{OGL_URL}" rel="license"' in footer


def test_static_assets_and_no_inline_app_script(env):
    html = render_error(env)
    assert '<link rel="stylesheet" href="/static/vendor/app.css">' in html
    assert '<script type="module" src="/static/app.js"></script>' in html
    # The only inline script is GOV.UK's one-liner that sets `js-enabled`; it
    # takes the CSP nonce when one is given.
    assert len(re.findall(r"<script(?![^>]*\bsrc=)", html)) == 1
    with_nonce = render_error(env, cspNonce="abc123")
    assert '<script nonce="abc123">document.body.className' in with_nonce
    app_js = (WEB_DIR / "static" / "app.js").read_text(encoding="utf-8")
    assert "/static/vendor/govuk/govuk-frontend.min.js" in app_js
    assert "initAll()" in app_js


def test_page_blocks(env):
    page = jinja2.DictLoader(
        {
            "page.html": (
                '{% extends "layout.html" %}'
                "{% block page_title %}Datasets{% endblock %}"
                '{% block head_extra %}<link rel="alternate" type="application/atom+xml" href="/dataset.atom">{% endblock %}'
                '{% block beforeContent %}<nav class="govuk-breadcrumbs">crumbs</nav>{% endblock %}'
                "{% block content %}<h1>Body</h1>{% endblock %}"
                "{% block footer_extra %}<p>Extra footer</p>{% endblock %}"
            )
        }
    )
    html = make_environment([page]).get_template("page.html").render(site_name="London Datastore")
    assert "<title>Datasets – London Datastore</title>" in html
    assert '<link rel="alternate" type="application/atom+xml" href="/dataset.atom">' in html
    assert html.index("crumbs") < html.index('id="main-content"') < html.index("<h1>Body</h1>")
    assert "<p>Extra footer</p>" in html[html.index("<footer") :]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (404, "Page not found"),
        (500, "Sorry, there is a problem with the service"),
        (503, "Sorry, the service is unavailable"),
    ],
)
def test_error_page_patterns(env, status, expected):
    html = render_error(env, status=status)
    assert f'<h1 class="govuk-heading-l">{expected}</h1>' in html
    html = render_error(env, status=status, title="Custom title", message="Custom <message>", hint="Ref: X1")
    assert '<h1 class="govuk-heading-l">Custom title</h1>' in html
    assert "Custom &lt;message&gt;" in html
    assert "Ref: X1" in html


def test_error_macros(env):
    template = env.from_string(
        '{% from "macros/errors.html" import error_summary, field_error %}'
        "[{{ error_summary(errors) }}]"
        "{% set e = field_error(errors, 'title') %}{{ e.text if e else 'none' }}|"
        "{{ field_error(errors, 'missing') }}"
    )
    html = template.render(errors={"title": "Enter a title", "licence": "Select a licence"})
    assert "govuk-error-summary" in html
    assert '<a href="#title">Enter a title</a>' in html
    assert '<a href="#licence">Select a licence</a>' in html
    assert html.endswith("Enter a title|False")
    empty = template.render(errors={})
    assert empty.startswith("[]")


@pytest.fixture(scope="module")
def app_css(tmp_path_factory) -> str:
    """The built app.css, or a fresh compile of app.scss when node_modules exists."""
    if BUILT_CSS.exists():
        return BUILT_CSS.read_text(encoding="utf-8")
    if not (REPO_ROOT / "node_modules" / ".bin" / "sass").exists() or shutil.which("node") is None:
        reason = "app.css not built and node_modules missing: run `npm ci && python -m smartlondon.web.assets`"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI builds the assets first: a missing build is a failure there
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("css") / "app.css"
    return assets.compile_css(REPO_ROOT, out).read_text(encoding="utf-8")


def test_app_css_uses_system_fonts_not_gds_transport(app_css):
    assert "GDS Transport" not in app_css
    assert "@font-face" not in app_css
    assert "system-ui" in app_css
    assert "/static/vendor/govuk/assets/" in app_css or "url(" not in app_css
    for selector in (".app-table-wrapper", ".app-search-results", ".app-facets", ".app-metadata", ".app-header__brand"):
        assert selector in app_css


def test_build_assets_requires_node_modules(tmp_path):
    with pytest.raises(assets.AssetBuildError, match="run npm ci first"):
        assets.build_assets(tmp_path)
