"""Read-only NGSI-LD views of the sensor hub, for FIWARE tools (docs/sensors-extensions.md).

* ``GET /ngsi-ld/v1/entities?type=AirQualityObserved``: one entity per Thing that has air quality
  Datastreams (NO2, NO, NOx, O3, PM10, PM2.5, SO2, CO; recognised by ``qc.stream_pollutant``: a
  species code in the Datastream's or ObservedProperty's properties, the EEA pollutant URI or the
  ObservedProperty's name), each pollutant a Property holding the latest
  value from ``sta_latest`` with its ``observedAt``; ``dateObserved`` is the newest of those times and
  ``location`` the Thing's Location as a GeoProperty;
* ``GET /ngsi-ld/v1/entities?type=Streetlight``: Things whose ``properties.kind`` is ``streetlight``;
* ``GET /ngsi-ld/v1/entities/{id}``: one of them by id (``urn:ngsi-ld:AirQualityObserved:Thing-7``).

Normalised NGSI-LD, with the core @context given by a ``Link`` header (``application/json``) or in
the body (when ``Accept: application/ld+json``). ``limit`` (default 20, at most 1000) and
``offset`` page; ``count=true`` adds the ``NGSILD-Results-Count`` header; ``id`` picks entities by id
and ``attrs`` keeps only the named attributes; ``options=keyValues`` gives the simplified form.
Nothing can be written here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.db import Database
from .models import Datastream, Latest, Location, ObservedProperty, Thing, ThingLocation
from .qc import stream_pollutant
from .sta.serialize import format_time

PREFIX = "/ngsi-ld/v1"
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
LINK = f'<{CORE_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
TYPES = ("AirQualityObserved", "Streetlight")
# UN/CEFACT common codes, as the FIWARE data models use in unitCode
UNIT_CODES = {"µg/m³": "GQ", "μg/m³": "GQ", "ug/m3": "GQ", "mg/m³": "GP", "mg/m3": "GP", "ppb": "61", "ppm": "59"}

router = APIRouter(tags=["NGSI-LD (read-only)"])


class NgsiError(Exception):
    """An NGSI-LD error (RFC 7807 problem details with the NGSI-LD error type)."""

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail = status, kind, detail

    def response(self) -> JSONResponse:
        return JSONResponse({"type": ERRORS + self.kind, "title": self.kind, "detail": self.detail},
                            status_code=self.status, media_type="application/json")


def entity_id(kind: str, thing_id: int) -> str:
    """``urn:ngsi-ld:AirQualityObserved:Thing-7``."""
    return f"urn:ngsi-ld:{kind}:Thing-{thing_id}"


def _parse_id(value: str) -> tuple[str, int]:
    parts = value.split(":")
    if len(parts) < 3 or parts[0] != "urn" or not all(parts):
        raise NgsiError(400, "BadRequestData", f"{value!r} is not an entity id (a URI such as "
                                               "urn:ngsi-ld:AirQualityObserved:Thing-1).")
    if len(parts) == 4 and parts[1] == "ngsi-ld" and parts[2] in TYPES and parts[3].startswith("Thing-") \
            and parts[3][6:].isdigit():
        return parts[2], int(parts[3][6:])
    raise NgsiError(404, "ResourceNotFound", f"There is no entity {value}.")


def _property(value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **{k: v for k, v in extra.items() if v is not None}}


def _locations(session: Session, thing_ids: list[int]) -> dict[int, Any]:
    rows = session.execute(select(ThingLocation.thing_id, Location.location)
                           .join(Location, Location.id == ThingLocation.location_id)
                           .where(ThingLocation.thing_id.in_(thing_ids))
                           .order_by(ThingLocation.thing_id, Location.id)).all()
    out: dict[int, Any] = {}
    for thing_id, geometry in rows:
        out.setdefault(thing_id, geometry)
    return out


def _air_quality(session: Session, thing_ids: list[int] | None) -> list[dict[str, Any]]:
    query = (select(Datastream.thing_id, Thing.name, Datastream.properties, Datastream.unit_of_measurement,
                    ObservedProperty.name.label("op_name"), ObservedProperty.definition.label("op_definition"),
                    ObservedProperty.properties.label("op_properties"), Latest.phenomenon_time_start,
                    Latest.phenomenon_time_end, Latest.result, Latest.datastream_id)
             .join(Datastream, Datastream.id == Latest.datastream_id)
             .join(ObservedProperty, ObservedProperty.id == Datastream.observed_property_id)
             .join(Thing, Thing.id == Datastream.thing_id)
             .order_by(Datastream.thing_id, Latest.phenomenon_time_start))
    if thing_ids is not None:
        query = query.where(Datastream.thing_id.in_(thing_ids))
    entities: dict[int, dict[str, Any]] = {}
    for row in session.execute(query):
        key = stream_pollutant(row.properties, row.op_name, row.op_definition, row.op_properties)
        if key is None or not isinstance(row.result, (int, float)) or isinstance(row.result, bool):
            continue
        when = format_time(row.phenomenon_time_end or row.phenomenon_time_start)
        entity = entities.setdefault(row.thing_id, {
            "id": entity_id("AirQualityObserved", row.thing_id), "type": "AirQualityObserved",
            "name": _property(row.name)})
        symbol = (row.unit_of_measurement or {}).get("symbol")
        entity[key] = _property(row.result, unitCode=UNIT_CODES.get(symbol or ""), observedAt=when,
                                datasetId=f"urn:ngsi-ld:Dataset:Datastream-{row.datastream_id}")
        if when and ("dateObserved" not in entity or when > entity["dateObserved"]["value"]["@value"]):
            entity["dateObserved"] = _property({"@type": "DateTime", "@value": when})
    locations = _locations(session, list(entities))
    for thing_id, entity in entities.items():
        if thing_id in locations:
            entity["location"] = {"type": "GeoProperty", "value": locations[thing_id]}
    return list(entities.values())


def _streetlights(session: Session, thing_ids: list[int] | None) -> list[dict[str, Any]]:
    query = select(Thing).where(Thing.properties["kind"].as_string() == "streetlight").order_by(Thing.id)
    if thing_ids is not None:
        query = query.where(Thing.id.in_(thing_ids))
    things = session.scalars(query).all()
    locations = _locations(session, [t.id for t in things])
    out = []
    for thing in things:
        props = thing.properties or {}
        entity: dict[str, Any] = {"id": entity_id("Streetlight", thing.id), "type": "Streetlight",
                                  "name": _property(thing.name)}
        if thing.description:
            entity["description"] = _property(thing.description)
        for name in ("status", "powerState", "lanternHeight", "illuminanceLevel", "dateServiceStarted"):
            if props.get(name) is not None:
                entity[name] = _property(props[name])
        if thing.id in locations:
            entity["location"] = {"type": "GeoProperty", "value": locations[thing.id]}
        out.append(entity)
    return out


def _key_values(entity: dict[str, Any]) -> dict[str, Any]:
    """The simplified (keyValues) form: each attribute's value only."""
    out: dict[str, Any] = {}
    for key, attr in entity.items():
        if isinstance(attr, dict) and attr.get("type") in ("Property", "GeoProperty"):
            value = attr["value"]
            out[key] = value["@value"] if isinstance(value, dict) and "@value" in value else value
        else:
            out[key] = attr
    return out


def _respond(request: Request, body: Any) -> Response:
    options = [o.strip() for o in (request.query_params.get("options") or "").split(",") if o.strip()]
    unknown = [o for o in options if o not in ("keyValues", "normalized", "count")]
    if unknown:
        raise NgsiError(400, "BadRequestData", f"options {', '.join(unknown)} not supported; use keyValues.")
    if "keyValues" in options:
        body = [_key_values(e) for e in body] if isinstance(body, list) else _key_values(body)
    if "application/ld+json" in request.headers.get("accept", ""):
        if isinstance(body, list):
            body = [{**e, "@context": CORE_CONTEXT} for e in body]
        else:
            body = {**body, "@context": CORE_CONTEXT}
        return JSONResponse(body, media_type="application/ld+json")
    return JSONResponse(body, media_type="application/json", headers={"Link": LINK})


def _list(request: Request, name: str) -> list[str]:
    return [v.strip() for v in (request.query_params.get(name) or "").split(",") if v.strip()]


def _number(request: Request, name: str, default: int, maximum: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) > maximum:
        raise NgsiError(400, "BadRequestData", f"{name} must be a whole number from 0 to {maximum}.")
    return int(text)


@router.get(PREFIX + "/entities", summary="NGSI-LD entities: AirQualityObserved, Streetlight")
def entities(request: Request) -> Response:
    """``?type=AirQualityObserved`` or ``?type=Streetlight`` (comma-separated for both) and/or ``id=`` (a
    comma-separated list of entity ids); ``attrs=no2,location`` keeps only those attributes; ``limit``,
    ``offset``, ``count=true``."""
    try:
        kinds = _list(request, "type")
        ids = _list(request, "id")
        if not kinds and not ids:
            raise NgsiError(400, "BadRequestData", "type (AirQualityObserved or Streetlight) or id is required.")
        attrs = _list(request, "attrs")
        limit = _number(request, "limit", 20, 1000)
        offset = _number(request, "offset", 0, 10**9)
        # id=urn:...,urn:...: the Things they name, per type (a malformed id is 400, an unknown one matches nothing)
        wanted: dict[str, list[int]] = {}
        for value in ids:
            try:
                kind, thing_id = _parse_id(value)
            except NgsiError as exc:
                if exc.status == 400:
                    raise
                continue
            wanted.setdefault(kind, []).append(thing_id)
        if ids:
            kinds = [k for k in (kinds or list(TYPES)) if k in wanted]
        db: Database = request.app.state.db
        found: list[dict[str, Any]] = []
        with db.sessions() as session:
            if "AirQualityObserved" in kinds:
                found += _air_quality(session, wanted.get("AirQualityObserved") if ids else None)
            if "Streetlight" in kinds:
                found += _streetlights(session, wanted.get("Streetlight") if ids else None)
        if attrs:
            found = [{k: v for k, v in e.items() if k in ("id", "type") or k in attrs} for e in found]
        response = _respond(request, found[offset:offset + limit])
        if request.query_params.get("count") == "true" or "count" in _list(request, "options"):
            response.headers["NGSILD-Results-Count"] = str(len(found))
        return response
    except NgsiError as exc:
        return exc.response()


@router.get(PREFIX + "/entities/{entity:path}", summary="One NGSI-LD entity by id")
def entity(entity: str, request: Request) -> Response:
    """``/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:Thing-1``."""
    try:
        kind, thing_id = _parse_id(entity)
        db: Database = request.app.state.db
        with db.sessions() as session:
            found = (_air_quality if kind == "AirQualityObserved" else _streetlights)(session, [thing_id])
        if not found:
            raise NgsiError(404, "ResourceNotFound", f"There is no entity {entity}.")
        return _respond(request, found[0])
    except NgsiError as exc:
        return exc.response()
