"""Accounts: users, organisations, roles and API tokens, and who may do what.

Permission checks live here, in the service layer, so every route (page, JSON API or
standard protocol) gets the same answer.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import utcnow
from .errors import Conflict, Forbidden, NotAuthenticated, NotFound, ValidationFailed
from .models import ROLES, ApiToken, Membership, Organisation, User
from .passwords import MIN_LENGTH, hash_password, verify_password

TOKEN_PREFIX = "sl_"
USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,98}[a-z0-9]$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")


@dataclass
class Actor:
    """Who is making a request: a signed-in user, a token holder, the CLI, or anonymous."""

    user: User | None = None
    via: str = "anonymous"
    roles: dict[int, str] = field(default_factory=dict)

    @property
    def is_sysadmin(self) -> bool:
        """True for sysadmins and the local command line."""
        return self.via == "cli" or bool(self.user and self.user.is_sysadmin)

    @property
    def is_authenticated(self) -> bool:
        """True unless anonymous."""
        return self.via != "anonymous"

    @property
    def label(self) -> str:
        """How this actor is named in the audit log."""
        if self.user is not None:
            return self.user.username
        if self.via.startswith("harvest:"):  # a harvester acting for a source's organisation
            return self.via
        return "command line" if self.via == "cli" else "anonymous"

    def can_edit(self, organisation_id: int) -> bool:
        """True if this actor may publish and edit the organisation's datasets."""
        return self.is_sysadmin or self.roles.get(organisation_id) in ("editor", "admin")

    def can_read_private(self, organisation_id: int) -> bool:
        """True if this actor may see the organisation's private datasets."""
        return self.is_sysadmin or organisation_id in self.roles

    def can_admin(self, organisation_id: int) -> bool:
        """True if this actor may manage the organisation's members."""
        return self.is_sysadmin or self.roles.get(organisation_id) == "admin"

    def editable_organisations(self) -> list[int]:
        """Ids of the organisations this actor may publish for (empty for sysadmins: all)."""
        return [org for org, role in self.roles.items() if role in ("editor", "admin")]

    @property
    def can_review_outputs(self) -> bool:
        """True if this actor is an output reviewer (the "reviewer" role) of some organisation."""
        return self.user is not None and "reviewer" in self.roles.values()


ANONYMOUS = Actor()
COMMAND_LINE = Actor(via="cli")


def actor_for(user: User, via: str) -> Actor:
    """The actor for a signed-in user or a token holder."""
    return Actor(user=user, via=via, roles={m.organisation_id: m.role for m in user.memberships})


def require_authenticated(actor: Actor) -> None:
    """Raise 401 unless someone is signed in or presented a token."""
    if not actor.is_authenticated:
        raise NotAuthenticated("Sign in, or send an API token in the Authorization header.")


def require_sysadmin(actor: Actor) -> None:
    """Raise unless the actor is a sysadmin."""
    require_authenticated(actor)
    if not actor.is_sysadmin:
        raise Forbidden("Only a sysadmin can do this.")


# --- organisations -----------------------------------------------------------------------

def get_organisation(session: Session, slug_or_id: str) -> Organisation:
    """The organisation with this slug or UUID; 404 if none."""
    org = session.scalar(
        select(Organisation).where((Organisation.slug == slug_or_id) | (Organisation.uuid == slug_or_id))
    )
    if org is None:
        raise NotFound(f"There is no organisation called '{slug_or_id}'.")
    return org


def list_organisations(session: Session) -> list[Organisation]:
    """Every organisation, by name."""
    return list(session.scalars(select(Organisation).order_by(Organisation.name)))


def create_organisation(session: Session, actor: Actor, *, slug: str, name: str, kind: str = "other",
                        gss_code: str | None = None, url: str | None = None,
                        description: str = "") -> Organisation:
    """Create an organisation (sysadmins only)."""
    from . import audit

    require_sysadmin(actor)
    errors: dict[str, str] = {}
    if not SLUG.match(slug or ""):
        errors["slug"] = "Enter a short name of lowercase letters, numbers and hyphens (2 to 100 characters)."
    if not (name or "").strip():
        errors["name"] = "Enter the organisation's name."
    if errors:
        raise ValidationFailed("The organisation is not valid.", errors)
    if session.scalar(select(Organisation.id).where(Organisation.slug == slug)) is not None:
        raise Conflict(f"The name '{slug}' is already used by another organisation.", {"slug": "Already in use."})
    org = Organisation(uuid=str(uuid.uuid4()), slug=slug, name=name.strip(), kind=kind,
                       gss_code=gss_code or None, url=url or None, description=description)
    session.add(org)
    session.flush()
    audit.record(session, actor, "organisation.create", "organisation", org.slug,
                 after={"slug": slug, "name": org.name, "kind": kind}, organisation_id=org.id,
                 summary=f"Created organisation {org.name}")
    return org


# --- users ---------------------------------------------------------------------------------

def create_user(session: Session, *, username: str, email: str, password: str | None,
                display_name: str = "", sysadmin: bool = False) -> User:
    """Create a user; the password is stored as an argon2 hash."""
    errors: dict[str, str] = {}
    username = (username or "").strip().lower()
    email = (email or "").strip().lower()
    if not USERNAME.match(username):
        errors["username"] = "Use 3 to 100 lowercase letters, numbers, dots, hyphens or underscores."
    if not EMAIL.match(email):
        errors["email"] = "Enter an email address like name@example.org."
    if password is not None and len(password) < MIN_LENGTH:
        errors["password"] = f"Use a password of at least {MIN_LENGTH} characters."
    if errors:
        raise ValidationFailed("The user is not valid.", errors)
    clash = session.scalar(select(User).where((User.username == username) | (User.email == email)))
    if clash is not None:
        field_name = "username" if clash.username == username else "email"
        raise Conflict(f"A user with this {field_name} already exists.", {field_name: "Already in use."})
    user = User(username=username, email=email, display_name=display_name or username,
                password_hash=hash_password(password) if password else None, is_sysadmin=sysadmin)
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, username: str) -> User:
    """The user with this username; 404 if none."""
    user = session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None:
        raise NotFound(f"There is no user called '{username}'.")
    return user


def set_role(session: Session, user: User, organisation: Organisation, role: str | None) -> None:
    """Give a user a role in an organisation (``None`` removes the membership)."""
    if role is not None and role not in ROLES:
        raise ValidationFailed(f"Unknown role '{role}'.", {"role": f"Choose one of {', '.join(ROLES)}."})
    existing = session.get(Membership, (user.id, organisation.id))
    if role is None:
        if existing is not None:
            session.delete(existing)
    elif existing is None:
        session.add(Membership(user_id=user.id, organisation_id=organisation.id, role=role))
    else:
        existing.role = role
    session.flush()
    session.expire(user, ["memberships"])


def authenticate_password(session: Session, login: str, password: str) -> User | None:
    """The active user whose username or email and password match, or None."""
    login = (login or "").strip().lower()
    user = session.scalar(select(User).where((User.username == login) | (User.email == login)))
    if user is None or not user.is_active:
        verify_password(None, password)
        return None
    return user if verify_password(user.password_hash, password) else None


# --- API tokens ------------------------------------------------------------------------------

def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(session: Session, user: User, name: str, days: int | None = 365) -> tuple[ApiToken, str]:
    """Create an API token; returns the stored record and the secret, which is shown only once."""
    if not (name or "").strip():
        raise ValidationFailed("Give the token a name.", {"name": "Enter a name, such as 'harvester'."})
    if days is not None and days <= 0:
        raise ValidationFailed("A token must last at least one day.", {"days": "Enter a number of days above 0."})
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(days=days) if days else None
    token = ApiToken(user_id=user.id, name=name.strip(), prefix=secret[:10], token_hash=_digest(secret),
                     expires_at=expires)
    session.add(token)
    session.flush()
    return token, secret


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    """The user's tokens, newest first."""
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())))


def revoke_token(session: Session, actor: Actor, token_id: int) -> ApiToken:
    """Revoke a token (its owner or a sysadmin)."""
    token = session.get(ApiToken, token_id)
    if token is None or not (actor.is_sysadmin or (actor.user and actor.user.id == token.user_id)):
        raise NotFound("There is no such token.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def authenticate_token(session: Session, secret: str, now: datetime | None = None) -> Actor:
    """The actor holding this token; 401 with the reason if it is unknown, revoked or expired."""
    secret = secret.strip()
    if secret.lower().startswith("bearer "):
        secret = secret[7:].strip()
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(secret)))
    if token is None:
        raise NotAuthenticated("The API token is not recognised. Check it, or create a new one.")
    now = now or utcnow()
    if token.revoked_at is not None:
        raise NotAuthenticated("The API token has been revoked. Create a new one.")
    if token.expires_at is not None and token.expires_at <= now:
        raise NotAuthenticated(f"The API token expired on {token.expires_at:%Y-%m-%d}. Create a new one.")
    if not token.user.is_active:
        raise NotAuthenticated("The account that owns this token is disabled.")
    if token.last_used_at is None or (now - token.last_used_at) > timedelta(minutes=5):
        token.last_used_at = now
    return actor_for(token.user, "token")
