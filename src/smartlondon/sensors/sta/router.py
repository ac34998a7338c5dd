"""The read side of SensorThings API v1.1: the landing page and every GET under ``/sta/v1.1``.

Reads are public. Errors use the standard's body (``{"code", "type": "error", "message"}``), never
the HTML error page. The write side (POST/PATCH/PUT/DELETE) mounts its own router on the same
paths; ``CONFORMANCE`` is the list the landing page declares, and other modules append to it the
classes their tests pass.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ...core.db import Database
from ..models import ENTITIES
from . import PREFIX, StaError, base_url
from .paths import parse, resolve
from .query import fetch_page, parse_options, read_collection, read_entity, references
from .serialize import property_value, self_link

_REQ = "http://www.opengis.net/spec/iot_sensing/1.1/req/"

#: conformance classes this service passes (append yours when your tests pass it)
CONFORMANCE: list[str] = [
    _REQ + "datamodel",
    _REQ + "resource-path/resource-path-to-entities",
    _REQ + "request-data",
]

#: extra serverSettings entries other modules may add (e.g. the MQTT endpoints)
SERVER_SETTINGS: dict[str, Any] = {}

router = APIRouter(tags=["SensorThings API"])


def _root(request: Request) -> str:
    return base_url(request.app.state.settings.base_url)


@router.get(PREFIX, summary="SensorThings API v1.1 service root")
@router.get(PREFIX + "/", include_in_schema=False)
def landing(request: Request) -> JSONResponse:
    """The entity sets and the conformance classes this service passes."""
    root = _root(request)
    return JSONResponse({
        "value": [{"name": name, "url": f"{root}/{name}"} for name in ENTITIES],
        "serverSettings": {"conformance": list(CONFORMANCE), **SERVER_SETTINGS},
    })


@router.get(PREFIX + "/{path:path}", summary="Read SensorThings entities, collections, properties and references")
def read(path: str, request: Request) -> Response:
    """``Things``, ``Things(1)``, ``Things(1)/Datastreams``, ``Things(1)/name/$value``, ``Things/$ref``...

    Query options: ``$select``, ``$expand``, ``$filter``, ``$orderby``, ``$top`` (default 100, at most
    10,000 a page), ``$skip``, ``$count``, ``$resultFormat=dataArray`` (Observations).
    """
    try:
        return _read(path, request)
    except StaError as exc:
        return exc.response()


def _read(path: str, request: Request) -> Response:
    resource = parse(path)
    pairs = parse_qsl(request.url.query, keep_blank_values=True)
    root = _root(request)
    db: Database = request.app.state.db
    with db.sessions() as session:
        target = resolve(session, resource)
        etype = target.etype
        if resource.property_name is not None:
            assert target.entity_id is not None
            obj = session.get(etype.model, target.entity_id)
            value = property_value(etype, obj, resource.property_name)
            if resource.value:
                if value is None:
                    return Response(status_code=204)
                text = value if isinstance(value, str) else json.dumps(value)
                return Response(text, media_type="text/plain; charset=utf-8")
            return JSONResponse({resource.property_name: value})
        options = parse_options(pairs, etype)
        if target.single and options.result_format:
            raise StaError(400, "$resultFormat=dataArray applies to a collection of Observations.")
        if resource.ref:
            if target.single:
                assert target.entity_id is not None
                return JSONResponse({"@iot.selfLink": self_link(root, etype, target.entity_id)})
            parent = target.parent[0].name if target.parent else None
            page = fetch_page(session, etype, target.condition, options, parent)
            body: dict[str, Any] = {}
            if page.count is not None:
                body["@iot.count"] = page.count
            link = page.next_link(f"{root}/{path.strip('/')}", pairs, options)
            if link:
                body["@iot.nextLink"] = link
            body["value"] = references(page.items, etype, root)
            return JSONResponse(body)
        if target.single:
            assert target.entity_id is not None
            return JSONResponse(read_entity(session, etype, target.entity_id, options, root))
        return JSONResponse(read_collection(session, etype, target.condition, options, root,
                                            f"{root}/{path.strip('/')}", pairs,
                                            target.parent[0].name if target.parent else None))
