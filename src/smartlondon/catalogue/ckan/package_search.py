"""``package_search``: CKAN's search over the catalogue's own index, in a fixed number of statements.

Text in ``q`` is ranked with the catalogue's full-text index (FTS5 BM25 on SQLite, weighted
``ts_rank`` on PostgreSQL), exactly as the site's search does; ``fq`` (and ``q`` when it uses
field syntax) is compiled from Solr syntax to SQL on indexed columns (``solr.py``). Every sort
ends with the dataset's row id, so paging with ``start`` never skips or repeats a dataset.

Facet counts for organization, groups, tags, license_id and res_format come from the in-memory
facet columns that the site's search uses (``facets.py``; res_format rows are indexed for this API).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Boolean, and_, func, literal_column, or_, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ...core import events
from ...core.accounts import Actor
from ..facets import counter_for
from ..models import Dataset
from ..search import BM25, PG_WEIGHTS, fts5_expression, parse_query, pg_tsquery
from . import solr
from .actions import SearchQueryError, as_bool, as_int, as_list, invalid

DEFAULT_SORT = "score desc, metadata_modified desc"
ROWS_DEFAULT, ROWS_MAX = 10, 1000
FACET_LIMIT_DEFAULT = 50
# CKAN facet field -> the catalogue's indexed facet counted in memory.
COUNTED_FACETS = {"organization": "publisher", "groups": "theme", "tags": "keyword", "license_id": "licence",
                  "res_format": "res_format"}
SORT_COLUMNS = {
    "metadata_modified": Dataset.modified, "metadata_created": Dataset.created, "name": Dataset.slug,
    "title_string": Dataset.title_sort, "title": Dataset.title_sort, "id": Dataset.uuid,
}
IGNORED_SORTS = {"views_recent", "views_total"}  # tracking counts, which this platform does not keep
_SORT_PART = re.compile(r"^\s*([A-Za-z_]+)\s+(asc|desc)\s*$", re.IGNORECASE)


@dataclass
class PackageQuery:
    """A package_search request, checked."""

    q: str = ""
    fq: list[str] = field(default_factory=list)
    rows: int = ROWS_DEFAULT
    start: int = 0
    sort: str = DEFAULT_SORT
    facet_fields: list[str] = field(default_factory=list)
    facet_limit: int = FACET_LIMIT_DEFAULT
    facet_mincount: int = 1
    include_private: bool = False
    include_drafts: bool = False


@dataclass
class PackageHits:
    """A page of dataset row ids in order, the total, and facet counts ({field: [(value, count)]})."""

    count: int
    ids: list[int]
    facets: dict[str, list[tuple[str, int]]]
    sort: str


def query_from_params(params: dict[str, Any]) -> PackageQuery:
    """The search request from action parameters; bad numbers are CKAN validation errors (409)."""
    rows = as_int(params, "rows", ROWS_DEFAULT, natural=True) or 0
    start = as_int(params, "start", 0, natural=True) or 0
    facet_limit = as_int(params, "facet.limit", FACET_LIMIT_DEFAULT)
    mincount = as_int(params, "facet.mincount", 1, natural=True)
    fq: list[str] = []
    for name in ("fq", "fq_list"):
        value = params.get(name)
        if value in (None, ""):
            continue
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(item, str) for item in items):
            raise invalid(name, "Must be a string" if name == "fq" else "Not a list of strings")
        fq.extend(item for item in items if item.strip())
    q = params.get("q") or ""
    if not isinstance(q, str):
        raise invalid("q", "Must be a string")
    sort = params.get("sort")
    if sort is not None and not isinstance(sort, str):
        raise invalid("sort", "Must be a string")
    sort = (sort or "").strip()
    return PackageQuery(
        q=q, fq=fq, rows=min(rows, ROWS_MAX), start=start,  # more rows than the maximum: the maximum, as in CKAN
        sort=sort if sort and sort != "rank" else DEFAULT_SORT,
        facet_fields=as_list(params, "facet.field") or [],
        facet_limit=FACET_LIMIT_DEFAULT if facet_limit is None else facet_limit,
        facet_mincount=1 if mincount is None else mincount,
        include_private=as_bool(params, "include_private"), include_drafts=as_bool(params, "include_drafts"),
    )


def visibility(actor: Actor, include_private: bool, include_drafts: bool) -> ColumnElement[bool]:
    """The datasets a search may return: public and active, plus what the actor may see if asked."""
    public = and_(Dataset.state == "active", Dataset.private.is_(False))
    member_of = list(actor.roles)
    if not (include_private or include_drafts) or not (member_of or actor.is_sysadmin):
        return public
    condition = Dataset.state.in_(["active", "draft"] if include_drafts else ["active"])
    if not include_private:
        condition = and_(condition, Dataset.private.is_(False))
    if actor.is_sysadmin:
        return condition
    return and_(condition, or_(public, Dataset.organisation_id.in_(member_of)))


def _parse_sort(sort: str) -> list[tuple[str, bool]]:
    """[(field, descending)] from "field dir, field dir"; a malformed sort is a SearchQueryError."""
    parts = []
    for piece in sort.split(","):
        match = _SORT_PART.match(piece)
        if not match:
            raise SearchQueryError(f'Search Query is invalid: "Invalid sort parameter: {sort!r}". '
                                   'Sort with "field asc" or "field desc", separated by commas.')
        name, direction = match.group(1), match.group(2).lower()
        if name != "score" and name not in SORT_COLUMNS and name not in IGNORED_SORTS:
            raise SearchQueryError(f'Search Query is invalid: "Invalid sort parameter: cannot sort on {name!r}". '
                                   f"Sort on score, {', '.join(sorted(SORT_COLUMNS))}.")
        parts.append((name, direction == "desc"))
    return parts


class _Statement:
    """The matching datasets of one request: conditions, and the text score when there is one."""

    def __init__(self, session: Session, actor: Actor, query: PackageQuery) -> None:
        self.postgres = session.get_bind().dialect.name == "postgresql"
        compiler = solr.Compiler(self.postgres)
        self.conditions: list[ColumnElement[bool]] = [visibility(actor, query.include_private, query.include_drafts)]
        self.score: Any = None
        self.fts: Any = None
        q = query.q.strip()
        if q and q not in ("*:*", "*"):
            if solr.has_fields(q):
                self.conditions.append(compiler.compile(solr.parse(q)))
            else:  # Lucene's operators in the site's own query language
                words = re.sub(r"(?:\bNOT|!)\s+", "-", q).replace("||", " OR ").split()
                self._text(compiler, " ".join(w for w in words if w not in ("AND", "&&")))
        for fq in query.fq:
            self.conditions.append(compiler.compile(solr.parse(fq)))

    def _text(self, compiler: solr.Compiler, q: str) -> None:
        parsed = parse_query(q)
        if parsed.clauses:
            if self.postgres:
                tsq = pg_tsquery(parsed.clauses)
                self.conditions.append(Dataset.search_vector.op("@@", return_type=Boolean)(tsq))
                self.score = -func.ts_rank(literal_column(PG_WEIGHTS), Dataset.search_vector, tsq)
            else:
                self.fts = (select(literal_column("rowid").label("id"), literal_column(BM25).label("score"))
                            .select_from(text("dataset_fts"))
                            .where(text("dataset_fts MATCH :ckan_q").bindparams(ckan_q=fts5_expression(parsed.clauses)))
                            .cte("ckan_fts").prefix_with("MATERIALIZED"))
                self.score = self.fts.c.score
        for term in parsed.excluded:
            self.conditions.append(~compiler.text_match([term]))

    def select(self, *columns: Any) -> Any:
        """SELECT the columns of every match."""
        stmt = select(*columns)
        if self.fts is not None:
            stmt = stmt.select_from(Dataset).join(self.fts, self.fts.c.id == Dataset.id)
        return stmt.where(*self.conditions)

    def order_by(self, sort: list[tuple[str, bool]]) -> list[Any]:
        """ORDER BY terms for the sort, ending with the row id so that paging is stable."""
        terms: list[Any] = []
        for name, descending in sort:
            if name == "score":
                if self.score is not None:  # lower is better in the index's own scores
                    terms.append(self.score.desc() if not descending else self.score.asc())
            elif name in SORT_COLUMNS:
                column = SORT_COLUMNS[name]
                terms.append(column.desc() if descending else column.asc())
        terms.append(Dataset.id.asc())
        return terms


def run(session: Session, actor: Actor, query: PackageQuery) -> PackageHits:
    """Search: the page's dataset ids in order, the total and the facet counts asked for."""
    events.run_deferred(session)  # index this transaction's own pending changes first
    sort = _parse_sort(query.sort)
    statement = _Statement(session, actor, query)
    facets: dict[str, list[tuple[str, int]]] = {}
    if query.facet_fields:
        all_ids = np.fromiter(session.scalars(statement.select(Dataset.id)), dtype=np.int64)
        count = len(all_ids)
        facets = _facets(session, statement, query, all_ids)
    else:  # the total and the page separately: each gets its own best plan (index scan with LIMIT, bitmap count)
        count = session.scalar(statement.select(func.count()).order_by(None)) or 0
    ids: list[int] = []
    if query.rows > 0 and query.start < count:
        page = statement.select(Dataset.id).order_by(*statement.order_by(sort)).limit(query.rows).offset(query.start)
        ids = list(session.scalars(page))
    return PackageHits(count=count, ids=ids, facets=facets, sort=query.sort)


def _facets(session: Session, statement: _Statement, query: PackageQuery,
            all_ids: np.ndarray) -> dict[str, list[tuple[str, int]]]:
    limit = query.facet_limit if query.facet_limit >= 0 else 10**9
    out: dict[str, list[tuple[str, int]]] = {}
    counted = [f for f in query.facet_fields if f in COUNTED_FACETS]
    indexed: dict[str, list[tuple[str, int]]] = {}
    if counted and len(all_ids):
        indexed = counter_for(session.get_bind().engine).count(all_ids, 10**9)
    for name in query.facet_fields:
        if name in COUNTED_FACETS:
            items = indexed.get(COUNTED_FACETS[name], [])
        else:
            items = []
        out[name] = [(value, n) for value, n in items if n >= max(query.facet_mincount, 1)][:limit]
    return out
