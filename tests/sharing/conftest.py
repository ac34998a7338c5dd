"""Fixtures shared by the LODA sharing tests (F owns this file; G and H add fixtures at the end).

* ``store``: the test's restricted DuckDB store;
* ``visits``: a small restricted table ``fire_visits`` (registered as the catalogue dataset ``fire-visits``,
  owned by the London Fire Brigade), 60 people in Camden, Brent and Hackney;
* ``agreement``: an approved agreement ``home-fire-safety`` (controller: LFB; recipient: Camden) covering it;
* ``analyst``: a Camden member with a token; ``officer``: the LFB admin who approved the agreement.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from smartlondon.core import accounts
from smartlondon.sharing import agreements
from smartlondon.sharing.store import RestrictedStore

VISIT_COLUMNS = {"person": "VARCHAR", "borough": "VARCHAR", "age": "INTEGER", "band": "VARCHAR",
                 "smoke_alarm": "BOOLEAN", "disability": "BOOLEAN"}
VISIT_FIELDS = [
    {"name": "person", "type": "VARCHAR", "description": "Pseudonym of the person", "identifier": True},
    {"name": "borough", "type": "VARCHAR", "description": "Borough of the home"},
    {"name": "age", "type": "INTEGER", "description": "Age in years"},
    {"name": "band", "type": "VARCHAR", "description": "Deprivation band"},
    {"name": "smoke_alarm", "type": "BOOLEAN", "description": "A working smoke alarm was found"},
    {"name": "disability", "type": "BOOLEAN", "description": "A disability was recorded", "sensitive": True},
]


def visit_rows() -> list[tuple[Any, ...]]:
    """60 people: 30 in Camden, 20 in Brent, 10 in Hackney; ages 20 to 79; two deprivation bands."""
    rows = []
    for i in range(60):
        borough = "Camden" if i < 30 else "Brent" if i < 50 else "Hackney"
        rows.append((f"p{i:03d}", borough, 20 + i, "most" if i % 2 else "least", i % 3 == 0, i % 5 == 0))
    return rows


@pytest.fixture
def store(settings) -> Iterator[RestrictedStore]:  # type: ignore[no-untyped-def]
    """The test's restricted store (closed afterwards)."""
    restricted = RestrictedStore(settings)
    yield restricted
    restricted.close()


@pytest.fixture
def visits(db, store):  # type: ignore[no-untyped-def]
    """The restricted dataset ``fire-visits`` and its table, loaded."""
    store.load_rows("fire_visits", VISIT_COLUMNS, visit_rows(), subject_column="person")
    with db.session() as session:
        agreements.register_restricted_dataset(
            session, slug="fire-visits", title="Home fire safety visits", owner_org="london-fire-brigade",
            description="Synthetic person-level records of home fire safety visits.", table="fire_visits",
            fields=VISIT_FIELDS, subject_column="person", area_field="borough")
    return "fire-visits"


def agreement_data(**changes: Any) -> dict[str, Any]:
    """A valid agreement body (LFB shares fire-visits with Camden), with ``changes`` applied."""
    data: dict[str, Any] = {
        "slug": "home-fire-safety", "title": "Home fire safety visits for people at risk",
        "controllers": ["london-fire-brigade"], "recipients": ["camden"],
        "officers": {"london-fire-brigade": "Data Protection Officer"},
        "purposes": ["dpv:PublicBenefit", "dpv:ImprovePublicServices"],
        "purpose_statement": "Find households at higher risk of fire to offer them a home visit.",
        "lawful_basis": "6(1)(e)", "special_condition": None,
        "public_benefit": "Fewer deaths and injuries from fires at home.",
        "datasets": [{"dataset": "fire-visits", "fields": ["borough", "age", "band", "smoke_alarm", "person"]}],
        "identifiability": "aggregate", "disclosure_profile": "nhs", "dp_epsilon_budget": 1.0,
        "retention": "Outputs kept for 2 years", "start_date": "2024-01-01", "end_date": "2099-12-31",
        "dpia_reference": "LFB-DPIA-2024-07", "withheld": ["dpia_reference"],
    }
    data.update(changes)
    return data


@pytest.fixture
def officer(make_account):  # type: ignore[no-untyped-def]
    """An admin of the London Fire Brigade: its named officer for agreements."""
    return make_account("lfb-officer", london_fire_brigade="admin")


@pytest.fixture
def analyst(make_account):  # type: ignore[no-untyped-def]
    """A Camden analyst with an API token."""
    return make_account("camden-analyst", camden="member")


@pytest.fixture
def agreement(db, visits, officer):  # type: ignore[no-untyped-def]
    """The approved agreement ``home-fire-safety``."""
    with db.session() as session:
        user = accounts.get_user(session, officer.username)
        actor = accounts.actor_for(user, "token")
        made = agreements.create_agreement(session, agreement_data(), by=actor)
        agreements.approve(session, made, actor)
    return "home-fire-safety"


def query_body(**changes: Any) -> dict[str, Any]:
    """A gateway body: count and mean age by borough of fire-visits, under home-fire-safety."""
    body: dict[str, Any] = {"agreement": "home-fire-safety", "purpose": "dpv:PublicBenefit",
                            "query": {"dataset": "fire-visits", "measures": [{"op": "count"}, {"op": "mean", "field": "age"}],
                                      "by": ["borough"]},
                            "disclosure": {"profile": "nhs"}}
    body.update(changes)
    return body
