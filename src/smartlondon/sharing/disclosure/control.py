"""``clear``: the automatic disclosure control every gateway output passes before anyone sees it.

Aggregates: margins added, primary suppression by the profile, secondary suppression until no suppressed cell
can be recovered from the margins, the release ledger's differencing check (hit cells suppressed and secondary
suppression run again), then rounding; the release goes into the ledger. What the rules cannot clear goes to
two-person review: SQL outputs without declared count columns, and tables the differencing check would empty.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from . import ledger, review
from .rules import Profile, Table, primary_sql, profile_named
from .types import AggregateResult, Outcome


def clear(session: Session, result: AggregateResult, *, agreement: Any, profile: str, query_id: str | int,
          requested_by: Any) -> Outcome:
    """Apply the profile's rules to an aggregate and return the safe table, or route it to review."""
    rules = profile_named(profile)
    requester_id = getattr(requested_by, "id", None)
    if result.query_kind == "sql":
        return _clear_sql(session, result, rules, agreement=agreement, query_id=query_id, requester_id=requester_id)

    table = Table.from_result(result)
    primary = table.suppress_primary(rules)
    dominance = table.suppress_dominance(rules, result.dominance) if result.dominance else 0
    secondary = table.suppress_secondary()
    hits = ledger.differencing_hits(session, result, table, rules)
    differencing = 0
    before_differencing = table
    if hits:
        before_differencing = table.copy()
        differencing = table.suppress({key for hit in hits for key in hit["cells"]}, "differencing")
        secondary += table.suppress_secondary()
    summary = _summary(rules, table, primary, secondary, differencing, hits)
    if result.dominance_checked:
        summary.update({"suppressed_dominance": dominance, "dominance": [list(r) for r in rules.dominance],
                        "p_percent": rules.p_percent})
    if hits and table.is_empty():
        columns, rows, marks = before_differencing.render(rules)
        reasons = ["Every cell of this table would have to be suppressed because it differs by a few people "
                   "from earlier releases (a differencing risk). Two reviewers must decide whether it can be "
                   "released."]
        entry = _ledger_entry(result, ledger.ledger_cells(before_differencing))
        queued = review.open_review(
            session, query_id=query_id, agreement=agreement, requested_by_id=requester_id, profile=rules.name,
            reasons=reasons, rule_results=summary, ledger_entry=entry,
            proposed={"columns": columns, "rows": rows, "suppressed": marks})
        return review.outcome_of(queued)
    columns, rows, marks = table.render(rules)
    summary["suppressed"] = marks
    ledger.record(session, result, ledger.ledger_cells(table), profile=rules.name, query_id=query_id,
                  agreement=agreement, requested_by_id=requester_id)
    reasons = []
    if marks:
        reasons.append(f"{len({m[0] for m in marks})} of {len(rows)} rows have cells suppressed under the "
                       f"{rules.name} profile ({rules.description})")
    return Outcome("released", columns, rows, summary, reasons)


def _summary(rules: Profile, table: Table, primary: int, secondary: int, differencing: int,
             hits: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "profile": rules.name, "threshold": rules.threshold, "rounding_base": rules.rounding_base,
        "zero_is_safe": rules.zero_is_safe, "margins": bool(table.dimensions),
        "cells": len(table.cells), "suppressed_primary": primary, "suppressed_secondary": secondary,
        "suppressed_differencing": differencing,
        "differencing_hits": [{"release": h["release"], "cells": len(h["cells"])} for h in hits],
    }


def _ledger_entry(result: AggregateResult, cells: list[dict[str, Any]]) -> dict[str, Any]:
    return json.loads(json.dumps({
        "datasets": result.datasets, "dimensions": result.dimensions, "measures": result.measures,
        "where": ledger.canonical_where(result.where), "query_kind": result.query_kind, "cells": cells,
    }, default=str))


def _clear_sql(session: Session, result: AggregateResult, rules: Profile, *, agreement: Any,
               query_id: str | int, requester_id: int | None) -> Outcome:
    columns = list(result.columns) or (list(result.rows[0]) if result.rows and isinstance(result.rows[0], dict)
                                       else [])
    dict_rows = [row if isinstance(row, dict) else dict(zip(columns, row)) for row in result.rows]
    summary: dict[str, Any] = {"profile": rules.name, "threshold": rules.threshold,
                               "rounding_base": rules.rounding_base, "zero_is_safe": rules.zero_is_safe,
                               "margins": False, "count_columns": list(result.count_columns)}
    if not result.count_columns:
        reasons = ["The SQL output declares no count columns, so the rules cannot check it. Two reviewers must "
                   "approve it before it is released (declare \"count_columns\" to have it checked "
                   "automatically)."]
        proposed = {"columns": columns, "rows": [[json_safe(r.get(c)) for c in columns] for r in dict_rows],
                    "suppressed": []}
        queued = review.open_review(session, query_id=query_id, agreement=agreement, requested_by_id=requester_id,
                                    profile=rules.name, reasons=reasons, rule_results=summary,
                                    proposed=proposed, ledger_entry=None)
        return review.outcome_of(queued)
    present = set(dict_rows[0]) if dict_rows else set(columns)
    missing = [c for c in result.count_columns if c not in present]
    if missing:
        from ...core.errors import ValidationFailed

        raise ValidationFailed(f"The declared count columns {', '.join(missing)} are not in the query's output.",
                               {"query.count_columns": f"Name columns of the output: {', '.join(columns)}."})
    rows, marks, hit_rows = primary_sql(dict_rows, columns, result.count_columns, rules)
    summary.update({"suppressed_primary": hit_rows, "suppressed_secondary": 0, "suppressed_differencing": 0,
                    "differencing_hits": [], "suppressed": marks})
    reasons = [f"{hit_rows} of {len(rows)} rows have counts suppressed under the {rules.name} profile."] if hit_rows else []
    return Outcome("released", columns, [[json_safe(v) for v in r] for r in rows], summary, reasons)


def json_safe(value: Any) -> Any:
    """A value that JSON can carry (dates and decimals as text or numbers)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
