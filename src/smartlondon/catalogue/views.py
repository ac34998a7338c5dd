"""What pages and the JSON API show of search results: facet labels, paging links."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from ..core.reference import FREQUENCIES, THEMES
from .charter.rules import RATING_LABELS
from .search import SearchRequest, SearchResult
from .service import dataset_dict

FACET_TITLES = {
    "publisher": "Publisher", "theme": "Theme", "format": "Format", "borough": "Borough",
    "licence": "Licence", "frequency": "Update frequency", "keyword": "Keyword",
    "openness": "Openness (5-star scheme)", "charter": "Open data charter rating",
}
FACET_ORDER = ("publisher", "theme", "format", "borough", "licence", "frequency", "openness", "charter", "keyword")


def facet_labels(session: Session) -> dict[str, dict[str, str]]:
    """Human labels for facet values (organisation names, licence titles...)."""
    conn = session.connection()  # plain SQL: this runs on every search, and the ORM layer would triple its cost
    orgs = conn.exec_driver_sql("SELECT slug, name, gss_code FROM organisation").all()
    return {
        "publisher": {slug: name for slug, name, _ in orgs},
        "borough": {gss: name for _, name, gss in orgs if gss},
        "licence": dict(conn.exec_driver_sql("SELECT id, title FROM licence").all()),  # type: ignore[arg-type]
        "theme": {k: v[0] for k, v in THEMES.items()},
        "frequency": {k: v[0] for k, v in FREQUENCIES.items()},
        "openness": {str(n): f"{n} star{'' if n == 1 else 's'}" for n in range(6)},
        "charter": dict(RATING_LABELS),
    }


def query_string(request: SearchRequest, **changes: Any) -> str:
    """The query string for this search with some parameters changed (``None`` removes one)."""
    params: dict[str, Any] = {"q": request.q or None, **{k: list(v) for k, v in request.filters.items()},
                              "sort": request.sort or None, "page": request.page if request.page > 1 else None}
    params.update(changes)
    pairs = []
    for key, value in params.items():
        if value in (None, "", []):
            continue
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, item))
    return urlencode(pairs)


def facet_view(session: Session, result: SearchResult) -> list[dict[str, Any]]:
    """The facets in display order, each value with its label, count, and add/remove links."""
    labels = facet_labels(session)
    request = result.request
    view = []
    for facet in FACET_ORDER:
        values = result.facets.get(facet, [])
        selected = set(request.filters.get(facet, []))
        if not values and not selected:
            continue
        items = []
        for value, count in values:
            chosen = value in selected
            others = [v for v in request.filters.get(facet, []) if v != value]
            link = query_string(request, page=None, **{facet: others if chosen else [*others, value]})
            items.append({"value": value, "label": labels.get(facet, {}).get(value, value), "count": count,
                          "selected": chosen, "toggle": "?" + link})
        if facet == "borough" and items:  # names and place pages from the places register
            from ..places.links import gss_names

            register = gss_names(session, [item["value"] for item in items])
            for item in items:
                if item["value"] in register:
                    uid, name = register[item["value"]]
                    item.update(label=name, place={"uid": uid, "href": f"/places/{uid}"})
        if facet in ("openness", "charter"):  # best first, like the scale they are on
            order = list(labels[facet])[::-1] if facet == "openness" else list(labels[facet])
            items.sort(key=lambda item: order.index(item["value"]) if item["value"] in order else len(order))
        view.append({"name": facet, "title": FACET_TITLES[facet], "items": items})
    return view


def search_payload(session: Session, result: SearchResult, base_url: str, path: str) -> dict[str, Any]:
    """The JSON of a search: count, results, facets with counts, and paging links."""
    request = result.request
    current = query_string(request)
    links: dict[str, str | None] = {"self": f"{base_url}{path}" + (f"?{current}" if current else ""),
                                    "next": None, "prev": None}
    if request.page < result.pages:
        links["next"] = f"{base_url}{path}?{query_string(request, page=request.page + 1)}"
    if request.page > 1:
        links["prev"] = f"{base_url}{path}?{query_string(request, page=request.page - 1)}"
    labels = facet_labels(session)
    return {
        "count": result.total, "page": request.page, "page_size": request.page_size, "pages": result.pages,
        "q": request.q, "sort": request.effective_sort, "filters": request.filters, "links": links,
        "results": [dataset_dict(d, base_url) for d in result.datasets],
        "facets": {facet: [{"value": v, "label": labels.get(facet, {}).get(v, v), "count": n} for v, n in items]
                   for facet, items in result.facets.items()},
    }
