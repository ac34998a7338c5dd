"""``clear`` against the release ledger, on both databases: safe tables, the ledger, differencing caught.

The agreement is the gateway's own concern; disclosure control reads only its id and slug, so a plain
reference stands in for it here (the gateway tests run the whole path).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from smartlondon.core import accounts
from smartlondon.core.errors import ValidationFailed
from smartlondon.sharing import disclosure
from smartlondon.sharing.disclosure.ledger import canonical_where, differ_by_one_group
from smartlondon.sharing.disclosure.models import Release, Review
from smartlondon.sharing.disclosure.types import AggregateResult


@dataclass
class AgreementRef:
    """The agreement fields disclosure control reads."""

    id: int
    slug: str
    dp_epsilon_budget: float | None = None


AGREEMENT = AgreementRef(1, "home-fire-safety")


def by_borough(counts: dict[str, int], where: dict) -> AggregateResult:
    """Visits by borough: one row per borough with its true count of people."""
    rows = [{"borough": b, "count": n, "_n": n} for b, n in counts.items()]
    return AggregateResult(["fire-visits"], ["borough"], ["count"], rows, where=where)


def run(db, result, profile="nhs", query_id=1, user=None):  # type: ignore[no-untyped-def]
    with db.session() as session:
        outcome = disclosure.clear(session, result, agreement=AGREEMENT, profile=profile, query_id=query_id,
                                   requested_by=user)
    return outcome


def as_dict(outcome) -> dict:  # type: ignore[no-untyped-def]
    return {row[0]: row[-1] for row in outcome.rows}


# --- the filter algebra (no database) ------------------------------------------------------------------

def test_filters_one_group_apart():
    base = canonical_where({"age_band": ["75-84", "65-74"]})
    assert base == {"age_band": ["65-74", "75-84"]}
    assert differ_by_one_group(base, canonical_where({"age_band": ["65-74", "75-84", "85+"]}))  # one value added
    assert differ_by_one_group(base, canonical_where({"age_band": ["65-74"]}))  # one value removed
    assert differ_by_one_group(base, canonical_where({**base, "lives_alone": [True]}))  # one condition added
    assert differ_by_one_group(canonical_where({"age": {">=": 65}}),
                               canonical_where({"age": {">=": 65, "<": 100}}))  # one bound added
    assert differ_by_one_group(canonical_where({"age": {">=": 65}}), canonical_where({"age": {">=": 66}}))
    assert not differ_by_one_group(base, base)
    assert not differ_by_one_group(base, canonical_where({"age_band": ["85+", "55-64", "65-74", "75-84"]}))
    assert not differ_by_one_group(base, canonical_where({"age_band": ["65-74", "85+"]}))  # swapped, not added


# --- clear ----------------------------------------------------------------------------------------------

def test_clear_releases_a_safe_table_and_records_true_counts_in_the_ledger(db):
    outcome = run(db, by_borough({"Camden": 3, "Hackney": 41, "Islington": 26}, {"age_band": ["65-74"]}))
    assert outcome.status == "released"
    assert outcome.columns == ["borough", "count"]
    assert outcome.rows == [["Camden", None], ["Hackney", 40], ["Islington", None], ["Total", 70]]
    assert outcome.summary["suppressed_primary"] == 1 and outcome.summary["suppressed_secondary"] == 1
    assert outcome.summary["profile"] == "nhs" and outcome.summary["rounding_base"] == 5
    assert [0, "count"] in outcome.summary["suppressed"]
    assert "Camden" in str(outcome.as_dict()["table"]) and "3" not in str(outcome.as_dict()["table"]["rows"])
    with db.session() as session:
        release = session.scalars(select(Release)).one()
        assert release.filters == {"age_band": ["65-74"]} and release.dimension_key == "borough"
        true = {tuple(c["key"]): c["n"] for c in release.cells}
        assert true[("Camden",)] == 3 and true[("__total__",)] == 70  # kept private, unrounded


def test_ons_profile_suppresses_more(db):
    outcome = run(db, by_borough({"Camden": 9, "Hackney": 41, "Islington": 8, "Lambeth": 30}, {}), profile="ons")
    assert as_dict(outcome) == {"Camden": None, "Hackney": 40, "Islington": None, "Lambeth": 30, "Total": 90}


def test_unknown_profile_is_refused_with_the_choices(db):
    with pytest.raises(ValidationFailed) as caught:
        run(db, by_borough({"Camden": 30}, {}), profile="strict")
    assert "nhs, ons" in caught.value.fields["disclosure.profile"]


def test_differencing_attack_is_caught(db, make_account):
    """Population, then population plus one small group: every cell the small group changes is withheld."""
    make_account("analyst-a")
    make_account("analyst-b")
    with db.session() as session:
        a = accounts.get_user(session, "analyst-a")
        b = accounts.get_user(session, "analyst-b")
    first = run(db, by_borough({"Camden": 120, "Hackney": 95, "Islington": 80, "Lambeth": 60},
                               {"age_band": ["65-74", "75-84"]}), query_id=1, user=a)
    assert first.status == "released" and first.summary["differencing_hits"] == []
    # another analyst adds the 85+ band: 2 more people in Camden, 1 in Hackney, 30 in Islington, none in Lambeth
    second = run(db, by_borough({"Camden": 122, "Hackney": 96, "Islington": 110, "Lambeth": 60},
                                {"age_band": ["65-74", "75-84", "85+"]}), query_id=2, user=b)
    assert second.status == "released"
    assert second.summary["differencing_hits"] == [{"release": 1, "cells": 2}]
    assert second.summary["suppressed_differencing"] == 2
    shown = as_dict(second)
    assert shown["Camden"] is None and shown["Hackney"] is None  # would reveal 2 and 1 people aged 85+
    assert shown["Islington"] == 110 and shown["Lambeth"] == 60  # a difference of 30, or none, reveals nothing
    # the grand total (33 more people) is safe; the two hidden cells protect each other
    assert shown["Total"] == 390


def test_filters_two_groups_apart_are_not_a_differencing_pair(db):
    run(db, by_borough({"Camden": 120, "Hackney": 95}, {"age_band": ["65-74"]}), query_id=1)
    second = run(db, by_borough({"Camden": 123, "Hackney": 96}, {"age_band": ["65-74", "75-84", "85+"]}), query_id=2)
    assert second.summary["differencing_hits"] == []


def test_differencing_that_would_empty_the_table_goes_to_review(db, make_account):
    make_account("analyst-a")
    with db.session() as session:
        a = accounts.get_user(session, "analyst-a")
    run(db, by_borough({"Camden": 50, "Hackney": 40}, {}), query_id=1, user=a)
    outcome = run(db, by_borough({"Camden": 52, "Hackney": 43}, {"lives_alone": [True]}), query_id=2, user=a)
    assert outcome.status == "review"
    assert outcome.rows == [] and "differencing" in outcome.reasons[0]
    with db.session() as session:
        review = session.get(Review, outcome.summary["review_id"])
        assert review.status == "pending" and review.requested_by_id == a.id
        assert review.proposed["rows"][0] == ["Camden", 50]  # what approval would release
        assert session.scalar(select(func.count()).select_from(Release)) == 1  # nothing released yet


def test_sql_output_with_declared_counts_is_cleared_without_one_goes_to_review(db):
    rows = [{"ward": "Gospel Oak", "n": 23}, {"ward": "Kentish Town", "n": 4}]
    counted = AggregateResult(["fire-visits"], ["ward"], ["n"], rows, query_kind="sql", count_columns=["n"])
    outcome = run(db, counted)
    assert outcome.status == "released" and outcome.rows == [["Gospel Oak", 25], ["Kentish Town", None]]
    raw = AggregateResult(["fire-visits"], ["ward", "n"], [], rows, query_kind="sql")
    outcome = run(db, raw, query_id=2)
    assert outcome.status == "review" and outcome.rows == []
    assert "declares no count columns" in outcome.reasons[0]
    wrong = AggregateResult(["fire-visits"], ["ward"], ["people"], rows, query_kind="sql", count_columns=["people"])
    with pytest.raises(ValidationFailed, match="people"):
        run(db, wrong, query_id=3)



def test_the_same_table_released_again_is_recorded_once(db):
    where = {"age_band": ["65-74"]}
    for query_id in (1, 2, 3):  # a dashboard refreshed three times over unchanged data
        assert run(db, by_borough({"Camden": 50, "Hackney": 40}, where), query_id=query_id).status == "released"
    run(db, by_borough({"Camden": 51, "Hackney": 40}, where), query_id=4)  # the data changed: a new entry
    with db.session() as session:
        assert [r.query_id for r in session.scalars(select(Release).order_by(Release.id))] == ["1", "4"]
