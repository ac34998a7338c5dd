"""SensorThings resource paths: ``Things``, ``Things(1)/Datastreams``, ``Things(1)/name/$value``...

:func:`parse` turns the path after the service root into a :class:`ResourcePath` (400 for bad
syntax, 404 for an unknown entity set, navigation property or property); :func:`resolve` walks it
in the database and returns the :class:`Target` it addresses (404 for an unknown id). Every entity
on the way is a primary-key lookup, so the cost does not grow with the data. An archived Observation
on the way (``Observations(id)/Datastream``) is read from its Parquet segment (sensors/archive.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ..models import ENTITIES, EntityType, Navigation
from . import StaError

_SEGMENT = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_]*)(?:\((?P<key>[^()]*)\))?$")


@dataclass(frozen=True)
class Step:
    """One segment: an entity set or navigation property, with its key if one was given."""

    name: str
    etype: EntityType
    key: int | None
    nav: Navigation | None = None   # None for the first segment (an entity set)

    @property
    def single(self) -> bool:
        """True when the segment addresses one entity."""
        return self.key is not None or (self.nav is not None and not self.nav.to_many)


@dataclass(frozen=True)
class ResourcePath:
    """A parsed resource path."""

    steps: tuple[Step, ...]
    property_name: str | None = None  # Things(1)/name
    value: bool = False              # Things(1)/name/$value
    ref: bool = False                # Things/$ref, Things(1)/Datastreams/$ref

    @property
    def etype(self) -> EntityType:
        """The entity type the path ends at."""
        return self.steps[-1].etype

    @property
    def single(self) -> bool:
        """True when the path addresses one entity (or one of its properties)."""
        return self.steps[-1].single


@dataclass(frozen=True)
class Target:
    """What a resolved path addresses: one entity (``entity_id``), or a collection (``condition``)."""

    etype: EntityType
    entity_id: int | None                  # set for a single entity
    condition: ColumnElement[bool] | None  # for a collection: the WHERE clause (None: the whole set)
    parent: tuple[EntityType, int, str] | None = None  # for a collection under an entity: (type, id, nav name)

    @property
    def single(self) -> bool:
        """True for one entity."""
        return self.entity_id is not None


def _key(raw: str, name: str) -> int:
    text = raw.strip()
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        text = text[1:-1]
        if not text.isdigit():
            raise StaError(404, f"No {name} with id '{text}': ids on this service are whole numbers.")
    if not text.isdigit():
        raise StaError(400, f"The id in {name}({raw}) is not valid: use a whole number, e.g. {name}(1).")
    return int(text)


def parse(path: str) -> ResourcePath:
    """Parse a resource path (the part after ``/sta/v1.1/``)."""
    parts = [p for p in path.strip("/").split("/")]
    if not parts or parts == [""]:
        raise StaError(400, "The path names no entity set.")
    steps: list[Step] = []
    prop: str | None = None
    value = ref = False
    for index, part in enumerate(parts):
        if ref or value:
            raise StaError(400, f"Nothing may follow $ref or $value in the path (found '{part}').")
        if part == "":
            raise StaError(400, "The path has an empty segment ('//').")
        if part == "$ref":
            if not steps or prop is not None:
                raise StaError(400, "$ref must follow an entity or a collection, e.g. Things/$ref.")
            ref = True
            continue
        if part == "$value":
            if prop is None:
                raise StaError(400, "$value must follow a property, e.g. Things(1)/name/$value.")
            value = True
            continue
        if prop is not None:
            raise StaError(400, f"Nothing but $value may follow the property '{prop}' (found '{part}').")
        match = _SEGMENT.match(part)
        if match is None:
            raise StaError(400, f"The path segment '{part}' is not valid: expected a name like Things or Things(1).")
        name, raw_key = match.group("name"), match.group("key")
        if index == 0:
            etype = ENTITIES.get(name)
            if etype is None:
                raise StaError(404, f"There is no entity set '{name}'. Entity sets: {', '.join(ENTITIES)}.")
            steps.append(Step(name, etype, None if raw_key is None else _key(raw_key, etype.singular)))
            continue
        last = steps[-1]
        if not last.single:
            raise StaError(400, f"'{last.name}' is a collection: address one entity by its id "
                                f"(e.g. {last.name}(1)/{name}) before '{name}'.")
        nav = last.etype.navigation.get(name)
        if nav is not None:
            target = ENTITIES[nav.target]
            key = None if raw_key is None else _key(raw_key, target.singular)
            if key is not None and not nav.to_many:
                raise StaError(400, f"'{name}' is a single entity: it takes no id.")
            steps.append(Step(name, target, key, nav))
            continue
        if raw_key is None and (name in last.etype.properties or name in last.etype.intervals or name == "id"):
            prop = name
            continue
        raise StaError(404, f"{last.etype.singular} has no property or navigation property '{name}'.")
    return ResourcePath(tuple(steps), prop, value, ref)


def link_condition(etype: EntityType, nav: Navigation, parent_id: int) -> ColumnElement[bool]:
    """The WHERE clause, on ``ENTITIES[nav.target]``, selecting the entities related to ``parent_id``."""
    target = ENTITIES[nav.target].model
    if nav.remote is not None:
        return getattr(target, nav.remote) == parent_id
    if nav.link is not None:
        link = nav.link
        return target.id.in_(  # type: ignore[attr-defined]
            select(getattr(link, nav.link_other)).where(getattr(link, nav.link_self) == parent_id))
    fk_value = select(getattr(etype.model, nav.fk)).where(etype.model.id == parent_id)  # type: ignore[arg-type,attr-defined]
    return target.id == fk_value.scalar_subquery()  # type: ignore[attr-defined]


def resolve(session: Session, path: ResourcePath) -> Target:
    """Walk ``path`` in the database: 404 for an entity that does not exist."""
    current_id: int | None = None
    previous: Step | None = None
    archived: dict[str, Any] | None = None   # the row of an archived Observation the path went through
    for step in path.steps:
        model = step.etype.model
        last = step is path.steps[-1]
        if previous is None:
            if step.key is None:
                return Target(step.etype, None, None)
            found = session.execute(select(model.id).where(model.id == step.key)).first()  # type: ignore[attr-defined]
            if found is None:
                # the router reads Observations(id) of an archived one itself; one further on is read here
                archived = None if last else _archived(session, step, {})
                if archived is None:
                    raise StaError(404, f"No {step.etype.singular} with id {step.key}.")
            current_id = step.key
        else:
            assert step.nav is not None and current_id is not None
            if step.nav.to_many:
                condition = link_condition(previous.etype, step.nav, current_id)
                if step.key is None:
                    return Target(step.etype, None, condition, (previous.etype, current_id, step.name))
                found = session.execute(
                    select(model.id).where(model.id == step.key, condition)).first()  # type: ignore[attr-defined]
                archived = None
                if found is None and step.nav.remote is not None:
                    archived = _archived(session, step, {step.nav.remote: current_id})
                    if archived is not None and last and (previous.etype.name != "Datastreams" or len(path.steps) > 2):
                        raise StaError(501, f"{step.etype.singular} {step.key} of {previous.etype.singular}"
                                            f"({current_id}) is archived: read it at {step.etype.name}({step.key}).")
                    if last:
                        archived = None   # the router reads Datastreams(d)/Observations(id) of an archived one
                if found is None and archived is None:
                    raise StaError(404, f"No {step.etype.singular} with id {step.key} in "
                                        f"{previous.etype.singular}({current_id})/{step.name}.")
                current_id = step.key
            else:
                if archived is not None:
                    target_id = archived[step.nav.fk]  # type: ignore[index]
                else:
                    fk = getattr(previous.etype.model, step.nav.fk)  # type: ignore[arg-type]
                    target_id = session.execute(
                        select(fk).where(previous.etype.model.id == current_id)).scalar()  # type: ignore[attr-defined]
                archived = None
                if target_id is None:
                    raise StaError(404, f"{previous.etype.singular}({current_id}) has no {step.name}.")
                current_id = int(target_id)
        previous = step
    return Target(path.etype, current_id, None)


def _archived(session: Session, step: Step, columns: dict[str, int]) -> dict[str, Any] | None:
    """The archived Observation ``step`` addresses (with those column values), read from its segment;
    None when it is not archived or the request reads no archive."""
    from .. import archive
    from .query import ARCHIVE_DIR

    archive_dir = session.info.get(ARCHIVE_DIR)
    if step.etype.name != "Observations" or archive_dir is None or step.key is None:
        return None
    found = archive.segments_with_id(session, step.key)
    for row in archive.read_parquet(archive_dir / s.path for s in found):
        if row["id"] == step.key and all(row[name] == value for name, value in columns.items()):
            return row
    return None
