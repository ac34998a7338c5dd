"""Fast counts of whole entity tables: exact where cheap, otherwise a declared estimate.

``count_entities(session, etype, threshold)`` counts an entity set's table. When the database's
planner statistics say the table holds more than ``threshold`` rows (PostgreSQL: ``pg_class.reltuples``,
kept by autovacuum/ANALYZE; SQLite: ``sqlite_stat1``, written by ANALYZE), it answers that figure and
says it is an estimate; otherwise (small tables, or no statistics yet) it runs the exact ``COUNT(*)``.
Only unfiltered whole tables are estimated: a filtered count is always exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from .models import EntityType

ESTIMATE_THRESHOLD = 1_000_000


@dataclass(frozen=True)
class Count:
    """A count and whether it is an estimate."""

    value: int
    estimated: bool


def statistics_rows(session: Session, table: str) -> int | None:
    """The planner's row count of ``table``, or None when there are no statistics."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        value = session.execute(text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"),
                                {"t": table}).scalar()
        return int(value) if value is not None and value >= 0 else None
    exists = session.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first()
    if exists is None:
        return None
    stats = session.execute(text("SELECT stat FROM sqlite_stat1 WHERE tbl = :t"), {"t": table}).scalars().all()
    counts = [int(s.split()[0]) for s in stats if s and s.split()[0].isdigit()]
    return max(counts) if counts else None


def count_entities(session: Session, etype: EntityType, threshold: int = ESTIMATE_THRESHOLD) -> Count:
    """The number of entities in a whole entity set (see the module's docstring)."""
    table = etype.model.__tablename__
    estimate = statistics_rows(session, table)
    if estimate is not None and estimate > threshold:
        return Count(estimate, True)
    query = select(func.count()).select_from(etype.model.__table__)
    return Count(int(session.execute(query).scalar_one()), False)
