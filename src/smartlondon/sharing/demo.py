"""The LODA demo: home fire safety visits shared between the London Fire Brigade and three boroughs.

The person-level records are **synthetic**: one record per household, generated for each LSOA of
Hackney, Newham and Tower Hamlets from the real 2011 Census household counts, with rates (lives alone,
smoke alarm fitted, previous fire, visit done) calibrated on the LSOA's Index of Multiple Deprivation
2019 decile. Identifiers are synthetic NHS numbers from the 999 test range, pseudonymised at ingest.
Then everything a visitor should see is done through the platform's own functions: the restricted
dataset and an approved agreement, gateway queries (released, suppressed, a differencing attempt),
an opt-out, a data-subject request with its uses, and a data trust with its decision log.
"""

from __future__ import annotations

import csv
import os
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core import accounts
from ..core.errors import PlatformError
from ..core.models import User
from ..settings import Settings
from . import agreements, gateway
from .models import RestrictedDataset
from .privacy import optouts, subjects, trusts
from .privacy.ingest import ingest_rows
from .privacy.pseudonyms import Pseudonymiser
from .store import RestrictedStore

DATA = Path(__file__).with_name("data") / "fire-safety-lsoas.csv"
DATASET = "home-fire-safety-visits"
TABLE = "home_fire_safety_visits"
AGREEMENT = "east-london-home-fire-safety"
TRUST = "east-london-home-safety-trust"
AGE_BANDS = (("18-39", 0.42), ("40-64", 0.36), ("65-79", 0.15), ("80+", 0.07))
COLUMNS = {"person": "VARCHAR", "borough": "VARCHAR", "lsoa_code": "VARCHAR", "imd_decile": "BIGINT",
           "age_band": "VARCHAR", "lives_alone": "BOOLEAN", "smoke_alarm": "BOOLEAN", "previous_fire": "BOOLEAN",
           "visit_done": "BOOLEAN"}
FIELDS = [
    {"name": "person", "type": "VARCHAR", "description": "Pseudonym of the household's reference person",
     "identifier": True},
    {"name": "borough", "type": "VARCHAR", "description": "London borough"},
    {"name": "lsoa_code", "type": "VARCHAR", "description": "2011 LSOA code of the home"},
    {"name": "imd_decile", "type": "BIGINT", "description": "IMD 2019 decile of the LSOA (1 = most deprived)"},
    {"name": "age_band", "type": "VARCHAR", "description": "Age band of the reference person"},
    {"name": "lives_alone", "type": "BOOLEAN", "description": "Lives alone"},
    {"name": "smoke_alarm", "type": "BOOLEAN", "description": "A working smoke alarm is fitted"},
    {"name": "previous_fire", "type": "BOOLEAN", "description": "A fire was attended at the home before"},
    {"name": "visit_done", "type": "BOOLEAN", "description": "A home fire safety visit was done"},
]


def synthetic_nhs_numbers(count: int, start: int = 999_000_000) -> list[str]:
    """``count`` NHS numbers with valid check digits from the 999 range reserved for testing."""
    out: list[str] = []
    stem = start
    while len(out) < count:
        digits = f"{stem:09d}"
        check = 11 - sum(int(d) * w for d, w in zip(digits, range(10, 1, -1))) % 11
        stem += 1
        if check == 10:
            continue
        out.append(digits + str(0 if check == 11 else check))
    return out


def synthetic_households(scale: float = 0.02, seed: int = 2019) -> list[tuple[Any, ...]]:
    """Synthetic records, ``scale`` of each LSOA's 2011 households, calibrated on its IMD 2019 decile."""
    rng = random.Random(seed)
    with DATA.open(newline="") as handle:
        areas = list(csv.DictReader(handle))
    counts = [max(1, round(int(a["households"]) * scale)) for a in areas]
    numbers = iter(synthetic_nhs_numbers(sum(counts)))
    bands, weights = zip(*AGE_BANDS)
    rows = []
    for area, count in zip(areas, counts):
        deprivation = (10 - int(area["imd_decile"])) / 9  # 1 in the most deprived decile, 0 in the least
        for _ in range(count):
            age = rng.choices(bands, weights)[0]
            older = age in ("65-79", "80+")
            rows.append((next(numbers), area["borough"], area["lsoa_code"], int(area["imd_decile"]), age,
                         rng.random() < 0.22 + 0.12 * deprivation + (0.15 if older else 0.0),
                         rng.random() < 0.92 - 0.14 * deprivation,
                         rng.random() < 0.004 + 0.014 * deprivation,
                         rng.random() < 0.08 + 0.16 * deprivation + (0.10 if older else 0.0)))
    return rows


def _user(session: Session, username: str, display: str, **roles: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        user = accounts.create_user(session, username=username, email=f"{username}@example.org", password=None,
                                    display_name=display)
    for org, role in roles.items():
        accounts.set_role(session, user, accounts.get_organisation(session, org), role)
    return user


def load_demo(session: Session, settings: Settings, scale: float = 0.02) -> dict[str, Any]:
    """Load the scenario once (idempotent); returns what was made, and the demo subject's access code."""
    if session.scalar(select(RestrictedDataset.slug).where(RestrictedDataset.slug == DATASET)) is not None:
        return {"created": False}
    officer = accounts.actor_for(_user(session, "lfb-data-officer", "LFB data protection officer",
                                       **{"london-fire-brigade": "admin"}), "token")
    analyst = accounts.actor_for(_user(session, "newham-analyst", "Newham fire safety analyst", newham="member"),
                                 "token")
    agreements.register_restricted_dataset(
        session, slug=DATASET, title="Home fire safety visits (synthetic, LODA restricted)",
        owner_org="london-fire-brigade",
        description=("Synthetic person-level records of households in Hackney, Newham and Tower Hamlets, generated "
                     "per LSOA from real 2011 Census household counts, calibrated on the English Indices of "
                     "Deprivation 2019. No real person's data is held."),
        table=TABLE, fields=FIELDS, subject_column="person", area_field="borough")
    rows = synthetic_households(scale)
    store = RestrictedStore(settings)
    ingest_rows(store, Pseudonymiser(settings), TABLE, COLUMNS, rows, {"person": "nhs_number"}, subject_column="person")
    today = date.today()
    agreement = agreements.create_agreement(session, {
        "slug": AGREEMENT, "title": "East London home fire safety targeting",
        "controllers": ["london-fire-brigade"], "recipients": ["newham", "hackney", "tower-hamlets"],
        "purposes": ["dpv:ServiceProvision", "dpv:ImprovePublicServices"],
        "purpose_statement": "Find the households most at risk of fire so that firefighters can offer them a home "
                             "fire safety visit and fit smoke alarms.",
        "lawful_basis": "6(1)(e)", "public_benefit": "Fewer deaths and injuries in home fires in east London.",
        "identifiability": "aggregate", "disclosure_profile": "nhs", "retention": "Two years after the agreement ends.",
        "start_date": (today - timedelta(days=60)).isoformat(), "end_date": (today + timedelta(days=670)).isoformat(),
        "dpia_reference": "LFB-DPIA-2026-014",
        "datasets": [{"dataset": DATASET, "fields": [f["name"] for f in FIELDS]}],
    }, by=officer)
    agreements.approve(session, agreement, officer)
    session.flush()
    queries = _run_queries(session, settings, analyst)
    # a resident opts out of research and planning uses of their records
    optouts.register(session, Pseudonymiser(settings), kind="nhs_number", value=rows[5][0], scope="research_planning",
                     source="demo: national data opt-out")
    # a Newham resident asks the fire brigade what it holds about them, and how it was used
    request, code = subjects.open_request(session, settings, officer, {
        "organisation": "london-fire-brigade", "kind": "access", "identifier_kind": "nhs_number",
        "identifier": next(r[0] for r in rows if r[1] == "Newham")})
    _trust(session, officer)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    note = settings.data_dir / "demo-subject-access.txt"
    fd = os.open(note, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"reference {request.reference}\naccess code {code}\n")
    return {"created": True, "records": len(rows), "queries": queries, "subject_request": request.reference,
            "access_code": code}


def _run_queries(session: Session, settings: Settings, analyst: accounts.Actor) -> dict[str, str]:
    """The analyst's queries: released tables, small cells suppressed, a differencing attempt."""
    def body(query: dict[str, Any]) -> dict[str, Any]:
        return {"agreement": AGREEMENT, "purpose": "dpv:ServiceProvision", "query": {"dataset": DATASET, **query},
                "disclosure": {"profile": "nhs"}}

    plans = {
        "households by borough and age band": body({"measures": [{"op": "count"}], "by": ["borough", "age_band"]}),
        "previous fires by LSOA in Newham": body({"measures": [{"op": "count"}], "by": ["lsoa_code"],
                                                  "where": {"borough": ["Newham"], "previous_fire": [True]}}),
        "people aged 65+ living alone, by borough": body({
            "measures": [{"op": "count"}], "by": ["borough"],
            "where": {"age_band": ["65-79", "80+"], "lives_alone": [True]}}),
        # the same population with one condition added: subtracting would reveal the few with a previous fire
        "people aged 65+ living alone without a previous fire, by borough": body({
            "measures": [{"op": "count"}], "by": ["borough"],
            "where": {"age_band": ["65-79", "80+"], "lives_alone": [True], "previous_fire": [False]}}),
    }
    outcomes: dict[str, str] = {}
    for name, query in plans.items():
        try:
            _, result = gateway.submit(session, settings, analyst, query)
            outcomes[name] = str(result.get("status"))
        except PlatformError as exc:  # the demo shows what it can; a refused body is still a result
            outcomes[name] = f"error: {exc.message}"
    return outcomes


def _trust(session: Session, officer: accounts.Actor) -> None:
    trust = trusts.create_trust(session, officer, {
        "slug": TRUST, "name": "East London Home Safety Data Trust", "steward": "london-fire-brigade",
        "purpose": "Holds fire and housing data for Hackney, Newham and Tower Hamlets to keep residents safe at home.",
        "terms_of_use": "Only for the safety of residents; aggregate outputs under the NHS small-numbers rules; no "
                        "re-identification; no commercial use; every decision published here.",
        "datasets": [DATASET]})
    for org in ("hackney", "newham", "tower-hamlets"):
        trusts.add_member(session, officer, trust, org)
    trusts.record_decision(session, officer, trust, {
        "requester": "Newham Council", "request_summary": "Counts of at-risk households by LSOA to plan visits.",
        "datasets": [DATASET], "decision": "approved", "agreement": AGREEMENT,
        "reasons": "Within the trust's purpose; aggregate outputs only, under an approved agreement."})
    trusts.record_decision(session, officer, trust, {
        "requester": "A home insurance company", "request_summary": "Household-level fire history for pricing.",
        "datasets": [DATASET], "decision": "refused",
        "reasons": "Commercial use and row-level data are outside the trust's terms of use."})
