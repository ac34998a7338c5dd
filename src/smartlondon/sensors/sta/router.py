"""The read side of SensorThings API v1.1: the landing page and every GET under ``/sta/v1.1``.

Reads are public. Errors use the standard's body (``{"code", "type": "error", "message"}``), never
the HTML error page. The write side (POST/PATCH/PUT/DELETE) mounts its own router on the same
paths; ``CONFORMANCE`` is the list the landing page declares, and other modules append to it the
classes their tests pass.

Archived Observations (sensors/archive.py) are read here too: a Datastream's, a
FeatureOfInterest's and the top-level collection of Observations through hot and archived rows
together when the query can touch an archived range (and nested ``$expand=Observations`` of
Datastreams, through ``session.info[ARCHIVE_DIR]``), and ``Observations(id)`` of an archived one when
the hot table has no such id. Importing this module installs the ownership checks of writes
(sensors/ownership.py).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.db import Database
from .. import archive
from .. import ownership  # noqa: F401  (installs the write checks of per-organisation ownership)
from ..models import ENTITIES
from . import PREFIX, StaError, base_url
from .paths import ResourcePath, Target, parse, resolve
from .query import (
    ARCHIVE_DIR, COUNT_ESTIMATED, dump_collection, fetch_page, parse_options, read_collection, read_entity, references,
)
from .serialize import property_value, self_link

_REQ = "http://www.opengis.net/spec/iot_sensing/1.1/req/"

#: conformance classes this service passes (append yours when your tests pass it)
CONFORMANCE: list[str] = [
    _REQ + "datamodel",
    _REQ + "resource-path/resource-path-to-entities",
    _REQ + "request-data",
    # sensors extensions (docs/sensors-extensions.md, docs/sensors-archive.md)
    "https://smartlondon.example/spec/sta-ext/archive",
    "https://smartlondon.example/spec/sta-ext/latest-expand",
    "https://smartlondon.example/spec/sta-ext/estimated-count",
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


def _archived_observation(session: Session, request: Request, resource: ResourcePath) -> tuple[Target, Any] | None:
    """``Observations(id)`` or ``Datastreams(d)/Observations(id)`` of an archived Observation: the
    target and the source (hot + its segment) to read it from; None when it is not archived."""
    steps = resource.steps
    if steps[-1].etype.name != "Observations" or steps[-1].key is None or len(steps) > 2:
        return None
    if len(steps) == 2 and (steps[0].etype.name != "Datastreams" or steps[0].key is None
                            or steps[1].nav is None or steps[1].nav.remote != "datastream_id"):
        return None
    observation_id = steps[-1].key
    found = [s for s in archive.segments_with_id(session, observation_id)
             if len(steps) == 1 or s.datastream_id == steps[0].key]
    if not found:
        return None
    source = archive.load(session, request.app.state.settings.archive_dir, found)
    if session.execute(select(source.id).where(source.id == observation_id)).first() is None:
        return None
    return Target(steps[-1].etype, observation_id, None), source


def _observation_source(session: Session, request: Request, target: Target, options: Any) -> Any:
    """For a collection of Observations: hot and archived Observations together when the query can
    touch an archived range (see sensors/archive.py), else None (the table alone). Covers
    ``Datastreams(d)/Observations``, the top-level ``Observations`` and ``FeaturesOfInterest(f)/Observations``
    (MultiDatastreams' Observations are never archived)."""
    if target.etype.name != "Observations":
        return None
    archive_dir = request.app.state.settings.archive_dir
    if target.parent is None:
        if not archive.has_archive(session):
            return None
        keyset = not options.orderby
        after_id = options.skiptoken[1] if options.skiptoken is not None and keyset else None
        first = (options.skip + options.limit + 1) if keyset and not options.count else None
        return archive.collection_source(session, archive_dir, options.filter, after_id=after_id, first_rows=first)
    if target.parent[0].name == "FeaturesOfInterest":
        if not archive.has_archive(session):
            return None
        after_id = options.skiptoken[1] if options.skiptoken is not None and not options.orderby else None
        return archive.collection_source(session, archive_dir, options.filter, feature_id=target.parent[1],
                                         after_id=after_id)
    if target.parent[0].name != "Datastreams":
        return None
    after = options.skiptoken[0] if options.skiptoken is not None and not options.orderby else None
    return archive.observation_source(session, archive_dir, target.parent[1], options.filter, after)


def _read(path: str, request: Request) -> Response:
    resource = parse(path)
    pairs = parse_qsl(request.url.query, keep_blank_values=True)
    root = _root(request)
    db: Database = request.app.state.db
    with db.sessions() as session:
        session.info[ARCHIVE_DIR] = request.app.state.settings.archive_dir  # for nested $expand=Observations
        source: Any = None
        try:
            target = resolve(session, resource)
        except StaError as exc:
            archived = _archived_observation(session, request, resource) if exc.status == 404 else None
            if archived is None:
                raise
            target, source = archived
        etype = target.etype
        if resource.property_name is not None:
            assert target.entity_id is not None
            obj = (session.get(etype.model, target.entity_id) if source is None else session.execute(
                select(*[getattr(source, c.name).label(c.name) for c in etype.model.__table__.columns])
                .where(source.id == target.entity_id)).one())
            value = property_value(etype, obj, resource.property_name)
            if resource.value:
                if value is None:
                    return Response(status_code=204)
                text = value if isinstance(value, str) else json.dumps(value)
                return Response(text, media_type="text/plain; charset=utf-8")
            return JSONResponse({resource.property_name: value})
        options = parse_options(pairs, etype)
        condition = target.condition
        if not target.single:
            source = _observation_source(session, request, target, options)
            if source is not None and target.parent is not None:
                column = "datastream_id" if target.parent[0].name == "Datastreams" else "feature_of_interest_id"
                condition = getattr(source, column) == target.parent[1]
        if target.single and options.result_format:
            raise StaError(400, "$resultFormat=dataArray applies to a collection of Observations.")
        if resource.ref:
            if target.single:
                assert target.entity_id is not None
                return JSONResponse({"@iot.selfLink": self_link(root, etype, target.entity_id)})
            parent = target.parent[0].name if target.parent else None
            page = fetch_page(session, etype, condition, options, parent, source)
            body: dict[str, Any] = {}
            if page.count is not None:
                body["@iot.count"] = page.count
                if page.count_estimated:
                    body[COUNT_ESTIMATED] = True
            link = page.next_link(f"{root}/{path.strip('/')}", pairs, options)
            if link:
                body["@iot.nextLink"] = link
            body["value"] = references(page.items, etype, root)
            return JSONResponse(body)
        if target.single:
            assert target.entity_id is not None
            return JSONResponse(read_entity(session, etype, target.entity_id, options, root, source))
        body = read_collection(session, etype, condition, options, root, f"{root}/{path.strip('/')}", pairs,
                               target.parent[0].name if target.parent else None, source)
        return Response(dump_collection(body), media_type="application/json")
