"""The write side of SensorThings API v1.1: POST, PATCH, PUT, DELETE, ``$batch`` and ``CreateObservations``.

* ``POST /sta/v1.1/<path>``: create (deep insert, links by ``{"@iot.id": n}``) -> 201, ``Location``
  header and the entity.
* ``PATCH`` (``application/json``: only the given properties; ``application/json-patch+json``: an
  RFC 6902 document) and ``PUT`` (replace) -> 200 and the entity; ``DELETE`` -> 200.
* ``POST /sta/v1.1/$batch``: the JSON batch format (``{"requests": [...]}`` -> ``{"responses": [...]}``);
  requests sharing an ``atomicityGroup`` commit or fail together; ``"$<id>"`` refers to an entity
  created earlier in the batch.
* ``POST /sta/v1.1/CreateObservations``: dataArray bodies -> 201 and the list of selfLinks
  (``"error"`` for a refused row).

Writes need an API token, as ``Authorization: Bearer <token>`` or HTTP Basic with the user name
and the token as password (what frost-sta-client and other STA clients send). The user must be a
sysadmin or an editor or admin of an organisation. Errors have the standard's body
``{"code": N, "type": "error", "message": "..."}``. The rules themselves live in
``sensors/service.py``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ...core import audit
from ...core.accounts import Actor, authenticate_token
from ...core.db import Database
from ...core.errors import BadRequest, Forbidden, NotAuthenticated, PayloadTooLarge, PlatformError, UnsupportedMediaType
from .. import ownership, service
from . import PREFIX, base_url
from . import router as read_router

log = logging.getLogger(__name__)
router = APIRouter(tags=["SensorThings API"])

MAX_BODY = 10 * 1024 * 1024
MAX_BULK_BODY = 100 * 1024 * 1024  # CreateObservations and $batch carry many rows
JSON_PATCH = "application/json-patch+json"
CHALLENGE = 'Basic realm="SensorThings API", Bearer'

_REQ = "http://www.opengis.net/spec/iot_sensing/1.1/req/"
CONFORMANCE = [_REQ + "create-update-delete", _REQ + "batch-request", _REQ + "multi-datastream", _REQ + "data-array"]


def sta_error(status: int, message: str) -> JSONResponse:
    """The standard's error body with its status (and the auth challenge on 401)."""
    headers = {"WWW-Authenticate": CHALLENGE} if status == 401 else None
    return JSONResponse({"code": status, "type": "error", "message": message}, status_code=status, headers=headers)


# --- who is writing -------------------------------------------------------------------------------

def authenticate(request_headers: Any, session: Session) -> Actor:
    """The actor of an API token (Bearer, or Basic with the token as password); 401/403 if not allowed to write."""
    header = (request_headers.get("authorization") or "").strip()
    if not header:
        raise NotAuthenticated("Writing needs an API token: send 'Authorization: Bearer <token>', or HTTP Basic "
                               "with your user name and the token as the password.")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise NotAuthenticated("The Basic credentials are not valid base64 of 'user:token'.") from None
        username, sep, secret = decoded.partition(":")
        if not sep or not secret:
            raise NotAuthenticated("Send your user name and an API token as the Basic password.")
        actor = authenticate_token(session, secret)
        user = actor.user
        if user is None or username not in (user.username, user.email):
            raise NotAuthenticated("The API token does not belong to that user name.")
    else:
        actor = authenticate_token(session, header)
    if not (actor.is_sysadmin or actor.editable_organisations()):
        raise Forbidden("Only sysadmins and editors or admins of an organisation can change sensor data.")
    return actor


# --- bodies ---------------------------------------------------------------------------------------

async def _read_json(request: Request, limit: int, allow: tuple[str, ...] = ("application/json",)) -> tuple[Any, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type not in allow:
        raise UnsupportedMediaType(f"Send the body as {' or '.join(allow)}; got {content_type}.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The body is larger than {limit // (1024 * 1024)} MB: send it in parts.")
    raw = await request.body()
    if len(raw) > limit:
        raise PayloadTooLarge(f"The body is larger than {limit // (1024 * 1024)} MB: send it in parts.")
    if not raw.strip():
        raise BadRequest("The request has no body: send the entity as JSON.")
    try:
        return json.loads(raw), content_type
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}.") from None


def _audit(session: Session, actor: Actor, action: str, result: Any, path: str) -> None:
    """Record a change of sensor metadata in the audit log (Observations are too many: not recorded)."""
    if isinstance(result, dict) and "@iot.selfLink" in result:
        ref = result["@iot.selfLink"].rsplit("/", 1)[-1]
    else:
        ref = path.strip("/")
    set_name = ref.split("(", 1)[0]
    if set_name == "Observations" or ref.endswith("/Observations"):
        return
    audit.record(session, actor, f"sta.{action}", set_name or "sta", ref,
                 after=result if isinstance(result, dict) else None, summary=f"SensorThings {action} {ref}")


def _run(request: Request, work: Callable[[Session, str], Any], action: str | None = None, path: str = "") -> Any:
    """Authenticate, run ``work(session, service_root)`` and commit; roll back on any error."""
    db: Database = request.app.state.db
    root = base_url(request.app.state.settings.base_url)
    session = db.sessions()
    try:
        actor = authenticate(request.headers, session)
        request.state.actor_label = actor.label
        ownership.bind(session, actor)  # per-organisation ownership checks (sensors/ownership.py)
        result = work(session, root)
        if action is not None:
            _audit(session, actor, action, result, path)
        session.commit()
        return result
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


async def _answer(request: Request, make: Callable[[], Any]) -> Response:
    try:
        return await make()
    except PlatformError as exc:
        return sta_error(exc.status, exc.message)
    except Exception:
        log.exception("SensorThings write %s %s failed", request.method, request.url.path)
        return sta_error(500, "The server could not complete the request; it has been logged.")


def _created(entity: dict[str, Any]) -> JSONResponse:
    return JSONResponse(entity, status_code=201, headers={"Location": entity["@iot.selfLink"]})


# --- the routes -----------------------------------------------------------------------------------

@router.post(PREFIX + "/$batch", summary="Run a JSON batch of SensorThings requests")
async def batch(request: Request) -> Response:
    """``{"requests": [{"id", "method", "url", "body", "atomicityGroup", "dependsOn"}]}`` -> ``{"responses": [...]}``."""
    async def make() -> Response:
        body, _ = await _read_json(request, MAX_BULK_BODY)
        responses = await run_in_threadpool(run_batch, request, body)
        return JSONResponse({"responses": responses})
    return await _answer(request, make)


@router.post(PREFIX + "/CreateObservations", status_code=201, summary="Create Observations from dataArray bodies")
async def create_observations(request: Request) -> Response:
    """``[{"Datastream": {"@iot.id": 1}, "components": [...], "dataArray": [[...]]}]`` -> 201 and selfLinks."""
    async def make() -> Response:
        body, _ = await _read_json(request, MAX_BULK_BODY)
        links = await run_in_threadpool(_run, request, lambda s, root: service.create_observations(s, body, root))
        return JSONResponse(links, status_code=201)
    return await _answer(request, make)


@router.post(PREFIX + "/{path:path}", status_code=201, summary="Create a SensorThings entity (deep insert)")
async def create(path: str, request: Request) -> Response:
    """Create the entity in the body at ``path`` (``Things``, ``Datastreams(5)/Observations``...)."""
    async def make() -> Response:
        body, _ = await _read_json(request, MAX_BODY)
        if _is_ref(path):
            return await _ref(request, path, body)
        if not isinstance(body, dict):
            raise BadRequest("The body must be one entity, a JSON object.")
        entity = await run_in_threadpool(_run, request, lambda s, root: service.create_from_path(s, path, body, root),
                                         "create", path)
        return _created(entity)
    return await _answer(request, make)


@router.patch(PREFIX + "/{path:path}", summary="Update a SensorThings entity (PATCH or JSON-Patch)")
async def patch(path: str, request: Request) -> Response:
    """Change the given properties (``application/json``) or apply a JSON-Patch (``application/json-patch+json``)."""
    async def make() -> Response:
        body, content_type = await _read_json(request, MAX_BODY, ("application/json", JSON_PATCH))
        if content_type == JSON_PATCH:
            entity = await run_in_threadpool(_run, request,
                                             lambda s, root: service.json_patch_at_path(s, path, body, root),
                                             "update", path)
        else:
            if not isinstance(body, dict):
                raise BadRequest("A PATCH body must be a JSON object of the properties to change "
                                 f"(or send a JSON-Patch array as {JSON_PATCH}).")
            entity = await run_in_threadpool(_run, request, lambda s, root: service.update_at_path(s, path, body, root),
                                             "update", path)
        return JSONResponse(entity)
    return await _answer(request, make)


@router.put(PREFIX + "/{path:path}", summary="Replace a SensorThings entity")
async def put(path: str, request: Request) -> Response:
    """Replace every property of the entity (those not given are reset)."""
    async def make() -> Response:
        body, _ = await _read_json(request, MAX_BODY)
        if _is_ref(path):
            return await _ref(request, path, body)
        if not isinstance(body, dict):
            raise BadRequest("A PUT body must be the whole entity, a JSON object.")
        entity = await run_in_threadpool(
            _run, request, lambda s, root: service.update_at_path(s, path, body, root, replace=True), "replace", path)
        return JSONResponse(entity)
    return await _answer(request, make)


@router.delete(PREFIX + "/{path:path}", summary="Delete a SensorThings entity (with the standard's cascades)")
async def delete(path: str, request: Request) -> Response:
    """Delete the entity; its dependants go with it as the standard says."""
    async def make() -> Response:
        if _is_ref(path):
            return await _ref(request, path, None)
        await run_in_threadpool(_run, request, lambda s, root: service.delete_at_path(s, path), "delete", path)
        return Response(status_code=200)
    return await _answer(request, make)


def _is_ref(path: str) -> bool:
    return path.rstrip("/").endswith("/$ref")


async def _ref(request: Request, path: str, body: Any) -> Response:
    """Add (POST), set (PUT) or remove (DELETE) a link: 204."""
    method = request.method
    await run_in_threadpool(_run, request, lambda s, root: service.ref_at_path(s, method, path, body, root),
                            f"link.{method.lower()}", path.rstrip("/")[: -len("/$ref")])
    return Response(status_code=204)


# --- $batch ---------------------------------------------------------------------------------------

_REF_ID = re.compile(r"^[A-Za-z0-9_.:,;-]+$")


def _relative(url: Any, where: str) -> tuple[str, str]:
    """A batch request's url as (path relative to the service root, query string)."""
    if not isinstance(url, str) or not url.strip():
        raise BadRequest(f"{where}.url must be a path such as \"Things\" or \"Things(1)\".")
    parts = urlsplit(url.strip())
    path = parts.path
    marker = PREFIX.strip("/")
    if marker in path:
        path = path.split(marker, 1)[1]
    elif path.lstrip("/").startswith("v1.1/"):
        path = path.lstrip("/")[len("v1.1/"):]
    return path.strip("/"), parts.query


def _substitute(value: Any, created: dict[str, str]) -> Any:
    """Replace ``"@iot.id": "$name"`` with the id of the entity the batch created as ``name``."""
    if isinstance(value, list):
        return [_substitute(v, created) for v in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "@iot.id" and isinstance(item, str) and item.startswith("$"):
                ref = created.get(item[1:])
                if ref is None:
                    raise BadRequest(f"\"{item}\" does not name an entity created earlier in this batch.")
                out[key] = int(ref[ref.rindex("(") + 1:-1])
            else:
                out[key] = _substitute(item, created)
        return out
    return value


def _resolve_url(path: str, created: dict[str, str]) -> str:
    if path.startswith("$"):
        name, _, rest = path[1:].partition("/")
        ref = created.get(name)
        if ref is None:
            raise BadRequest(f"\"${name}\" does not name an entity created earlier in this batch.")
        return ref + ("/" + rest if rest else "")
    return path


def _one(request: Request, session: Session, root: str, item: dict[str, Any], where: str,
         created: dict[str, str]) -> dict[str, Any]:
    """Run one batch request in ``session``; returns its response object (errors raise)."""
    method = str(item.get("method", "")).lower()
    path, query = _relative(item.get("url"), where)
    path = _resolve_url(path, created)
    body = _substitute(item.get("body"), created)
    headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
    if method == "get":
        response = _batch_get(request, path, query)
        out: dict[str, Any] = {"status": response.status_code}
        if response.body:
            out["body"] = json.loads(response.body)
        return out
    if method == "post":
        if not isinstance(body, dict):
            raise BadRequest(f"{where}.body must be the entity to create, a JSON object.")
        entity = service.create_from_path(session, path, body, root)
        ref = entity["@iot.selfLink"][len(root) + 1:]
        if item.get("id") is not None:
            created[str(item["id"])] = ref
        return {"status": 201, "headers": {"location": entity["@iot.selfLink"]}, "body": entity}
    if method == "patch":
        if headers.get("content-type", "").startswith(JSON_PATCH):
            entity = service.json_patch_at_path(session, path, body, root)
        else:
            if not isinstance(body, dict):
                raise BadRequest(f"{where}.body must be a JSON object of the properties to change.")
            entity = service.update_at_path(session, path, body, root)
        return {"status": 200, "body": entity}
    if method == "put":
        if not isinstance(body, dict):
            raise BadRequest(f"{where}.body must be the whole entity, a JSON object.")
        return {"status": 200, "body": service.update_at_path(session, path, body, root, replace=True)}
    if method == "delete":
        service.delete_at_path(session, path)
        return {"status": 200}
    raise BadRequest(f"{where}.method must be get, post, patch, put or delete; got {item.get('method')!r}.")


def _batch_get(request: Request, path: str, query: str) -> Response:
    """A GET inside a batch, answered by the read side exactly as over HTTP."""
    scope = dict(request.scope)
    scope.update({"method": "GET", "path": f"{PREFIX}/{path}", "raw_path": f"{PREFIX}/{path}".encode(),
                  "query_string": query.encode(), "headers": []})
    return read_router.read(path, Request(scope))


def _units(requests: list[dict[str, Any]]) -> list[list[tuple[int, dict[str, Any]]]]:
    """Requests grouped into units that commit together: one request, or one atomicity group."""
    units: list[list[tuple[int, dict[str, Any]]]] = []
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for index, item in enumerate(requests):
        group = item.get("atomicityGroup")
        if group is None:
            units.append([(index, item)])
        elif group in groups:
            if units[-1] is not groups[group]:
                raise BadRequest(f"requests[{index}]: the requests of atomicityGroup {group!r} must be adjacent.")
            groups[group].append((index, item))
        else:
            groups[group] = [(index, item)]
            units.append(groups[group])
    return units


def _validate_batch(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise BadRequest("A batch body is {\"requests\": [{\"id\": \"1\", \"method\": \"post\", \"url\": \"Things\", "
                         "\"body\": {...}}, ...]}.")
    requests = body["requests"]
    seen: set[str] = set()
    for index, item in enumerate(requests):
        where = f"requests[{index}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be a JSON object.")
        unknown = set(item) - {"id", "method", "url", "body", "headers", "atomicityGroup", "dependsOn"}
        if unknown:
            raise BadRequest(f"{where} has unknown member(s) {', '.join(sorted(unknown))}.")
        if "id" not in item or not isinstance(item["id"], str) or not _REF_ID.match(item["id"]):
            raise BadRequest(f"{where}.id must be a string of letters, digits and _.:,;- (unique in the batch).")
        if item["id"] in seen:
            raise BadRequest(f"{where}.id {item['id']!r} is used twice.")
        seen.add(item["id"])
        if str(item.get("method", "")).lower() not in ("get", "post", "patch", "put", "delete"):
            raise BadRequest(f"{where}.method must be get, post, patch, put or delete.")
        depends = item.get("dependsOn", [])
        if not isinstance(depends, list) or any(d not in seen and d != item.get("atomicityGroup")
                                                and not any(r.get("atomicityGroup") == d for r in requests[:index])
                                                for d in depends):
            raise BadRequest(f"{where}.dependsOn must list ids of earlier requests or atomicity groups.")
    return requests


def run_batch(request: Request, body: Any) -> list[dict[str, Any]]:
    """Run a JSON batch: each atomicity group (or lone request) commits on its own, in order."""
    requests = _validate_batch(body)
    units = _units(requests)
    db: Database = request.app.state.db
    root = base_url(request.app.state.settings.base_url)
    if any(str(r.get("method")).lower() != "get" for r in requests):
        with db.session() as session:
            actor = authenticate(request.headers, session)
        request.state.actor_label = actor.label
        request.state.sta_actor = actor  # for ownership.bind below
    created: dict[str, str] = {}
    failed: set[str] = set()
    responses: list[dict[str, Any]] = []
    for unit in units:
        group = unit[0][1].get("atomicityGroup")
        done: list[dict[str, Any]] = []
        session = db.sessions()
        ownership.bind(session, getattr(request.state, "sta_actor", None))  # sensors/ownership.py
        try:
            for index, item in unit:
                blocked = [d for d in item.get("dependsOn", []) if d in failed]
                if blocked:
                    raise _Failed(index, 424, f"It depends on {', '.join(blocked)}, which failed.")
                try:
                    answer = _one(request, session, root, item, f"requests[{index}]", created)
                except PlatformError as exc:
                    raise _Failed(index, exc.status, exc.message) from None
                if answer["status"] >= 400 and group is not None:
                    raise _Failed(index, answer["status"], answer.get("body", {}).get("message", "failed"))
                done.append({"id": item["id"], **answer})
            session.commit()
            responses.extend(done)
        except _Failed as exc:
            session.rollback()
            for index, item in unit:
                if index == exc.index:
                    status, message = exc.status, exc.message
                else:
                    status = 424
                    message = f"Not applied: request {requests[exc.index]['id']} of atomicityGroup {group} failed."
                responses.append({"id": item["id"], "status": status,
                                  "body": {"code": status, "type": "error", "message": message}})
                failed.add(item["id"])
            if group is not None:
                failed.add(str(group))
                for index, item in unit:
                    created.pop(str(item["id"]), None)
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
    return responses


class _Failed(Exception):
    def __init__(self, index: int, status: int, message: str) -> None:
        super().__init__(message)
        self.index, self.status, self.message = index, status, message


read_router.CONFORMANCE.extend(c for c in CONFORMANCE if c not in read_router.CONFORMANCE)
