"""Tables of harvesting: the sources, their jobs, the errors of a job, and what each brought in.

``harvest_object`` keys every harvested dataset on (source, remote id), so a re-run updates
instead of duplicating. ``harvest_job`` has a partial unique index that allows one queued or
running job per source: the database itself refuses a second concurrent start.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ...core.db import Base, JSONType, UTCDateTime, utcnow
from ...core.models import Organisation

ACTIVE_JOB = "status IN ('queued', 'running')"


class HarvestSource(Base):
    """A remote catalogue to harvest: its type, address, schedule, publisher and options."""

    __tablename__ = "harvest_source"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))
    url: Mapped[str] = mapped_column(String(2000))
    schedule: Mapped[str] = mapped_column(String(40), default="daily")
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    organisation: Mapped[Organisation] = relationship(lazy="joined")


class HarvestJob(Base):
    """One run of a source: when, how it went, and what it counted."""

    __tablename__ = "harvest_job"
    __table_args__ = (
        Index("ix_harvest_job_source_id_id", "source_id", "id"),
        Index("uq_harvest_job_one_active", "source_id", unique=True,
              sqlite_where=text(ACTIVE_JOB), postgresql_where=text(ACTIVE_JOB)),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("harvest_source.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued running finished failed
    mode: Mapped[str] = mapped_column(String(20), default="auto")  # auto, full or incremental
    trigger: Mapped[str] = mapped_column(String(20), default="manual")  # manual, schedule
    requested_by: Mapped[str] = mapped_column(String(200), default="")
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    seen: Mapped[int] = mapped_column(Integer, default=0)
    expected: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    withdrawn: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    warnings: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    watermark: Mapped[str | None] = mapped_column(String(40), nullable=True)

    source: Mapped[HarvestSource] = relationship(lazy="joined")


class HarvestError(Base):
    """A problem of one job: an error (the record was not harvested) or a warning (it was, with a fix)."""

    __tablename__ = "harvest_error"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("harvest_job.id", ondelete="CASCADE"), index=True)
    level: Mapped[str] = mapped_column(String(10), default="error")
    remote_id: Mapped[str | None] = mapped_column(String(500), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HarvestObject(Base):
    """A remote record of a source and the dataset it became, with the hash of what was written."""

    __tablename__ = "harvest_object"
    __table_args__ = (UniqueConstraint("source_id", "remote_id", name="uq_harvest_object_source_remote"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("harvest_source.id", ondelete="CASCADE"))
    remote_id: Mapped[str] = mapped_column(String(500))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("dataset.id", ondelete="SET NULL"),
                                                   nullable=True, index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    remote_modified: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    remote_url: Mapped[str] = mapped_column(String(2000), default="")
    state: Mapped[str] = mapped_column(String(20), default="active")  # active, withdrawn, gone
    last_job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
