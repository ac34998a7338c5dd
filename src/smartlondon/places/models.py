"""The places register's tables: places, their names, identifiers, containing areas, kinds and history.

A place's geometry is kept twice, as GeoJSON in WGS84 (``geometry``) and in British National Grid
(``geometry_bng``, EPSG:27700, reprojected with pyproj), with its bounding box and a representative
point as plain columns. The spatial index is not mapped here: on SQLite it is the R*Tree virtual
table ``place_rtree`` kept up to date by triggers, on PostgreSQL the generated PostGIS column
``place.geom`` with a GiST index (both made by migration 0007).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..core.db import Base, JSONType, UTCDateTime, utcnow

STATUSES = ("proposed", "active", "retired")


class PlaceKind(Base):
    """One kind in the extensible taxonomy (borough, lsoa, station, ...)."""

    __tablename__ = "place_kind"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    label: Mapped[str] = mapped_column(String(100))
    parent: Mapped[str | None] = mapped_column(ForeignKey("place_kind.code"), default=None)
    is_area: Mapped[bool] = mapped_column(Boolean, default=False)
    community: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(Text, default="")


class Place(Base):
    """A named thing in London with a stable ``ldn:<kind>:<key>`` identifier."""

    __tablename__ = "place"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(ForeignKey("place_kind.code"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default="active")
    successors: Mapped[list[str]] = mapped_column(JSONType, default=list)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    geometry: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    geometry_bng: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    geometry_source: Mapped[str] = mapped_column(String(200), default="")
    geometry_asserted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    min_lon: Mapped[float | None] = mapped_column(Float, default=None)
    min_lat: Mapped[float | None] = mapped_column(Float, default=None)
    max_lon: Mapped[float | None] = mapped_column(Float, default=None)
    max_lat: Mapped[float | None] = mapped_column(Float, default=None)
    point_lon: Mapped[float | None] = mapped_column(Float, default=None)
    point_lat: Mapped[float | None] = mapped_column(Float, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    names: Mapped[list[PlaceName]] = relationship(back_populates="place", cascade="all, delete-orphan",
                                                  order_by="PlaceName.id")
    identifiers: Mapped[list[PlaceIdentifier]] = relationship(back_populates="place", cascade="all, delete-orphan",
                                                              order_by="PlaceIdentifier.id")
    versions: Mapped[list[PlaceVersion]] = relationship(back_populates="place", cascade="all, delete-orphan",
                                                        order_by="PlaceVersion.version")

    __table_args__ = (Index("ix_place_kind_status", "kind", "status"),)


class PlaceName(Base):
    """A name of a place, with who asserted it and when it is valid."""

    __tablename__ = "place_name"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    place_id: Mapped[int] = mapped_column(ForeignKey("place.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    lang: Mapped[str] = mapped_column(String(20), default="en")
    preferred: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(200), default="")
    asserted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    valid_from: Mapped[date | None] = mapped_column(Date, default=None)
    valid_to: Mapped[date | None] = mapped_column(Date, default=None)

    place: Mapped[Place] = relationship(back_populates="names")


class PlaceIdentifier(Base):
    """An external identifier (GSS code, TfL NLC, LAQN site code, UPRN, ...); unique per scheme among active places."""

    __tablename__ = "place_identifier"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    place_id: Mapped[int] = mapped_column(ForeignKey("place.id", ondelete="CASCADE"), index=True)
    scheme: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(200), default="")
    asserted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    place: Mapped[Place] = relationship(back_populates="identifiers")

    __table_args__ = (
        Index("uq_place_identifier_scheme_value_active", "scheme", "value", unique=True,
              sqlite_where=text("active"), postgresql_where=text("active")),
        Index("ix_place_identifier_value", "value"),
    )


class PlaceArea(Base):
    """A containing area of a place (computed from geometry on write)."""

    __tablename__ = "place_area"

    place_id: Mapped[int] = mapped_column(ForeignKey("place.id", ondelete="CASCADE"), primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("place.id", ondelete="CASCADE"), primary_key=True)
    area_kind: Mapped[str] = mapped_column(String(40))

    __table_args__ = (Index("ix_place_area_area_id", "area_id", "place_id"),)


class PlaceVersion(Base):
    """One change to a place: who, when, what, and the before/after of every changed field."""

    __tablename__ = "place_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    place_id: Mapped[int] = mapped_column(ForeignKey("place.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    changes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    place: Mapped[Place] = relationship(back_populates="versions")

    __table_args__ = (UniqueConstraint("place_id", "version", name="uq_place_version_place_id_version"),)


class PlaceProposal(Base):
    """A proposed new place, edit or retirement, waiting for review (or decided, with the reason)."""

    __tablename__ = "place_proposal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(20))
    target_uid: Mapped[str | None] = mapped_column(String(200), default=None, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    proposer: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    reviewer: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    result_uid: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
