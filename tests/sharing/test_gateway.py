"""The gateway: every agreement condition refused with its reason, safe aggregates, SQL walls, opt-outs."""

from __future__ import annotations

import pytest

from smartlondon.core import accounts
from smartlondon.sharing import agreements

from .conftest import query_body

URL = "/api/sharing/queries"


def _refused(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["status"] == "refused" and body["table"] is None
    return body["reasons"]


def test_an_approved_aggregate_is_released_after_disclosure_control(client, agreement, analyst):  # type: ignore[no-untyped-def]
    response = client.post(URL, json=query_body(), headers=analyst.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "released"
    table = body["table"]
    assert table["columns"][:3] == ["borough", "count", "mean_age"]
    counts = {row[0]: row[1] for row in table["rows"]}
    assert counts["Camden"] == 30 and counts["Brent"] == 20 and counts["Hackney"] == 10  # rounded to 5 (nhs)
    assert body["disclosure"]["profile"] == "nhs"
    again = client.get(f"{URL}/{body['id']}", headers=analyst.headers)
    assert again.status_code == 200 and again.json()["table"] == table


def test_small_cells_are_suppressed_never_shown(client, agreement, analyst):  # type: ignore[no-untyped-def]
    body = query_body(query={"dataset": "fire-visits", "measures": [{"op": "count"}], "by": ["borough"],
                             "where": {"age": {">=": 74}}})  # only 6 people, all in Hackney
    response = client.post(URL, json=body, headers=analyst.headers)
    assert response.status_code in (200, 403)
    rows = (response.json()["table"] or {"rows": []})["rows"]
    assert all(row[1] in (None, 0) or row[1] >= 8 for row in rows if row[0] != "Total")
    assert 6 not in [row[1] for row in rows]


@pytest.mark.parametrize("status", ["suspended", "ended"])
def test_refused_unless_approved(client, agreement, officer, analyst, status):  # type: ignore[no-untyped-def]
    client.post("/api/sharing/agreements/home-fire-safety/status", json={"status": status, "reason": "Audit"},
                headers=officer.headers)
    reasons = _refused(client.post(URL, json=query_body(), headers=analyst.headers))
    assert any(f"is {status}" in r for r in reasons)


def test_refused_while_draft(client, visits, officer, analyst):  # type: ignore[no-untyped-def]
    from .conftest import agreement_data

    client.post("/api/sharing/agreements", json=agreement_data(), headers=officer.headers)
    reasons = _refused(client.post(URL, json=query_body(), headers=analyst.headers))
    assert any("is draft" in r for r in reasons)


def test_refused_when_out_of_date(client, db, visits, officer, analyst):  # type: ignore[no-untyped-def]
    from .conftest import agreement_data

    with db.session() as session:
        actor = accounts.actor_for(accounts.get_user(session, officer.username), "token")
        expired = agreements.create_agreement(session, agreement_data(start_date="2020-01-01", end_date="2021-03-31"), by=actor)
        agreements.approve(session, expired, actor)
        future = agreements.create_agreement(session, agreement_data(slug="later", start_date="2098-01-01"), by=actor)
        agreements.approve(session, future, actor)
    reasons = _refused(client.post(URL, json=query_body(), headers=analyst.headers))
    assert any("has expired on 2021-03-31" in r for r in reasons)
    reasons = _refused(client.post(URL, json=query_body(agreement="later"), headers=analyst.headers))
    assert any("only starts on 2098-01-01" in r for r in reasons)


def test_refused_when_the_analyst_is_not_a_recipient(client, agreement, make_account):  # type: ignore[no-untyped-def]
    brent = make_account("brent-analyst", brent="member")
    reasons = _refused(client.post(URL, json=query_body(), headers=brent.headers))
    assert any("not a recipient" in r for r in reasons)


def test_refused_for_a_purpose_the_agreement_does_not_allow(client, agreement, analyst):  # type: ignore[no-untyped-def]
    reasons = _refused(client.post(URL, json=query_body(purpose="dpv:FraudPreventionAndDetection"), headers=analyst.headers))
    assert any("dpv:FraudPreventionAndDetection is not one the agreement" in r for r in reasons)


def test_refused_for_an_uncovered_dataset_or_field(client, agreement, analyst):  # type: ignore[no-untyped-def]
    other = query_body(query={"dataset": "council-tax", "measures": [{"op": "count"}]})
    assert any("does not cover the dataset" in r for r in _refused(client.post(URL, json=other, headers=analyst.headers)))
    field = query_body(query={"dataset": "fire-visits", "measures": [{"op": "count"}], "by": ["disability"]})
    assert any("does not cover the field 'disability'" in r for r in _refused(client.post(URL, json=field, headers=analyst.headers)))


def test_refused_for_identifiers_and_row_level_sql_under_an_aggregate_agreement(client, agreement, analyst):  # type: ignore[no-untyped-def]
    by_person = query_body(query={"dataset": "fire-visits", "measures": [{"op": "count"}], "by": ["person"]})
    assert any("direct identifier" in r for r in _refused(client.post(URL, json=by_person, headers=analyst.headers)))
    rows = query_body(query={"sql": "SELECT borough, age FROM fire_visits"})
    assert any("aggregate outputs only" in r for r in _refused(client.post(URL, json=rows, headers=analyst.headers)))


def test_a_disabled_account_or_no_token_gets_nothing(client, db, agreement, analyst):  # type: ignore[no-untyped-def]
    assert client.post(URL, json=query_body()).status_code == 401
    with db.session() as session:
        accounts.get_user(session, analyst.username).is_active = False
    response = client.post(URL, json=query_body(), headers=analyst.headers)
    assert response.status_code == 401 and "disabled" in response.json()["error"]["message"]


def test_bad_bodies_say_what_to_fix(client, agreement, analyst):  # type: ignore[no-untyped-def]
    missing = client.post(URL, json={"purpose": "dpv:PublicBenefit"}, headers=analyst.headers)
    assert missing.status_code == 422 and {"agreement", "query"} <= set(missing.json()["error"]["fields"])
    bad_op = query_body(query={"dataset": "fire-visits", "measures": [{"op": "median", "field": "age"}]})
    assert client.post(URL, json=bad_op, headers=analyst.headers).status_code == 422
    text_mean = query_body(query={"dataset": "fire-visits", "measures": [{"op": "mean", "field": "band"}]})
    assert client.post(URL, json=text_mean, headers=analyst.headers).status_code == 422
    injection = query_body(query={"dataset": "fire-visits", "measures": [{"op": "count"}],
                                  "where": {"borough": ["Camden' OR 1=1 --"]}})
    response = client.post(URL, json=injection, headers=analyst.headers)
    assert response.status_code in (200, 403)  # bound as a value: matches nobody
    assert client.get(f"{URL}/99999", headers=analyst.headers).status_code == 404


def test_sql_sees_only_covered_fields_and_tables(client, agreement, analyst, store):  # type: ignore[no-untyped-def]
    store.load_rows("other_table", {"x": "INTEGER"}, [(1,)], subject_column=None)
    ok = query_body(query={"sql": "SELECT borough, count(*) AS n FROM fire_visits GROUP BY borough ORDER BY borough",
                           "count_columns": ["n"]})
    response = client.post(URL, json=ok, headers=analyst.headers)
    assert response.status_code == 200, response.text
    assert response.json()["table"]["columns"] == ["borough", "n"]
    uncovered_field = query_body(query={"sql": "SELECT disability, count(*) AS n FROM fire_visits GROUP BY 1",
                                        "count_columns": ["n"]})
    assert client.post(URL, json=uncovered_field, headers=analyst.headers).status_code == 422
    star = query_body(query={"sql": "SELECT * FROM other_table", "count_columns": ["x"]})
    assert any("other_table" in r for r in _refused(client.post(URL, json=star, headers=analyst.headers)))
    subjects = query_body(query={"sql": "SELECT count(*) AS n FROM _subjects", "count_columns": ["n"]})
    assert client.post(URL, json=subjects, headers=analyst.headers).status_code == 403
    for sql in ("DELETE FROM fire_visits", "SELECT 1; DROP TABLE fire_visits",
                "SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM main.fire_visits"):
        response = client.post(URL, json=query_body(query={"sql": sql, "count_columns": ["n"]}), headers=analyst.headers)
        assert response.status_code in (403, 422), sql
    assert store.columns("fire_visits")  # still there


def test_row_level_sql_under_a_pseudonymised_agreement_skips_sdc_but_is_logged(client, db, visits, officer, analyst):  # type: ignore[no-untyped-def]
    from .conftest import agreement_data

    with db.session() as session:
        actor = accounts.actor_for(accounts.get_user(session, officer.username), "token")
        made = agreements.create_agreement(session, agreement_data(identifiability="pseudonymised"), by=actor)
        agreements.approve(session, made, actor)
    body = query_body(query={"sql": "SELECT person, age FROM fire_visits WHERE borough = 'Hackney' ORDER BY person"})
    response = client.post(URL, json=body, headers=analyst.headers)
    assert response.status_code == 200, response.text
    assert response.json()["table"]["rows"][0] == ["p050", 70]
    assert response.json()["disclosure"]["row_level"] is True
    assert client.get("/sharing/uses.json").json()["count"] == 1


def test_opted_out_people_are_left_out(client, db, agreement, analyst, store):  # type: ignore[no-untyped-def]
    from smartlondon.sharing.privacy import optouts

    with db.session() as session:  # five Hackney people opt out of every use
        for i in range(50, 55):
            optouts.register_pseudonyms(session, {"test-epoch": f"p{i:03d}"}, scope="all")
    body = query_body(query={"sql": "SELECT borough, count(*) AS n FROM fire_visits GROUP BY borough ORDER BY borough",
                             "count_columns": ["n"]}, disclosure={"profile": "ons"})
    sql = client.post(URL, json=body, headers=analyst.headers).json()
    rows = {r[0]: r[1] for r in sql["table"]["rows"]}
    assert rows["Camden"] == 30 and rows.get("Hackney") in (None, 0, 5)  # 5 left, never 10
    decl = client.post(URL, json=query_body(query={"dataset": "fire-visits", "measures": [{"op": "count"}],
                                                   "by": ["borough"]}), headers=analyst.headers).json()
    counts = {r[0]: r[1] for r in decl["table"]["rows"]}
    assert counts["Camden"] == 30 and counts.get("Hackney") != 10
    with db.session() as session:  # and their rows were not read
        from smartlondon.sharing import accesslog

        opted = store.subject_nos(["p050"])["p050"]
        assert accesslog.uses_touching(session, "fire-visits", opted) == []
        assert len(accesslog.uses_touching(session, "fire-visits", store.subject_nos(["p049"])["p049"])) == 2


def test_a_reviewed_query_is_released_through_mark_released(client, db, agreement, analyst):  # type: ignore[no-untyped-def]
    from smartlondon.sharing import gateway
    from smartlondon.sharing.disclosure.types import Outcome
    from smartlondon.sharing.models import SharingQuery

    with db.session() as session:
        user = accounts.get_user(session, analyst.username)
        made = agreements.get_agreement(session, "home-fire-safety")
        record = SharingQuery(agreement_id=made.id, user_id=user.id, organisation_id=user.memberships[0].organisation_id,
                              purpose="dpv:PublicBenefit", body=query_body(), status="review")
        session.add(record)
        session.flush()
        query_id = record.id
    assert client.get(f"{URL}/{query_id}", headers=analyst.headers).json()["table"] is None
    with db.session() as session:
        gateway.mark_released(session, query_id, Outcome("released", ["borough", "count"], [["Camden", 30]],
                                                         {"profile": "nhs"}, []))
    released = client.get(f"{URL}/{query_id}", headers=analyst.headers).json()
    assert released["status"] == "released" and released["table"]["rows"] == [["Camden", 30]]
    with db.session() as session:
        import pytest as _pytest

        from smartlondon.core.errors import BadRequest

        with _pytest.raises(BadRequest):
            gateway.mark_released(session, query_id, Outcome("released", [], [], {}, []))
    assert client.get("/sharing/uses.json").json()["uses"][0]["result"].startswith("Released a table of 1 rows")
