"""Agreements: validation, approval by every controller's officer, status changes, the public register."""

from __future__ import annotations

import csv
import io

from smartlondon.core import accounts
from smartlondon.sharing import agreements

from .conftest import agreement_data


def _post(client, account, data):  # type: ignore[no-untyped-def]
    return client.post("/api/sharing/agreements", json=data, headers=account.headers)


def test_an_agreement_is_drafted_then_approved_by_every_controller(client, visits, officer, make_account):  # type: ignore[no-untyped-def]
    camden_admin = make_account("camden-admin", camden="admin")
    made = _post(client, officer, agreement_data(controllers=["london-fire-brigade", "camden"]))
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "draft"
    first = client.post("/api/sharing/agreements/home-fire-safety/approve", json={}, headers=officer.headers)
    assert first.status_code == 200 and first.json()["status"] == "draft"   # Camden has not approved yet
    again = client.post("/api/sharing/agreements/home-fire-safety/approve", json={}, headers=officer.headers)
    assert again.status_code == 409
    second = client.post("/api/sharing/agreements/home-fire-safety/approve", json={}, headers=camden_admin.headers)
    assert second.status_code == 200 and second.json()["status"] == "approved"


def test_only_a_controller_admin_may_approve(client, visits, officer, make_account):  # type: ignore[no-untyped-def]
    member = make_account("lfb-member", london_fire_brigade="member")
    recipient_admin = make_account("camden-boss", camden="admin")
    assert _post(client, officer, agreement_data()).status_code == 201
    for account in (member, recipient_admin):
        response = client.post("/api/sharing/agreements/home-fire-safety/approve", json={}, headers=account.headers)
        assert response.status_code == 403
        assert "admin" in response.json()["error"]["message"]


def test_drafting_needs_a_controller_editor(client, visits, make_account):  # type: ignore[no-untyped-def]
    outsider = make_account("brent-editor", brent="editor")
    response = _post(client, outsider, agreement_data())
    assert response.status_code == 403


def test_bad_agreements_are_refused_with_every_problem(client, visits, officer):  # type: ignore[no-untyped-def]
    response = _post(client, officer, agreement_data(purposes=["dpv:Snooping"], lawful_basis="6(1)(z)",
                                                     end_date="2020-01-01", recipients=["nowhere"],
                                                     identifiability="everything"))
    assert response.status_code == 422
    fields = response.json()["error"]["fields"]
    assert {"purposes", "lawful_basis", "end_date", "recipients", "identifiability"} <= set(fields)
    assert client.get("/sharing/agreements.json").json()["count"] == 0  # nothing half written


def test_special_category_fields_need_an_article_9_condition(client, visits, officer):  # type: ignore[no-untyped-def]
    covered = [{"dataset": "fire-visits", "fields": ["borough", "disability"]}]
    refused = _post(client, officer, agreement_data(datasets=covered))
    assert refused.status_code == 422
    assert "Article 9" in refused.json()["error"]["fields"]["special_condition"]
    made = _post(client, officer, agreement_data(datasets=covered, special_condition="9(2)(h)"))
    assert made.status_code == 201
    assert made.json()["special_condition"]["label"] == "Health or social care"


def test_uncovered_fields_and_unknown_datasets_are_refused(client, visits, officer):  # type: ignore[no-untyped-def]
    bad_field = _post(client, officer, agreement_data(datasets=[{"dataset": "fire-visits", "fields": ["salary"]}]))
    assert bad_field.status_code == 422
    bad_dataset = _post(client, officer, agreement_data(datasets=[{"dataset": "secret-stuff"}]))
    assert bad_dataset.status_code == 422


def test_status_lifecycle_suspend_reinstate_end(client, agreement, officer, analyst):  # type: ignore[no-untyped-def]
    url = "/api/sharing/agreements/home-fire-safety/status"
    no_reason = client.post(url, json={"status": "suspended"}, headers=officer.headers)
    assert no_reason.status_code == 422
    by_recipient = client.post(url, json={"status": "suspended", "reason": "x"}, headers=analyst.headers)
    assert by_recipient.status_code == 403
    suspended = client.post(url, json={"status": "suspended", "reason": "Data breach under investigation"},
                            headers=officer.headers)
    assert suspended.json()["status"] == "suspended"
    assert client.post(url, json={"status": "approved", "reason": "Resolved"}, headers=officer.headers).json()["status"] == "approved"
    assert client.post(url, json={"status": "ended", "reason": "Project over"}, headers=officer.headers).json()["status"] == "ended"
    assert client.post(url, json={"status": "approved", "reason": "again"}, headers=officer.headers).status_code == 409


def test_an_approved_agreement_past_its_end_date_is_expired(db, visits, officer):  # type: ignore[no-untyped-def]
    with db.session() as session:
        actor = accounts.actor_for(accounts.get_user(session, officer.username), "token")
        made = agreements.create_agreement(session, agreement_data(start_date="2020-01-01", end_date="2021-01-01"),
                                           by=actor)
        agreements.approve(session, made, actor)
        assert made.status == "approved"
        assert agreements.effective_status(made) == "expired"
        assert agreements.public_record(made)["status"] == "expired"


def test_public_register_html_json_csv_withholds_sensitive_fields(client, agreement, analyst):  # type: ignore[no-untyped-def]
    page = client.get("/sharing/agreements")
    assert page.status_code == 200 and "Home fire safety visits for people at risk" in page.text
    register = client.get("/sharing/agreements.json").json()
    assert register["count"] == 1
    record = register["agreements"][0]
    assert record["dpia_reference"] == "withheld"
    assert record["purposes"][0]["iri"] == "https://w3id.org/dpv#PublicBenefit"
    assert record["controllers"][0]["approved"]
    detail = client.get("/sharing/agreements/home-fire-safety")
    assert detail.status_code == 200 and "LFB-DPIA-2024-07" not in detail.text
    assert "Fewer deaths and injuries" in detail.text
    assert client.get("/sharing/agreements/home-fire-safety.json").json()["dpia_reference"] == "withheld"
    rows = list(csv.DictReader(io.StringIO(client.get("/sharing/agreements.csv").text)))
    assert rows[0]["slug"] == "home-fire-safety" and rows[0]["dpia_reference"] == "withheld"
    assert rows[0]["controllers"] == "London Fire Brigade"
    # a party sees the withheld fields through the API
    assert client.get("/api/sharing/agreements/home-fire-safety", headers=analyst.headers).json()["dpia_reference"] == "LFB-DPIA-2024-07"
    assert client.get("/sharing/agreements/nothing").status_code == 404


def test_restricted_dataset_metadata_is_public_but_never_downloadable(client, visits, make_account):  # type: ignore[no-untyped-def]
    page = client.get("/dataset/fire-visits")
    assert page.status_code == 200
    assert "Access through the LODA gateway under an agreement" in page.text
    lfb_editor = make_account("lfb-editor", london_fire_brigade="editor")
    added = client.post("/api/datasets/fire-visits/resources", json={"title": "dump", "url": "https://example.org/x.csv"},
                        headers=lfb_editor.headers)
    assert added.status_code in (403, 404, 405)
    ttl = client.get("/dataset/fire-visits.ttl")
    if ttl.status_code == 200:
        assert "access-right/RESTRICTED" in ttl.text
