"""DCAT-AP 3 views of the catalogue: RDF graphs of the catalogue, its datasets and distributions.

Plain functions over a session that build rdflib graphs (no HTTP here; ``rdf.py`` serves them).
Every value of a controlled vocabulary (licence, frequency, theme, language, file type, media
type, publisher type, checksum algorithm) is written as a *typed* node with a label, so the
official DCAT-AP 3 SHACL shapes' class constraints hold without loading the vocabularies.

One record that cannot be expressed (data written behind the service's back: an unknown theme
code, a checksum that is not hexadecimal, a date SQLite cannot read) raises :class:`RecordError`
while its graph is built; catalogue pages skip such records and report them (``CatalogPage.skipped``),
so one bad row never breaks the catalogue.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import FOAF, RDF, RDFS, SKOS, XSD
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..core.errors import NotFound
from ..core.models import Organisation
from ..core.reference import FREQUENCIES, LICENCES, THEMES
from .formats import display_format, normalise_format
from .listing import DatasetView, ResourceView, load_datasets
from .models import Dataset
from .service import resource_download_url

log = logging.getLogger(__name__)

DCAT = Namespace("http://www.w3.org/ns/dcat#")
DCT = Namespace("http://purl.org/dc/terms/")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
ADMS = Namespace("http://www.w3.org/ns/adms#")
SPDX = Namespace("http://spdx.org/rdf/terms#")
GSP = Namespace("http://www.opengis.net/ont/geosparql#")
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
DCATAP = Namespace("http://data.europa.eu/r5r/")
LOCN = Namespace("http://www.w3.org/ns/locn#")

PREFIXES: dict[str, Namespace] = {
    "dcat": DCAT, "dct": DCT, "foaf": FOAF, "vcard": VCARD, "adms": ADMS, "spdx": SPDX, "skos": SKOS,
    "gsp": GSP, "hydra": HYDRA, "dcatap": DCATAP, "locn": LOCN, "rdfs": RDFS, "xsd": XSD,
}

EU = "http://publications.europa.eu/resource/authority/"
THEME_SCHEME = URIRef(EU + "data-theme")
FREQUENCY_SCHEME = URIRef(EU + "frequency")
FILE_TYPE_SCHEME = URIRef(EU + "file-type")
ENGLISH = URIRef(EU + "language/ENG")
PUBLIC_ACCESS = URIRef(EU + "access-right/PUBLIC")
RESTRICTED_ACCESS = URIRef(EU + "access-right/RESTRICTED")  # LODA restricted datasets (docs/sharing.md)
IANA_MEDIA_TYPES = "https://www.iana.org/assignments/media-types/"
GSS_BASE = "http://statistics.data.gov.uk/id/statistical-geography/"
SHA256 = SPDX.checksumAlgorithm_sha256
CRS84_WKT = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"

# EU Data Theme labels (the platform's themes map onto these codes, see core/reference.py).
EU_THEME_LABELS = {
    "AGRI": "Agriculture, fisheries, forestry and food", "ECON": "Economy and finance",
    "EDUC": "Education, culture and sport", "ENER": "Energy", "ENVI": "Environment",
    "GOVE": "Government and public sector", "HEAL": "Health", "INTR": "International issues",
    "JUST": "Justice, legal system and public safety", "REGI": "Regions and cities",
    "SOCI": "Population and society", "TECH": "Science and technology", "TRAN": "Transport",
}

# The platform's format names and the EU file-type code of each.
EU_FILE_TYPES = {
    "CSV": "CSV", "TSV": "TSV", "XLSX": "XLSX", "XLS": "XLS", "ODS": "ODS", "JSON": "JSON",
    "GEOJSON": "GEOJSON", "PARQUET": "PARQUET", "PDF": "PDF", "HTML": "HTML", "TXT": "TXT",
    "MD": "MARKDOWN", "DOCX": "DOCX", "DOC": "DOC", "ODT": "ODT", "PPTX": "PPTX", "ZIP": "ZIP",
    "SHP": "SHP", "ZIP-SHP": "SHP", "KML": "KML", "GPKG": "GPKG", "GML": "GML", "XML": "XML",
    "RDF": "RDF_XML", "TTL": "RDF_TURTLE", "JSONLD": "JSON_LD", "WMS": "WMS_SRVC", "WFS": "WFS_SRVC",
    "GZ": "GZIP",
}

# ADMS publisher types for the kinds of organisation the platform knows.
ADMS_PUBLISHER_TYPES = {
    "local-authority": ("LocalAuthority", "Local authority"),
    "regional": ("RegionalAuthority", "Regional authority"),
    "transport": ("RegionalAuthority", "Regional authority"),
    "police": ("RegionalAuthority", "Regional authority"),
    "fire": ("RegionalAuthority", "Regional authority"),
    "health": ("NationalAuthority", "National authority"),
}

# ADMS licence types of the licences in the register, by licence id.
_ATTRIBUTION = ("Attribution", "Attribution")
_SHARE_ALIKE = ("ViralEffect-ShareAlike", "Viral effect (a.k.a. Share-alike)")
_PUBLIC_DOMAIN = ("PublicDomain", "Public domain")
ADMS_LICENCE_TYPES: dict[str, tuple[tuple[str, str], ...]] = {
    "OGL-UK-3.0": (_ATTRIBUTION,), "OGL-UK-2.0": (_ATTRIBUTION,), "CC-BY-4.0": (_ATTRIBUTION,),
    "CC-BY-SA-4.0": (_ATTRIBUTION, _SHARE_ALIKE), "CC-BY-SA-3.0": (_ATTRIBUTION, _SHARE_ALIKE),
    "CC0-1.0": (_PUBLIC_DOMAIN,), "ODbL-1.0": (_ATTRIBUTION, _SHARE_ALIKE), "OS-OpenData": (_ATTRIBUTION,),
}

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100

_IRI = re.compile(r"^https?://[^\s<>\"{}|\\^`]+$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_GSS = re.compile(r"^[EWSNK]\d{8}$")
_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")

SHAPES_DIR = Path(__file__).with_name("shapes")
DCAT_AP_3_SHAPES = SHAPES_DIR / "dcat-ap-3.0.0-shacl.ttl"


class RecordError(ValueError):
    """A stored record that cannot be written as valid DCAT-AP (its data is corrupt)."""


@dataclass(frozen=True)
class OrganisationInfo:
    """What the RDF says about a publisher."""

    id: int
    slug: str
    name: str
    kind: str
    url: str | None
    gss_code: str | None


@dataclass(frozen=True)
class CatalogueInfo:
    """The catalogue's own description (from the settings)."""

    base_url: str
    title: str
    description: str
    publisher_slug: str


@dataclass
class Skipped:
    """A record left out of a graph, and why."""

    dataset_id: int
    identifier: str
    slug: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """The skipped record for JSON."""
        return {"identifier": self.identifier, "slug": self.slug, "reason": self.reason}


@dataclass
class CatalogPage:
    """One page of the catalogue as a graph, with its paging numbers and the records it skipped."""

    graph: Graph
    total: int
    page: int
    page_size: int
    datasets: int
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def pages(self) -> int:
        """How many pages the whole (filtered) catalogue has (at least one)."""
        return max(1, math.ceil(self.total / self.page_size))


# --- small builders ------------------------------------------------------------------------------

def new_graph() -> Graph:
    """An empty graph with the DCAT-AP prefixes bound."""
    graph = Graph(bind_namespaces="none")
    for prefix, namespace in PREFIXES.items():
        graph.bind(prefix, namespace)
    return graph


def catalogue_uri(base_url: str) -> URIRef:
    """The catalogue's URI."""
    return URIRef(f"{base_url}/catalog")


def dataset_uri(base_url: str, uuid: str) -> URIRef:
    """A dataset's URI: its address by UUID, which survives renaming."""
    return URIRef(f"{base_url}/dataset/{uuid}")


def distribution_uri(base_url: str, dataset_uuid: str, resource_uuid: str) -> URIRef:
    """A distribution's URI: the resource's page."""
    return URIRef(f"{base_url}/dataset/{dataset_uuid}/resource/{resource_uuid}")


def organisation_uri(base_url: str, slug: str) -> URIRef:
    """A publisher's URI: its organisation page."""
    return URIRef(f"{base_url}/organisation/{slug}")


def _iri(value: str, what: str) -> URIRef:
    if not _IRI.match(value or ""):
        raise RecordError(f"its {what} '{value}' is not a web address")
    return URIRef(value)


def _when(value: datetime | date | str, what: str) -> Literal:
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return Literal(stamp.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"), datatype=XSD.dateTime)
    if isinstance(value, date):
        return Literal(value.isoformat(), datatype=XSD.date)
    raise RecordError(f"its {what} '{value}' is not a date")


def _concept(graph: Graph, node: URIRef, label: str, scheme: URIRef | None, *types: URIRef) -> URIRef:
    graph.add((node, RDF.type, SKOS.Concept))
    for kind in types:
        graph.add((node, RDF.type, kind))
    graph.add((node, SKOS.prefLabel, Literal(label, lang="en")))
    if scheme is not None:
        graph.add((node, SKOS.inScheme, scheme))
    return node


def _theme_scheme(graph: Graph) -> URIRef:
    graph.add((THEME_SCHEME, RDF.type, SKOS.ConceptScheme))
    graph.add((THEME_SCHEME, DCT.title, Literal("Data theme", lang="en")))
    return THEME_SCHEME


def _english(graph: Graph) -> URIRef:
    graph.add((ENGLISH, RDF.type, DCT.LinguisticSystem))
    graph.add((ENGLISH, SKOS.prefLabel, Literal("English", lang="en")))
    return ENGLISH


def add_licence(graph: Graph, licence_id: str, title: str, url: str) -> URIRef | BNode:
    """A licence as a typed dct:LicenseDocument node (its web address, when it has one)."""
    node: URIRef | BNode = _iri(url, "licence address") if url else BNode(_bnode_label("licence", licence_id))
    graph.add((node, RDF.type, DCT.LicenseDocument))
    graph.add((node, DCT.title, Literal(title, lang="en")))
    graph.add((node, DCT.identifier, Literal(licence_id)))
    for code, label in ADMS_LICENCE_TYPES.get(licence_id, ()):
        graph.add((node, DCT.type, _concept(graph, URIRef(f"http://purl.org/adms/licencetype/{code}"), label,
                                            URIRef("http://purl.org/adms/licencetype/1.0"))))
    return node


def add_agent(graph: Graph, base_url: str, org: OrganisationInfo) -> URIRef:
    """A publishing organisation as a foaf:Agent with its name and ADMS publisher type."""
    node = organisation_uri(base_url, org.slug)
    graph.add((node, RDF.type, FOAF.Agent))
    graph.add((node, RDF.type, FOAF.Organization))
    graph.add((node, FOAF.name, Literal(org.name, lang="en")))
    if org.url and _IRI.match(org.url):
        graph.add((node, FOAF.homepage, URIRef(org.url)))
    if org.kind in ADMS_PUBLISHER_TYPES:
        code, label = ADMS_PUBLISHER_TYPES[org.kind]
        graph.add((node, DCT.type, _concept(graph, URIRef(f"http://purl.org/adms/publishertype/{code}"), label,
                                            URIRef("http://purl.org/adms/publishertype/1.0"))))
    return node


def _document(graph: Graph, url: str, what: str) -> URIRef:
    node = _iri(url, what)
    graph.add((node, RDF.type, FOAF.Document))
    return node


def _web_resource(graph: Graph, url: str, what: str) -> URIRef:
    node = _iri(url, what)
    graph.add((node, RDF.type, RDFS.Resource))
    return node


def _bnode_label(kind: str, value: str) -> str:
    """A blank node label every serialisation accepts (letters, digits, hyphens), unique per value."""
    readable = re.sub(r"[^A-Za-z0-9]+", "-", value).strip("-")[:40]
    return f"{kind}-{readable}-{hashlib.sha1(value.encode()).hexdigest()[:8]}"


def _text(value: str | None) -> str:
    return (value or "").strip()


# --- a dataset ----------------------------------------------------------------------------------

def add_dataset(graph: Graph, base_url: str, ds: DatasetView, organisations: dict[int, OrganisationInfo]) -> URIRef:
    """Describe one dataset and its distributions in ``graph``; raises RecordError for corrupt data."""
    node = dataset_uri(base_url, ds.uuid)
    title = _text(ds.title)
    if not title:
        raise RecordError("it has no title")
    org = organisations.get(ds.organisation_id)
    if org is None:
        raise RecordError(f"its publisher (organisation {ds.organisation_id}) does not exist")
    page = f"{base_url}/dataset/{ds.slug}"

    graph.add((node, RDF.type, DCAT.Dataset))
    graph.add((node, DCT.identifier, Literal(ds.uuid)))
    graph.add((node, DCT.title, Literal(title, lang="en")))
    # DCAT-AP requires a description: a dataset without one is described by its title.
    graph.add((node, DCT.description, Literal(_text(ds.description) or title, lang="en")))
    graph.add((node, DCT.issued, _when(ds.created, "creation date")))
    graph.add((node, DCT.modified, _when(ds.modified, "modification date")))
    graph.add((node, DCT.publisher, add_agent(graph, base_url, org)))
    graph.add((node, DCT.language, _english(graph)))
    graph.add((node, DCAT.landingPage, _document(graph, _text(ds.landing_page) or page, "landing page")))
    if ds.landing_page:
        graph.add((node, FOAF.page, _document(graph, page, "page")))
    if _text(ds.version):
        graph.add((node, DCAT.version, Literal(_text(ds.version))))
    if (ds.extras or {}).get("access_rights") == "restricted":  # LODA: metadata public, data through the gateway only
        graph.add((node, DCT.accessRights, RESTRICTED_ACCESS))
        graph.add((RESTRICTED_ACCESS, RDF.type, DCT.RightsStatement))
        graph.add((RESTRICTED_ACCESS, SKOS.prefLabel, Literal("Restricted", lang="en")))
    elif not ds.private and ds.state == "active":
        graph.add((node, DCT.accessRights, PUBLIC_ACCESS))
        graph.add((PUBLIC_ACCESS, RDF.type, DCT.RightsStatement))
        graph.add((PUBLIC_ACCESS, SKOS.prefLabel, Literal("Public", lang="en")))
    for keyword in ds.keywords:
        if _text(keyword.keyword):
            graph.add((node, DCAT.keyword, Literal(_text(keyword.keyword), lang="en")))
    for theme in ds.themes:
        if theme.theme not in THEMES:
            raise RecordError(f"its theme '{theme.theme}' is not one of the platform's themes")
        code = THEMES[theme.theme][1]
        concept = _concept(graph, URIRef(f"{EU}data-theme/{code}"), EU_THEME_LABELS[code], _theme_scheme(graph))
        graph.add((node, DCAT.theme, concept))
    if ds.frequency:
        if ds.frequency not in FREQUENCIES:
            raise RecordError(f"its update frequency '{ds.frequency}' is not one the platform knows")
        label, code = FREQUENCIES[ds.frequency]
        graph.add((FREQUENCY_SCHEME, RDF.type, SKOS.ConceptScheme))
        graph.add((FREQUENCY_SCHEME, DCT.title, Literal("Frequency", lang="en")))
        graph.add((node, DCT.accrualPeriodicity,
                   _concept(graph, URIRef(f"{EU}frequency/{code}"), label, FREQUENCY_SCHEME, DCT.Frequency)))
    _add_contact(graph, node, ds, org)
    _add_temporal(graph, node, ds)
    _add_spatial(graph, node, ds, organisations)
    licence = add_licence(graph, ds.licence.id, ds.licence.title, ds.licence.url)
    for res in ds.resources:
        graph.add((node, DCAT.distribution, add_distribution(graph, base_url, ds, res, licence)))
    return node


def _add_contact(graph: Graph, node: URIRef, ds: DatasetView, org: OrganisationInfo) -> None:
    name, email = _text(ds.contact_name), _text(ds.contact_email)
    if not name and not email:
        return
    contact = BNode(f"contact-{ds.uuid}")
    graph.add((contact, RDF.type, VCARD.Kind))
    if not name:
        graph.add((contact, RDF.type, VCARD.Organization))
    graph.add((contact, VCARD.fn, Literal(name or org.name)))
    if email:
        if not _EMAIL.match(email):
            raise RecordError(f"its contact email '{email}' is not an email address")
        graph.add((contact, VCARD.hasEmail, URIRef(f"mailto:{email}")))
    graph.add((node, DCAT.contactPoint, contact))


def _add_temporal(graph: Graph, node: URIRef, ds: DatasetView) -> None:
    start, end = ds.temporal_start, ds.temporal_end
    if start is None and end is None:
        return
    period = BNode(f"period-{ds.uuid}")
    graph.add((period, RDF.type, DCT.PeriodOfTime))
    if start is not None:
        graph.add((period, DCAT.startDate, _when(start, "time period start")))
    if end is not None:
        graph.add((period, DCAT.endDate, _when(end, "time period end")))
    graph.add((node, DCT.temporal, period))


def _number(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RecordError(f"its {what} '{value}' is not a number") from None
    if not math.isfinite(number):
        raise RecordError(f"its {what} is not a finite number")
    return number


def _coordinate(value: float) -> str:
    """A longitude or latitude to seven decimal places (about a centimetre), without trailing zeros."""
    return f"{value:.7f}".rstrip("0").rstrip(".")


def _add_spatial(graph: Graph, node: URIRef, ds: DatasetView,
                 organisations: dict[int, OrganisationInfo]) -> None:
    names = {o.gss_code: o.name for o in organisations.values() if o.gss_code}
    for area in ds.areas:
        code = _text(area.gss_code)
        if not _GSS.match(code):
            raise RecordError(f"its area '{code}' is not a GSS code")
        place = URIRef(GSS_BASE + code)
        graph.add((place, RDF.type, DCT.Location))
        graph.add((place, SKOS.prefLabel, Literal(names.get(code, code), lang="en")))
        graph.add((place, SKOS.notation, Literal(code)))
        graph.add((node, DCT.spatial, place))
    corners = (ds.bbox_west, ds.bbox_south, ds.bbox_east, ds.bbox_north)
    if all(v is None for v in corners):
        return
    if any(v is None for v in corners):
        raise RecordError("its bounding box is missing a side")
    west, south, east, north = (_number(v, "bounding box") for v in corners)
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise RecordError("its bounding box is not west,south,east,north in WGS84 degrees")
    box = BNode(f"bbox-{ds.uuid}")
    graph.add((box, RDF.type, DCT.Location))
    w, s, e, n = (_coordinate(v) for v in (west, south, east, north))
    ring = f"{w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}"
    graph.add((box, DCAT.bbox, Literal(f"POLYGON(({ring}))", datatype=GSP.wktLiteral)))
    # The centre of the bounding box (DCAT-AP recommends a centroid with the box).
    centre = f"{_coordinate((west + east) / 2)} {_coordinate((south + north) / 2)}"
    graph.add((box, DCAT.centroid, Literal(f"POINT({centre})", datatype=GSP.wktLiteral)))
    graph.add((node, DCT.spatial, box))


def add_distribution(graph: Graph, base_url: str, ds: DatasetView, res: ResourceView,
                     licence: URIRef | BNode) -> URIRef:
    """Describe one resource as a dcat:Distribution; raises RecordError for corrupt data."""
    node = distribution_uri(base_url, ds.uuid, res.uuid)
    graph.add((node, RDF.type, DCAT.Distribution))
    if _text(res.title):
        graph.add((node, DCT.title, Literal(_text(res.title), lang="en")))
    if _text(res.description):
        graph.add((node, DCT.description, Literal(_text(res.description), lang="en")))
    graph.add((node, DCT.issued, _when(res.created, "resource creation date")))
    graph.add((node, DCT.modified, _when(res.modified, "resource modification date")))
    graph.add((node, DCT.license, licence))
    if res.kind == "upload":
        if not res.storage_key:
            raise RecordError(f"its resource {res.uuid} has no stored file")
        page = f"{base_url}/dataset/{ds.slug}/resource/{res.uuid}"
        graph.add((node, DCAT.accessURL, _web_resource(graph, page, "resource page")))
        download = resource_download_url(ds, res, base_url)  # type: ignore[arg-type]
        graph.add((node, DCAT.downloadURL, _web_resource(graph, download, "download address")))
    else:
        url = _text(res.url)
        graph.add((node, DCAT.accessURL, _web_resource(graph, url, "resource link")))
        if normalise_format(res.format) not in ("HTML", ""):
            graph.add((node, DCAT.downloadURL, _web_resource(graph, url, "resource link")))
    fmt = normalise_format(res.format)
    if fmt:
        if fmt in EU_FILE_TYPES:
            file_type = URIRef(f"{EU}file-type/{EU_FILE_TYPES[fmt]}")
            graph.add((file_type, RDF.type, DCT.MediaTypeOrExtent))
            graph.add((file_type, SKOS.prefLabel, Literal(display_format(fmt), lang="en")))
            graph.add((file_type, SKOS.inScheme, FILE_TYPE_SCHEME))
        else:  # a format outside the EU list: described, not linked
            file_type = BNode(_bnode_label("format", fmt))
            graph.add((file_type, RDF.type, DCT.MediaTypeOrExtent))
            graph.add((file_type, RDFS.label, Literal(display_format(fmt))))
        graph.add((node, DCT["format"], file_type))
    media_type = _text(res.media_type).lower().split(";")[0].strip()
    if media_type and _MEDIA_TYPE.match(media_type) and not media_type.split("/")[1].startswith("x-"):
        iana = URIRef(IANA_MEDIA_TYPES + media_type)
        graph.add((iana, RDF.type, DCT.MediaType))
        graph.add((iana, RDFS.label, Literal(media_type)))
        graph.add((node, DCAT.mediaType, iana))
    if res.byte_size is not None:
        size = int(_number(res.byte_size, "file size"))
        if size < 0:
            raise RecordError(f"its resource {res.uuid} has a negative size")
        graph.add((node, DCAT.byteSize, Literal(str(size), datatype=XSD.nonNegativeInteger)))
    if res.sha256:
        digest = _text(res.sha256).lower()
        if not _HEX64.match(digest):
            raise RecordError(f"its resource {res.uuid} has a SHA-256 checksum that is not 64 hexadecimal digits")
        checksum = BNode(f"checksum-{res.uuid}")
        graph.add((checksum, RDF.type, SPDX.Checksum))
        graph.add((checksum, SPDX.algorithm, SHA256))
        graph.add((SHA256, RDF.type, SPDX.ChecksumAlgorithm))
        graph.add((checksum, SPDX.checksumValue, Literal(digest, datatype=XSD.hexBinary)))
        graph.add((node, SPDX.checksum, checksum))
    return node


# --- loading ------------------------------------------------------------------------------------

def organisations(session: Session) -> dict[int, OrganisationInfo]:
    """Every organisation, by id (publishers and borough names)."""
    rows = session.execute(select(Organisation.id, Organisation.slug, Organisation.name, Organisation.kind,
                                  Organisation.url, Organisation.gss_code))
    return {row[0]: OrganisationInfo(*row) for row in rows}


def _label_of(session: Session, dataset_id: int) -> tuple[str, str]:
    row = session.execute(select(Dataset.uuid, Dataset.slug).where(Dataset.id == dataset_id)).first()
    return (row[0], row[1]) if row else ("", "")


def _load(session: Session, ids: list[int]) -> list[DatasetView]:
    if session.get_bind().dialect.name == "postgresql":  # a failed statement must not abort the transaction
        with session.begin_nested():
            return load_datasets(session, ids)
    return load_datasets(session, ids)


def load_views(session: Session, ids: list[int]) -> tuple[list[DatasetView], list[Skipped]]:
    """The datasets with these ids as views; rows that cannot even be read are returned as skipped."""
    try:
        return _load(session, ids), []
    except Exception:  # a row the database driver cannot convert: find it, keep the others
        views: list[DatasetView] = []
        skipped: list[Skipped] = []
        for dataset_id in ids:
            try:
                views += _load(session, [dataset_id])
            except Exception as exc:
                uuid, slug = _label_of(session, dataset_id)
                skipped.append(Skipped(dataset_id, uuid, slug, f"its row cannot be read ({exc})"))
        return views, skipped


def build_datasets(graph: Graph, base_url: str, views: Iterable[DatasetView],
                   orgs: dict[int, OrganisationInfo]) -> tuple[list[URIRef], list[Skipped]]:
    """Add each dataset to ``graph``; one that fails leaves no triples and is returned as skipped."""
    added: list[URIRef] = []
    skipped: list[Skipped] = []
    for view in views:
        scratch = new_graph()
        try:
            added.append(add_dataset(scratch, base_url, view, orgs))
        except Exception as exc:  # one bad record is reported, never fatal
            reason = str(exc) if isinstance(exc, RecordError) else f"{type(exc).__name__}: {exc}"
            skipped.append(Skipped(view.id, view.uuid, view.slug, reason))
            continue
        graph += scratch
    return added, skipped


def _report(skipped: list[Skipped]) -> None:
    for item in skipped:
        log.warning("dataset left out of the DCAT-AP catalogue", extra={"fields": {
            "dataset": item.slug, "identifier": item.identifier, "reason": item.reason}})


# --- the catalogue --------------------------------------------------------------------------------

def public_filter() -> list[Any]:
    """The conditions that make a dataset part of the public catalogue."""
    return [Dataset.state == "active", Dataset.private.is_(False)]


def parse_modified_since(value: str | None) -> datetime | None:
    """An ISO 8601 date or date-time (UTC unless it says otherwise); ValueError if it is not one."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
    elif re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([+-]\d{2}:?\d{2})?", text):
        parsed = datetime.fromisoformat(text)
    else:
        raise ValueError(value)
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def add_catalogue(graph: Graph, session: Session, info: CatalogueInfo, orgs: dict[int, OrganisationInfo]) -> URIRef:
    """The dcat:Catalog node: title, description, publisher, homepage, language, licence and dates."""
    node = catalogue_uri(info.base_url)
    graph.add((node, RDF.type, DCAT.Catalog))
    graph.add((node, DCT.title, Literal(info.title, lang="en")))
    graph.add((node, DCT.description, Literal(info.description, lang="en")))
    publisher = next((o for o in orgs.values() if o.slug == info.publisher_slug), None)
    if publisher is not None:
        agent = add_agent(graph, info.base_url, publisher)
    else:
        agent = URIRef(f"{info.base_url}/#publisher")
        graph.add((agent, RDF.type, FOAF.Agent))
        graph.add((agent, FOAF.name, Literal(info.title, lang="en")))
    graph.add((node, DCT.publisher, agent))
    graph.add((node, FOAF.homepage, _document(graph, f"{info.base_url}/", "home page")))
    graph.add((node, DCT.language, _english(graph)))
    graph.add((node, DCAT.themeTaxonomy, _theme_scheme(graph)))
    site_licence = next(lic for lic in LICENCES if lic.id == "OGL-UK-3.0")
    graph.add((node, DCT.license, add_licence(graph, site_licence.id, site_licence.title, site_licence.url)))
    first, last = session.execute(select(func.min(Dataset.created), func.max(Dataset.modified))
                                  .where(*public_filter())).one()
    if first is not None:
        graph.add((node, DCT.issued, _when(first, "catalogue release date")))
    if last is not None:
        graph.add((node, DCT.modified, _when(last, "catalogue modification date")))
    return node


def catalog_page(session: Session, info: CatalogueInfo, *, page: int = 1, page_size: int = DEFAULT_PAGE_SIZE,
                 modified_since: datetime | None = None, page_address: str = "/catalog.ttl") -> CatalogPage:
    """One page of the public catalogue (datasets by id) with Hydra paging links.

    ``page_address`` is the path the pages are served at; links keep ``page_size`` and
    ``modified_since``. Records that cannot be expressed are skipped, logged and described in an
    ``rdfs:comment`` of the page.
    """
    page = max(1, page)
    page_size = max(1, min(page_size, MAX_PAGE_SIZE))
    conditions = public_filter()
    if modified_since is not None:
        conditions.append(Dataset.modified >= modified_since)
    total = session.scalar(select(func.count()).select_from(Dataset).where(*conditions)) or 0
    if page > max(1, math.ceil(total / page_size)):  # past the last page: nothing to build
        return CatalogPage(graph=new_graph(), total=total, page=page, page_size=page_size, datasets=0)
    ids = list(session.scalars(select(Dataset.id).where(*conditions).order_by(Dataset.id)
                               .offset((page - 1) * page_size).limit(page_size)))
    graph = new_graph()
    orgs = organisations(session)
    catalogue = add_catalogue(graph, session, info, orgs)
    views, skipped = load_views(session, ids)
    added, failed = build_datasets(graph, info.base_url, views, orgs)
    skipped += failed
    for node in added:
        graph.add((catalogue, DCAT.dataset, node))
    result = CatalogPage(graph=graph, total=total, page=page, page_size=page_size, datasets=len(added),
                         skipped=skipped)
    _add_paging(graph, catalogue, info.base_url, page_address, result, modified_since)
    _report(skipped)
    return result


def _add_paging(graph: Graph, catalogue: URIRef, base_url: str, address: str, result: CatalogPage,
                modified_since: datetime | None) -> None:
    def link(number: int) -> URIRef:
        params: dict[str, Any] = {"page": number}
        if result.page_size != DEFAULT_PAGE_SIZE:
            params["page_size"] = result.page_size
        if modified_since is not None:
            params["modified_since"] = modified_since.isoformat().replace("+00:00", "Z")
        return URIRef(f"{base_url}{address}?{urlencode(params)}")

    view = link(result.page)
    graph.add((catalogue, RDF.type, HYDRA.Collection))
    graph.add((catalogue, HYDRA.totalItems, Literal(result.total, datatype=XSD.integer)))
    graph.add((catalogue, HYDRA.view, view))
    # PartialCollectionView is Hydra's current term; PagedCollection is what older CKAN harvesters read.
    graph.add((view, RDF.type, HYDRA.PartialCollectionView))
    graph.add((view, RDF.type, HYDRA.PagedCollection))
    graph.add((view, HYDRA.totalItems, Literal(result.total, datatype=XSD.integer)))
    graph.add((view, HYDRA.itemsPerPage, Literal(result.page_size, datatype=XSD.integer)))
    graph.add((view, HYDRA.first, link(1)))
    graph.add((view, HYDRA.last, link(result.pages)))
    if result.page > 1:
        graph.add((view, HYDRA.previous, link(min(result.page - 1, result.pages))))
    if result.page < result.pages:
        graph.add((view, HYDRA.next, link(result.page + 1)))
    if result.skipped:
        listed = "; ".join(f"{s.slug or s.identifier} ({s.reason})" for s in result.skipped)
        graph.add((view, RDFS.comment, Literal(
            f"{len(result.skipped)} record(s) on this page could not be expressed in DCAT-AP and were "
            f"left out: {listed}", lang="en")))


def iter_public_ids(session: Session, batch: int = 500) -> Iterator[list[int]]:
    """The ids of the public catalogue, in batches, by id."""
    last = 0
    while True:
        ids = list(session.scalars(select(Dataset.id).where(*public_filter(), Dataset.id > last)
                                   .order_by(Dataset.id).limit(batch)))
        if not ids:
            return
        yield ids
        last = ids[-1]


class _Discard:
    """A stand-in for a graph that keeps nothing: describing a record into it only checks the record."""

    def add(self, triple: Any) -> "_Discard":
        return self


def catalogue_problems(session: Session, base_url: str) -> list[Skipped]:
    """Every public record that cannot be expressed in DCAT-AP, and why."""
    orgs = organisations(session)
    problems: list[Skipped] = []
    for ids in iter_public_ids(session):
        views, skipped = load_views(session, ids)
        problems += skipped
        for view in views:
            try:
                add_dataset(_Discard(), base_url, view, orgs)  # type: ignore[arg-type]
            except Exception as exc:
                reason = str(exc) if isinstance(exc, RecordError) else f"{type(exc).__name__}: {exc}"
                problems.append(Skipped(view.id, view.uuid, view.slug, reason))
    return problems


# --- one dataset --------------------------------------------------------------------------------

def dataset_graph(session: Session, base_url: str, dataset_id: int) -> Graph:
    """One dataset (any state) with its distributions; raises RecordError if it cannot be expressed."""
    views, skipped = load_views(session, [dataset_id])
    if skipped:
        raise RecordError(skipped[0].reason)
    if not views:
        raise NotFound(f"There is no dataset with id {dataset_id}.")
    graph = new_graph()
    add_dataset(graph, base_url, views[0], organisations(session))
    return graph


# --- serialising ----------------------------------------------------------------------------------

FORMATS: dict[str, tuple[str, str]] = {
    "ttl": ("turtle", "text/turtle; charset=utf-8"),
    "rdf": ("xml", "application/rdf+xml; charset=utf-8"),
    "jsonld": ("json-ld", "application/ld+json"),
}
MEDIA_TYPES = {"text/turtle": "ttl", "application/rdf+xml": "rdf", "application/ld+json": "jsonld"}


def serialize(graph: Graph, suffix: str) -> bytes:
    """The graph as Turtle (``ttl``), RDF/XML (``rdf``) or JSON-LD (``jsonld``), UTF-8."""
    rdflib_format, _ = FORMATS[suffix]
    if rdflib_format == "json-ld":
        context = {prefix: str(namespace) for prefix, namespace in PREFIXES.items()}
        return graph.serialize(format="json-ld", context=context, auto_compact=True, encoding="utf-8")
    return graph.serialize(format=rdflib_format, encoding="utf-8")


# --- validation -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """One result of a SHACL validation."""

    severity: str
    focus: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.focus} {self.path}".strip()
        return f"{self.severity}: {where}: {self.message}"


_NAMES = new_graph().namespace_manager  # prefixes for the paths of findings
_validating = threading.Lock()


@lru_cache(maxsize=4)
def shapes(path: str = str(DCAT_AP_3_SHAPES)) -> Graph:
    """A SHACL shapes graph, parsed once per process."""
    return Graph().parse(path, format="turtle")


def validate_graph(graph: Graph, shapes_graph: Graph | None = None) -> list[Finding]:
    """Validate a graph with pySHACL (default: the DCAT-AP 3 shapes); every result, any severity."""
    import pyshacl

    with _validating:  # the cached shapes graph is shared by every thread
        _, report, _ = pyshacl.validate(graph, shacl_graph=shapes_graph if shapes_graph is not None else shapes(),
                                        inference="none", allow_warnings=True, allow_infos=True)
    sh = Namespace("http://www.w3.org/ns/shacl#")
    findings = []
    for result in report.subjects(RDF.type, sh.ValidationResult):
        severity = report.value(result, sh.resultSeverity)
        path = report.value(result, sh.resultPath)
        findings.append(Finding(
            severity=str(severity).rsplit("#", 1)[-1] if severity else "Violation",
            focus=str(report.value(result, sh.focusNode) or ""),
            path=_NAMES.normalizeUri(path) if isinstance(path, URIRef) else str(path or ""),
            message=str(report.value(result, sh.resultMessage) or "")))
    return sorted(findings, key=lambda f: (f.severity, f.focus, f.path, f.message))


def validate_dataset(session: Session, dataset_id: int, base_url: str = "http://localhost") -> list[str]:
    """Problems of one dataset against the DCAT-AP 3 shapes (empty list: valid)."""
    try:
        graph = dataset_graph(session, base_url, dataset_id)
    except RecordError as exc:
        return [f"The record cannot be expressed in DCAT-AP: {exc}."]
    return [str(f) for f in validate_graph(graph) if f.severity == "Violation"]
