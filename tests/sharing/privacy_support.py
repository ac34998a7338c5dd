"""What the privacy tests share: valid NHS numbers, a small restricted dataset of people, an agreement over it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from smartlondon.core import accounts
from smartlondon.core.db import Database
from smartlondon.settings import Settings
from smartlondon.sharing import agreements
from smartlondon.sharing.privacy.ingest import ingest_rows
from smartlondon.sharing.privacy.pseudonyms import Pseudonymiser
from smartlondon.sharing.store import RestrictedStore

DATASET = "test-fire-visits"
TABLE = "test_fire_visits"
AGREEMENT = "test-fire-targeting"
PURPOSE = "dpv:ServiceProvision"
RESEARCH = "dpv:ResearchAndDevelopment"


def nhs_number(stem: int) -> str:
    """A valid NHS number from a nine-digit stem (the next stem whose Modulus 11 check digit exists)."""
    while True:
        digits = f"{stem:09d}"
        check = 11 - sum(int(d) * w for d, w in zip(digits, range(10, 1, -1))) % 11
        check = 0 if check == 11 else check
        if check != 10:
            return digits + str(check)
        stem += 1


def people(count: int, start: int = 400_000_000) -> list[str]:
    """``count`` distinct valid NHS numbers."""
    out: list[str] = []
    stem = start
    while len(out) < count:
        number = nhs_number(stem)
        if number not in out:
            out.append(number)
        stem = int(number[:9]) + 1
    return out


@dataclass
class World:
    """A restricted dataset of people (by NHS number), an approved agreement over it, an analyst."""

    settings: Settings
    store: RestrictedStore
    numbers: list[str]
    analyst: Any
    officer: Any
    recipient_member: Any


def build_world(db: Database, settings: Settings, make_account, rows_per_borough: int = 12,
                identifiability: str = "aggregate", purposes: list[str] | None = None) -> World:
    """Load ``rows_per_borough`` people in each of two boroughs and approve an agreement for Newham's analyst."""
    numbers = people(rows_per_borough * 2)
    officer = make_account("lfb-officer", london_fire_brigade="admin")
    analyst = make_account("newham-analyst", newham="member")
    recipient_member = make_account("hackney-analyst", hackney="member")
    store = RestrictedStore(settings)
    with db.session() as session:
        agreements.register_restricted_dataset(
            session, slug=DATASET, title="Test home fire safety visits", owner_org="london-fire-brigade",
            description="Synthetic people for tests.", table=TABLE, subject_column="person",
            fields=[{"name": "person", "type": "VARCHAR", "identifier": True},
                    {"name": "borough", "type": "VARCHAR"}, {"name": "age", "type": "BIGINT"},
                    {"name": "smoke_alarm", "type": "BOOLEAN"}], area_field="borough")
        rows = [(n, "Newham" if i < rows_per_borough else "Hackney", 60 + i, i % 2 == 0)
                for i, n in enumerate(numbers)]
        ingest_rows(store, Pseudonymiser(settings), TABLE,
                    {"person": "VARCHAR", "borough": "VARCHAR", "age": "BIGINT", "smoke_alarm": "BOOLEAN"},
                    rows, {"person": "nhs_number"}, subject_column="person")
        today = date.today()
        agreement = agreements.create_agreement(session, {
            "slug": AGREEMENT, "title": "Targeting home fire safety visits", "controllers": ["london-fire-brigade"],
            "recipients": ["newham", "hackney"], "purposes": purposes or [PURPOSE, RESEARCH],
            "purpose_statement": "Find households at risk of fire to offer a visit.", "lawful_basis": "6(1)(e)",
            "public_benefit": "Fewer deaths and injuries in home fires.", "identifiability": identifiability,
            "start_date": (today - timedelta(days=30)).isoformat(), "end_date": (today + timedelta(days=300)).isoformat(),
            "datasets": [{"dataset": DATASET, "fields": ["person", "borough", "age", "smoke_alarm"]}],
        }, by=accounts.actor_for(accounts.get_user(session, "lfb-officer"), "token"))
        agreements.approve(session, agreement, accounts.actor_for(accounts.get_user(session, "lfb-officer"), "token"))
    return World(settings, store, numbers, analyst, officer, recipient_member)


def count_query(purpose: str = PURPOSE) -> dict[str, Any]:
    """A gateway body counting people by borough under the test agreement."""
    return {"agreement": AGREEMENT, "purpose": purpose,
            "query": {"dataset": DATASET, "measures": [{"op": "count"}], "by": ["borough"]},
            "disclosure": {"profile": "nhs"}}


def counts_by_borough(body: dict[str, Any]) -> dict[str, Any]:
    """The released count per borough from a gateway response."""
    columns = body["table"]["columns"]
    return {row[columns.index("borough")]: row[columns.index("count")] for row in body["table"]["rows"]}
