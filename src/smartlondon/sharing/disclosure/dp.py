"""Differential privacy for dashboards queried again and again: noisy counts and sums, a budget per agreement.

Mechanisms come from OpenDP: the discrete Laplace mechanism for counts (sensitivity 1: adding or removing one
person changes one cell by one, when each person has one row) and the Laplace mechanism for sums of a field
clamped to published bounds (sensitivity max(|lower|, |upper|)). A release of epsilon is split equally over the
noisy quantities it needs (a mean needs a noisy sum and a noisy count). Each agreement has a total budget
(``dp_epsilon_budget``); every release spends its epsilon, atomically, and a release that would overspend
is refused.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ...core.errors import ValidationFailed
from .models import PrivacyBudget, PrivateRelease
from .types import AggregateResult, Outcome

MECHANISM_COUNT = "discrete Laplace (OpenDP make_laplace, integer)"
MECHANISM_SUM = "Laplace (OpenDP make_laplace, float)"


def _opendp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def budget_of(session: Session, agreement: Any) -> dict[str, float | None]:
    """The agreement's privacy budget: total epsilon (None if it allows no DP), spent and remaining."""
    total = getattr(agreement, "dp_epsilon_budget", None)
    spent = session.scalar(select(PrivacyBudget.spent).where(PrivacyBudget.agreement_id == agreement.id)) or 0.0
    remaining = None if total is None else max(0.0, round(float(total) - spent, 12))
    return {"total": None if total is None else float(total), "spent": round(spent, 12), "remaining": remaining}


def releases_of(session: Session, agreement: Any, limit: int = 100) -> list[PrivateRelease]:
    """The agreement's differentially private releases, newest first."""
    return list(session.scalars(select(PrivateRelease).where(PrivateRelease.agreement_id == agreement.id)
                                .order_by(PrivateRelease.id.desc()).limit(limit)))


def _spend(session: Session, agreement: Any, epsilon: float) -> bool:
    """Spend epsilon if the budget allows, in one conditional UPDATE (safe against concurrent releases)."""
    total = float(agreement.dp_epsilon_budget)
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(PrivacyBudget).values(  # the budget's row, once, even with concurrent first releases
        agreement_id=agreement.id, agreement_slug=getattr(agreement, "slug", "") or "", spent=0.0)
        .on_conflict_do_nothing(index_elements=["agreement_id"]))
    done = session.execute(
        update(PrivacyBudget)
        .where(PrivacyBudget.agreement_id == agreement.id, PrivacyBudget.spent + epsilon <= total + 1e-9)
        .values(spent=PrivacyBudget.spent + epsilon)
        .execution_options(synchronize_session=False))
    return done.rowcount == 1  # type: ignore[attr-defined]


def _quantities(result: AggregateResult) -> tuple[list[tuple[str, str | None]], list[str]]:
    """The noisy quantities the measures need ((kind, field)) and what blocks a DP release, if anything."""
    needed: list[tuple[str, str | None]] = []
    problems: list[str] = []
    for measure in result.measures:
        if measure == "count":
            needed.append(("count", None))
            continue
        kind, _, name = measure.partition("_")
        if kind not in ("sum", "mean") or not name:
            problems.append(f"'{measure}' cannot be released with differential privacy (only count, sum and mean).")
            continue
        if name not in result.bounds:
            problems.append(f"'{measure}' needs bounds for '{name}': send {{\"dp\": {{\"epsilon\": ..., "
                            f"\"bounds\": {{\"{name}\": [lower, upper]}}}}}}.")
            continue
        needed.append(("sum", name))
        if kind == "mean":
            needed.append(("count", None))
    return list(dict.fromkeys(needed)), problems


def release(session: Session, result: AggregateResult, *, agreement: Any, epsilon: float,
            query_id: str | int) -> Outcome:
    """Release the aggregate with noise calibrated to epsilon, spending it from the agreement's budget."""
    try:
        epsilon = float(epsilon)
    except (TypeError, ValueError):
        epsilon = float("nan")
    if not math.isfinite(epsilon) or epsilon <= 0 or epsilon > 10:
        raise ValidationFailed("Epsilon must be a number above 0 and at most 10.",
                               {"disclosure.dp.epsilon": "Enter a positive number such as 0.5."})
    columns = list(result.columns)
    budget = budget_of(session, agreement)
    slug = getattr(agreement, "slug", "") or str(agreement.id)
    summary: dict[str, Any] = {"dp": {"epsilon_requested": epsilon, "budget": budget}}
    if budget["total"] is None:
        return Outcome("refused", columns, [], summary,
                       [f"The agreement {slug} has no differential privacy budget; ask for a disclosure "
                        "profile (\"nhs\" or \"ons\") instead."])
    quantities, problems = _quantities(result)
    if problems:
        return Outcome("refused", columns, [], summary, problems)
    if not _spend(session, agreement, epsilon):
        return Outcome("refused", columns, [], summary, [
            f"The privacy budget of agreement {slug} is exhausted: epsilon {budget['spent']:g} of "
            f"{budget['total']:g} is spent, {budget['remaining']:g} remains, and this release asks for "
            f"{epsilon:g}."])
    share = epsilon / len(quantities)
    noisy: dict[tuple[str, str | None], list[float]] = {}
    mechanisms = []
    for kind, name in quantities:
        if kind == "count":
            values = [int(row.get("count", row.get("_n", 0)) or 0) for row in result.rows]
            noisy[(kind, name)] = _noisy_counts(values, share)
            mechanisms.append(MECHANISM_COUNT)
        else:
            lower, upper = (float(b) for b in result.bounds[name])  # type: ignore[index]
            sums = [_true_sum(row, name) for row in result.rows]
            noisy[(kind, name)] = _noisy_sums(sums, max(abs(lower), abs(upper)), share)
            mechanisms.append(MECHANISM_SUM)
    rows = []
    for i, row in enumerate(result.rows):
        out: list[Any] = [row.get(d) for d in result.dimensions]
        for measure in result.measures:
            if measure == "count":
                out.append(max(0, int(noisy[("count", None)][i])))
            elif measure.startswith("sum_"):
                out.append(round(noisy[("sum", measure[4:])][i], 1))
            else:
                name = measure[5:]
                lower, upper = (float(b) for b in result.bounds[name])
                n = max(1, noisy[("count", None)][i])
                out.append(round(min(upper, max(lower, noisy[("sum", name)][i] / n)), 1))
        rows.append(out)
    session.add(PrivateRelease(agreement_id=agreement.id, query_id=str(query_id), epsilon=epsilon,
                               measures=list(result.measures), mechanism="; ".join(dict.fromkeys(mechanisms))))
    session.flush()
    after = budget_of(session, agreement)
    summary["dp"] = {"epsilon_spent": epsilon, "epsilon_per_quantity": share,
                     "mechanisms": list(dict.fromkeys(mechanisms)), "budget": after,
                     "epsilon_remaining": after["remaining"],
                     "note": "Noisy values; negative counts shown as 0. Each person is assumed to add one row."}
    return Outcome("released", columns, rows, summary,
                   [f"Released with differential privacy (epsilon {epsilon:g}); epsilon {after['remaining']:g} "
                    f"of {after['total']:g} remains for agreement {slug}."])


def _true_sum(row: dict[str, Any], name: str) -> float:
    value = row.get(f"sum_{name}")
    if value is None and row.get(f"mean_{name}") is not None:
        value = float(row[f"mean_{name}"]) * float(row.get("count", row.get("_n", 0)) or 0)
    return float(value or 0.0)


def _noisy_counts(values: list[int], epsilon: float) -> list[int]:
    """Counts with discrete Laplace noise of scale 1/epsilon (one person changes one cell by one)."""
    dp = _opendp()
    measurement = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int),
                                    scale=1.0 / epsilon)
    assert measurement.map(1) <= epsilon + 1e-9
    return list(measurement(values)) if values else []


def _noisy_sums(values: list[float], sensitivity: float, epsilon: float) -> list[float]:
    """Sums of clamped values with Laplace noise of scale sensitivity/epsilon."""
    dp = _opendp()
    measurement = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=float, nan=False)),
                                    dp.l1_distance(T=float), scale=max(sensitivity, 1e-9) / epsilon)
    assert measurement.map(max(sensitivity, 1e-9)) <= epsilon * (1 + 1e-6)
    return list(measurement(values)) if values else []
