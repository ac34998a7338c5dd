"""Pages of the core: signing in and out, API tokens, the accessibility statement, feedback.

Every page has a JSON twin (``.json`` or ``Accept: application/json``) through ``render``.
Forms are plain HTML forms with a CSRF token, so every journey works without JavaScript.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from . import accounts
from .errors import NotAuthenticated, ValidationFailed
from .models import ApiToken
from .web import Context, CtxDep, FormDep, render, session_stamp, wants_json

router = APIRouter(tags=["pages"], include_in_schema=False)

SIGN_IN_ERROR = "Enter a correct username and password"
NO_STORE = {"Cache-Control": "no-store"}


# --- helpers shared with other capabilities' pages -----------------------------------------------

def safe_next(target: str | None) -> str:
    """``target`` if it is an address on this site (a path), otherwise ``/``."""
    if not target:
        return "/"
    target = target.strip()
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//")
            or "\\" in target or any(ord(ch) < 32 for ch in target)):
        return "/"
    return target


def sign_in_redirect(request: Request) -> RedirectResponse:
    """A 303 to the sign-in page that comes back to this page afterwards."""
    path = request.url.path
    if request.url.query:
        path += "?" + request.url.query
    return RedirectResponse(f"/sign-in?next={quote(path, safe='')}", status_code=303)


def needs_sign_in(ctx: Context) -> RedirectResponse | None:
    """For pages that need an account: a redirect to sign in for anonymous browsers, else None.

    JSON clients get a 401 instead, since they cannot follow a sign-in form.
    """
    if ctx.actor.is_authenticated:
        return None
    if wants_json(ctx.request):
        raise NotAuthenticated("Sign in, or send an API token in the Authorization header.")
    return sign_in_redirect(ctx.request)


def flash(request: Request, title: str, text: str = "") -> None:
    """Keep a one-off success message for the next page shown to this browser."""
    request.session["flash"] = {"title": title, "text": text}


def pop_flash(request: Request) -> dict[str, str] | None:
    """The message kept by :func:`flash`, removed so it shows once."""
    value = request.session.pop("flash", None) if "session" in request.scope else None
    return value if isinstance(value, dict) else None


def form_text(form: FormData, name: str, limit: int = 10_000) -> str:
    """A text field of a form, trimmed and bounded in length."""
    value = form.get(name)
    return str(value).strip()[:limit] if isinstance(value, str) else ""


# --- signing in and out -------------------------------------------------------------------------

@router.get("/sign-in")
def sign_in_page(request: Request, ctx: Context = CtxDep) -> Response:
    """The sign-in form."""
    next_url = safe_next(request.query_params.get("next"))
    page = {"next": next_url, "username": "", "errors": {}}
    return render(ctx, "core/sign_in.html", page, data={"next": next_url, "fields": ["username", "password"]},
                  headers=NO_STORE)


@router.post("/sign-in")
async def sign_in(request: Request, ctx: Context = CtxDep, form: FormData = FormDep) -> Response:
    """Check the username (or email address) and password; start a session on success."""
    login = form_text(form, "username", 320) or form_text(form, "email", 320)
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    next_url = safe_next(form_text(form, "next", 2000) or request.query_params.get("next"))
    user = await run_in_threadpool(accounts.authenticate_password, ctx.session, login, password) \
        if login and password else None
    if user is None:
        errors = {"username": SIGN_IN_ERROR}
        page = {"next": next_url, "username": login, "errors": errors}
        return await run_in_threadpool(
            render, ctx, "core/sign_in.html", page,
            {"error": {"status": 400, "code": "sign_in_failed", "message": SIGN_IN_ERROR, "fields": errors}},
            400, NO_STORE)
    request.session.clear()
    request.session["user_id"] = user.id
    request.session["auth"] = session_stamp(user)
    request.session["csrf"] = secrets.token_urlsafe(32)
    return RedirectResponse(next_url, status_code=303)


@router.post("/sign-out")
async def sign_out(request: Request, form: FormData = FormDep) -> Response:
    """End the session."""
    request.session.clear()
    return RedirectResponse("/", status_code=303)


# --- information pages ---------------------------------------------------------------------------

@router.get("/accessibility")
def accessibility(ctx: Context = CtxDep) -> Response:
    """The accessibility statement."""
    data = {"title": "Accessibility statement", "standard": "WCAG 2.2 AA",
            "report_problems": "/feedback"}
    return render(ctx, "core/accessibility.html", {}, data)


@router.get("/feedback")
def feedback(ctx: Context = CtxDep) -> Response:
    """How to give feedback or report a problem."""
    # ``feedback_url`` is an optional setting (an issue tracker or a form); without it the page
    # points people to the publishers and to the accessibility statement.
    url = ctx.settings.feedback_url or None
    data = {"title": "Give feedback", "feedback_url": url, "accessibility_statement": "/accessibility"}
    return render(ctx, "core/feedback.html", {"feedback_url": url}, data)


# --- API tokens ------------------------------------------------------------------------------------

def _token_dict(token: ApiToken) -> dict[str, Any]:
    return {"id": token.id, "name": token.name, "prefix": token.prefix, "created": token.created.isoformat(),
            "expires": token.expires_at.isoformat() if token.expires_at else None,
            "last_used": token.last_used_at.isoformat() if token.last_used_at else None,
            "revoked": token.revoked_at.isoformat() if token.revoked_at else None}


def _tokens_page(ctx: Context, *, name: str = "", days: str | None = None, errors: dict[str, str] | None = None,
                 created: ApiToken | None = None, secret: str | None = None, status: int = 200,
                 message: dict[str, str] | None = None) -> Response:
    user = ctx.actor.user
    assert user is not None
    tokens = accounts.list_tokens(ctx.session, user)
    page = {"tokens": tokens, "name": name, "days": days if days is not None else str(ctx.settings.token_days),
            "errors": errors or {}, "created": created, "secret": secret, "flash": message}
    data: dict[str, Any] = {"tokens": [_token_dict(t) for t in tokens]}
    if created is not None:
        data["created"] = {**_token_dict(created), "secret": secret}
    if errors:
        data["error"] = {"status": status, "code": "validation_failed",
                         "message": "; ".join(errors.values()), "fields": errors}
    return render(ctx, "core/tokens.html", page, data, status=status, headers=NO_STORE)


@router.get("/account/tokens")
def tokens_page(request: Request, ctx: Context = CtxDep) -> Response:
    """The signed-in user's API tokens, and a form to create one."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    if ctx.actor.user is None:
        raise NotAuthenticated("Sign in with a user account to manage API tokens.")
    return _tokens_page(ctx, message=pop_flash(request))


@router.post("/account/tokens")
async def create_token(request: Request, ctx: Context = CtxDep, form: FormData = FormDep) -> Response:
    """Create a token and show its secret, once."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    if ctx.actor.user is None:
        raise NotAuthenticated("Sign in with a user account to manage API tokens.")
    user = ctx.actor.user
    name = form_text(form, "name", 200)
    days_text = form_text(form, "days", 20) or str(ctx.settings.token_days)

    def work() -> Response:
        errors: dict[str, str] = {}
        if not name:
            errors["name"] = "Enter a name for the token, such as ‘harvester’"
        try:
            days = int(days_text)
            if not 1 <= days <= 3650:
                errors["days"] = "Enter a number of days between 1 and 3650"
        except ValueError:
            days = 0
            errors["days"] = "Enter the number of days as a whole number, like 365"
        if not errors:
            try:
                token, secret = accounts.create_token(ctx.session, user, name, days)
                ctx.session.commit()
            except ValidationFailed as exc:
                ctx.session.rollback()
                errors = dict(exc.fields) or {"name": exc.message}
            else:
                return _tokens_page(ctx, created=token, secret=secret, status=201)
        return _tokens_page(ctx, name=name, days=days_text, errors=errors, status=422)

    return await run_in_threadpool(work)


@router.post("/account/tokens/{token_id}/revoke")
async def revoke_token(token_id: int, request: Request, ctx: Context = CtxDep,
                       form: FormData = FormDep) -> Response:
    """Revoke one of the user's tokens."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect

    def work() -> ApiToken:
        token = accounts.revoke_token(ctx.session, ctx.actor, token_id)
        ctx.session.commit()
        return token

    token = await run_in_threadpool(work)
    if wants_json(request):
        from fastapi.responses import JSONResponse

        return JSONResponse(_token_dict(token))
    flash(request, "Token revoked", f"The token ‘{token.name}’ ({token.prefix}…) no longer works.")
    return RedirectResponse("/account/tokens", status_code=303)
