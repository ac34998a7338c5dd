"""DCAT-AP 3: what a harvester, a validator and a linked-data client see of the catalogue.

The output is parsed back with rdflib and validated with pySHACL against the official DCAT-AP 3
shapes in ``../shared/data/standards`` (and the DCAT-AP recommended-property shapes, as warnings).
The demo catalogue (265 real London datasets, the LODA demo's restricted one and the air quality nowcast) is loaded once per backend and only read.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import FOAF, RDF, RDFS, SKOS, XSD
from sqlalchemy import select, text

from smartlondon.app import create_app
from smartlondon.catalogue import dcat
from smartlondon.catalogue.facets import counter_for
from smartlondon.catalogue.models import Dataset
from smartlondon.core import reference
from smartlondon.core.db import Database
from smartlondon.demo.loader import load_demo
from smartlondon.settings import Settings

PG_URL = os.environ.get("SMARTLONDON_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "standards"
OFFICIAL_SHAPES = SHARED / "dcat-ap_3_shacl_shapes.ttl"
RECOMMENDED_SHAPES = SHARED / "dcat-ap_2.1.1_shacl_shapes_recommended.ttl"
DCAT = dcat.DCAT
DCT = dcat.DCT
HYDRA = dcat.HYDRA
SPDX = dcat.SPDX
VCARD = dcat.VCARD
GSP = dcat.GSP
EU = "http://publications.europa.eu/resource/authority/"
FORMATS = {"ttl": "turtle", "rdf": "xml", "jsonld": "json-ld"}

FULL = {
    "title": "Nitrogen dioxide diffusion tubes, Camden",
    "slug": "camden-no2-tubes",
    "description": "Monthly **NO2** readings from diffusion tubes across Camden.",
    "publisher": "camden",
    "licence": "CC-BY-4.0",
    "contact_name": "Air quality team",
    "contact_email": "air@camden.example.org",
    "keywords": ["air quality", "NO2"],
    "themes": ["environment", "health"],
    "frequency": "monthly",
    "temporal_start": "2023-01-01",
    "temporal_end": "2023-12-31",
    "boroughs": ["E09000007", "E09000033"],
    "bbox": [-0.2135, 51.5128, -0.1053, 51.5729],
    "geography": "point",
    "landing_page": "https://www.camden.gov.uk/air-quality",
    "version": "2023.2",
}


@pytest.fixture(scope="module")
def official_shapes() -> Graph:
    """The official DCAT-AP 3 SHACL shapes."""
    return Graph().parse(OFFICIAL_SHAPES, format="turtle")


@pytest.fixture(scope="module")
def recommended_shapes() -> Graph:
    """DCAT-AP's recommended-property shapes (severity Warning)."""
    return Graph().parse(RECOMMENDED_SHAPES, format="turtle")


#: the demo's 265 real London datasets plus the LODA demo's restricted dataset (metadata only; sharing/demo.py)
#: plus the air quality nowcast's dataset (insights/airquality/nowcast.py)
DEMO_DATASETS = 267


def parse(response, fmt: str = "ttl") -> Graph:  # type: ignore[no-untyped-def]
    """A response body parsed back with rdflib."""
    return Graph().parse(data=response.content, format=FORMATS[fmt])


def violations(graph: Graph, shapes: Graph) -> list[dcat.Finding]:
    """Every result of SHACL validation that is a violation."""
    return [f for f in dcat.validate_graph(graph, shapes) if f.severity == "Violation"]


# --- the demo catalogue, loaded once per backend ------------------------------------------------------

@pytest.fixture(scope="session")
def demo_sqlite(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file holding the demo catalogue (loaded once; each test reads a copy)."""
    folder = tmp_path_factory.mktemp("demo")
    path = folder / "demo.db"
    shutil.copy(sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    load_demo(db, Settings(data_dir=folder / "var", database_url=db.url, secret_key="test").resolved())
    with db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    return path


def _holds_demo(db: Database) -> bool:
    with db.session() as session:
        slugs = set(session.scalars(select(Dataset.slug)))
    return len(slugs) == DEMO_DATASETS and "london-borough-boundaries" in slugs


def _reset_postgres(db: Database) -> None:
    with db.engine.begin() as conn:
        tables = [r[0] for r in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT IN ('alembic_version', 'spatial_ref_sys')"))]
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    with db.session() as session:
        reference.seed(session)
    counter_for(db.engine).invalidate()


@pytest.fixture(params=BACKENDS)
def demo_db(request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A database holding the demo catalogue. Tests using it only read it.

    On PostgreSQL the demo stays loaded between tests; it is loaded again if a test of another
    module has emptied the database in between.
    """
    if request.param == "postgresql":
        db: Database = request.getfixturevalue("pg_database")
        if not _holds_demo(db):
            _reset_postgres(db)
            folder = tmp_path_factory.mktemp("demo-pg")
            load_demo(db, Settings(data_dir=folder, database_url=db.url, secret_key="test").resolved())
        yield db
        return
    path = tmp_path / "demo.db"
    shutil.copy(request.getfixturevalue("demo_sqlite"), path)
    db = Database(f"sqlite:///{path}")
    yield db
    db.dispose()


@pytest.fixture
def demo_client(demo_db: Database, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A client of an app serving the demo catalogue."""
    settings = Settings(data_dir=tmp_path / "var", database_url=demo_db.url, secret_key="test",
                        base_url="http://testserver").resolved()
    with TestClient(create_app(settings, demo_db)) as client:
        yield client


def public_identifiers(db: Database) -> set[str]:
    """The UUIDs of the public datasets, from the database."""
    with db.session() as session:
        return set(session.scalars(select(Dataset.uuid).where(Dataset.state == "active",
                                                              Dataset.private.is_(False))))


def dataset_nodes(graph: Graph) -> set[URIRef]:
    """The dcat:Dataset nodes of a graph."""
    return set(graph.subjects(RDF.type, DCAT.Dataset))  # type: ignore[arg-type]


def the_view(graph: Graph) -> URIRef:
    """The page's hydra:PartialCollectionView node."""
    views = list(graph.subjects(RDF.type, HYDRA.PartialCollectionView))
    assert len(views) == 1
    return views[0]  # type: ignore[return-value]


def unexplained_warnings(findings: list[dcat.Finding], db: Database) -> list[dcat.Finding]:
    """Recommended-property warnings that the database holds data for (there should be none)."""
    with db.session() as session:
        rows = {uuid: (start, end, contact, n_kw, n_th, n_area, west) for uuid, start, end, contact, n_kw, n_th, n_area, west in
                session.execute(text(
                    "SELECT d.uuid, d.temporal_start, d.temporal_end, d.contact_name || d.contact_email, "
                    "(SELECT count(*) FROM dataset_keyword k WHERE k.dataset_id = d.id), "
                    "(SELECT count(*) FROM dataset_theme t WHERE t.dataset_id = d.id), "
                    "(SELECT count(*) FROM dataset_area a WHERE a.dataset_id = d.id), d.bbox_west FROM dataset d"))}
        described = set(session.scalars(text("SELECT uuid FROM resource WHERE description <> ''")))
        restricted = {uuid for uuid, extras in session.execute(select(Dataset.uuid, Dataset.extras))
                      if (extras or {}).get("access_rights") == "restricted"}
    left = []
    for f in findings:
        if f.severity != "Warning":
            left.append(f)
            continue
        uuid = f.focus.rstrip("/").rsplit("/", 1)[-1]
        start, end, contact, keywords, themes, areas, west = rows.get(uuid, (None,) * 7)
        justified = (
            f.path == "dcatap:availability"  # the platform holds no availability for files
            or (f.path == "dct:temporal" and uuid in rows and start is None and end is None)
            or (f.path == "dcat:contactPoint" and uuid in rows and not contact)
            or (f.path == "dcat:keyword" and uuid in rows and not keywords)
            or (f.path == "dcat:theme" and uuid in rows and not themes)
            or (f.path == "dct:spatial" and uuid in rows and not areas and west is None)
            or (f.path == "dct:spatial" and f.focus.endswith("/catalog"))  # no coverage is held for the catalogue
            or (f.path == "dct:description" and "/resource/" in f.focus and uuid not in described)
            or (f.path == "dcat:distribution" and uuid in restricted)  # LODA: no download, the gateway only
            or (f.path in ("dcat:bbox", "dcat:centroid")
                and f.focus.startswith(dcat.GSS_BASE))  # boroughs are named, their outlines are not held
        )
        if not justified:
            left.append(f)
    return left


# --- the whole demo catalogue -------------------------------------------------------------------

def test_each_serialisation_parses_back_to_the_same_valid_page(demo_client, demo_db, official_shapes):
    graphs = {}
    for fmt, media_type in (("ttl", "text/turtle"), ("rdf", "application/rdf+xml"), ("jsonld", "application/ld+json")):
        res = demo_client.get(f"/catalog.{fmt}", params={"page": 2, "page_size": 30})
        assert res.status_code == 200, res.text
        assert res.headers["content-type"].startswith(media_type)
        graphs[fmt] = parse(res, fmt)
    assert len(dataset_nodes(graphs["ttl"])) == 30
    assert dataset_nodes(graphs["ttl"]) == dataset_nodes(graphs["rdf"]) == dataset_nodes(graphs["jsonld"])
    assert len(graphs["ttl"]) == len(graphs["rdf"]) == len(graphs["jsonld"])
    catalogue = URIRef("http://testserver/catalog")
    assert graphs["ttl"].value(catalogue, HYDRA.totalItems).toPython() == len(public_identifiers(demo_db)) == DEMO_DATASETS
    for fmt, graph in graphs.items():
        assert violations(graph, official_shapes) == [], fmt


def test_hydra_paging_walks_every_dataset_exactly_once(demo_client, demo_db):
    seen: list[str] = []
    address: str | None = "/catalog.rdf?page_size=40"  # RDF/XML, as CKAN's DCAT harvester reads by default
    pages = 0
    while address is not None and pages < 20:
        res = demo_client.get(address)
        assert res.status_code == 200
        graph = parse(res, "rdf")
        view = the_view(graph)
        pages += 1
        assert graph.value(view, HYDRA.first) == URIRef("http://testserver/catalog.rdf?page=1&page_size=40")
        assert graph.value(view, HYDRA.last) == URIRef("http://testserver/catalog.rdf?page=7&page_size=40")
        assert (graph.value(view, HYDRA.previous) is None) == (pages == 1)
        seen += [str(graph.value(node, DCT.identifier)) for node in dataset_nodes(graph)]
        following = graph.value(view, HYDRA["next"])
        if following is not None:
            assert f'<{following}>; rel="next"' in res.headers["link"]
        address = str(following).removeprefix("http://testserver") if following is not None else None
    assert pages == math.ceil(DEMO_DATASETS / 40) == 7
    assert len(seen) == len(set(seen)) == DEMO_DATASETS
    assert set(seen) == public_identifiers(demo_db)


def test_the_whole_demo_catalogue_passes_the_official_shapes(demo_client, demo_db, official_shapes,
                                                             recommended_shapes):
    res = demo_client.get("/catalog.rdf", params={"page_size": 1000})
    assert res.status_code == 200 and res.headers["x-skipped-records"] == "0"
    graph = parse(res, "rdf")
    assert len(dataset_nodes(graph)) == DEMO_DATASETS
    assert violations(graph, official_shapes) == []
    warnings = dcat.validate_graph(graph, recommended_shapes)
    assert unexplained_warnings(warnings, demo_db) == []


# --- every field of a dataset ---------------------------------------------------------------------

CSV_BODY = "site,month,no2\nCD1,2023-01,41.5\nCD2,2023-01,38.0\n".encode()


@pytest.fixture
def full_dataset(client, editor):  # type: ignore[no-untyped-def]
    """A dataset with every field filled, an uploaded CSV and a link."""
    created = client.post("/api/datasets", json=FULL, headers=editor.headers)
    assert created.status_code == 201, created.text
    upload = client.post("/api/datasets/camden-no2-tubes/resources", headers=editor.headers,
                         files={"upload": ("tubes 2023.csv", CSV_BODY, "text/csv")},
                         data={"title": "Readings 2023", "description": "One row per tube per month."})
    assert upload.status_code == 201, upload.text
    link = client.post("/api/datasets/camden-no2-tubes/resources", headers=editor.headers,
                       json={"title": "Council air quality page", "url": "https://www.camden.gov.uk/air-quality",
                             "description": "How the council measures air quality."})
    assert link.status_code == 201, link.text
    return {**created.json(), "upload": upload.json(), "link": link.json()}


def test_every_field_maps_to_dcat_ap_3(client, db, full_dataset, official_shapes, recommended_shapes):
    res = client.get("/dataset/camden-no2-tubes.ttl")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/turtle")
    g = parse(res)
    ds = URIRef(f"http://testserver/dataset/{full_dataset['id']}")
    assert (ds, RDF.type, DCAT.Dataset) in g
    assert g.value(ds, DCT.identifier) == Literal(full_dataset["id"])
    assert g.value(ds, DCT.title) == Literal(FULL["title"], lang="en")
    assert str(g.value(ds, DCT.description)).startswith("Monthly **NO2**")
    assert {str(k) for k in g.objects(ds, DCAT.keyword)} == {"air quality", "no2"}
    assert g.value(ds, DCAT.version) == Literal("2023.2")
    assert g.value(ds, DCAT.landingPage) == URIRef(FULL["landing_page"])
    assert g.value(ds, DCT.issued).datatype == XSD.dateTime and g.value(ds, DCT.modified).datatype == XSD.dateTime

    themes = set(g.objects(ds, DCAT.theme))
    assert themes == {URIRef(EU + "data-theme/ENVI"), URIRef(EU + "data-theme/HEAL")}
    for theme in themes:
        assert (theme, RDF.type, SKOS.Concept) in g and g.value(theme, SKOS.prefLabel) is not None
        assert g.value(theme, SKOS.inScheme) == URIRef(EU + "data-theme")
    frequency = g.value(ds, DCT.accrualPeriodicity)
    assert frequency == URIRef(EU + "frequency/MONTHLY") and (frequency, RDF.type, DCT.Frequency) in g
    assert (URIRef(EU + "language/ENG"), RDF.type, DCT.LinguisticSystem) in g

    publisher = g.value(ds, DCT.publisher)
    assert publisher == URIRef("http://testserver/organisation/camden")
    assert (publisher, RDF.type, FOAF.Agent) in g and g.value(publisher, FOAF.name) == Literal("Camden", lang="en")
    assert g.value(publisher, DCT.type) == URIRef("http://purl.org/adms/publishertype/LocalAuthority")
    contact = g.value(ds, DCAT.contactPoint)
    assert (contact, RDF.type, VCARD.Kind) in g
    assert g.value(contact, VCARD.fn) == Literal("Air quality team")
    assert g.value(contact, VCARD.hasEmail) == URIRef("mailto:air@camden.example.org")

    period = g.value(ds, DCT.temporal)
    assert (period, RDF.type, DCT.PeriodOfTime) in g
    assert g.value(period, DCAT.startDate) == Literal("2023-01-01", datatype=XSD.date)
    assert g.value(period, DCAT.endDate) == Literal("2023-12-31", datatype=XSD.date)
    places = set(g.objects(ds, DCT.spatial))
    boroughs = {p for p in places if isinstance(p, URIRef)}
    assert boroughs == {URIRef("http://statistics.data.gov.uk/id/statistical-geography/E09000007"),
                        URIRef("http://statistics.data.gov.uk/id/statistical-geography/E09000033")}
    assert g.value(URIRef(dcat.GSS_BASE + "E09000007"), SKOS.prefLabel) == Literal("Camden", lang="en")
    (box,) = places - boroughs
    bbox = g.value(box, DCAT.bbox)
    assert bbox.datatype == GSP.wktLiteral
    assert str(bbox) == "POLYGON((-0.2135 51.5128, -0.1053 51.5128, -0.1053 51.5729, -0.2135 51.5729, -0.2135 51.5128))"
    assert str(g.value(box, DCAT.centroid)) == "POINT(-0.1594 51.54285)"

    upload = URIRef(f"{ds}/resource/{full_dataset['upload']['id']}")
    link = URIRef(f"{ds}/resource/{full_dataset['link']['id']}")
    assert set(g.objects(ds, DCAT.distribution)) == {upload, link}
    assert g.value(upload, DCAT.downloadURL) == URIRef(full_dataset["upload"]["download_url"])
    assert g.value(upload, DCAT.accessURL) == URIRef(
        f"http://testserver/dataset/camden-no2-tubes/resource/{full_dataset['upload']['id']}")
    assert g.value(upload, DCT["format"]) == URIRef(EU + "file-type/CSV")
    assert (URIRef(EU + "file-type/CSV"), RDF.type, DCT.MediaTypeOrExtent) in g
    media = g.value(upload, DCAT.mediaType)
    assert media == URIRef("https://www.iana.org/assignments/media-types/text/csv") and (media, RDF.type, DCT.MediaType) in g
    assert g.value(upload, DCAT.byteSize) == Literal(str(len(CSV_BODY)), datatype=XSD.nonNegativeInteger)
    checksum = g.value(upload, SPDX.checksum)
    assert g.value(checksum, SPDX.algorithm) == SPDX.checksumAlgorithm_sha256
    assert str(g.value(checksum, SPDX.checksumValue)) == full_dataset["upload"]["sha256"]
    assert g.value(checksum, SPDX.checksumValue).datatype == XSD.hexBinary
    licence = g.value(upload, DCT.license)
    assert licence == URIRef("https://creativecommons.org/licenses/by/4.0/")
    assert (licence, RDF.type, DCT.LicenseDocument) in g
    assert g.value(licence, DCT.type) == URIRef("http://purl.org/adms/licencetype/Attribution")
    assert g.value(link, DCAT.accessURL) == URIRef("https://www.camden.gov.uk/air-quality")
    assert g.value(link, DCAT.downloadURL) is None  # a web page is not a download
    assert g.value(link, DCT["format"]) == URIRef(EU + "file-type/HTML")

    assert violations(g, official_shapes) == []
    warnings = dcat.validate_graph(g, recommended_shapes)
    assert unexplained_warnings(warnings, db) == []
    assert {(f.focus, f.path) for f in warnings} == {
        (str(upload), "dcatap:availability"), (str(link), "dcatap:availability"),
        *((dcat.GSS_BASE + code, path) for code in ("E09000007", "E09000033") for path in ("dcat:bbox", "dcat:centroid"))}


def test_a_format_outside_the_eu_list_is_still_a_typed_node(client, editor, official_shapes):
    assert client.post("/api/datasets", json={"title": "Odd", "slug": "odd-format", "publisher": "camden",
                                              "description": "d"}, headers=editor.headers).status_code == 201
    added = client.post("/api/datasets/odd-format/resources", headers=editor.headers,
                        json={"title": "Database", "url": "https://example.org/data.sqlite", "format": "SQLite/3",
                              "media_type": "application/x-sqlite3"})
    assert added.status_code == 201, added.text
    g = parse(client.get("/dataset/odd-format.ttl"))
    (distribution,) = g.subjects(RDF.type, DCAT.Distribution)
    fmt = g.value(distribution, DCT["format"])
    assert (fmt, RDF.type, DCT.MediaTypeOrExtent) in g and str(g.value(fmt, RDFS.label)) == "SQLITE/3"
    assert g.value(distribution, DCAT.mediaType) is None  # x- types are not in IANA's register
    assert violations(g, official_shapes) == []


def test_the_shapes_catch_a_broken_graph_and_validate_dataset_is_quick(db, full_dataset, official_shapes):
    with db.session() as session:
        dataset_id = session.scalar(select(Dataset.id).where(Dataset.slug == "camden-no2-tubes"))
        dcat.validate_dataset(session, dataset_id)  # the first call parses the shapes
        started = time.perf_counter()
        assert dcat.validate_dataset(session, dataset_id) == []
        assert time.perf_counter() - started < 2.0
        graph = dcat.dataset_graph(session, "http://testserver", dataset_id)
    node = URIRef(f"http://testserver/dataset/{full_dataset['id']}")
    graph.remove((node, DCT.description, None))
    graph.add((node, DCT.accrualPeriodicity, Literal("monthly")))
    found = {(f.path, f.severity) for f in violations(graph, official_shapes)}
    assert ("dct:description", "Violation") in found and ("dct:accrualPeriodicity", "Violation") in found
    assert Path(dcat.DCAT_AP_3_SHAPES).read_bytes() == OFFICIAL_SHAPES.read_bytes()  # the bundled copy is official


# --- filters, visibility and paging errors --------------------------------------------------------

def titles(graph: Graph) -> set[str]:
    """The titles of the datasets in a graph."""
    return {str(graph.value(node, DCT.title)) for node in dataset_nodes(graph)}


def test_modified_since_keeps_only_datasets_changed_since(client, editor, db):
    from datetime import datetime, timezone

    for slug in ("alpha", "bravo", "charlie"):
        assert client.post("/api/datasets", json={"title": slug.title(), "slug": f"{slug}-data", "publisher": "camden",
                                                  "description": "d"}, headers=editor.headers).status_code == 201
    with db.session() as session:
        for slug, when in (("alpha", datetime(2024, 1, 15, 10, tzinfo=timezone.utc)),
                           ("bravo", datetime(2024, 6, 1, tzinfo=timezone.utc)),
                           ("charlie", datetime(2025, 3, 1, 12, 30, tzinfo=timezone.utc))):
            session.scalars(select(Dataset).where(Dataset.slug == f"{slug}-data")).one().modified = when

    def since(value: str) -> set[str]:
        res = client.get("/catalog.ttl", params={"modified_since": value})
        assert res.status_code == 200, res.text
        graph = parse(res)
        assert graph.value(URIRef("http://testserver/catalog"), HYDRA.totalItems).toPython() == len(dataset_nodes(graph))
        return titles(graph)

    assert since("2024-06-01") == {"Bravo", "Charlie"}
    assert since("2024-06-01T00:00:01Z") == {"Charlie"}
    assert since("2024-06-01T01:00:00+01:00") == {"Bravo", "Charlie"}  # the same instant as midnight UTC
    assert since("2023-01-01T00:00") == {"Alpha", "Bravo", "Charlie"}
    assert since("2026-01-01") == set()
    paged = parse(client.get("/catalog.ttl", params={"modified_since": "2024-06-01", "page_size": 1}))
    assert "modified_since=2024-06-01T00%3A00%3A00Z" in str(paged.value(the_view(paged), HYDRA["next"]))

    for bad in ("yesterday", "2024-13-01", "2024-06-01T25:00", "01/06/2024"):
        res = client.get("/catalog.ttl", params={"modified_since": bad}, headers={"Accept": "application/json"})
        assert res.status_code == 400
        error = res.json()["error"]
        assert "modified_since must be an ISO 8601 date" in error["message"] and bad in error["message"]
        assert "modified_since" in error["fields"]
    for params in ({"page": "0"}, {"page": "two"}, {"page_size": "0"}, {"page_size": "1001"}):
        res = client.get("/catalog.ttl", params=params, headers={"Accept": "application/json"})
        assert res.status_code == 400 and list(params)[0] in res.json()["error"]["message"]
    assert client.get("/catalog.ttl", params={"page": "3"}).status_code == 404
    assert client.get("/catalog.json").status_code == 404


def test_private_draft_and_deleted_datasets_never_reach_the_public(client, editor):
    def make(slug: str, **fields: object) -> None:
        body = {"title": slug, "slug": slug, "publisher": "camden", "description": "d", **fields}
        assert client.post("/api/datasets", json=body, headers=editor.headers).status_code == 201

    make("public-one")
    make("private-one", private=True)
    make("draft-one", state="draft")
    make("deleted-one")
    assert client.delete("/api/datasets/deleted-one", headers=editor.headers).status_code == 204

    for fmt in FORMATS:
        graph = parse(client.get(f"/catalog.{fmt}"), fmt)
        assert titles(graph) == {"public-one"}
        assert graph.value(URIRef("http://testserver/catalog"), HYDRA.totalItems).toPython() == 1
    for slug in ("private-one", "draft-one", "deleted-one"):
        assert client.get(f"/dataset/{slug}.ttl").status_code == 404
        assert client.get(f"/dataset/{slug}", headers={"Accept": "text/turtle"}).status_code == 404
    own = client.get("/dataset/private-one.ttl", headers=editor.headers)  # its publisher may see it
    assert own.status_code == 200 and titles(parse(own)) == {"private-one"}
    assert (None, DCT.accessRights, None) not in parse(own)  # not claimed to be public


# --- content negotiation and links --------------------------------------------------------------------

def test_content_negotiation_on_dataset_pages_and_the_catalogue(client, full_dataset):
    page = "/dataset/camden-no2-tubes"
    node = URIRef(f"http://testserver/dataset/{full_dataset['id']}")
    for accept, media_type, fmt in (("text/turtle", "text/turtle", "ttl"),
                                    ("application/rdf+xml", "application/rdf+xml", "rdf"),
                                    ("application/ld+json", "application/ld+json", "jsonld"),
                                    ("text/turtle, application/json;q=0.5", "text/turtle", "ttl"),
                                    ("text/html;q=0.2, application/rdf+xml", "application/rdf+xml", "rdf")):
        res = client.get(page, headers={"Accept": accept})
        assert res.status_code == 200 and res.headers["content-type"].startswith(media_type), accept
        assert "Accept" in res.headers["vary"]
        assert (node, RDF.type, DCAT.Dataset) in parse(res, fmt)
    assert client.get(page, headers={"Accept": "application/json"}).json()["slug"] == "camden-no2-tubes"
    assert client.get(f"{page}.json", headers={"Accept": "text/turtle"}).json()["slug"] == "camden-no2-tubes"
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    for accept in (browser, "text/turtle;q=0.5, text/html", "*/*"):
        res = client.get(page, headers={"Accept": accept})
        assert res.headers["content-type"].startswith("text/html"), accept
        assert "Accept" in res.headers["vary"]  # caches must not hand the HTML to an RDF client
    assert client.get(f"{page}.xml").status_code == 404

    assert client.get("/catalog", headers={"Accept": "application/rdf+xml"}).headers["content-type"].startswith(
        "application/rdf+xml")
    assert client.get("/catalog", headers={"Accept": "application/ld+json"}).headers["content-type"].startswith(
        "application/ld+json")
    assert client.get("/catalog", headers={"Accept": browser}).headers["content-type"].startswith("text/turtle")
    refused = client.get("/catalog", headers={"Accept": "text/html"})
    assert refused.status_code == 406 and "text/turtle" in refused.text


def test_pages_link_to_their_rdf_in_the_head(client, full_dataset):
    import re

    for page, target in (("/dataset/camden-no2-tubes", "/dataset/camden-no2-tubes"), ("/", "/catalog"),
                         ("/dataset", "/catalog"), ("/dataset?q=tubes", "/catalog")):
        head = client.get(page).text.split("</head>")[0]
        links = dict(re.findall(r'<link rel="alternate" type="([^"]+)" href="([^"]+)"', head))
        for media_type, suffix in (("text/turtle", "ttl"), ("application/rdf+xml", "rdf"),
                                   ("application/ld+json", "jsonld")):
            assert links[media_type] == f"{target}.{suffix}", page
            res = client.get(links[media_type])
            assert res.status_code == 200 and res.headers["content-type"].startswith(media_type)
            assert dataset_nodes(parse(res, suffix))
        assert "application/json" in links  # the JSON twin is still announced


# --- one bad record -------------------------------------------------------------------------------

class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_corrupt_record_is_reported_and_skipped_never_a_500(client, editor, db):
    for slug in ("good-one", "bad-checksum", "good-two"):
        assert client.post("/api/datasets", json={"title": slug, "slug": slug, "publisher": "camden",
                                                  "description": "d"}, headers=editor.headers).status_code == 201
    client.post("/api/datasets/bad-checksum/resources", files={"upload": ("a.csv", b"a,b\n1,2\n", "text/csv")},
                headers=editor.headers)
    with db.engine.begin() as conn:  # damage written behind the service's back
        conn.execute(text("UPDATE resource SET sha256 = 'not-a-checksum'"))
        if db.dialect == "sqlite":  # a value the driver cannot even read back
            conn.execute(text("UPDATE dataset SET temporal_start = 'the first of May' WHERE slug = 'good-two'"))
    unreadable = {"good-two"} if db.dialect == "sqlite" else set()
    skipped = {"bad-checksum"} | unreadable

    collect = _Collect()
    logger = logging.getLogger("smartlondon.catalogue.dcat")
    logger.addHandler(collect)
    try:
        for fmt in FORMATS:
            res = client.get(f"/catalog.{fmt}")
            assert res.status_code == 200, res.text
            assert res.headers["x-skipped-records"] == str(len(skipped))
            graph = parse(res, fmt)
            assert titles(graph) == {"good-one", "good-two"} - unreadable
            comment = str(graph.value(the_view(graph), RDFS.comment))
            assert all(slug in comment for slug in skipped) and "checksum" in comment
    finally:
        logger.removeHandler(collect)
    logged = {r.fields["dataset"] for r in collect.records if hasattr(r, "fields")}  # type: ignore[attr-defined]
    assert logged == skipped

    problems = client.get("/catalog/problems.json").json()
    assert {p["slug"] for p in problems["problems"]} == skipped
    assert "not 64 hexadecimal digits" in next(p["reason"] for p in problems["problems"] if p["slug"] == "bad-checksum")
    listed = client.get("/catalog/problems")
    assert listed.status_code == 200 and "bad-checksum" in listed.text

    single = client.get("/dataset/bad-checksum.ttl", headers={"Accept": "application/json"})
    assert single.status_code == 500
    assert "damaged" in single.json()["error"]["message"] and single.json()["error"]["code"] == "record_corrupt"
    with db.session() as session:
        bad_id = session.scalar(select(Dataset.id).where(Dataset.slug == "bad-checksum"))
        (message,) = dcat.validate_dataset(session, bad_id)
    assert "cannot be expressed in DCAT-AP" in message and "checksum" in message


def test_the_catalogue_node_describes_the_site(client, full_dataset, settings):
    graph = parse(client.get("/catalog.ttl"))
    catalogue = URIRef("http://testserver/catalog")
    assert (catalogue, RDF.type, DCAT.Catalog) in graph
    assert graph.value(catalogue, DCT.title) == Literal(settings.site_name, lang="en")
    assert graph.value(catalogue, DCT.description) == Literal(settings.catalogue_description, lang="en")
    assert graph.value(catalogue, DCT.publisher) == URIRef("http://testserver/organisation/greater-london-authority")
    assert graph.value(catalogue, FOAF.homepage) == URIRef("http://testserver/")
    assert graph.value(catalogue, DCAT.themeTaxonomy) == URIRef(EU + "data-theme")
    assert graph.value(catalogue, DCT.license) == URIRef(
        "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/")
    with_dataset = graph.value(catalogue, DCT.modified).toPython()
    assert with_dataset.isoformat()[:10] == full_dataset["modified"][:10]
