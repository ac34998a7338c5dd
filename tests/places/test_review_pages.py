"""The review queue as HTML forms: propose a place or a correction, filter the queue, accept or reject with a reason."""

from __future__ import annotations

import re

from smartlondon.core import accounts
from smartlondon.places import service

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ROUNDHOUSE = {"type": "Point", "coordinates": [-0.1519, 51.5432]}


def sign_in(client, account) -> str:
    """Sign in through the form; the CSRF token of the new session."""
    token = CSRF.search(client.get("/sign-in").text).group(1)
    response = client.post("/sign-in", data={"csrf_token": token, "username": account.username,
                                             "password": account.password}, follow_redirects=False)
    assert response.status_code == 303
    return CSRF.search(client.get("/places/propose").text).group(1)


def _main(html: str) -> str:
    return html.split("<main", 1)[1].split("</main>", 1)[0]


def test_a_member_of_the_public_proposes_a_venue_and_a_reviewer_accepts_it(db, client, make_account) -> None:
    member = make_account("londoner")
    form = _main(client.get("/places/propose").text)
    assert 'href="/sign-in"' in form and "<form" not in form  # signed out: told to sign in
    token = sign_in(client, member)
    form = _main(client.get("/places/propose").text)
    assert 'value="cultural-venue"' in form and 'value="station"' not in form  # community kinds only
    missing = client.post("/places/propose", data={"csrf_token": token, "kind": "", "name": "", "lon": "x"})
    assert missing.status_code == 422
    page = _main(missing.text)
    assert "There is a problem" in page and 'href="#kind"' in page and 'href="#name"' in page and 'href="#lon"' in page
    outside = client.post("/places/propose", data={"csrf_token": token, "kind": "cultural-venue", "name": "Far away",
                                                    "lon": "2.35", "lat": "48.85"})
    assert outside.status_code == 422 and "London" in _main(outside.text)
    no_token = client.post("/places/propose", data={"kind": "cultural-venue", "name": "Roundhouse"})
    assert no_token.status_code == 403
    sent = client.post("/places/propose", data={
        "csrf_token": token, "kind": "cultural-venue", "name": "Roundhouse", "alt_names": "The Roundhouse\n",
        "lon": "-0.1519", "lat": "51.5432", "reason": "a famous venue"}, follow_redirects=False)
    assert sent.status_code == 303
    proposal_url = sent.headers["location"]
    shown = _main(client.get(proposal_url).text)
    assert "your proposal is in the review queue" in shown and "New place: Roundhouse" in shown
    assert "public: londoner" in shown and "The Roundhouse" in shown and "<form" not in shown  # not a reviewer
    forged = client.post(proposal_url, data={"csrf_token": token, "decision": "accept", "reason": "mine"})
    assert forged.status_code == 403
    client.post("/sign-out", data={"csrf_token": token})

    reviewer = make_account("gla-admin", greater_london_authority="admin")
    token = sign_in(client, reviewer)
    queue = _main(client.get("/places/review?kind=cultural-venue").text)
    assert "1 proposal" in queue and f'href="{proposal_url}"' in queue
    assert "No proposals" in _main(client.get("/places/review?kind=station").text)
    assert client.get("/places/review?status=bogus").status_code == 400
    form = _main(client.get(proposal_url).text)
    assert 'name="decision"' in form and 'name="reason"' in form
    no_reason = client.post(proposal_url, data={"csrf_token": token, "decision": "accept", "reason": ""})
    assert no_reason.status_code == 422 and "Enter the reason for your decision." in no_reason.text
    done = client.post(proposal_url, data={"csrf_token": token, "decision": "accept", "reason": "well known"},
                       follow_redirects=False)
    assert done.status_code == 303
    decided = _main(client.get(proposal_url).text)
    assert "accepted" in decided and "well known" in decided and 'href="/places/ldn:cultural-venue:' in decided
    twin = client.get(proposal_url + ".json").json()
    assert twin["status"] == "accepted" and twin["reviewer"] == "gla-admin"
    place = client.get(f"/places/{twin['result_uid']}.json").json()
    assert place["name"] == "Roundhouse" and place["history"][0]["reason"] == "well known"
    assert "Accepted" in _main(client.get("/places/review?status=accepted").text)
    assert client.get("/places/review.json?status=pending").json()["count"] == 0
    about = client.get("/places/review.json", params={"status": "all", "place": twin["result_uid"]}).json()
    assert [p["id"] for p in about["proposals"]] == [twin["id"]]
    assert "Proposals about this place" in client.get(f"/places/{twin['result_uid']}").text


def test_an_editor_proposes_a_correction_shown_as_a_diff_and_rejected(db, client, editor, sysadmin) -> None:
    with db.session() as session:
        service.create_place(session, kind="park", key="regents", name="Regent's Park", geometry=ROUNDHOUSE,
                             source="Royal Parks")
    token = sign_in(client, editor)
    form = _main(client.get("/places/propose?uid=ldn:park:regents").text)
    assert "Propose a correction to Regent’s Park" in form or "Propose a correction to Regent&#39;s Park" in form
    nothing = client.post("/places/propose", data={"csrf_token": token, "uid": "ldn:park:regents", "name": "Regent's Park"})
    assert nothing.status_code == 422 and "nothing would change" in nothing.text
    sent = client.post("/places/propose", data={"csrf_token": token, "uid": "ldn:park:regents", "name": "Regents Park",
                                                "reason": "the sign says so"}, follow_redirects=False)
    url = sent.headers["location"]
    page = _main(client.get(url).text)
    assert "Correction: ldn:park:regents" in page and "Camden" in page  # the organisation the editor speaks for
    assert "<del>Regent&#39;s Park</del>" in page and "<ins>Regents Park</ins>" in page
    client.post("/sign-out", data={"csrf_token": token})
    token = sign_in(client, sysadmin)
    filtered = _main(client.get("/places/review", params={"organisation": "Camden"}).text)
    assert f'href="{url}"' in filtered
    assert "No proposals" in _main(client.get("/places/review", params={"place": "ldn:park:other"}).text)
    assert f'href="{url}"' in _main(client.get("/places/review", params={"place": "ldn:park:regents"}).text)
    client.post(url, data={"csrf_token": token, "decision": "reject", "reason": "the apostrophe is official"})
    twin = client.get(url, headers={"Accept": "application/json"}).json()
    assert (twin["status"], twin["reason"]) == ("rejected", "the apostrophe is official")
    again = client.post(url, data={"csrf_token": token, "decision": "accept", "reason": "changed my mind"})
    assert again.status_code == 409 and "was already rejected" in again.text
    with db.session() as session:
        assert service.get_place(session, "ldn:park:regents").name == "Regent's Park"


def test_reviewers_are_sysadmins_and_steward_admins_only(db, make_account) -> None:
    from smartlondon.places import review

    make_account("plain")
    make_account("camden-admin", camden="admin")
    make_account("gla-editor", greater_london_authority="editor")
    make_account("gla-admin", greater_london_authority="admin")
    make_account("root", sysadmin=True)
    with db.session() as session:
        verdicts = {name: review.can_review(session, accounts.actor_for(accounts.get_user(session, name), "session"))
                    for name in ("plain", "camden-admin", "gla-editor", "gla-admin", "root")}
    assert verdicts == {"plain": False, "camden-admin": False, "gla-editor": False, "gla-admin": True, "root": True}


def test_the_public_may_correct_community_places_only(db, client, make_account) -> None:
    with db.session() as session:
        service.create_place(session, kind="park", key="regents", name="Regent's Park", geometry=ROUNDHOUSE,
                             source="Royal Parks")
        service.create_place(session, kind="station", key="chalk", name="Chalk Farm", geometry=ROUNDHOUSE, source="TfL")
    member = make_account("londoner")
    token = sign_in(client, member)
    park = client.post("/places/propose", data={"csrf_token": token, "uid": "ldn:park:regents",
                                                "alt_names": "The Regent's Park"}, follow_redirects=False)
    assert park.status_code == 303
    station = client.post("/places/propose", data={"csrf_token": token, "uid": "ldn:station:chalk",
                                                   "alt_names": "Chalk Farm Tube"})
    assert station.status_code == 403 and "community kinds" in station.text
    retire = client.post("/places/api/proposals", headers=member.headers,
                         json={"action": "retire", "uid": "ldn:park:regents"})
    assert retire.status_code == 403
