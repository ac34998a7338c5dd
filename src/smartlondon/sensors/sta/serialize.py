"""Entities as SensorThings JSON: ``@iot.id``, ``@iot.selfLink``, properties, navigation links.

The contract the write side uses: ``to_json(session, obj, base_url, select=None) -> dict``, where
``base_url`` is the service root (``http://host/sta/v1.1``) and ``select`` the ``$select`` names.

Times are ISO 8601 in UTC with ``Z``; an interval is ``start/end``. Without ``$select`` every
property is present (``null`` when unset) and every navigation property has its
``<Name>@iot.navigationLink``. With ``$select`` only the named properties are: ``id`` (or
``@iot.id``) gives ``@iot.id`` and ``@iot.selfLink``; a navigation property gives its link.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from ..models import ENTITIES, Base, EntityType


# the order the standard lists an Observation's properties in (the rest follow the registry's order)
_OMIT_WHEN_NULL = frozenset({"properties", "parameters"})
_ORDER = {"Observations": ["phenomenonTime", "resultTime", "result", "resultQuality", "validTime", "parameters"]}


def format_time(value: datetime | None) -> str | None:
    """``2023-01-01T00:00:00Z`` (UTC), or None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def format_interval(start: datetime | None, end: datetime | None) -> str | None:
    """An instant (``end`` None) or an interval ``start/end``; None when there is no start."""
    if start is None:
        return None
    if end is None:
        return format_time(start)
    return f"{format_time(start)}/{format_time(end)}"


def etype_of(obj: Base) -> EntityType:
    """The entity type of a mapped object."""
    for etype in ENTITIES.values():
        if isinstance(obj, etype.model):
            return etype
    raise TypeError(f"{type(obj).__name__} is not a SensorThings entity")


def self_link(base_url: str, etype: EntityType, entity_id: int) -> str:
    """``<base>/Things(1)``."""
    return f"{base_url}/{etype.name}({entity_id})"


def property_value(etype: EntityType, obj: Any, name: str) -> Any:
    """The JSON value of one STA property of ``obj``."""
    if name == "id":
        return obj.id
    if name in etype.intervals:
        start, end = etype.intervals[name]
        return format_interval(getattr(obj, start), getattr(obj, end))
    value = getattr(obj, etype.properties[name])
    if isinstance(value, datetime):
        return format_time(value)
    return value


def wants_id(select: list[str] | None) -> bool:
    """True when ``@iot.id`` belongs in the output."""
    return select is None or "id" in select or "@iot.id" in select


@lru_cache(maxsize=512)
def _plan(set_name: str, select: tuple[str, ...] | None, skip_navigation: frozenset[str]
          ) -> tuple[bool, bool, tuple[tuple[str, str, str, str], ...], tuple[tuple[str, str], ...]]:
    """What to write for one entity type and $select: (id?, selfLink?, properties, navigation links).

    A property is (json name, kind, attribute, end attribute) with kind "id", "interval" or "plain";
    a navigation link is (json key, path suffix)."""
    etype = ENTITIES[set_name]
    chosen = None if select is None else set(select)
    with_id = chosen is None or "id" in chosen or "@iot.id" in chosen
    with_link = with_id or (chosen is not None and "@iot.selfLink" in chosen)
    properties = []
    for name in _ORDER.get(etype.name, etype.all_properties):
        if chosen is not None and name not in chosen:
            continue
        if name in etype.intervals:
            start, end = etype.intervals[name]
            properties.append((name, "interval", start, end))
        else:
            properties.append((name, "plain", etype.properties[name], ""))
    links = tuple((f"{name}@iot.navigationLink", f"/{name}") for name in etype.navigation
                  if name not in skip_navigation and (chosen is None or name in chosen))
    return with_id, with_link, tuple(properties), links


def entity_json(etype: EntityType, obj: Any, base_url: str, select: list[str] | None = None,
                skip_navigation: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The STA JSON of ``obj`` (leave out navigation links in ``skip_navigation``: they are expanded)."""
    with_id, with_link, properties, links = _plan(etype.name, None if select is None else tuple(select),
                                                  skip_navigation)
    entity_id = obj.id
    link = f"{base_url}/{etype.name}({entity_id})"
    out: dict[str, Any] = {}
    if with_id:
        out["@iot.id"] = entity_id
    if with_link:
        out["@iot.selfLink"] = link
    for name, kind, attr, end in properties:
        if kind == "interval":
            out[name] = format_interval(getattr(obj, attr), getattr(obj, end))
        else:
            value = getattr(obj, attr)
            if value is None and name in _OMIT_WHEN_NULL:
                continue  # as FROST-Server does; clients (frost-sta-client) expect an object or nothing
            out[name] = format_time(value) if isinstance(value, datetime) else value
    for key, suffix in links:
        out[key] = link + suffix
    return out


def to_json(session: Session, obj: Base, base_url: str, select: list[str] | None = None) -> dict[str, Any]:
    """An entity as SensorThings JSON (the contract the write side uses for its responses)."""
    return entity_json(etype_of(obj), obj, base_url.rstrip("/"), select)
