"""Source type ``dcat-us``: a ``data.json`` catalogue (Project Open Data 1.1, DCAT-US).

ArcGIS Hub, DKAN and Socrata publish one JSON document with every dataset and its
distributions. Identifiers are often URLs; descriptions from ArcGIS Hub are HTML.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .fetch import FetchFailed
from .records import Crawl, RecordProblem, RemoteRecord, RemoteResource, list_of, text_of

INCREMENTAL = False
BBOX = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$")


def records(crawl: Crawl) -> Iterator[RemoteRecord | RecordProblem]:
    """Every dataset of the catalogue."""
    body = crawl.fetcher.get(crawl.url).json()
    if not isinstance(body, dict) or not isinstance(body.get("dataset"), list):
        raise FetchFailed(f"{crawl.url} is not a data.json catalogue: expected an object with a 'dataset' list.")
    crawl.expecting(len(body["dataset"]))
    for item in body["dataset"]:
        yield read_dataset(item)


def _publisher(value: Any) -> str:
    if isinstance(value, dict):
        return text_of(value.get("name")) or _publisher(value.get("subOrganizationOf"))
    return text_of(value)


def _name_from(identifier: str, title: str) -> str:
    if identifier.startswith(("http://", "https://")):
        tail = identifier.rstrip("/").rsplit("/", 1)[-1]
        return tail.split("?")[0] or title
    return title


def read_dataset(item: Any) -> RemoteRecord | RecordProblem:
    """One data.json dataset as a remote record."""
    if not isinstance(item, dict):
        return RecordProblem(None, "The record is not a JSON object.")
    remote_id = text_of(item.get("identifier"))
    if not remote_id:
        return RecordProblem(text_of(item.get("title")) or None, "The record has no 'identifier'.")
    title = text_of(item.get("title"))
    if not title:
        return RecordProblem(remote_id, "The record has no title.")
    contact = item.get("contactPoint") if isinstance(item.get("contactPoint"), dict) else {}
    resources = []
    for dist in list_of(item.get("distribution")):
        if not isinstance(dist, dict):
            continue
        url = text_of(dist.get("downloadURL")) or text_of(dist.get("accessURL"))
        resources.append(RemoteResource(
            url=url, title=text_of(dist.get("title")), description=text_of(dist.get("description")),
            format=text_of(dist.get("format")), media_type=text_of(dist.get("mediaType")),
            remote_id=text_of(dist.get("identifier")) or url))
    spatial = text_of(item.get("spatial"))
    box = BBOX.match(spatial)
    temporal = text_of(item.get("temporal"))
    start, _, end = temporal.partition("/")
    landing = text_of(item.get("landingPage"))
    description = text_of(item.get("description"))
    return RemoteRecord(
        remote_id=remote_id, title=title, name=_name_from(remote_id, title), description=description,
        description_is_html="<" in description and ">" in description,
        remote_url=landing or (remote_id if remote_id.startswith("http") else ""), landing_page=landing,
        modified=text_of(item.get("modified")) or text_of(item.get("issued")),
        licences=[text_of(item.get("license")), text_of(item.get("rights"))],
        keywords=[text_of(k) for k in list_of(item.get("keyword"))],
        categories=[text_of(t) for t in list_of(item.get("theme"))],
        frequency=text_of(item.get("accrualPeriodicity")),
        temporal_start=start if not start.upper().startswith("R") else "",
        temporal_end=end if not end.upper().startswith("P") else "",
        spatial=[] if box else [spatial],
        bbox=[float(v) for v in box.groups()] if box else None,
        version=text_of(item.get("version")),
        contact_name=text_of(contact.get("fn")), contact_email=text_of(contact.get("hasEmail")),
        publisher_name=_publisher(item.get("publisher")), resources=resources,
    )
