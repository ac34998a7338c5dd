"""The places register's rules: create, update and retire places, with versions and provenance.

Every change writes a ``place_version`` row (who, when, what changed as before/after pairs) in the
same transaction as the change. Names, identifiers and the geometry each carry the organisation
that asserted them (``source``) and when. Containing areas (borough, ward, MSOA, LSOA) are
computed from the geometry whenever it is written.
"""

from __future__ import annotations

import re
import secrets
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, aliased, selectinload

from ..core.db import utcnow
from ..core.errors import Conflict, NotFound, ValidationFailed
from . import spatial
from .models import STATUSES, Place, PlaceArea, PlaceIdentifier, PlaceKind, PlaceName, PlaceVersion
from .records import MatchRecord

# code, label, parent, is an area, community-proposable
KINDS: tuple[tuple[str, str, str | None, bool, bool], ...] = (
    ("borough", "London borough", None, True, False),
    ("ward", "Electoral ward", "borough", True, False),
    ("msoa", "Middle layer super output area", "borough", True, False),
    ("lsoa", "Lower layer super output area", "msoa", True, False),
    ("building", "Building", None, False, False),
    ("station", "Station", None, False, False),
    ("lamppost", "Lamppost", None, False, False),
    ("park", "Park or open space", None, False, True),
    ("school", "School", None, False, False),
    ("cultural-venue", "Cultural venue", None, False, True),
    ("aq-site", "Air quality monitoring site", None, False, False),
)
# Which area kinds can contain a place of a kind (areas nest; everything else sits in all of them).
CONTAINERS: dict[str, tuple[str, ...]] = {"borough": (), "ward": ("borough",), "msoa": ("borough",),
                                          "lsoa": ("borough", "msoa")}
SCHEMES = ("gss", "uprn", "usrn", "nlc", "naptan", "osm", "laqn")
KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


def containers_of(kind: str) -> tuple[str, ...]:
    """The area kinds that can contain a place of ``kind``."""
    return CONTAINERS.get(kind, spatial.AREA_KINDS)


def seed_kinds(session: Session) -> None:
    """Add the standard kinds that are missing (idempotent)."""
    present = set(session.scalars(select(PlaceKind.code)))
    for code, label, parent, is_area, community in KINDS:
        if code not in present:
            session.add(PlaceKind(code=code, label=label, parent=parent, is_area=is_area, community=community))
    session.flush()


def kinds(session: Session) -> list[PlaceKind]:
    """Every kind in the taxonomy."""
    seed_kinds(session)
    return list(session.scalars(select(PlaceKind).order_by(PlaceKind.code)))


def make_uid(kind: str, key: str) -> str:
    """The register's identifier for a place: ``ldn:<kind>:<key>``."""
    return f"ldn:{kind}:{key}"


def get_place(session: Session, uid: str) -> Place:
    """The place with ``uid`` (any status); 404 if there is none."""
    place = session.scalar(select(Place).where(Place.uid == uid))
    if place is None:
        raise NotFound(f"There is no place {uid!r} in the register.")
    return place


def _check_kind(session: Session, kind: str) -> None:
    seed_kinds(session)
    if session.get(PlaceKind, kind) is None:
        known = ", ".join(sorted(session.scalars(select(PlaceKind.code))))
        raise ValidationFailed(f"The kind {kind!r} is not in the taxonomy. Use one of: {known}.",
                               {"kind": "Unknown kind."})


def _check_identifiers(session: Session, identifiers: dict[str, Any], own_id: int | None = None) -> dict[str, list[str]]:
    clean: dict[str, list[str]] = {}
    for scheme, values in (identifiers or {}).items():
        scheme = str(scheme).strip().lower()
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,39}", scheme):
            raise ValidationFailed(f"The identifier scheme {scheme!r} is not a valid scheme name.",
                                   {"identifiers": "Bad scheme."})
        for value in [values] if isinstance(values, (str, int)) else list(values):
            value = str(value).strip()
            if not value:
                continue
            owner = session.scalar(select(Place.uid).join(PlaceIdentifier).where(
                PlaceIdentifier.scheme == scheme, PlaceIdentifier.value == value, PlaceIdentifier.active,
                PlaceIdentifier.place_id != (own_id or -1)))
            if owner is not None:
                raise Conflict(f"The {scheme} identifier {value!r} already belongs to {owner}.",
                               {"identifiers": f"{scheme} {value} is taken."})
            clean.setdefault(scheme, []).append(value)
    return clean


def _check_name(name: Any, field_name: str = "name") -> str:
    name = " ".join(str(name or "").split())
    if not name:
        raise ValidationFailed("A place needs a name.", {field_name: "Enter a name."})
    if len(name) > 300:
        raise ValidationFailed("The name is longer than 300 characters.", {field_name: "Too long."})
    return name


def _set_area_links(session: Session, place: Place) -> None:
    session.execute(delete(PlaceArea).where(PlaceArea.place_id == place.id))
    if place.point_lon is None or place.point_lat is None:
        return
    wanted = containers_of(place.kind)
    if not wanted:
        return
    seen: set[str] = set()
    for area_id, _uid, kind, _name in spatial.areas_at(session, place.point_lon, place.point_lat, wanted,
                                                        exclude_id=place.id):
        if kind not in seen:
            seen.add(kind)
            session.add(PlaceArea(place_id=place.id, area_id=area_id, area_kind=kind))


def _apply_footprint(place: Place, fp: spatial.Footprint, source: str, when: datetime) -> None:
    place.geometry, place.geometry_bng = fp.wgs84, fp.bng
    place.min_lon, place.min_lat, place.max_lon, place.max_lat = fp.bbox
    place.point_lon, place.point_lat = fp.point
    place.geometry_source, place.geometry_asserted_at = source, when


def _footprint_of(geometry: Any, crs: str | None) -> spatial.Footprint:
    return spatial.footprint(spatial.parse_geometry(geometry), crs or spatial.CRS84)


def _version(session: Session, place: Place, action: str, actor: str, source: str, changes: dict[str, Any],
             reason: str = "") -> None:
    latest = session.scalar(select(func.max(PlaceVersion.version)).where(PlaceVersion.place_id == place.id)) or 0
    session.add(PlaceVersion(place_id=place.id, version=latest + 1, action=action, actor=actor, source=source,
                             reason=reason, changes=changes, at=utcnow()))


def create_place(session: Session, *, kind: str, name: str, source: str, actor: str = "",
                 geometry: Any = None, crs: str | None = None, key: str | None = None,
                 identifiers: dict[str, Any] | None = None, alt_names: Sequence[str] = (),
                 status: str = "active", properties: dict[str, Any] | None = None, reason: str = "") -> Place:
    """Add a place to the register (checked, versioned, with its containing areas)."""
    _check_kind(session, kind)
    name = _check_name(name)
    if status not in ("proposed", "active"):
        raise ValidationFailed("A new place is 'proposed' or 'active'.", {"status": "Not allowed for a new place."})
    if not source.strip():
        raise ValidationFailed("Say which organisation asserts this place (source).", {"source": "Enter a source."})
    if key is None:
        key = secrets.token_hex(5)
    if not KEY_RE.fullmatch(key):
        raise ValidationFailed(f"The key {key!r} may only hold letters, digits, '.', '_' and '-'.", {"key": "Bad key."})
    uid = make_uid(kind, key)
    if session.scalar(select(Place.id).where(Place.uid == uid)) is not None:
        raise Conflict(f"The identifier {uid} is already used (identifiers are never reused).", {"key": "Taken."})
    fp = _footprint_of(geometry, crs) if geometry is not None else None
    ids = _check_identifiers(session, identifiers or {})
    now = utcnow()
    place = Place(uid=uid, kind=kind, name=name, status=status, successors=[], properties=dict(properties or {}),
                  created_at=now, updated_at=now, geometry_source="")
    if fp is not None:
        _apply_footprint(place, fp, source, now)
    session.add(place)
    place.names.append(PlaceName(name=name, preferred=True, source=source, asserted_at=now))
    for alt in alt_names:
        alt = _check_name(alt, "alt_names")
        if alt != name:
            place.names.append(PlaceName(name=alt, preferred=False, source=source, asserted_at=now))
    for scheme, values in ids.items():
        for value in values:
            place.identifiers.append(PlaceIdentifier(scheme=scheme, value=value, active=True, source=source,
                                                     asserted_at=now))
    session.flush()
    _set_area_links(session, place)
    _version(session, place, "create", actor, source, {
        "name": [None, name], "status": [None, status], "kind": [None, kind],
        "identifiers": [None, {s: v for s, v in ids.items()}], "alt_names": [None, list(alt_names)],
        "geometry": [None, fp.wgs84["type"] if fp else None]}, reason)
    session.flush()
    return place


def update_place(session: Session, uid: str, changes: dict[str, Any], *, source: str, actor: str = "",
                 reason: str = "") -> Place:
    """Change a place's name, alternative names, identifiers, geometry or properties, as a new version."""
    place = get_place(session, uid)
    if place.status == "retired":
        raise Conflict(f"{uid} is retired; change its successor instead.", {"uid": "Retired."})
    allowed = {"name", "alt_names", "identifiers", "geometry", "crs", "properties"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed(f"These fields cannot be changed: {', '.join(sorted(unknown))}.",
                               {f: "Not changeable." for f in unknown})
    now = utcnow()
    diff: dict[str, Any] = {}
    if "name" in changes:
        new = _check_name(changes["name"])
        if new != place.name:
            for n in place.names:
                if n.preferred:
                    n.preferred = False  # the former name stays, as an alternative name people still use
            place.names.append(PlaceName(name=new, preferred=True, source=source, asserted_at=now))
            diff["name"] = [place.name, new]
            place.name = new
    if "alt_names" in changes:
        current = {n.name for n in place.names if not n.preferred and n.valid_to is None}
        added = [_check_name(a, "alt_names") for a in changes["alt_names"] or []]
        added = [a for a in dict.fromkeys(added) if a not in current and a != place.name]
        for a in added:
            place.names.append(PlaceName(name=a, preferred=False, source=source, asserted_at=now))
        if added:
            diff["alt_names"] = [sorted(current), sorted(current | set(added))]
    if "identifiers" in changes:
        ids = _check_identifiers(session, changes["identifiers"] or {}, own_id=place.id)
        before = _identifier_map(place)
        for scheme, values in ids.items():
            for value in values:
                if value not in before.get(scheme, []):
                    place.identifiers.append(PlaceIdentifier(scheme=scheme, value=value, active=True,
                                                             source=source, asserted_at=now))
        after = _identifier_map(place)
        if after != before:
            diff["identifiers"] = [before, after]
    if "geometry" in changes:
        fp = _footprint_of(changes["geometry"], changes.get("crs"))
        if fp.wgs84 != place.geometry:
            diff["geometry"] = [place.geometry, fp.wgs84]
            _apply_footprint(place, fp, source, now)
            session.flush()
            _set_area_links(session, place)
    if "properties" in changes:
        if not isinstance(changes["properties"], dict):
            raise ValidationFailed("properties must be a JSON object.", {"properties": "Not an object."})
        merged = {**place.properties, **changes["properties"]}
        if merged != place.properties:
            diff["properties"] = [place.properties, merged]
            place.properties = merged
    if diff:
        place.updated_at = now
        session.flush()
        _version(session, place, "update", actor, source, diff, reason)
        session.flush()
    return place


def retire_place(session: Session, uid: str, *, successors: Sequence[str] = (), source: str, actor: str = "",
                 reason: str = "") -> Place:
    """Retire a place (its identifier is never reused), pointing to the places that replace it."""
    place = get_place(session, uid)
    if place.status == "retired":
        raise Conflict(f"{uid} is already retired.", {"uid": "Already retired."})
    for succ in successors:
        other = session.scalar(select(Place).where(Place.uid == succ))
        if other is None or other.status == "retired" or other.id == place.id:
            raise ValidationFailed(f"The successor {succ!r} is not an active place in the register.",
                                   {"successors": f"{succ} is not an active place."})
    before = place.status
    place.status = "retired"
    place.successors = list(successors)
    place.updated_at = utcnow()
    for ident in place.identifiers:
        ident.active = False
    session.flush()
    _version(session, place, "retire", actor, source,
             {"status": [before, "retired"], "successors": [[], list(successors)]}, reason)
    session.flush()
    return place


def _identifier_map(place: Place) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ident in place.identifiers:
        if ident.active:
            out.setdefault(ident.scheme, []).append(ident.value)
    return out


# --- reading ----------------------------------------------------------------------------------

def containing_areas(session: Session, place: Place) -> list[dict[str, str]]:
    """The place's containing areas, largest first: kind, uid, name."""
    area = aliased(Place)
    rows = session.execute(select(PlaceArea.area_kind, area.uid, area.name).join(area, area.id == PlaceArea.area_id)
                           .where(PlaceArea.place_id == place.id))
    order = {k: i for i, k in enumerate(spatial.AREA_KINDS)}
    return [{"kind": k, "uid": u, "name": n} for k, u, n in sorted(rows, key=lambda r: order.get(r[0], 99))]


def contained_places(session: Session, area: Place, kind: str | None = None, limit: int = 5000) -> list[Place]:
    """Active places inside an area (by their computed containing areas), by kind and name."""
    query = (select(Place).join(PlaceArea, PlaceArea.place_id == Place.id)
             .where(PlaceArea.area_id == area.id, Place.status == "active"))
    if kind:
        query = query.where(Place.kind == kind)
    return list(session.scalars(query.order_by(Place.kind, Place.name).limit(limit)))


def contained_counts(session: Session, area: Place) -> dict[str, int]:
    """How many active places of each kind lie inside an area (by their computed containing areas)."""
    rows = session.execute(select(Place.kind, func.count()).join(PlaceArea, PlaceArea.place_id == Place.id)
                           .where(PlaceArea.area_id == area.id, Place.status == "active").group_by(Place.kind))
    return {k: n for k, n in rows}


def contained_page(session: Session, area: Place, kind: str, *, limit: int, offset: int = 0) -> list[tuple[str, str]]:
    """One page of the (uid, name) of active places of ``kind`` inside an area, by name."""
    query = (select(Place.uid, Place.name).join(PlaceArea, PlaceArea.place_id == Place.id)
             .where(PlaceArea.area_id == area.id, Place.status == "active", Place.kind == kind)
             .order_by(Place.name, Place.id).offset(offset).limit(limit))
    return [(uid, name) for uid, name in session.execute(query)]


def place_dict(session: Session, place: Place, *, history: bool = True) -> dict[str, Any]:
    """A place as JSON: names, identifiers with provenance, areas, geometry and (optionally) history."""
    today = date.today()
    data: dict[str, Any] = {
        "uid": place.uid, "kind": place.kind, "name": place.name, "status": place.status,
        "successors": place.successors or [], "properties": place.properties or {},
        "names": [{"name": n.name, "preferred": n.preferred, "lang": n.lang, "source": n.source,
                   "asserted_at": n.asserted_at.isoformat(),
                   "valid_from": n.valid_from.isoformat() if n.valid_from else None,
                   "valid_to": n.valid_to.isoformat() if n.valid_to else None,
                   "current": (n.valid_from is None or n.valid_from <= today) and (n.valid_to is None or n.valid_to >= today)}
                  for n in place.names],
        "identifiers": [{"scheme": i.scheme, "value": i.value, "active": i.active, "source": i.source,
                         "asserted_at": i.asserted_at.isoformat()} for i in place.identifiers],
        "areas": containing_areas(session, place),
        "point": {"lon": place.point_lon, "lat": place.point_lat} if place.point_lon is not None else None,
        "bbox": [place.min_lon, place.min_lat, place.max_lon, place.max_lat] if place.min_lon is not None else None,
        "geometry": place.geometry,
        "geometry_provenance": {"source": place.geometry_source,
                                "asserted_at": place.geometry_asserted_at.isoformat() if place.geometry_asserted_at else None},
        "created_at": place.created_at.isoformat(), "updated_at": place.updated_at.isoformat(),
    }
    if history:
        data["history"] = [{"version": v.version, "action": v.action, "actor": v.actor, "source": v.source,
                            "reason": v.reason, "at": v.at.isoformat(), "changes": v.changes} for v in place.versions]
    return data


def counts_by_kind(session: Session) -> dict[str, int]:
    """How many active places of each kind the register holds."""
    rows = session.execute(select(Place.kind, func.count()).where(Place.status == "active").group_by(Place.kind))
    return {k: n for k, n in rows}


def iter_match_records(session: Session, place_ids: Iterable[int] | None = None) -> Iterator[MatchRecord]:
    """Every active place (or those of ``place_ids``) as the name matcher sees it (see ``places.records``)."""
    if place_ids is None:
        yield from _match_records(session, None)
        return
    ids = sorted(set(place_ids))
    for start in range(0, len(ids), 5000):
        yield from _match_records(session, ids[start:start + 5000])


def _match_records(session: Session, only: list[int] | None) -> Iterator[MatchRecord]:
    today = date.today()
    alt: dict[int, list[str]] = defaultdict(list)
    names = session.execute(select(PlaceName.place_id, PlaceName.name).join(Place, Place.id == PlaceName.place_id)
                            .where(Place.status == "active", PlaceName.preferred.is_(False),
                                   (PlaceName.valid_from.is_(None)) | (PlaceName.valid_from <= today),
                                   (PlaceName.valid_to.is_(None)) | (PlaceName.valid_to >= today),
                                   PlaceName.place_id.in_(only) if only is not None else Place.id.is_not(None))
                            .order_by(PlaceName.id))
    for pid, name in names:
        alt[pid].append(name)
    ids: dict[int, dict[str, list[str]]] = defaultdict(dict)
    for pid, scheme, value in session.execute(
            select(PlaceIdentifier.place_id, PlaceIdentifier.scheme, PlaceIdentifier.value)
            .where(PlaceIdentifier.active,
                   PlaceIdentifier.place_id.in_(only) if only is not None else PlaceIdentifier.active)
            .order_by(PlaceIdentifier.id)):
        ids[pid].setdefault(scheme, []).append(value)
    area = aliased(Place)
    areas: dict[int, dict[str, str]] = defaultdict(dict)
    area_query = select(PlaceArea.place_id, PlaceArea.area_kind, area.uid).join(area, area.id == PlaceArea.area_id)
    for pid, kind, uid in session.execute(area_query.where(PlaceArea.place_id.in_(only)) if only is not None
                                          else area_query):
        areas[pid][kind] = uid
    rows = session.execute(select(Place.id, Place.uid, Place.kind, Place.name, Place.point_lon, Place.point_lat)
                           .where(Place.status == "active", Place.id.in_(only) if only is not None
                                  else Place.status == "active").order_by(Place.id))
    for pid, uid, kind, name, lon, lat in rows:
        yield MatchRecord(uid=uid, kind=kind, name=name,
                          alt_names=tuple(n for n in dict.fromkeys(alt.get(pid, ())) if n != name),
                          identifiers={s: tuple(v) for s, v in ids.get(pid, {}).items()},
                          lon=lon, lat=lat, areas=dict(areas.get(pid, {})))


# --- bulk loading -----------------------------------------------------------------------------

@dataclass
class NewPlace:
    """One place for ``bulk_create``: already checked geometry, identifiers by scheme."""

    kind: str
    key: str
    name: str
    footprint: spatial.Footprint | None
    identifiers: dict[str, list[str]] = field(default_factory=dict)
    alt_names: list[str] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class BulkResult:
    """What a bulk load did: places created, updated, left alone, retired and refused (with why)."""

    created: int = 0
    unchanged: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    updated: int = 0
    retired: int = 0

    def as_dict(self) -> dict[str, Any]:
        """As JSON."""
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "retired": self.retired, "refused": [{"key": k, "reason": r} for k, r in self.refused]}


def bulk_create(session: Session, items: Iterable[NewPlace], *, source: str, actor: str = "",
                chunk: int = 2000) -> BulkResult:
    """Insert many new places fast (places already in the register, by uid, are left alone)."""
    seed_kinds(session)
    known_kinds = set(session.scalars(select(PlaceKind.code)))
    result = BulkResult()
    batch: list[NewPlace] = []
    taken_ids: set[tuple[str, str]] = set()
    indexes: dict[tuple[str, ...], spatial.AreaIndex] = {}
    for item in items:
        batch.append(item)
        if len(batch) >= chunk:
            _flush_batch(session, batch, source, actor, result, known_kinds, taken_ids, indexes)
            batch = []
    if batch:
        _flush_batch(session, batch, source, actor, result, known_kinds, taken_ids, indexes)
    return result


def _flush_batch(session: Session, batch: list[NewPlace], source: str, actor: str, result: BulkResult,
                 known_kinds: set[str], taken_ids: set[tuple[str, str]],
                 indexes: dict[tuple[str, ...], spatial.AreaIndex]) -> None:
    uids = [make_uid(i.kind, i.key) for i in batch]
    existing = set(session.scalars(select(Place.uid).where(Place.uid.in_(uids))))
    wanted_pairs = [(s, v) for i in batch for s, vs in i.identifiers.items() for v in vs]
    values = sorted({v for _, v in wanted_pairs})
    owned: dict[tuple[str, str], str] = {}
    for start in range(0, len(values), 900):
        for scheme, value, uid in session.execute(
                select(PlaceIdentifier.scheme, PlaceIdentifier.value, Place.uid).join(Place)
                .where(PlaceIdentifier.active, PlaceIdentifier.value.in_(values[start:start + 900]))):
            owned[(scheme, value)] = uid
    now = utcnow()
    rows: list[dict[str, Any]] = []
    keep: list[NewPlace] = []
    seen: set[str] = set()
    for item, uid in zip(batch, uids):
        if uid in existing:
            result.unchanged += 1
            continue
        if item.kind not in known_kinds:
            result.refused.append((item.key, f"unknown kind {item.kind!r}"))
            continue
        if uid in seen:
            result.refused.append((item.key, f"the key {item.key!r} appears twice in the input"))
            continue
        clash = next(((s, v) for s, vs in item.identifiers.items() for v in vs
                      if (s, v) in owned or (s, v) in taken_ids), None)
        if clash:
            owner = owned.get(clash, "an earlier row of this input")
            result.refused.append((item.key, f"the {clash[0]} identifier {clash[1]} already belongs to {owner}"))
            continue
        seen.add(uid)
        taken_ids.update((s, v) for s, vs in item.identifiers.items() for v in vs)
        fp = item.footprint
        rows.append({"uid": uid, "kind": item.kind, "name": item.name, "status": "active", "successors": [],
                     "properties": item.properties, "geometry": fp.wgs84 if fp else None,
                     "geometry_bng": fp.bng if fp else None, "geometry_source": source if fp else "",
                     "geometry_asserted_at": now if fp else None,
                     "min_lon": fp.bbox[0] if fp else None, "min_lat": fp.bbox[1] if fp else None,
                     "max_lon": fp.bbox[2] if fp else None, "max_lat": fp.bbox[3] if fp else None,
                     "point_lon": fp.point[0] if fp else None, "point_lat": fp.point[1] if fp else None,
                     "created_at": now, "updated_at": now})
        keep.append(item)
    if not rows:
        return
    session.execute(insert(Place.__table__), rows)
    new_uids = [r["uid"] for r in rows]
    ids: dict[str, int] = {}
    for start in range(0, len(new_uids), 900):
        ids.update({u: i for i, u in session.execute(select(Place.id, Place.uid)
                                                         .where(Place.uid.in_(new_uids[start:start + 900])))})
    names, idents, versions, links = [], [], [], []
    for item, row in zip(keep, rows):
        pid = ids[row["uid"]]
        names.append({"place_id": pid, "name": item.name, "lang": "en", "preferred": True, "source": source,
                      "asserted_at": now})
        for alt in dict.fromkeys(item.alt_names):
            if alt and alt != item.name:
                names.append({"place_id": pid, "name": alt, "lang": "en", "preferred": False, "source": source,
                              "asserted_at": now})
        for scheme, values in item.identifiers.items():
            for value in values:
                idents.append({"place_id": pid, "scheme": scheme, "value": value, "active": True, "source": source,
                               "asserted_at": now})
        versions.append({"place_id": pid, "version": 1, "action": "create", "actor": actor, "source": source,
                         "reason": "bulk import", "at": now,
                         "changes": {"name": [None, item.name], "status": [None, "active"], "kind": [None, item.kind],
                                     "identifiers": [None, item.identifiers]}})
    by_containers: dict[tuple[str, ...], list[tuple[int, NewPlace]]] = defaultdict(list)
    for item, row in zip(keep, rows):
        if item.footprint is not None and containers_of(item.kind):
            by_containers[containers_of(item.kind)].append((ids[row["uid"]], item))
    if any(item.kind in spatial.AREA_KINDS for item in keep):
        indexes.clear()  # areas were added: area indexes held from earlier batches are out of date
    for wanted, members in by_containers.items():
        index = indexes.get(wanted)
        if index is None:
            index = indexes[wanted] = spatial.AreaIndex.load(session, wanted)
        assigned = index.assign([m.footprint.point[0] for _, m in members],  # type: ignore[union-attr]
                                [m.footprint.point[1] for _, m in members])  # type: ignore[union-attr]
        for (pid, _), areas in zip(members, assigned):
            for kind, (area_id, _uid) in areas.items():
                if area_id != pid:
                    links.append({"place_id": pid, "area_id": area_id, "area_kind": kind})
    session.execute(insert(PlaceName.__table__), names)
    if idents:
        session.execute(insert(PlaceIdentifier.__table__), idents)
    session.execute(insert(PlaceVersion.__table__), versions)
    if links:
        session.execute(insert(PlaceArea.__table__), links)
    result.created += len(rows)


# --- re-importing a source -------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """``value`` as it comes back from a JSON column (dates as text, tuples as lists)."""
    import json

    return json.loads(json.dumps(value, default=str))


def bulk_upsert(session: Session, items: Iterable[NewPlace], *, source: str, actor: str = "",
                chunk: int = 2000, seen: set[str] | None = None) -> BulkResult:
    """Import places again: new ones are created, changed ones updated (as versions with provenance),
    unchanged ones left untouched. ``seen`` collects the uids the input holds (for ``retire_missing``)."""
    seed_kinds(session)
    known_kinds = set(session.scalars(select(PlaceKind.code)))
    result = BulkResult()
    batch: list[NewPlace] = []
    taken_ids: set[tuple[str, str]] = set()
    indexes: dict[tuple[str, ...], spatial.AreaIndex] = {}
    in_input: set[str] = set() if seen is None else seen
    for item in items:
        batch.append(item)
        if len(batch) >= chunk:
            _upsert_batch(session, batch, source, actor, result, known_kinds, taken_ids, indexes, in_input)
            batch = []
    if batch:
        _upsert_batch(session, batch, source, actor, result, known_kinds, taken_ids, indexes, in_input)
    return result


def _upsert_batch(session: Session, batch: list[NewPlace], source: str, actor: str, result: BulkResult,
                  known_kinds: set[str], taken_ids: set[tuple[str, str]],
                  indexes: dict[tuple[str, ...], spatial.AreaIndex], in_input: set[str]) -> None:
    uids = [make_uid(i.kind, i.key) for i in batch]
    present = {p.uid: p for p in session.scalars(select(Place).where(Place.uid.in_(uids))
                                                 .options(selectinload(Place.names), selectinload(Place.identifiers)))}
    fresh: list[NewPlace] = []
    for item, uid in zip(batch, uids):
        if uid in in_input:
            result.refused.append((item.key, f"the key {item.key!r} appears twice in the input"))
            continue
        in_input.add(uid)
        place = present.get(uid)
        if place is None:
            fresh.append(item)
        elif place.status == "retired":
            result.refused.append((item.key, f"{uid} is retired in the register (identifiers are never reused)"))
        else:
            try:
                changed = _update_from_import(session, place, item, source, actor)
            except (Conflict, ValidationFailed) as exc:
                result.refused.append((item.key, exc.message))
                continue
            if changed:
                result.updated += 1
            else:
                result.unchanged += 1
    if fresh:
        _flush_batch(session, fresh, source, actor, result, known_kinds, taken_ids, indexes)
    session.flush()


def _update_from_import(session: Session, place: Place, item: NewPlace, source: str, actor: str) -> bool:
    """Bring one place in line with its row in a source; a version records what changed. Whether it changed."""
    now = utcnow()
    diff: dict[str, Any] = {}
    name = _check_name(item.name)
    # identifiers first: a value another active place holds refuses the whole row, before anything is written
    before_ids = _identifier_map(place)
    wanted_ids = {s: list(dict.fromkeys(str(v).strip() for v in vs if str(v).strip()))
                  for s, vs in item.identifiers.items()}
    new_pairs = [(s, v) for s, vs in wanted_ids.items() for v in vs if v not in before_ids.get(s, [])]
    for scheme, value in new_pairs:
        owner = session.scalar(select(Place.uid).join(PlaceIdentifier).where(
            PlaceIdentifier.scheme == scheme, PlaceIdentifier.value == value, PlaceIdentifier.active,
            PlaceIdentifier.place_id != place.id))
        if owner is not None:
            raise Conflict(f"the {scheme} identifier {value} already belongs to {owner}")
    if name != " ".join(place.name.split()):  # bulk loads keep names as written, spaces and all
        for n in place.names:
            if n.preferred:
                n.preferred = False  # the former name stays, as an alternative name people still use
        former = next((n for n in place.names if n.name == name and n.valid_to is None), None)
        if former is not None:
            former.preferred = True
        else:
            place.names.append(PlaceName(name=name, preferred=True, source=source, asserted_at=now))
        diff["name"] = [place.name, name]
        place.name = name
    current_alts = {n.name for n in place.names if not n.preferred and n.valid_to is None}
    added = [a for a in dict.fromkeys(" ".join(str(a).split()) for a in item.alt_names)
             if a and a != name and a not in current_alts]
    for alt in added:
        place.names.append(PlaceName(name=alt, preferred=False, source=source, asserted_at=now))
    if added:
        diff["alt_names"] = [sorted(current_alts), sorted(current_alts | set(added))]
    if wanted_ids:
        for ident in place.identifiers:
            # a scheme the source asserts: its former values from the same source are withdrawn
            if (ident.active and ident.scheme in wanted_ids and ident.value not in wanted_ids[ident.scheme]
                    and ident.source == source):
                ident.active = False
        session.flush()
        for scheme, value in new_pairs:
            place.identifiers.append(PlaceIdentifier(scheme=scheme, value=value, active=True, source=source,
                                                     asserted_at=now))
        after_ids = _identifier_map(place)
        if after_ids != before_ids:
            diff["identifiers"] = [before_ids, after_ids]
    fp = item.footprint
    if fp is not None and _plain(fp.wgs84) != _plain(place.geometry):
        diff["geometry"] = [place.geometry, fp.wgs84]
        _apply_footprint(place, fp, source, now)
    props = {**(place.properties or {}), **_plain(item.properties)}
    if props != _plain(place.properties or {}):
        diff["properties"] = [place.properties, props]
        place.properties = props
    if not diff:
        return False
    place.updated_at = now
    session.flush()
    if "geometry" in diff:
        _set_area_links(session, place)
    _version(session, place, "update", actor, source, diff, "re-import")
    return True


def retire_missing(session: Session, *, kind: str, source: str, present: set[str], actor: str = "",
                   reason: str = "no longer in the source") -> int:
    """Retire the active places of ``kind`` first asserted by ``source`` whose uids are not in ``present``
    (a full source re-imported); returns how many. Their identifiers are freed, never reused."""
    first = aliased(PlaceVersion)
    candidates = session.execute(
        select(Place.id, Place.uid).join(first, (first.place_id == Place.id) & (first.version == 1))
        .where(Place.kind == kind, Place.status == "active", first.source == source)).all()
    gone = [(pid, uid) for pid, uid in candidates if uid not in present]
    if not gone:
        return 0
    if not present:
        raise ValidationFailed(f"The source held no places of kind {kind!r}: refusing to retire all "
                               f"{len(gone)} of them. Check the file.", {"path": "No places in the source."})
    for pid, uid in gone:
        retire_place(session, uid, source=source, actor=actor, reason=reason)
    return len(gone)


def relink_areas(session: Session, kinds: Sequence[str] | None = None) -> int:
    """Recompute the containing areas of every active place (of ``kinds``) from the geometries; returns links made."""
    query = select(Place.id, Place.kind, Place.point_lon, Place.point_lat).where(
        Place.status == "active", Place.point_lon.is_not(None))
    if kinds:
        query = query.where(Place.kind.in_(list(kinds)))
    rows = list(session.execute(query))
    if not rows:
        return 0
    session.execute(delete(PlaceArea).where(PlaceArea.place_id.in_(select(Place.id).where(
        Place.status == "active", Place.kind.in_(list(kinds)) if kinds else Place.status == "active"))))
    groups: dict[tuple[str, ...], list[Any]] = defaultdict(list)
    for row in rows:
        if containers_of(row.kind):
            groups[containers_of(row.kind)].append(row)
    links = []
    for wanted, members in groups.items():
        index = spatial.AreaIndex.load(session, wanted)
        for row, areas in zip(members, index.assign([m.point_lon for m in members], [m.point_lat for m in members])):
            for kind, (area_id, _uid) in areas.items():
                if area_id != row.id:
                    links.append({"place_id": row.id, "area_id": area_id, "area_kind": kind})
    if links:
        session.execute(insert(PlaceArea), links)
    return len(links)


__all__ = ["STATUSES", "create_place", "update_place", "retire_place", "get_place", "iter_match_records",
           "bulk_create", "place_dict", "containing_areas", "contained_places", "seed_kinds", "kinds",
           "make_uid", "NewPlace", "BulkResult", "relink_areas", "counts_by_kind", "bulk_upsert", "retire_missing"]
