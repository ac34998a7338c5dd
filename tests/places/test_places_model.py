"""The register's model: identifiers, names with provenance, versions, retirement and bad geometries."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from smartlondon.core.errors import Conflict, ValidationFailed
from smartlondon.places import service
from smartlondon.places.models import Place, PlaceVersion

ROUNDHOUSE = {"type": "Point", "coordinates": [-0.1519, 51.5432]}


def _count(db) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Place))


def test_a_place_keeps_its_names_identifiers_and_history(db) -> None:
    with db.session() as session:
        place = service.create_place(session, kind="cultural-venue", key="roundhouse", name="The Roundhouse",
                                     geometry=ROUNDHOUSE, source="GLA Culture", actor="ann",
                                     identifiers={"osm": "way/4253458"}, alt_names=["Roundhouse Camden"])
        assert place.uid == "ldn:cultural-venue:roundhouse"
        assert place.geometry_bng["type"] == "Point"
        e, n = place.geometry_bng["coordinates"]
        assert 528000 < e < 529000 and 184000 < n < 185000
    with db.session() as session:
        service.update_place(session, "ldn:cultural-venue:roundhouse", {"name": "Roundhouse"}, source="Camden",
                             actor="bob", reason="the venue's own name")
    with db.session() as session:
        data = service.place_dict(session, service.get_place(session, "ldn:cultural-venue:roundhouse"))
        assert data["name"] == "Roundhouse"
        assert [(v["version"], v["action"], v["actor"]) for v in data["history"]] == [(1, "create", "ann"),
                                                                                     (2, "update", "bob")]
        assert data["history"][1]["changes"]["name"] == ["The Roundhouse", "Roundhouse"]
        preferred = [n for n in data["names"] if n["preferred"]]
        assert [(n["name"], n["source"]) for n in preferred] == [("Roundhouse", "Camden")]
        old = next(n for n in data["names"] if n["name"] == "The Roundhouse")
        assert (old["preferred"], old["current"], old["source"]) == (False, True, "GLA Culture")
        assert data["identifiers"][0] | {"asserted_at": None} == {"scheme": "osm", "value": "way/4253458", "active": True,
                                                                  "source": "GLA Culture", "asserted_at": None}
        record = next(service.iter_match_records(session))
        assert record.name == "Roundhouse" and record.alt_names == ("The Roundhouse", "Roundhouse Camden")
        assert record.identifiers == {"osm": ("way/4253458",)}


def test_retired_places_point_to_successors_and_free_their_identifiers(db) -> None:
    with db.session() as session:
        service.create_place(session, kind="school", key="old", name="Old School", geometry=ROUNDHOUSE,
                             source="DfE", identifiers={"urn": "100001"})
        service.create_place(session, kind="school", key="new", name="New Academy", geometry=ROUNDHOUSE, source="DfE")
        service.retire_place(session, "ldn:school:old", successors=["ldn:school:new"], source="DfE", reason="merged")
    with db.session() as session:
        old = service.get_place(session, "ldn:school:old")
        assert (old.status, old.successors) == ("retired", ["ldn:school:new"])
        assert [r.uid for r in service.iter_match_records(session)] == ["ldn:school:new"]
        service.update_place(session, "ldn:school:new", {"identifiers": {"urn": "100001"}}, source="DfE")
    with db.session() as session, pytest.raises(Conflict, match="never reused"):
        service.create_place(session, kind="school", key="old", name="Again", source="DfE")


def test_an_identifier_belongs_to_one_active_place(db) -> None:
    with db.session() as session:
        service.create_place(session, kind="station", key="a", name="A", source="TfL", identifiers={"nlc": "500"})
    with db.session() as session, pytest.raises(Conflict, match="already belongs to ldn:station:a"):
        service.create_place(session, kind="station", key="b", name="B", source="TfL", identifiers={"nlc": "500"})
    assert _count(db) == 1


@pytest.mark.parametrize(("geometry", "crs", "message"), [
    ({"type": "Polygon", "coordinates": [[[-0.15, 51.50], [-0.10, 51.53], [-0.10, 51.50], [-0.15, 51.53],
                                          [-0.15, 51.50]]]}, None, "not a valid geometry"),
    ({"type": "Point", "coordinates": [530000, 180000]}, None, "look like British National Grid"),
    ({"type": "Point", "coordinates": [2.3376, 48.8606]}, None, "outside London"),
    ({"type": "Point", "coordinates": [-0.1, 51.5]}, "http://www.opengis.net/def/crs/EPSG/0/27700", "not British National Grid"),
    ({"type": "Nowhere"}, None, "must be a GeoJSON geometry"),
])
def test_bad_geometries_are_refused_with_a_message_and_nothing_is_written(db, geometry, crs, message) -> None:
    with db.session() as session, pytest.raises(ValidationFailed, match=message):
        service.create_place(session, kind="park", key="p", name="A park", geometry=geometry, crs=crs, source="GLA")
    assert _count(db) == 0
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(PlaceVersion)) == 0


def test_a_point_given_in_british_national_grid_is_stored_in_both_crs(db) -> None:
    with db.session() as session:
        place = service.create_place(session, kind="lamppost", key="lp1", name="Lamppost 1", source="Camden",
                                     geometry={"type": "Point", "coordinates": [530000.0, 182000.0]}, crs="EPSG:27700")
        assert place.geometry_bng["coordinates"] == [530000.0, 182000.0]
        lon, lat = place.geometry["coordinates"]
        assert -0.13 < lon < -0.12 and 51.52 < lat < 51.53


def test_an_unknown_kind_is_refused(db) -> None:
    with db.session() as session, pytest.raises(ValidationFailed, match="not in the taxonomy"):
        service.create_place(session, kind="castle", name="Tower", source="HRP")


def test_match_records_carry_only_names_valid_today(db) -> None:
    from datetime import date

    from smartlondon.places.models import PlaceName

    with db.session() as session:
        place = service.create_place(session, kind="station", key="kgx", name="King's Cross St. Pancras",
                                     source="TfL", identifiers={"nlc": "625"}, geometry={"type": "Point",
                                     "coordinates": [-0.1238, 51.5308]})
        session.add(PlaceName(place_id=place.id, name="King's Cross Thameslink", source="TfL",
                              valid_from=date(1988, 5, 16), valid_to=date(2007, 12, 8)))
        session.add(PlaceName(place_id=place.id, name="Kings X", source="TfL", valid_from=date(2000, 1, 1)))
        session.add(PlaceName(place_id=place.id, name="King's Cross (future)", source="TfL", valid_from=date(2999, 1, 1)))
    with db.session() as session:
        [record] = list(service.iter_match_records(session))
    assert record.alt_names == ("Kings X",)
    assert record.identifiers == {"nlc": ("625",)} and (record.lon, record.lat) == (-0.1238, 51.5308)


def test_areas_loaded_after_points_are_linked_by_relink(db) -> None:
    from smartlondon.places import importer

    from ..conftest import SHARED_DATA

    with db.session() as session:
        importer.load_london(session, SHARED_DATA, kinds=("station",))
        importer.load_london(session, SHARED_DATA, kinds=("borough",), keep={"borough": lambda r: r["GSS_CODE"] == "E09000007"})
        assert service.containing_areas(session, service.get_place(session, "ldn:station:625")) == []
        assert service.relink_areas(session) > 5
        assert service.containing_areas(session, service.get_place(session, "ldn:station:625")) == [
            {"kind": "borough", "uid": "ldn:borough:E09000007", "name": "Camden"}]
