"""Accounts, roles, tokens and passwords."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from smartlondon.core import accounts, passwords
from smartlondon.core.db import utcnow
from smartlondon.core.errors import Conflict, NotAuthenticated, ValidationFailed
from smartlondon.core.models import ApiToken, Organisation, User


def test_seeded_organisations_are_londons_public_bodies(db):
    with db.session() as s:
        orgs = {o.slug: o for o in s.scalars(select(Organisation))}
    boroughs = [o for o in orgs.values() if o.kind == "local-authority"]
    assert len(boroughs) == 33
    assert sorted(o.gss_code for o in boroughs) == [f"E090000{n:02d}" for n in range(1, 34)]
    assert orgs["westminster"].gss_code == "E09000033"
    for slug in ("greater-london-authority", "transport-for-london", "metropolitan-police-service",
                 "london-fire-brigade", "london-ambulance-service", "nhs-england-london"):
        assert slug in orgs


def test_passwords_are_stored_as_argon2_hashes(db):
    with db.session() as s:
        accounts.create_user(s, username="ann", email="ann@example.org", password="correct horse battery")
    with db.session() as s:
        user = s.scalar(select(User).where(User.username == "ann"))
        assert user.password_hash.startswith("$argon2id$")
        assert "correct horse" not in user.password_hash
        assert accounts.authenticate_password(s, "ann", "correct horse battery").id == user.id
        assert accounts.authenticate_password(s, "ANN@example.org", "correct horse battery").id == user.id
        assert accounts.authenticate_password(s, "ann", "wrong password!") is None


def test_the_product_hashes_with_argon2id_at_full_cost(production_password_hasher):
    # The suite hashes cheaply (tests/conftest.py); the product's own hasher keeps argon2's RFC 9106
    # low-memory parameters, and the product verifies such a hash.
    stored = production_password_hasher.hash("correct horse battery")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert passwords.verify_password(stored, "correct horse battery")
    assert not passwords.verify_password(stored, "wrong password!")


def test_bad_users_are_refused_with_every_reason(db):
    with db.session() as s, pytest.raises(ValidationFailed) as err:
        accounts.create_user(s, username="A", email="not-an-email", password="short")
    assert set(err.value.fields) == {"username", "email", "password"}
    with db.session() as s:
        accounts.create_user(s, username="bob", email="bob@example.org", password="long enough pw")
    with db.session() as s, pytest.raises(Conflict):
        accounts.create_user(s, username="bob", email="other@example.org", password="long enough pw")


def test_tokens_are_hashed_expire_and_can_be_revoked(db):
    with db.session() as s:
        user = accounts.create_user(s, username="cat", email="cat@example.org", password="long enough pw")
        accounts.set_role(s, user, accounts.get_organisation(s, "camden"), "editor")
        token, secret = accounts.create_token(s, user, "harvester", days=30)
        token_id = token.id
    with db.session() as s:
        stored = s.get(ApiToken, token_id)
        assert secret not in (stored.token_hash, stored.prefix) and secret.startswith(stored.prefix)
        actor = accounts.authenticate_token(s, f"Bearer {secret}")
        assert actor.user.username == "cat" and actor.via == "token"
        assert actor.can_edit(accounts.get_organisation(s, "camden").id)
        assert not actor.can_edit(accounts.get_organisation(s, "hackney").id)
        with pytest.raises(NotAuthenticated, match="expired"):
            accounts.authenticate_token(s, secret, now=utcnow() + timedelta(days=31))
        accounts.revoke_token(s, actor, token_id)
    with db.session() as s, pytest.raises(NotAuthenticated, match="revoked"):
        accounts.authenticate_token(s, secret)


def test_roles(db):
    with db.session() as s:
        user = accounts.create_user(s, username="dee", email="dee@example.org", password="long enough pw")
        camden = accounts.get_organisation(s, "camden")
        accounts.set_role(s, user, camden, "member")
        member = accounts.actor_for(user, "session")
        assert member.can_read_private(camden.id) and not member.can_edit(camden.id)
        accounts.set_role(s, user, camden, "admin")
        admin = accounts.actor_for(user, "session")
        assert admin.can_edit(camden.id) and admin.can_admin(camden.id)
        with pytest.raises(ValidationFailed):
            accounts.set_role(s, user, camden, "overlord")
