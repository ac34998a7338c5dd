"""Differential privacy releases on both databases: noise applied, the budget spent, shown and exhausted."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import pytest

from smartlondon.core.errors import ValidationFailed
from smartlondon.sharing.disclosure import dp
from smartlondon.sharing.disclosure.types import AggregateResult


@dataclass
class AgreementRef:
    """The agreement fields differential privacy reads."""

    id: int
    slug: str
    dp_epsilon_budget: float | None


def counts(n: int = 40) -> AggregateResult:
    """A dashboard tile: visits by borough."""
    rows = [{"borough": f"Borough {i:02d}", "count": 100 + i, "_n": 100 + i} for i in range(n)]
    return AggregateResult(["fire-visits"], ["borough"], ["count"], rows)


def release(db, agreement, epsilon, result=None, query_id=1):  # type: ignore[no-untyped-def]
    with db.session() as session:
        return dp.release(session, result or counts(), agreement=agreement, epsilon=epsilon, query_id=query_id)


def test_budget_is_spent_shown_and_exhausted(db):
    agreement = AgreementRef(7, "dashboard", dp_epsilon_budget=1.0)
    first = release(db, agreement, 0.4)
    assert first.status == "released"
    assert first.summary["dp"]["epsilon_spent"] == 0.4
    assert first.summary["dp"]["budget"] == {"total": 1.0, "spent": 0.4, "remaining": 0.6}
    assert release(db, agreement, 0.6, query_id=2).status == "released"  # exactly the rest
    refused = release(db, agreement, 0.1, query_id=3)
    assert refused.status == "refused" and refused.rows == []
    assert "privacy budget of agreement dashboard is exhausted" in refused.reasons[0]
    assert "1 of 1 is spent" in refused.reasons[0]
    with db.session() as session:
        assert dp.budget_of(session, agreement) == {"total": 1.0, "spent": 1.0, "remaining": 0.0}
        assert [r.query_id for r in dp.releases_of(session, agreement)] == ["2", "1"]  # the refusal spent nothing
    other = AgreementRef(8, "another", dp_epsilon_budget=1.0)  # budgets are per agreement
    assert release(db, other, 0.5).status == "released"


def test_noise_is_applied_with_the_scale_epsilon_sets(db):
    result = counts(200)
    true = [row["count"] for row in result.rows]
    agreement = AgreementRef(9, "noisy", dp_epsilon_budget=100.0)
    noisy = release(db, agreement, 0.5, result)
    errors = [row[1] - t for row, t in zip(noisy.rows, true)]
    # discrete Laplace with scale 1/0.5 = 2: standard deviation about 2.8; 200 cells all exact has probability ~1e-120
    assert sum(e != 0 for e in errors) > 100
    assert 1.2 < statistics.pstdev(errors) < 4.5
    assert abs(statistics.mean(errors)) < 1.5
    precise = release(db, agreement, 8.0, result, query_id=2)  # more epsilon, less noise
    assert statistics.pstdev([row[1] - t for row, t in zip(precise.rows, true)]) < 1.0


def test_sums_need_bounds_and_means_stay_within_them(db):
    agreement = AgreementRef(10, "ages", dp_epsilon_budget=10.0)
    rows = [{"borough": "Camden", "count": 500, "_n": 500, "sum_age": 35000.0, "mean_age": 70.0}]
    unbounded = AggregateResult(["v"], ["borough"], ["count", "mean_age"], rows)
    refused = release(db, agreement, 1.0, unbounded)
    assert refused.status == "refused" and "needs bounds for 'age'" in refused.reasons[0]
    bounded = AggregateResult(["v"], ["borough"], ["count", "sum_age", "mean_age"], rows, bounds={"age": [0, 110]})
    out = release(db, agreement, 3.0, bounded, query_id=2)
    assert out.status == "released" and out.columns == ["borough", "count", "sum_age", "mean_age"]
    assert 0 <= out.rows[0][3] <= 110 and abs(out.rows[0][3] - 70) < 15
    assert out.summary["dp"]["epsilon_per_quantity"] == 1.5  # a noisy count and a noisy sum


def test_agreement_without_budget_and_bad_epsilon_are_refused(db):
    assert "no differential privacy budget" in release(db, AgreementRef(11, "plain", None), 0.5).reasons[0]
    for bad in (0, -1, "lots", float("nan"), 50):
        with pytest.raises(ValidationFailed, match="Epsilon must be"):
            release(db, AgreementRef(12, "x", 1.0), bad)
