"""Scorecards: gathered, computed and stored in the dataset's own transaction, and recomputed in bulk.

On every ``dataset.changed`` event the dataset's scorecard is recomputed in the same session, so
the score, its reasons and the search facets built from it (openness stars and rating) commit or
roll back with the change itself. The cheap checks run there and then; the slow ones are read from
their stored results (``link_check`` written by the link checker, ``dataset_dcat_check`` written by
:func:`refresh_dcat`). :func:`rescore_all` recomputes every dataset (``smartlondon catalogue score``),
which also catches up with time: a dataset becomes late without anyone changing it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from ...core import events
from ...core.db import Database, utcnow
from .. import index
from ..models import Dataset, DatasetFacet, Licence
from . import inputs, league, rules
from .models import DatasetCheck, DatasetDcatCheck, DatasetScore, LinkCheck
from .rules import CHECKS, RATING_LABELS, STATUS_LABELS, DatasetFacts, DcatFacts, LinkFacts, ResourceFacts, Scorecard

OPENNESS_FACET, RATING_FACET = FACETS = index.DERIVED_FACETS  # "openness" (stars), "charter" (rating)
_CHUNK = 500


# --- gathering the facts ---------------------------------------------------------------------------

def _chunks(ids: list[int], size: int = _CHUNK) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _matching(column: Any, ids: list[Any]) -> Any:
    """``column = id`` for one id (the common case: one dataset changed), ``column IN (...)`` for more."""
    return column == ids[0] if len(ids) == 1 else column.in_(ids)


# Core tables: these statements run in every dataset's transaction, so they skip the ORM's overhead.
_LINK = LinkCheck.__table__
_DCAT = DatasetDcatCheck.__table__
_SCORE = DatasetScore.__table__
_CHECK = DatasetCheck.__table__
_FACET = DatasetFacet.__table__


def link_facts(session: Session, resource_ids: list[int]) -> dict[int, LinkFacts]:
    """The last link check of each resource."""
    found: dict[int, LinkFacts] = {}
    for chunk in _chunks(resource_ids):
        for rid, target, alive, status, error, checked_at, links_out in session.connection().execute(
                select(_LINK.c.resource_id, _LINK.c.target, _LINK.c.alive, _LINK.c.status_code, _LINK.c.error,
                       _LINK.c.checked_at, _LINK.c.links_out).where(_matching(_LINK.c.resource_id, chunk))):
            found[rid] = LinkFacts(target, alive, status, error, checked_at, links_out)
    return found


def _same_time(a: datetime, b: datetime) -> bool:
    return abs(a - b) < timedelta(milliseconds=1)


def gather(session: Session, datasets: list[Dataset]) -> dict[int, DatasetFacts]:
    """What the rules need for each dataset, read with a fixed number of statements per batch."""
    resource_ids = [r.id for ds in datasets for r in ds.resources]
    links = link_facts(session, resource_ids) if resource_ids else {}
    tables = [r.id for ds in datasets for r in ds.resources if (r.format or "").upper() in rules.TABULAR_FORMATS]
    schema = inputs.schema_results(session, tables) if tables else None
    area_tables = [r.id for ds in datasets if ds.geography in rules.AREA_GEOGRAPHIES for r in ds.resources
                   if (r.format or "").upper() in rules.TABULAR_FORMATS]
    if schema is not None:  # only loaded tables can have GSS columns: ask about those alone
        loaded = [rid for rid in area_tables if (schema.get(rid) or {}).get("valid") is not None]
        gss = inputs.gss_columns(session, loaded) if area_tables else None
        if gss is not None:
            gss.update({rid: [] for rid in area_tables if rid not in gss})
    else:
        gss = inputs.gss_columns(session, area_tables) if area_tables else None
    dataset_ids = [ds.id for ds in datasets]
    dcat_rows: dict[int, Any] = {}
    for chunk in _chunks(dataset_ids):
        dcat_rows.update({row.dataset_id: row for row in session.connection().execute(
            select(_DCAT.c.dataset_id, _DCAT.c.valid, _DCAT.c.problems, _DCAT.c.checked_at,
                   _DCAT.c.dataset_modified).where(_matching(_DCAT.c.dataset_id, chunk)))})
    dcat_available = inputs.dcat_available()
    # By id, not through ds.licence: a licence changed in this transaction is not on the relationship yet.
    # (The register is small and loaded with the datasets, so this is the identity map, rarely a query.)
    licences = {lid: session.get(Licence, lid) for lid in {ds.licence_id for ds in datasets}}
    facts: dict[int, DatasetFacts] = {}
    for ds in datasets:
        stored = dcat_rows.get(ds.id)
        licence = licences.get(ds.licence_id)
        facts[ds.id] = DatasetFacts(
            title=ds.title, description=ds.description or "", licence_title=licence.title if licence else "",
            licence_open=bool(licence and licence.is_open), frequency=ds.frequency, modified=ds.modified,
            geography=ds.geography, keywords=len(ds.keywords), themes=len(ds.themes),
            contact_email=ds.contact_email or "", temporal=bool(ds.temporal_start or ds.temporal_end),
            spatial=bool(ds.areas) or ds.bbox_west is not None,
            resources=[ResourceFacts(id=r.id, title=r.title, kind=r.kind, format=r.format or "",
                                     description=r.description or "", url=r.url, storage_key=r.storage_key,
                                     link=links.get(r.id)) for r in ds.resources],
            schema=schema, gss=gss,
            dcat=DcatFacts(stored.valid, list(stored.problems or []), stored.checked_at,
                           _same_time(stored.dataset_modified, ds.modified)) if stored is not None else None,
            dcat_available=dcat_available,
        )
    return facts


def compute(session: Session, datasets: list[Dataset], now: datetime | None = None) -> dict[int, Scorecard]:
    """The scorecards of these datasets (not stored)."""
    now = now or utcnow()
    return {dataset_id: rules.scorecard(f, now) for dataset_id, f in gather(session, datasets).items()}


# --- storing -----------------------------------------------------------------------------------------

def facet_values(score: int | None, stars: int) -> dict[str, list[str]]:
    """The search facet values of a scorecard: its openness stars and its rating."""
    return {OPENNESS_FACET: [str(stars)], RATING_FACET: [rules.rating_for(score)]}


def facet_rows_for(session: Session, dataset_ids: list[int]) -> list[dict[str, object]]:
    """The stored scorecards' facet rows of these datasets (for the search index)."""
    rows: list[dict[str, object]] = []
    for chunk in _chunks(dataset_ids):
        for dataset_id, score, stars in session.connection().execute(
                select(DatasetScore.dataset_id, DatasetScore.score, DatasetScore.stars)
                .where(DatasetScore.dataset_id.in_(chunk))):
            for facet, values in facet_values(score, stars).items():
                rows.extend({"facet": facet, "value": v, "dataset_id": dataset_id} for v in values)
    return rows


def store(session: Session, datasets: list[Dataset], cards: dict[int, Scorecard],
          now: datetime | None = None) -> int:
    """Write the scorecards and, where they changed, their facet rows; returns how many facets changed.

    Plain statements rather than the unit of work (a rescore of the whole catalogue writes eight
    check rows per dataset); ORM copies of these rows already in the session are expired.
    """
    now = now or utcnow()
    ids = [ds.id for ds in datasets]
    if not ids:
        return 0
    indexed: dict[int, dict[str, list[str]]] = {i: {} for i in ids}
    connection = session.connection()
    _delete_scorecards(session, ids)
    for chunk in _chunks(ids):
        for dataset_id, facet, value in connection.execute(
                select(_FACET.c.dataset_id, _FACET.c.facet, _FACET.c.value)
                .where(_matching(_FACET.c.dataset_id, chunk), _FACET.c.facet.in_(FACETS))):
            indexed[dataset_id].setdefault(facet, []).append(value)
    connection.execute(_SCORE.insert(), [
        {"dataset_id": ds.id, "organisation_id": ds.organisation_id,
         "public": ds.state == "active" and not ds.private, "score": cards[ds.id].score,
         "rating": cards[ds.id].rating, "stars": cards[ds.id].stars, "passed": cards[ds.id].passed,
         "failed": cards[ds.id].failed, "not_checked": cards[ds.id].not_checked, "computed_at": now,
         **{f"check_{name}": result.status for name, result in cards[ds.id].checks.items()}}
        for ds in datasets])
    connection.execute(_CHECK.insert(), [
        {"dataset_id": i, "name": name, "status": result.status, "reason": result.reason, "detail": result.detail}
        for i in ids for name, result in cards[i].checks.items()])
    changed = {ds.id: facet_values(cards[ds.id].score, cards[ds.id].stars) for ds in datasets
               if ds.state != "deleted"}
    changed = {i: wanted for i, wanted in changed.items()
               if {f: sorted(v) for f, v in indexed[i].items()} != wanted}
    if changed:
        index.set_facet_values(session, FACETS, changed)
    return len(changed)


def _delete_scorecards(session: Session, ids: list[int]) -> None:
    """Delete these datasets' scorecards, and expire any ORM copies of them the session holds."""
    session.info[league.CHANGED] = True  # the league tables this process keeps are out of date once this commits
    connection = session.connection()
    for chunk in _chunks(ids):
        connection.execute(_CHECK.delete().where(_matching(_CHECK.c.dataset_id, chunk)))
        connection.execute(_SCORE.delete().where(_matching(_SCORE.c.dataset_id, chunk)))
    for i in ids:
        for cls, key in ((DatasetScore, (i,)), *((DatasetCheck, (i, c.name)) for c in CHECKS)):
            loaded = session.identity_map.get(identity_key(cls, key))
            if loaded is not None:
                session.expire(loaded)


def rescore(session: Session, datasets: list[Dataset], now: datetime | None = None) -> dict[int, Scorecard]:
    """Recompute and store the scorecards of these datasets in the session's transaction."""
    session.flush()  # the statements below go straight to the connection
    live = [ds for ds in datasets if ds.state != "deleted"]
    cards = compute(session, live, now)
    store(session, live, cards, now)
    return cards


@events.subscribe("resource.loaded")
@events.subscribe("dataset.changed")
def _rescore_changed(session: Session, dataset_id: int, **_: Any) -> None:
    events.defer(session, "charter.rescore", dataset_id)  # once per transaction, however many changes


@events.deferred("charter.rescore")
def _rescore_deferred(session: Session, dataset_ids: list[int]) -> None:
    rescore_ids(session, dataset_ids)


@events.subscribe("dataset.deleted")
def _forget_deleted(session: Session, dataset_id: int, **_: Any) -> None:
    session.flush()
    _delete_scorecards(session, [dataset_id])


def rescore_ids(session: Session, dataset_ids: list[int], now: datetime | None = None) -> int:
    """Recompute the scorecards of the datasets with these ids; returns how many were scored."""
    count = 0
    for chunk in _chunks(sorted(set(dataset_ids))):
        datasets = list(session.scalars(select(Dataset).where(Dataset.id.in_(chunk))))
        count += len(rescore(session, datasets, now))
    return count


def rescore_all(db: Database, progress: Callable[[int], None] | None = None, batch: int = _CHUNK,
                now: datetime | None = None) -> int:
    """Recompute every dataset's scorecard, committing batch by batch; returns how many were scored."""
    with db.session() as session:
        ids = list(session.scalars(select(Dataset.id).where(Dataset.state != "deleted").order_by(Dataset.id)))
        _delete_scorecards(session, list(session.scalars(
            select(DatasetScore.dataset_id).join(Dataset, Dataset.id == DatasetScore.dataset_id)
            .where(Dataset.state == "deleted"))))
    count = 0
    for chunk in _chunks(ids, batch):
        with db.session() as session:
            datasets = list(session.scalars(select(Dataset).where(Dataset.id.in_(chunk))))
            count += len(rescore(session, datasets, now))
        if progress:
            progress(len(chunk))
    return count


def count_datasets(db: Database) -> int:
    """How many datasets can be scored."""
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Dataset).where(Dataset.state != "deleted")) or 0


# --- the slow input: DCAT-AP validation --------------------------------------------------------------

def stale_dcat(db: Database, everything: bool = False, limit: int | None = None) -> list[int]:
    """Ids of datasets whose DCAT-AP record has not been validated since it last changed."""
    with db.session() as session:
        query = (select(Dataset.id, Dataset.modified, DatasetDcatCheck.dataset_modified)
                 .outerjoin(DatasetDcatCheck, DatasetDcatCheck.dataset_id == Dataset.id)
                 .where(Dataset.state != "deleted").order_by(Dataset.id))
        if not everything:
            query = query.where((DatasetDcatCheck.dataset_id.is_(None))
                                | (DatasetDcatCheck.dataset_modified != Dataset.modified))
        found = [i for i, modified, checked in session.execute(query)
                 if everything or checked is None or not _same_time(checked, modified)]
    return found[:limit] if limit is not None else found


def refresh_dcat(db: Database, dataset_ids: list[int], progress: Callable[[int], None] | None = None) -> int:
    """Validate these datasets' DCAT-AP records, store the results and rescore; returns how many were validated."""
    if not inputs.dcat_available():
        return 0
    done = 0
    for dataset_id in dataset_ids:
        with db.session() as session:
            ds = session.get(Dataset, dataset_id)
            if ds is None or ds.state == "deleted":
                continue
            problems = inputs.validate_dcat(session, dataset_id)
            if problems is not None:
                row = session.get(DatasetDcatCheck, dataset_id) or DatasetDcatCheck(dataset_id=dataset_id)
                row.valid, row.problems = not problems, problems[:100]
                row.dataset_modified, row.checked_at = ds.modified, utcnow()
                session.add(row)
                session.flush()
                rescore(session, [ds])
                done += 1
        if progress:
            progress(1)
    return done


# --- what pages and the API show ---------------------------------------------------------------------

def card_dict(score: int | None, rating: str, stars: int, checks: dict[str, tuple[str, str, dict[str, Any]]],
              computed_at: datetime | None) -> dict[str, Any]:
    """A scorecard as pages and JSON show it, checks in the scorecard's order."""
    return {
        "score": score, "rating": rating, "rating_label": RATING_LABELS.get(rating, rating), "stars": stars,
        "computed_at": computed_at.isoformat() if computed_at else None,
        "passed": sum(1 for s, _, _ in checks.values() if s == rules.PASS),
        "failed": sum(1 for s, _, _ in checks.values() if s == rules.FAIL),
        "not_checked": sum(1 for s, _, _ in checks.values() if s == rules.NOT_CHECKED),
        "checks": [{"name": c.name, "title": c.title, "question": c.question, "status": checks[c.name][0],
                    "status_label": STATUS_LABELS.get(checks[c.name][0], checks[c.name][0]),
                    "reason": checks[c.name][1], "detail": checks[c.name][2]}
                   for c in CHECKS if c.name in checks],
    }


def scorecard_of(session: Session, ds: Dataset) -> dict[str, Any]:
    """The dataset's stored scorecard (computed now, without storing, if it has none yet)."""
    events.run_deferred(session)  # a rescore this transaction asked for happens first
    row = session.get(DatasetScore, ds.id)
    if row is not None and row.checks:
        return card_dict(row.score, row.rating, row.stars,
                         {n: (c.status, c.reason, dict(c.detail or {})) for n, c in row.checks.items()},
                         row.computed_at)
    card = compute(session, [ds])[ds.id]
    return card_dict(card.score, card.rating, card.stars,
                     {n: (c.status, c.reason, c.detail) for n, c in card.checks.items()}, None)
