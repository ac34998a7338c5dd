"""Tables of the sensor hub: the OGC SensorThings API v1.1 entities and the last-value table.

Every table is named ``sta_<entity>`` and has an integer ``id`` (the entity's ``@iot.id``).
Geometries (``Location.location``, ``FeatureOfInterest.feature``, ``*.observed_area``) are stored
as GeoJSON in JSON columns; ``encoding_type`` says how (``application/geo+json``).
Time intervals are two columns, ``*_start`` and ``*_end``; an instant has ``*_end`` NULL.

Deleting follows the standard's cascades in the database itself (``ON DELETE CASCADE``): a Thing
takes its Datastreams, MultiDatastreams and HistoricalLocations; a Sensor or ObservedProperty its
Datastreams; a Datastream, MultiDatastream or FeatureOfInterest its Observations.

``sta_latest`` holds, per Datastream, its latest Observation (by phenomenon time). It is derived
data: the ingest code (``sensors/sta`` writes) updates it in the same transaction as the
Observation, so ``$expand=Observations($top=1;$orderby=phenomenonTime desc)`` and "latest of every
sensor" read one small table.

The ENTITY REGISTRY
-------------------
``ENTITIES`` maps each entity set name (``"Things"``, ``"Datastreams"``, ...) to an
:class:`EntityType`:

* ``name`` (the set, ``"Things"``), ``singular`` (``"Thing"``), ``model`` (the mapped class);
* ``properties``: STA property name -> model attribute, for plain columns
  (``{"name": "name", "encodingType": "encoding_type", ...}``);
* ``intervals``: STA property name -> (start attribute, end attribute) for time properties that
  may be an instant or an interval (``"phenomenonTime"``, ``"validTime"``, a Datastream's
  ``"resultTime"``);
* ``navigation``: navigation property name -> :class:`Navigation`, with ``target`` (the entity
  set it points to) and ``kind`` (``"to_one"`` or ``"to_many"``), and how it is stored:
  ``fk`` (this model's foreign key attribute, for to-one), ``remote`` (the target model's foreign
  key attribute pointing back here, for to-many through a foreign key), or ``link`` with
  ``link_self``/``link_other`` (the link-table model and its two key attributes, for many-to-many).

``SINGULAR`` maps ``"Thing"`` -> ``"Things"``. Use :func:`entity_type` to look a set up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..core.db import Base, JSONType, UTCDateTime

# 64-bit ids for observations on PostgreSQL; SQLite's INTEGER PRIMARY KEY is already 64-bit (and
# must be spelled INTEGER to be the rowid).
ObservationId = BigInteger().with_variant(Integer(), "sqlite")


class Thing(Base):
    """A Thing: an object of the physical or information world (a monitoring site, a lamppost)."""

    __tablename__ = "sta_thing"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    #: the organisation whose editors and admins may change this Thing and what hangs off it
    #: (sensors/ownership.py; None: any writer may); not part of the SensorThings JSON
    owner_organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisation.id", ondelete="SET NULL"), nullable=True, index=True)


class Location(Base):
    """A Location: where a Thing is (GeoJSON in ``location``)."""

    __tablename__ = "sta_location"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    encoding_type: Mapped[str] = mapped_column(String(100), default="application/geo+json")
    location: Mapped[Any] = mapped_column(JSONType)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class ThingLocation(Base):
    """Link: a Thing's current Location(s)."""

    __tablename__ = "sta_thing_location"
    __table_args__ = (Index("ix_sta_thing_location_location_id", "location_id"),)

    thing_id: Mapped[int] = mapped_column(ForeignKey("sta_thing.id", ondelete="CASCADE"), primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("sta_location.id", ondelete="CASCADE"), primary_key=True)


class HistoricalLocation(Base):
    """A HistoricalLocation: when a Thing was at (or moved to) some Location(s)."""

    __tablename__ = "sta_historical_location"
    __table_args__ = (Index("ix_sta_historical_location_thing_id", "thing_id", "time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    thing_id: Mapped[int] = mapped_column(ForeignKey("sta_thing.id", ondelete="CASCADE"))
    time: Mapped[datetime] = mapped_column(UTCDateTime)


class HistoricalLocationLocation(Base):
    """Link: the Location(s) of a HistoricalLocation."""

    __tablename__ = "sta_historical_location_location"
    __table_args__ = (Index("ix_sta_historical_location_location_location_id", "location_id"),)

    historical_location_id: Mapped[int] = mapped_column(
        ForeignKey("sta_historical_location.id", ondelete="CASCADE",
                   name="fk_sta_historical_location_location_historical_location_id"), primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("sta_location.id", ondelete="CASCADE"), primary_key=True)


class Sensor(Base):
    """A Sensor: the instrument or procedure that observes (``metadata`` is its datasheet or URL)."""

    __tablename__ = "sta_sensor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    encoding_type: Mapped[str] = mapped_column(String(100))
    # "metadata" is reserved on declarative classes: the attribute is sensor_metadata, the column "metadata"
    sensor_metadata: Mapped[Any] = mapped_column("metadata", JSONType, nullable=True)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class ObservedProperty(Base):
    """An ObservedProperty: the phenomenon observed (nitrogen dioxide), with its definition URI."""

    __tablename__ = "sta_observed_property"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    definition: Mapped[str] = mapped_column(String(1000))
    description: Mapped[str] = mapped_column(Text, default="")
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class Datastream(Base):
    """A Datastream: the Observations of one ObservedProperty by one Sensor on one Thing.

    ``phenomenon_time_*`` and ``result_time_*`` are the span of its Observations' times (the
    standard's read-only interval properties), kept up to date by the ingest code.
    """

    __tablename__ = "sta_datastream"
    __table_args__ = (
        Index("ix_sta_datastream_thing_id", "thing_id"),
        Index("ix_sta_datastream_sensor_id", "sensor_id"),
        Index("ix_sta_datastream_observed_property_id", "observed_property_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    observation_type: Mapped[str] = mapped_column(String(300))
    unit_of_measurement: Mapped[dict[str, Any]] = mapped_column(JSONType)
    observed_area: Mapped[Any] = mapped_column(JSONType, nullable=True)
    phenomenon_time_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    phenomenon_time_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    result_time_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    result_time_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    thing_id: Mapped[int] = mapped_column(ForeignKey("sta_thing.id", ondelete="CASCADE"))
    sensor_id: Mapped[int] = mapped_column(ForeignKey("sta_sensor.id", ondelete="CASCADE"))
    observed_property_id: Mapped[int] = mapped_column(ForeignKey("sta_observed_property.id", ondelete="CASCADE"))


class MultiDatastream(Base):
    """A MultiDatastream: Observations whose result is an array, one value per ObservedProperty.

    ``unit_of_measurements`` and ``multi_observation_data_types`` are arrays in the same order as
    the ObservedProperties (``MultiDatastreamObservedProperty.position``).
    """

    __tablename__ = "sta_multi_datastream"
    __table_args__ = (
        Index("ix_sta_multi_datastream_thing_id", "thing_id"),
        Index("ix_sta_multi_datastream_sensor_id", "sensor_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    observation_type: Mapped[str] = mapped_column(
        String(300), default="http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_ComplexObservation")
    multi_observation_data_types: Mapped[list[str]] = mapped_column(JSONType)
    unit_of_measurements: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    observed_area: Mapped[Any] = mapped_column(JSONType, nullable=True)
    phenomenon_time_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    phenomenon_time_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    result_time_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    result_time_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    thing_id: Mapped[int] = mapped_column(ForeignKey("sta_thing.id", ondelete="CASCADE"))
    sensor_id: Mapped[int] = mapped_column(ForeignKey("sta_sensor.id", ondelete="CASCADE"))


class MultiDatastreamObservedProperty(Base):
    """Link: the ObservedProperties of a MultiDatastream, in order (``position`` 0, 1, ...)."""

    __tablename__ = "sta_multi_datastream_observed_property"
    __table_args__ = (Index("ix_sta_multi_datastream_observed_property_observed_property_id",
                            "observed_property_id"),)

    multi_datastream_id: Mapped[int] = mapped_column(
        ForeignKey("sta_multi_datastream.id", ondelete="CASCADE",
                   name="fk_sta_multi_datastream_observed_property_multi_datastream_id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    observed_property_id: Mapped[int] = mapped_column(ForeignKey(
        "sta_observed_property.id", ondelete="CASCADE",
        name="fk_sta_multi_datastream_observed_property_observed_property_id"))


class FeatureOfInterest(Base):
    """A FeatureOfInterest: what an Observation is about (GeoJSON in ``feature``).

    ``source_location_id`` is set when it was generated automatically from a Thing's Location, so
    the next Observation at the same Location reuses it.
    """

    __tablename__ = "sta_feature_of_interest"
    __table_args__ = (Index("ix_sta_feature_of_interest_source_location_id", "source_location_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    encoding_type: Mapped[str] = mapped_column(String(100), default="application/geo+json")
    feature: Mapped[Any] = mapped_column(JSONType)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    source_location_id: Mapped[int | None] = mapped_column(
        ForeignKey("sta_location.id", ondelete="SET NULL"), nullable=True)


class Observation(Base):
    """An Observation: one result of a Datastream (or an array result of a MultiDatastream).

    ``result`` is any JSON; ``result_number`` repeats it when it is a number (not a boolean), so
    filters, ordering and aggregates on numeric results use a plain indexed-friendly column. The
    ingest code sets both.
    """

    __tablename__ = "sta_observation"
    __table_args__ = (
        CheckConstraint("(datastream_id IS NULL) <> (multi_datastream_id IS NULL)", name="one_stream"),
        Index("ix_sta_observation_datastream_time", "datastream_id", "phenomenon_time_start", "id"),
        Index("ix_sta_observation_multi_datastream_time", "multi_datastream_id", "phenomenon_time_start", "id"),
        Index("ix_sta_observation_feature_of_interest_id", "feature_of_interest_id"),
    )

    id: Mapped[int] = mapped_column(ObservationId, primary_key=True)
    phenomenon_time_start: Mapped[datetime] = mapped_column(UTCDateTime)
    phenomenon_time_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    result_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    result: Mapped[Any] = mapped_column(JSONType, nullable=True)
    result_number: Mapped[float | None] = mapped_column(Float, nullable=True)
    result_quality: Mapped[Any] = mapped_column(JSONType, nullable=True)
    valid_time_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    valid_time_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    parameters: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    datastream_id: Mapped[int | None] = mapped_column(
        ForeignKey("sta_datastream.id", ondelete="CASCADE"), nullable=True)
    multi_datastream_id: Mapped[int | None] = mapped_column(
        ForeignKey("sta_multi_datastream.id", ondelete="CASCADE"), nullable=True)
    feature_of_interest_id: Mapped[int] = mapped_column(
        ForeignKey("sta_feature_of_interest.id", ondelete="CASCADE",
                   name="fk_sta_observation_feature_of_interest_id"))


class Latest(Base):
    """The latest Observation (greatest phenomenon time) of each Datastream: the last-value table."""

    __tablename__ = "sta_latest"

    datastream_id: Mapped[int] = mapped_column(ForeignKey("sta_datastream.id", ondelete="CASCADE"), primary_key=True)
    observation_id: Mapped[int] = mapped_column(
        ObservationId, ForeignKey("sta_observation.id", ondelete="CASCADE"), index=True)
    phenomenon_time_start: Mapped[datetime] = mapped_column(UTCDateTime)
    phenomenon_time_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    result: Mapped[Any] = mapped_column(JSONType, nullable=True)


# --- the entity registry ----------------------------------------------------------------------

@dataclass(frozen=True)
class Navigation:
    """A navigation property: the entity set it leads to, its cardinality and how it is stored."""

    target: str                       # entity set name, e.g. "Datastreams"
    kind: str                         # "to_one" or "to_many"
    fk: str | None = None             # to_one: this model's foreign key attribute
    remote: str | None = None         # to_many by foreign key: the target model's attribute pointing here
    link: type[Base] | None = None    # many-to-many: the link model ...
    link_self: str | None = None      # ... its attribute holding this entity's id
    link_other: str | None = None     # ... its attribute holding the target's id

    @property
    def to_many(self) -> bool:
        """True for a collection."""
        return self.kind == "to_many"


@dataclass(frozen=True)
class EntityType:
    """An entity type of the standard and where it lives."""

    name: str                         # the entity set, "Things"
    singular: str                     # "Thing"
    model: type[Base]
    properties: dict[str, str]        # STA property -> model attribute (plain columns)
    intervals: dict[str, tuple[str, str]] = field(default_factory=dict)  # STA property -> (start, end)
    navigation: dict[str, Navigation] = field(default_factory=dict)

    @property
    def all_properties(self) -> list[str]:
        """Every (non-navigation) STA property name, in the standard's order."""
        return list(self.properties) + list(self.intervals)


def _one(target: str, fk: str) -> Navigation:
    return Navigation(target, "to_one", fk=fk)


def _many(target: str, remote: str) -> Navigation:
    return Navigation(target, "to_many", remote=remote)


def _link(target: str, link: type[Base], link_self: str, link_other: str) -> Navigation:
    return Navigation(target, "to_many", link=link, link_self=link_self, link_other=link_other)


_NAMED = {"name": "name", "description": "description"}

ENTITIES: dict[str, EntityType] = {
    "Things": EntityType(
        "Things", "Thing", Thing, {**_NAMED, "properties": "properties"},
        navigation={
            "Locations": _link("Locations", ThingLocation, "thing_id", "location_id"),
            "HistoricalLocations": _many("HistoricalLocations", "thing_id"),
            "Datastreams": _many("Datastreams", "thing_id"),
            "MultiDatastreams": _many("MultiDatastreams", "thing_id"),
        }),
    "Locations": EntityType(
        "Locations", "Location", Location,
        {**_NAMED, "encodingType": "encoding_type", "location": "location", "properties": "properties"},
        navigation={
            "Things": _link("Things", ThingLocation, "location_id", "thing_id"),
            "HistoricalLocations": _link("HistoricalLocations", HistoricalLocationLocation, "location_id",
                                         "historical_location_id"),
        }),
    "HistoricalLocations": EntityType(
        "HistoricalLocations", "HistoricalLocation", HistoricalLocation, {"time": "time"},
        navigation={
            "Thing": _one("Things", "thing_id"),
            "Locations": _link("Locations", HistoricalLocationLocation, "historical_location_id", "location_id"),
        }),
    "Datastreams": EntityType(
        "Datastreams", "Datastream", Datastream,
        {**_NAMED, "unitOfMeasurement": "unit_of_measurement", "observationType": "observation_type",
         "observedArea": "observed_area", "properties": "properties"},
        intervals={"phenomenonTime": ("phenomenon_time_start", "phenomenon_time_end"),
                   "resultTime": ("result_time_start", "result_time_end")},
        navigation={
            "Thing": _one("Things", "thing_id"),
            "Sensor": _one("Sensors", "sensor_id"),
            "ObservedProperty": _one("ObservedProperties", "observed_property_id"),
            "Observations": _many("Observations", "datastream_id"),
        }),
    "MultiDatastreams": EntityType(
        "MultiDatastreams", "MultiDatastream", MultiDatastream,
        {**_NAMED, "unitOfMeasurements": "unit_of_measurements", "observationType": "observation_type",
         "multiObservationDataTypes": "multi_observation_data_types", "observedArea": "observed_area",
         "properties": "properties"},
        intervals={"phenomenonTime": ("phenomenon_time_start", "phenomenon_time_end"),
                   "resultTime": ("result_time_start", "result_time_end")},
        navigation={
            "Thing": _one("Things", "thing_id"),
            "Sensor": _one("Sensors", "sensor_id"),
            "ObservedProperties": _link("ObservedProperties", MultiDatastreamObservedProperty,
                                        "multi_datastream_id", "observed_property_id"),
            "Observations": _many("Observations", "multi_datastream_id"),
        }),
    "Sensors": EntityType(
        "Sensors", "Sensor", Sensor,
        {**_NAMED, "encodingType": "encoding_type", "metadata": "sensor_metadata", "properties": "properties"},
        navigation={
            "Datastreams": _many("Datastreams", "sensor_id"),
            "MultiDatastreams": _many("MultiDatastreams", "sensor_id"),
        }),
    "ObservedProperties": EntityType(
        "ObservedProperties", "ObservedProperty", ObservedProperty,
        {"name": "name", "definition": "definition", "description": "description", "properties": "properties"},
        navigation={
            "Datastreams": _many("Datastreams", "observed_property_id"),
            "MultiDatastreams": _link("MultiDatastreams", MultiDatastreamObservedProperty,
                                      "observed_property_id", "multi_datastream_id"),
        }),
    "Observations": EntityType(
        "Observations", "Observation", Observation,
        {"result": "result", "resultTime": "result_time", "resultQuality": "result_quality",
         "parameters": "parameters"},
        intervals={"phenomenonTime": ("phenomenon_time_start", "phenomenon_time_end"),
                   "validTime": ("valid_time_start", "valid_time_end")},
        navigation={
            "Datastream": _one("Datastreams", "datastream_id"),
            "MultiDatastream": _one("MultiDatastreams", "multi_datastream_id"),
            "FeatureOfInterest": _one("FeaturesOfInterest", "feature_of_interest_id"),
        }),
    "FeaturesOfInterest": EntityType(
        "FeaturesOfInterest", "FeatureOfInterest", FeatureOfInterest,
        {**_NAMED, "encodingType": "encoding_type", "feature": "feature", "properties": "properties"},
        navigation={
            "Observations": _many("Observations", "feature_of_interest_id"),
        }),
}

SINGULAR: dict[str, str] = {e.singular: e.name for e in ENTITIES.values()}


def entity_type(name: str) -> EntityType | None:
    """The entity type of an entity set name (``"Things"``) or singular name (``"Thing"``)."""
    return ENTITIES.get(name) or ENTITIES.get(SINGULAR.get(name, ""))
