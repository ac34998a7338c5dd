"""Tables of the Open Data Charter scorecard.

``dataset_score`` and ``dataset_check`` are derived from the catalogue and from the stored results
of the slower checks (``link_check``, ``dataset_dcat_check``); they are rewritten in the dataset's
own transaction whenever it changes, and ``smartlondon catalogue score`` recomputes them all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.orm.collections import attribute_keyed_dict

from ...core.db import Base, JSONType, UTCDateTime, utcnow


class DatasetScore(Base):
    """A dataset's scorecard: overall score and rating, openness stars, and when it was computed.

    It also carries, for the league tables, the dataset's publisher, whether it is public, and the
    status of each check (``check_<name>``), so a league table is one scan of this table.
    """

    __tablename__ = "dataset_score"
    __table_args__ = (Index("ix_dataset_score_public_organisation", "public", "organisation_id"),)

    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True)
    organisation_id: Mapped[int] = mapped_column(Integer)
    public: Mapped[bool] = mapped_column(Boolean)  # active and not private: counts in league tables
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 0-100; None if nothing could be checked
    rating: Mapped[str] = mapped_column(String(20), default="unrated")
    stars: Mapped[int] = mapped_column(Integer, default=0)
    passed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    not_checked: Mapped[int] = mapped_column(Integer, default=0)
    check_licence: Mapped[str] = mapped_column(String(20), default="")
    check_openness: Mapped[str] = mapped_column(String(20), default="")
    check_links: Mapped[str] = mapped_column(String(20), default="")
    check_timeliness: Mapped[str] = mapped_column(String(20), default="")
    check_metadata: Mapped[str] = mapped_column(String(20), default="")
    check_schema: Mapped[str] = mapped_column(String(20), default="")
    check_dcat: Mapped[str] = mapped_column(String(20), default="")
    check_gss: Mapped[str] = mapped_column(String(20), default="")
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # Read-only: scores.py writes both tables with plain statements, in the dataset's transaction.
    checks: Mapped[dict[str, "DatasetCheck"]] = relationship(
        lazy="selectin", viewonly=True, collection_class=attribute_keyed_dict("name"))


class DatasetCheck(Base):
    """One check of a dataset's scorecard: pass, fail, not-applicable or not-checked, and why."""

    __tablename__ = "dataset_check"
    __table_args__ = (Index("ix_dataset_check_name_status", "name", "status"),)

    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset_score.dataset_id", ondelete="CASCADE"),
                                            primary_key=True)
    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class LinkCheck(Base):
    """The last time the link checker looked at a resource: what it checked and what it found."""

    __tablename__ = "link_check"
    __table_args__ = (Index("ix_link_check_checked_at", "checked_at"),)

    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id", ondelete="CASCADE"), primary_key=True)
    target: Mapped[str] = mapped_column(String(2000))  # the URL, or "file:" + storage key for an upload
    alive: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # None: could not be checked
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str] = mapped_column(String(500), default="")
    method: Mapped[str] = mapped_column(String(10), default="")
    elapsed_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    links_out: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # RDF that links to others' data
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DatasetDcatCheck(Base):
    """The stored result of validating a dataset's DCAT-AP record against the SHACL shapes."""

    __tablename__ = "dataset_dcat_check"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True)
    valid: Mapped[bool] = mapped_column(Boolean)
    problems: Mapped[list[str]] = mapped_column(JSONType, default=list)
    dataset_modified: Mapped[datetime] = mapped_column(UTCDateTime)  # the dataset version that was checked
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CharterJob(Base):
    """When each scheduled scorecard job (link checks, rescoring...) may next run; claimed atomically."""

    __tablename__ = "charter_job"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_result: Mapped[str] = mapped_column(Text, default="")
