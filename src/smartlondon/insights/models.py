"""The tables of city analytics: the hourly air quality nowcast (docs/insights-airquality.md, "Nowcast").

``aq_nowcast_run`` is one species at one hour (unique: re-running an hour replaces the row); its grid
lives in a compressed ``.npz`` file named by ``grid_file`` (relative to ``<data_dir>/nowcast``), or is
absent (``grid_file`` NULL) for hours computed without one. ``aq_nowcast_area`` holds the run's value
at every LSOA centroid and the mean over every borough; it goes when its run goes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..core.db import Base, UTCDateTime, utcnow


class NowcastRunRow(Base):
    """One nowcast: a species at an hour, how it was made, and where its grid is."""

    __tablename__ = "aq_nowcast_run"
    __table_args__ = (
        UniqueConstraint("species", "hour", name="uq_aq_nowcast_run_species_hour"),
        Index("ix_aq_nowcast_run_hour", "hour"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    species: Mapped[str] = mapped_column(String(10))
    hour: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    method: Mapped[str] = mapped_column(String(40))
    model_version: Mapped[str] = mapped_column(String(100))
    n_reference_sites: Mapped[int] = mapped_column(Integer)
    n_sensor_sites: Mapped[int] = mapped_column(Integer)
    n_cells: Mapped[int] = mapped_column(Integer)
    grid_file: Mapped[str | None] = mapped_column(String(300), nullable=True)
    seconds: Mapped[float] = mapped_column(Float)


class NowcastAreaRow(Base):
    """A run's value in one area: the LSOA's centroid, or the mean over a borough's grid cells."""

    __tablename__ = "aq_nowcast_area"
    __table_args__ = (Index("ix_aq_nowcast_area_code", "area_code"),)

    run_id: Mapped[int] = mapped_column(ForeignKey("aq_nowcast_run.id", ondelete="CASCADE"), primary_key=True)
    area_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    area_kind: Mapped[str] = mapped_column(String(10))
    mean: Mapped[float] = mapped_column(Float)
    std: Mapped[float] = mapped_column(Float)
