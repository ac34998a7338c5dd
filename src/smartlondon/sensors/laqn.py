"""Load the real London Air Quality Network (LAQN) into the SensorThings store.

Reads ``laqn-sites.csv`` (the site list) and an hourly measurements file in long format
(``site_code,species_code,measurement_date_gmt,value``, gzipped or not) and writes:

* every site as a **Thing** with ``properties`` ``{siteCode, siteName, siteType, borough, opened,
  closed, dataOwner, dataManager, siteLink}`` and its **Location** (a GeoJSON point,
  ``application/geo+json``), created through the STA write service (so the HistoricalLocation
  and the FeatureOfInterest are made as for any client);
* one **Sensor** per instrument kind (reference gas analyser, reference particulate monitor);
* one **ObservedProperty** per species, with a definition URI (the EEA air quality pollutant
  vocabulary where it has the species);
* a **Datastream** per species a site measures, with its unit (µg/m³; CO mg/m³) and
  ``OM_Measurement``;
* the hourly **Observations** (an empty value means no valid reading: no Observation), through
  ``service.bulk_insert``, which also keeps ``sta_latest`` and the Datastream's time span.

Idempotent: Things are keyed on ``properties.siteCode``, Sensors and ObservedProperties on their
name, Datastreams on (Thing, ObservedProperty), Observations on (Datastream, phenomenon time), so
running it again adds only what is missing. One transaction per site.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from rich.progress import Progress
from sqlalchemy import select

from ..core.db import Database
from ..core.errors import BadRequest
from . import ownership, service
from .models import Datastream, Observation, ObservedProperty, Sensor, Thing

AIR_QUALITY_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "air-quality"
DEMO_DIR = Path(__file__).with_name("data")
SITES_FILE = "laqn-sites.csv"
HOURLY_FILE = "laqn-hourly-2023Q1.csv.gz"
DEMO_HOURLY_FILE = "laqn-hourly-2023Q1-last14days.csv.gz"

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
UG_M3 = {"name": "microgram per cubic metre", "symbol": "µg/m³",
         "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3"}
MG_M3 = {"name": "milligram per cubic metre", "symbol": "mg/m³",
         "definition": "http://qudt.org/vocab/unit/MilliGM-PER-M3"}
EEA = "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/"
LAQN_SPECIES = "https://www.londonair.org.uk/london/asp/species.asp?species="

GAS = "LAQN reference monitor: gas analyser"
PARTICULATE = "LAQN reference monitor: particulate monitor"
SENSORS = {
    GAS: "A reference-grade automatic gas analyser of the London Air Quality Network, reporting hourly means.",
    PARTICULATE: "A reference-grade automatic particulate monitor of the London Air Quality Network, "
                 "reporting hourly means.",
}


@dataclass(frozen=True)
class Species:
    """A species (pollutant) the LAQN measures and how it is described in the store."""

    code: str
    name: str
    definition: str
    unit: dict[str, str]
    sensor: str


# Definitions: the EEA pollutant vocabulary ids (1 SO2, 5 PM10, 6001 PM2.5, 7 O3, 8 NO2, 10 CO,
# 20 benzene, 6002 PM1). FINE and TSP have no EEA concept we are sure of: their definition is the
# LAQN's own species page (see docs/sensors-web.md).
SPECIES: dict[str, Species] = {s.code: s for s in (
    Species("NO2", "Nitrogen dioxide", EEA + "8", UG_M3, GAS),
    Species("O3", "Ozone", EEA + "7", UG_M3, GAS),
    Species("SO2", "Sulphur dioxide", EEA + "1", UG_M3, GAS),
    Species("CO", "Carbon monoxide", EEA + "10", MG_M3, GAS),
    Species("BENZ", "Benzene", EEA + "20", UG_M3, GAS),
    Species("PM10", "PM10 particulate matter", EEA + "5", UG_M3, PARTICULATE),
    Species("PM25", "PM2.5 particulate matter", EEA + "6001", UG_M3, PARTICULATE),
    Species("PM1", "PM1 particulate matter", EEA + "6002", UG_M3, PARTICULATE),
    Species("FINE", "Fine particulate matter (LAQN FINE)", LAQN_SPECIES + "FINE", UG_M3, PARTICULATE),
    Species("TSP", "Total suspended particulates", LAQN_SPECIES + "TSP", UG_M3, PARTICULATE),
)}
NO2_DEFINITION = SPECIES["NO2"].definition


@dataclass
class LoadSummary:
    """What a load found and what it added."""

    sites: int = 0
    things_created: int = 0
    datastreams: int = 0
    datastreams_created: int = 0
    observations_read: int = 0
    observations_created: int = 0
    species: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (for the CLI and the demo summary)."""
        return {"sites": self.sites, "things_created": self.things_created, "datastreams": self.datastreams,
                "datastreams_created": self.datastreams_created, "observations_read": self.observations_read,
                "observations_created": self.observations_created, "species": sorted(self.species)}


def _open_text(path: Path) -> io.TextIOBase:
    if not path.is_file():
        raise BadRequest(f"{path} does not exist: the LAQN loader needs it.")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def read_sites(path: Path) -> list[dict[str, str]]:
    """The site rows of ``laqn-sites.csv`` (columns without their leading ``@``), in file order."""
    with _open_text(path) as fh:
        rows = [{k.lstrip("@"): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(fh)]
    needed = {"SiteCode", "SiteName", "SiteType", "Latitude", "Longitude"}
    if rows and not needed <= set(rows[0]):
        raise BadRequest(f"{path.name} lacks the columns {', '.join(sorted(needed - set(rows[0])))}.")
    return [r for r in rows if r.get("SiteCode")]


def _parse_gmt(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)


def read_hourly(path: Path, sites: set[str] | None = None, days: int | None = None,
                species: set[str] | None = None) -> tuple[dict[tuple[str, str], list[tuple[datetime, float]]], int]:
    """The hourly values by (site, species), for ``sites``/``species`` (all if None) and the first
    ``days`` days of the file, sorted by time, one value per hour (the first, where the source
    repeats an hour); and how many rows (with or without a value) that selected."""
    series: dict[tuple[str, str], dict[datetime, float]] = defaultdict(dict)
    start: datetime | None = None
    end: datetime | None = None
    selected = 0
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header != ["site_code", "species_code", "measurement_date_gmt", "value"]:
            raise BadRequest(f"{path.name} must have the columns site_code,species_code,measurement_date_gmt,value; "
                             f"it has {header}.")
        for site, code, when_text, value in reader:
            if sites is not None and site not in sites:
                continue
            if species is not None and code not in species:
                continue
            when = _parse_gmt(when_text)
            if days is not None:
                if start is None:
                    start = when.replace(hour=0)
                    end = start + timedelta(days=days)
                if when >= end:  # type: ignore[operator]
                    continue
            selected += 1
            series[(site, code)]  # a species measured with no valid value still has its Datastream
            if value != "":
                # the source repeats some hours (GR8 PM10, HG1 NO2): the first value is kept
                series[(site, code)].setdefault(when, float(value))
    return {key: sorted(values.items()) for key, values in series.items()}, selected


def _point(site: dict[str, str]) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [round(float(site["Longitude"]), 6), round(float(site["Latitude"]), 6)]}


def _date(text: str) -> str | None:
    return text[:10] if text else None


def thing_payload(site: dict[str, str]) -> dict[str, Any]:
    """The STA Thing (with its Location) of one LAQN site row."""
    name = site["SiteName"]
    return {
        "name": name,
        "description": f"London Air Quality Network monitoring site {site['SiteCode']} ({site['SiteType']}), "
                       f"{site.get('LocalAuthorityName', '')}.",
        "properties": {"siteCode": site["SiteCode"], "siteName": name, "siteType": site["SiteType"],
                       "borough": site.get("LocalAuthorityName", ""), "opened": _date(site.get("DateOpened", "")),
                       "closed": _date(site.get("DateClosed", "")), "dataOwner": site.get("DataOwner", ""),
                       "dataManager": site.get("DataManager", ""), "siteLink": site.get("SiteLink", "")},
        "Locations": [{"name": name, "description": f"Where LAQN site {site['SiteCode']} stands.",
                       "encodingType": "application/geo+json", "location": _point(site)}],
    }


class _Keys:
    """Ids of what the store already holds, looked up once per load."""

    def __init__(self, session: Any) -> None:
        self.things = {(t.properties or {}).get("siteCode"): t.id for t in session.scalars(select(Thing))}
        self.sensors = {name: sid for sid, name in session.execute(select(Sensor.id, Sensor.name))}
        self.properties = {name: pid for pid, name in session.execute(select(ObservedProperty.id, ObservedProperty.name))}


def _ensure_sensor(session: Any, keys: _Keys, name: str, base_url: str) -> int:
    if name not in keys.sensors:
        made = service.create_from_path(session, "Sensors", {
            "name": name, "description": SENSORS[name], "encodingType": "text/html",
            "metadata": "https://www.londonair.org.uk/", "properties": {"network": "LAQN"}}, base_url)
        keys.sensors[name] = made["@iot.id"]
    return keys.sensors[name]


def _ensure_property(session: Any, keys: _Keys, sp: Species, base_url: str) -> int:
    if sp.name not in keys.properties:
        made = service.create_from_path(session, "ObservedProperties", {
            "name": sp.name, "definition": sp.definition,
            "description": f"{sp.name}, as the London Air Quality Network reports it (species code {sp.code}).",
            "properties": {"laqnSpeciesCode": sp.code}}, base_url)
        keys.properties[sp.name] = made["@iot.id"]
    return keys.properties[sp.name]


def load_laqn(db: Database, *, sites_path: Path | None = None, hourly_path: Path | None = None,
              limit_sites: int | None = None, days: int | None = None, species: set[str] | None = None,
              progress: Progress | None = None, base_url: str = "") -> LoadSummary:
    """Load LAQN sites and hourly observations; returns what was read and created.

    ``limit_sites`` keeps the first N sites (by site code) that have measurements; ``days`` keeps the
    first D days of the measurements; ``species`` keeps only those species codes.
    """
    sites_path = sites_path or AIR_QUALITY_DIR / SITES_FILE
    hourly_path = hourly_path or AIR_QUALITY_DIR / HOURLY_FILE
    if limit_sites is not None and limit_sites < 1:
        raise BadRequest("--sites must be at least 1.")
    if days is not None and days < 1:
        raise BadRequest("--days must be at least 1.")
    unknown = (species or set()) - set(SPECIES)
    if unknown:
        raise BadRequest(f"Unknown LAQN species {', '.join(sorted(unknown))}; known: {', '.join(SPECIES)}.")
    sites = read_sites(sites_path)
    chosen: set[str] | None = None
    if limit_sites is not None:
        with _open_text(hourly_path) as fh:
            measured = {row[0] for row in csv.reader(fh)} - {"site_code"}
        chosen = set(sorted(measured)[:limit_sites])
        sites = [s for s in sites if s["SiteCode"] in chosen]
    series, selected = read_hourly(hourly_path, chosen, days, species)
    by_site: dict[str, list[str]] = defaultdict(list)
    for site_code, code in series:
        if code not in SPECIES:
            raise BadRequest(f"{hourly_path.name} has species {code}, which the loader does not know.")
        by_site[site_code].append(code)
    summary = LoadSummary(sites=len(sites), observations_read=selected)
    total_rows = sum(len(v) for v in series.values())
    task = progress.add_task("Loading LAQN sites and observations", total=total_rows + len(sites)) if progress else None
    for site in sites:
        code = site["SiteCode"]
        with db.session() as session:
            keys = _Keys(session)
            thing_id = keys.things.get(code)
            if thing_id is None:
                thing_id = service.create_from_path(session, "Things", thing_payload(site), base_url)["@iot.id"]
                summary.things_created += 1
            ownership.set_owner(session, [thing_id], ownership.DEMO_OWNER)  # the LAQN Things are the GLA's
            existing = {op: ds for ds, op in session.execute(
                select(Datastream.id, Datastream.observed_property_id).where(Datastream.thing_id == thing_id))}
            for sp_code in sorted(by_site.get(code, [])):
                sp = SPECIES[sp_code]
                summary.species.add(sp_code)
                op_id = _ensure_property(session, keys, sp, base_url)
                ds_id = existing.get(op_id)
                if ds_id is None:
                    ds_id = service.create_from_path(session, "Datastreams", {
                        "name": f"{sp.name} at {site['SiteName']}",
                        "description": f"Hourly mean {sp.name.lower()} at LAQN site {code}, GMT hour starting.",
                        "observationType": MEASUREMENT, "unitOfMeasurement": sp.unit,
                        "properties": {"siteCode": code, "speciesCode": sp_code, "resolution": "PT1H"},
                        "Thing": {"@iot.id": thing_id},
                        "Sensor": {"@iot.id": _ensure_sensor(session, keys, sp.sensor, base_url)},
                        "ObservedProperty": {"@iot.id": op_id}}, base_url)["@iot.id"]
                    summary.datastreams_created += 1
                summary.datastreams += 1
                rows = series[(code, sp_code)]
                have = {_utc(t) for t in session.scalars(
                    select(Observation.phenomenon_time_start).where(Observation.datastream_id == ds_id))}
                new = [(t, v) for t, v in rows if t not in have]
                if new:
                    summary.observations_created += service.bulk_insert(session, ds_id, new, base_url)
                if progress is not None and task is not None:
                    progress.advance(task, len(rows))
        if progress is not None and task is not None:
            progress.advance(task)
    return summary


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def load_demo_network(db: Database, progress: Progress | None = None, base_url: str = "") -> LoadSummary:
    """The demo's extract (all sites; NO2, PM10, PM2.5; the last 14 days of Q1 2023) from ``sensors/data``."""
    return load_laqn(db, sites_path=DEMO_DIR / SITES_FILE, hourly_path=DEMO_DIR / DEMO_HOURLY_FILE,
                     progress=progress, base_url=base_url)


def iter_site_codes(path: Path) -> Iterator[str]:
    """The site codes of a sites file (for tests and tools)."""
    for row in read_sites(path):
        yield row["SiteCode"]
