"""Signing in and out, API tokens and the information pages: what a person in a browser sees."""

from __future__ import annotations

import re

import pytest

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(client, url: str = "/sign-in") -> str:
    page = client.get(url)
    assert page.status_code == 200, page.text
    match = CSRF.search(page.text)
    assert match, "the page has no CSRF token"
    return match.group(1)


def sign_in(client, account, next_url: str | None = None):
    token = csrf_from(client)
    data = {"csrf_token": token, "username": account.username, "password": account.password}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/sign-in", data=data, follow_redirects=False)


def test_sign_in_page_has_one_heading_labelled_fields_and_a_title(client):
    page = client.get("/sign-in")
    assert page.status_code == 200
    html = page.text
    assert html.count("<h1") == 1
    assert "<title>Sign in – London Datastore</title>" in html
    assert '<label class="govuk-label govuk-label--s" for="username">' in html
    assert 'for="password"' in html and 'autocomplete="current-password"' in html
    assert 'type="password"' in html


def test_sign_in_with_the_right_password_starts_a_session(client, editor):
    before = csrf_from(client)
    response = sign_in(client, editor)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    home = client.get("/")
    assert "Signed in as" in home.text
    # The CSRF token changes when someone signs in.
    assert CSRF.search(home.text).group(1) != before
    assert client.get("/account/tokens", follow_redirects=False).status_code == 200


def test_sign_in_with_email_address_works_too(client, editor):
    token = csrf_from(client)
    response = client.post("/sign-in", data={"csrf_token": token, "username": f"{editor.username}@example.org",
                                             "password": editor.password}, follow_redirects=False)
    assert response.status_code == 303


@pytest.mark.parametrize("next_url, expected", [
    ("/dataset/new", "/dataset/new"),
    ("/dataset?q=air", "/dataset?q=air"),
    ("https://evil.example/", "/"),
    ("//evil.example/", "/"),
    ("/\\evil.example", "/"),
    ("javascript:alert(1)", "/"),
])
def test_sign_in_goes_back_only_to_pages_on_this_site(client, editor, next_url, expected):
    response = sign_in(client, editor, next_url)
    assert response.status_code == 303
    assert response.headers["location"] == expected


def test_anonymous_visitors_are_sent_to_sign_in_and_back(client, editor):
    response = client.get("/dataset/new", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=%2Fdataset%2Fnew"
    form = client.get(response.headers["location"])
    assert 'name="next" value="/dataset/new"' in form.text
    assert sign_in(client, editor, "/dataset/new").headers["location"] == "/dataset/new"


@pytest.mark.parametrize("username, password", [
    ("camden-editor", "wrong-password-123"),
    ("nobody-at-all", "camden-editor-password-123"),
    ("", ""),
])
def test_a_wrong_username_or_password_gets_one_message_that_does_not_say_which(client, editor, username, password):
    token = csrf_from(client)
    response = client.post("/sign-in", data={"csrf_token": token, "username": username, "password": password},
                           follow_redirects=False)
    assert response.status_code == 400
    html = response.text
    assert "govuk-error-summary" in html
    assert "Enter a correct username and password" in html
    assert 'href="#username"' in html
    assert "<title>Error: Sign in – London Datastore</title>" in html
    if username:
        assert f'value="{username}"' in html  # what they typed is kept (never the password)
    assert password not in html or not password
    assert "Signed in as" not in client.get("/").text


def test_sign_in_without_the_csrf_token_is_refused(client, editor):
    response = client.post("/sign-in", data={"username": editor.username, "password": editor.password},
                           follow_redirects=False)
    assert response.status_code == 403
    assert "Signed in as" not in client.get("/").text
    wrong = client.post("/sign-in", data={"csrf_token": "forged", "username": editor.username,
                                          "password": editor.password}, follow_redirects=False)
    assert wrong.status_code == 403


def test_sign_out_ends_the_session(client, editor):
    sign_in(client, editor)
    token = CSRF.search(client.get("/").text).group(1)
    assert client.post("/sign-out", data={}, follow_redirects=False).status_code == 403  # needs the token
    response = client.post("/sign-out", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert "Signed in as" not in client.get("/").text
    assert client.get("/account/tokens", follow_redirects=False).status_code == 303


def test_a_new_token_is_shown_once_and_works(client, editor):
    sign_in(client, editor)
    page = client.get("/account/tokens")
    assert "<h1" in page.text and "Create a token" in page.text
    token = CSRF.search(page.text).group(1)
    created = client.post("/account/tokens", data={"csrf_token": token, "name": "nightly harvester", "days": "30"})
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    secret = re.search(r'id="new-token-secret">(sl_[^<]+)<', created.text).group(1)
    assert "govuk-notification-banner" in created.text
    assert "only time the token will be shown" in created.text

    again = client.get("/account/tokens")
    assert secret not in again.text
    assert "nightly harvester" in again.text and secret[:10] in again.text

    me = client.get("/api/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json()["username"] == editor.username

    listed = client.get("/account/tokens.json").json()["tokens"]
    mine = next(t for t in listed if t["name"] == "nightly harvester")
    assert "secret" not in mine
    revoked = client.post(f"/account/tokens/{mine['id']}/revoke", data={"csrf_token": token},
                          follow_redirects=False)
    assert revoked.status_code == 303
    after = client.get("/account/tokens")
    assert "Token revoked" in after.text and "Revoked" in after.text
    assert client.get("/api/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_token_form_errors_and_missing_csrf(client, editor):
    sign_in(client, editor)
    token = CSRF.search(client.get("/account/tokens").text).group(1)
    bad = client.post("/account/tokens", data={"csrf_token": token, "name": "", "days": "soon"})
    assert bad.status_code == 422
    assert 'href="#name"' in bad.text and 'href="#days"' in bad.text
    assert 'value="soon"' in bad.text
    refused = client.post("/account/tokens", data={"name": "sneaky", "days": "30"})
    assert refused.status_code == 403
    names = [t["name"] for t in client.get("/account/tokens.json").json()["tokens"]]
    assert "sneaky" not in names


def test_someone_else_cannot_revoke_my_token(client, editor, make_account):
    other = make_account("other-person")
    sign_in(client, editor)
    token = CSRF.search(client.get("/account/tokens").text).group(1)
    client.post("/account/tokens", data={"csrf_token": token, "name": "mine", "days": "5"})
    mine = next(t for t in client.get("/account/tokens.json").json()["tokens"] if t["name"] == "mine")
    client.post("/sign-out", data={"csrf_token": CSRF.search(client.get("/").text).group(1)})
    sign_in(client, other)
    token = CSRF.search(client.get("/account/tokens").text).group(1)
    response = client.post(f"/account/tokens/{mine['id']}/revoke", data={"csrf_token": token})
    assert response.status_code == 404


@pytest.mark.parametrize("path, heading", [
    ("/accessibility", "Accessibility statement for London Datastore"),
    ("/feedback", "Give feedback"),
])
def test_information_pages(client, path, heading):
    page = client.get(path)
    assert page.status_code == 200
    assert page.text.count("<h1") == 1 and heading in page.text
    assert client.get(path + ".json").headers["content-type"] == "application/json"


def test_accessibility_statement_says_what_it_aims_for_and_how_to_report(client):
    html = client.get("/accessibility").text
    assert "WCAG" in html and "2.2" in html and "AA" in html
    assert 'href="/feedback"' in html
    assert "not fully accessible" in html
