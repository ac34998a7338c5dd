"""Data-subject requests: deadlines, access with the uses that touched the person, rectification and erasure
propagated to recipients with confirmations, objection, and the person's own view."""

from __future__ import annotations

import csv
import re
import io
from datetime import date

import pytest

from smartlondon.core import accounts
from smartlondon.sharing.privacy import subjects
from smartlondon.sharing.privacy.pseudonyms import Pseudonymiser
from tests.sharing.privacy_support import DATASET, TABLE, build_world, count_query, counts_by_borough


@pytest.mark.parametrize(("received", "due"), [
    ("2028-01-31", "2028-02-29"),  # leap year: no 31 February, so the month's last day (a Tuesday)
    ("2027-01-31", "2027-03-01"),  # 28 February 2027 is a Sunday: the next working day
    ("2026-03-03", "2026-04-07"),  # 3 April 2026 is Good Friday, 6 April Easter Monday
    ("2026-06-10", "2026-07-10"),
    ("2026-12-15", "2027-01-15"),
])
def test_the_one_month_deadline_follows_the_calendar_and_working_days(received: str, due: str) -> None:
    assert subjects.due_date(date.fromisoformat(received)) == date.fromisoformat(due)
    assert subjects.one_calendar_month_after(date(2026, 1, 31)) == date(2026, 2, 28)


def _open(client, officer, **body):  # type: ignore[no-untyped-def]
    response = client.post("/api/sharing/subject-requests", headers=officer.headers,
                           json={"organisation": "london-fire-brigade", "identifier_kind": "nhs_number", **body})
    assert response.status_code == 201, response.text
    return response.json()


def test_access_request_downloads_the_records_and_shows_the_uses_that_touched_them(  # type: ignore[no-untyped-def]
        client, db, settings, make_account) -> None:
    world = build_world(db, settings, make_account, rows_per_borough=10)
    # a Newham analyst counts people by borough: that use read everyone's rows
    assert client.post("/api/sharing/queries", json=count_query(), headers=world.analyst.headers).status_code == 200
    person = world.numbers[0]
    opened = _open(client, world.officer, kind="access", identifier=person, received_on="2026-11-02")
    assert opened["due_on"] == "2026-12-02" and opened["result"]["rows"] == {DATASET: 1}
    assert opened["result"]["uses"] == 1 and opened["status"] == "completed"
    reference, code = opened["reference"], opened["access_code"]
    download = client.get(f"/api/sharing/subject-requests/{reference}/download", headers=world.officer.headers).json()
    row = download["datasets"][DATASET]["rows"][0]
    assert row["borough"] == "Newham" and row["age"] == 60 and person not in str(download)
    assert download["uses"][0]["agreement"] == "test-fire-targeting" and download["uses"][0]["organisation"] == "newham"
    as_csv = client.get(f"/api/sharing/subject-requests/{reference}/download?format=csv", headers=world.officer.headers)
    lines = list(csv.reader(io.StringIO(as_csv.text)))
    assert ["held", DATASET, "1", "borough", "Newham"] in lines and any(line[0] == "use" for line in lines)
    # the analyst never sees the request, let alone the download
    assert client.get(f"/api/sharing/subject-requests/{reference}", headers=world.analyst.headers).status_code == 404
    # the person sees the use with the reference and access code, and nothing with a wrong code
    mine = client.post("/api/sharing/your-data", json={"reference": reference, "code": code}).json()
    assert [u["purpose_statement"] for u in mine["uses"]] == ["Find households at risk of fire to offer a visit."]
    wrong = client.post("/api/sharing/your-data", json={"reference": reference, "code": "AAAAA-BBBBB"})
    assert wrong.status_code == 422 and "access code" in wrong.json()["error"]["message"]
    page = client.get("/sharing/your-data")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    shown = client.post("/sharing/your-data", data={"csrf_token": token, "reference": reference, "code": code})
    assert shown.status_code == 200 and "Fewer deaths and injuries in home fires." in shown.text


def test_someone_unknown_to_the_controller_has_no_records_and_no_uses(client, db, settings, make_account) -> None:  # type: ignore[no-untyped-def]
    world = build_world(db, settings, make_account, rows_per_borough=3)
    opened = _open(client, world.officer, kind="access", identifier="9434765919")
    assert opened["result"] == {"rows": {DATASET: 0}, "uses": 0}


def test_erasure_is_applied_and_propagated_to_every_recipient_until_each_confirms(  # type: ignore[no-untyped-def]
        client, db, settings, make_account) -> None:
    world = build_world(db, settings, make_account, rows_per_borough=18)
    opened = _open(client, world.officer, kind="erasure", identifier=world.numbers[0])
    assert opened["result"] == {"rows_erased": {DATASET: 1}} and opened["status"] == "open"
    recipients = {r["organisation"]: r for r in opened["recipients"]}
    assert set(recipients) == {"newham", "hackney"} and all(r["action"] == "erase" for r in recipients.values())
    with world.store.cursor() as cur:
        assert cur.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] == 35
    released = client.post("/api/sharing/queries", json=count_query(), headers=world.analyst.headers).json()
    assert counts_by_borough(released)["Newham"] == 15  # 17 people: the erased person is gone
    reference = opened["reference"]
    url = f"/api/sharing/subject-requests/{reference}/recipients"
    # Hackney cannot confirm for Newham; each recipient confirms for itself
    assert client.post(f"{url}/{recipients['newham']['id']}/confirm", json={},
                       headers=world.recipient_member.headers).status_code == 403
    done = client.post(f"{url}/{recipients['hackney']['id']}/confirm", json={"note": "Deleted from our copy."},
                       headers=world.recipient_member.headers).json()
    assert done["status"] == "open"
    final = client.post(f"{url}/{recipients['newham']['id']}/confirm", json={}, headers=world.analyst.headers).json()
    assert final["status"] == "completed" and all(r["confirmed_at"] for r in final["recipients"])
    listing = client.get("/sharing/subject-requests.json", headers=world.officer.headers).json()
    assert listing["requests"][0]["reference"] == reference and listing["overdue"] == 0
    page = client.get(f"/sharing/subject-requests/{reference}", headers=world.officer.headers)
    assert page.status_code == 200 and "Deleted from our copy." in page.text


def test_rectification_changes_the_record_and_refuses_the_pseudonym(client, db, settings, make_account) -> None:  # type: ignore[no-untyped-def]
    world = build_world(db, settings, make_account, rows_per_borough=3)
    bad = client.post("/api/sharing/subject-requests", headers=world.officer.headers, json={
        "organisation": "london-fire-brigade", "identifier_kind": "nhs_number", "identifier": world.numbers[1],
        "kind": "rectification", "dataset": DATASET, "changes": {"person": "someone-else"}})
    assert bad.status_code == 422 and "person" in bad.json()["error"]["message"]
    opened = _open(client, world.officer, kind="rectification", identifier=world.numbers[1], dataset=DATASET,
                   changes={"smoke_alarm": True})
    assert opened["result"] == {"rows_changed": {DATASET: 1}} and len(opened["recipients"]) == 2
    with db.session() as session:
        access, _ = subjects.open_request(session, settings, accounts.actor_for(
            accounts.get_user(session, "lfb-officer"), "token"),
            {"organisation": "london-fire-brigade", "kind": "access", "identifier_kind": "nhs_number",
             "identifier": world.numbers[1]})
        assert subjects.person_data(session, settings, access)["datasets"][DATASET]["rows"][0]["smoke_alarm"] is True


def test_objection_becomes_an_opt_out_the_gateway_honours(client, db, settings, make_account) -> None:  # type: ignore[no-untyped-def]
    world = build_world(db, settings, make_account, rows_per_borough=18)
    opened = _open(client, world.officer, kind="objection", identifier=world.numbers[0], scope="all")
    assert opened["status"] == "completed" and opened["result"]["optout"].startswith("OPT-")
    body = count_query()
    body["query"]["where"] = {"age": {">=": 60}}
    released = client.post("/api/sharing/queries", json=body, headers=world.analyst.headers).json()
    assert counts_by_borough(released)["Newham"] == 15  # 17 people: the objector is left out


def test_bad_requests_say_what_to_fix_and_only_officers_open_them(client, db, settings, make_account) -> None:  # type: ignore[no-untyped-def]
    world = build_world(db, settings, make_account, rows_per_borough=2)
    bad = client.post("/api/sharing/subject-requests", headers=world.officer.headers,
                      json={"organisation": "london-fire-brigade", "kind": "delete-me", "identifier_kind": "nhs_number",
                            "identifier": "", "received_on": "31/01/2026"})
    assert bad.status_code == 422 and {"kind", "identifier", "received_on"} <= set(bad.json()["error"]["fields"])
    refused = client.post("/api/sharing/subject-requests", headers=world.analyst.headers,
                          json={"organisation": "london-fire-brigade", "kind": "access", "identifier_kind": "nhs_number",
                                "identifier": world.numbers[0]})
    assert refused.status_code == 403
    assert client.get("/sharing/subject-requests").status_code == 401


def test_overdue_requests_are_flagged(client, db, settings, make_account) -> None:  # type: ignore[no-untyped-def]
    world = build_world(db, settings, make_account, rows_per_borough=10)
    opened = _open(client, world.officer, kind="erasure", identifier=world.numbers[0], received_on="2020-01-31")
    assert opened["due_on"] == "2020-03-02" and opened["overdue"] is True  # 29 February 2020 was a Saturday
    listing = client.get("/sharing/subject-requests", headers=world.officer.headers)
    assert "overdue" in listing.text


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_an_officer_records_a_request_in_the_browser_without_javascript(client, db, settings, make_account) -> None:  # type: ignore[no-untyped-def]
    world = build_world(db, settings, make_account, rows_per_borough=3)
    token = CSRF.search(client.get("/sign-in").text).group(1)  # type: ignore[union-attr]
    client.post("/sign-in", data={"csrf_token": token, "username": world.officer.username,
                                  "password": world.officer.password}, follow_redirects=False)
    form = client.get("/sharing/subject-requests/new")
    assert form.status_code == 200 and "London Fire Brigade" in form.text
    token = CSRF.search(form.text).group(1)  # type: ignore[union-attr]
    fields = {"csrf_token": token, "organisation": "london-fire-brigade", "identifier_kind": "nhs_number",
              "received_on": "2026-11-02"}
    wrong = client.post("/sharing/subject-requests/new", data={**fields, "kind": "rectification",
                                                               "identifier": "943 476 5918", "dataset": DATASET,
                                                               "changes": "smoke_alarm = maybe"})
    assert wrong.status_code == 422 and "govuk-error-summary" in wrong.text and "Modulus 11" in wrong.text
    assert "943 476 5918" not in wrong.text  # identifiers are never echoed back
    bad_value = client.post("/sharing/subject-requests/new", data={**fields, "kind": "rectification",
                                                                   "identifier": world.numbers[0], "dataset": DATASET,
                                                                   "changes": "smoke_alarm = maybe"})
    assert bad_value.status_code == 422 and "Give smoke_alarm as a boolean" in bad_value.text
    done = client.post("/sharing/subject-requests/new", data={**fields, "kind": "rectification",
                                                              "identifier": world.numbers[0], "dataset": DATASET,
                                                              "changes": "smoke_alarm = true\nage = 90"})
    assert done.status_code == 201 and "Request recorded" in done.text and "2026-12-02" in done.text
    reference = re.search(r"DSR-[0-9A-F]{8}", done.text).group(0)  # type: ignore[union-attr]
    assert "rows changed" in client.get(f"/sharing/subject-requests/{reference}").text
    with world.store.cursor() as cur:
        changed = cur.execute(f"SELECT smoke_alarm, age FROM {TABLE} WHERE age = 90").fetchall()
    assert changed == [(True, 90)]


def test_a_recipient_holding_rows_is_told_which_pseudonyms_to_erase_and_no_one_else_is(  # type: ignore[no-untyped-def]
        client, db, settings, make_account) -> None:
    world = build_world(db, settings, make_account, rows_per_borough=3, identifiability="pseudonymised")
    opened = _open(client, world.officer, kind="erasure", identifier=world.numbers[0])
    assert all(r["row_level"] and r["pseudonyms"] is None for r in opened["recipients"])  # not in the reply
    reference = opened["reference"]
    seen = client.get(f"/api/sharing/subject-requests/{reference}", headers=world.analyst.headers).json()
    mine = [r for r in seen["recipients"] if r["organisation"] == "newham"]
    others = [r for r in seen["recipients"] if r["organisation"] != "newham"]
    expected = [Pseudonymiser(settings).pseudonym("nhs_number", world.numbers[0])]
    assert mine[0]["pseudonyms"] == expected and all(r["pseudonyms"] is None for r in others)
    page = client.get(f"/sharing/subject-requests/{reference}", headers=world.analyst.headers)
    assert expected[0] in page.text


def test_the_person_also_sees_uses_of_rows_loaded_after_their_request(client, db, settings, make_account) -> None:  # type: ignore[no-untyped-def]
    from smartlondon.sharing.privacy.ingest import ingest_rows

    world = build_world(db, settings, make_account, rows_per_borough=10)
    newcomer = "9434765919"
    opened = _open(client, world.officer, kind="access", identifier=newcomer)
    assert opened["result"] == {"rows": {DATASET: 0}, "uses": 0}
    ingest_rows(world.store, Pseudonymiser(settings), TABLE,
                {"person": "VARCHAR", "borough": "VARCHAR", "age": "BIGINT", "smoke_alarm": "BOOLEAN"},
                [(newcomer, "Newham", 77, False)], {"person": "nhs_number"}, subject_column="person")
    assert client.post("/api/sharing/queries", json=count_query(), headers=world.analyst.headers).status_code == 200
    mine = client.post("/api/sharing/your-data", json={"reference": opened["reference"], "code": opened["access_code"]})
    assert [u["organisation"] for u in mine.json()["uses"]] == ["newham"]
