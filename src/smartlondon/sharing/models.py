"""Tables of LODA sharing: agreements and their parties, restricted datasets, gateway queries, the access log.

Person-level rows never live here: they are in the restricted DuckDB store (``sharing.store``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (Date, Float, ForeignKey, Index, Integer, LargeBinary, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..core.db import Base, JSONType, UTCDateTime, utcnow
from ..core.models import Organisation, User

STATUSES = ("draft", "approved", "suspended", "expired", "ended")
IDENTIFIABILITY = ("aggregate", "pseudonymised", "identifiable")
PROFILES = ("nhs", "ons")


class Agreement(Base):
    """A data-sharing agreement (the ICO Data Sharing Code's fields), the key to every gateway query."""

    __tablename__ = "sharing_agreement"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    status_reason: Mapped[str] = mapped_column(Text, default="")
    purposes: Mapped[list[str]] = mapped_column(JSONType, default=list)        # DPV purpose terms (dpv:...)
    purpose_statement: Mapped[str] = mapped_column(Text, default="")
    lawful_basis: Mapped[str] = mapped_column(String(20))                      # e.g. "6(1)(e)"
    special_condition: Mapped[str | None] = mapped_column(String(20), nullable=True)  # e.g. "9(2)(h)"
    public_benefit: Mapped[str] = mapped_column(Text, default="")
    identifiability: Mapped[str] = mapped_column(String(20), default="aggregate")
    disclosure_profile: Mapped[str] = mapped_column(String(10), default="nhs")
    dp_epsilon_budget: Mapped[float | None] = mapped_column(Float, nullable=True)
    retention: Mapped[str] = mapped_column(Text, default="")
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    dpia_reference: Mapped[str] = mapped_column(String(200), default="")
    withheld: Mapped[list[str]] = mapped_column(JSONType, default=list)        # fields kept off the public register
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    parties: Mapped[list["AgreementParty"]] = relationship(lazy="selectin", cascade="all, delete-orphan",
                                                           order_by="AgreementParty.position")
    datasets: Mapped[list["AgreementDataset"]] = relationship(lazy="selectin", cascade="all, delete-orphan",
                                                              order_by="AgreementDataset.position")

    def party_orgs(self, role: str) -> list[Organisation]:
        """The organisations that are parties in this role (controller or recipient)."""
        return [p.organisation for p in self.parties if p.role == role]


class AgreementParty(Base):
    """A controller or recipient of an agreement; a controller's named officer approves it."""

    __tablename__ = "sharing_agreement_party"

    agreement_id: Mapped[int] = mapped_column(ForeignKey("sharing_agreement.id", ondelete="CASCADE"),
                                              primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    officer_name: Mapped[str] = mapped_column(String(200), default="")
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    organisation: Mapped[Organisation] = relationship(lazy="joined")
    approved_by: Mapped[User | None] = relationship(lazy="joined")


class AgreementDataset(Base):
    """A restricted dataset an agreement covers, with the fields it covers."""

    __tablename__ = "sharing_agreement_dataset"

    agreement_id: Mapped[int] = mapped_column(ForeignKey("sharing_agreement.id", ondelete="CASCADE"),
                                              primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("sharing_restricted_dataset.dataset_id", name="fk_sharing_agreement_dataset_restricted"),
        primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    fields: Mapped[list[str]] = mapped_column(JSONType, default=list)

    restricted: Mapped["RestrictedDataset"] = relationship(lazy="joined")


class RestrictedDataset(Base):
    """A catalogue dataset whose data is restricted: where its rows live in the store, and its fields."""

    __tablename__ = "sharing_restricted_dataset"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    owner_org_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    table_name: Mapped[str] = mapped_column(String(63), unique=True)
    subject_column: Mapped[str | None] = mapped_column(String(63), nullable=True)
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    area_field: Mapped[str | None] = mapped_column(String(63), nullable=True)  # a borough field, for /sharing/uses

    owner: Mapped[Organisation] = relationship(lazy="joined")

    def field(self, name: str) -> dict[str, Any] | None:
        """The field called ``name``, or None."""
        return next((f for f in self.fields if f["name"] == name), None)


class SharingQuery(Base):
    """One query run through the gateway: who, under which agreement, the body, and the safe result."""

    __tablename__ = "sharing_query"
    __table_args__ = (Index("ix_sharing_query_agreement", "agreement_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agreement_id: Mapped[int | None] = mapped_column(ForeignKey("sharing_agreement.id"), nullable=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"), nullable=True)
    purpose: Mapped[str] = mapped_column(String(100), default="")
    body: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="refused")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)  # the safe table only
    disclosure: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    reasons: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    agreement: Mapped[Agreement | None] = relationship(lazy="joined")
    user: Mapped[User] = relationship(lazy="joined")
    organisation: Mapped[Organisation | None] = relationship(lazy="joined")


class AccessLogEntry(Base):
    """One use of restricted data, hash-chained to the previous entry. Append-only (database triggers)."""

    __tablename__ = "sharing_access_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    organisation: Mapped[str] = mapped_column(String(100))
    agreement: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(100))
    datasets: Mapped[list[str]] = mapped_column(JSONType, default=list)
    fields: Mapped[list[str]] = mapped_column(JSONType, default=list)
    boroughs: Mapped[list[str]] = mapped_column(JSONType, default=list)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    released: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    query_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    subjects: Mapped[list["AccessLogSubjects"]] = relationship(lazy="selectin", order_by="AccessLogSubjects.dataset")


class AccessLogSubjects(Base):
    """The compact set of subjects (``_subject_no``) whose rows one use read from one dataset."""

    __tablename__ = "sharing_access_subjects"
    __table_args__ = (UniqueConstraint("entry_id", "dataset", name="uq_sharing_access_subjects_entry_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("sharing_access_log.id"), index=True)
    dataset: Mapped[str] = mapped_column(String(100), index=True)
    encoding: Mapped[str] = mapped_column(String(20), default="zbits")
    data: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer, default=0)


class LogAnchor(Base):
    """A published head of the access log: how many entries it had and the newest one's hash, at a time."""

    __tablename__ = "sharing_log_anchor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence: Mapped[int] = mapped_column(Integer, index=True)          # entries in the log at that moment
    entry_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the newest entry then (None: empty log)
    head_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(String(40), default="command")  # "command" | "every N entries"


__all__ = ["Agreement", "AgreementParty", "AgreementDataset", "RestrictedDataset", "SharingQuery",
           "AccessLogEntry", "AccessLogSubjects", "LogAnchor", "STATUSES", "IDENTIFIABILITY", "PROFILES"]
