"""Match records made straight from the real files in ../shared/data, for the matcher's tests.

The register (places-core) makes the same records from its tables; these let the matcher be tested
on real London names without a database: the 33 boroughs, 983 MSOAs and 4,835 LSOAs of the 2011
boundary files, the 471 rows of TfL's station file (borough found by point-in-polygon in British National Grid)
and the LAQN sites. Use with ``from tests.places.match_data import real_records``.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import shapefile
from shapely.geometry import Point, shape
from shapely.strtree import STRtree

from smartlondon.places.records import MatchRecord

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BOUNDARIES = DATA / "boundaries"


@functools.lru_cache(maxsize=1)
def _boroughs() -> tuple[list[tuple[str, str]], list]:
    reader = shapefile.Reader(str(BOUNDARIES / "London_Borough_Excluding_MHW"))
    names = [(rec["NAME"], rec["GSS_CODE"]) for rec in reader.records()]
    shapes = [shape(s.__geo_interface__) for s in reader.shapes()]
    return names, shapes


@functools.lru_cache(maxsize=1)
def real_records() -> tuple[MatchRecord, ...]:
    """Every borough, MSOA, LSOA, TfL station and LAQN site as a MatchRecord (about 6,400)."""
    out: list[MatchRecord] = []
    names, shapes = _boroughs()
    by_name = {}
    for name, gss in names:
        uid = f"ldn:borough:{gss}"
        by_name[name.lower()] = uid
        alts = ("London Borough of " + name,) if name != "City of London" else ()
        out.append(MatchRecord(uid=uid, kind="borough", name=name, alt_names=alts, identifiers={"gss": (gss,)}))
    with shapefile.Reader(str(BOUNDARIES / "MSOA_2011_London_gen_MHW")) as reader:
        for rec in reader.iterRecords(fields=["MSOA11CD", "MSOA11NM", "LAD11CD"]):
            out.append(MatchRecord(uid=f"ldn:msoa:{rec[0]}", kind="msoa", name=rec[1], identifiers={"gss": (rec[0],)},
                                   areas={"borough": f"ldn:borough:{rec[2]}"}))
    with shapefile.Reader(str(BOUNDARIES / "LSOA_2011_London_gen_MHW")) as reader:
        for rec in reader.iterRecords(fields=["LSOA11CD", "LSOA11NM", "MSOA11CD", "LAD11CD"]):
            out.append(MatchRecord(uid=f"ldn:lsoa:{rec[0]}", kind="lsoa", name=rec[1], identifiers={"gss": (rec[0],)},
                                   areas={"borough": f"ldn:borough:{rec[3]}", "msoa": f"ldn:msoa:{rec[2]}"}))
    tree = STRtree(shapes)
    seen: set[str] = set()
    with open(DATA / "transport" / "tfl-stations-2022.csv", newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            point = Point(float(row["EASTING"]), float(row["NORTHING"]))
            hits = [i for i in tree.query(point) if shapes[i].covers(point)]
            areas = {"borough": f"ldn:borough:{names[hits[0]][1]}"} if hits else {}
            uid = f"ldn:station:{row['NLC']}"
            uid = uid if uid not in seen else f"{uid}-2"  # the file gives NLC 3186 to two stations
            seen.add(uid)
            out.append(MatchRecord(uid=uid, kind="station", name=row["NAME"],
                                   identifiers={"nlc": (row["NLC"],)}, lon=float(row["x"]), lat=float(row["y"]),
                                   areas=areas))
    with open(DATA / "air-quality" / "laqn-sites.csv", newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            borough = by_name.get(row["@LocalAuthorityName"].strip().lower())
            out.append(MatchRecord(uid=f"ldn:aq-site:{row['@SiteCode']}", kind="aq-site", name=row["@SiteName"].strip(),
                                   identifiers={"laqn": (row["@SiteCode"],)},
                                   lon=float(row["@Longitude"]), lat=float(row["@Latitude"]),
                                   areas={"borough": borough} if borough else {}))
    return tuple(out)


def register_subset() -> list[MatchRecord]:
    """The boroughs, stations and LAQN sites, and Camden's MSOAs and LSOAs (about 830 places)."""
    camden = "ldn:borough:E09000007"
    return [r for r in real_records()
            if r.kind in ("borough", "station", "aq-site") or r.areas.get("borough") == camden]


def seed_register(db, records: list[MatchRecord] | None = None) -> list[MatchRecord]:  # type: ignore[no-untyped-def]
    """Write ``records`` (default: ``register_subset()``) into the register's tables, in bulk."""
    from sqlalchemy import insert, select

    from smartlondon.places.models import Place, PlaceArea, PlaceIdentifier, PlaceKind, PlaceName

    records = register_subset() if records is None else records
    labels = {"borough": "Borough", "msoa": "MSOA", "lsoa": "LSOA", "station": "Station", "aq-site": "Air quality site"}
    with db.session() as session:
        known = set(session.scalars(select(PlaceKind.code)))
        kinds = sorted({r.kind for r in records} - known)
        if kinds:
            session.execute(insert(PlaceKind), [{"code": k, "label": labels.get(k, k), "is_area": k in ("borough", "msoa", "lsoa")}
                                                for k in kinds])
        session.execute(insert(Place), [{"uid": r.uid, "kind": r.kind, "name": r.name, "status": "active",
                                         "point_lon": r.lon, "point_lat": r.lat} for r in records])
        ids = dict(session.execute(select(Place.uid, Place.id)).all())
        names, idents, areas, used = [], [], [], set()
        for r in records:
            names.append({"place_id": ids[r.uid], "name": r.name, "preferred": True, "source": "test"})
            names += [{"place_id": ids[r.uid], "name": a, "preferred": False, "source": "test"} for a in r.alt_names]
            for scheme, values in r.identifiers.items():
                for v in values:
                    idents.append({"place_id": ids[r.uid], "scheme": scheme, "value": v, "active": (scheme, v) not in used,
                                   "source": "test"})
                    used.add((scheme, v))
            areas += [{"place_id": ids[r.uid], "area_id": ids[a], "area_kind": k} for k, a in r.areas.items() if a in ids]
        session.execute(insert(PlaceName), names)
        if idents:
            session.execute(insert(PlaceIdentifier), idents)
        if areas:
            session.execute(insert(PlaceArea), areas)
    return records
