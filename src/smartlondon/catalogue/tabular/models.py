"""The main database's record of the tabular store: one ``tabular_table`` row per loaded resource.

The analytics store (DuckDB) holds the data; this row holds what the rest of the platform needs
without opening it: the load's status, the Table Schema the table was loaded with, the
Frictionless validation report, and the columns that carry GSS codes. The row doubles as the
load queue: ``pending`` rows are claimed by a loader (``loading``) and end ``loaded`` or
``failed``.

``resource_id`` is deliberately not a foreign key: when a resource is deleted its row must
still be there for the after-commit handler that drops the resource's table from the store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ...core.db import Base, JSONType, UTCDateTime, utcnow

STATUSES = ("pending", "loading", "loaded", "failed")


class TabularTable(Base):
    """A resource's table in the analytics store: status, schema, validation report."""

    __tablename__ = "tabular_table"
    __table_args__ = (Index("ix_tabular_table_status_requested", "status", "requested_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resource_id: Mapped[int] = mapped_column(Integer, unique=True)
    table_name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    generation: Mapped[int] = mapped_column(Integer, default=1)
    source: Mapped[str] = mapped_column(String(200), default="")  # what was asked for: file hash + schema hash
    available: Mapped[bool] = mapped_column(Boolean, default=False)  # a loaded table is in the store
    row_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    valid: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    schema_source: Mapped[str] = mapped_column(String(20), default="")  # declared, inferred or parquet
    table_schema: Mapped[dict[str, Any] | None] = mapped_column("schema", JSONType, nullable=True)
    gss_columns: Mapped[list[str]] = mapped_column(JSONType, default=list)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    loaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
