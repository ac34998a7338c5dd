"""Data trusts: a steward, members, terms of use and a public, append-only decision log."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

TRUST = {"slug": "east-london-safety-trust", "name": "East London Safety Data Trust", "steward": "london-fire-brigade",
         "purpose": "Hold fire and housing data for east London boroughs.",
         "terms_of_use": "Aggregate outputs only; no re-identification; published decisions.", "datasets": []}


def test_a_trust_logs_its_decisions_in_public(client, make_account) -> None:  # type: ignore[no-untyped-def]
    steward = make_account("lfb-admin", london_fire_brigade="admin")
    outsider = make_account("camden-admin", camden="admin")
    assert client.post("/api/sharing/trusts", json=TRUST, headers=outsider.headers).status_code == 403
    made = client.post("/api/sharing/trusts", json=TRUST, headers=steward.headers)
    assert made.status_code == 201, made.text
    assert client.post("/api/sharing/trusts", json=TRUST, headers=steward.headers).status_code == 409
    slug = TRUST["slug"]
    for org in ("tower-hamlets", "newham"):
        assert client.post(f"/api/sharing/trusts/{slug}/members", json={"organisation": org},
                           headers=steward.headers).status_code == 201
    decision = {"requester": "Newham Council", "request_summary": "Counts of visits by ward", "decision": "approved",
                "reasons": "Aggregate only, within the terms."}
    assert client.post(f"/api/sharing/trusts/{slug}/decisions", json=decision, headers=outsider.headers).status_code == 403
    assert client.post(f"/api/sharing/trusts/{slug}/decisions", json=decision, headers=steward.headers).status_code == 201
    refused = {**decision, "requester": "A marketing firm", "decision": "refused",
               "reasons": "Commercial marketing is outside the trust's purpose."}
    assert client.post(f"/api/sharing/trusts/{slug}/decisions", json=refused, headers=steward.headers).status_code == 201
    data = client.get(f"/sharing/trusts/{slug}.json").json()
    assert [m["role"] for m in data["members"]] == ["steward", "member", "member"]
    assert [d["decision"] for d in data["decisions"]] == ["refused", "approved"]
    assert data["decisions"][0]["reasons"].startswith("Commercial marketing")
    page = client.get(f"/sharing/trusts/{slug}")
    assert page.status_code == 200 and "A marketing firm" in page.text and "Terms of use" in page.text
    listing = client.get("/sharing/trusts.json").json()["trusts"]
    assert listing[0]["decisions_refused"] == 1 and listing[0]["decisions_approved"] == 1
    assert "East London Safety Data Trust" in client.get("/sharing/trusts").text


def test_bad_trust_input_says_what_to_fix(client, make_account) -> None:  # type: ignore[no-untyped-def]
    steward = make_account("lfb-admin", london_fire_brigade="admin")
    bad = client.post("/api/sharing/trusts", json={"slug": "Bad Slug", "name": ""}, headers=steward.headers)
    assert bad.status_code == 422
    assert set(bad.json()["error"]["fields"]) >= {"slug", "name", "terms_of_use", "steward"}
    client.post("/api/sharing/trusts", json=TRUST, headers=steward.headers)
    wrong = client.post(f"/api/sharing/trusts/{TRUST['slug']}/decisions", json={"decision": "maybe"},
                        headers=steward.headers)
    assert wrong.status_code == 422 and {"decision", "reasons", "requester"} <= set(wrong.json()["error"]["fields"])
    assert client.get("/sharing/trusts/no-such-trust").status_code == 404


def test_the_decision_log_cannot_be_edited(client, db, make_account) -> None:  # type: ignore[no-untyped-def]
    steward = make_account("lfb-admin", london_fire_brigade="admin")
    client.post("/api/sharing/trusts", json=TRUST, headers=steward.headers)
    client.post(f"/api/sharing/trusts/{TRUST['slug']}/decisions", headers=steward.headers,
                json={"requester": "Hackney", "request_summary": "x", "decision": "approved", "reasons": "ok"})
    for statement in ("UPDATE sharing_trust_decision SET decision = 'refused'", "DELETE FROM sharing_trust_decision"):
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement))


def test_the_privacy_tables_match_their_migration(db) -> None:  # type: ignore[no-untyped-def]
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from smartlondon.core.db import Base
    from smartlondon.models import load_all_models

    load_all_models()
    mine = ("sharing_optout", "sharing_subject_request", "sharing_subject_propagation", "sharing_trust",
            "sharing_trust_member", "sharing_trust_decision")
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert not [d for d in diff if any(name in str(d) for name in mine)]


def test_the_steward_publishes_a_decision_from_the_trust_page(client, make_account) -> None:  # type: ignore[no-untyped-def]
    import re

    steward = make_account("lfb-admin", london_fire_brigade="admin")
    client.post("/api/sharing/trusts", json=TRUST, headers=steward.headers)
    csrf = re.compile(r'name="csrf_token" value="([^"]+)"')
    assert "Record a decision" not in client.get(f"/sharing/trusts/{TRUST['slug']}").text  # not for the public
    token = csrf.search(client.get("/sign-in").text).group(1)  # type: ignore[union-attr]
    client.post("/sign-in", data={"csrf_token": token, "username": steward.username, "password": steward.password})
    page = client.get(f"/sharing/trusts/{TRUST['slug']}")
    assert "Record a decision" in page.text
    token = csrf.search(page.text).group(1)  # type: ignore[union-attr]
    url = f"/sharing/trusts/{TRUST['slug']}/decisions"
    wrong = client.post(url, data={"csrf_token": token, "requester": "Hackney"})
    assert wrong.status_code == 422 and "govuk-error-summary" in wrong.text and 'value="Hackney"' in wrong.text
    done = client.post(url, data={"csrf_token": token, "requester": "Hackney Council", "decision": "refused",
                                  "request_summary": "Names of households", "datasets": "a b",
                                  "reasons": "Identifiable data is outside the terms."}, follow_redirects=False)
    assert done.status_code == 303
    decisions = client.get(f"/sharing/trusts/{TRUST['slug']}.json").json()["decisions"]
    assert decisions[0]["decision"] == "refused" and decisions[0]["datasets"] == ["a", "b"]
    assert decisions[0]["decided_by"] == "lfb-admin"
