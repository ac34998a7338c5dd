"""Catalogue search: full text with field weights, phrases, prefixes, facets, sorting, paging.

The query language is what people type into a search box:
``air quality`` (both words), ``"air quality"`` (the phrase), ``transp*`` (a prefix),
``crime OR police`` (either), ``-covid`` (without). Filters select facet values; several values
of one facet mean any of them, different facets must all match.

One search is one statement for the matching ids in order, then one batch load of the page's
datasets, whatever the page size: no per-result queries. Facet counts come from the in-memory
columnar copy of the facet rows (``facets.py``), which follows every committed change.
"""

from __future__ import annotations

import re
from itertools import chain
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Boolean, Select, and_, func, literal_column, or_, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

import numpy as np

from ..core import events
from ..core.accounts import Actor
from .facets import counter_for
from .listing import DatasetView, load_datasets
from . import ordering, ranking
from .index import FACETS, INDEX_WRITTEN
from .models import Dataset, DatasetFacet

SORTS = ("relevance", "updated", "title", "created")
BM25 = "bm25(dataset_fts, {}, {}, {})".format(*ranking.WEIGHTS)  # SQLite: title, keywords, description
PG_WEIGHTS = "'{0.1,0.2,0.5,1.0}'::float4[]"  # PostgreSQL: D, C (description), B (keywords), A (title)
MAX_PAGE_SIZE = 1000
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)


@dataclass(frozen=True)
class Term:
    """One search term: a word, a prefix or a phrase."""

    text: str
    phrase: bool = False
    prefix: bool = False


@dataclass
class ParsedQuery:
    """A query as clauses that must all match; each clause is a list of alternatives."""

    clauses: list[list[Term]] = field(default_factory=list)
    excluded: list[Term] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True if there is nothing to match."""
        return not self.clauses and not self.excluded


def parse_query(q: str) -> ParsedQuery:
    """Parse what a person typed into terms; never fails, whatever the input."""
    parsed = ParsedQuery()
    pending_or = False
    for match in _TOKEN.finditer(q or ""):
        neg, phrase, raw = match.group(1), match.group(2), match.group(3)
        term: Term | None = None
        negated = bool(neg)
        if phrase is not None:
            words = _WORD.findall(phrase)
            if words:
                term = Term(" ".join(words).lower(), phrase=len(words) > 1)
        else:
            if raw == "OR" and parsed.clauses:
                pending_or = True
                continue
            if raw.startswith("-") and len(raw) > 1:
                negated, raw = True, raw[1:]
            prefix = raw.endswith("*")
            words = _WORD.findall(raw)
            if not words:
                continue
            if len(words) > 1:
                term = Term(" ".join(words).lower(), phrase=True)
            else:
                term = Term(words[0].lower(), prefix=prefix)
        if term is None:
            continue
        if negated:
            parsed.excluded.append(term)
        elif pending_or:
            parsed.clauses[-1].append(term)
        else:
            parsed.clauses.append([term])
        pending_or = False
    return parsed


# --- SQLite FTS5 -----------------------------------------------------------------------------

def _fts5_term(term: Term) -> str:
    quoted = '"' + term.text.replace('"', '""') + '"'
    return quoted + "*" if term.prefix else quoted


def fts5_expression(terms: list[list[Term]]) -> str:
    """An FTS5 MATCH expression for clauses of alternatives."""
    parts = []
    for clause in terms:
        alts = [_fts5_term(t) for t in clause]
        parts.append(alts[0] if len(alts) == 1 else "(" + " OR ".join(alts) + ")")
    return " AND ".join(parts)


# --- PostgreSQL tsquery ------------------------------------------------------------------------

def _pg_term(term: Term) -> ColumnElement[Any]:
    if term.phrase:
        return func.phraseto_tsquery("english", term.text)
    if term.prefix:
        lexeme = re.sub(r"[^\w]", "", term.text)
        return func.to_tsquery("simple", lexeme + ":*")
    return func.plainto_tsquery("english", term.text)


def pg_tsquery(terms: list[list[Term]]) -> ColumnElement[Any]:
    """A tsquery for clauses of alternatives."""
    combined = None
    for clause in terms:
        alt = None
        for term in clause:
            expr = _pg_term(term)
            alt = expr if alt is None else alt.op("||")(expr)
        combined = alt if combined is None else combined.op("&&")(alt)
    assert combined is not None
    return combined


# --- the search itself --------------------------------------------------------------------------

@dataclass
class SearchRequest:
    """What to search for: text, facet filters, sort and page."""

    q: str = ""
    filters: dict[str, list[str]] = field(default_factory=dict)
    sort: str = ""
    page: int = 1
    page_size: int = 20
    bbox: list[float] | None = None
    facet_limit: int = 50
    include_facets: bool = True

    @property
    def effective_sort(self) -> str:
        """The sort in force: relevance for text searches, recently updated otherwise."""
        if self.sort in SORTS and not (self.sort == "relevance" and not self.q.strip()):
            return self.sort
        return "relevance" if parse_query(self.q).clauses else "updated"


@dataclass
class SearchResult:
    """A page of datasets, the total, and the facet counts of the whole result."""

    request: SearchRequest
    total: int
    datasets: list[DatasetView]
    facets: dict[str, list[tuple[str, int]]]

    @property
    def pages(self) -> int:
        """How many pages there are."""
        return max(1, -(-self.total // self.request.page_size))


def _visibility(actor: Actor) -> ColumnElement[bool]:
    if actor.is_sysadmin:
        return Dataset.state != "deleted"
    public = and_(Dataset.state == "active", Dataset.private.is_(False))
    member_of = list(actor.roles)
    if member_of:
        return or_(public, and_(Dataset.state != "deleted", Dataset.organisation_id.in_(member_of)))
    return public


def hits_query(session: Session, actor: Actor, request: SearchRequest) -> Select[Any]:
    """The statement selecting (id, score) of every visible dataset that matches the request."""
    events.run_deferred(session)
    parsed = parse_query(request.q)
    postgres = session.get_bind().dialect.name == "postgresql"
    conditions: list[ColumnElement[bool]] = [_visibility(actor)]
    score: ColumnElement[Any] = literal_column("0")
    from_fts = None
    if parsed.clauses:
        if postgres:
            tsq = pg_tsquery(parsed.clauses)
            conditions.append(Dataset.search_vector.op("@@", return_type=Boolean)(tsq))
            score = -func.ts_rank(literal_column(PG_WEIGHTS), Dataset.search_vector, tsq)
        else:
            from_fts = (select(literal_column("rowid").label("id"),
                               literal_column(BM25).label("score"))
                        .select_from(text("dataset_fts"))
                        .where(text("dataset_fts MATCH :fts").bindparams(fts=fts5_expression(parsed.clauses)))
                        .cte("fts").prefix_with("MATERIALIZED"))  # match once, never once per row
            score = from_fts.c.score
    for term in parsed.excluded:
        if postgres:
            conditions.append(~Dataset.search_vector.op("@@", return_type=Boolean)(pg_tsquery([[term]])))
        else:
            excluded = (select(literal_column("rowid")).select_from(text("dataset_fts"))
                        .where(text(f"dataset_fts MATCH :ex{len(conditions)}")
                               .bindparams(**{f"ex{len(conditions)}": fts5_expression([[term]])})))
            conditions.append(Dataset.id.notin_(excluded))
    for facet, values in request.filters.items():
        values = [v for v in values if v]
        if facet not in FACETS or not values:
            continue
        conditions.append(Dataset.id.in_(
            select(DatasetFacet.dataset_id).where(DatasetFacet.facet == facet, DatasetFacet.value.in_(values))))
    if request.bbox:
        west, south, east, north = request.bbox
        conditions.append(and_(Dataset.bbox_west <= east, Dataset.bbox_east >= west,
                               Dataset.bbox_south <= north, Dataset.bbox_north >= south))
    if from_fts is not None:
        stmt = select(Dataset.id, score.label("score")).join(from_fts, from_fts.c.id == Dataset.id)
    else:
        stmt = select(Dataset.id, score.label("score"))
    return stmt.where(*conditions)


def _order(request: SearchRequest, hits: Any) -> list[Any]:
    sort = request.effective_sort
    if sort == "relevance":
        return [hits.c.score, hits.c.modified.desc(), hits.c.id]
    if sort == "title":
        return [hits.c.title_sort, hits.c.id]
    if sort == "created":
        return [hits.c.created.desc(), hits.c.id.desc()]
    return [hits.c.modified.desc(), hits.c.id.desc()]


def _browses_everything(actor: Actor, request: SearchRequest) -> bool:
    """True for an empty search by someone who sees only public data (its counts are kept ready)."""
    parsed = parse_query(request.q)
    return (parsed.empty and not any(request.filters.values()) and not request.bbox
            and not actor.roles and not actor.is_sysadmin)


def _scored_matches(session: Session, parsed: ParsedQuery) -> list[tuple[int, float]]:
    """Every indexed match as (id, score), lower scores first in rank, straight from the driver."""
    connection = session.connection()
    raw = connection.connection.driver_connection  # plain tuples: fast into numpy
    if connection.dialect.name != "postgresql":
        expression = fts5_expression(parsed.clauses)
        for term in parsed.excluded:
            expression = f"({expression}) NOT {fts5_expression([[term]])}"
        return raw.execute(f"SELECT rowid, {BM25} FROM dataset_fts WHERE dataset_fts MATCH ?",
                           (expression,)).fetchall()
    tsq = pg_tsquery(parsed.clauses)
    stmt = select(Dataset.id, -func.ts_rank(literal_column(PG_WEIGHTS), Dataset.search_vector, tsq)).where(Dataset.search_vector.op("@@", return_type=Boolean)(tsq))
    for term in parsed.excluded:
        stmt = stmt.where(~Dataset.search_vector.op("@@", return_type=Boolean)(pg_tsquery([[term]])))
    compiled = stmt.compile(dialect=connection.dialect)
    with raw.cursor() as cursor:
        cursor.execute(str(compiled), compiled.params)
        return cursor.fetchall()


def _ranked_ids(session: Session, actor: Actor, request: SearchRequest, parsed: ParsedQuery,
                counter: Any, state: Any) -> np.ndarray:
    """Every visible match in relevance order, from the full-text index alone.

    Visibility and facet filters come from the facet counter's columns instead of a join to
    ``dataset`` and subqueries, and the ranking is sorted in numpy.
    """
    scored = None
    if state.text is not None and not session.info.get(INDEX_WRITTEN):
        scored = ranking.score(state.text, parsed.clauses, parsed.excluded)
    if scored is None:  # phrases, PostgreSQL, or this transaction's own index writes: ask the index
        rows = _scored_matches(session, parsed)
        table = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=2 * len(rows)).reshape(-1, 2)
        scored = table[:, 0].astype(np.int64), table[:, 1]
    ids, scores = scored
    if not len(ids):
        return np.zeros(0, dtype=np.int64)
    filters = {f: [v for v in vals if v] for f, vals in request.filters.items() if f in FACETS}
    keep, unknown = counter.visible(ids, list(actor.roles), actor.is_sysadmin, state)
    keep &= counter.matching(ids, filters, state)
    if unknown.any():  # written in this very transaction: ask the database
        fresh = ids[unknown].tolist()
        check = select(Dataset.id).where(Dataset.id.in_(fresh), _visibility(actor))
        for facet, values in filters.items():
            if values:
                check = check.where(Dataset.id.in_(select(DatasetFacet.dataset_id).where(
                    DatasetFacet.facet == facet, DatasetFacet.value.in_(values))))
        allowed = set(session.scalars(check))
        keep[np.flatnonzero(unknown)] = [i in allowed for i in fresh]
    ids, scores = ids[keep], scores[keep]
    return ids[np.argsort(scores, kind="stable")]  # ties keep the index's order


def search(session: Session, actor: Actor, request: SearchRequest) -> SearchResult:
    """Run a search: one page of datasets, the total and the facet counts."""
    events.run_deferred(session)  # index this transaction's own pending changes first
    request.page_size = max(1, min(request.page_size, MAX_PAGE_SIZE))
    request.page = max(1, request.page)
    offset = (request.page - 1) * request.page_size
    counter = counter_for(session.get_bind().engine)
    parsed = parse_query(request.q)
    sort = request.effective_sort
    if parsed.clauses and sort == "relevance" and not request.bbox:
        state = counter.refresh()
        all_ids = _ranked_ids(session, actor, request, parsed, counter, state)
        return _result(session, request, counter, all_ids, offset, state)
    if not request.bbox and not parsed.excluded and not _browses_everything(actor, request) \
            and not session.info.get(INDEX_WRITTEN):
        state = counter.refresh()
        if state.sort_keys is not None and state.text is not None:  # SQLite: sort the matches in memory
            if parsed.clauses:
                matches = _ranked_ids(session, actor, request, parsed, counter, state)
            else:
                filters = {f: [v for v in vals if v] for f, vals in request.filters.items() if f in FACETS}
                matches = counter.filtered_ids(filters, list(actor.roles), actor.is_sysadmin, state)
            return _result(session, request, counter, ordering.order(state.sort_keys, matches, sort), offset, state)
    stmt = hits_query(session, actor, request)
    stmt = stmt.add_columns(Dataset.modified, Dataset.title_sort, Dataset.created)
    hits = stmt.subquery("hits")
    ordered = select(hits.c.id).order_by(*_order(request, hits))
    if not _browses_everything(actor, request):
        return _result(session, request, counter, np.fromiter(session.scalars(ordered), dtype=np.int64), offset)
    page_ids = list(session.scalars(ordered.limit(request.page_size).offset(offset)))
    facets = counter.count_public(request.facet_limit) if request.include_facets else {}
    return SearchResult(request, counter.public_total(), _load(session, page_ids), _site_facets(facets))


def _result(session: Session, request: SearchRequest, counter: Any, all_ids: np.ndarray,
            offset: int, state: Any = None) -> SearchResult:
    """The page, total and facets of a search whose matching ids are all known, in order."""
    page_ids = all_ids[offset:offset + request.page_size].tolist()
    facets = counter.count(all_ids, request.facet_limit, state) if request.include_facets and len(all_ids) else {}
    return SearchResult(request, len(all_ids), _load(session, page_ids), _site_facets(facets))


def _site_facets(facets: dict[str, list[tuple[str, int]]]) -> dict[str, list[tuple[str, int]]]:
    """The site's facets only (the index also keeps CKAN's res_format, for package_search)."""
    return {facet: items for facet, items in facets.items() if facet in FACETS}


def _load(session: Session, page_ids: list[int]) -> list[DatasetView]:
    """The page's datasets in order, as list views (a fixed number of statements)."""
    return load_datasets(session, page_ids)


def request_from_params(params: Any, default_page_size: int = 20) -> SearchRequest:
    """A search request from query parameters (``q``, facet names, ``sort``, ``page``, ``page_size``, ``bbox``).

    Unknown parameters are ignored; bad numbers fall back to the defaults rather than failing.
    """
    def number(name: str, default: int) -> int:
        try:
            return int(params.get(name) or default)
        except (TypeError, ValueError):
            return default

    filters = {facet: [v for v in params.getlist(facet) if v] for facet in FACETS if params.getlist(facet)}
    bbox = None
    if params.get("bbox"):
        try:
            parts = [float(p) for p in str(params.get("bbox")).split(",")]
            bbox = parts if len(parts) == 4 else None
        except ValueError:
            bbox = None
    return SearchRequest(q=(params.get("q") or "")[:500], filters=filters, sort=params.get("sort") or "",
                         page=number("page", 1), page_size=number("page_size", default_page_size), bbox=bbox)
