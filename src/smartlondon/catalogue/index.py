"""The search index: full text and facet rows, written in the dataset's own transaction.

SQLite keeps the text in the FTS5 table ``dataset_fts`` (rowid = dataset id); PostgreSQL keeps a
weighted ``tsvector`` on the dataset row (title A, keywords B, description C). Facet rows go in
``dataset_facet``. Nothing here commits: the caller's transaction makes the index and the data
change together, so they cannot drift. ``rebuild`` recreates everything from the tables.
"""

from __future__ import annotations

import json
import time

from sqlalchemy import delete, event, func, insert, select, text, update
from sqlalchemy.orm import Session, selectinload

from ..core import events
from ..core.reference import format_group
from .formats import display_format
from .models import Dataset, DatasetFacet, SearchChange

_PG_VECTOR = text(
    "UPDATE dataset SET search_vector = setweight(to_tsvector('english', :t), 'A') || "
    "setweight(to_tsvector('english', :k), 'B') || setweight(to_tsvector('english', :d), 'C') "
    "WHERE id = :id"
)
FACETS = ("publisher", "keyword", "format", "licence", "frequency", "borough", "theme", "openness", "charter")
DERIVED_FACETS = ("openness", "charter")  # from the stored charter scorecard (charter/scores.py)
API_FACETS = ("res_format",)  # indexed for the CKAN API's package_search facets, not shown on the site


def facet_rows(ds: Dataset) -> list[dict[str, object]]:
    """The (facet, value) rows of one dataset."""
    values: set[tuple[str, str]] = {
        ("publisher", ds.organisation.slug if ds.organisation else ""),
        ("licence", ds.licence_id),
        ("frequency", ds.frequency),
    }
    values.update(("keyword", k.keyword) for k in ds.keywords)
    values.update(("theme", t.theme) for t in ds.themes)
    values.update(("borough", a.gss_code) for a in ds.areas)
    values.update(("format", format_group(r.format)) for r in ds.resources)
    values.update(("res_format", display_format(r.format)) for r in ds.resources if r.format)
    return [{"facet": f, "value": v[:100], "dataset_id": ds.id} for f, v in sorted(values) if v]


def index_later(session: Session, ds: Dataset) -> None:
    """Re-index this dataset once, before its transaction commits (however often it changes in it).

    Readers of the index in the same transaction (``search``, ``package_search``) first run the
    deferred work (``events.run_deferred``), so they still see the transaction's own writes.
    """
    if ds.id is None:
        session.flush()
    events.defer(session, "search.index", ds.id)


@events.deferred("search.index")
def _index_deferred(session: Session, dataset_ids: list[int]) -> None:
    session.flush()
    if len(dataset_ids) == 1:
        ds = session.get(Dataset, dataset_ids[0])
        if ds is None:  # created in a savepoint that rolled back
            unindex_dataset(session, dataset_ids[0])
        else:
            index_dataset(session, ds)
        return
    for start in range(0, len(dataset_ids), 500):  # a batch (a harvest page): bulk statements
        chunk = dataset_ids[start:start + 500]
        datasets = list(session.scalars(select(Dataset).where(Dataset.id.in_(chunk)).options(
            selectinload(Dataset.keywords), selectinload(Dataset.themes), selectinload(Dataset.areas),
            selectinload(Dataset.resources), selectinload(Dataset.organisation))))
        _unindex_many(session, chunk)
        index_many(session, datasets, note=False)


def _unindex_many(session: Session, dataset_ids: list[int]) -> None:
    """Remove these datasets from the index, noting each change for the facet counters."""
    session.info[INDEX_WRITTEN] = True
    changes = session.scalars(insert(SearchChange).returning(SearchChange.id),
                              [{"dataset_id": i, "at": time.time()} for i in dataset_ids]).all()
    session.execute(delete(DatasetFacet).where(DatasetFacet.dataset_id.in_(dataset_ids)))
    if session.get_bind().dialect.name == "postgresql":
        session.execute(update(Dataset).where(Dataset.id.in_(dataset_ids)).values(search_vector=None)
                        .execution_options(synchronize_session=False))
    else:
        session.execute(text("DELETE FROM dataset_fts WHERE rowid IN (SELECT value FROM json_each(:ids))"),
                        {"ids": json.dumps(dataset_ids)})
    if any(change % PRUNE_EVERY == 0 for change in changes):
        prune_changes(session)


def index_dataset(session: Session, ds: Dataset) -> None:
    """(Re)write the index entries of one dataset; deleted datasets are removed."""
    session.flush()
    unindex_dataset(session, ds.id)
    if ds.state == "deleted":
        return
    keywords = " ".join(k.keyword for k in ds.keywords)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_PG_VECTOR, {"id": ds.id, "t": ds.title, "k": keywords, "d": ds.description or ""})
    else:
        session.execute(
            text("INSERT INTO dataset_fts(rowid, title, keywords, description) VALUES (:id, :t, :k, :d)"),
            {"id": ds.id, "t": ds.title, "k": keywords, "d": ds.description or ""},
        )
    rows = facet_rows(ds) + derived_facet_rows(session, [ds.id])
    if rows:
        session.execute(insert(DatasetFacet), rows)


def derived_facet_rows(session: Session, dataset_ids: list[int]) -> list[dict[str, object]]:
    """The stored facet rows other parts compute: the charter scorecard's openness stars and rating."""
    from .charter.scores import facet_rows_for

    return facet_rows_for(session, dataset_ids)


def set_facet_values(session: Session, facets: tuple[str, ...], values: dict[int, dict[str, list[str]]]) -> None:
    """Replace these datasets' values of the given (derived) facets, and note the changes for facet counters."""
    ids = list(values)
    table = DatasetFacet.__table__  # plain statements: this runs in every dataset's transaction
    connection = session.connection()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        connection.execute(table.delete().where(
            table.c.dataset_id == chunk[0] if len(chunk) == 1 else table.c.dataset_id.in_(chunk),
            table.c.facet.in_(facets)))
    rows = [{"facet": f, "value": v[:100], "dataset_id": dataset_id}
            for dataset_id, by_facet in values.items() for f, vals in by_facet.items() for v in vals if v]
    if rows:
        connection.execute(table.insert(), rows)
    if len(ids) == 1:
        _note_change(session, ids[0])
    elif ids:
        session.execute(insert(SearchChange), [{"dataset_id": i, "at": time.time()} for i in ids])


PRUNE_EVERY = 5000  # changes between two prunings of the change log
KEEP_SECONDS = 86400.0  # how long a change stays in the log


INDEX_WRITTEN = "smartlondon.search_index_written"  # session.info flag: this transaction wrote the index


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_index_writes(session: Session) -> None:
    session.info.pop(INDEX_WRITTEN, None)


def _note_change(session: Session, dataset_id: int | None) -> None:
    session.info[INDEX_WRITTEN] = True
    change_id = session.execute(insert(SearchChange).returning(SearchChange.id),
                                [{"dataset_id": dataset_id, "at": time.time()}]).scalar_one()
    if change_id % PRUNE_EVERY == 0:
        prune_changes(session)


def prune_changes(session: Session, keep_seconds: float = KEEP_SECONDS) -> int:
    """Drop change-log rows older than ``keep_seconds``; returns how many went.

    A marker row (``dataset_id`` = minus the highest id removed) tells facet counters that are
    further behind than that to reload instead of following the log.
    """
    cutoff = time.time() - keep_seconds
    boundary = session.scalar(select(func.max(SearchChange.id)).where(SearchChange.at < cutoff))
    if not boundary:
        return 0
    removed = session.execute(delete(SearchChange).where(SearchChange.id <= boundary)).rowcount
    session.execute(insert(SearchChange), [{"dataset_id": -boundary, "at": time.time()}])
    return removed or 0


def unindex_dataset(session: Session, dataset_id: int) -> None:
    """Remove one dataset from the index."""
    _note_change(session, dataset_id)
    session.execute(delete(DatasetFacet).where(DatasetFacet.dataset_id == dataset_id))
    if session.get_bind().dialect.name == "postgresql":
        session.execute(update(Dataset).where(Dataset.id == dataset_id).values(search_vector=None)
                        .execution_options(synchronize_session=False))
    else:
        session.execute(text("DELETE FROM dataset_fts WHERE rowid = :id"), {"id": dataset_id})


def index_many(session: Session, datasets: list[Dataset], note: bool = True) -> None:
    """Index many datasets at once (bulk statements); they must not be in the index already."""
    live = [ds for ds in datasets if ds.state != "deleted"]
    if not live:
        return
    texts = [{"id": ds.id, "t": ds.title, "k": " ".join(k.keyword for k in ds.keywords),
              "d": ds.description or ""} for ds in live]
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_PG_VECTOR, texts)
    else:
        session.execute(text("INSERT INTO dataset_fts(rowid, title, keywords, description) "
                             "VALUES (:id, :t, :k, :d)"), texts)
    rows = [row for ds in live for row in facet_rows(ds)] + derived_facet_rows(session, [ds.id for ds in live])
    if rows:
        session.execute(insert(DatasetFacet), rows)
    if note:
        session.execute(insert(SearchChange), [{"dataset_id": ds.id, "at": time.time()} for ds in live])


def rebuild(session: Session, batch: int = 2000, progress=None) -> int:  # type: ignore[no-untyped-def]
    """Recreate the whole index from the catalogue tables; returns the number of datasets indexed."""
    session.execute(delete(DatasetFacet))
    session.execute(delete(SearchChange))
    _note_change(session, None)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(update(Dataset).values(search_vector=None).execution_options(synchronize_session=False))
    else:
        session.execute(text("DELETE FROM dataset_fts"))
    ids = list(session.scalars(select(Dataset.id).order_by(Dataset.id)))
    count = 0
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        datasets = list(session.scalars(select(Dataset).where(Dataset.id.in_(chunk))))
        index_many(session, datasets, note=False)  # the reset marker covers them
        count += sum(1 for ds in datasets if ds.state != "deleted")
        session.flush()
        session.expunge_all()
        if progress:
            progress(len(chunk))
    return count
