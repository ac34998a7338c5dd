"""Source type ``socrata``: the Socrata Discovery API (``/api/catalog/v1``) for one domain.

Paged with ``offset`` and ``limit`` until ``resultSetSize``. Each tabular asset becomes two
links, the CSV export and the SODA JSON endpoint, with a Table Schema built from its columns;
other assets (files, external links, maps) link to their page. The API has no "changed since"
filter, so every run reads the listing and unchanged records are recognised by their content.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .fetch import FetchFailed
from .records import Crawl, RecordProblem, RemoteRecord, RemoteResource, list_of, text_of

INCREMENTAL = False
TABULAR = ("dataset", "filter")
TYPES = {"text": "string", "number": "number", "double": "number", "money": "number", "percent": "number",
         "calendar_date": "datetime", "floating_timestamp": "datetime", "fixed_timestamp": "datetime",
         "date": "date", "checkbox": "boolean", "url": "string", "point": "geojson", "location": "object",
         "multipolygon": "geojson", "polygon": "geojson", "line": "geojson", "multiline": "geojson",
         "multipoint": "geojson"}


def records(crawl: Crawl) -> Iterator[RemoteRecord | RecordProblem]:
    """Every asset of the domain's catalogue, a page at a time."""
    options = crawl.options
    offset = 0
    while True:
        params: dict[str, Any] = {"domains": options.domain, "search_context": options.domain,
                                  "offset": offset, "limit": options.page_size, "order": "createdAt"}
        if options.only:
            params["only"] = options.only
        body = crawl.fetcher.get(crawl.url, params).json()
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise FetchFailed(f"{crawl.url} did not answer like the Socrata Discovery API (no 'results' list).")
        total = body.get("resultSetSize")
        crawl.expecting(total)
        results = body["results"]
        for item in results:
            yield read_asset(item, options.domain)
        offset += len(results)
        if not results or (isinstance(total, int) and offset >= total):
            return


def table_schema(resource: dict[str, Any]) -> dict[str, Any] | None:
    """A Frictionless Table Schema from the asset's column lists, or None if it has none."""
    names = list_of(resource.get("columns_field_name"))
    if not names:
        return None
    kinds = list_of(resource.get("columns_datatype"))
    titles = list_of(resource.get("columns_name"))
    notes = list_of(resource.get("columns_description"))
    fields = []
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name or name.startswith(":"):
            continue
        kind = str(kinds[i]).lower().replace(" ", "_") if i < len(kinds) else ""
        entry: dict[str, Any] = {"name": name, "type": TYPES.get(kind, "string")}
        if i < len(titles) and titles[i] and titles[i] != name:
            entry["title"] = str(titles[i])
        if i < len(notes) and notes[i]:
            entry["description"] = str(notes[i])
        fields.append(entry)
    return {"fields": fields} if fields else None


def _domain_metadata(classification: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in list_of(classification.get("domain_metadata")):
        if isinstance(item, dict) and item.get("key"):
            out[str(item["key"]).lower()] = text_of(item.get("value"))
    return out


def read_asset(item: Any, domain: str) -> RemoteRecord | RecordProblem:
    """One result of the Discovery API as a remote record."""
    if not isinstance(item, dict) or not isinstance(item.get("resource"), dict):
        return RecordProblem(None, "The result has no 'resource' object.")
    resource = item["resource"]
    remote_id = text_of(resource.get("id"))
    if not remote_id:
        return RecordProblem(None, "The resource has no 'id'.")
    title = text_of(resource.get("name"))
    if not title:
        return RecordProblem(remote_id, "The resource has no name.")
    classification = item.get("classification") if isinstance(item.get("classification"), dict) else {}
    metadata = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
    site = text_of(metadata.get("domain")) or domain
    permalink = text_of(item.get("permalink")) or f"https://{site}/d/{remote_id}"
    custom = _domain_metadata(classification)
    kind = text_of(resource.get("type")) or "dataset"
    if kind in TABULAR:
        resources = [
            RemoteResource(url=f"https://{site}/api/views/{remote_id}/rows.csv?accessType=DOWNLOAD",
                           title=f"{title} (CSV)", format="CSV", media_type="text/csv", remote_id=f"{remote_id}.csv",
                           table_schema=table_schema(resource)),
            RemoteResource(url=f"https://{site}/resource/{remote_id}.json", title=f"{title} (SODA API, JSON)",
                           format="JSON", media_type="application/json", remote_id=f"{remote_id}.json"),
        ]
    else:
        resources = [RemoteResource(url=text_of(item.get("link")) or permalink, title=title, format="HTML",
                                    remote_id=f"{remote_id}.page")]
    stamps = [text_of(resource.get(k)) for k in ("updatedAt", "metadata_updated_at", "data_updated_at")]
    return RemoteRecord(
        remote_id=remote_id, title=title, name=title, description=text_of(resource.get("description")),
        description_is_html="<" in text_of(resource.get("description")),
        remote_url=permalink, landing_page=permalink, modified=max((s for s in stamps if s), default=""),
        licences=[text_of(metadata.get("license"))],
        keywords=[text_of(t) for t in list_of(classification.get("domain_tags")) + list_of(classification.get("tags"))],
        categories=[text_of(classification.get("domain_category"))]
        + [text_of(c) for c in list_of(classification.get("categories"))],
        frequency=next((v for k, v in custom.items() if "frequency" in k and v), ""),
        spatial=[v for k, v in custom.items() if any(w in k for w in ("geograph", "coverage", "borough")) and v],
        contact_name=text_of(resource.get("attribution")), contact_email=text_of(resource.get("contact_email")),
        publisher_name=text_of(resource.get("attribution")), resources=resources,
        extras={"harvest_remote_type": kind},
    )
