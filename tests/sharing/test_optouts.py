"""Opt-outs: the gateway leaves opted-out people's rows out of every query it runs."""

from __future__ import annotations

import pytest

from smartlondon.core.errors import ValidationFailed
from smartlondon.sharing.privacy import optouts
from smartlondon.sharing.privacy.pseudonyms import Pseudonymiser
from tests.sharing.privacy_support import DATASET, PURPOSE, RESEARCH, build_world, count_query, counts_by_borough


def _run(client, world, body):  # type: ignore[no-untyped-def]
    """Run a query through the gateway over HTTP, as the Newham analyst; the released counts by borough."""
    response = client.post("/api/sharing/queries", json=body, headers=world.analyst.headers)
    assert response.status_code == 200, response.text
    return counts_by_borough(response.json())


def test_an_opted_out_persons_rows_change_a_released_count(client, db, settings, make_account) -> None:  # type: ignore[no-untyped-def]
    world = build_world(db, settings, make_account, rows_per_borough=20)
    assert _run(client, world, count_query())["Newham"] == 20
    with db.session() as session:
        for number in world.numbers[:3]:  # three Newham residents opt out of every use
            optouts.register(session, Pseudonymiser(settings), kind="nhs_number", value=number, scope="all")
    assert _run(client, world, count_query())["Newham"] == 15  # 17 people, rounded to 5 by the nhs profile
    assert _run(client, world, count_query())["Hackney"] == 20


def test_a_research_and_planning_opt_out_leaves_other_purposes_alone(client, db, settings,  # type: ignore[no-untyped-def]
                                                                       make_account) -> None:
    world = build_world(db, settings, make_account, rows_per_borough=20)
    with db.session() as session:
        for number in world.numbers[:3]:
            optouts.register(session, Pseudonymiser(settings), kind="nhs_number", value=number,
                             scope="research_planning")
        assert len(optouts.excluded_subject_nos(session, world.store, DATASET, RESEARCH)) == 3
        assert optouts.excluded_subject_nos(session, world.store, DATASET, PURPOSE) == set()
    assert _run(client, world, count_query(PURPOSE))["Newham"] == 20
    assert _run(client, world, count_query(RESEARCH))["Newham"] == 15


def test_a_withdrawn_opt_out_no_longer_excludes(db, settings, make_account) -> None:  # type: ignore[no-untyped-def]
    world = build_world(db, settings, make_account, rows_per_borough=10)
    with db.session() as session:
        reference = optouts.register(session, Pseudonymiser(settings), kind="nhs_number", value=world.numbers[0])
        assert len(optouts.excluded_subject_nos(session, world.store, DATASET, PURPOSE)) == 1
        assert optouts.summary(session) == {"all": 1, "research_planning": 0}
        optouts.withdraw(session, reference)
        assert optouts.excluded_subject_nos(session, world.store, DATASET, PURPOSE) == set()


def test_opt_outs_follow_the_person_across_key_epochs(db, settings, make_account) -> None:  # type: ignore[no-untyped-def]
    world = build_world(db, settings, make_account, rows_per_borough=10)
    Pseudonymiser(settings).rotate()  # rows were loaded in the old epoch; the opt-out arrives in the new one
    with db.session() as session:
        optouts.register(session, Pseudonymiser(settings), kind="nhs_number", value=world.numbers[0])
        assert len(optouts.excluded_subject_nos(session, world.store, DATASET, PURPOSE)) == 1


def test_opt_outs_over_the_api_need_an_officer_and_a_valid_identifier(client, db, settings, make_account) -> None:  # type: ignore[no-untyped-def]
    world = build_world(db, settings, make_account, rows_per_borough=4)
    body = {"identifier_kind": "nhs_number", "identifier": world.numbers[0], "scope": "research_planning"}
    assert client.post("/api/sharing/optouts", json=body, headers=world.analyst.headers).status_code == 403
    bad = client.post("/api/sharing/optouts", json={**body, "identifier": "1234567890"}, headers=world.officer.headers)
    assert bad.status_code == 422 and "Modulus 11" in bad.json()["error"]["message"]
    wrong_scope = client.post("/api/sharing/optouts", json={**body, "scope": "some"}, headers=world.officer.headers)
    assert wrong_scope.status_code == 422 and "scope" in wrong_scope.json()["error"]["fields"]
    made = client.post("/api/sharing/optouts", json=body, headers=world.officer.headers)
    assert made.status_code == 201
    reference = made.json()["reference"]
    assert client.delete(f"/api/sharing/optouts/{reference}", headers=world.officer.headers).json()["withdrawn"] == 1


def test_unknown_scope_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="scope"):
        optouts.register_pseudonyms(None, {"2026-Q4": "ab"}, scope="marketing")  # type: ignore[arg-type]
