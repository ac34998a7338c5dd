"""Proposals go through review: accepted changes are versioned, rejections keep their reason."""

from __future__ import annotations

from smartlondon.places import service

ROUNDHOUSE = {"type": "Point", "coordinates": [-0.1519, 51.5432]}


def test_the_public_proposes_a_venue_and_a_sysadmin_accepts_it(db, client, make_account, sysadmin) -> None:
    member = make_account("londoner")
    proposed = client.post("/places/api/proposals", headers=member.headers, json={
        "action": "create", "kind": "cultural-venue", "key": "roundhouse", "name": "Roundhouse",
        "geometry": ROUNDHOUSE, "alt_names": ["The Roundhouse"]})
    assert proposed.status_code == 201 and proposed.json()["source"] == "public: londoner"
    queue = client.get("/places/api/proposals").json()["proposals"]
    assert [p["payload"]["name"] for p in queue] == ["Roundhouse"]
    assert client.get("/places/ldn:cultural-venue:roundhouse.json").status_code == 404
    no_reason = client.post(f"/places/api/proposals/{queue[0]['id']}/accept", headers=sysadmin.headers, json={})
    assert no_reason.status_code == 422
    accepted = client.post(f"/places/api/proposals/{queue[0]['id']}/accept", headers=sysadmin.headers,
                           json={"reason": "a well-known venue"}).json()
    assert (accepted["status"], accepted["result_uid"]) == ("accepted", "ldn:cultural-venue:roundhouse")
    place = client.get("/places/ldn:cultural-venue:roundhouse.json").json()
    assert place["history"][0]["reason"] == "a well-known venue"
    assert place["history"][0]["actor"] == "londoner, accepted by root-admin"
    assert client.get("/places/api/proposals").json()["proposals"] == []


def test_the_public_cannot_propose_stations_or_review(db, client, make_account) -> None:
    member = make_account("londoner")
    response = client.post("/places/api/proposals", headers=member.headers, json={
        "action": "create", "kind": "station", "name": "Nowhere Parkway", "geometry": ROUNDHOUSE})
    assert response.status_code == 403 and "community kinds" in response.json()["error"]["message"]
    anonymous = client.post("/places/api/proposals", json={"action": "create", "kind": "park", "name": "A park"})
    assert anonymous.status_code == 401


def test_an_editor_proposes_a_rename_that_is_rejected(db, client, editor, sysadmin) -> None:
    with db.session() as session:
        service.create_place(session, kind="park", key="regents", name="Regent's Park", geometry=ROUNDHOUSE,
                             source="Royal Parks")
    proposal = client.post("/places/api/proposals", headers=editor.headers, json={
        "action": "update", "uid": "ldn:park:regents", "changes": {"name": "Regents Park"}}).json()
    rejected = client.post(f"/places/api/proposals/{proposal['id']}/reject", headers=sysadmin.headers,
                           json={"reason": "the apostrophe is the official spelling"}).json()
    assert (rejected["status"], rejected["reason"]) == ("rejected", "the apostrophe is the official spelling")
    again = client.post(f"/places/api/proposals/{proposal['id']}/accept", headers=sysadmin.headers,
                        json={"reason": "changed my mind"})
    assert again.status_code == 409
    with db.session() as session:
        assert service.get_place(session, "ldn:park:regents").name == "Regent's Park"


def test_a_bad_geometry_is_refused_when_proposed(db, client, make_account) -> None:
    member = make_account("londoner")
    response = client.post("/places/api/proposals", headers=member.headers, json={
        "action": "create", "kind": "park", "name": "Somewhere", "geometry": {"type": "Point", "coordinates": [2.35, 48.85]}})
    assert response.status_code == 422 and "outside London" in response.json()["error"]["message"]
    assert client.get("/places/api/proposals").json()["proposals"] == []
