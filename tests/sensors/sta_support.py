"""A small, real sensor network for the SensorThings tests, written directly through the models.

Two London Air Quality Network sites from ``laqn-sites.csv`` (Westminster - Marylebone Road, a
kerbside site, and Camden - Bloomsbury, urban background), each a Thing with its Location, a
HistoricalLocation and an automatically shaped FeatureOfInterest; NO2 Datastreams at both and a
PM10 Datastream at Bloomsbury, with the first ``HOURS`` hourly values of January 2023 from
``laqn-hourly-2023Q1.csv.gz`` (hours with no valid reading are skipped, as in the source); and a
MultiDatastream at Bloomsbury whose results are ``[NO2, PM10]`` pairs. ``sta_latest`` is filled as
the ingest code fills it. Other tests may import :func:`build_network` (read-only use).
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from smartlondon.core.db import Database
from smartlondon.sensors.models import (
    Datastream, FeatureOfInterest, HistoricalLocation, HistoricalLocationLocation, Latest, Location,
    MultiDatastream, MultiDatastreamObservedProperty, Observation, ObservedProperty, Sensor, Thing, ThingLocation,
)

AIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "air-quality"
SITES = ("MY1", "BL0")
HOURS = 48
UG_M3 = {"name": "microgram per cubic metre", "symbol": "µg/m³", "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3"}
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


@lru_cache(maxsize=1)
def laqn_sites() -> dict[str, dict[str, str]]:
    """The LAQN site rows of the test sites, by site code."""
    with (AIR / "laqn-sites.csv").open(encoding="utf-8-sig") as fh:
        return {row["@SiteCode"]: row for row in csv.DictReader(fh) if row["@SiteCode"] in SITES}


@lru_cache(maxsize=1)
def laqn_hourly() -> dict[tuple[str, str], list[tuple[datetime, float]]]:
    """The first HOURS hours of NO2 and PM10 at the test sites: {(site, species): [(time, value)]}."""
    out: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
    last = datetime(2023, 1, 1, tzinfo=timezone.utc).timestamp() + (HOURS - 1) * 3600
    with gzip.open(AIR / "laqn-hourly-2023Q1.csv.gz", "rt", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        for site, species, when, value in reader:
            if site not in SITES or species not in ("NO2", "PM10") or not value:
                continue
            time = datetime.fromisoformat(when).replace(tzinfo=timezone.utc)
            if time.timestamp() > last:
                continue
            out.setdefault((site, species), []).append((time, float(value)))
    return out


@dataclass
class Network:
    """The ids of what :func:`build_network` made."""

    things: dict[str, int] = field(default_factory=dict)          # site code -> Thing id
    locations: dict[str, int] = field(default_factory=dict)       # site code -> Location id
    features: dict[str, int] = field(default_factory=dict)        # site code -> FeatureOfInterest id
    datastreams: dict[str, int] = field(default_factory=dict)     # "MY1/NO2" -> Datastream id
    historical_locations: dict[str, int] = field(default_factory=dict)
    sensors: dict[str, int] = field(default_factory=dict)         # "NO2"/"PM10" -> Sensor id
    observed_properties: dict[str, int] = field(default_factory=dict)
    multi_datastream: int = 0
    values: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)  # "MY1/NO2" -> real values
    observation_count: int = 0


def build_network(db: Database) -> Network:
    """Write the test network into ``db`` and return its ids."""
    net = Network()
    hourly = laqn_hourly()
    with db.session() as session:
        sensors = {
            "NO2": Sensor(name="Chemiluminescent NOx analyser", description="Reference NOx/NO2 analyser",
                          encoding_type="text/html", sensor_metadata="https://www.londonair.org.uk/"),
            "PM10": Sensor(name="TEOM FDMS PM10 monitor", description="Reference particulate monitor",
                           encoding_type="text/html", sensor_metadata="https://www.londonair.org.uk/"),
        }
        properties = {
            "NO2": ObservedProperty(name="Nitrogen dioxide", description="NO2 concentration in air",
                                    definition="http://vocab.nerc.ac.uk/collection/P01/current/CONCNO2S/"),
            "PM10": ObservedProperty(name="PM10", description="Particulate matter below 10 µm",
                                     definition="http://vocab.nerc.ac.uk/collection/P01/current/PM10XXXX/"),
        }
        session.add_all([*sensors.values(), *properties.values()])
        session.flush()
        net.sensors = {k: v.id for k, v in sensors.items()}
        net.observed_properties = {k: v.id for k, v in properties.items()}
        for code in SITES:
            site = laqn_sites()[code]
            point = {"type": "Point", "coordinates": [float(site["@Longitude"]), float(site["@Latitude"])]}
            thing = Thing(name=site["@SiteName"], description=f"LAQN monitoring site {code} ({site['@SiteType']})",
                          properties={"siteCode": code, "siteType": site["@SiteType"],
                                      "borough": site["@LocalAuthorityName"]})
            location = Location(name=site["@SiteName"], description=f"Where LAQN site {code} stands",
                                encoding_type="application/geo+json", location=point)
            session.add_all([thing, location])
            session.flush()
            session.add(ThingLocation(thing_id=thing.id, location_id=location.id))
            historical = HistoricalLocation(thing_id=thing.id, time=datetime(2023, 1, 1, tzinfo=timezone.utc))
            feature = FeatureOfInterest(name=site["@SiteName"], description=f"The air at LAQN site {code}",
                                        encoding_type="application/geo+json", feature=point,
                                        source_location_id=location.id)
            session.add_all([historical, feature])
            session.flush()
            session.add(HistoricalLocationLocation(historical_location_id=historical.id, location_id=location.id))
            net.things[code] = thing.id
            net.locations[code] = location.id
            net.features[code] = feature.id
            net.historical_locations[code] = historical.id
            for species in (("NO2",) if code == "MY1" else ("NO2", "PM10")):
                values = hourly[(code, species)]
                stream = Datastream(
                    name=f"{species} at {site['@SiteName']}", description=f"Hourly mean {species} at {code}",
                    observation_type=MEASUREMENT, unit_of_measurement=UG_M3, thing_id=thing.id,
                    sensor_id=sensors[species].id, observed_property_id=properties[species].id,
                    observed_area=point, properties={"species": species},
                    phenomenon_time_start=values[0][0], phenomenon_time_end=values[-1][0])
                session.add(stream)
                session.flush()
                rows = [Observation(datastream_id=stream.id, feature_of_interest_id=feature.id,
                                    phenomenon_time_start=t, result_time=t, result=v, result_number=v)
                        for t, v in values]
                session.add_all(rows)
                session.flush()
                latest = max(rows, key=lambda o: o.phenomenon_time_start)
                session.add(Latest(datastream_id=stream.id, observation_id=latest.id,
                                   phenomenon_time_start=latest.phenomenon_time_start, result=latest.result))
                net.datastreams[f"{code}/{species}"] = stream.id
                net.values[f"{code}/{species}"] = values
                net.observation_count += len(rows)
        bl0 = laqn_sites()["BL0"]
        multi = MultiDatastream(
            name=f"NO2 and PM10 at {bl0['@SiteName']}", description="Paired hourly NO2 and PM10",
            multi_observation_data_types=[MEASUREMENT, MEASUREMENT], unit_of_measurements=[UG_M3, UG_M3],
            thing_id=net.things["BL0"], sensor_id=sensors["NO2"].id)
        session.add(multi)
        session.flush()
        session.add_all([
            MultiDatastreamObservedProperty(multi_datastream_id=multi.id, position=0,
                                            observed_property_id=properties["NO2"].id),
            MultiDatastreamObservedProperty(multi_datastream_id=multi.id, position=1,
                                            observed_property_id=properties["PM10"].id)])
        no2 = dict(hourly[("BL0", "NO2")])
        for t, pm10 in hourly[("BL0", "PM10")][:3]:
            session.add(Observation(multi_datastream_id=multi.id, feature_of_interest_id=net.features["BL0"],
                                    phenomenon_time_start=t, result=[no2.get(t), pm10]))
        net.multi_datastream = multi.id
    return net
