"""What other parts of the platform may ask about resources' tables, without opening the store.

Both answers come from the ``tabular_table`` rows of the main database in one query, so the
charter scorecard can score thousands of datasets without touching DuckDB.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import TabularTable


def validation_summary(session: Session, resource_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per resource id: ``status`` (pending, loading, loaded, failed or not-tabular), ``valid``, ``errors``, ``rows``."""
    ids = sorted({int(i) for i in resource_ids})
    found: dict[int, dict[str, Any]] = {}
    if ids:
        rows = session.execute(select(TabularTable.resource_id, TabularTable.status, TabularTable.valid,
                                      TabularTable.error_count, TabularTable.row_count)
                               .where(TabularTable.resource_id.in_(ids)))
        for resource_id, status, valid, errors, rows_loaded in rows:
            found[resource_id] = {"status": status, "valid": valid if status in ("loaded", "failed") else None,
                                  "errors": int(errors or 0), "rows": rows_loaded}
    return {i: found.get(i, {"status": "not-tabular", "valid": None, "errors": 0, "rows": None}) for i in ids}


def gss_columns(session: Session, resource_id: int) -> list[str]:
    """The loaded columns of a resource whose values are all GSS codes (empty if none or not loaded)."""
    value = session.scalar(select(TabularTable.gss_columns).where(TabularTable.resource_id == resource_id,
                                                                  TabularTable.available.is_(True)))
    return list(value or [])
