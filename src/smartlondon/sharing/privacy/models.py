"""Tables of privacy by design: opt-outs, data-subject requests and their propagation, data trusts.

People appear here only as pseudonyms (one per live key epoch); raw identifiers are never stored.
The pseudonym keys themselves live in ``settings.keys_dir`` (see ``pseudonyms.py``), not here.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ...core.db import Base, JSONType, UTCDateTime, utcnow
from ...core.models import Organisation

OPTOUT_SCOPES = ("all", "research_planning")
REQUEST_KINDS = ("access", "rectification", "erasure", "objection")
REQUEST_STATUSES = ("open", "completed", "refused")
TRUST_ROLES = ("steward", "member", "beneficiary")
DECISIONS = ("approved", "refused")


class OptOut(Base):
    """A person's opt-out (by pseudonym, one row per live epoch): from every use, or from research and planning."""

    __tablename__ = "sharing_optout"
    __table_args__ = (Index("ix_sharing_optout_pseudonym", "pseudonym"),
                      Index("ix_sharing_optout_reference", "reference"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(40))
    pseudonym: Mapped[str] = mapped_column(String(64))
    epoch: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(20))
    dataset_slug: Mapped[str | None] = mapped_column(String(100), nullable=True)
    source: Mapped[str] = mapped_column(String(200), default="")
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SubjectRequest(Base):
    """A data-subject request (UK GDPR Articles 15-21) opened by a controller's officer for an identified person."""

    __tablename__ = "sharing_subject_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="open")
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"),
                                                   nullable=True)
    identifier_kind: Mapped[str] = mapped_column(String(20))
    pseudonyms: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    received_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    access_code_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    access_code_expires: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    organisation: Mapped[Organisation] = relationship(lazy="joined")
    propagations: Mapped[list["Propagation"]] = relationship(
        back_populates="request", lazy="selectin", order_by="Propagation.id", cascade="all, delete-orphan")


class Propagation(Base):
    """A rectification or erasure passed on to one recipient organisation, and its confirmation."""

    __tablename__ = "sharing_subject_propagation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("sharing_subject_request.id", ondelete="CASCADE",
                                                       name="fk_sharing_subject_propagation_request"),
                                            index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    agreement_slug: Mapped[str] = mapped_column(String(100))
    dataset_slug: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(20))
    row_level: Mapped[bool] = mapped_column(Boolean, default=False)  # the recipient holds the person's rows
    notified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    confirmed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")

    request: Mapped[SubjectRequest] = relationship(back_populates="propagations")
    organisation: Mapped[Organisation] = relationship(lazy="joined")


class Trust(Base):
    """A data trust: a steward organisation holding data for its members under published terms of use."""

    __tablename__ = "sharing_trust"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    steward_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    purpose: Mapped[str] = mapped_column(Text, default="")
    terms_of_use: Mapped[str] = mapped_column(Text, default="")
    datasets: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    steward: Mapped[Organisation] = relationship(lazy="joined")
    members: Mapped[list["TrustMember"]] = relationship(
        back_populates="trust", lazy="selectin", order_by="TrustMember.joined", cascade="all, delete-orphan")
    decisions: Mapped[list["TrustDecision"]] = relationship(
        back_populates="trust", lazy="selectin", order_by="TrustDecision.id.desc()")


class TrustMember(Base):
    """An organisation's membership of a trust, as steward, member or beneficiary."""

    __tablename__ = "sharing_trust_member"

    trust_id: Mapped[int] = mapped_column(ForeignKey("sharing_trust.id", ondelete="CASCADE"), primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    joined: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    trust: Mapped[Trust] = relationship(back_populates="members")
    organisation: Mapped[Organisation] = relationship(lazy="joined")


class TrustDecision(Base):
    """One entry of a trust's public decision log: an access request, approved or refused, and why."""

    __tablename__ = "sharing_trust_decision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trust_id: Mapped[int] = mapped_column(ForeignKey("sharing_trust.id"), index=True)
    requester: Mapped[str] = mapped_column(String(200))
    request_summary: Mapped[str] = mapped_column(Text)
    datasets: Mapped[list[str]] = mapped_column(JSONType, default=list)
    decision: Mapped[str] = mapped_column(String(20))
    reasons: Mapped[str] = mapped_column(Text)
    agreement_slug: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_on: Mapped[date] = mapped_column(Date)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    trust: Mapped[Trust] = relationship(back_populates="decisions")
