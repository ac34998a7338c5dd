"""Source type ``dcat``: a DCAT catalogue in RDF (Turtle, JSON-LD or RDF/XML), read with rdflib.

Pages are followed through Hydra (``hydra:next``, or the older ``hydra:nextPage``) until there
is none, with the page cap and a guard against loops. Every ``dcat:Dataset`` of a page is a
record; its remote id is its ``dct:identifier``, else its URI. With the option
``modified_since`` the first request asks for changes since the last run only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, OWL, RDF, RDFS, SKOS

from .fetch import FetchFailed
from .records import Crawl, RecordProblem, RemoteRecord, RemoteResource

INCREMENTAL = True
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
SCHEMA = Namespace("http://schema.org/")
LOCN = Namespace("http://www.w3.org/ns/locn#")
DCAT_VERSION = URIRef("http://www.w3.org/ns/dcat#version")  # DCAT 3; not in rdflib's closed namespace
ACCEPT = "text/turtle, application/ld+json;q=0.9, application/rdf+xml;q=0.8"
SYNTAXES = {"text/turtle": "turtle", "application/x-turtle": "turtle", "application/ld+json": "json-ld",
            "application/json": "json-ld", "application/rdf+xml": "xml", "application/xml": "xml",
            "text/xml": "xml", "application/n-triples": "nt", "text/n3": "n3"}
EXTENSIONS = {".ttl": "turtle", ".jsonld": "json-ld", ".json": "json-ld", ".rdf": "xml", ".xml": "xml",
              ".nt": "nt", ".n3": "n3"}
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def syntax_of(page_url: str, content_type: str, configured: str) -> str:
    """The RDF syntax to parse a page with: configured, else from its media type, else its address."""
    if configured:
        return configured
    media = content_type.split(";")[0].strip().lower()
    if media in SYNTAXES:
        return SYNTAXES[media]
    path = page_url.split("?", 1)[0].lower()
    return next((syntax for ext, syntax in EXTENSIONS.items() if path.endswith(ext)), "turtle")


def records(crawl: Crawl) -> Iterator[RemoteRecord | RecordProblem]:
    """Every dataset of every page of the catalogue."""
    url: str | None = crawl.url
    params: dict[str, Any] | None = {"modified_since": crawl.since} if crawl.since and crawl.options.modified_since \
        else None
    visited: set[str] = set()
    while url:
        page = crawl.fetcher.get(url, params, accept=ACCEPT)
        visited.add(url)
        visited.add(page.url)
        graph = Graph()
        syntax = syntax_of(page.url, page.content_type, crawl.options.rdf_format)
        try:
            graph.parse(data=page.content, format=syntax, publicID=page.url)
        except Exception as exc:  # rdflib raises many kinds of syntax errors
            raise FetchFailed(f"The catalogue page {page.url} is not valid RDF ({syntax}): {exc}") from None
        totals = [int(v) for v in graph.objects(None, HYDRA.totalItems) if isinstance(v, Literal)
                  and str(v).isdigit()]
        if totals:
            crawl.expecting(max(totals))
        for subject in sorted(set(graph.subjects(RDF.type, DCAT.Dataset)), key=str):
            yield read_dataset(graph, subject)
        following = [str(o) for p in (HYDRA.next, HYDRA.nextPage) for o in graph.objects(None, p)]
        following = [urljoin(page.url, n) for n in following]
        url = next((n for n in following if n not in visited), None)
        params = None  # the next link carries the query


def _text(graph: Graph, node: Any, *predicates: URIRef) -> str:
    """The best literal (English or untagged first) of the first predicate that has one."""
    for predicate in predicates:
        values = [v for v in graph.objects(node, predicate) if isinstance(v, Literal)]
        if values:
            values.sort(key=lambda v: (v.language not in (None, "en", "en-gb", "en-GB"), str(v)))
            return str(values[0]).strip()
    return ""


def _refs(graph: Graph, node: Any, predicate: URIRef) -> list[str]:
    """The values of a predicate as text: URIs as themselves, literals as their text, nodes by label."""
    out = []
    for value in graph.objects(node, predicate):
        if isinstance(value, URIRef):
            out.append(str(value))
            label = _text(graph, value, SKOS.prefLabel, RDFS.label, DCTERMS.title)
            if label:
                out.append(label)
        elif isinstance(value, Literal):
            out.append(str(value))
        elif isinstance(value, BNode):
            label = _text(graph, value, SKOS.prefLabel, RDFS.label, DCTERMS.title, FOAF.name)
            out += [label] if label else []
    return [v for v in out if v]


def _url(graph: Graph, node: Any, *predicates: URIRef) -> str:
    for predicate in predicates:
        for value in graph.objects(node, predicate):
            if isinstance(value, (URIRef, Literal)) and str(value).startswith(("http://", "https://")):
                return str(value)
    return ""


def _bbox(text: str) -> list[float] | None:
    numbers = [float(n) for n in NUMBER.findall(text)]
    if len(numbers) < 4 or len(numbers) % 2:
        return None
    xs, ys = numbers[0::2], numbers[1::2]
    return [min(xs), min(ys), max(xs), max(ys)]


def read_dataset(graph: Graph, subject: Any) -> RemoteRecord | RecordProblem:
    """One ``dcat:Dataset`` of a page as a remote record."""
    identifier = _text(graph, subject, DCTERMS.identifier) or (str(subject) if isinstance(subject, URIRef) else "")
    if not identifier:
        return RecordProblem(None, "A dcat:Dataset has neither a dct:identifier nor a URI.")
    title = _text(graph, subject, DCTERMS.title)
    if not title:
        return RecordProblem(identifier, "The dataset has no dct:title.")
    licences = _refs(graph, subject, DCTERMS.license)
    resources = []
    for dist in graph.objects(subject, DCAT.distribution):
        licences += _refs(graph, dist, DCTERMS.license)
        url = _url(graph, dist, DCAT.downloadURL, DCAT.accessURL)
        media = _url(graph, dist, DCAT.mediaType) or _text(graph, dist, DCAT.mediaType)
        fmt = next(iter(_refs(graph, dist, DCTERMS.format)), "")
        resources.append(RemoteResource(
            url=url, title=_text(graph, dist, DCTERMS.title), description=_text(graph, dist, DCTERMS.description),
            format=fmt, media_type=media, remote_id=str(dist) if isinstance(dist, URIRef) else url))
    resources.sort(key=lambda r: (r.title, r.url))
    start = end = ""
    for period in graph.objects(subject, DCTERMS.temporal):
        start = start or _text(graph, period, DCAT.startDate, SCHEMA.startDate)
        end = end or _text(graph, period, DCAT.endDate, SCHEMA.endDate)
    spatial: list[str] = []
    bbox = None
    for place in graph.objects(subject, DCTERMS.spatial):
        spatial.append(str(place)) if isinstance(place, URIRef) else None
        spatial += [v for v in (_text(graph, place, SKOS.prefLabel, RDFS.label, LOCN.geographicName),) if v]
        wkt = _text(graph, place, DCAT.bbox, LOCN.geometry)
        bbox = bbox or (_bbox(wkt) if wkt else None)
    contact_name = contact_email = ""
    for point in graph.objects(subject, DCAT.contactPoint):
        contact_name = contact_name or _text(graph, point, VCARD.fn, VCARD["organization-name"])
        contact_email = contact_email or next((str(v) for v in graph.objects(point, VCARD.hasEmail)), "")
    publisher = next((_text(graph, p, FOAF.name, SKOS.prefLabel, RDFS.label)
                      for p in graph.objects(subject, DCTERMS.publisher)), "")
    uri = str(subject) if isinstance(subject, URIRef) else ""
    landing = _url(graph, subject, DCAT.landingPage)
    return RemoteRecord(
        remote_id=identifier, title=title,
        name=(uri.rstrip("/").rsplit("/", 1)[-1] if uri else "") or title,
        description=_text(graph, subject, DCTERMS.description),
        remote_url=uri if uri.startswith("http") else landing, landing_page=landing,
        modified=_text(graph, subject, DCTERMS.modified) or _text(graph, subject, DCTERMS.issued),
        licences=licences, keywords=[str(k) for k in graph.objects(subject, DCAT.keyword)],
        categories=_refs(graph, subject, DCAT.theme),
        frequency=next(iter(_refs(graph, subject, DCTERMS.accrualPeriodicity)), ""),
        temporal_start=start, temporal_end=end, spatial=spatial, bbox=bbox,
        version=_text(graph, subject, DCAT_VERSION, OWL.versionInfo),
        contact_name=contact_name, contact_email=contact_email, publisher_name=publisher, resources=resources,
    )
