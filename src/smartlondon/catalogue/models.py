"""Tables of the catalogue. Field names follow DCAT-AP 3 so the RDF view maps 1:1.

``dataset_facet`` and the full-text index (``dataset_fts`` on SQLite, ``dataset.search_vector``
on PostgreSQL) are derived from the other tables; the service writes them in the same
transaction as the dataset, and ``smartlondon search rebuild`` recreates them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator, UserDefinedType

from ..core.db import Base, JSONType, UTCDateTime, utcnow
from ..core.models import Organisation


class _SearchVector(TypeDecorator[Any]):
    """A tsvector on PostgreSQL; unused (NULL text) on SQLite, which has its FTS5 table."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect):  # type: ignore[no-untyped-def]
        if dialect.name == "postgresql":
            return dialect.type_descriptor(TSVECTOR())
        return dialect.type_descriptor(Text())


class Licence(Base):
    """An entry of the licence register (OGL v3 is the default)."""

    __tablename__ = "licence"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(500))
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    spdx: Mapped[str | None] = mapped_column(String(60), nullable=True)


class Dataset(Base):
    """A dataset (dcat:Dataset): metadata plus its resources (distributions)."""

    __tablename__ = "dataset"
    __table_args__ = (
        Index("ix_dataset_state_modified", "state", "private", "modified"),
        Index("ix_dataset_title_sort", "title_sort"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    title_sort: Mapped[str] = mapped_column(String(300), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    licence_id: Mapped[str] = mapped_column(ForeignKey("licence.id"))
    contact_name: Mapped[str] = mapped_column(String(200), default="")
    contact_email: Mapped[str] = mapped_column(String(320), default="")
    frequency: Mapped[str] = mapped_column(String(20), default="irregular")
    temporal_start: Mapped[date | None] = mapped_column(Date, nullable=True)
    temporal_end: Mapped[date | None] = mapped_column(Date, nullable=True)
    bbox_west: Mapped[float | None] = mapped_column(Float, nullable=True)
    bbox_south: Mapped[float | None] = mapped_column(Float, nullable=True)
    bbox_east: Mapped[float | None] = mapped_column(Float, nullable=True)
    bbox_north: Mapped[float | None] = mapped_column(Float, nullable=True)
    geography: Mapped[str] = mapped_column(String(20), default="london")
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(20), default="active")
    featured: Mapped[bool] = mapped_column(Boolean, default=False)
    landing_page: Mapped[str] = mapped_column(String(2000), default="")
    version: Mapped[str] = mapped_column(String(100), default="")
    extras: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    search_vector: Mapped[Any] = mapped_column(_SearchVector, nullable=True, deferred=True)

    organisation: Mapped[Organisation] = relationship(lazy="joined")
    licence: Mapped[Licence] = relationship(lazy="joined")
    keywords: Mapped[list["DatasetKeyword"]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="DatasetKeyword.position"
    )
    themes: Mapped[list["DatasetTheme"]] = relationship(lazy="selectin", cascade="all, delete-orphan")
    areas: Mapped[list["DatasetArea"]] = relationship(lazy="selectin", cascade="all, delete-orphan")
    place_refs: Mapped[list["DatasetPlace"]] = relationship(lazy="selectin", cascade="all, delete-orphan")
    resources: Mapped[list["Resource"]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="Resource.position",
        back_populates="dataset",
    )


class DatasetKeyword(Base):
    """A keyword (dcat:keyword) of a dataset."""

    __tablename__ = "dataset_keyword"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True)
    keyword: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class DatasetTheme(Base):
    """A theme (dcat:theme) of a dataset, from the platform's theme list."""

    __tablename__ = "dataset_theme"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True)
    theme: Mapped[str] = mapped_column(String(40), primary_key=True)


class DatasetArea(Base):
    """A borough (by GSS code) that a dataset covers (dct:spatial)."""

    __tablename__ = "dataset_area"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True)
    gss_code: Mapped[str] = mapped_column(String(9), primary_key=True)


class DatasetPlace(Base):
    """A place in the register (by its ``ldn:`` uid) that a dataset is about (dct:spatial)."""

    __tablename__ = "dataset_place"
    __table_args__ = (Index("ix_dataset_place_place_uid", "place_uid"),)

    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True)
    place_uid: Mapped[str] = mapped_column(String(200), primary_key=True)


class DatasetFacet(Base):
    """Derived: one row per (facet, value) of a visible dataset, for filters and counts."""

    __tablename__ = "dataset_facet"
    __table_args__ = (Index("ix_dataset_facet_dataset", "dataset_id"),)

    facet: Mapped[str] = mapped_column(String(20), primary_key=True)
    value: Mapped[str] = mapped_column(String(100), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True)


class Resource(Base):
    """A resource (dcat:Distribution): an uploaded file or a link."""

    __tablename__ = "resource"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(10))  # "upload" or "link"
    url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    storage_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    filename: Mapped[str | None] = mapped_column(String(300), nullable=True)
    format: Mapped[str] = mapped_column(String(40), default="")
    media_type: Mapped[str] = mapped_column(String(200), default="application/octet-stream")
    byte_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    table_schema: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    extras: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="resources")


class SearchChange(Base):
    """Derived: one row per index write, so in-memory facet counters can follow every change.

    ``dataset_id`` NULL means the whole index was rebuilt. ``at`` is seconds since the epoch.
    """

    __tablename__ = "search_change"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[float] = mapped_column(Float)
