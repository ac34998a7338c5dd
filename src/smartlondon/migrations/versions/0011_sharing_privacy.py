"""LODA sharing: opt-outs, data-subject requests and their propagation, data trusts.

(Pseudonym keys and their epochs live in the keys directory, never in the database.)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sharing_optout",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(40), nullable=False),
        sa.Column("pseudonym", sa.String(64), nullable=False),
        sa.Column("epoch", sa.String(20), nullable=False),
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("dataset_slug", sa.String(100), nullable=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("created", WHEN, nullable=False),
        sa.Column("withdrawn_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sharing_optout"),
    )
    op.create_index("ix_sharing_optout_pseudonym", "sharing_optout", ["pseudonym"])
    op.create_index("ix_sharing_optout_reference", "sharing_optout", ["reference"])
    op.create_table(
        "sharing_subject_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("officer_id", sa.Integer(), nullable=True),
        sa.Column("identifier_kind", sa.String(20), nullable=False),
        sa.Column("pseudonyms", JSON, nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("result", JSON, nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("completed_at", WHEN, nullable=True),
        sa.Column("access_code_hash", sa.String(64), nullable=True),
        sa.Column("access_code_expires", WHEN, nullable=True),
        sa.Column("created", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"],
                                name="fk_sharing_subject_request_organisation_id_organisation"),
        sa.ForeignKeyConstraint(["officer_id"], ["user_account.id"], ondelete="SET NULL",
                                name="fk_sharing_subject_request_officer_id_user_account"),
        sa.PrimaryKeyConstraint("id", name="pk_sharing_subject_request"),
        sa.UniqueConstraint("reference", name="uq_sharing_subject_request_reference"),
    )
    op.create_index("ix_sharing_subject_request_organisation_id", "sharing_subject_request", ["organisation_id"])
    op.create_table(
        "sharing_subject_propagation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("agreement_slug", sa.String(100), nullable=False),
        sa.Column("dataset_slug", sa.String(100), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("row_level", sa.Boolean(), nullable=False),
        sa.Column("notified_at", WHEN, nullable=False),
        sa.Column("confirmed_at", WHEN, nullable=True),
        sa.Column("confirmed_by", sa.String(100), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["sharing_subject_request.id"], ondelete="CASCADE",
                                name="fk_sharing_subject_propagation_request"),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"],
                                name="fk_sharing_subject_propagation_organisation_id_organisation"),
        sa.PrimaryKeyConstraint("id", name="pk_sharing_subject_propagation"),
    )
    op.create_index("ix_sharing_subject_propagation_request_id", "sharing_subject_propagation", ["request_id"])
    op.create_index("ix_sharing_subject_propagation_organisation_id", "sharing_subject_propagation",
                    ["organisation_id"])
    op.create_table(
        "sharing_trust",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("steward_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("terms_of_use", sa.Text(), nullable=False),
        sa.Column("datasets", JSON, nullable=False),
        sa.Column("created", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["steward_id"], ["organisation.id"], name="fk_sharing_trust_steward_id_organisation"),
        sa.PrimaryKeyConstraint("id", name="pk_sharing_trust"),
        sa.UniqueConstraint("slug", name="uq_sharing_trust_slug"),
    )
    op.create_index("ix_sharing_trust_steward_id", "sharing_trust", ["steward_id"])
    op.create_table(
        "sharing_trust_member",
        sa.Column("trust_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("joined", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["trust_id"], ["sharing_trust.id"], ondelete="CASCADE",
                                name="fk_sharing_trust_member_trust_id_sharing_trust"),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"],
                                name="fk_sharing_trust_member_organisation_id_organisation"),
        sa.PrimaryKeyConstraint("trust_id", "organisation_id", name="pk_sharing_trust_member"),
    )
    op.create_table(
        "sharing_trust_decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trust_id", sa.Integer(), nullable=False),
        sa.Column("requester", sa.String(200), nullable=False),
        sa.Column("request_summary", sa.Text(), nullable=False),
        sa.Column("datasets", JSON, nullable=False),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("agreement_slug", sa.String(100), nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=False),
        sa.Column("decided_on", sa.Date(), nullable=False),
        sa.Column("created", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["trust_id"], ["sharing_trust.id"],
                                name="fk_sharing_trust_decision_trust_id_sharing_trust"),
        sa.PrimaryKeyConstraint("id", name="pk_sharing_trust_decision"),
    )
    op.create_index("ix_sharing_trust_decision_trust_id", "sharing_trust_decision", ["trust_id"])
    # the decision log is public and append-only: refuse UPDATE and DELETE
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION sharing_trust_decision_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'the trust decision log is append-only'; END; $$ LANGUAGE plpgsql""")
        op.execute("""
            CREATE TRIGGER sharing_trust_decision_no_change BEFORE UPDATE OR DELETE ON sharing_trust_decision
            FOR EACH ROW EXECUTE FUNCTION sharing_trust_decision_append_only()""")
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER sharing_trust_decision_no_{event.lower()} BEFORE {event} ON sharing_trust_decision
                BEGIN SELECT RAISE(ABORT, 'the trust decision log is append-only'); END""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS sharing_trust_decision_no_change ON sharing_trust_decision")
        op.execute("DROP FUNCTION IF EXISTS sharing_trust_decision_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS sharing_trust_decision_no_update")
        op.execute("DROP TRIGGER IF EXISTS sharing_trust_decision_no_delete")
    op.drop_table("sharing_trust_decision")
    op.drop_table("sharing_trust_member")
    op.drop_table("sharing_trust")
    op.drop_table("sharing_subject_propagation")
    op.drop_table("sharing_subject_request")
    op.drop_table("sharing_optout")
