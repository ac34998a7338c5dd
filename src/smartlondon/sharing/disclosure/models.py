"""Tables of disclosure control: the release ledger, output reviews and their decisions, privacy budgets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ...core.db import Base, JSONType, UTCDateTime, utcnow
from ...core.models import User


class Release(Base):
    """One aggregate released through the gateway, with its TRUE cell counts (private: never shown).

    The differencing check compares each new aggregate with earlier releases of the same datasets and
    dimensions whose filter differs by one group.
    """

    __tablename__ = "sharing_release"
    __table_args__ = (Index("ix_sharing_release_lookup", "dataset_key", "dimension_key"),
                      Index("ix_sharing_release_digest", "digest"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    query_id: Mapped[str] = mapped_column(String(64))
    agreement_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    agreement_slug: Mapped[str] = mapped_column(String(100), default="")
    requested_by_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dataset_key: Mapped[str] = mapped_column(String(500))
    dimension_key: Mapped[str] = mapped_column(String(500))
    datasets: Mapped[list[str]] = mapped_column(JSONType)
    dimensions: Mapped[list[str]] = mapped_column(JSONType)
    measures: Mapped[list[str]] = mapped_column(JSONType)
    filters: Mapped[dict[str, Any]] = mapped_column(JSONType)
    query_kind: Mapped[str] = mapped_column(String(20), default="aggregate")
    profile: Mapped[str] = mapped_column(String(20))
    cells: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of datasets, dimensions, filter and cells
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Review(Base):
    """An output the rules could not clear, waiting for two independent reviewers."""

    __tablename__ = "sharing_review"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'released', 'refused')", name="status"),
        Index("ix_sharing_review_status", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    query_id: Mapped[str] = mapped_column(String(64))
    agreement_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    agreement_slug: Mapped[str] = mapped_column(String(100), default="")
    requested_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    profile: Mapped[str] = mapped_column(String(20), default="")
    reasons: Mapped[list[str]] = mapped_column(JSONType)
    rule_results: Mapped[dict[str, Any]] = mapped_column(JSONType)
    proposed: Mapped[dict[str, Any]] = mapped_column(JSONType)
    ledger_entry: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    decisions: Mapped[list["ReviewDecision"]] = relationship(
        back_populates="review", lazy="selectin", order_by="ReviewDecision.id")
    requested_by: Mapped[User | None] = relationship(lazy="joined")


class ReviewDecision(Base):
    """One reviewer's approval or rejection of a review, with the reason."""

    __tablename__ = "sharing_review_decision"
    __table_args__ = (
        UniqueConstraint("review_id", "reviewer_id", name="uq_sharing_review_decision_reviewer"),
        CheckConstraint("decision IN ('approve', 'reject')", name="decision"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("sharing_review.id", ondelete="CASCADE"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    reviewer: Mapped[str] = mapped_column(String(100))
    decision: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    review: Mapped[Review] = relationship(back_populates="decisions")


class PrivacyBudget(Base):
    """The differential privacy budget spent so far under one agreement (epsilon)."""

    __tablename__ = "sharing_dp_budget"

    agreement_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    agreement_slug: Mapped[str] = mapped_column(String(100), default="")
    spent: Mapped[float] = mapped_column(Float, default=0.0)


class PrivateRelease(Base):
    """One differentially private release and the epsilon it spent."""

    __tablename__ = "sharing_dp_release"
    __table_args__ = (Index("ix_sharing_dp_release_agreement", "agreement_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agreement_id: Mapped[int] = mapped_column(Integer)
    query_id: Mapped[str] = mapped_column(String(64))
    epsilon: Mapped[float] = mapped_column(Float)
    measures: Mapped[list[str]] = mapped_column(JSONType)
    mechanism: Mapped[str] = mapped_column(String(100))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


__all__ = ["Release", "Review", "ReviewDecision", "PrivacyBudget", "PrivateRelease"]
