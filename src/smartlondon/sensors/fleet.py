"""The simulated smart lamppost fleet of the demo (docs/sensors-fleet.md).

Twelve smart lampposts stand near real London Air Quality Network (LAQN) sites; six of them are
co-located with the site's reference monitors (within 40 m), the others a few hundred metres away.
Each is a Thing (``properties.kind`` ``streetlight``, ``properties.simulated`` true) with a
Location and five Datastreams:

* low-cost NO2 and PM2.5: the real LAQN hourly level at the nearest site at the same hour (times a
  fixed local factor for the lampposts that are not co-located), passed through a low-cost error
  model: a gain that drifts day by day, an offset, a temperature dependence, noise, and for the
  PM2.5 counter rare glitches; values below zero read as zero;
* air temperature: the real ERA5 reanalysis temperature at the nearest site (what the calibration
  uses as its temperature term; the ERA5 extract has no humidity, so the fleet has none either);
* footfall (wifi probe counts per hour) and the EV charge point status: made up from a daily
  pattern and a seeded random draw (no real data behind them).

Every reading is a pure function of (lamppost, stream, hour), with a random generator seeded by the
three, so the backfill and the live readings agree and tests are deterministic. Hours after the
demo's 13-day LAQN extract replay it from its start (the same weekday and hour come back).

:func:`load_demo_fleet` creates the fleet (idempotent), backfills the extract's hours and fits the
calibrations of the co-located sensors against their reference monitors. :class:`FleetPublisher`
publishes the next simulated hour of every Datastream each tick while ``smartlondon serve`` runs
(``SMARTLONDON_DEMO_FLEET=1``): to the MQTT broker when ``SMARTLONDON_MQTT_URL`` is set, else
straight through the service layer. Its clock is simulated: one tick is the hour after the fleet's
latest reading, so the live readings continue the backfilled series and stay comparable with the
LAQN reference data of March 2023.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from rich.progress import Progress
from sqlalchemy import func, select

from ..core.background import TickingThread, run_during_lifespan
from ..core.db import Database
from . import laqn, ownership, service
from .calibration import service as calibration
from .models import Datastream, Latest, Observation, ObservedProperty, Sensor, Thing

log = logging.getLogger(__name__)

DATA = Path(__file__).with_name("data")
ERA5_FILE = "era5-temperature-fleet-sites-2023-03-18-to-31.csv.gz"
EPOCH = datetime(2023, 3, 18, tzinfo=timezone.utc)  # the first hour of the demo's LAQN extract
CATEGORY = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CategoryObservation"
COUNT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CountObservation"
EV_STATES = ("available", "charging", "out-of-service")
SIMULATED = ("Simulated: a demo lamppost, not a real device. Its NO2 and PM2.5 readings are the real LAQN "
             "levels at the nearest monitoring site at the same hour passed through a low-cost sensor error "
             "model (gain drift, offset, temperature dependence, noise); its temperature is real ERA5 "
             "reanalysis; footfall and EV charge point status are made up.")


@dataclass(frozen=True)
class Lamppost:
    """Where one simulated lamppost stands: near which LAQN site, how far and in which direction."""

    site: str
    distance_m: float
    bearing: float

    @property
    def code(self) -> str:
        """Its identifier, ``LP-<site code>``."""
        return f"LP-{self.site}"

    @property
    def colocated(self) -> bool:
        """Whether it stands by the site's reference monitors (within 40 m)."""
        return self.distance_m <= 40


FLEET: tuple[Lamppost, ...] = (
    Lamppost("BL0", 22, 40), Lamppost("CE2", 18, 300), Lamppost("SK8", 30, 120), Lamppost("WMD", 25, 210),
    Lamppost("GN3", 15, 80), Lamppost("LW5", 35, 160),
    Lamppost("BT4", 450, 20), Lamppost("HP1", 380, 250), Lamppost("SK6", 520, 330), Lamppost("TL6", 300, 100),
    Lamppost("GR9", 610, 190), Lamppost("HV1", 420, 60),
)


@dataclass(frozen=True)
class Stream:
    """One kind of Datastream every lamppost has."""

    key: str
    name: str
    sensor: str
    sensor_description: str
    observed_property: str
    unit: dict[str, str]
    observation_type: str
    species: str | None = None


CELSIUS = {"name": "degree Celsius", "symbol": "°C", "definition": "http://qudt.org/vocab/unit/DEG_C"}
PER_HOUR = {"name": "count per hour", "symbol": "/h", "definition": "http://qudt.org/vocab/unit/PER-HR"}
NO_UNIT = {"name": "status", "symbol": "", "definition": "https://smartlondon.example/def/ev-charge-point-status"}
STREAMS: tuple[Stream, ...] = (
    Stream("no2", "Low-cost NO2", "Low-cost NO2 sensor (simulated electrochemical cell)",
           "A simulated low-cost electrochemical NO2 cell on a smart lamppost.", laqn.SPECIES["NO2"].name,
           laqn.UG_M3, laqn.MEASUREMENT, "NO2"),
    Stream("pm25", "Low-cost PM2.5", "Low-cost PM2.5 sensor (simulated optical particle counter)",
           "A simulated low-cost optical particle counter on a smart lamppost.", laqn.SPECIES["PM25"].name,
           laqn.UG_M3, laqn.MEASUREMENT, "PM25"),
    Stream("temperature", "Air temperature (ERA5 reanalysis)", "ERA5 reanalysis (Copernicus, via Open-Meteo)",
           "Hourly ERA5 reanalysis air temperature at 2 m at the nearest LAQN site (not a sensor on the lamppost).",
           "Air temperature", CELSIUS, laqn.MEASUREMENT),
    Stream("footfall", "Footfall (wifi probe count)", "Wifi probe counter (simulated)",
           "A simulated counter of distinct wifi probe requests per hour near the lamppost.",
           "Footfall (wifi probe count)", PER_HOUR, COUNT),
    Stream("ev", "EV charge point status", "EV charge point controller (simulated)",
           "The status of a simulated EV charge point in the lamppost: available, charging or out-of-service.",
           "EV charge point status", NO_UNIT, CATEGORY),
)
OWN_PROPERTIES = {
    "Air temperature": (calibration.TEMPERATURE_DEFINITION, "Air temperature at 2 m above ground."),
    "Footfall (wifi probe count)": ("https://smartlondon.example/def/footfall-wifi-probes",
                                    "People passing, counted as distinct wifi probe requests per hour."),
    "EV charge point status": ("https://smartlondon.example/def/ev-charge-point-status",
                               "Whether an EV charge point is available, charging a vehicle or out of service."),
}


# --- real levels -----------------------------------------------------------------------------------

@dataclass
class Levels:
    """The real hourly values the fleet draws on: LAQN NO2/PM2.5 and ERA5 temperature, by site."""

    values: dict[tuple[str, str], dict[int, float]] = field(default_factory=dict)  # (site, key) -> hour -> value
    hours: int = 0  # length of the replay cycle

    def at(self, site: str, key: str, when: datetime) -> float | None:
        """The value at a site at an hour (replayed from the extract's start after its end)."""
        index = int((when - EPOCH).total_seconds() // 3600) % self.hours
        return self.values.get((site, key), {}).get(index)


@lru_cache(maxsize=1)
def levels() -> Levels:
    """The demo's LAQN extract and ERA5 temperatures at the fleet's sites (read once)."""
    sites = {lamp.site for lamp in FLEET}
    series, _ = laqn.read_hourly(DATA / laqn.DEMO_HOURLY_FILE, sites, None, {"NO2", "PM25"})
    out = Levels()
    last = 0
    for (site, species), rows in series.items():
        for when, value in rows:
            index = int((when - EPOCH).total_seconds() // 3600)
            out.values.setdefault((site, species.lower()), {})[index] = value
            last = max(last, index)
    out.hours = last + 1
    with gzip.open(DATA / ERA5_FILE, "rt", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            when = datetime.fromisoformat(row["time"]).replace(tzinfo=timezone.utc)
            index = int((when - EPOCH).total_seconds() // 3600)
            if 0 <= index < out.hours and row["temperature_2m"]:
                out.values.setdefault((row["site_code"], "temperature"), {})[index] = float(row["temperature_2m"])
    return out


# --- the error model -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ErrorModel:
    """How a low-cost sensor misreads: raw = gain(t)·true + offset + temperature·(T − 10 °C) + noise."""

    gain: float
    drift_per_day: float
    offset: float
    temperature: float
    noise: float
    glitch_rate: float
    local_factor: float

    def reading(self, true: float, celsius: float | None, days: float, rng: random.Random) -> float:
        """A simulated raw reading of a true level."""
        value = self.gain * (1 + self.drift_per_day * days) * true * self.local_factor + self.offset
        if celsius is not None:
            value += self.temperature * (celsius - 10.0)
        value += rng.gauss(0.0, self.noise)
        if rng.random() < self.glitch_rate:
            value *= 3.0
        return round(max(0.0, value), 1)


def error_model(lamp: Lamppost, key: str) -> ErrorModel:
    """The lamppost's fixed error model for NO2 or PM2.5 (seeded by its code)."""
    rng = random.Random(f"{lamp.code}|{key}|model")
    local = 1.0 if lamp.colocated else rng.uniform(0.85, 1.2)
    if key == "no2":
        return ErrorModel(rng.uniform(1.15, 1.45), rng.uniform(-0.004, 0.008), rng.uniform(4, 12),
                          rng.uniform(-1.2, -0.5), 3.0, 0.0, local)
    return ErrorModel(rng.uniform(1.2, 1.6), rng.uniform(-0.003, 0.006), rng.uniform(-1, 2),
                      rng.uniform(0.1, 0.4), 1.5, 0.003, local)


_FOOTFALL_BASE = {"Roadside": 900, "Kerbside": 1200, "Urban Background": 450, "Suburban": 220, "Industrial": 150}
# share of the day's busiest hour, by hour of day (a two-peaked weekday pattern)
_WEEKDAY = (0.05, 0.03, 0.02, 0.02, 0.03, 0.08, 0.25, 0.65, 1.0, 0.7, 0.5, 0.55, 0.7, 0.65, 0.55, 0.6, 0.75,
            0.95, 0.9, 0.6, 0.45, 0.35, 0.2, 0.1)
_WEEKEND = (0.1, 0.07, 0.05, 0.03, 0.03, 0.04, 0.08, 0.15, 0.3, 0.45, 0.6, 0.75, 0.8, 0.8, 0.75, 0.7, 0.65,
            0.6, 0.5, 0.45, 0.4, 0.35, 0.25, 0.15)


def reading(lamp: Lamppost, key: str, when: datetime, site_type: str = "Roadside") -> Any:
    """The lamppost's reading of one stream at one hour (None when the real level is missing)."""
    data = levels()
    hour = int(when.timestamp() // 3600)
    rng = random.Random(f"{lamp.code}|{key}|{hour}")
    if key in ("no2", "pm25"):
        true = data.at(lamp.site, key, when)
        if true is None:
            return None
        days = (when - EPOCH).total_seconds() / 86400
        return error_model(lamp, key).reading(true, data.at(lamp.site, "temperature", when), days, rng)
    if key == "temperature":
        return data.at(lamp.site, "temperature", when)
    if key == "footfall":
        shape = _WEEKEND if when.weekday() >= 5 else _WEEKDAY
        mean = _FOOTFALL_BASE.get(site_type, 400) * shape[when.hour]
        return max(0, int(round(mean + math.sqrt(mean) * rng.gauss(0.0, 1.0))))
    busy = 0.15 + (0.45 if 17 <= when.hour <= 22 else 0.25 if 7 <= when.hour <= 16 else 0.05)
    draw = rng.random()
    return EV_STATES[2] if draw < 0.02 else EV_STATES[1] if draw < 0.02 + busy else EV_STATES[0]


# --- creating the fleet ----------------------------------------------------------------------------

@dataclass
class FleetSummary:
    """What a fleet load made."""

    lampposts: int = 0
    things_created: int = 0
    datastreams: int = 0
    observations_created: int = 0
    calibrations_created: int = 0

    def as_dict(self) -> dict[str, int]:
        """A plain dict (for the CLI and the demo summary)."""
        return dict(self.__dict__)


def _offset(point: list[float], distance: float, bearing: float) -> list[float]:
    lon, lat = point
    north = distance * math.cos(math.radians(bearing))
    east = distance * math.sin(math.radians(bearing))
    return [round(lon + east / (111_320 * math.cos(math.radians(lat))), 6), round(lat + north / 111_320, 6)]


def _ensure(session: Any, model: Any, name: str, payload: dict[str, Any], set_name: str, base_url: str) -> int:
    found = session.scalar(select(model.id).where(model.name == name).order_by(model.id).limit(1))
    if found is not None:
        return int(found)
    return int(service.create_from_path(session, set_name, {"name": name, **payload}, base_url)["@iot.id"])


def fleet_things(session: Any) -> dict[str, int]:
    """The fleet's Things by lamppost code."""
    return {(t.properties or {}).get("lamppostCode"): t.id for t in session.scalars(select(Thing))
            if (t.properties or {}).get("lamppostCode")}


def fleet_streams(session: Any) -> dict[tuple[str, str], int]:
    """The fleet's raw Datastreams by (lamppost code, stream key)."""
    out: dict[tuple[str, str], int] = {}
    for ds_id, props in session.execute(select(Datastream.id, Datastream.properties)):
        props = props or {}
        if props.get("lamppostCode") and props.get("fleetStream") and not props.get("derived"):
            out[(props["lamppostCode"], props["fleetStream"])] = ds_id
    return out


def create_fleet(db: Database, base_url: str = "") -> FleetSummary:
    """Create the lampposts, their Locations, Sensors, ObservedProperties and Datastreams (idempotent)."""
    sites = {s["SiteCode"]: s for s in laqn.read_sites(DATA / laqn.SITES_FILE)}
    summary = FleetSummary(lampposts=len(FLEET))
    with db.session() as session:
        keys = laqn._Keys(session)  # noqa: SLF001  (the LAQN loader's lookups: the same ObservedProperties)
        sensors = {s.key: _ensure(session, Sensor, s.sensor, {
            "description": s.sensor_description, "encodingType": "text/html",
            "metadata": "https://smartlondon.example/docs/sensors-fleet", "properties": {"simulated": s.key != "temperature"}},
            "Sensors", base_url) for s in STREAMS}
        properties: dict[str, int] = {}
        for s in STREAMS:
            if s.species:
                properties[s.key] = laqn._ensure_property(session, keys, laqn.SPECIES[s.species], base_url)  # noqa: SLF001
            else:
                definition, description = OWN_PROPERTIES[s.observed_property]
                properties[s.key] = _ensure(session, ObservedProperty, s.observed_property, {
                    "definition": definition, "description": description}, "ObservedProperties", base_url)
        things = fleet_things(session)
        streams = fleet_streams(session)
        for lamp in FLEET:
            site = sites[lamp.site]
            thing_id = things.get(lamp.code)
            if thing_id is None:
                point = _offset([float(site["Longitude"]), float(site["Latitude"])], lamp.distance_m, lamp.bearing)
                name = f"Smart lamppost by {site['SiteName']} (simulated)"
                thing_id = service.create_from_path(session, "Things", {
                    "name": name,
                    "description": f"A simulated smart lamppost {lamp.distance_m:.0f} m from LAQN site {lamp.site}. "
                                   + SIMULATED,
                    "properties": {"kind": "streetlight", "simulated": True, "simulation": SIMULATED,
                                   "lamppostCode": lamp.code, "siteType": "Smart lamppost (simulated)",
                                   "borough": site.get("LocalAuthorityName", ""), "nearestSite": lamp.site,
                                   "nearestSiteName": site["SiteName"], "nearestSiteType": site["SiteType"],
                                   "colocated": lamp.colocated, "distanceToSiteMetres": lamp.distance_m},
                    "Locations": [{"name": name, "description": f"Where lamppost {lamp.code} stands.",
                                   "encodingType": "application/geo+json",
                                   "location": {"type": "Point", "coordinates": point}}]}, base_url)["@iot.id"]
                summary.things_created += 1
            ownership.set_owner(session, [thing_id], ownership.DEMO_OWNER)  # the lampposts are the GLA's
            for s in STREAMS:
                if (lamp.code, s.key) in streams:
                    continue
                props: dict[str, Any] = {"lamppostCode": lamp.code, "fleetStream": s.key, "simulated": s.key != "temperature",
                                         "resolution": "PT1H", "nearestSite": lamp.site}
                if s.species:
                    props.update({"speciesCode": s.species, "lowCost": True})
                service.create_from_path(session, "Datastreams", {
                    "name": f"{s.name} at lamppost {lamp.code}", "description": f"{s.sensor_description} {SIMULATED}",
                    "observationType": s.observation_type, "unitOfMeasurement": s.unit, "properties": props,
                    "Thing": {"@iot.id": thing_id}, "Sensor": {"@iot.id": sensors[s.key]},
                    "ObservedProperty": {"@iot.id": properties[s.key]}}, base_url)
        summary.datastreams = len(FLEET) * len(STREAMS)
    return summary


def backfill(db: Database, base_url: str = "", start: datetime = EPOCH, hours: int | None = None,
             progress: Progress | None = None) -> int:
    """Store the fleet's readings for ``hours`` hours from ``start`` (default: the whole extract); idempotent."""
    hours = levels().hours if hours is None else hours
    sites = {s["SiteCode"]: s for s in laqn.read_sites(DATA / laqn.SITES_FILE)}
    created = 0
    task = progress.add_task("Backfilling the simulated lamppost fleet", total=len(FLEET)) if progress else None
    for lamp in FLEET:
        with db.session() as session:
            streams = fleet_streams(session)
            for s in STREAMS:
                ds_id = streams.get((lamp.code, s.key))
                if ds_id is None:
                    continue
                have = {calibration._utc(t) for t in session.scalars(  # noqa: SLF001
                    select(Observation.phenomenon_time_start).where(Observation.datastream_id == ds_id))}
                rows = []
                for h in range(hours):
                    when = start + timedelta(hours=h)
                    value = reading(lamp, s.key, when, sites[lamp.site]["SiteType"])
                    if value is not None and when not in have:
                        rows.append((when, value))
                if rows:
                    created += service.bulk_insert(session, ds_id, rows, base_url)
        if progress is not None and task is not None:
            progress.advance(task)
    return created


def reference_stream(session: Any, site: str, species: str) -> int | None:
    """The LAQN reference Datastream of a species at a site, if loaded."""
    for ds_id, props in session.execute(select(Datastream.id, Datastream.properties)):
        props = props or {}
        if props.get("siteCode") == site and props.get("speciesCode") == species and not props.get("derived") \
                and not props.get("lamppostCode"):
            return int(ds_id)
    return None


def calibrate_colocated(db: Database, base_url: str = "", kind: str | None = None) -> int:
    """Fit and apply calibrations for the co-located lampposts' NO2 and PM2.5 that have none yet."""
    made = 0
    with db.session() as session:
        streams = fleet_streams(session)
        done = {c.datastream_id for c in calibration.list_calibrations(session)}
        for lamp in FLEET:
            if not lamp.colocated:
                continue
            for key, species in (("no2", "NO2"), ("pm25", "PM25")):
                low = streams.get((lamp.code, key))
                ref = reference_stream(session, lamp.site, species)
                if low is None or ref is None or low in done:
                    continue
                span = session.execute(select(func.min(Observation.phenomenon_time_start),
                                              func.max(Observation.phenomenon_time_start))
                                       .where(Observation.datastream_id == ref)).one()
                if span[0] is None:
                    continue
                calibration.fit_calibration(session, low, ref, span[0], span[1] + timedelta(hours=1),
                                            kind=kind or calibration.DEFAULT_KIND, base_url=base_url)
                made += 1
    return made


def load_demo_fleet(db: Database, progress: Progress | None = None, base_url: str = "") -> FleetSummary:
    """The demo's fleet: create it, backfill the extract's hours, calibrate the co-located sensors."""
    summary = create_fleet(db, base_url)
    summary.observations_created = backfill(db, base_url, progress=progress)
    summary.calibrations_created = calibrate_colocated(db, base_url)
    return summary


# --- live publishing -------------------------------------------------------------------------------

class FleetPublisher(TickingThread):
    """Publishes the fleet's next simulated hour every ``interval`` seconds (MQTT, or the service layer)."""

    thread_name = "demo-fleet"

    def __init__(self, db: Database, interval: float, base_url: str = "", mqtt_url: str = "",
                 client_id: str = "smartlondon-demo-fleet") -> None:
        super().__init__(interval)
        self.db = db
        self.base_url = base_url
        self.mqtt_url = mqtt_url
        self.client_id = client_id
        self.clock: datetime | None = None
        self.published = 0
        self._client: Any = None

    def start(self) -> None:
        """Connect to the broker (if any), then start ticking."""
        if self.mqtt_url:
            import paho.mqtt.client as paho

            from .mqtt import BrokerAddress

            address = BrokerAddress.parse(self.mqtt_url)
            client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv5)
            if address.username:
                client.username_pw_set(address.username, address.password)
            if address.tls:
                client.tls_set()
            client.connect_async(address.host, address.port, keepalive=30)
            client.loop_start()
            self._client = client
        super().start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop ticking and disconnect."""
        super().stop(timeout)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    def next_hour(self, session: Any, streams: dict[tuple[str, str], int]) -> datetime:
        """The hour after the fleet's latest reading (or the extract's first hour)."""
        if self.clock is None:
            newest = session.scalar(select(func.max(Latest.phenomenon_time_start))
                                    .where(Latest.datastream_id.in_(sorted(streams.values()))))
            self.clock = calibration._utc(newest) if newest is not None else EPOCH - timedelta(hours=1)  # noqa: SLF001
        self.clock += timedelta(hours=1)
        return self.clock

    def messages(self) -> list[tuple[str, dict[str, Any]]]:
        """The next hour's readings as (topic/path, Observation) pairs."""
        sites = {s["SiteCode"]: s["SiteType"] for s in laqn.read_sites(DATA / laqn.SITES_FILE)}
        with self.db.session() as session:
            streams = fleet_streams(session)
            if not streams:
                return []
            when = self.next_hour(session, streams)
        out = []
        for lamp in FLEET:
            for s in STREAMS:
                ds_id = streams.get((lamp.code, s.key))
                value = reading(lamp, s.key, when, sites.get(lamp.site, "Roadside"))
                if ds_id is not None and value is not None:
                    out.append((f"Datastreams({ds_id})/Observations",
                                {"phenomenonTime": service.format_time(when), "result": value}))
        return out

    def tick(self) -> int:
        """Publish one simulated hour; returns how many readings."""
        items = self.messages()
        if not items:
            return 0
        if self._client is not None:
            for path, payload in items:
                self._client.publish(f"v1.1/{path}", json.dumps(payload), qos=1)
        else:
            with self.db.session() as session:
                service.create_many_from_path(session, items, self.base_url)
        self.published += len(items)
        return len(items)


def install(app: Any) -> None:
    """Publish the fleet live while the app runs, when ``SMARTLONDON_DEMO_FLEET`` is on."""
    settings = app.state.settings
    if not getattr(settings, "demo_fleet", False):
        return
    run_during_lifespan(app, "demo_fleet", lambda application: FleetPublisher(
        application.state.db, getattr(settings, "demo_fleet_seconds", 10.0),
        f"{settings.base_url.rstrip('/')}/sta/v1.1", settings.mqtt_url))
