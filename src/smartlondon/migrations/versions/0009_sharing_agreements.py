"""LODA sharing: agreements, restricted datasets, gateway queries and the access log.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sharing_agreement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("purposes", JSON, nullable=False),
        sa.Column("purpose_statement", sa.Text(), nullable=False),
        sa.Column("lawful_basis", sa.String(20), nullable=False),
        sa.Column("special_condition", sa.String(20), nullable=True),
        sa.Column("public_benefit", sa.Text(), nullable=False),
        sa.Column("identifiability", sa.String(20), nullable=False),
        sa.Column("disclosure_profile", sa.String(10), nullable=False),
        sa.Column("dp_epsilon_budget", sa.Float(), nullable=True),
        sa.Column("retention", sa.Text(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("dpia_reference", sa.String(200), nullable=False),
        sa.Column("withheld", JSON, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created", WHEN, nullable=False),
        sa.Column("modified", WHEN, nullable=False),
        sa.Column("approved_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sharing_agreement"),
        sa.UniqueConstraint("slug", name="uq_sharing_agreement_slug"),
    )
    op.create_table(
        "sharing_agreement_party",
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("officer_name", sa.String(200), nullable=False),
        sa.Column("approved_by_id", sa.Integer(), nullable=True),
        sa.Column("approved_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(["agreement_id"], ["sharing_agreement.id"], ondelete="CASCADE",
                                name="fk_sharing_agreement_party_agreement_id_sharing_agreement"),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"],
                                name="fk_sharing_agreement_party_organisation_id_organisation"),
        sa.ForeignKeyConstraint(["approved_by_id"], ["user_account.id"],
                                name="fk_sharing_agreement_party_approved_by_id_user_account"),
        sa.PrimaryKeyConstraint("agreement_id", "organisation_id", "role", name="pk_sharing_agreement_party"),
    )
    op.create_table(
        "sharing_restricted_dataset",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("owner_org_id", sa.Integer(), nullable=False),
        sa.Column("table_name", sa.String(63), nullable=False),
        sa.Column("subject_column", sa.String(63), nullable=True),
        sa.Column("fields", JSON, nullable=False),
        sa.Column("area_field", sa.String(63), nullable=True),
        sa.ForeignKeyConstraint(["dataset_id"], ["dataset.id"], ondelete="CASCADE",
                                name="fk_sharing_restricted_dataset_dataset_id_dataset"),
        sa.ForeignKeyConstraint(["owner_org_id"], ["organisation.id"],
                                name="fk_sharing_restricted_dataset_owner_org_id_organisation"),
        sa.PrimaryKeyConstraint("dataset_id", name="pk_sharing_restricted_dataset"),
        sa.UniqueConstraint("slug", name="uq_sharing_restricted_dataset_slug"),
        sa.UniqueConstraint("table_name", name="uq_sharing_restricted_dataset_table_name"),
    )
    op.create_table(
        "sharing_agreement_dataset",
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("fields", JSON, nullable=False),
        sa.ForeignKeyConstraint(["agreement_id"], ["sharing_agreement.id"], ondelete="CASCADE",
                                name="fk_sharing_agreement_dataset_agreement_id_sharing_agreement"),
        sa.ForeignKeyConstraint(["dataset_id"], ["sharing_restricted_dataset.dataset_id"],
                                name="fk_sharing_agreement_dataset_restricted"),
        sa.PrimaryKeyConstraint("agreement_id", "dataset_id", name="pk_sharing_agreement_dataset"),
    )
    op.create_table(
        "sharing_query",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("purpose", sa.String(100), nullable=False),
        sa.Column("body", JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("result", JSON, nullable=True),
        sa.Column("disclosure", JSON, nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("created", WHEN, nullable=False),
        sa.Column("released_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(["agreement_id"], ["sharing_agreement.id"],
                                name="fk_sharing_query_agreement_id_sharing_agreement"),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"], name="fk_sharing_query_user_id_user_account"),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"],
                                name="fk_sharing_query_organisation_id_organisation"),
        sa.PrimaryKeyConstraint("id", name="pk_sharing_query"),
    )
    op.create_index("ix_sharing_query_agreement", "sharing_query", ["agreement_id", "id"])
    op.create_table(
        "sharing_access_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("organisation", sa.String(100), nullable=False),
        sa.Column("agreement", sa.String(100), nullable=False),
        sa.Column("purpose", sa.String(100), nullable=False),
        sa.Column("datasets", JSON, nullable=False),
        sa.Column("fields", JSON, nullable=False),
        sa.Column("boroughs", JSON, nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("released", JSON, nullable=False),
        sa.Column("query_id", sa.Integer(), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sharing_access_log"),
        sa.UniqueConstraint("hash", name="uq_sharing_access_log_hash"),
    )
    op.create_table(
        "sharing_access_subjects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(100), nullable=False),
        sa.Column("encoding", sa.String(20), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["sharing_access_log.id"],
                                name="fk_sharing_access_subjects_entry_id_sharing_access_log"),
        sa.PrimaryKeyConstraint("id", name="pk_sharing_access_subjects"),
        sa.UniqueConstraint("entry_id", "dataset", name="uq_sharing_access_subjects_entry_id"),
    )
    op.create_index("ix_sharing_access_subjects_entry_id", "sharing_access_subjects", ["entry_id"])
    op.create_index("ix_sharing_access_subjects_dataset", "sharing_access_subjects", ["dataset"])
    _append_only("sharing_access_log")
    _append_only("sharing_access_subjects")


def _append_only(table: str) -> None:
    """Refuse UPDATE and DELETE on a log table, in the database itself."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
                   f"BEGIN RAISE EXCEPTION 'the {table} table is append-only'; END $$")
        op.execute(f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()")
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, 'the {table} table is append-only'); END")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in ("sharing_access_subjects", "sharing_access_log"):
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")
    op.drop_table("sharing_access_subjects")
    op.drop_table("sharing_access_log")
    op.drop_index("ix_sharing_query_agreement", table_name="sharing_query")
    op.drop_table("sharing_query")
    op.drop_table("sharing_agreement_dataset")
    op.drop_table("sharing_restricted_dataset")
    op.drop_table("sharing_agreement_party")
    op.drop_table("sharing_agreement")
