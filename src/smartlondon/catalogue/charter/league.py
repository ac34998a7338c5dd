"""League tables: how publishers and boroughs score, and which checks their datasets fail.

Only public, active datasets count (the tables compare what everyone can see). ``dataset_score``
carries each dataset's publisher, whether it is public, and every check's status, so a league
table, or the results of each check, is one grouped scan of that table (joined to
``dataset_area`` for boroughs), whatever the number of publishers.

Those scans cost a few hundred milliseconds at 100,000 datasets, so each process keeps the
catalogue-wide tables for ``CACHE_SECONDS``. A commit that changed any scorecard in this process
drops them at once; changes made by other processes show within ``CACHE_SECONDS``. One dataset's
own scorecard is never cached.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ...core.models import Organisation
from ..models import Dataset, DatasetArea
from . import rules
from .models import DatasetScore

LEAGUE_SORTS = ("score", "name", "datasets", "stars")
DATASET_SORTS = ("score", "title", "stars", "updated")
CACHE_SECONDS = 30.0
CHANGED = "smartlondon.charter.changed"  # session.info flag: this transaction rewrote scorecards

_cache: "weakref.WeakKeyDictionary[Engine, dict[str, tuple[float, Any]]]" = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def _cached(session: Session, key: str, compute: Callable[[], Any]) -> Any:
    """A catalogue-wide table from this process's cache, or computed (and kept) if too old."""
    engine = _engine_of(session)
    with _cache_lock:
        entry = _cache.get(engine, {}).get(key)
    if entry is not None and time.monotonic() - entry[0] < CACHE_SECONDS:
        return entry[1]
    value = compute()
    with _cache_lock:
        _cache.setdefault(engine, {})[key] = (time.monotonic(), value)
    return value


def forget(engine: Engine) -> None:
    """Drop this process's cached tables of a database (the next view recomputes them)."""
    with _cache_lock:
        _cache.pop(engine, None)


@event.listens_for(Session, "after_commit")
def _forget_after_commit(session: Session) -> None:
    if session.info.pop(CHANGED, False):
        forget(_engine_of(session))


@event.listens_for(Session, "after_rollback")
def _keep_after_rollback(session: Session) -> None:
    session.info.pop(CHANGED, None)


def _status_column(name: str) -> Any:
    return getattr(DatasetScore, f"check_{name}")


def _count_of(name: str, status: str) -> Any:
    return func.sum(case((_status_column(name) == status, 1), else_=0))


@dataclass
class LeagueRow:
    """One publisher's or borough's line of a league table."""

    key: str
    name: str
    datasets: int = 0
    score: int | None = None
    stars: float | None = None
    failing: dict[str, int] = field(default_factory=dict)
    rank: int | None = None

    @property
    def rating(self) -> str:
        """The rating of the average score."""
        return rules.rating_for(self.score)

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON."""
        return {"key": self.key, "name": self.name, "rank": self.rank, "datasets": self.datasets,
                "score": self.score, "rating": self.rating, "rating_label": rules.RATING_LABELS[self.rating],
                "average_stars": self.stars,
                "failing": {name: self.failing.get(name, 0) for name in rules.CHECK_NAMES}}


def _groups(session: Session, group: Any, join: Any = None) -> dict[Any, LeagueRow]:
    """Scored public datasets, average score and stars, and failures of each check, per group."""
    stmt = select(group, func.count(), func.avg(DatasetScore.score), func.avg(DatasetScore.stars),
                  *(_count_of(name, rules.FAIL) for name in rules.CHECK_NAMES)).select_from(DatasetScore)
    if join is not None:
        stmt = stmt.join(*join)
    rows: dict[Any, LeagueRow] = {}
    for key, count, score, stars, *failing in session.execute(
            stmt.where(DatasetScore.public.is_(True)).group_by(group)):
        rows[key] = LeagueRow(key=str(key), name=str(key), datasets=count,
                              score=round(float(score)) if score is not None else None,
                              stars=round(float(stars), 1) if stars is not None else None,
                              failing={name: int(n or 0) for name, n in zip(rules.CHECK_NAMES, failing) if n})
    return rows


def _rank(rows: list[LeagueRow]) -> None:
    """Rank by average score (ties share a rank); rows with no score are unranked."""
    ranked = sorted((r for r in rows if r.score is not None), key=lambda r: -r.score)  # type: ignore[operator]
    previous, rank = None, 0
    for position, row in enumerate(ranked, start=1):
        if row.score != previous:
            rank, previous = position, row.score
        row.rank = rank


def sort_rows(rows: list[LeagueRow], sort: str, descending: bool) -> list[LeagueRow]:
    """League rows in the asked order; rows without a value always last, ties by name."""
    sort = sort if sort in LEAGUE_SORTS else "score"
    value = {"score": lambda r: r.score, "name": lambda r: r.name.lower(), "datasets": lambda r: r.datasets,
             "stars": lambda r: r.stars}[sort]
    present = [r for r in rows if value(r) is not None]
    missing = sorted((r for r in rows if value(r) is None), key=lambda r: r.name.lower())
    present.sort(key=lambda r: r.name.lower())
    present.sort(key=value, reverse=descending)
    return present + missing


def _copies(rows: list[LeagueRow]) -> list[LeagueRow]:
    return [replace(row, failing=dict(row.failing)) for row in rows]


def publisher_league(session: Session) -> list[LeagueRow]:
    """Every organisation with public datasets, ranked by its datasets' average score."""
    return _copies(_cached(session, "publishers", lambda: _publisher_league(session)))


def _publisher_league(session: Session) -> list[LeagueRow]:
    rows = _groups(session, DatasetScore.organisation_id)
    names = {oid: (slug, name) for oid, slug, name in session.execute(
        select(Organisation.id, Organisation.slug, Organisation.name).where(Organisation.id.in_(list(rows))))}
    for oid, row in rows.items():
        row.key, row.name = names.get(oid, (str(oid), str(oid)))
    result = list(rows.values())
    _rank(result)
    return result


def borough_league(session: Session) -> list[LeagueRow]:
    """Every London borough, ranked by the average score of the public datasets that cover it."""
    return _copies(_cached(session, "boroughs", lambda: _borough_league(session)))


def _borough_league(session: Session) -> list[LeagueRow]:
    rows = _groups(session, DatasetArea.gss_code, (DatasetArea, DatasetArea.dataset_id == DatasetScore.dataset_id))
    for gss, name in session.execute(select(Organisation.gss_code, Organisation.name).where(
            Organisation.kind == "local-authority", Organisation.gss_code.is_not(None))):
        row = rows.setdefault(gss, LeagueRow(key=gss, name=name))
        row.name = name
    result = list(rows.values())
    _rank(result)
    return result


def _scope(stmt: Select[Any], organisation_id: int | None, gss: str | None) -> Select[Any]:
    stmt = stmt.where(DatasetScore.public.is_(True))
    if organisation_id is not None:
        stmt = stmt.where(DatasetScore.organisation_id == organisation_id)
    if gss is not None:
        stmt = stmt.where(DatasetScore.dataset_id.in_(select(DatasetArea.dataset_id).where(DatasetArea.gss_code == gss)))
    return stmt


def check_breakdown(session: Session, organisation_id: int | None = None,
                    gss: str | None = None) -> dict[str, dict[str, int]]:
    """How many public datasets pass, fail, skip or await each check (of one publisher or borough)."""
    if organisation_id is None and gss is None:
        found = _cached(session, "checks", lambda: _check_breakdown(session, None, None))
        return {name: dict(counts) for name, counts in found.items()}
    return _check_breakdown(session, organisation_id, gss)


def _check_breakdown(session: Session, organisation_id: int | None, gss: str | None) -> dict[str, dict[str, int]]:
    pairs = [(name, status) for name in rules.CHECK_NAMES for status in rules.STATUSES]
    stmt = _scope(select(*(_count_of(name, status) for name, status in pairs)).select_from(DatasetScore),
                  organisation_id, gss)
    totals = session.execute(stmt).one()
    counts = {name: {status: 0 for status in rules.STATUSES} for name in rules.CHECK_NAMES}
    for (name, status), count in zip(pairs, totals):
        counts[name][status] = int(count or 0)
    return counts


def stars_breakdown(session: Session, organisation_id: int | None = None, gss: str | None = None) -> dict[int, int]:
    """How many public datasets have each number of openness stars."""
    if organisation_id is None and gss is None:
        return dict(_cached(session, "stars", lambda: _stars_breakdown(session, None, None)))
    return _stars_breakdown(session, organisation_id, gss)


def _stars_breakdown(session: Session, organisation_id: int | None, gss: str | None) -> dict[int, int]:
    stmt = _scope(select(DatasetScore.stars, func.count()).select_from(DatasetScore), organisation_id, gss)
    found = dict(session.execute(stmt.group_by(DatasetScore.stars)).all())
    return {stars: int(found.get(stars, 0)) for stars in range(5, -1, -1)}


@dataclass
class ScoredDataset:
    """A line of a publisher's or borough's list of datasets."""

    slug: str
    title: str
    modified: datetime
    publisher: str
    score: int | None
    rating: str
    stars: int
    failing: list[str] = field(default_factory=list)

    def as_dict(self, base_url: str = "") -> dict[str, Any]:
        """The line as JSON."""
        return {"slug": self.slug, "title": self.title, "url": f"{base_url}/dataset/{self.slug}",
                "scorecard": f"{base_url}/dataset/{self.slug}/charter", "publisher": self.publisher,
                "modified": self.modified.isoformat(), "score": self.score, "rating": self.rating,
                "rating_label": rules.RATING_LABELS.get(self.rating, self.rating), "stars": self.stars,
                "failing": self.failing}


def scored_datasets(session: Session, *, organisation_id: int | None = None, gss: str | None = None,
                    failing: str | None = None, sort: str = "score", descending: bool = True, page: int = 1,
                    page_size: int = 50) -> tuple[int, list[ScoredDataset]]:
    """One page of scored public datasets (of a publisher or borough, optionally failing one check)."""
    statuses = [_status_column(name) for name in rules.CHECK_NAMES]
    stmt = _scope(select(Dataset.slug, Dataset.title, Dataset.modified, Organisation.name, DatasetScore.score,
                         DatasetScore.rating, DatasetScore.stars, *statuses)
                  .select_from(DatasetScore).join(Dataset, Dataset.id == DatasetScore.dataset_id)
                  .join(Organisation, Organisation.id == DatasetScore.organisation_id), organisation_id, gss)
    if failing in rules.CHECK_NAMES:
        stmt = stmt.where(_status_column(failing) == rules.FAIL)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    sort = sort if sort in DATASET_SORTS else "score"
    column = {"score": DatasetScore.score, "title": Dataset.title_sort, "stars": DatasetScore.stars,
              "updated": Dataset.modified}[sort]
    order = [column.desc().nulls_last() if descending else column.asc().nulls_last(), Dataset.title_sort,
             DatasetScore.dataset_id]
    rows = session.execute(stmt.order_by(*order).limit(page_size).offset((max(1, page) - 1) * page_size)).all()
    return total, [ScoredDataset(slug, title, modified, publisher, score, rating, stars,
                                 [name for name, status in zip(rules.CHECK_NAMES, found) if status == rules.FAIL])
                   for slug, title, modified, publisher, score, rating, stars, *found in rows]
