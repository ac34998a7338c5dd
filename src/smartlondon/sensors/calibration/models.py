"""The calibration table: one row per fitted calibration model of a low-cost Datastream.

``sta_calibration`` rows are versioned per low-cost Datastream (1, 2, ...); at most one is
``active`` (the one applied to new raw Observations). ``derived_datastream_id`` is the calibrated
Datastream it writes to. Deleting either Datastream of the pair deletes its calibrations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ...core.db import Base, JSONType, UTCDateTime, utcnow


class Calibration(Base):
    """A fitted calibration model of a low-cost Datastream against a co-located reference Datastream."""

    __tablename__ = "sta_calibration"
    __table_args__ = (
        UniqueConstraint("datastream_id", "version", name="uq_sta_calibration_datastream_version"),
        Index("ix_sta_calibration_reference_datastream_id", "reference_datastream_id"),
        Index("ix_sta_calibration_derived_datastream_id", "derived_datastream_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    datastream_id: Mapped[int] = mapped_column(ForeignKey("sta_datastream.id", ondelete="CASCADE"))
    reference_datastream_id: Mapped[int] = mapped_column(ForeignKey("sta_datastream.id", ondelete="CASCADE"))
    derived_datastream_id: Mapped[int | None] = mapped_column(
        ForeignKey("sta_datastream.id", ondelete="SET NULL"), nullable=True)
    humidity_datastream_id: Mapped[int | None] = mapped_column(
        ForeignKey("sta_datastream.id", ondelete="SET NULL"), nullable=True)
    temperature_datastream_id: Mapped[int | None] = mapped_column(
        ForeignKey("sta_datastream.id", ondelete="SET NULL"), nullable=True)
    kind: Mapped[str] = mapped_column(String(100))
    code_version: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)
    fit_start: Mapped[datetime] = mapped_column(UTCDateTime)
    fit_end: Mapped[datetime] = mapped_column(UTCDateTime)
    stats: Mapped[dict[str, Any]] = mapped_column(JSONType)
    distance_m: Mapped[float | None] = mapped_column(nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
