"""The scorecard's pages: league tables of publishers and boroughs, their datasets, one dataset's card.

Every page has a JSON twin (``.json`` suffix or ``Accept: application/json``). Tables sort on the
server through links in their column headings (with ``aria-sort``), so sorting works without
JavaScript and every sorted view has its own address.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy import select

from ...core import accounts
from ...core.errors import NotFound
from ...core.models import Organisation
from ...core.web import Context, CtxDep, render
from .. import service
from . import league, rules, scores
from .rules import CHECKS, RATING_LABELS, RATINGS, STATUS_LABELS

router = APIRouter(tags=["pages"], include_in_schema=False)

PAGE_SIZE = 50
ASCENDING_FIRST = {"name", "title"}  # columns whose natural first order is A to Z


def _sorting(request: Request, allowed: tuple[str, ...], default: str = "score") -> tuple[str, bool]:
    sort = request.query_params.get("sort") or default
    if sort not in allowed:
        sort = default
    order = request.query_params.get("order")
    descending = order == "desc" if order in ("asc", "desc") else sort not in ASCENDING_FIRST
    return sort, descending


def _page_number(request: Request) -> int:
    try:
        return max(1, int(request.query_params.get("page") or 1))
    except ValueError:
        return 1


def sort_headings(path: str, columns: dict[str, str], sort: str, descending: bool, numeric: tuple[str, ...] = (),
                  **fixed: Any) -> dict[str, dict[str, Any]]:
    """govukTable heading cells that sort by their column (a link that reverses the current sort), with aria-sort."""
    cells = {}
    for key, text in columns.items():
        current = key == sort
        next_descending = (not descending) if current else key not in ASCENDING_FIRST
        params = {k: v for k, v in fixed.items() if v not in (None, "")}
        params.update(sort=key, order="desc" if next_descending else "asc")
        hint = (f"sorted {'descending' if descending else 'ascending'}, select to reverse" if current
                else "select to sort by this column")
        # The accessible name starts with the visible text (WCAG 2.5.3) and says what selecting it does.
        link = Markup('<a class="govuk-link" href="{}" aria-label="{} ({})">{}</a>').format(
            f"{path}?{urlencode(params)}", text, hint, text)
        cells[key] = {"html": link, "format": "numeric" if key in numeric else "",
                      "attributes": {"aria-sort": ("descending" if descending else "ascending") if current else "none"}}
    return cells


def _checks_info() -> list[dict[str, str]]:
    return [{"name": c.name, "title": c.title, "question": c.question} for c in CHECKS]


def _breakdown_rows(counts: dict[str, dict[str, int]], path: str) -> list[dict[str, Any]]:
    return [{"name": c.name, "title": c.title, "question": c.question, **counts[c.name],
             "failing_href": f"{path}?{urlencode({'failing': c.name})}" if counts[c.name][rules.FAIL] else None}
            for c in CHECKS]


def _links(ctx: Context, path: str) -> dict[str, str]:
    return {"self": f"{ctx.base_url}{path}", "json": f"{ctx.base_url}{path}.json"}


# --- the league tables ----------------------------------------------------------------------------------

def _league_page(ctx: Context, request: Request, *, kind: str) -> Response:
    sort, descending = _sorting(request, league.LEAGUE_SORTS)
    session = ctx.session
    rows = league.publisher_league(session) if kind == "publisher" else league.borough_league(session)
    rows = league.sort_rows(rows, sort, descending)
    path = "/charter" if kind == "publisher" else "/charter/borough"
    detail = "/charter/publisher/" if kind == "publisher" else "/charter/borough/"
    breakdown = league.check_breakdown(session)
    stars = league.stars_breakdown(session)
    scored = sum(stars.values())
    data = {
        "kind": kind, "sort": sort, "order": "desc" if descending else "asc", "checks": _checks_info(),
        "ratings": [{"rating": key, "label": label, "from": floor} for key, label, floor in RATINGS],
        "datasets_scored": scored,
        "stars": [{"stars": n, "datasets": count, "search": f"{ctx.base_url}/dataset?openness={n}"}
                  for n, count in stars.items()],
        "breakdown": {name: counts for name, counts in breakdown.items()},
        "rows": [{**row.as_dict(), "url": f"{ctx.base_url}{detail}{row.key}"} for row in rows],
        "links": _links(ctx, path),
    }
    page = {"kind": kind, "rows": rows, "detail": detail, "path": path, "scored": scored, "stars": stars,
            "breakdown": _breakdown_rows(breakdown, "/dataset"), "checks": CHECKS, "ratings": RATINGS,
            "rating_labels": RATING_LABELS,
            "headings": sort_headings(path, {"name": "Borough" if kind == "borough" else "Publisher",
                                             "datasets": "Datasets", "score": "Score",
                                             "stars": "Stars"}, sort, descending,
                                      ("datasets", "score", "stars")),
            "star_meanings": rules.STAR_MEANINGS}
    template = "catalogue/charter/league.html"
    return render(ctx, template, page, data)


@router.get("/charter")
def charter_publishers(request: Request, ctx: Context = CtxDep) -> Response:
    """The league table of publishers, and how the scorecard works."""
    return _league_page(ctx, request, kind="publisher")


@router.get("/charter/borough")
def charter_boroughs(request: Request, ctx: Context = CtxDep) -> Response:
    """The league table of the London boroughs, by the datasets that cover each one."""
    return _league_page(ctx, request, kind="borough")


# --- one publisher's or borough's datasets -----------------------------------------------------------

def _scope_page(ctx: Context, request: Request, *, kind: str, key: str, name: str, organisation_id: int | None,
                gss: str | None, path: str) -> Response:
    sort, descending = _sorting(request, league.DATASET_SORTS)
    failing = request.query_params.get("failing") or None
    if failing not in rules.CHECK_NAMES:
        failing = None
    page_number = _page_number(request)
    session = ctx.session
    total, items = league.scored_datasets(session, organisation_id=organisation_id, gss=gss, failing=failing,
                                          sort=sort, descending=descending, page=page_number, page_size=PAGE_SIZE)
    breakdown = league.check_breakdown(session, organisation_id, gss)
    stars = league.stars_breakdown(session, organisation_id, gss)
    all_rows = league.publisher_league(session) if kind == "publisher" else league.borough_league(session)
    summary = next((r for r in all_rows if r.key == key), league.LeagueRow(key=key, name=name))
    pages = max(1, -(-total // PAGE_SIZE))
    fixed = {"sort": sort, "order": "desc" if descending else "asc", "failing": failing}

    def href(n: int) -> str:
        return f"{path}?{urlencode({k: v for k, v in {**fixed, 'page': n if n > 1 else None}.items() if v})}"

    data = {
        "kind": kind, "key": key, "name": name, "summary": summary.as_dict(), "sort": sort,
        "order": fixed["order"], "failing": failing, "total": total, "page": page_number, "pages": pages,
        "breakdown": breakdown, "stars": [{"stars": n, "datasets": c} for n, c in stars.items()],
        "datasets": [d.as_dict(ctx.base_url) for d in items],
        "links": {**_links(ctx, path), "next": f"{ctx.base_url}{href(page_number + 1)}" if page_number < pages else None,
                  "prev": f"{ctx.base_url}{href(page_number - 1)}" if page_number > 1 else None},
    }
    pagination = None
    if pages > 1:
        pagination = {"items": [{"number": n, "href": href(n), "current": n == page_number}
                                for n in range(1, pages + 1) if abs(n - page_number) <= 2 or n in (1, pages)]}
        if page_number > 1:
            pagination["previous"] = {"href": href(page_number - 1)}
        if page_number < pages:
            pagination["next"] = {"href": href(page_number + 1)}
    page = {"kind": kind, "key": key, "name": name, "summary": summary, "items": items, "total": total,
            "failing": failing, "failing_title": rules.CHECK_TITLES.get(failing or "", ""), "path": path,
            "breakdown": _breakdown_rows(breakdown, path), "stars": stars, "pagination": pagination,
            "rating_labels": RATING_LABELS, "check_titles": rules.CHECK_TITLES, "page_number": page_number,
            "headings": sort_headings(path, {"title": "Dataset", "score": "Score", "stars": "Stars",
                                             "updated": "Last updated"}, sort, descending, ("score", "stars"),
                                      failing=failing)}
    return render(ctx, "catalogue/charter/scope.html", page, data)


@router.get("/charter/publisher/{slug}")
def charter_publisher(slug: str, request: Request, ctx: Context = CtxDep) -> Response:
    """One publisher's scorecard: how its datasets score, and which checks they fail."""
    org = accounts.get_organisation(ctx.session, slug)
    return _scope_page(ctx, request, kind="publisher", key=org.slug, name=org.name, organisation_id=org.id,
                       gss=None, path=f"/charter/publisher/{org.slug}")


@router.get("/charter/borough/{gss}")
def charter_borough(gss: str, request: Request, ctx: Context = CtxDep) -> Response:
    """One borough's scorecard: the datasets that cover it, and which checks they fail."""
    code = gss.upper()
    name = ctx.session.scalar(select(Organisation.name).where(
        Organisation.gss_code == code, Organisation.kind == "local-authority"))
    if name is None:
        raise NotFound(f"‘{gss}’ is not the GSS code of a London borough (like E09000007 for Camden). "
                       "See the list of boroughs at /charter/borough.")
    return _scope_page(ctx, request, kind="borough", key=code, name=name, organisation_id=None, gss=code,
                       path=f"/charter/borough/{code}")


# --- one dataset ----------------------------------------------------------------------------------------

@router.get("/dataset/{slug}/charter")
def dataset_scorecard(slug: str, request: Request, ctx: Context = CtxDep) -> Response:
    """One dataset's scorecard: every check, its result and the reason."""
    ds = service.get_dataset(ctx.session, ctx.actor, slug)
    card = scores.scorecard_of(ctx.session, ds)
    data = {"dataset": ds.slug, "title": ds.title, "url": f"{ctx.base_url}/dataset/{ds.slug}", **card}
    page = {"ds": ds, "charter": card, "status_labels": STATUS_LABELS, "star_meanings": rules.STAR_MEANINGS}
    return render(ctx, "catalogue/charter/dataset.html", page, data)
