"""Two-person review of outputs the rules cannot clear, through the JSON API and the pages, on both databases.

Each test queues a real gateway query (``sharing_query``) for review through ``disclosure.clear``, as the
gateway does, then reviewers decide over HTTP; the second approval releases the query's table.
"""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from smartlondon.core import accounts
from smartlondon.sharing import agreements
from smartlondon.sharing.disclosure.models import Release
from smartlondon.sharing.models import AccessLogEntry, SharingQuery
from tests.sharing.conftest import agreement_data
from tests.sharing.review_support import queue

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def shared_under(db, visits):  # type: ignore[no-untyped-def]
    """The agreement the queued outputs were asked under: the LFB (controller) shares with Camden (recipient)."""
    with db.session() as session:
        agreements.create_agreement(session, agreement_data(), by=accounts.COMMAND_LINE)
    return "home-fire-safety"


@pytest.fixture
def people(make_account):  # type: ignore[no-untyped-def]
    """An analyst and three output reviewers (two at Camden, one at the LFB)."""
    return {"analyst": make_account("analyst", camden="member"),
            "rev1": make_account("reviewer-one", camden="reviewer"),
            "rev2": make_account("reviewer-two", camden="reviewer"),
            "rev3": make_account("reviewer-three", london_fire_brigade="reviewer")}


def decide(client, account, review_id: int, decision: str, reason: str = "Checked: no small cells."):  # type: ignore[no-untyped-def]
    return client.post(f"/api/sharing/reviews/{review_id}/{decision}", json={"reason": reason},
                       headers=account.headers)


def query_status(db, query_id: int) -> SharingQuery:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return session.get(SharingQuery, query_id)


def test_two_independent_approvals_release_the_output(client, db, people):
    query_id, review_id = queue(db, "analyst")
    listed = client.get("/api/sharing/reviews", headers=people["rev1"].headers).json()["reviews"]
    assert [r["id"] for r in listed] == [review_id]
    assert listed[0]["proposed"]["rows"][0] == ["Gospel Oak", 81, True]  # reviewers see the proposed output
    assert listed[0]["requested_by"] == "analyst"

    first = decide(client, people["rev1"], review_id, "approve")
    assert first.status_code == 200 and first.json()["status"] == "pending" and first.json()["approvals"] == 1
    assert query_status(db, query_id).status == "review" and query_status(db, query_id).result is None

    second = decide(client, people["rev3"], review_id, "approve", "Ward-level ages of two people are agreed.")
    assert second.status_code == 200 and second.json()["status"] == "released"
    assert [d["reviewer"] for d in second.json()["decisions"]] == ["reviewer-one", "reviewer-three"]
    record = query_status(db, query_id)
    assert record.status == "released"
    assert record.result == {"columns": ["ward", "age", "lives_alone"],
                             "rows": [["Gospel Oak", 81, True], ["Kentish Town", 77, False]]}
    with db.session() as session:  # the release is logged by the gateway
        assert session.scalar(select(func.count()).select_from(AccessLogEntry)
                              .where(AccessLogEntry.query_id == query_id)) == 1
    again = decide(client, people["rev2"], review_id, "approve")
    assert again.status_code == 409 and "already been decided" in again.json()["error"]["message"]


def test_the_same_reviewer_cannot_approve_twice(client, db, people):
    _, review_id = queue(db, "analyst")
    assert decide(client, people["rev1"], review_id, "approve").status_code == 200
    twice = decide(client, people["rev1"], review_id, "approve")
    assert twice.status_code == 409
    assert "second, different reviewer" in twice.json()["error"]["message"]
    assert client.get(f"/api/sharing/reviews/{review_id}", headers=people["rev2"].headers).json()["approvals"] == 1


def test_the_requester_cannot_review_their_own_output(client, db, people, make_account):
    people["analyst_reviewer"] = make_account("analyst-reviewer", camden="reviewer")
    query_id, review_id = queue(db, "analyst-reviewer")
    refused = decide(client, people["analyst_reviewer"], review_id, "approve")
    assert refused.status_code == 403 and "you cannot review it" in refused.json()["error"]["message"]
    assert query_status(db, query_id).status == "review"


def test_only_reviewers_may_see_or_decide(client, db, people, editor):
    people["editor"] = editor
    _, review_id = queue(db, "analyst")
    for who in ("analyst", "editor"):
        response = decide(client, people[who], review_id, "approve")
        assert response.status_code == 403 and "reviewer" in response.json()["error"]["message"]
        assert client.get("/api/sharing/reviews", headers=people[who].headers).status_code == 403
    assert client.get("/api/sharing/reviews").status_code == 401
    assert decide(client, people["rev1"], review_id + 100, "approve").status_code == 404


def test_a_reason_is_required(client, db, people):
    _, review_id = queue(db, "analyst")
    response = decide(client, people["rev1"], review_id, "approve", reason="  ")
    assert response.status_code == 422 and "reason" in response.json()["error"]["fields"]
    assert client.get(f"/api/sharing/reviews/{review_id}", headers=people["rev1"].headers).json()["decisions"] == []


def test_one_rejection_refuses_the_output(client, db, people):
    query_id, review_id = queue(db, "analyst")
    assert decide(client, people["rev1"], review_id, "approve").status_code == 200
    rejected = decide(client, people["rev2"], review_id, "reject", "Ages with wards identify the two residents.")
    assert rejected.status_code == 200 and rejected.json()["status"] == "refused"
    record = query_status(db, query_id)
    assert record.status == "refused" and record.result is None
    assert record.reasons == ["A reviewer refused the output: Ages with wards identify the two residents."]
    assert decide(client, people["rev3"], review_id, "approve").status_code == 409
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Release)) == 0


def sign_in(client, account) -> str:  # type: ignore[no-untyped-def]
    token = CSRF.search(client.get("/sign-in").text).group(1)
    response = client.post("/sign-in", data={"csrf_token": token, "username": account.username,
                                             "password": account.password}, follow_redirects=False)
    assert response.status_code == 303
    return CSRF.search(client.get("/").text).group(1)


def test_review_pages_work_without_javascript(client, db, people):
    query_id, review_id = queue(db, "analyst")
    csrf = sign_in(client, people["rev1"])
    queue_page = client.get("/sharing/reviews")
    assert queue_page.status_code == 200 and f"/sharing/reviews/{review_id}" in queue_page.text
    assert client.get("/sharing/reviews.json").json()["reviews"][0]["id"] == review_id
    page = client.get(f"/sharing/reviews/{review_id}")
    assert page.status_code == 200 and "Gospel Oak" in page.text and "Can this output be released?" in page.text

    missing = client.post(f"/sharing/reviews/{review_id}", data={"csrf_token": csrf, "decision": "approve"})
    assert missing.status_code == 422 and "There is a problem" in missing.text and "Error:" in missing.text

    done = client.post(f"/sharing/reviews/{review_id}", data={"csrf_token": csrf, "decision": "approve",
                                                             "reason": "Two rows, agreed in the DPIA."},
                       follow_redirects=False)
    assert done.status_code == 303
    after = client.get(f"/sharing/reviews/{review_id}")
    assert "one more reviewer must approve" in after.text and "Can this output be released?" not in after.text

    client.post("/sign-out", data={"csrf_token": csrf})
    csrf = sign_in(client, people["rev3"])  # the LFB: a controller's reviewer gives the releasing approval
    client.post(f"/sharing/reviews/{review_id}", data={"csrf_token": csrf, "decision": "approve",
                                                      "reason": "Agreed."}, follow_redirects=False)
    assert "The output is released" in client.get(f"/sharing/reviews/{review_id}").text
    assert query_status(db, query_id).status == "released"


def test_review_pages_need_a_signed_in_reviewer(client, db, people, editor):
    _, review_id = queue(db, "analyst")
    assert client.get("/sharing/reviews").status_code == 401
    sign_in(client, editor)
    assert client.get(f"/sharing/reviews/{review_id}").status_code == 403


def test_reviewers_of_other_organisations_neither_see_nor_decide(client, db, people, make_account):
    brent = make_account("brent-reviewer", brent="reviewer")       # Brent is no party to the agreement
    _, review_id = queue(db, "analyst")
    assert client.get("/api/sharing/reviews", headers=brent.headers).json()["reviews"] == []
    seen = client.get(f"/api/sharing/reviews/{review_id}", headers=brent.headers)
    assert seen.status_code == 403 and "party to agreement" in seen.json()["error"]["message"]
    assert decide(client, brent, review_id, "approve").status_code == 403
    assert decide(client, brent, review_id, "reject").status_code == 403
    assert client.get(f"/api/sharing/reviews/{review_id}", headers=people["rev1"].headers).json()["decisions"] == []
    sign_in(client, brent)
    assert client.get(f"/sharing/reviews/{review_id}").status_code == 403
    assert f"/sharing/reviews/{review_id}" not in client.get("/sharing/reviews").text


def test_the_requesters_organisation_alone_cannot_release(client, db, people):
    query_id, review_id = queue(db, "analyst")                    # Camden asked; Camden is only a recipient
    assert decide(client, people["rev1"], review_id, "approve").status_code == 200
    second = decide(client, people["rev2"], review_id, "approve")  # another Camden reviewer
    assert second.status_code == 403 and "controller" in second.json()["error"]["message"]
    assert query_status(db, query_id).status == "review"
    released = decide(client, people["rev3"], review_id, "approve")  # the LFB's reviewer
    assert released.status_code == 200 and released.json()["status"] == "released"


def test_a_controller_reviewer_may_approve_first_and_a_recipient_second(client, db, people):
    query_id, review_id = queue(db, "analyst")
    assert decide(client, people["rev3"], review_id, "approve").json()["status"] == "pending"
    assert decide(client, people["rev1"], review_id, "approve").json()["status"] == "released"
    assert query_status(db, query_id).status == "released"


def test_an_output_under_an_unknown_agreement_has_no_reviewers(client, db, people):
    with db.session() as session:
        session.delete(agreements.get_agreement(session, "home-fire-safety"))
    _, review_id = queue(db, "analyst")
    assert decide(client, people["rev3"], review_id, "approve").status_code == 403
    assert client.get("/api/sharing/reviews", headers=people["rev3"].headers).json()["reviews"] == []


def test_an_anchor_due_at_a_reviewed_release_reaches_the_head_file(client, db, people, settings, monkeypatch):  # type: ignore[no-untyped-def]
    from smartlondon.sharing import accesslog

    monkeypatch.setattr(accesslog, "ANCHOR_EVERY", 1)  # the release's log entry is due an anchor
    query_id, review_id = queue(db, "analyst")
    decide(client, people["rev1"], review_id, "approve")
    assert decide(client, people["rev3"], review_id, "approve").json()["status"] == "released"
    with db.session() as session:
        entry = session.scalar(select(AccessLogEntry).where(AccessLogEntry.query_id == query_id))
        head = entry.hash
    written = json.loads((settings.data_dir / "sharing" / "log-head.json").read_text())
    assert written["head_hash"] == head and written["sequence"] == 1
