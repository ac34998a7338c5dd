"""The agreement form and the approve/suspend/end confirmation pages, as a browser without JavaScript uses them.

Each test signs in over HTTP, reads the CSRF token from the page and posts the form as a browser would. The form
is validated by the same service function as the JSON API, so a form error is the API's error on the right field.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from smartlondon.sharing.models import Agreement

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(client, account) -> str:  # type: ignore[no-untyped-def]
    """Sign in with the account's password; the session's CSRF token."""
    token = CSRF.search(client.get("/sign-in").text).group(1)
    response = client.post("/sign-in", data={"csrf_token": token, "username": account.username,
                                             "password": account.password}, follow_redirects=False)
    assert response.status_code == 303
    return CSRF.search(client.get("/sharing/agreements").text or client.get("/sign-in").text).group(1)


def token_of(client, url: str) -> str:  # type: ignore[no-untyped-def]
    page = client.get(url)
    assert page.status_code == 200, page.text
    return CSRF.search(page.text).group(1)


def form(**changes: Any) -> dict[str, Any]:
    """A valid form: LFB shares four fields of fire-visits with Camden, from 1 January 2024 to 31 December 2099."""
    data: dict[str, Any] = {
        "slug": "home-fire-safety", "title": "Home fire safety visits for people at risk",
        "controllers": ["london-fire-brigade"], "recipients": ["camden"],
        "purposes": ["dpv:PublicBenefit", "dpv:ImprovePublicServices"],
        "purpose_statement": "Find households at higher risk of fire to offer them a home visit.",
        "lawful_basis": "6(1)(e)", "special_condition": "",
        "public_benefit": "Fewer deaths and injuries from fires at home.",
        "fields-fire-visits": ["borough", "age", "band", "smoke_alarm"],
        "identifiability": "aggregate", "disclosure_profile": "nhs", "dp_epsilon_budget": "",
        "retention": "Outputs kept for 2 years",
        "start_date-day": "1", "start_date-month": "1", "start_date-year": "2024",
        "end_date-day": "31", "end_date-month": "12", "end_date-year": "2099",
        "dpia_reference": "LFB-DPIA-2024-07", "withheld": ["dpia_reference"],
    }
    data.update(changes)
    return data


def count(db) -> int:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Agreement))


@pytest.fixture
def drafter(client, visits, officer):  # type: ignore[no-untyped-def]
    """The LFB's admin, signed in, with the CSRF token of the new-agreement form."""
    sign_in(client, officer)
    return token_of(client, "/sharing/agreements/new")


def test_an_agreement_made_with_the_form_is_in_the_register(client, db, drafter):  # type: ignore[no-untyped-def]
    page = client.get("/sharing/agreements/new").text
    assert 'name="fields-fire-visits" type="checkbox" value="disability"' in page
    assert "disability (special category)" in page
    assert 'id="start_date-day"' in page and 'name="lawful_basis" type="radio" value="6(1)(e)"' in page
    made = client.post("/sharing/agreements/new", data={"csrf_token": drafter, **form()}, follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"] == "/sharing/agreements/home-fire-safety"
    shown = client.get("/sharing/agreements/home-fire-safety")
    assert "Draft agreement saved" in shown.text and "Drafted agreement" in shown.text  # flash, then history

    record = client.get("/sharing/agreements.json").json()["agreements"][0]
    assert record["status"] == "draft" and record["start_date"] == "2024-01-01" and record["end_date"] == "2099-12-31"
    assert [p["organisation"] for p in record["controllers"]] == ["london-fire-brigade"]
    assert [p["term"] for p in record["purposes"]] == ["dpv:PublicBenefit", "dpv:ImprovePublicServices"]
    assert record["datasets"] == [{"dataset": "fire-visits", "title": "Home fire safety visits",
                                   "fields": ["borough", "age", "band", "smoke_alarm"]}]
    assert record["dpia_reference"] == "withheld" and record["dp_epsilon_budget"] is None
    assert "Home fire safety visits for people at risk" in client.get("/sharing/agreements").text
    rows = list(csv.DictReader(io.StringIO(client.get("/sharing/agreements.csv").text)))
    assert rows[0]["slug"] == "home-fire-safety" and rows[0]["lawful_basis"] == "6(1)(e) Public task"


@pytest.mark.parametrize("changes, field, words", [
    ({"fields-fire-visits": ["borough", "disability"]}, "special_condition", "Article 9"),
    ({"end_date-year": "2023"}, "end_date-day", "on or after the start date"),
    ({"fields-fire-visits": ["borough", "salary"]}, "fields-fire-visits", "is not a field of fire-visits"),
    ({"start_date-month": "13"}, "start_date-day", "real start date"),
    ({"purposes": [], "lawful_basis": ""}, "purposes", "Choose at least one purpose"),
])
def test_form_errors_rerender_with_a_summary_and_write_nothing(client, db, drafter, changes, field, words):  # type: ignore[no-untyped-def]
    sent = form(title="Kept title", **changes)
    response = client.post("/sharing/agreements/new", data={"csrf_token": drafter, **sent})
    assert response.status_code == 422
    summary = response.text.split('class="govuk-error-summary"', 1)[1].split("</div>\n</div>", 1)[0]
    assert f'href="#{field}"' in summary and words in summary
    assert f'id="{field}"' in response.text                  # the summary's link has a target
    assert response.text.count("<title>Error: ") == 1
    assert 'value="Kept title"' in response.text             # what was typed is kept
    assert count(db) == 0                                    # nothing half written


def test_special_category_with_a_condition_is_accepted(client, db, drafter):  # type: ignore[no-untyped-def]
    sent = form(**{"fields-fire-visits": ["borough", "disability"], "special_condition": "9(2)(h)"})
    assert client.post("/sharing/agreements/new", data={"csrf_token": drafter, **sent},
                       follow_redirects=False).status_code == 303
    record = client.get("/sharing/agreements/home-fire-safety.json").json()
    assert record["special_condition"]["article"] == "9(2)(h)"


def test_a_used_short_name_is_an_error_on_its_field(client, db, drafter):  # type: ignore[no-untyped-def]
    assert client.post("/sharing/agreements/new", data={"csrf_token": drafter, **form()},
                       follow_redirects=False).status_code == 303
    again = client.post("/sharing/agreements/new", data={"csrf_token": drafter, **form()})
    assert again.status_code == 409 and 'href="#slug"' in again.text and count(db) == 1


def test_who_may_draft(client, db, visits, make_account):  # type: ignore[no-untyped-def]
    anonymous = client.get("/sharing/agreements/new", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/sign-in?next=")
    member = make_account("lfb-member", london_fire_brigade="member")
    sign_in(client, member)
    assert client.get("/sharing/agreements/new").status_code == 403
    assert "Draft a new agreement" not in client.get("/sharing/agreements").text
    client.cookies.clear()
    brent = make_account("brent-editor", brent="editor")       # an editor, but not of a controller
    token = sign_in(client, brent)
    refused = client.post("/sharing/agreements/new", data={"csrf_token": token, **form()})
    assert refused.status_code == 403 and count(db) == 0


def test_a_form_without_its_csrf_token_is_refused(client, db, drafter):  # type: ignore[no-untyped-def]
    assert client.post("/sharing/agreements/new", data=form()).status_code == 403
    assert client.post("/sharing/agreements/new", data={"csrf_token": "forged", **form()}).status_code == 403
    assert count(db) == 0


def test_a_draft_is_changed_with_the_form_and_approvals_start_again(client, db, drafter, make_account):  # type: ignore[no-untyped-def]
    client.post("/sharing/agreements/new", data={"csrf_token": drafter,
                                                 **form(controllers=["london-fire-brigade", "camden"])})
    approve = client.post("/sharing/agreements/home-fire-safety/approve",
                          data={"csrf_token": drafter, "officer": "Sam Patel, Data Protection Officer"},
                          follow_redirects=False)
    assert approve.status_code == 303
    edit = client.get("/sharing/agreements/home-fire-safety/edit").text
    assert 'value="Home fire safety visits for people at risk"' in edit and 'value="2099"' in edit
    changed = client.post("/sharing/agreements/home-fire-safety/edit",
                          data={"csrf_token": drafter, **form(controllers=["london-fire-brigade", "camden"],
                                                              title="Fire safety visits")},
                          follow_redirects=False)
    assert changed.status_code == 303
    record = client.get("/sharing/agreements/home-fire-safety.json").json()
    assert record["title"] == "Fire safety visits"
    assert [p["approved"] for p in record["controllers"]] == [None, None]
    bad = client.post("/sharing/agreements/home-fire-safety/edit",
                      data={"csrf_token": drafter, **form(title="", controllers=["london-fire-brigade"])})
    assert bad.status_code == 422 and 'href="#title"' in bad.text
    assert client.get("/sharing/agreements/home-fire-safety.json").json()["title"] == "Fire safety visits"


def test_approval_by_each_controller_through_the_confirmation_page(client, db, drafter, make_account):  # type: ignore[no-untyped-def]
    camden_admin = make_account("camden-admin", camden="admin")
    client.post("/sharing/agreements/new", data={"csrf_token": drafter,
                                                 **form(controllers=["london-fire-brigade", "camden"])})
    page = client.get("/sharing/agreements/home-fire-safety").text
    assert "Approve as London Fire Brigade’s named officer" in page
    confirm = client.get("/sharing/agreements/home-fire-safety/approve")
    assert confirm.status_code == 200 and 'name="officer"' in confirm.text
    nameless = client.post("/sharing/agreements/home-fire-safety/approve", data={"csrf_token": drafter})
    assert nameless.status_code == 422 and 'href="#officer"' in nameless.text
    done = client.post("/sharing/agreements/home-fire-safety/approve",
                       data={"csrf_token": drafter, "officer": "Sam Patel, Data Protection Officer"},
                       follow_redirects=False)
    assert done.status_code == 303
    record = client.get("/sharing/agreements/home-fire-safety.json").json()
    assert record["status"] == "draft" and record["controllers"][0]["officer"] == "Sam Patel, Data Protection Officer"
    assert client.get("/sharing/agreements/home-fire-safety/approve").status_code == 403  # LFB has approved

    client.cookies.clear()
    token = sign_in(client, camden_admin)
    done = client.post("/sharing/agreements/home-fire-safety/approve",
                       data={"csrf_token": token, "officer": "Ade Bello, Caldicott Guardian"}, follow_redirects=False)
    assert done.status_code == 303
    record = client.get("/sharing/agreements/home-fire-safety.json").json()
    assert record["status"] == "approved"
    assert [p["officer"] for p in record["controllers"]] == ["Sam Patel, Data Protection Officer",
                                                           "Ade Bello, Caldicott Guardian"]
    assert "Every controller has approved" in client.get("/sharing/agreements/home-fire-safety").text


def test_only_a_controller_admin_sees_and_uses_the_actions(client, db, agreement, make_account):  # type: ignore[no-untyped-def]
    assert client.get("/sharing/agreements/home-fire-safety/suspend", follow_redirects=False).status_code == 303
    for account in (make_account("camden-boss", camden="admin"), make_account("lfb-editor", london_fire_brigade="editor")):
        client.cookies.clear()
        token = sign_in(client, account)
        assert "Suspend the agreement" not in client.get("/sharing/agreements/home-fire-safety").text
        assert client.get("/sharing/agreements/home-fire-safety/suspend").status_code == 403
        refused = client.post("/sharing/agreements/home-fire-safety/suspend", data={"csrf_token": token, "reason": "x"})
        assert refused.status_code == 403
    assert client.get("/sharing/agreements/home-fire-safety.json").json()["status"] == "approved"


def test_suspend_reinstate_and_end_are_in_the_history(client, db, agreement, officer):  # type: ignore[no-untyped-def]
    token = sign_in(client, officer)
    page = client.get("/sharing/agreements/home-fire-safety").text
    assert "Suspend the agreement" in page and "End the agreement" in page and "Reinstate" not in page
    assert client.post("/sharing/agreements/home-fire-safety/suspend", data={"reason": "x"}).status_code == 403  # no CSRF
    no_reason = client.post("/sharing/agreements/home-fire-safety/suspend", data={"csrf_token": token, "reason": ""})
    assert no_reason.status_code == 422 and 'href="#reason"' in no_reason.text
    for action, reason, status in (("suspend", "Data breach under investigation", "suspended"),
                                   ("reinstate", "Investigation closed: no breach", "approved"),
                                   ("end", "The visits programme has finished", "ended")):
        confirm = client.get(f"/sharing/agreements/home-fire-safety/{action}")
        assert confirm.status_code == 200 and 'name="reason"' in confirm.text
        done = client.post(f"/sharing/agreements/home-fire-safety/{action}",
                           data={"csrf_token": token, "reason": reason}, follow_redirects=False)
        assert done.status_code == 303
        record = client.get("/sharing/agreements/home-fire-safety.json").json()
        assert record["status"] == status and record["status_reason"] == reason
    history = client.get("/sharing/agreements/home-fire-safety.json").json()["history"]
    assert [h["action"] for h in history] == ["create", "approve", "suspended", "approved", "ended"]
    assert history[-1]["reason"] == "The visits programme has finished"
    page = client.get("/sharing/agreements/home-fire-safety").text
    assert "Data breach under investigation" in page and "Investigation closed: no breach" in page
    assert client.get("/sharing/agreements/home-fire-safety/suspend").status_code == 409  # ended is final
    assert client.get("/sharing/agreements/home-fire-safety/edit").status_code == 409


def test_the_api_changes_a_draft_with_the_same_rules(client, db, visits, officer, make_account):  # type: ignore[no-untyped-def]
    from .conftest import agreement_data

    assert client.post("/api/sharing/agreements", json=agreement_data(), headers=officer.headers).status_code == 201
    bad = client.put("/api/sharing/agreements/home-fire-safety", headers=officer.headers,
                     json=agreement_data(datasets=[{"dataset": "fire-visits", "fields": ["disability"]}]))
    assert bad.status_code == 422 and "special_condition" in bad.json()["error"]["fields"]
    outsider = make_account("brent-editor", brent="editor")
    assert client.put("/api/sharing/agreements/home-fire-safety", headers=outsider.headers,
                      json=agreement_data()).status_code == 403
    changed = client.put("/api/sharing/agreements/home-fire-safety", headers=officer.headers,
                         json=agreement_data(title="Fire safety visits", slug="ignored"))
    assert changed.status_code == 200 and changed.json()["title"] == "Fire safety visits"
    assert changed.json()["slug"] == "home-fire-safety"
    approved = client.post("/api/sharing/agreements/home-fire-safety/approve", headers=officer.headers,
                           json={"officer": "Sam Patel, Data Protection Officer"})
    assert approved.json()["status"] == "approved"
    assert approved.json()["controllers"][0]["officer"] == "Sam Patel, Data Protection Officer"
    late = client.put("/api/sharing/agreements/home-fire-safety", headers=officer.headers, json=agreement_data())
    assert late.status_code == 409
