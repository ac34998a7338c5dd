"""Source type ``ckan``: a CKAN portal's Action API, as the CKAN harvester reads it.

``package_search`` paged with ``rows`` and ``start``, sorted by ``id asc`` (stable while the
portal changes: a record edited during the crawl does not move). An incremental run adds
``fq=metadata_modified:[<last run's newest> TO *]``. The source URL is the portal's address
(``https://data.example.gov.uk``) or its action API (``.../api/3/action``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .fetch import FetchFailed
from .records import Crawl, RecordProblem, RemoteRecord, RemoteResource, list_of, text_of

INCREMENTAL = True
FREQUENCY_KEYS = ("frequency", "update_frequency", "accrualperiodicity", "accrual_periodicity")
START_KEYS = ("temporal_start", "temporal_coverage-from", "temporal_coverage_from", "start_date")
END_KEYS = ("temporal_end", "temporal_coverage-to", "temporal_coverage_to", "end_date")


def endpoints(url: str) -> tuple[str, str]:
    """The portal's site address and its ``package_search`` address, from the source URL."""
    base = url.rstrip("/")
    for suffix in ("/package_search", "/api/3/action", "/api/action", "/api/3", "/api"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base, f"{base}/api/3/action/package_search"


def records(crawl: Crawl) -> Iterator[RemoteRecord | RecordProblem]:
    """Every (or every changed) dataset of the portal, a page at a time."""
    site, search = endpoints(crawl.url)
    options = crawl.options
    filters = [options.fq] if options.fq else []
    if crawl.since:
        filters.append(f"metadata_modified:[{crawl.since} TO *]")
    start = 0
    while True:
        params: dict[str, Any] = {"rows": options.page_size, "start": start, "sort": "id asc"}
        if filters:
            params["fq"] = " ".join(filters)
        body = crawl.fetcher.get(search, params).json()
        if not isinstance(body, dict) or not body.get("success") or not isinstance(body.get("result"), dict):
            error = body.get("error") if isinstance(body, dict) else None
            message = text_of(error.get("message")) if isinstance(error, dict) else ""
            raise FetchFailed(f"{search} did not answer like CKAN's package_search"
                              + (f": {message}" if message else " (no 'success' and 'result').")
                              + ("" if message.endswith(".") or not message else "."))
        result = body["result"]
        count = result.get("count")
        crawl.expecting(count)
        results = result.get("results") or []
        if not isinstance(results, list):
            raise FetchFailed(f"{search} answered with 'results' that is not a list.")
        for package in results:
            yield read_package(package, site)
        start += len(results)
        if not results or (isinstance(count, int) and start >= count):
            return


def _extras(package: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in list_of(package.get("extras")):
        if isinstance(item, dict) and item.get("key"):
            out[str(item["key"]).strip().lower()] = text_of(item.get("value"))
    return out


def _first(values: dict[str, str], keys: tuple[str, ...]) -> str:
    return next((values[k] for k in keys if values.get(k)), "")


def bbox_of_geojson(text: str) -> list[float] | None:
    """The bounding box [west, south, east, north] of a GeoJSON geometry given as text."""
    try:
        geometry = json.loads(text)
    except (TypeError, ValueError):
        return None
    xs: list[float] = []
    ys: list[float] = []

    def walk(node: Any) -> None:
        if isinstance(node, list) and len(node) >= 2 and all(isinstance(v, (int, float)) for v in node[:2]):
            xs.append(float(node[0]))
            ys.append(float(node[1]))
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(geometry.get("coordinates") if isinstance(geometry, dict) else None)
    return [min(xs), min(ys), max(xs), max(ys)] if xs else None


def read_package(package: Any, site: str) -> RemoteRecord | RecordProblem:
    """One CKAN package dict as a remote record."""
    if not isinstance(package, dict):
        return RecordProblem(None, "The record is not a JSON object.")
    remote_id = text_of(package.get("id"))
    name = text_of(package.get("name"))
    if not remote_id:
        return RecordProblem(name or None, "The record has no 'id'.")
    title = text_of(package.get("title")) or name
    if not title:
        return RecordProblem(remote_id, "The record has neither a title nor a name.")
    extras = _extras(package)
    organisation = package.get("organization") if isinstance(package.get("organization"), dict) else {}
    page = f"{site}/dataset/{name or remote_id}"
    source_url = text_of(package.get("url"))
    resources = []
    for res in list_of(package.get("resources")):
        if not isinstance(res, dict) or text_of(res.get("state")) not in ("", "active"):
            continue
        resources.append(RemoteResource(
            url=text_of(res.get("url")), title=text_of(res.get("name")), description=text_of(res.get("description")),
            format=text_of(res.get("format")), media_type=text_of(res.get("mimetype")),
            remote_id=text_of(res.get("id"))))
    spatial = extras.get("spatial", "")
    keep = {"harvest_remote_name": name, "harvest_remote_created": text_of(package.get("metadata_created"))}
    return RemoteRecord(
        remote_id=remote_id, title=title, name=name, description=text_of(package.get("notes")),
        remote_url=page, landing_page=source_url if source_url.startswith(("http://", "https://")) else page,
        modified=text_of(package.get("metadata_modified")),
        licences=[text_of(package.get("license_id")), text_of(package.get("license_url")),
                  text_of(package.get("license_title"))],
        keywords=[text_of(t.get("name") or t.get("display_name")) if isinstance(t, dict) else text_of(t)
                  for t in list_of(package.get("tags"))],
        categories=[text_of(g.get("title") or g.get("name")) for g in list_of(package.get("groups"))
                    if isinstance(g, dict)] + [extras.get("theme", "")],
        frequency=_first(extras, FREQUENCY_KEYS), temporal_start=_first(extras, START_KEYS),
        temporal_end=_first(extras, END_KEYS),
        spatial=[extras.get("spatial_text", ""), extras.get("geographic_coverage", ""), extras.get("boroughs", ""),
                 spatial if not spatial.lstrip().startswith("{") else ""],
        bbox=bbox_of_geojson(spatial) if spatial.lstrip().startswith("{") else None,
        version=text_of(package.get("version")),
        contact_name=text_of(package.get("maintainer")) or text_of(package.get("author")),
        contact_email=text_of(package.get("maintainer_email")) or text_of(package.get("author_email")),
        publisher_name=text_of(organisation.get("title") or organisation.get("name")),
        resources=resources, extras={k: v for k, v in keep.items() if v},
    )
