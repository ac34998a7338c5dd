"""Importing a source again: changed places are updated as versions, vanished ones retired, the rest untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from smartlondon.cli import main
from smartlondon.core.errors import ValidationFailed
from smartlondon.places import importer, service
from smartlondon.places.models import Place, PlaceVersion

HEADER = "code,name,lon,lat,osm"
FIRST = [
    "regents,Regent's Park,-0.1537,51.5313,1",
    "hyde,Hyde Park,-0.1657,51.5073,2",
    "green,Green Park,-0.1420,51.5043,3",
    "st-james,St James's Park,-0.1340,51.5025,4",
]


def write(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def load(db, path: Path, full: bool = False, source: str = "Royal Parks") -> service.BulkResult:
    with db.session() as session:
        return importer.import_file(session, path, kind="park", key_field="code", name_field="name", source=source,
                                    identifiers={"osm": "osm"}, full=full)


def counts(result: service.BulkResult) -> tuple[int, int, int, int]:
    return result.created, result.updated, result.unchanged, result.retired


def versions(db) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(PlaceVersion))


def test_importing_the_same_file_again_changes_nothing(db, tmp_path: Path) -> None:
    path = write(tmp_path / "parks.csv", FIRST)
    assert counts(load(db, path)) == (4, 0, 0, 0)
    with db.session() as session:
        stamp = session.scalar(select(func.max(Place.updated_at)))
    assert counts(load(db, path, full=True)) == (0, 0, 4, 0)
    assert versions(db) == 4
    with db.session() as session:
        assert session.scalar(select(func.max(Place.updated_at))) == stamp


def test_a_changed_source_updates_retires_and_adds(db, tmp_path: Path) -> None:
    load(db, write(tmp_path / "v1.csv", FIRST))
    second = [
        "regents,The Regent's Park,-0.1537,51.5313,1",     # renamed
        "hyde,Hyde Park,-0.1600,51.5080,2",                 # moved
        "green,Green Park,-0.1420,51.5043,33",              # new OpenStreetMap id
        "holland,Holland Park,-0.2030,51.5030,5",           # new; St James's Park has gone
    ]
    result = load(db, write(tmp_path / "v2.csv", second), full=True)
    assert counts(result) == (1, 3, 0, 1) and result.as_dict()["retired"] == 1
    with db.session() as session:
        regents = service.place_dict(session, service.get_place(session, "ldn:park:regents"))
        assert regents["name"] == "The Regent's Park"
        assert {n["name"] for n in regents["names"] if not n["preferred"]} == {"Regent's Park"}
        last = regents["history"][-1]
        assert (last["version"], last["action"], last["source"], last["reason"]) == (2, "update", "Royal Parks",
                                                                                      "re-import")
        assert last["changes"] == {"name": ["Regent's Park", "The Regent's Park"]}

        hyde = service.get_place(session, "ldn:park:hyde")
        assert (hyde.point_lon, hyde.point_lat) == (-0.16, 51.508)
        assert hyde.geometry_source == "Royal Parks" and list(hyde.versions[-1].changes) == ["geometry"]

        green = service.place_dict(session, service.get_place(session, "ldn:park:green"))
        assert [(i["value"], i["active"]) for i in green["identifiers"]] == [("3", False), ("33", True)]

        gone = service.get_place(session, "ldn:park:st-james")
        assert gone.status == "retired" and gone.versions[-1].reason == "no longer in the source"
        assert all(not i.active for i in gone.identifiers)
        assert service.get_place(session, "ldn:park:holland").status == "active"
    # the retired park's OpenStreetMap id is free again
    assert counts(load(db, write(tmp_path / "v3.csv", ["kew,Kew Gardens,-0.2950,51.4780,4"]))) == (1, 0, 0, 0)


def test_without_full_nothing_is_retired(db, tmp_path: Path) -> None:
    load(db, write(tmp_path / "v1.csv", FIRST))
    assert counts(load(db, write(tmp_path / "v2.csv", FIRST[:2]))) == (0, 0, 2, 0)
    with db.session() as session:
        assert service.get_place(session, "ldn:park:green").status == "active"


def test_a_full_import_retires_only_its_own_source(db, tmp_path: Path) -> None:
    load(db, write(tmp_path / "v1.csv", FIRST))
    load(db, write(tmp_path / "other.csv", ["vicky,Victoria Park,-0.0410,51.5360,9"]), source="Tower Hamlets")
    result = load(db, write(tmp_path / "v2.csv", FIRST[:3]), full=True)
    assert counts(result) == (0, 0, 3, 1)
    with db.session() as session:
        assert service.get_place(session, "ldn:park:vicky").status == "active"
        assert service.get_place(session, "ldn:park:st-james").status == "retired"


def test_an_empty_full_source_retires_nothing(db, tmp_path: Path) -> None:
    load(db, write(tmp_path / "v1.csv", FIRST))
    with pytest.raises(ValidationFailed, match="refusing to retire all 4"):
        load(db, write(tmp_path / "empty.csv", []), full=True)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Place).where(Place.status == "active")) == 4


def test_a_taken_identifier_refuses_the_row_and_writes_nothing_for_it(db, tmp_path: Path) -> None:
    load(db, write(tmp_path / "v1.csv", FIRST))
    rows = ["regents,Regent's Park North,-0.1537,51.5313,2", *FIRST[1:]]  # claims Hyde Park's id
    result = load(db, write(tmp_path / "v2.csv", rows))
    assert counts(result) == (0, 0, 3, 0)
    assert result.refused == [("regents", "the osm identifier 2 already belongs to ldn:park:hyde")]
    with db.session() as session:
        assert service.get_place(session, "ldn:park:regents").name == "Regent's Park"
    assert versions(db) == 4


def test_a_retired_place_in_the_source_is_not_revived(db, tmp_path: Path) -> None:
    load(db, write(tmp_path / "v1.csv", FIRST))
    load(db, write(tmp_path / "v2.csv", FIRST[:3]), full=True)
    result = load(db, write(tmp_path / "v3.csv", FIRST))
    assert counts(result) == (0, 0, 3, 0)
    assert result.refused == [("st-james", "ldn:park:st-james is retired in the register (identifiers are never reused)")]


def test_the_command_reports_counts_and_imports_wards(db, settings, tmp_path: Path, monkeypatch) -> None:
    """There are no ward boundaries in the shared data: a made-up square stands in for a ward file here."""
    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", db.url)
    monkeypatch.setenv("SMARTLONDON_DATA_DIR", str(settings.data_dir))
    ward = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {
        "WD22CD": "E05999999", "WD22NM": "Test Ward"}, "geometry": {"type": "Polygon", "coordinates": [[
            [-0.13, 51.52], [-0.11, 51.52], [-0.11, 51.54], [-0.13, 51.54], [-0.13, 51.52]]]}}]}
    path = tmp_path / "wards.geojson"
    path.write_text(json.dumps(ward))
    args = ["places", "import", str(path), "--kind", "ward", "--key-field", "WD22CD", "--name-field", "WD22NM",
            "--id", "gss=WD22CD", "--source", "ONS", "--official", "--full"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "1 added, 0 updated, 0 unchanged, 0 retired, 0 refused" in " ".join(first.output.split())
    again = CliRunner().invoke(main, args)
    assert "0 added, 0 updated, 1 unchanged, 0 retired" in " ".join(again.output.split())
    with db.session() as session:
        assert service.get_place(session, "ldn:ward:E05999999").name == "Test Ward"
        venue = service.create_place(session, kind="cultural-venue", name="Somewhere", source="GLA",
                                     geometry={"type": "Point", "coordinates": [-0.12, 51.53]})
        assert {a["kind"]: a["uid"] for a in service.containing_areas(session, venue)} == {
            "ward": "ldn:ward:E05999999"}
    empty = tmp_path / "none.geojson"
    empty.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    refused = CliRunner().invoke(main, [*args[:2], str(empty), *args[3:]])
    assert refused.exit_code == 1 and "refusing to retire all 1" in " ".join(refused.output.split())
