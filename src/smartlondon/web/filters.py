"""Template filters: safe Markdown, dates for people."""

from __future__ import annotations

from datetime import date, datetime

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_TAGS = {"p", "a", "ul", "ol", "li", "strong", "em", "code", "pre", "blockquote", "h2", "h3", "h4",
         "table", "thead", "tbody", "tr", "th", "td", "br", "hr"}


def markdown(text: str | None) -> Markup:
    """Markdown as sanitised HTML, with GOV.UK typography classes."""
    rendered = _md.render(text or "")
    clean = nh3.clean(rendered, tags=_TAGS, attributes={"a": {"href", "title"}}, link_rel="noopener nofollow")
    for tag, cls in (("<p>", '<p class="govuk-body">'), ("<ul>", '<ul class="govuk-list govuk-list--bullet">'),
                     ("<ol>", '<ol class="govuk-list govuk-list--number">'),
                     ("<a ", '<a class="govuk-link" '), ("<h2>", '<h2 class="govuk-heading-m">'),
                     ("<h3>", '<h3 class="govuk-heading-s">'), ("<table>", '<table class="govuk-table">')):
        clean = clean.replace(tag, cls)
    return Markup(clean)


def format_date(value: date | datetime | str | None) -> str:
    """A date as people in the UK write it: 5 January 2023."""
    if not value:
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return f"{value.day} {value:%B %Y}"


def format_datetime(value: datetime | None) -> str:
    """A time and date: 5 January 2023 at 2:05pm (UTC)."""
    if not value:
        return ""
    hour = value.hour % 12 or 12
    return f"{value.day} {value:%B %Y} at {hour}:{value:%M}{'am' if value.hour < 12 else 'pm'} UTC"
