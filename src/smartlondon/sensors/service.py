"""Writing SensorThings entities: create (with deep insert), update, JSON-Patch, delete, bulk ingest.

Everything here is plain functions over a SQLAlchemy session, with no HTTP in them; the
``/sta/v1.1`` write routes (``sensors/sta/writes.py``) and the MQTT bridge (``sensors/mqtt.py``)
both call them, so a request and a message get the same rules and the same errors.

* ``create_from_path(session, "Datastreams(5)/Observations", payload, base_url)`` creates an
  entity (and, in the same transaction, every new entity nested in it; ``{"@iot.id": n}`` links an
  existing one) and returns its JSON as a GET would show it.
* ``update(...)`` applies PATCH (only what is given) or PUT (replace) semantics,
  ``json_patch(...)`` an RFC 6902 document, ``delete(...)`` removes an entity with the standard's
  cascades.
* ``create_observations(...)`` is the dataArray ``CreateObservations`` action: the common row shape
  checked inline, the rows of every group of the request inserted together (one COPY on PostgreSQL
  from 50 rows, one driver executemany on SQLite).
* ``create_many_from_path(session, [(path, payload), ...], base_url)`` is many creates at once (the
  MQTT bridge's batches): per item the entity JSON or the exception ``create_from_path`` would
  raise; plain Observations share lookups and one INSERT.

Side effects kept in the same transaction: a HistoricalLocation whenever a Thing's Locations are
set or changed; a FeatureOfInterest generated from the Thing's Location (one per Location, reused)
when an Observation names none; the Datastream's phenomenonTime/resultTime span; the last-value
table ``sta_latest`` (only moved forward by a newer Observation, recomputed after a delete).

After each create or update the event ``sta.changed`` is emitted (``core.events``) with
``entity_set``, ``id``, ``op`` (``"create"``/``"update"``), ``entity`` (the JSON), ``changed``
(updates: the property names) and ``links`` (ids of the to-one related entities, keyed by entity
set name, e.g. ``{"Datastreams": 5, "FeaturesOfInterest": 3}``). Deletes emit ``sta.deleted``
(``entity_set``, ``id``). Bad input raises ``BadRequest`` (400) naming the property; a missing
entity in the path raises ``NotFound`` (404).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from typing import Any

import jsonpatch
from sqlalchemy import delete as sql_delete
from sqlalchemy import func, insert, select, text, update as sql_update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..core import events
from ..core.db import utcnow
from ..core.errors import BadRequest, NotFound
from .models import (
    ENTITIES,
    Datastream,
    EntityType,
    FeatureOfInterest,
    HistoricalLocation,
    HistoricalLocationLocation,
    Latest,
    Location,
    MultiDatastream,
    MultiDatastreamObservedProperty,
    Navigation,
    Observation,
    ThingLocation,
)

COMPLEX = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_ComplexObservation"
OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
_QUEUE = "smartlondon.sta.events"

# --- what each entity must and may carry --------------------------------------------------------

REQUIRED: dict[str, tuple[str, ...]] = {
    "Things": ("name", "description"),
    "Locations": ("name", "description", "encodingType", "location"),
    "HistoricalLocations": ("time",),
    "Datastreams": ("name", "description", "unitOfMeasurement", "observationType"),
    "MultiDatastreams": ("name", "description", "unitOfMeasurements", "multiObservationDataTypes"),
    "Sensors": ("name", "description", "encodingType", "metadata"),
    "ObservedProperties": ("name", "definition", "description"),
    "Observations": ("result",),
    "FeaturesOfInterest": ("name", "description", "encodingType", "feature"),
}
REQUIRED_LINKS: dict[str, tuple[str, ...]] = {
    "HistoricalLocations": ("Thing",),
    "Datastreams": ("Thing", "Sensor", "ObservedProperty"),
    "MultiDatastreams": ("Thing", "Sensor"),
}
#: computed by the server: accepted in a body (clients send them back) and ignored
COMPUTED: dict[str, tuple[str, ...]] = {
    "Datastreams": ("phenomenonTime", "resultTime"),
    "MultiDatastreams": ("phenomenonTime", "resultTime"),
}
_STRINGS = {"name": 500, "description": 100_000, "encodingType": 100, "definition": 1000, "observationType": 300}
_OBJECTS = ("properties", "parameters")
_GEOMETRY = ("location", "feature", "observedArea")
_INSTANTS = ("time", "resultTime")  # an instant (Observation.resultTime may also be null)


#: called with ``(session, rows)`` just before new Observation rows are inserted (they may set columns
#: such as ``result_quality``), and ``(writer, rows)`` just after (ids set), in the same transaction
from .calibration.ingest import calibrate_on_ingest  # noqa: E402  (calibrated Datastreams, sensors/calibration)
from .qc import check_on_ingest  # noqa: E402  (quality-control flags on ingest, sensors/qc.py)

BEFORE_INSERT: list[Any] = [check_on_ingest]
AFTER_INSERT: list[Any] = [calibrate_on_ingest]

# --- events ---------------------------------------------------------------------------------------

def _queue(session: Session, **payload: Any) -> None:
    session.info.setdefault(_QUEUE, []).append(payload)


def flush_events(session: Session) -> None:
    """Emit the queued ``sta.changed``/``sta.deleted`` events (in the transaction, before it commits)."""
    queued = session.info.pop(_QUEUE, [])
    for payload in queued:
        name = "sta.deleted" if payload.get("op") == "delete" else "sta.changed"
        events.emit(session, name, **payload)


def _has_subscribers() -> bool:
    return bool(events._during.get("sta.changed") or events._after.get("sta.changed"))  # noqa: SLF001


# --- JSON of an entity ----------------------------------------------------------------------------

def to_json(session: Session, obj: Any, base_url: str) -> dict[str, Any]:
    """The entity's JSON as a GET shows it (the read side's serializer)."""
    from .sta.serialize import to_json as serialize

    return serialize(session, obj, base_url)


def _set_of(obj: Any) -> EntityType:
    for et in ENTITIES.values():
        if isinstance(obj, et.model):
            return et
    raise TypeError(f"not an entity: {obj!r}")


def self_link(base_url: str, set_name: str, entity_id: int) -> str:
    """The entity's ``@iot.selfLink``."""
    return f"{base_url.rstrip('/')}/{set_name}({entity_id})"


def _links(et: EntityType, obj: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for nav in et.navigation.values():
        if nav.kind == "to_one" and nav.fk:
            value = getattr(obj, nav.fk)
            if value is not None:
                out[nav.target] = int(value)
    return out


def _announce(session: Session, obj: Any, base_url: str, op: str, changed: list[str] | None = None) -> dict:
    et = _set_of(obj)
    entity = to_json(session, obj, base_url)
    payload: dict[str, Any] = {"entity_set": et.name, "id": int(obj.id), "op": op, "entity": entity,
                               "links": _links(et, obj)}
    if op == "update":
        payload["changed"] = changed or []
    _queue(session, **payload)
    return entity


# --- paths ----------------------------------------------------------------------------------------

_SEGMENT = re.compile(r"^([A-Za-z]+)(?:\((\d+|'[^']*')\))?$")


def parse_path(path: str) -> list[tuple[str, int | None]]:
    """``"Things(1)/Datastreams"`` -> ``[("Things", 1), ("Datastreams", None)]``; 400 if malformed."""
    parts = [p for p in path.strip().strip("/").split("/") if p]
    if not parts:
        raise BadRequest("The path is empty: name an entity set, such as Things or Observations.")
    out: list[tuple[str, int | None]] = []
    for part in parts:
        m = _SEGMENT.match(part)
        if not m:
            raise BadRequest(f"The path segment '{part}' is not an entity set, an entity like Things(1), "
                             "or a navigation property.")
        raw = m.group(2)
        if raw is not None and raw.startswith("'"):
            inner = raw.strip("'")
            if not inner.isdigit():
                raise NotFound(f"No {m.group(1)} with id {raw}: ids here are integers.")
            raw = inner
        out.append((m.group(1), int(raw) if raw is not None else None))
    return out


def _exists(session: Session, et: EntityType, entity_id: int) -> bool:
    return session.scalar(select(et.model.id).where(et.model.id == entity_id)) is not None


def _nav_ids(session: Session, et: EntityType, entity_id: int, nav: Navigation, target_id: int | None) -> list[int]:
    """Ids of the entities reached from ``et(entity_id)`` through ``nav`` (limited to ``target_id``)."""
    target = ENTITIES[nav.target]
    if nav.kind == "to_one":
        fk = session.scalar(select(getattr(et.model, nav.fk)).where(et.model.id == entity_id))  # type: ignore[arg-type]
        ids = [fk] if fk is not None else []
    elif nav.remote:
        q = select(target.model.id).where(getattr(target.model, nav.remote) == entity_id)
        if target_id is not None:
            q = q.where(target.model.id == target_id)
        ids = list(session.scalars(q.limit(2 if target_id is not None else None)))
    else:
        link = nav.link
        q = select(getattr(link, nav.link_other)).where(getattr(link, nav.link_self) == entity_id)  # type: ignore[arg-type]
        if target_id is not None:
            q = q.where(getattr(link, nav.link_other) == target_id)  # type: ignore[arg-type]
        ids = list(session.scalars(q))
    if target_id is not None:
        ids = [i for i in ids if i == target_id]
    return [int(i) for i in ids]


def resolve(session: Session, path: str) -> tuple[EntityType, int | None, tuple[EntityType, int, Navigation] | None]:
    """The entity set (and id, if the path names one entity) at the end of a path, and its parent.

    The parent is ``(parent type, parent id, navigation from the parent)`` when the path goes
    through one. 404 if an entity on the way does not exist or is not related as the path says.
    """
    segments = parse_path(path)
    name, entity_id = segments[0]
    et = ENTITIES.get(name)
    if et is None:
        raise NotFound(f"There is no entity set '{name}'. The sets are: {', '.join(ENTITIES)}.")
    if entity_id is not None and not _exists(session, et, entity_id):
        raise NotFound(f"There is no {et.singular} with id {entity_id}.")
    parent: tuple[EntityType, int, Navigation] | None = None
    for nav_name, nav_id in segments[1:]:
        if entity_id is None:
            raise BadRequest(f"Give the id of the {et.singular} before '{nav_name}', as in {et.name}(1)/{nav_name}.")
        nav = et.navigation.get(nav_name)
        if nav is None:
            raise BadRequest(f"A {et.singular} has no navigation property '{nav_name}'. It has: "
                             f"{', '.join(et.navigation)}.")
        target = ENTITIES[nav.target]
        if nav.kind == "to_one":
            ids = _nav_ids(session, et, entity_id, nav, None)
            if nav_id is not None and ids != [nav_id]:
                raise NotFound(f"{et.singular} {entity_id} has no {nav_name} with id {nav_id}.")
            if not ids:
                raise NotFound(f"{et.singular} {entity_id} has no {nav_name}.")
            parent, et, entity_id = (et, entity_id, nav), target, ids[0]
        else:
            if nav_id is not None and not _nav_ids(session, et, entity_id, nav, nav_id):
                raise NotFound(f"{et.singular} {entity_id} has no {nav_name} with id {nav_id}.")
            parent, et, entity_id = (et, entity_id, nav), target, nav_id
    return et, entity_id, parent


# --- values ---------------------------------------------------------------------------------------

def parse_time(value: Any, prop: str) -> datetime:
    """An ISO 8601 instant as an aware UTC datetime; 400 naming the property if it is not one."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"'{prop}' must be an ISO 8601 time, like \"2023-01-01T12:00:00Z\"; got {json.dumps(value)}.")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise BadRequest(f"'{prop}' must be an ISO 8601 time, like \"2023-01-01T12:00:00Z\"; got {json.dumps(value)}.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def parse_interval(value: Any, prop: str) -> tuple[datetime, datetime | None]:
    """An instant (end None) or an ISO 8601 interval ``start/end``; 400 if neither."""
    if isinstance(value, str) and "/" in value:
        start_text, _, end_text = value.partition("/")
        start, end = parse_time(start_text, prop), parse_time(end_text, prop)
        if end < start:
            raise BadRequest(f"'{prop}' ends before it starts: {value}.")
        return start, end
    return parse_time(value, prop), None


def format_time(value: datetime | None) -> str | None:
    """An aware datetime as ISO 8601 in UTC with ``Z``."""
    if value is None:
        return None
    text = value.astimezone(timezone.utc).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def format_interval(start: datetime | None, end: datetime | None) -> str | None:
    """An instant, or ``start/end``."""
    if start is None:
        return None
    return format_time(start) if end is None else f"{format_time(start)}/{format_time(end)}"


def _check_geometry(value: Any, prop: str) -> None:
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise BadRequest(f"'{prop}' must be a GeoJSON object with a \"type\", like "
                         "{\"type\": \"Point\", \"coordinates\": [-0.1, 51.5]}.")
    kind = value["type"]
    if kind == "Feature":
        _check_geometry(value.get("geometry"), f"{prop}.geometry")
    elif kind == "FeatureCollection":
        if not isinstance(value.get("features"), list):
            raise BadRequest(f"'{prop}' is a FeatureCollection without a \"features\" array.")
    elif kind == "GeometryCollection":
        if not isinstance(value.get("geometries"), list):
            raise BadRequest(f"'{prop}' is a GeometryCollection without a \"geometries\" array.")
    elif kind in ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"):
        if not isinstance(value.get("coordinates"), list):
            raise BadRequest(f"'{prop}' is a {kind} without a \"coordinates\" array.")
    else:
        raise BadRequest(f"'{prop}' has the GeoJSON type '{kind}', which is not a geometry or feature.")


def _convert(et: EntityType, prop: str, value: Any) -> dict[str, Any]:
    """One STA property's value as model attribute values; 400 naming the property if wrong."""
    where = f"{et.singular}.{prop}"
    if prop in et.intervals:
        start_attr, end_attr = et.intervals[prop]
        if value is None:
            if prop == "phenomenonTime":
                raise BadRequest(f"'{where}' cannot be null.")
            return {start_attr: None, end_attr: None}
        start, end = parse_interval(value, where)
        return {start_attr: start, end_attr: end}
    attr = et.properties[prop]
    if prop in _STRINGS:
        if not isinstance(value, str):
            raise BadRequest(f"'{where}' must be a string; got {json.dumps(value)[:80]}.")
        if len(value) > _STRINGS[prop]:
            raise BadRequest(f"'{where}' is longer than {_STRINGS[prop]} characters.")
    elif prop in _OBJECTS:
        if value is not None and not isinstance(value, dict):
            raise BadRequest(f"'{where}' must be a JSON object; got {json.dumps(value)[:80]}.")
    elif prop in _GEOMETRY:
        if value is not None or prop != "observedArea":
            _check_geometry(value, where)
    elif prop in _INSTANTS:
        if value is None and prop == "resultTime":
            return {attr: None}
        return {attr: parse_time(value, where)}
    elif prop == "unitOfMeasurement":
        if not isinstance(value, dict):
            raise BadRequest(f"'{where}' must be an object with name, symbol and definition; got "
                             f"{json.dumps(value)[:80]}.")
    elif prop == "unitOfMeasurements":
        if not isinstance(value, list) or not all(isinstance(u, dict) for u in value):
            raise BadRequest(f"'{where}' must be an array of objects with name, symbol and definition.")
    elif prop == "multiObservationDataTypes":
        if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
            raise BadRequest(f"'{where}' must be an array of observation type URIs (strings).")
    elif prop == "metadata":
        if value is None:
            raise BadRequest(f"'{where}' cannot be null.")
    return {attr: value}


def _split(et: EntityType, payload: Any, where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A body's properties and navigation properties; 400 for anything the entity does not have."""
    if not isinstance(payload, dict):
        raise BadRequest(f"{where} must be a JSON object; got {json.dumps(payload)[:80]}.")
    values: dict[str, Any] = {}
    navs: dict[str, Any] = {}
    known = set(et.properties) | set(et.intervals)
    for key, value in payload.items():
        if "@iot." in key or key == "@iot.id":
            continue  # annotations (ids, selfLinks, navigationLinks) a client sends back
        if key in et.navigation:
            navs[key] = value
        elif key in COMPUTED.get(et.name, ()):
            continue
        elif key in known:
            values[key] = value
        else:
            raise BadRequest(f"A {et.singular} has no property '{key}'. Its properties are "
                             f"{', '.join(sorted(known))}; its navigation properties {', '.join(et.navigation)}.")
    return values, navs


def _link_id(value: Any) -> int | None:
    """The id of a ``{"@iot.id": n}`` link (nothing else in the object), or None for a new entity."""
    if isinstance(value, dict) and "@iot.id" in value and not any(not k.startswith("@iot.") for k in value):
        raw = value["@iot.id"]
        if isinstance(raw, bool) or not isinstance(raw, (int, str)) or not str(raw).isdigit():
            raise BadRequest(f"\"@iot.id\" must be an integer id; got {json.dumps(raw)}.")
        return int(raw)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _check_result(observation_type: str | None, result: Any, where: str) -> None:
    """The result must suit the Datastream's observationType."""
    kind = (observation_type or "").rsplit("/", 1)[-1]
    if kind == "OM_Measurement" and _number(result) is None:
        raise BadRequest(f"'{where}' must be a number: the Datastream's observationType is OM_Measurement; "
                         f"got {json.dumps(result)[:80]}.")
    if kind == "OM_CountObservation" and (isinstance(result, bool) or not isinstance(result, int)):
        raise BadRequest(f"'{where}' must be an integer (OM_CountObservation); got {json.dumps(result)[:80]}.")
    if kind == "OM_TruthObservation" and not isinstance(result, bool):
        raise BadRequest(f"'{where}' must be true or false (OM_TruthObservation); got {json.dumps(result)[:80]}.")


# --- the writer -----------------------------------------------------------------------------------

class Writer:
    """One write operation's state: the session, the service root and what it has cached."""

    def __init__(self, session: Session, base_url: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self._foi_of_location: dict[int, int] = {}
        self._foi_of_thing: dict[int, int] = {}
        self._stream_cache: dict[tuple[str, int], Any] = {}
        self._known: set[tuple[str, int]] = set()
        self.moved: set[int] = set()  # Things whose Locations were set: a HistoricalLocation each at the end

    def finish(self) -> None:
        """Record a HistoricalLocation for each Thing whose Locations this operation set."""
        for thing_id in sorted(self.moved):
            self.record_history(thing_id)
        self.moved.clear()

    # -- create --

    def link_or_create(self, target: EntityType, value: Any, where: str, fixed: dict[str, Any] | None = None) -> int:
        """The id of an existing entity ``{"@iot.id": n}`` (400 if missing), or of a new one."""
        link = _link_id(value)
        if link is not None:
            if (target.name, link) not in self._known:
                if not _exists(self.session, target, link):
                    raise BadRequest(f"{where} links to {target.singular} {link}, which does not exist.")
                self._known.add((target.name, link))
            return link
        return self.create(target, value, where, fixed=fixed)

    def create(self, et: EntityType, payload: Any, where: str | None = None, fixed: dict[str, Any] | None = None,
               after: list[tuple[Navigation, int]] | None = None) -> int:
        """Create an entity and what is nested in it; returns its id.

        ``fixed`` sets foreign keys from a parent (``{"datastream_id": 5}``); ``after`` adds links
        through link tables from a parent (``[(Locations.Things navigation, thing id)]``).
        """
        where = where or et.singular
        values, navs = _split(et, payload, where)
        fixed = dict(fixed or {})
        if et.name == "Observations":
            return self._create_observation(values, navs, fixed, where)
        missing = [p for p in REQUIRED[et.name] if p not in values]
        if missing:
            raise BadRequest(f"{where} is missing the required propert{'y' if len(missing) == 1 else 'ies'} "
                             f"{', '.join(repr(m) for m in missing)}.")
        attrs: dict[str, Any] = {}
        for prop, value in values.items():
            attrs.update(_convert(et, prop, value))
        if "properties" in et.properties and attrs.get("properties") is None:
            attrs["properties"] = {}  # clients (frost-sta-client) expect an object, never null
        if et.name == "MultiDatastreams":
            attrs.setdefault("observation_type", COMPLEX)
            if attrs["observation_type"] != COMPLEX:
                raise BadRequest(f"{where}.observationType must be {COMPLEX}.")
        for nav_name, nav in et.navigation.items():
            if nav.kind == "to_one" and nav_name in navs:
                attrs[nav.fk] = self.link_or_create(ENTITIES[nav.target], navs[nav_name], f"{where}.{nav_name}")  # type: ignore[index]
        attrs.update(fixed)
        for nav_name in REQUIRED_LINKS.get(et.name, ()):
            if attrs.get(et.navigation[nav_name].fk) is None:  # type: ignore[arg-type]
                raise BadRequest(f"{where} needs its {nav_name}: give {{\"{nav_name}\": {{\"@iot.id\": <id>}}}} "
                                 f"or a new {ENTITIES[et.navigation[nav_name].target].singular}.")
        obj = et.model(**attrs)
        self.session.add(obj)
        self.session.flush()
        new_id = int(obj.id)
        # to-many navigation: links and nested new entities
        for nav_name, nav in et.navigation.items():
            if nav.kind != "to_many" or nav_name not in navs:
                continue
            items = navs[nav_name]
            if not isinstance(items, list):
                raise BadRequest(f"{where}.{nav_name} must be an array of entities or {{\"@iot.id\": n}} links.")
            if et.name == "MultiDatastreams" and nav_name == "ObservedProperties":
                continue  # below, in order
            self._add_many(et, new_id, nav_name, nav, items, f"{where}.{nav_name}")
        for nav, other in after or []:
            self._link(nav, new_id, other)
        if et.name == "MultiDatastreams":
            self._set_observed_properties(obj, navs.get("ObservedProperties"), where)
        if et.name == "Things" and (navs.get("Locations") or any(n.target == "Locations" for n, _ in after or [])):
            self.moved.add(new_id)
        if et.name == "Locations":
            self.moved.update(t for nav, t in (after or []) if nav.target == "Things")
            self.moved.update(self._ids_linked(navs.get("Things")))
        _announce(self.session, obj, self.base_url, "create")
        return new_id

    def _ids_linked(self, items: Any) -> list[int]:
        ids: list[int] = []
        for item in items or []:
            link = _link_id(item)
            if link is not None:
                ids.append(link)
        return ids

    def _add_many(self, et: EntityType, parent_id: int, nav_name: str, nav: Navigation, items: list[Any],
                  where: str) -> None:
        target = ENTITIES[nav.target]
        if et.name == "ObservedProperties" and nav_name == "MultiDatastreams":
            raise BadRequest(f"{where}: set a MultiDatastream's ObservedProperties on the MultiDatastream itself.")
        new_observations: list[Any] = []
        for index, item in enumerate(items):
            here = f"{where}[{index}]"
            link = _link_id(item)
            if nav.remote:
                if link is not None:
                    if not _exists(self.session, target, link):
                        raise BadRequest(f"{here} links to {target.singular} {link}, which does not exist.")
                    self.session.execute(sql_update(target.model).where(target.model.id == link)
                                         .values({nav.remote: parent_id}))
                elif target.name == "Observations":
                    new_observations.append((item, here))
                else:
                    self.create(target, item, here, fixed={nav.remote: parent_id})
            else:
                if link is not None:
                    if not _exists(self.session, target, link):
                        raise BadRequest(f"{here} links to {target.singular} {link}, which does not exist.")
                    self._link(nav, parent_id, link)
                else:
                    back = _reverse(et, nav)
                    if back is None:
                        raise BadRequest(f"{here}: cannot create a {target.singular} through {nav_name}.")
                    self.create(target, item, here, after=[(back, parent_id)])
        if new_observations:
            rows = []
            for item, here in new_observations:
                values, navs = _split(target, item, here)
                rows.append(self._observation_row(values, navs, {nav.remote: parent_id}, here))  # type: ignore[dict-item]
            self.insert_observations(rows)

    def _link(self, nav: Navigation, self_id: int, other_id: int) -> None:
        link = nav.link
        exists = self.session.scalar(select(func.count()).select_from(link).where(  # type: ignore[arg-type]
            getattr(link, nav.link_self) == self_id, getattr(link, nav.link_other) == other_id))  # type: ignore[arg-type]
        if not exists:
            self.session.execute(insert(link).values({nav.link_self: self_id, nav.link_other: other_id}))  # type: ignore[arg-type, dict-item]

    def record_history(self, thing_id: int) -> int:
        """A HistoricalLocation now, for the Thing's current Locations (the standard does this)."""
        history = HistoricalLocation(thing_id=thing_id, time=utcnow())
        self.session.add(history)
        self.session.flush()
        locations = list(self.session.scalars(select(ThingLocation.location_id).where(ThingLocation.thing_id == thing_id)))
        if locations:
            self.session.execute(insert(HistoricalLocationLocation), [
                {"historical_location_id": history.id, "location_id": loc} for loc in locations])
        _announce(self.session, history, self.base_url, "create")
        return int(history.id)

    def _set_observed_properties(self, obj: MultiDatastream, items: Any, where: str) -> None:
        if not isinstance(items, list) or not items:
            raise BadRequest(f"{where} needs its ObservedProperties: an array, in the order of unitOfMeasurements.")
        target = ENTITIES["ObservedProperties"]
        ids = [self.link_or_create(target, item, f"{where}.ObservedProperties[{i}]") for i, item in enumerate(items)]
        n = len(ids)
        if len(obj.unit_of_measurements) != n or len(obj.multi_observation_data_types) != n:
            raise BadRequest(f"{where} has {n} ObservedProperties, {len(obj.unit_of_measurements)} "
                             f"unitOfMeasurements and {len(obj.multi_observation_data_types)} "
                             "multiObservationDataTypes: the three arrays must be the same length, in the same order.")
        self.session.execute(insert(MultiDatastreamObservedProperty), [
            {"multi_datastream_id": obj.id, "position": i, "observed_property_id": op} for i, op in enumerate(ids)])

    # -- observations --

    def _stream(self, kind: str, stream_id: int) -> Any:
        key = (kind, stream_id)
        if key not in self._stream_cache:
            model = Datastream if kind == "Datastreams" else MultiDatastream
            row = self.session.execute(select(model.id, model.thing_id, model.observation_type)
                                       .where(model.id == stream_id)).first()
            arity = None
            if row is not None and kind == "MultiDatastreams":
                arity = self.session.scalar(select(func.count()).select_from(MultiDatastreamObservedProperty)
                                            .where(MultiDatastreamObservedProperty.multi_datastream_id == stream_id))
            self._stream_cache[key] = (row, arity)
        return self._stream_cache[key]

    def _observation_row(self, values: dict[str, Any], navs: dict[str, Any], fixed: dict[str, Any],
                         where: str) -> dict[str, Any]:
        """The row of a new Observation, validated (the FeatureOfInterest resolved or generated)."""
        et = ENTITIES["Observations"]
        if "result" not in values:
            raise BadRequest(f"{where} is missing the required property 'result'.")
        row: dict[str, Any] = {}
        for prop, value in values.items():
            row.update(_convert(et, prop, value))
        if "phenomenon_time_start" not in row:
            row["phenomenon_time_start"], row["phenomenon_time_end"] = utcnow(), None
        for nav_name, attr in (("Datastream", "datastream_id"), ("MultiDatastream", "multi_datastream_id")):
            if nav_name in navs and attr not in fixed:
                target = ENTITIES[et.navigation[nav_name].target]
                row[attr] = self.link_or_create(target, navs[nav_name], f"{where}.{nav_name}")
        row.update(fixed)
        ds, mds = row.get("datastream_id"), row.get("multi_datastream_id")
        if (ds is None) == (mds is None):
            raise BadRequest(f"{where} needs exactly one of Datastream or MultiDatastream, "
                             "like {\"Datastream\": {\"@iot.id\": 1}}.")
        kind, stream_id = ("Datastreams", ds) if ds is not None else ("MultiDatastreams", mds)
        stream, arity = self._stream(kind, stream_id)
        if stream is None:
            raise BadRequest(f"{where} is for {kind[:-1]} {stream_id}, which does not exist.")
        if kind == "MultiDatastreams":
            result = row.get("result")
            if not isinstance(result, list) or len(result) != arity:
                raise BadRequest(f"'{where}.result' must be an array of {arity} values, one per ObservedProperty "
                                 f"of MultiDatastream {stream_id}; got {json.dumps(result)[:80]}.")
        else:
            _check_result(stream.observation_type, row.get("result"), f"{where}.result")
        row["result_number"] = _number(row.get("result"))
        if "FeatureOfInterest" in navs and "feature_of_interest_id" not in fixed:
            row["feature_of_interest_id"] = self.link_or_create(ENTITIES["FeaturesOfInterest"],
                                                                navs["FeatureOfInterest"], f"{where}.FeatureOfInterest")
        if row.get("feature_of_interest_id") is None:
            row["feature_of_interest_id"] = self.feature_for_thing(stream.thing_id, where)
        for key in ("result_time", "result_quality", "valid_time_start", "valid_time_end",
                    "phenomenon_time_end", "datastream_id", "multi_datastream_id"):
            row.setdefault(key, None)
        if row.get("parameters") is None:
            row["parameters"] = {}
        return row

    def feature_for_thing(self, thing_id: int, where: str) -> int:
        """The FeatureOfInterest generated from the Thing's Location (made once per Location)."""
        if thing_id in self._foi_of_thing:
            return self._foi_of_thing[thing_id]
        location_id = self.session.scalar(select(func.min(ThingLocation.location_id))
                                          .where(ThingLocation.thing_id == thing_id))
        if location_id is None:
            raise BadRequest(f"{where} has no FeatureOfInterest and its Thing {thing_id} has no Location to "
                             "generate one from: give a FeatureOfInterest.")
        if location_id in self._foi_of_location:
            return self._foi_of_location[location_id]
        foi_id = self.session.scalar(select(func.min(FeatureOfInterest.id))
                                     .where(FeatureOfInterest.source_location_id == location_id))
        if foi_id is None:
            location = self.session.get(Location, location_id)
            assert location is not None
            foi = FeatureOfInterest(name=location.name, description=location.description or "",
                                    encoding_type=location.encoding_type, feature=location.location,
                                    properties=location.properties or {}, source_location_id=location_id)
            self.session.add(foi)
            self.session.flush()
            foi_id = foi.id
            _announce(self.session, foi, self.base_url, "create")
        self._foi_of_location[location_id] = self._foi_of_thing[thing_id] = int(foi_id)
        return int(foi_id)

    def _create_observation(self, values: dict[str, Any], navs: dict[str, Any], fixed: dict[str, Any],
                            where: str) -> int:
        row = self._observation_row(values, navs, fixed, where)
        [new_id] = self.insert_observations([row], announce=False)
        obj = self.session.get(Observation, new_id)
        _announce(self.session, obj, self.base_url, "create")
        return new_id

    def insert_observations(self, rows: list[dict[str, Any]], announce: bool = True) -> list[int]:
        """Insert validated Observation rows with one executemany; update spans and ``sta_latest``."""
        if not rows:
            return []
        for hook in BEFORE_INSERT:  # e.g. quality control on ingest (sensors/qc.py)
            hook(self.session, rows)
        ids = _insert_rows(self.session, rows)
        self._after_insert(rows)
        for after in AFTER_INSERT:  # e.g. calibrated Datastreams (sensors/calibration)
            after(self, rows)
        if announce and _has_subscribers():
            for row in rows:
                _queue(self.session, entity_set="Observations", id=row["id"], op="create",
                       entity=observation_json(row, self.base_url), links=_row_links(row))
        return ids

    def _after_insert(self, rows: list[dict[str, Any]]) -> None:
        by_stream: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for row in rows:
            stream_id = row.get("datastream_id")
            key = (("Datastreams", stream_id) if stream_id is not None
                   else ("MultiDatastreams", row["multi_datastream_id"]))
            group = by_stream.get(key)
            if group is None:
                by_stream[key] = [row]
            else:
                group.append(row)
        if len(by_stream) > 1:  # load the streams with one query (each a get() below otherwise)
            for kind, model in (("Datastreams", Datastream), ("MultiDatastreams", MultiDatastream)):
                ids = sorted(i for k, i in by_stream if k == kind)
                if len(ids) > 1:
                    list(self.session.scalars(select(model).where(model.id.in_(ids))))
        newest_of: dict[int, dict[str, Any]] = {}
        for (kind, stream_id), group in by_stream.items():
            starts = list(map(_START, group))
            first, last = min(starts), max(starts)
            ends = [end for end in map(_END, group) if end is not None]
            results = [r.get("result_time") for r in group if r.get("result_time") is not None]
            model = Datastream if kind == "Datastreams" else MultiDatastream
            stream = self.session.get(model, stream_id)
            assert stream is not None
            _widen(stream, "phenomenon_time", first, max(last, max(ends)) if ends else last)
            if results:
                _widen(stream, "result_time", min(results), max(results))
            if kind == "Datastreams":  # the newest: latest phenomenonTime start, then the highest id
                newest_of[stream_id] = max((r for r in group if r["phenomenon_time_start"] == last), key=_ID)
        if len(newest_of) == 1:
            [(stream_id, newest)] = newest_of.items()
            upsert_latest(self.session, stream_id, newest)
        elif newest_of:
            _upsert_latest_many(self.session, newest_of)
        self.session.flush()

    # -- update --

    def update(self, et: EntityType, entity_id: int, payload: Any, replace: bool = False) -> tuple[Any, list[str]]:
        """PATCH (``replace=False``) or PUT; returns the entity and the names of changed properties."""
        obj = self.session.get(et.model, entity_id)
        if obj is None:
            raise NotFound(f"There is no {et.singular} with id {entity_id}.")
        where = f"{et.singular} {entity_id}"
        values, navs = _split(et, payload, where)
        if replace:
            missing = [p for p in REQUIRED[et.name] if p not in values]
            if missing:
                raise BadRequest(f"PUT replaces the whole {et.singular}: {', '.join(repr(m) for m in missing)} "
                                 "missing. Use PATCH to change only some properties.")
            for prop in list(et.properties) + list(et.intervals):
                if prop not in values and prop not in COMPUTED.get(et.name, ()) and prop not in REQUIRED[et.name]:
                    if prop == "phenomenonTime" or (et.name == "MultiDatastreams" and prop == "observationType"):
                        continue
                    values[prop] = {} if prop in _OBJECTS else "" if prop == "description" else None
        attrs: dict[str, Any] = {}
        for prop, value in values.items():
            if value is None and prop in REQUIRED[et.name]:
                raise BadRequest(f"'{et.singular}.{prop}' is required and cannot be null.")
            if value is None and prop in _STRINGS:
                attrs[et.properties[prop]] = "" if prop == "description" else None
                continue
            if value is None and prop in ("unitOfMeasurement", "unitOfMeasurements", "multiObservationDataTypes"):
                raise BadRequest(f"'{et.singular}.{prop}' cannot be null.")
            attrs.update(_convert(et, prop, value))
        if et.name == "MultiDatastreams":
            if attrs.get("observation_type", COMPLEX) != COMPLEX:
                raise BadRequest(f"{where}.observationType must be {COMPLEX}.")
            n = self.session.scalar(select(func.count()).select_from(MultiDatastreamObservedProperty)
                                    .where(MultiDatastreamObservedProperty.multi_datastream_id == entity_id))
            for attr in ("unit_of_measurements", "multi_observation_data_types"):
                if attr in attrs and len(attrs[attr]) != n:
                    raise BadRequest(f"{where} has {n} ObservedProperties: {attr} must have {n} entries.")
        old_stream = None
        if et.name == "Observations":
            old_stream = (obj.datastream_id, obj.multi_datastream_id)
        changed: list[str] = []
        for prop in values:
            attrs_of = ([et.properties[prop]] if prop in et.properties else list(et.intervals[prop]))
            if any(attr in attrs and getattr(obj, attr) != attrs[attr] for attr in attrs_of):
                changed.append(prop)
        for attr, value in attrs.items():
            setattr(obj, attr, value)
        for nav_name, nav in et.navigation.items():
            if nav_name not in navs:
                continue
            here = f"{where}.{nav_name}"
            if nav.kind == "to_one":
                if navs[nav_name] is None:
                    raise BadRequest(f"{here} cannot be removed; link another with {{\"@iot.id\": n}}.")
                new = self.link_or_create(ENTITIES[nav.target], navs[nav_name], here)
                if getattr(obj, nav.fk) != new:  # type: ignore[arg-type]
                    setattr(obj, nav.fk, new)  # type: ignore[arg-type]
                    changed.append(nav_name)
                continue
            items = navs[nav_name]
            if not isinstance(items, list):
                raise BadRequest(f"{here} must be an array of entities or {{\"@iot.id\": n}} links.")
            if et.name == "MultiDatastreams" and nav_name == "ObservedProperties":
                raise BadRequest(f"{here}: a MultiDatastream's ObservedProperties cannot change; create a new one.")
            if et.name == "Things" and nav_name == "Locations":
                self.session.execute(sql_delete(ThingLocation).where(ThingLocation.thing_id == entity_id))
                self._add_many(et, entity_id, nav_name, nav, items, here)
                self.moved.add(entity_id)
            else:
                self._add_many(et, entity_id, nav_name, nav, items, here)
            changed.append(nav_name)
        if et.name == "Locations" and "Things" in navs:
            self.moved.update(self._ids_linked(navs["Things"]))
        if et.name == "Observations":
            self._after_observation_update(obj, old_stream, where, refresh=bool(
                {"phenomenonTime", "resultTime", "result", "Datastream", "MultiDatastream"} & set(changed)))
        self.session.flush()
        _announce(self.session, obj, self.base_url, "update", changed)
        return obj, changed

    def _after_observation_update(self, obj: Observation, old_stream: Any, where: str, refresh: bool) -> None:
        if obj.datastream_id is not None and obj.multi_datastream_id is not None:
            raise BadRequest(f"{where} cannot belong to both a Datastream and a MultiDatastream.")
        if obj.phenomenon_time_start is None:
            raise BadRequest(f"'{where}.phenomenonTime' cannot be null.")
        kind, stream_id = (("Datastreams", obj.datastream_id) if obj.datastream_id is not None
                           else ("MultiDatastreams", obj.multi_datastream_id))
        stream, arity = self._stream(kind, stream_id)
        if kind == "MultiDatastreams":
            if not isinstance(obj.result, list) or len(obj.result) != arity:
                raise BadRequest(f"'{where}.result' must be an array of {arity} values.")
        else:
            _check_result(stream.observation_type, obj.result, f"{where}.result")
        obj.result_number = _number(obj.result)
        self.session.flush()
        if not refresh:
            return
        for ds in {old_stream[0], obj.datastream_id} - {None}:
            refresh_stream(self.session, Datastream, ds)
        for mds in {old_stream[1], obj.multi_datastream_id} - {None}:
            refresh_stream(self.session, MultiDatastream, mds)

    # -- delete --

    def delete(self, et: EntityType, entity_id: int) -> None:
        """Delete an entity and, as the standard says, what cannot exist without it."""
        if not _exists(self.session, et, entity_id):
            raise NotFound(f"There is no {et.singular} with id {entity_id}.")
        self.session.flush()
        datastreams: set[int] = set()
        multis: set[int] = set()
        if et.name == "Observations":
            row = self.session.execute(select(Observation.datastream_id, Observation.multi_datastream_id)
                                       .where(Observation.id == entity_id)).one()
            datastreams |= {row[0]} - {None}
            multis |= {row[1]} - {None}
        elif et.name == "FeaturesOfInterest":
            for ds, mds in self.session.execute(select(Observation.datastream_id, Observation.multi_datastream_id)
                                                .where(Observation.feature_of_interest_id == entity_id).distinct()):
                datastreams |= {ds} - {None}
                multis |= {mds} - {None}
        elif et.name == "ObservedProperties":
            linked = list(self.session.scalars(select(MultiDatastreamObservedProperty.multi_datastream_id)
                                               .where(MultiDatastreamObservedProperty.observed_property_id == entity_id)))
            if linked:
                self.session.execute(sql_delete(MultiDatastream).where(MultiDatastream.id.in_(linked)))
        self.session.execute(sql_delete(et.model).where(et.model.id == entity_id))
        for ds in datastreams:
            refresh_stream(self.session, Datastream, ds)
        for mds in multis:
            refresh_stream(self.session, MultiDatastream, mds)
        self.session.expire_all()
        _queue(self.session, entity_set=et.name, id=entity_id, op="delete")


_START = itemgetter("phenomenon_time_start")
_END = itemgetter("phenomenon_time_end")
_ID = itemgetter("id")


def _reverse(et: EntityType, nav: Navigation) -> Navigation | None:
    """The link-table navigation from ``nav``'s target back to ``et``."""
    target = ENTITIES[nav.target]
    for back in target.navigation.values():
        if back.target == et.name and back.link is nav.link and back.link is not None:
            return back
    return None


def _insert_rows(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert Observation rows and return their ids, in order.

    PostgreSQL: the ids are taken from the table's sequence first, then the rows go in with one
    ``COPY`` (from ``_COPY_FROM`` rows; an executemany INSERT below that).
    SQLite: one executemany through the driver with the values already in their stored form; a
    transaction that has written holds the only write lock, and rowids of new rows are max + 1, so
    the ids are the last ``len(rows)`` up to the maximum read after the insert.
    """
    session.flush()
    connection = session.connection()
    table = Observation.__table__
    n = len(rows)
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.driver_connection.cursor()
        try:  # through the driver: one round trip, no per-row result objects
            cursor.execute("SELECT nextval(pg_get_serial_sequence('sta_observation', 'id')) "
                           "FROM generate_series(1, %s)", (n,))
            ids = [int(i) for (i,) in cursor.fetchall()]
        finally:
            cursor.close()
        for row, new_id in zip(rows, ids):
            row["id"] = new_id
        if n >= _COPY_FROM:
            _copy_rows(connection, rows)
        else:
            connection.execute(insert(table), rows)
        return ids
    _sqlite_insert(connection, rows)
    last = int(connection.execute(select(func.max(table.c.id))).scalar_one())
    ids = list(range(last - n + 1, last + 1))
    for row, new_id in zip(rows, ids):
        row["id"] = new_id
    return ids


#: from this many rows on, PostgreSQL gets them with COPY (about 3x the rows/s of a pipelined executemany)
_COPY_FROM = 50
_JSON_COLUMNS = frozenset({"result", "result_quality", "parameters"})
_TIME_COLUMNS = frozenset({"phenomenon_time_start", "phenomenon_time_end", "result_time", "valid_time_start",
                           "valid_time_end"})


def _columns_of(rows: list[dict[str, Any]]) -> list[str]:
    keys = rows[0].keys()
    for row in rows:
        if row.keys() != keys:
            return sorted({key for r in rows for key in r})
    return list(keys)


def _json_text(value: Any, memo: dict[int, str]) -> str:
    """A JSON column's value as SQLAlchemy's JSON type stores it (a Python None as JSON null).

    Objects and arrays are memoised by identity for one call: the rows of a batch share their
    quality-control entries and empty ``parameters``.
    """
    kind = type(value)
    if kind is float:
        return repr(value) if math.isfinite(value) else json.dumps(value)
    if kind is int:
        return str(value)
    if value is None:
        return "null"
    if kind is dict or kind is list:
        key = id(value)
        done = memo.get(key)
        if done is None:
            done = memo[key] = json.dumps(value)
        return done
    return json.dumps(value)


def _copy_rows(connection: Any, rows: list[dict[str, Any]]) -> None:
    """COPY Observation rows (ids set) into sta_observation through psycopg, in the session's transaction.

    The rows are written as COPY text directly (no per-value adapter objects), a column at a time
    (one comprehension per column rather than a function call per cell), and sent in chunks of
    ``_COPY_CHUNK`` rows so that PostgreSQL parses and indexes one chunk while the next is built.
    Stores what the executemany INSERT stores: UTC timestamps, and JSON columns as JSON (a Python
    None as JSON null, as SQLAlchemy's JSON type does).
    """
    columns = _columns_of(rows)
    memo: dict[int, str] = {}
    # a column holding the same object in every row (None, the Datastream's id, a shared empty
    # ``parameters``) is formatted once and written as a constant tail of each line
    varying: list[tuple[str, list[Any]]] = []
    constant: list[str] = []
    for c in columns:
        values = [row.get(c) for row in rows]
        if len(set(map(id, values))) == 1:  # the same object throughout
            constant.append(c)
        else:
            varying.append((c, values))
    tail = "".join("\t" + _copy_column(c, [rows[0].get(c)], memo)[0] for c in constant) + "\n"
    if not varying:
        tail = tail[1:]
    cursor = connection.connection.driver_connection.cursor()
    try:
        with cursor.copy(f"COPY sta_observation ({', '.join([c for c, _ in varying] + constant)}) FROM STDIN") as copy:
            for at in range(0, len(rows), _COPY_CHUNK):
                cells = [_copy_column(c, values[at:at + _COPY_CHUNK], memo) for c, values in varying]
                copy.write(tail.join(map("\t".join, zip(*cells))) + tail if cells
                           else tail * len(rows[at:at + _COPY_CHUNK]))
    finally:
        cursor.close()


#: rows per write of a COPY: small enough that the server works while the next chunk is built
_COPY_CHUNK = 2_000
_INF = math.inf


def _copy_column(column: str, values: list[Any], memo: dict[int, str]) -> list[str]:
    """The COPY text cells of one column's values (``\\N`` for NULL, backslashes and controls escaped)."""
    if column in _TIME_COLUMNS:
        return [v.isoformat() if v is not None and v.tzinfo is not None
                else "\\N" if v is None else v.isoformat() + "+00:00" for v in values]
    if column in _JSON_COLUMNS:
        return [repr(v) if type(v) is float and -_INF < v < _INF else _copy_json(v, memo) for v in values]
    return [str(v) if type(v) is int else "\\N" if v is None else _copy_other(v) for v in values]


def _copy_json(value: Any, memo: dict[int, str]) -> str:
    """A JSON column's COPY cell; objects and arrays memoised by identity (rows share QC entries)."""
    kind = type(value)
    if kind is dict or kind is list:
        key = id(value)
        done = memo.get(key)
        if done is None:
            done = memo[key] = _copy_escape(json.dumps(value))
        return done
    return _copy_escape(_json_text(value, memo))


def _copy_other(value: Any) -> str:
    kind = type(value)
    if kind is float:
        return repr(value)
    if kind is bool:
        return "t" if value else "f"
    return _copy_escape(str(value))


def _copy_escape(out: str) -> str:
    if "\\" in out or "\t" in out or "\n" in out or "\r" in out:
        out = out.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return out


def _sqlite_insert(connection: Any, rows: list[dict[str, Any]]) -> None:
    """One executemany INSERT through the sqlite3 driver, the values as SQLAlchemy would store them.

    The values are converted a column at a time (one comprehension per column, not a call per cell).
    """
    columns = _columns_of(rows)
    memo: dict[int, str] = {}
    data: list[list[Any]] = []
    for column in columns:
        values = [row.get(column) for row in rows]
        if column in _JSON_COLUMNS:
            values = [repr(v) if type(v) is float and -_INF < v < _INF else _json_text(v, memo) for v in values]
        elif column in _TIME_COLUMNS:  # UTC from parse_time: its ISO text is the stored form (years 1000 on)
            values = [v.isoformat(" ", "microseconds")[:26] if v is not None and v.tzinfo is timezone.utc
                      and v.year >= 1000 else _sqlite_time(v) for v in values]
        data.append(values)
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.executemany(f"INSERT INTO sta_observation ({', '.join(columns)}) "
                           f"VALUES ({', '.join('?' for _ in columns)})", zip(*data))
    finally:
        cursor.close()


def _sqlite_time(value: datetime | None) -> str | None:
    """A timestamp as SQLAlchemy's SQLite DateTime stores it (UTC, no offset)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _widen(stream: Any, prefix: str, start: datetime, end: datetime) -> None:
    cur_start, cur_end = getattr(stream, f"{prefix}_start"), getattr(stream, f"{prefix}_end")
    if cur_start is None or start < cur_start:
        setattr(stream, f"{prefix}_start", start)
    cur_end = cur_end or cur_start
    if cur_end is None or end > cur_end:
        cur_end = end
    start_now = getattr(stream, f"{prefix}_start")
    setattr(stream, f"{prefix}_end", None if cur_end == start_now else cur_end)  # one instant: no interval


def upsert_latest(session: Session, datastream_id: int, row: dict[str, Any]) -> None:
    """Make ``row`` the Datastream's latest Observation unless a newer one is already there."""
    values = {"datastream_id": datastream_id, "observation_id": row["id"],
              "phenomenon_time_start": row["phenomenon_time_start"],
              "phenomenon_time_end": row.get("phenomenon_time_end"), "result": row.get("result")}
    dialect = session.get_bind().dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = make(Latest).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Latest.datastream_id],
        set_={k: stmt.excluded[k] for k in ("observation_id", "phenomenon_time_start", "phenomenon_time_end", "result")},
        where=stmt.excluded.phenomenon_time_start >= Latest.phenomenon_time_start,
    )
    session.execute(stmt)


def _upsert_latest_many(session: Session, newest_of: dict[int, dict[str, Any]]) -> None:
    """``upsert_latest`` for many Datastreams with one executemany (one row per Datastream)."""
    dialect = session.get_bind().dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = make(Latest)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Latest.datastream_id],
        set_={k: stmt.excluded[k] for k in ("observation_id", "phenomenon_time_start", "phenomenon_time_end", "result")},
        where=stmt.excluded.phenomenon_time_start >= Latest.phenomenon_time_start,
    )
    session.execute(stmt, [
        {"datastream_id": ds, "observation_id": row["id"], "phenomenon_time_start": row["phenomenon_time_start"],
         "phenomenon_time_end": row.get("phenomenon_time_end"), "result": row.get("result")}
        for ds, row in sorted(newest_of.items())])


def refresh_stream(session: Session, model: Any, stream_id: int) -> None:
    """Recompute a (Multi)Datastream's time spans, and a Datastream's ``sta_latest`` row, from its Observations."""
    session.flush()
    fk = Observation.datastream_id if model is Datastream else Observation.multi_datastream_id
    row = session.execute(select(func.min(Observation.phenomenon_time_start),
                                 func.max(func.coalesce(Observation.phenomenon_time_end, Observation.phenomenon_time_start)),
                                 func.min(Observation.result_time), func.max(Observation.result_time))
                          .where(fk == stream_id)).one()
    stream = session.get(model, stream_id)
    if stream is None:
        return
    for prefix, start, end in (("phenomenon_time", row[0], row[1]), ("result_time", row[2], row[3])):
        start, end = _aware(start), _aware(end)
        setattr(stream, f"{prefix}_start", start)
        setattr(stream, f"{prefix}_end", None if end == start else end)
    if model is Datastream:
        session.execute(sql_delete(Latest).where(Latest.datastream_id == stream_id))
        newest = session.execute(select(Observation.id, Observation.phenomenon_time_start, Observation.phenomenon_time_end,
                                        Observation.result)
                                 .where(Observation.datastream_id == stream_id)
                                 .order_by(Observation.phenomenon_time_start.desc(), Observation.id.desc()).limit(1)).first()
        if newest is not None:
            session.add(Latest(datastream_id=stream_id, observation_id=newest[0], phenomenon_time_start=newest[1],
                               phenomenon_time_end=newest[2], result=newest[3]))
    session.flush()


def _aware(value: Any) -> datetime | None:
    """Aggregates bypass the column type on SQLite (text): parse them back to aware datetimes."""
    if value is None or isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if isinstance(value, datetime) and value.tzinfo is None else value
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _row_links(row: dict[str, Any]) -> dict[str, int]:
    links = {"FeaturesOfInterest": row["feature_of_interest_id"]}
    if row.get("datastream_id") is not None:
        links["Datastreams"] = row["datastream_id"]
    if row.get("multi_datastream_id") is not None:
        links["MultiDatastreams"] = row["multi_datastream_id"]
    return links


def observation_json(row: dict[str, Any], base_url: str) -> dict[str, Any]:
    """An inserted Observation row as its STA JSON (for events of bulk inserts, without a query)."""
    link = self_link(base_url, "Observations", row["id"])
    out: dict[str, Any] = {
        "@iot.id": row["id"], "@iot.selfLink": link,
        "phenomenonTime": format_interval(row["phenomenon_time_start"], row.get("phenomenon_time_end")),
        "resultTime": format_time(row.get("result_time")), "result": row.get("result"),
    }
    if row.get("result_quality") is not None:
        out["resultQuality"] = row["result_quality"]
    if row.get("valid_time_start") is not None:
        out["validTime"] = format_interval(row["valid_time_start"], row.get("valid_time_end"))
    if row.get("parameters") is not None:
        out["parameters"] = row["parameters"]
    stream = "Datastream" if row.get("datastream_id") is not None else "MultiDatastream"
    out[f"{stream}@iot.navigationLink"] = f"{link}/{stream}"
    out["FeatureOfInterest@iot.navigationLink"] = f"{link}/FeatureOfInterest"
    return out


# --- the public functions -------------------------------------------------------------------------

def create_from_path(session: Session, path: str, payload: dict, base_url: str) -> dict:
    """Create the entity posted to ``path`` (relative to /sta/v1.1); returns its JSON as GET shows it."""
    et, entity_id, parent = resolve(session, path)
    if entity_id is not None:
        raise BadRequest(f"POST to an entity set, not to one entity: use {et.name}, not {path}.")
    writer = Writer(session, base_url)
    fixed: dict[str, Any] = {}
    after: list[tuple[Navigation, int]] = []
    if parent is not None:
        parent_et, parent_id, nav = parent
        if nav.kind == "to_one":
            raise BadRequest(f"{path} is a single entity: POST new entities to an entity set.")
        if nav.remote:
            fixed[nav.remote] = parent_id
        else:
            back = _reverse(parent_et, nav)
            if back is None or (parent_et.name == "ObservedProperties" and nav.target == "MultiDatastreams"):
                raise BadRequest(f"Cannot create a {et.singular} through {path}.")
            after.append((back, parent_id))
    new_id = writer.create(et, payload, et.singular, fixed=fixed, after=after)
    writer.finish()
    obj = session.get(et.model, new_id)
    entity = to_json(session, obj, base_url)
    flush_events(session)
    return entity


def update_at_path(session: Session, path: str, payload: Any, base_url: str, replace: bool = False) -> dict:
    """PATCH (or PUT, ``replace=True``) the entity at ``path``; returns its JSON."""
    et, entity_id, _ = resolve(session, path)
    if entity_id is None:
        raise BadRequest(f"{path} is an entity set: PATCH or PUT one entity, like {et.name}(1).")
    writer = Writer(session, base_url)
    obj, _changed = writer.update(et, entity_id, payload, replace=replace)
    writer.finish()
    entity = to_json(session, obj, base_url)
    flush_events(session)
    return entity


def current_document(session: Session, et: EntityType, obj: Any) -> dict[str, Any]:
    """The entity's properties as a JSON document (what a JSON-Patch applies to)."""
    doc: dict[str, Any] = {}
    for prop, attr in et.properties.items():
        value = getattr(obj, attr)
        doc[prop] = format_time(value) if isinstance(value, datetime) else value
    for prop, (start, end) in et.intervals.items():
        if prop in COMPUTED.get(et.name, ()):
            continue
        doc[prop] = format_interval(getattr(obj, start), getattr(obj, end))
    return json.loads(json.dumps(doc, default=str))


def json_patch_at_path(session: Session, path: str, operations: Any, base_url: str) -> dict:
    """Apply an RFC 6902 JSON-Patch to the entity at ``path``; returns its JSON."""
    et, entity_id, _ = resolve(session, path)
    if entity_id is None:
        raise BadRequest(f"{path} is an entity set: a JSON-Patch applies to one entity, like {et.name}(1).")
    obj = session.get(et.model, entity_id)
    assert obj is not None
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise BadRequest("A JSON-Patch body must be an array of operations, like "
                         "[{\"op\": \"replace\", \"path\": \"/name\", \"value\": \"...\"}].")
    before = current_document(session, et, obj)
    try:
        after = jsonpatch.JsonPatch(operations).apply(before)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError, ValueError) as exc:
        raise BadRequest(f"The JSON-Patch cannot be applied: {exc}.") from None
    if not isinstance(after, dict):
        raise BadRequest("The JSON-Patch must leave the entity a JSON object.")
    changes = {k: v for k, v in after.items() if k not in before or before[k] != v}
    for key in before:
        if key not in after:
            changes[key] = None
    writer = Writer(session, base_url)
    obj, _changed = writer.update(et, entity_id, changes)
    writer.finish()
    entity = to_json(session, obj, base_url)
    flush_events(session)
    return entity


def delete_at_path(session: Session, path: str) -> None:
    """Delete the entity at ``path`` with the standard's cascades."""
    et, entity_id, _ = resolve(session, path)
    if entity_id is None:
        raise BadRequest(f"{path} is an entity set: DELETE one entity, like {et.name}(1).")
    Writer(session, "").delete(et, entity_id)
    flush_events(session)


# --- links through $ref -----------------------------------------------------------------------------

def _ref_target(body: Any, target: EntityType) -> int:
    """The id in a ``$ref`` body: ``{"@iot.id": n}`` or ``{"@iot.selfLink": ".../Sets(n)"}``."""
    if not isinstance(body, dict):
        raise BadRequest("A $ref body is {\"@iot.id\": n} or {\"@iot.selfLink\": \"...\"}.")
    if "@iot.id" in body:
        link = _link_id({"@iot.id": body["@iot.id"]})
        assert link is not None
        return link
    ref = body.get("@iot.selfLink") or body.get("@odata.id")
    m = re.search(r"/?([A-Za-z]+)\((\d+)\)$", ref or "") if isinstance(ref, str) else None
    if m is None:
        raise BadRequest("A $ref body is {\"@iot.id\": n} or {\"@iot.selfLink\": \"...\"}.")
    if m.group(1) != target.name:
        raise BadRequest(f"The link must point to one of {target.name}, not {m.group(1)}.")
    return int(m.group(2))


def ref_at_path(session: Session, method: str, path: str, body: Any, base_url: str) -> None:
    """Add (POST, to-many), set (PUT, to-one) or remove (DELETE) a link: ``Things(1)/Locations/$ref``."""
    if not path.rstrip("/").endswith("/$ref"):
        raise BadRequest(f"{path} is not a $ref path.")
    inner = path.rstrip("/")[: -len("/$ref")]
    et, entity_id, parent = resolve(session, inner)
    if parent is None:
        raise BadRequest("A $ref write needs a navigation path, like Things(1)/Locations/$ref.")
    parent_et, parent_id, nav = parent
    nav_name = next(name for name, n in parent_et.navigation.items() if n is nav)
    writer = Writer(session, base_url)
    where = f"{parent_et.singular} {parent_id}.{nav_name}"
    if parent_et.name == "MultiDatastreams" and nav_name == "ObservedProperties" or \
            parent_et.name == "ObservedProperties" and nav_name == "MultiDatastreams":
        raise BadRequest(f"{where}: a MultiDatastream's ObservedProperties cannot change.")
    method = method.upper()
    if method == "DELETE":
        if entity_id is None or nav.kind == "to_one" or nav.link is None:
            raise BadRequest(f"{where}: only links of many-to-many relations can be removed, as in "
                             "Things(1)/Locations(2)/$ref; link required ones elsewhere instead.")
        session.execute(sql_delete(nav.link).where(getattr(nav.link, nav.link_self) == parent_id,  # type: ignore[arg-type]
                                                   getattr(nav.link, nav.link_other) == entity_id))  # type: ignore[arg-type]
    else:
        target_id = _ref_target(body, et)
        if not _exists(session, et, target_id):
            raise BadRequest(f"{where}: there is no {et.singular} with id {target_id}.")
        if method == "PUT":
            if nav.kind != "to_one":
                raise BadRequest(f"{where} is a collection: add to it with POST {inner}/$ref.")
            session.execute(sql_update(parent_et.model).where(parent_et.model.id == parent_id)
                            .values({nav.fk: target_id}))  # type: ignore[dict-item]
        elif method == "POST":
            if nav.kind == "to_one" or entity_id is not None:
                raise BadRequest(f"POST a $ref to a collection, like {parent_et.name}({parent_id})/{nav_name}/$ref.")
            writer._add_many(parent_et, parent_id, nav_name, nav, [{"@iot.id": target_id}], where)
        else:
            raise BadRequest(f"{method} is not a $ref write: use POST, PUT or DELETE.")
    if parent_et.name == "Things" and nav_name == "Locations":
        writer.moved.add(parent_id)
    if parent_et.name == "Locations" and nav_name == "Things":
        writer.moved.add(entity_id if entity_id is not None else _ref_target(body, et))
    session.expire_all()
    writer.finish()
    obj = session.get(parent_et.model, parent_id)
    _announce(session, obj, base_url, "update", [nav_name])
    flush_events(session)


# --- dataArray: CreateObservations -----------------------------------------------------------------

DATA_ARRAY_COMPONENTS = {"id", "phenomenonTime", "result", "resultTime", "resultQuality", "validTime", "parameters",
                         "FeatureOfInterest/id"}


def create_observations(session: Session, body: Any, base_url: str) -> list[str]:
    """The dataArray ``CreateObservations`` action: one selfLink per row, or ``"error"`` for a refused row.

    A row that fails validation is reported as ``"error"`` and the others are stored (as the
    standard's example shows); a malformed envelope (no Datastream, unknown component) is a 400.
    """
    if not isinstance(body, list):
        raise BadRequest("CreateObservations takes a JSON array of {\"Datastream\": {\"@iot.id\": n}, "
                         "\"components\": [...], \"dataArray\": [[...], ...]} objects.")
    writer = Writer(session, base_url)
    streams: dict[str, set[int]] = {"Datastreams": set(), "MultiDatastreams": set()}
    for group in body:  # every (Multi)Datastream of the request and its generated FeatureOfInterest: a few queries
        if isinstance(group, dict) and ("Datastream" in group) != ("MultiDatastream" in group):
            nav = "Datastream" if "Datastream" in group else "MultiDatastream"
            try:
                stream_id = _link_id(group[nav])
            except BadRequest:  # answered in the group's turn below, so the first bad group is the one named
                continue
            if stream_id is not None:
                streams[f"{nav}s"].add(stream_id)
    if len(streams["Datastreams"]) + len(streams["MultiDatastreams"]) > 1:
        _prefetch(writer, streams, set())
    rows: list[dict[str, Any] | None] = []
    for index, group in enumerate(body):
        where = f"CreateObservations[{index}]"
        if not isinstance(group, dict):
            raise BadRequest(f"{where} must be a JSON object.")
        unknown = set(group) - {"Datastream", "MultiDatastream", "components", "dataArray", "dataArray@iot.count"}
        if unknown:
            raise BadRequest(f"{where} has unknown member(s) {', '.join(sorted(unknown))}.")
        components = group.get("components")
        data = group.get("dataArray")
        if not isinstance(components, list) or not components or not all(isinstance(c, str) for c in components):
            raise BadRequest(f"{where}.components must be a non-empty array of names, like [\"phenomenonTime\", \"result\"].")
        bad = [c for c in components if c not in DATA_ARRAY_COMPONENTS]
        if bad:
            raise BadRequest(f"{where}.components has unknown component(s) {', '.join(bad)}; allowed: "
                             f"{', '.join(sorted(DATA_ARRAY_COMPONENTS))}.")
        if "result" not in components:
            raise BadRequest(f"{where}.components must include \"result\".")
        if not isinstance(data, list):
            raise BadRequest(f"{where}.dataArray must be an array of rows.")
        stream_nav = "Datastream" if "Datastream" in group else "MultiDatastream" if "MultiDatastream" in group else None
        if stream_nav is None or ("Datastream" in group and "MultiDatastream" in group):
            raise BadRequest(f"{where} needs one of \"Datastream\" or \"MultiDatastream\": {{\"@iot.id\": n}}.")
        stream_id = _link_id(group[stream_nav])
        if stream_id is None:
            raise BadRequest(f"{where}.{stream_nav} must be a link, {{\"@iot.id\": n}}.")
        kind = "Datastreams" if stream_nav == "Datastream" else "MultiDatastreams"
        if writer._stream(kind, stream_id)[0] is None:
            raise BadRequest(f"{where} is for {stream_nav} {stream_id}, which does not exist.")
        fast = _FastRows(writer, stream_id, components) if kind == "Datastreams" else None
        for r, values in enumerate(data):
            if not isinstance(values, list) or len(values) != len(components):
                rows.append(None)
                continue
            row = fast.row(values) if fast is not None and fast.usable else None
            if row is None:  # anything the fast path does not handle goes through the general checks
                row = _data_array_row(writer, stream_nav, stream_id, components, values, f"{where}.dataArray[{r}]")
            rows.append(row)
    good = [row for row in rows if row is not None]
    writer.insert_observations(good)  # every group of the request: one INSERT (one COPY on PostgreSQL)
    prefix = self_link(base_url, "Observations", 0)[:-2]
    out = [f"{prefix}{row['id']})" if row is not None else "error" for row in rows]
    flush_events(session)
    return out


def _data_array_row(writer: Writer, stream_nav: str, stream_id: int, components: list[str], values: list[Any],
                    here: str) -> dict[str, Any] | None:
    """One dataArray row through the general Observation checks: its row, or None if refused."""
    item = dict(zip(components, values))
    item.pop("id", None)
    navs: dict[str, Any] = {stream_nav: {"@iot.id": stream_id}}
    foi = item.pop("FeatureOfInterest/id", None)
    if foi is not None:
        navs["FeatureOfInterest"] = {"@iot.id": foi}
    try:  # a refused row writes nothing: the FeatureOfInterest is generated after every check
        return writer._observation_row(item, navs, {}, here)
    except (BadRequest, NotFound):
        return None


_FAST_COMPONENTS = frozenset({"id", "phenomenonTime", "result", "resultTime"})


class _FastRows:
    """dataArray rows of one Datastream with only ``phenomenonTime``/``result``/``resultTime`` (and an
    ignored ``id``): the same checks as ``Writer._observation_row`` for the common shapes (an instant
    ending in ``Z`` or with an offset, a numeric result for OM_Measurement), done inline.

    ``row(values)`` returns the row, or None when the value needs the general path (an interval, a
    time without offset, a result to check against another observation type, anything refused), so
    every answer and error stays what the general path gives.
    """

    def __init__(self, writer: Writer, stream_id: int, components: list[str]) -> None:
        self.usable = set(components) <= _FAST_COMPONENTS and len(set(components)) == len(components)
        if not self.usable:
            return
        stream, _ = writer._stream("Datastreams", stream_id)
        self.measurement = (stream.observation_type or "").rsplit("/", 1)[-1] == "OM_Measurement"
        self.usable = self.measurement
        if not self.usable:
            return
        self.writer, self.stream_id, self.thing_id = writer, stream_id, stream.thing_id
        self.at_time = components.index("phenomenonTime") if "phenomenonTime" in components else None
        self.at_result = components.index("result")
        self.at_result_time = components.index("resultTime") if "resultTime" in components else None
        self.foi: int | None = None
        self.empty: dict[str, Any] = {}

    def row(self, values: list[Any]) -> dict[str, Any] | None:
        result = values[self.at_result]
        kind = type(result)
        if kind is float:
            if not math.isfinite(result):
                return None
            number = result
        elif kind is int:
            number = float(result)
        else:
            return None
        if self.at_time is None:
            start = utcnow()
        else:
            start = _fast_instant(values[self.at_time])
            if start is None:
                return None
        result_time = None
        if self.at_result_time is not None:
            raw = values[self.at_result_time]
            if raw is not None:
                result_time = _fast_instant(raw)
                if result_time is None:
                    return None
        if self.foi is None:
            try:
                self.foi = self.writer.feature_for_thing(self.thing_id, "")
            except BadRequest:
                self.usable = False
                return None
        return {"phenomenon_time_start": start, "phenomenon_time_end": None, "result": result,
                "result_time": result_time, "datastream_id": self.stream_id, "result_number": number,
                "feature_of_interest_id": self.foi, "result_quality": None, "valid_time_start": None,
                "valid_time_end": None, "multi_datastream_id": None, "parameters": self.empty}


def _fast_instant(value: Any) -> datetime | None:
    """``parse_time`` for a string with ``Z`` or an offset and no interval; None for anything else."""
    if type(value) is not str or "/" in value or not value or value[-1:].isspace() or value[:1].isspace():
        return None
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value[-1] in "Zz" else value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed if parsed.utcoffset() == _ZERO else parsed.astimezone(timezone.utc)


_ZERO = timedelta(0)


def bulk_insert(session: Session, datastream_id: int, rows: Iterable[tuple[datetime, Any]], base_url: str = "",
                feature_of_interest_id: int | None = None) -> int:
    """Insert many ``(phenomenon time, result)`` Observations of one Datastream fast; returns how many.

    For loaders (the demo, benchmarks): no per-row validation (the caller vouches for the rows), one
    executemany INSERT per 10,000 rows, spans and ``sta_latest`` updated once.
    """
    writer = Writer(session, base_url)
    stream, _ = writer._stream("Datastreams", datastream_id)
    if stream is None:
        raise NotFound(f"There is no Datastream with id {datastream_id}.")
    foi = feature_of_interest_id or writer.feature_for_thing(stream.thing_id, f"Datastream {datastream_id}")
    batch: list[dict[str, Any]] = []
    count = 0
    for when, result in rows:
        batch.append({"phenomenon_time_start": when, "phenomenon_time_end": None, "result_time": None,
                      "result": result, "result_number": _number(result), "result_quality": None,
                      "valid_time_start": None, "valid_time_end": None, "parameters": {},
                      "datastream_id": datastream_id, "multi_datastream_id": None, "feature_of_interest_id": foi})
        if len(batch) >= 10_000:
            count += len(writer.insert_observations(batch))
            batch = []
    count += len(writer.insert_observations(batch))
    flush_events(session)
    return count


# --- many single creates at once (the MQTT bridge) ------------------------------------------------

#: the entity sets an Observation can be created through, and the foreign key the path fixes
_OBSERVATION_PARENTS = {"Datastreams": "datastream_id", "MultiDatastreams": "multi_datastream_id",
                        "FeaturesOfInterest": "feature_of_interest_id"}


def _plain_observation(segments: list[tuple[str, int | None]], payload: Any) -> bool:
    """Whether a create is one Observation whose related entities are all links (the fast path)."""
    if segments != [("Observations", None)] and not (
            len(segments) == 2 and segments[0][0] in _OBSERVATION_PARENTS and segments[0][1] is not None
            and segments[1] == ("Observations", None)):
        return False
    if not isinstance(payload, dict):
        return True  # _split refuses it with the usual message
    for nav in ("Datastream", "MultiDatastream", "FeatureOfInterest"):
        if nav in payload:
            try:
                if _link_id(payload[nav]) is None:
                    return False  # a new entity nested in the Observation: the general path
            except BadRequest:
                return True  # refused with the usual message on the fast path
    return True


def _ids_in(payload: Any, nav: str) -> int | None:
    if not isinstance(payload, dict) or nav not in payload:
        return None
    try:
        return _link_id(payload[nav])
    except BadRequest:
        return None


def _prefetch(writer: Writer, stream_ids: dict[str, set[int]], foi_ids: set[int]) -> set[tuple[str, int]]:
    """Load the batch's (Multi)Datastreams, FeaturesOfInterest and generated FeaturesOfInterest at once.

    Fills the writer's caches and returns the ``(entity set, id)`` pairs that exist.
    """
    session = writer.session
    existing: set[tuple[str, int]] = set()
    thing_ids: set[int] = set()
    for kind, model in (("Datastreams", Datastream), ("MultiDatastreams", MultiDatastream)):
        ids = stream_ids.get(kind) or set()
        if not ids:
            continue
        rows = {int(r.id): r for r in session.execute(
            select(model.id, model.thing_id, model.observation_type).where(model.id.in_(sorted(ids))))}
        arities: dict[int, int] = {}
        if kind == "MultiDatastreams" and rows:
            link = MultiDatastreamObservedProperty
            arities = {int(m): int(n) for m, n in session.execute(
                select(link.multi_datastream_id, func.count()).where(link.multi_datastream_id.in_(sorted(rows)))
                .group_by(link.multi_datastream_id))}
        for stream_id in ids:
            row = rows.get(stream_id)
            writer._stream_cache[(kind, stream_id)] = (row, arities.get(stream_id, 0) if row is not None
                                                       and kind == "MultiDatastreams" else None)
            if row is not None:
                existing.add((kind, stream_id))
                writer._known.add((kind, stream_id))
                thing_ids.add(int(row.thing_id))
    if foi_ids:
        for foi_id in session.scalars(select(FeatureOfInterest.id).where(FeatureOfInterest.id.in_(sorted(foi_ids)))):
            existing.add(("FeaturesOfInterest", int(foi_id)))
            writer._known.add(("FeaturesOfInterest", int(foi_id)))
    if thing_ids:
        location_of = {int(t): int(loc) for t, loc in session.execute(
            select(ThingLocation.thing_id, func.min(ThingLocation.location_id))
            .where(ThingLocation.thing_id.in_(sorted(thing_ids))).group_by(ThingLocation.thing_id))}
        if location_of:
            foi_of = {int(loc): int(f) for loc, f in session.execute(
                select(FeatureOfInterest.source_location_id, func.min(FeatureOfInterest.id))
                .where(FeatureOfInterest.source_location_id.in_(sorted(set(location_of.values()))))
                .group_by(FeatureOfInterest.source_location_id))}
            for thing_id, location_id in location_of.items():
                if location_id in foi_of:  # the others are generated (once per Location) on first use
                    writer._foi_of_location[location_id] = writer._foi_of_thing[thing_id] = foi_of[location_id]
    return existing


#: the properties of a message the inline check handles (any other goes through ``_split``)
_INLINE_PROPERTIES = frozenset({"phenomenonTime", "result", "resultTime"})


def _inline_row(writer: Writer, inline: dict[tuple[int, tuple[str, ...]], _FastRows],
                segments: list[tuple[str, int | None]], payload: Any,
                existing: set[tuple[str, int]]) -> dict[str, Any] | None:
    """The row of a plain Observation for a known Datastream, checked inline; None for the general path.

    Covers ``Datastreams(<id>)/Observations`` with only phenomenonTime/result/resultTime, and
    ``Observations`` with those plus a ``Datastream`` link. Whatever ``_FastRows`` does not vouch
    for (another shape, a time without offset, a non-numeric result, a refused value) goes the
    general way, so the answer and any error message stay the same.
    """
    if type(payload) is not dict:
        return None
    if len(segments) == 2:
        if segments[0][0] != "Datastreams":
            return None
        stream_id = segments[0][1]
        shape = tuple(payload)
    else:
        link = payload.get("Datastream")
        if type(link) is not dict or len(link) != 1 or type(link.get("@iot.id")) is not int:
            return None
        stream_id = link["@iot.id"]
        shape = tuple(key for key in payload if key != "Datastream")
    assert stream_id is not None
    if ("Datastreams", stream_id) not in existing or "result" not in shape or not _INLINE_PROPERTIES.issuperset(shape):
        return None
    rows = inline.get((stream_id, shape))
    if rows is None:
        rows = inline[(stream_id, shape)] = _FastRows(writer, stream_id, list(shape))
    if not rows.usable:
        return None
    return rows.row([payload[key] for key in shape])


def _begin_savepoint(session: Session) -> Any:
    """A SAVEPOINT inside the session's transaction (on SQLite, make sure the transaction has begun)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        raw = connection.connection.dbapi_connection
        if raw is not None and not raw.in_transaction:
            connection.exec_driver_sql("BEGIN")
    return session.begin_nested()


def create_many_from_path(session: Session, items: list[tuple[str, dict]], base_url: str,
                          entities: bool = True) -> list[dict | bool | Exception]:
    """Create many entities, each as ``create_from_path(session, path, payload, base_url)`` would.

    Returns, per item and in order, the created entity's JSON (``True`` instead with
    ``entities=False``, for callers such as the MQTT bridge that only acknowledge) or the
    ``BadRequest``/``NotFound`` that refused it (with the same message ``create_from_path`` gives);
    a refused item writes nothing and does not affect the others. Observations whose related
    entities are links (what MQTT publishers send) take a fast path: their Datastreams and
    FeaturesOfInterest are looked up with one query each, missing FeaturesOfInterest generated once
    per Location, all valid rows inserted with one executemany in arrival order (so per Datastream
    too), ``sta_latest`` and the spans updated once per Datastream, and ``sta.changed`` events
    queued only when someone listens. The commonest message, ``{"phenomenonTime": "...Z",
    "result": 41.2}`` for an OM_Measurement Datastream, is checked inline (``_FastRows``, the
    dataArray's checks) rather than through ``_split``/``_observation_row``. Anything else (other
    entity sets, Observations with nested new entities) is created through ``create_from_path``
    inside a SAVEPOINT. Other errors (the database) propagate.
    """
    base_url = base_url.rstrip("/")
    results: list[dict | bool | Exception | None] = [None] * len(items)
    plan: list[tuple[int, bool, list[tuple[str, int | None]]]] = []
    stream_ids: dict[str, set[int]] = {"Datastreams": set(), "MultiDatastreams": set()}
    foi_ids: set[int] = set()
    parsed: dict[str, list[tuple[str, int | None]] | BadRequest | NotFound] = {}  # a batch repeats its paths
    for index, (path, payload) in enumerate(items):
        known = parsed.get(path)
        if known is None:
            try:
                known = parsed[path] = parse_path(path)
            except (BadRequest, NotFound) as exc:
                known = parsed[path] = exc
        if not isinstance(known, list):
            results[index] = known
            continue
        segments = known
        fast = _plain_observation(segments, payload)
        plan.append((index, fast, segments))
        if not fast:
            continue
        if len(segments) == 2:
            name, parent_id = segments[0]
            assert parent_id is not None
            (foi_ids if name == "FeaturesOfInterest" else stream_ids[name]).add(parent_id)
        for nav, kind in (("Datastream", "Datastreams"), ("MultiDatastream", "MultiDatastreams")):
            link = _ids_in(payload, nav)
            if link is not None:
                stream_ids[kind].add(link)
        link = _ids_in(payload, "FeatureOfInterest")
        if link is not None:
            foi_ids.add(link)
    writer = Writer(session, base_url)
    existing = _prefetch(writer, stream_ids, foi_ids)
    et = ENTITIES["Observations"]
    pending: list[tuple[int, dict[str, Any]]] = []

    inline: dict[tuple[int, tuple[str, ...]], _FastRows] = {}  # per Datastream and message shape

    def store_pending() -> None:
        if pending:
            writer.insert_observations([row for _, row in pending])
            for index, row in pending:
                results[index] = observation_json(row, base_url) if entities else True
            pending.clear()

    for index, fast, segments in plan:
        path, payload = items[index]
        if not fast:
            store_pending()
            queued = len(session.info.get(_QUEUE, []))
            savepoint = _begin_savepoint(session)
            try:
                results[index] = create_from_path(session, path, payload, base_url)
                savepoint.commit()
            except (BadRequest, NotFound) as exc:
                savepoint.rollback()
                del session.info.setdefault(_QUEUE, [])[queued:]
                results[index] = exc
            writer._known.clear()  # a rolled-back item may have created what was cached
            continue
        try:
            fixed: dict[str, Any] = {}
            if len(segments) == 2:
                name, parent_id = segments[0]
                assert parent_id is not None
                if (name, parent_id) not in existing:
                    raise NotFound(f"There is no {ENTITIES[name].singular} with id {parent_id}.")
                fixed[_OBSERVATION_PARENTS[name]] = parent_id
            row = _inline_row(writer, inline, segments, payload, existing)
            if row is not None:
                pending.append((index, row))
                continue
            values, navs = _split(et, payload, et.singular)
            pending.append((index, writer._observation_row(values, navs, fixed, et.singular)))
        except (BadRequest, NotFound) as exc:
            results[index] = exc
    store_pending()
    flush_events(session)
    return [r if r is not None else BadRequest("not created") for r in results]


# --- Things and where they are (read by the places register: places/links.py) -------------------

def thing_positions(session: Session, thing_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Things with their name, properties and the point of their first Location (lon/lat, or None)."""
    from .models import Thing

    query = select(Thing.id, Thing.name, Thing.properties).order_by(Thing.name, Thing.id)
    if thing_ids is not None:
        query = query.where(Thing.id.in_(list(thing_ids)))
    things = session.execute(query).all()
    where: dict[int, Any] = {}
    located = select(ThingLocation.thing_id, Location.location).join(Location, Location.id == ThingLocation.location_id)
    if thing_ids is not None:
        located = located.where(ThingLocation.thing_id.in_([t[0] for t in things]))
    for thing_id, geometry in session.execute(located.order_by(ThingLocation.thing_id, Location.id)):
        where.setdefault(thing_id, geometry)
    out = []
    for thing_id, name, properties in things:
        geometry = where.get(thing_id)
        if isinstance(geometry, dict) and geometry.get("type") == "Feature":
            geometry = geometry.get("geometry")
        coords = geometry.get("coordinates") if isinstance(geometry, dict) and geometry.get("type") == "Point" else None
        point = (float(coords[0]), float(coords[1])) if (
            isinstance(coords, list) and len(coords) >= 2
            and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in coords[:2])) else None
        out.append({"id": thing_id, "name": name, "properties": dict(properties or {}),
                    "lon": point[0] if point else None, "lat": point[1] if point else None})
    return out
