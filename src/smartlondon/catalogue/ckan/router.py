"""The HTTP side of the CKAN Action API: request bodies, tokens, CKAN's envelope and status codes.

``GET|POST /api/action/<name>`` and ``/api/3/action/<name>``. Read actions answer GET (query
string) and POST; write actions only POST, with a JSON body, form fields, or multipart/form-data
(a file in the ``upload`` field is streamed to storage, never held in memory). Responses::

    {"help": ".../api/3/action/help_show?name=<action>", "success": true, "result": ...}
    {"help": ..., "success": false, "error": {"__type": "Not Found Error", "message": "Not found: ..."}}

Errors keep CKAN's status codes: 404 Not Found Error, 403 Authorization Error, 409 Validation
Error (one key per field, each a list of messages), 400 Search Query Error, 409 Search Error, and
CKAN's bare ``"Bad request - ..."`` string (400) for an unknown action, a GET of a write action,
or a body that is not a JSON object.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...core.accounts import ANONYMOUS, Actor, actor_for, authenticate_token
from ...core.errors import (
    BadRequest, Conflict, Forbidden, NotAuthenticated, NotFound, PayloadTooLarge, PlatformError, ValidationFailed,
)
from ...core.models import User
from ...core.uploads import receive_multipart
from ...core.web import MAX_JSON_BYTES, session_stamp
from .actions import ActionCall, RegisteredAction, SearchError, SearchQueryError, action_names, get_action, load_actions

log = logging.getLogger(__name__)
CONTENT_TYPE = "application/json;charset=utf-8"


class RequestProblem(Exception):
    """A request CKAN refuses before running the action: answered with its bare 400 string."""


def _describe() -> str:
    load_actions()
    names = action_names()
    reads = [n for n in names if get_action(n).read]  # type: ignore[union-attr]
    writes = [n for n in names if not get_action(n).read]  # type: ignore[union-attr]
    return ("The CKAN Action API, as CKAN 2.10 speaks it, so CKAN clients, harvesters and scripts work "
            "unchanged (see docs/ckan.md). Read actions answer GET and POST; write actions POST with an API "
            "token in `Authorization` (the raw token or `Bearer <token>`) or `X-CKAN-API-Key`.\n\n"
            f"**Read:** {', '.join(f'`{n}`' for n in reads)}\n\n**Write:** {', '.join(f'`{n}`' for n in writes)}\n\n"
            "`help_show?name=<action>` returns an action's documentation.")


router = APIRouter(tags=["CKAN Action API"])
_BODY = {"requestBody": {"required": False, "content": {
    "application/json": {"schema": {"type": "object", "description": "The action's parameters"}},
    "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {"upload": {"type": "string",
                                                                                  "format": "binary"}}}},
}}}
_QUERY = {"parameters": [{"name": "params", "in": "query", "required": False, "style": "form", "explode": True,
                          "schema": {"type": "object", "additionalProperties": True},
                          "description": "The action's parameters (read actions only), e.g. `q=air&rows=20`"}]}
_DOC = {
    "summary": "Call a CKAN action",
    "description": _describe(),
    "responses": {200: {"description": "`{help, success: true, result}`"},
                  400: {"description": "Bad request, or Search Query Error"},
                  403: {"description": "Authorization Error"}, 404: {"description": "Not Found Error"},
                  409: {"description": "Validation Error, or Search Error"}},
}


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, default=str), status_code=status, media_type=CONTENT_TYPE)


def bad_request(message: str) -> Response:
    """CKAN's answer to a malformed request: 400 with the JSON string "Bad request - ..."."""
    return _json(400, f"Bad request - {message}")


def _messages(value: Any) -> Any:
    return value if isinstance(value, (list, dict)) else [str(value)]


def error_body(exc: PlatformError) -> tuple[int, dict[str, Any]]:
    """CKAN's status and ``error`` object for a platform error."""
    if isinstance(exc, NotFound):
        return 404, {"__type": "Not Found Error", "message": f"Not found: {exc.message}"}
    if isinstance(exc, (NotAuthenticated, Forbidden)):
        return 403, {"__type": "Authorization Error", "message": f"Access denied: {exc.message}"}
    if isinstance(exc, (ValidationFailed, Conflict)):
        fields = {key: _messages(value) for key, value in exc.fields.items()} or {"message": exc.message}
        return 409, {"__type": "Validation Error", **fields}
    if isinstance(exc, SearchQueryError):
        return 400, {"__type": "Search Query Error", "message": exc.message}
    if isinstance(exc, SearchError):
        return 409, {"__type": "Search Error", "message": exc.message}
    if isinstance(exc, PayloadTooLarge):
        return 413, {"__type": "Validation Error", "upload": [exc.message]}
    if isinstance(exc, BadRequest):
        return 400, {"__type": "Bad Request", "message": exc.message}
    return exc.status, {"__type": "Error", "message": exc.message}


# --- who is asking ------------------------------------------------------------------------------

def resolve_actor(request: Request, session: Any) -> Actor:
    """The actor: an API token (Authorization, raw or Bearer; or X-CKAN-API-Key), else a signed-in browser.

    A browser's session cookie counts for POST only with the page's CSRF token in ``X-CSRF-Token``;
    without it the request is anonymous.
    """
    token = (request.headers.get("authorization") or request.headers.get("x-ckan-api-key") or "").strip()
    if token:
        return authenticate_token(session, token)
    if "session" not in request.scope:
        return ANONYMOUS
    user_id = request.session.get("user_id")
    if not user_id:
        return ANONYMOUS
    if request.method != "GET":
        expected, supplied = request.session.get("csrf"), request.headers.get("x-csrf-token")
        if not expected or not supplied or not hmac.compare_digest(str(expected), str(supplied)):
            return ANONYMOUS
    user = session.get(User, user_id)
    if user is None or not user.is_active or request.session.get("auth") != session_stamp(user):
        return ANONYMOUS
    return actor_for(user, "session")


def _identify(request: Request, session: Any) -> Actor:
    """The actor, with the token's use recorded and the transaction ended (before a long upload)."""
    actor = resolve_actor(request, session)
    if session.in_transaction():
        session.commit()
    return actor


# --- the request's parameters ---------------------------------------------------------------------

def _mixed(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Form or query pairs as a dict: one value as a string, repeated keys as a list (as CKAN does)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            out[key] = out[key] + [value] if isinstance(out[key], list) else [out[key], value]
        else:
            out[key] = value
    return out


def _decode_json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        shown = raw[:200].decode("utf-8", "replace")
        raise RequestProblem(f"JSON Error: Error decoding JSON data. Error: {exc!r} "
                             f"JSON data extracted from the request: {shown!r}") from None
    if not isinstance(data, dict):
        raise RequestProblem(f"JSON Error: Request data JSON decoded to {data!r} but it needs to be a dictionary.")
    return data


async def _body_params(request: Request, settings: Any, storage: Any) -> tuple[dict[str, Any], Any]:
    """The POST body's parameters, and the multipart upload if there is one (not yet committed)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        try:
            upload = await receive_multipart(request, storage, settings.max_upload_bytes, file_fields=("upload",))
        except BadRequest as exc:
            raise RequestProblem(exc.message) from None
        return dict(upload.fields), upload
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_JSON_BYTES:
        raise PayloadTooLarge("The request body is larger than 10 MB. Upload files as multipart/form-data.")
    raw = await request.body()
    if not raw.strip():
        return {}, None
    if content_type == "application/x-www-form-urlencoded" and not raw.lstrip().startswith(b"{"):
        pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
        if len(pairs) == 1 and pairs[0][1] in ("", "1"):  # CKAN: a JSON object posted as a form key
            try:
                return _decode_json(pairs[0][0].encode()), None
            except RequestProblem:
                pass
        return _mixed(pairs), None
    return _decode_json(raw), None


# --- the endpoint ----------------------------------------------------------------------------------

def _run(registered: RegisteredAction, call: ActionCall, help_url: str) -> bytes:
    """Run the action and commit; returns the JSON body of the success envelope."""
    result = registered.fn(call)
    call.session.commit()
    return json.dumps({"help": help_url, "success": True, "result": result}, ensure_ascii=False,
                      default=str).encode()


async def _action(name: str, request: Request) -> Response:
    settings = request.app.state.settings
    help_url = f"{settings.base_url}/api/3/action/help_show?name={quote(name)}"
    registered = get_action(name)
    if registered is None:
        return bad_request(f"Action name not known: {name}")
    if request.method == "GET" and not registered.read:
        return bad_request("JSON Error: Invalid request. Please use POST method for your request")
    storage = request.app.state.storage
    session = request.app.state.db.sessions()
    upload: Any = None
    stored: Any = None
    call: ActionCall | None = None
    try:
        actor = await run_in_threadpool(_identify, request, session)
        request.state.actor_label = actor.label
        if not registered.read and not actor.is_authenticated:
            raise NotAuthenticated(f"Send an API token in the Authorization header to call {name}.")
        params: dict[str, Any] = _mixed(request.query_params.multi_items()) if registered.read else {}
        if request.method == "POST":
            body, upload = await _body_params(request, settings, storage)
            params.update(body)
        params.pop("callback", None)
        if upload is not None and upload.file is not None:
            stored = await run_in_threadpool(upload.file.commit)
        call = ActionCall(session=session, actor=actor, params=params, settings=settings, storage=storage,
                          base_url=settings.base_url,
                          upload=(stored, upload.filename) if stored is not None else None)
        body_bytes = await run_in_threadpool(_run, registered, call, help_url)
    except RequestProblem as exc:
        await _give_up(session, storage, upload, stored)
        return bad_request(str(exc))
    except PlatformError as exc:
        await _give_up(session, storage, upload, stored)
        status, error = error_body(exc)
        return _json(status, {"help": help_url, "success": False, "error": error})
    except Exception:
        log.exception("CKAN action %s failed", name)
        await _give_up(session, storage, upload, stored)
        return _json(500, {"help": help_url, "success": False,
                           "error": {"__type": "Internal Server Error", "message": "Internal Server Error"}})
    await run_in_threadpool(session.close)
    for key in call.discard_after_commit:
        storage.delete(key)
    if stored is not None and not call.upload_taken:
        storage.delete(stored.key)
    return Response(body_bytes, status_code=200, media_type=CONTENT_TYPE)


async def _give_up(session: Any, storage: Any, upload: Any, stored: Any) -> None:
    """Roll back, and remove any file this request stored or started to store."""
    def close() -> None:
        try:
            session.rollback()
        finally:
            session.close()

    await run_in_threadpool(close)
    if stored is not None:
        storage.delete(stored.key)
    elif upload is not None:
        upload.discard()


async def ckan_action(name: str, request: Request) -> Response:
    """Call a CKAN action."""
    return await _action(name, request)


for _path in ("/api/3/action/{name}", "/api/action/{name}"):
    for _method in ("GET", "POST"):
        router.add_api_route(_path, ckan_action, methods=[_method], response_model=None,
                             operation_id=f"ckan_{_method.lower()}{_path.replace('/', '_').replace('{name}', 'name')}",
                             openapi_extra=_BODY if _method == "POST" else _QUERY, **_DOC)  # type: ignore[arg-type]


@router.get("/api/3", summary="The CKAN API version", response_model=None)
def ckan_api_version() -> Response:
    """CKAN's answer to ``GET /api/3``: the API version, ``{"version": 3}``."""
    return _json(200, {"version": 3})
