"""Links between the register and the other capabilities: the datasets and sensor Things about a place.

Nothing here writes another capability's tables; it reads them through their service layers.

* A catalogue dataset is about a place when it covers the place's GSS code (the boroughs it
  lists, dct:spatial) or names the place's ``ldn:`` uid (its ``places`` field).
* A sensor Thing is at a place when its ``properties.place`` is the place's uid, when its LAQN
  ``properties.siteCode`` is the place's ``laqn`` identifier, or, for an area, when its Location
  lies inside the area's geometry. A Thing's own place is the first of: its ``properties.place``,
  the air quality site of its site code, the smallest area containing its Location.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import shapely
from shapely.geometry import shape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..catalogue import service as catalogue
from ..sensors import service as sensors
from . import spatial
from .models import Place, PlaceIdentifier

SMALLEST_FIRST = ("lsoa", "msoa", "ward", "borough")


def _identifiers(place: Place, scheme: str) -> list[str]:
    return [i.value for i in place.identifiers if i.scheme == scheme and i.active]


def _place_brief(place: Place, via: str) -> dict[str, Any]:
    return {"uid": place.uid, "name": place.name, "kind": place.kind, "status": place.status, "via": via,
            "href": f"/places/{place.uid}"}


def place_by_identifier(session: Session, scheme: str, value: str) -> Place | None:
    """The active place holding an external identifier (such as gss E09000007), or None."""
    return session.scalar(select(Place).join(PlaceIdentifier).where(
        PlaceIdentifier.scheme == scheme, PlaceIdentifier.value == value, PlaceIdentifier.active))


def gss_names(session: Session, codes: Sequence[str]) -> dict[str, tuple[str, str]]:
    """GSS code -> (register uid, name) for the codes the register knows."""
    if not codes:
        return {}
    rows = session.execute(select(PlaceIdentifier.value, Place.uid, Place.name).join(Place).where(
        PlaceIdentifier.scheme == "gss", PlaceIdentifier.active, PlaceIdentifier.value.in_(list(codes))))
    return {code: (uid, name) for code, uid, name in rows}


# --- datasets ----------------------------------------------------------------------------------

def places_of_dataset(session: Session, dataset: Any) -> list[dict[str, Any]]:
    """The register places a catalogue dataset is about: its boroughs by GSS code, then the places it names."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for area in dataset.areas:
        place = place_by_identifier(session, "gss", area.gss_code)
        if place is not None and place.uid not in seen:
            seen.add(place.uid)
            out.append({**_place_brief(place, "gss"), "gss": area.gss_code})
    uids = [ref.place_uid for ref in dataset.place_refs if ref.place_uid not in seen]
    found = {p.uid: p for p in session.scalars(select(Place).where(Place.uid.in_(uids)))} if uids else {}
    for uid in uids:
        if uid in found:
            out.append(_place_brief(found[uid], "ldn"))
    return out


def _dataset_brief(ds: Any) -> dict[str, Any]:
    return {"slug": ds.slug, "title": ds.title, "href": f"/dataset/{ds.slug}",
            "publisher": ds.organisation.name if ds.organisation else "",
            "modified": ds.modified.isoformat() if ds.modified else None}


def datasets_about_page(session: Session, place: Place, *, limit: int = 20, offset: int = 0
                        ) -> tuple[int, list[dict[str, Any]]]:
    """Public datasets about the place (by its GSS code or its uid): how many, and one page of them by title."""
    total, datasets = catalogue.datasets_about_places(session, _identifiers(place, "gss"), [place.uid],
                                                      limit=limit, offset=offset)
    return total, [_dataset_brief(ds) for ds in datasets]


def datasets_about(session: Session, place: Place) -> list[dict[str, Any]]:
    """Every public dataset about the place (at most 1,000), by title."""
    return datasets_about_page(session, place, limit=1000)[1]


# --- sensor Things -----------------------------------------------------------------------------

def _thing_brief(thing: dict[str, Any], via: str) -> dict[str, Any]:
    props = thing["properties"]
    return {"id": thing["id"], "name": thing["name"], "href": f"/sensors/things/{thing['id']}",
            "sta": f"/sta/v1.1/Things({thing['id']})", "siteCode": props.get("siteCode"),
            "siteType": props.get("siteType") or "", "lon": thing["lon"], "lat": thing["lat"], "via": via}


def sensors_about(session: Session, place: Place) -> list[dict[str, Any]]:
    """Things at the place (by ``properties.place`` or LAQN site code) or, for an area, located inside it."""
    codes = set(_identifiers(place, "laqn"))
    region = shape(place.geometry) if place.geometry and place.kind in spatial.AREA_KINDS else None
    things = sensors.thing_positions(session)
    inside = [False] * len(things)
    if region is not None:
        located = [i for i, t in enumerate(things) if t["lon"] is not None]
        if located:
            hits = shapely.intersects_xy(region, [things[i]["lon"] for i in located], [things[i]["lat"] for i in located])
            for i, hit in zip(located, hits.tolist()):
                inside[i] = bool(hit)
    out = []
    for thing, is_inside in zip(things, inside):
        props = thing["properties"]
        if props.get("place") == place.uid:
            out.append(_thing_brief(thing, "property"))
        elif props.get("siteCode") and str(props["siteCode"]) in codes:
            out.append(_thing_brief(thing, "laqn"))
        elif is_inside:
            out.append(_thing_brief(thing, "location"))
    return out


def place_of_thing(session: Session, thing: int | dict[str, Any]) -> dict[str, Any] | None:
    """A Thing's place in the register and its containing areas (None if it has neither a known place nor a location)."""
    if isinstance(thing, int):
        found = sensors.thing_positions(session, [thing])
        if not found:
            return None
        thing = found[0]
    props = thing["properties"]
    place: Place | None = None
    via = ""
    ref = props.get("place")
    if isinstance(ref, str) and ref.startswith("ldn:"):
        place = session.scalar(select(Place).where(Place.uid == ref))
        via = "property"
    if place is None and props.get("siteCode"):
        place = place_by_identifier(session, "laqn", str(props["siteCode"]))
        via = "laqn"
    areas: dict[str, dict[str, str]] = {}
    if thing["lon"] is not None and thing["lat"] is not None:
        for _id, uid, kind, name in spatial.areas_at(session, thing["lon"], thing["lat"]):
            areas.setdefault(kind, {"uid": uid, "name": name})
    elif place is not None:
        from .service import containing_areas

        areas = {a["kind"]: {"uid": a["uid"], "name": a["name"]} for a in containing_areas(session, place)}
    if place is None:
        smallest = next((k for k in SMALLEST_FIRST if k in areas), None)
        if smallest is None:
            return None
        return {**areas[smallest], "kind": smallest, "via": "location", "href": f"/places/{areas[smallest]['uid']}",
                "areas": areas}
    return {**_place_brief(place, via), "areas": areas}


_BOROUGHS: dict[Any, spatial.AreaIndex] = {}


def _borough_index(session: Session) -> spatial.AreaIndex:
    """The register's boroughs in memory, reused until a borough changes (the sensor list asks on every view)."""
    stamp = session.execute(select(func.count(), func.max(Place.updated_at), func.max(Place.id)).where(
        Place.kind == "borough", Place.status == "active")).one()
    key = (str(session.get_bind().url), tuple(stamp))
    if key not in _BOROUGHS:
        _BOROUGHS.clear()
        _BOROUGHS[key] = spatial.AreaIndex.load(session, ("borough",))
    return _BOROUGHS[key]


def boroughs_of_things(session: Session, things: Sequence[dict[str, Any]]) -> dict[int, dict[str, str]]:
    """Thing id -> the register borough (uid, name) containing its location, for Things with ``lon``/``lat``."""
    located = [t for t in things if t.get("longitude", t.get("lon")) is not None]
    if not located:
        return {}
    index = _borough_index(session)
    lons = [t.get("longitude", t.get("lon")) for t in located]
    lats = [t.get("latitude", t.get("lat")) for t in located]
    assigned = index.assign(lons, lats)
    ids = {pid for a in assigned for pid, _ in a.values()}
    names = {i: n for i, n in session.execute(select(Place.id, Place.name).where(Place.id.in_(ids)))} if ids else {}
    return {t["id"]: {"uid": a["borough"][1], "name": names.get(a["borough"][0], "")}
            for t, a in zip(located, assigned) if "borough" in a}
