"""Loading the real London Air Quality Network into the SensorThings store (sensors/laqn.py).

The first three sites (BG1, BG2, BL0, by site code) and the first two days of
laqn-hourly-2023Q1.csv.gz, read independently here with the csv module, so the counts the
store ends up with are checked against the file itself.
"""

from __future__ import annotations

import csv
import gzip
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from smartlondon.core.errors import BadRequest
from smartlondon.sensors import laqn
from smartlondon.sensors.models import (
    Datastream, HistoricalLocation, Latest, Location, Observation, ObservedProperty, Sensor, Thing, ThingLocation,
)

AIR = laqn.AIR_QUALITY_DIR
SITES = {"BG1", "BG2", "BL0"}
END = "2023-01-03"


def expected() -> dict[tuple[str, str], dict[str, float]]:
    """(site, species) -> {time text: first value} for the test window, straight from the file."""
    series: dict[tuple[str, str], dict[str, float]] = {}
    with gzip.open(AIR / laqn.HOURLY_FILE, "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["site_code"] in SITES and row["measurement_date_gmt"] < END:
                values = series.setdefault((row["site_code"], row["species_code"]), {})
                if row["value"] != "":
                    values.setdefault(row["measurement_date_gmt"], float(row["value"]))
    return series


def counts(db) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return {m.__name__: session.scalar(select(func.count()).select_from(m))
                for m in (Thing, Location, HistoricalLocation, Datastream, Sensor, ObservedProperty, Observation, Latest)}


def test_loads_sites_species_and_hours_as_in_the_file_and_rerun_adds_nothing(db) -> None:  # type: ignore[no-untyped-def]
    want = expected()
    summary = laqn.load_laqn(db, limit_sites=3, days=2)
    n_obs = sum(len(v) for v in want.values())
    assert summary.things_created == 3 and summary.datastreams_created == len(want)
    assert summary.observations_created == n_obs
    got = counts(db)
    assert got["Thing"] == 3 and got["Location"] == 3 and got["HistoricalLocation"] == 3
    assert got["Datastream"] == len(want) and got["Observation"] == n_obs
    assert got["ObservedProperty"] == len({sp for _, sp in want})
    assert got["Latest"] == sum(1 for v in want.values() if v)

    with db.session() as session:
        things = {t.properties["siteCode"]: t for t in session.scalars(select(Thing))}
        assert set(things) == SITES
        bl0 = things["BL0"]
        assert bl0.name == "Camden - Bloomsbury"
        assert bl0.properties["siteType"] == "Urban Background" and bl0.properties["borough"] == "Camden"
        assert bl0.properties["opened"] and bl0.properties["closed"] is None
        assert bl0.properties["dataOwner"]
        loc = session.scalar(select(Location).join(ThingLocation, ThingLocation.location_id == Location.id)
                             .where(ThingLocation.thing_id == bl0.id))
        assert loc.encoding_type == "application/geo+json" and loc.location["type"] == "Point"
        lon, lat = loc.location["coordinates"]
        assert 51.5 < lat < 51.53 and -0.14 < lon < -0.11  # Russell Square, Bloomsbury
        for ds, site, op in session.execute(
                select(Datastream, Thing.properties, ObservedProperty)
                .join(Thing, Thing.id == Datastream.thing_id)
                .join(ObservedProperty, ObservedProperty.id == Datastream.observed_property_id)):
            code = ds.properties["speciesCode"]
            species = laqn.SPECIES[code]
            assert ds.observation_type.endswith("OM_Measurement")
            assert ds.unit_of_measurement == species.unit and op.definition == species.definition
            # the latest value is the file's value at the series' last hour
            values = want[(site["siteCode"], code)]
            latest = session.get(Latest, ds.id)
            if not values:
                assert latest is None
                continue
            last = max(values)
            assert latest.result == values[last]
            assert latest.phenomenon_time_start.astimezone(timezone.utc) == \
                datetime.fromisoformat(last).replace(tzinfo=timezone.utc)
        co = session.scalar(select(Datastream).where(Datastream.name.like("Carbon monoxide%")))
        assert co.unit_of_measurement["symbol"] == "mg/m³"
        no2 = session.scalar(select(ObservedProperty).where(ObservedProperty.name == "Nitrogen dioxide"))
        assert no2.definition == "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/8"

    again = laqn.load_laqn(db, limit_sites=3, days=2)
    assert (again.things_created, again.datastreams_created, again.observations_created) == (0, 0, 0)
    assert counts(db) == got
    # a longer window adds only the new hours
    more = laqn.load_laqn(db, limit_sites=1, days=3)
    assert more.things_created == 0 and more.observations_created > 0
    assert counts(db)["Observation"] == n_obs + more.observations_created


def test_loaded_network_is_served_by_the_sensorthings_api(db, client) -> None:  # type: ignore[no-untyped-def]
    laqn.load_laqn(db, limit_sites=1, days=1)
    body = client.get("/sta/v1.1/Things", params={"$expand": "Datastreams($expand=ObservedProperty)"}).json()
    [thing] = body["value"]
    assert thing["properties"]["siteCode"] == "BG1"
    assert {d["ObservedProperty"]["name"] for d in thing["Datastreams"]} == {"Nitrogen dioxide", "Sulphur dioxide"}


def test_bad_input_is_refused_and_writes_nothing(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = counts(db)
    with pytest.raises(BadRequest, match="--days must be at least 1"):
        laqn.load_laqn(db, limit_sites=1, days=0)
    with pytest.raises(BadRequest, match="--sites must be at least 1"):
        laqn.load_laqn(db, limit_sites=0)
    wrong = tmp_path / "hourly.csv"
    wrong.write_text("site,species,when,value\nBG1,NO2,2023-01-01 00:00:00,7.6\n")
    with pytest.raises(BadRequest, match="must have the columns"):
        laqn.load_laqn(db, hourly_path=wrong)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("site_code,species_code,measurement_date_gmt,value\nBG1,XYZ,2023-01-01 00:00:00,1\n")
    with pytest.raises(BadRequest, match="species XYZ"):
        laqn.load_laqn(db, hourly_path=unknown)
    with pytest.raises(BadRequest, match="does not exist"):
        laqn.load_laqn(db, hourly_path=tmp_path / "missing.csv.gz")
    assert counts(db) == before


def test_cli_loads_and_reports(db, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from smartlondon.cli import main

    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", db.url)
    monkeypatch.setenv("SMARTLONDON_DATA_DIR", str(tmp_path / "var"))
    result = CliRunner().invoke(main, ["sensors", "load-laqn", "--sites", "1", "--days", "1"])
    assert result.exit_code == 0, result.output
    assert "1 sites (1 new Things)" in result.output and "2 Datastreams (2 new)" in result.output
    bad = CliRunner().invoke(main, ["sensors", "load-laqn", "--days", "0"])
    assert bad.exit_code == 1 and "--days must be at least 1" in bad.output


def test_demo_extract_is_the_source_trimmed_and_loads_every_site(db) -> None:  # type: ignore[no-untyped-def]
    with gzip.open(laqn.DEMO_DIR / laqn.DEMO_HOURLY_FILE, "rt", newline="") as fh:
        extract = list(csv.reader(fh))
    with gzip.open(AIR / laqn.HOURLY_FILE, "rt", newline="") as fh:
        source = [row for row in csv.reader(fh)
                  if row[1] in ("NO2", "PM10", "PM25") and row[2] >= "2023-03-18"]
    assert extract[1:] == source  # unchanged rows of the shared file
    assert (laqn.DEMO_DIR / laqn.SITES_FILE).read_bytes() == (AIR / laqn.SITES_FILE).read_bytes()
    assert "Open Government Licence v2" in (laqn.DEMO_DIR / "README.md").read_text()
    hours = {(r[0], r[1], r[2]) for r in source if r[3] != ""}
    summary = laqn.load_demo_network(db)
    assert summary.things_created == 88 and summary.species == {"NO2", "PM10", "PM25"}
    assert summary.datastreams_created == len({(r[0], r[1]) for r in source})
    assert summary.observations_created == len(hours) == counts(db)["Observation"]
    assert laqn.load_demo_network(db).observations_created == 0
