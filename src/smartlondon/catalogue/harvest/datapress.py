"""Source type ``datapress``: a DataPress portal's ``export.json`` (the London Datastore's API).

The export is one JSON list of every public dataset, each with its resources: keyed by
resource id (the London Datastore's ``/api/datasets/export.json``) or as a list (DataPress
4). Descriptions are HTML and become Markdown. Datasets archived or not public are left out,
so a full run withdraws them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .fetch import FetchFailed
from .records import Crawl, RecordProblem, RemoteRecord, RemoteResource, list_of, text_of

INCREMENTAL = False


def records(crawl: Crawl) -> Iterator[RemoteRecord | RecordProblem]:
    """Every public dataset of the export."""
    body = crawl.fetcher.get(crawl.url).json()
    items = body
    if isinstance(body, dict):
        items = body.get("datasets") or body.get("result") or body.get("data")
    if not isinstance(items, list):
        raise FetchFailed(f"{crawl.url} is not a DataPress export: expected a JSON list of datasets.")
    crawl.expecting(len(items))
    for item in items:
        if isinstance(item, dict) and (item.get("archivedAt") or text_of(item.get("sharing")) not in ("", "public")
                                       or text_of(item.get("state")) not in ("", "active")):
            continue
        yield read_dataset(item, crawl.url)


def _resources(value: Any) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):
        pairs = [(str(k), v) for k, v in value.items() if isinstance(v, dict)]
    else:
        pairs = [(text_of(v.get("id")), v) for v in list_of(value) if isinstance(v, dict)]
    return sorted(pairs, key=lambda kv: (kv[1].get("order") if isinstance(kv[1].get("order"), (int, float)) else 0))


def _contact(value: Any) -> tuple[str, str]:
    if isinstance(value, dict):
        return text_of(value.get("title") or value.get("name")), text_of(value.get("email"))
    text = text_of(value)
    return ("", text) if "@" in text else (text if not text.startswith("http") else "", "")


def read_dataset(item: Any, export_url: str) -> RemoteRecord | RecordProblem:
    """One dataset of the export as a remote record."""
    if not isinstance(item, dict):
        return RecordProblem(None, "The record is not a JSON object.")
    remote_id = text_of(item.get("id")) or text_of(item.get("slug"))
    if not remote_id:
        return RecordProblem(None, "The record has neither an 'id' nor a 'slug'.")
    title = text_of(item.get("title"))
    if not title:
        return RecordProblem(remote_id, "The record has no title.")
    custom = item.get("custom") if isinstance(item.get("custom"), dict) else {}
    licence = item.get("licence")
    licences = [text_of(licence.get("url")), text_of(licence.get("title"))] if isinstance(licence, dict) \
        else [text_of(licence)]
    contact_name, contact_email = _contact(item.get("contact"))
    resources: list[RemoteResource] = []
    starts: list[str] = []
    ends: list[str] = []
    for key, res in _resources(item.get("resources")):
        resources.append(RemoteResource(
            url=text_of(res.get("url")), title=text_of(res.get("title")), description=text_of(res.get("description")),
            format=text_of(res.get("format")), media_type=text_of(res.get("check_mimetype")), remote_id=key))
        starts += [text_of(res.get("temporal_coverage_from"))] if res.get("temporal_coverage_from") else []
        ends += [text_of(res.get("temporal_coverage_to"))] if res.get("temporal_coverage_to") else []
    for link in list_of(item.get("links")):
        if isinstance(link, dict):
            resources.append(RemoteResource(url=text_of(link.get("url")), title=text_of(link.get("title")),
                                            remote_id=text_of(link.get("id"))))
    webpage = text_of(item.get("webpage")) or text_of(item.get("canonical"))
    slug = text_of(item.get("slug"))
    if not webpage and slug:
        webpage = export_url.split("/api/", 1)[0] + f"/dataset/{slug}"
    masthead = item.get("masthead")
    publisher = text_of(item.get("publisher")) or (text_of(masthead.get("title")) if isinstance(masthead, dict)
                                                   else "") or text_of(custom.get("author"))
    topics = [text_of(t.get("title") or t.get("id")) if isinstance(t, dict) else text_of(t)
              for t in list_of(item.get("topics"))]
    return RemoteRecord(
        remote_id=remote_id, title=title, name=slug or remote_id,
        description=text_of(item.get("description")), description_is_html=True,
        remote_url=webpage, landing_page=webpage,
        modified=text_of(item.get("updatedAt")) or text_of(item.get("createdAt")),
        licences=licences, keywords=[text_of(t) for t in list_of(item.get("tags"))], categories=topics,
        frequency=text_of(custom.get("update_frequency") or item.get("update_frequency")),
        temporal_start=min(starts) if starts else "", temporal_end=max(ends) if ends else "",
        spatial=[text_of(custom.get("geo")), text_of(item.get("geo"))],
        contact_name=contact_name or text_of(item.get("maintainer")) or text_of(custom.get("author")),
        contact_email=contact_email or text_of(custom.get("author_email")),
        publisher_name=publisher, resources=resources,
        extras={"harvest_remote_name": slug} if slug else {},
    )
