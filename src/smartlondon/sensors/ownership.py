"""Who may change a Thing: per-organisation ownership of sensor data (docs/sensors-extensions.md).

A Thing belongs to an organisation (``sta_thing.owner_organisation_id``). Whatever hangs off it
(its Datastreams and MultiDatastreams and their Observations, its HistoricalLocations, the links to
its Locations) belongs to the same organisation; Locations, Sensors, ObservedProperties and
FeaturesOfInterest belong to every organisation whose Things use them. Creating, changing or
deleting any of these through the SensorThings API needs an editor or admin of *each* owning
organisation (sysadmins may change anything); otherwise the write answers 403 and nothing of it is
kept. Reads stay public. A Thing with no owner (made before ownership existed, or by a sysadmin
who belongs to no organisation) may be changed by any writer.

A new Thing belongs to the organisation named by its ``properties.organisation`` (a slug the
writer edits for), else to the writer's only organisation; a writer of several organisations must
name one. A sysadmin's new Thing with no ``properties.organisation`` stays unowned.

How: the write side binds the writer to its session (:func:`bind`). Session events then check
every row a write touches, however it is written: ORM objects at flush (``before_flush``), SQL
``UPDATE``/``DELETE``/``INSERT`` statements run through the session (``do_orm_execute``; the ids a
``DELETE`` or ``UPDATE`` will touch are read with its own ``WHERE`` first), and Observation rows before
their insert (``service.BEFORE_INSERT``). A session with no writer bound (the command line, the demo
loaders, the MQTT bridge) is not checked: MQTT writes are authorised by the broker, and the bridge
writes with its own identity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import ORMExecuteState, Session

from ..core.errors import BadRequest, Forbidden
from ..core.models import Organisation
from .models import (
    Datastream, FeatureOfInterest, HistoricalLocation, HistoricalLocationLocation, Location, MultiDatastream,
    MultiDatastreamObservedProperty, Observation, ObservedProperty, Sensor, Thing, ThingLocation,
)

WRITER = "sta_writer"


@dataclass(frozen=True)
class Writer:
    """What the checks need of the actor writing (read once, so a closed session does not matter)."""

    label: str
    sysadmin: bool
    organisations: frozenset[int] = field(default_factory=frozenset)   # where the actor is editor or admin

    def can_edit(self, organisation_id: int) -> bool:
        """True if this writer may change what the organisation owns."""
        return self.sysadmin or organisation_id in self.organisations


def bind(session: Session, actor: Any) -> None:
    """Check every write of ``session`` against what ``actor`` (core.accounts.Actor) may change."""
    if actor is None:
        return
    session.info[WRITER] = Writer(label=actor.label, sysadmin=bool(actor.is_sysadmin),
                                  organisations=frozenset(actor.editable_organisations()))


def writer_of(session: Session) -> Writer | None:
    """The writer bound to ``session``, if any."""
    return session.info.get(WRITER)


# --- which Things a row belongs to ------------------------------------------------------------------

def _ids(values: Iterable[Any]) -> set[int]:
    return {int(v) for v in values if v is not None}


def things_of(session: Session, table: str, ids: set[int]) -> set[int]:
    """The Things the rows ``ids`` of ``table`` belong to (for shared entities: the Things using them)."""
    if not ids:
        return set()
    ids_list = sorted(ids)
    q: Any
    if table == "sta_thing":
        return set(ids)
    if table == "sta_datastream":
        q = select(Datastream.thing_id).where(Datastream.id.in_(ids_list))
    elif table == "sta_multi_datastream":
        q = select(MultiDatastream.thing_id).where(MultiDatastream.id.in_(ids_list))
    elif table == "sta_historical_location":
        q = select(HistoricalLocation.thing_id).where(HistoricalLocation.id.in_(ids_list))
    elif table == "sta_location":
        q = select(ThingLocation.thing_id).where(ThingLocation.location_id.in_(ids_list))
    elif table == "sta_sensor":
        q = select(Datastream.thing_id).where(Datastream.sensor_id.in_(ids_list)).union(
            select(MultiDatastream.thing_id).where(MultiDatastream.sensor_id.in_(ids_list)))
    elif table == "sta_observed_property":
        q = select(Datastream.thing_id).where(Datastream.observed_property_id.in_(ids_list)).union(
            select(MultiDatastream.thing_id).join(
                MultiDatastreamObservedProperty,
                MultiDatastreamObservedProperty.multi_datastream_id == MultiDatastream.id)
            .where(MultiDatastreamObservedProperty.observed_property_id.in_(ids_list)))
    elif table == "sta_feature_of_interest":
        streams = select(Observation.datastream_id).where(
            Observation.feature_of_interest_id.in_(ids_list)).distinct().scalar_subquery()
        multis = select(Observation.multi_datastream_id).where(
            Observation.feature_of_interest_id.in_(ids_list)).distinct().scalar_subquery()
        q = select(Datastream.thing_id).where(Datastream.id.in_(streams)).union(
            select(MultiDatastream.thing_id).where(MultiDatastream.id.in_(multis)))
    elif table == "sta_observation":
        rows = session.execute(select(Observation.datastream_id, Observation.multi_datastream_id)
                               .where(Observation.id.in_(ids_list)).distinct()).all()
        return _stream_things(session, _ids(r[0] for r in rows), _ids(r[1] for r in rows))
    elif table == "sta_historical_location_location":
        q = select(HistoricalLocation.thing_id).where(HistoricalLocation.id.in_(ids_list))
    else:
        return set()
    with session.no_autoflush:
        return _ids(session.execute(q).scalars())


def _stream_things(session: Session, datastreams: set[int], multis: set[int]) -> set[int]:
    out: set[int] = set()
    with session.no_autoflush:
        if datastreams:
            out |= _ids(session.execute(select(Datastream.thing_id).where(Datastream.id.in_(sorted(datastreams))))
                        .scalars())
        if multis:
            out |= _ids(session.execute(select(MultiDatastream.thing_id)
                                        .where(MultiDatastream.id.in_(sorted(multis)))).scalars())
    return out


def check(session: Session, writer: Writer, thing_ids: set[int]) -> None:
    """403 unless ``writer`` may change every one of ``thing_ids`` (unowned Things: anyone who may write)."""
    if writer.sysadmin or not thing_ids:
        return
    with session.no_autoflush:
        owners = session.execute(
            select(Thing.id, Thing.owner_organisation_id, Organisation.name)
            .join(Organisation, Organisation.id == Thing.owner_organisation_id)
            .where(Thing.id.in_(sorted(thing_ids)))).all()
    refused = [(thing_id, name) for thing_id, owner, name in owners if not writer.can_edit(owner)]
    if refused:
        thing_id, name = min(refused)
        raise Forbidden(f"Thing {thing_id} belongs to {name}: only its editors and admins (or a sysadmin) may "
                        f"change it or what hangs off it, and {writer.label} is not one of them.")


# --- the owner of a new Thing -------------------------------------------------------------------------

def owner_for_new_thing(session: Session, writer: Writer, thing: Thing) -> int | None:
    """The organisation a Thing created by ``writer`` belongs to (see the module's docstring)."""
    named = (thing.properties or {}).get("organisation") if isinstance(thing.properties, dict) else None
    if named is not None:
        with session.no_autoflush:
            org = session.execute(select(Organisation.id).where(Organisation.slug == str(named))).scalar()
        if org is None:
            raise BadRequest(f"properties.organisation '{named}' is not an organisation: give the slug of one.")
        if not writer.can_edit(org):
            raise Forbidden(f"{writer.label} may not create Things for '{named}': only its editors and admins may.")
        return int(org)
    if len(writer.organisations) == 1:
        return next(iter(writer.organisations))
    if writer.sysadmin:
        return None
    raise BadRequest("You edit for several organisations: say which one owns this Thing with "
                     "properties.organisation, the organisation's slug.")


# --- the session events ---------------------------------------------------------------------------------

def _table_of(obj: Any) -> str | None:
    table = getattr(type(obj), "__tablename__", None)
    return table if isinstance(table, str) else None


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    writer = writer_of(session)
    if writer is None or (writer.sysadmin and not any(isinstance(o, Thing) for o in session.new)):
        return
    touched: set[int] = set()
    for obj in list(session.new):
        if isinstance(obj, Thing):
            if obj.owner_organisation_id is None:
                obj.owner_organisation_id = owner_for_new_thing(session, writer, obj)
            continue
        touched |= _owning_things(session, obj, new=True)
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, Thing):
            touched.add(obj.id)
        elif obj in session.dirty and not session.is_modified(obj):
            continue
        else:
            touched |= _owning_things(session, obj, new=False)
    check(session, writer, touched)


def _owning_things(session: Session, obj: Any, new: bool) -> set[int]:
    """The Things an ORM object belongs to (a new shared entity belongs to none yet)."""
    if isinstance(obj, (Datastream, MultiDatastream, HistoricalLocation, ThingLocation)):
        return _ids([obj.thing_id])
    if isinstance(obj, Observation):
        return _stream_things(session, _ids([obj.datastream_id]), _ids([obj.multi_datastream_id]))
    if isinstance(obj, HistoricalLocationLocation):
        return things_of(session, "sta_historical_location", _ids([obj.historical_location_id]))
    if isinstance(obj, MultiDatastreamObservedProperty):
        return things_of(session, "sta_multi_datastream", _ids([obj.multi_datastream_id]))
    if new or not isinstance(obj, (Location, Sensor, ObservedProperty, FeatureOfInterest)):
        return set()
    table = _table_of(obj)
    return things_of(session, table, {obj.id}) if table else set()


_ROW_THING = {  # for an INSERT: the column naming what the new row hangs off
    "sta_thing_location": ("sta_thing", "thing_id"),
    "sta_datastream": ("sta_thing", "thing_id"),
    "sta_multi_datastream": ("sta_thing", "thing_id"),
    "sta_historical_location": ("sta_thing", "thing_id"),
    "sta_historical_location_location": ("sta_historical_location", "historical_location_id"),
    "sta_multi_datastream_observed_property": ("sta_multi_datastream", "multi_datastream_id"),
}


def _do_orm_execute(state: ORMExecuteState) -> None:
    session = state.session
    writer = writer_of(session)
    if writer is None or writer.sysadmin or not (state.is_insert or state.is_update or state.is_delete):
        return
    statement = state.statement
    table = getattr(getattr(statement, "table", None), "name", None)
    if table is None or not table.startswith("sta_"):
        return
    touched: set[int] = set()
    if state.is_insert:
        if table == "sta_observation":
            return   # checked by the BEFORE_INSERT hook with the rows themselves
        target = _ROW_THING.get(table)
        if target is None:
            return
        params = state.parameters
        rows = params if isinstance(params, list) else [params] if isinstance(params, dict) else []
        values = _ids(row.get(target[1]) for row in rows if isinstance(row, dict))
        touched = things_of(session, target[0], values)
    else:
        sql_table = statement.table
        params = state.parameters
        if isinstance(params, list):   # a bulk UPDATE by primary key: the ids are in the rows
            key = "id" if "id" in sql_table.c else "thing_id"
            touched = things_of(session, table if key == "id" else "sta_thing",
                                _ids(row.get(key) for row in params if isinstance(row, dict)))
        elif "id" in sql_table.c or "thing_id" in sql_table.c:
            column = sql_table.c.id if "id" in sql_table.c else sql_table.c.thing_id   # thing_id: Things-Locations
            query = select(column)
            if statement.whereclause is not None:
                query = query.where(statement.whereclause)
            with session.no_autoflush:
                found = _ids(session.connection().execute(query, params or {}).scalars())
            touched = things_of(session, table if column.name == "id" else "sta_thing", found)
    check(session, writer, touched)


def check_observations(session: Session, rows: list[dict[str, Any]]) -> None:
    """``service.BEFORE_INSERT`` hook: the Things of the Observations about to be inserted."""
    writer = writer_of(session)
    if writer is None or writer.sysadmin:
        return
    things = _stream_things(session, _ids(r.get("datastream_id") for r in rows),
                            _ids(r.get("multi_datastream_id") for r in rows))
    check(session, writer, things)


def install() -> None:
    """Register the session events and the ingest hook (once)."""
    if not event.contains(Session, "before_flush", _before_flush):
        event.listen(Session, "before_flush", _before_flush)
    if not event.contains(Session, "do_orm_execute", _do_orm_execute):
        event.listen(Session, "do_orm_execute", _do_orm_execute)
    from . import service

    if check_observations not in service.BEFORE_INSERT:
        service.BEFORE_INSERT.insert(0, check_observations)


install()


# --- giving Things an owner (loaders, admins) ------------------------------------------------------------

#: the organisation the demo's LAQN Things and simulated lampposts belong to: the catalogue seeds the
#: LAQN datasets under the Greater London Authority (demo/plan.py), which funds the network with the boroughs
DEMO_OWNER = "greater-london-authority"


def set_owner(session: Session, thing_ids: Iterable[int], slug: str, only_unowned: bool = True) -> int:
    """Give Things an owning organisation (by slug; nothing when it is not seeded); how many changed."""
    org = session.execute(select(Organisation.id).where(Organisation.slug == slug)).scalar()
    ids = sorted(set(thing_ids))
    if org is None or not ids:
        return 0
    changed = 0
    for thing in session.scalars(select(Thing).where(Thing.id.in_(ids))):
        if thing.owner_organisation_id is None or (not only_unowned and thing.owner_organisation_id != org):
            thing.owner_organisation_id = int(org)
            changed += 1
    return changed


def owner_name(session: Session, thing_id: int) -> str | None:
    """The name of the organisation that owns a Thing, if any."""
    return session.execute(select(Organisation.name).join(Thing, Thing.owner_organisation_id == Organisation.id)
                           .where(Thing.id == thing_id)).scalar()
