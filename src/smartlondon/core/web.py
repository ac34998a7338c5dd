"""What every route shares: the per-request context, pages with JSON twins, CSRF, errors.

* ``Context`` (a FastAPI dependency) holds the request's database session and its actor. The
  session is committed when the route returns and rolled back if it raises, so a failed request
  leaves nothing half written.
* ``render`` returns the HTML page, or its JSON twin when the path ends in ``.json`` or the
  client asks for ``application/json``.
* CSRF: forms carry a ``csrf_token`` tied to the signed session cookie; JSON requests that rely
  on the cookie instead of a token must send it as ``X-CSRF-Token``.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from ..settings import Settings
from .accounts import ANONYMOUS, Actor, actor_for, authenticate_token
from .db import Database
from .errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, PlatformError, UnsupportedMediaType
from .models import User

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
MAX_JSON_BYTES = 10 * 1024 * 1024
JSON_TYPES = ("application/json", "application/geo+json", "application/ld+json")


@dataclass
class Context:
    """The request's database session, settings and actor."""

    request: Request
    session: Session
    settings: Settings
    actor: Actor = field(default_factory=lambda: ANONYMOUS)

    @property
    def base_url(self) -> str:
        """The site's public address, without a trailing slash."""
        return self.settings.base_url

    def csrf_token(self) -> str:
        """This browser session's CSRF token (created on first use)."""
        return csrf_token(self.request)


def database(request: Request) -> Database:
    """The application's database."""
    return request.app.state.db


def settings_of(request: Request) -> Settings:
    """The application's settings."""
    return request.app.state.settings


def csrf_token(request: Request) -> str:
    """The CSRF token stored in the signed session cookie, created on first use."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, supplied: str | None) -> None:
    """Raise 403 unless ``supplied`` matches the session's CSRF token."""
    expected = request.session.get("csrf")
    if not expected or not supplied or not hmac.compare_digest(str(expected), str(supplied)):
        raise Forbidden("The form has expired or did not come from this site. Go back, reload the page "
                        "and try again.", {"csrf_token": "Missing or wrong security token."})


def session_stamp(user: User) -> str:
    """A value tied to the user's password: changing the password signs out every browser."""
    return (user.password_hash or "none")[-16:]


def _resolve_actor(request: Request, session: Session) -> Actor:
    header = request.headers.get("authorization")
    if header:
        return authenticate_token(session, header)
    user_id = request.session.get("user_id") if "session" in request.scope else None
    if user_id:
        user = session.get(User, user_id)
        if user is not None and user.is_active and request.session.get("auth") == session_stamp(user):
            return actor_for(user, "session")
        request.session.pop("user_id", None)
    return ANONYMOUS


def _open(request: Request) -> Context:
    """Open the request's session and work out who is asking (touches the database only if the
    request carries a token or a session cookie)."""
    session = database(request).sessions()
    try:
        ctx = Context(request=request, session=session, settings=settings_of(request))
        ctx.actor = _resolve_actor(request, session)
    except BaseException:
        session.rollback()
        session.close()
        raise
    request.state.actor_label = ctx.actor.label
    if ctx.actor.via == "session" and ctx.actor.user is not None:
        request.state.signed_in = SimpleNamespace(display_name=ctx.actor.user.display_name,
                                                  username=ctx.actor.user.username)
    return ctx


def _close(session: Session, failed: bool) -> None:
    """Commit (or, after an error, roll back) and close the request's session."""
    try:
        if failed:
            session.rollback()
        else:
            session.commit()
    finally:
        session.close()


async def context(request: Request) -> AsyncIterator[Context]:
    """FastAPI dependency: a session per request and the actor making it.

    Async so that a request costs no extra thread hops; the database work it does runs in the
    thread pool, and only when there is some.
    """
    needs_db = bool(request.headers.get("authorization")) or bool(
        "session" in request.scope and request.session.get("user_id"))
    ctx = await run_in_threadpool(_open, request) if needs_db else _open(request)
    failed = True
    try:
        content_type = request.headers.get("content-type", "")
        if (request.method in UNSAFE and ctx.actor.via == "session"
                and not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))):
            check_csrf(request, request.headers.get("x-csrf-token"))
        yield ctx
        failed = False
    finally:
        session = ctx.session
        if session.in_transaction() or session.new or session.dirty or session.deleted:
            await run_in_threadpool(_close, session, failed)
        else:
            session.close()


async def csrf_form(request: Request) -> FormData:
    """FastAPI dependency for urlencoded HTML forms: the parsed form, after checking its CSRF token."""
    form = await request.form()
    check_csrf(request, form.get("csrf_token"))  # type: ignore[arg-type]
    return form


CtxDep = Depends(context)
FormDep = Depends(csrf_form)


# --- pages and their JSON twins ---------------------------------------------------------------

def asset_file(folder: Path, types: dict[str, str], name: str, what: str) -> Response:
    """One of a page's own scripts or style sheets from ``folder`` (the CSP allows only same-origin files);
    ``types`` names the files served and their media types, any other name is a 404 naming ``what``."""
    if name not in types:
        raise NotFound(f"There is no {what} asset called {name}.")
    return FileResponse(folder / name, media_type=types[name], headers={"Cache-Control": "public, max-age=3600"})


def wants_json(request: Request) -> bool:
    """True for ``.json`` paths, ``/api/`` paths and clients that prefer JSON to HTML."""
    if getattr(request.state, "json_suffix", False) or request.url.path.startswith("/api/"):
        return True
    accept = request.headers.get("accept", "")
    if not accept or "text/html" in accept:
        return False
    return any(t in accept for t in JSON_TYPES)


def render(ctx: Context, template: str, page: dict[str, Any], data: Any = None, status: int = 200,
           headers: dict[str, str] | None = None) -> Response:
    """The page as HTML, or ``data`` (default: ``page``) as its JSON twin."""
    request = ctx.request
    if wants_json(request):
        return JSONResponse(page if data is None else data, status_code=status, headers=headers)
    return html(ctx, template, page, status, headers)


def html(ctx: Context, template: str, page: dict[str, Any], status: int = 200,
         headers: dict[str, str] | None = None) -> HTMLResponse:
    """Render a template with the site-wide context."""
    request = ctx.request
    env = request.app.state.templates
    actor = ctx.actor
    values = {
        "request": request, "site_name": ctx.settings.site_name, "brand_name": ctx.settings.brand_name,
        "actor": actor,
        "current_user": actor.user if actor.via == "session" else None,
        "csrf_token": ctx.csrf_token(), "nav_items": nav_items(request), **page,
    }
    body = env.get_template(template).render(values)
    return HTMLResponse(body, status_code=status, headers=headers)


def nav_items(request: Request) -> list[dict[str, Any]]:
    """The service navigation, with the current section marked active."""
    path = request.url.path
    items = [("/dataset", "Datasets", "/dataset"), ("/organisation", "Organisations", "/organisation"),
             ("/charter", "Charter", "/charter"), ("/harvest", "Harvesting", "/harvest"),
             ("/places/search", "Places", "/places"), ("/sensors", "Sensors", "/sensors"),
             ("/sharing/agreements", "Data sharing", "/sharing"), ("/insights/airquality", "Air quality", "/insights"),
             ("/api/docs", "API", "/api/docs")]
    return [{"href": href, "text": text, "active": path.startswith(section)} for href, text, section in items]


def error_response(request: Request, exc: PlatformError) -> Response:
    """An error as JSON (for APIs and JSON clients) or as an HTML error page."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if wants_json(request) or request.headers.get("authorization"):
        return JSONResponse(exc.as_dict(), status_code=exc.status, headers=headers)
    titles = {400: "There is a problem with your request", 401: "You need to sign in",
              403: "You cannot do that", 404: "Page not found", 409: "That name is already in use",
              413: "The file is too large", 415: "That type of request is not supported",
              422: "There is a problem with what you entered"}
    env = request.app.state.templates
    body = env.get_template("error.html").render(
        request=request, site_name=request.app.state.settings.site_name,
        brand_name=request.app.state.settings.brand_name, status=exc.status,
        title=titles.get(exc.status, "There is a problem"), message=exc.message, errors=exc.fields,
        nav_items=nav_items(request), current_user=getattr(request.state, "signed_in", None),
        csrf_token=request.session.get("csrf", "") if "session" in request.scope else "",
        hint="Sign in and try again." if exc.status == 401 else None,
    )
    return HTMLResponse(body, status_code=exc.status, headers=headers)


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body; 415 if it is not JSON, 400 if it does not parse."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/json", ""):
        raise UnsupportedMediaType("Send the body as JSON, with Content-Type: application/json.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_JSON_BYTES:
        raise PayloadTooLarge("The JSON body is larger than 10 MB. Upload files as multipart/form-data instead.")
    raw = await request.body()
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object, like {\"title\": \"...\"}.")
    return data
