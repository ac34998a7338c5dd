"""LODA sharing: the release ledger, output reviews and privacy budgets.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sharing_release",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.String(64), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=True),
        sa.Column("agreement_slug", sa.String(100), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("dataset_key", sa.String(500), nullable=False),
        sa.Column("dimension_key", sa.String(500), nullable=False),
        sa.Column("datasets", JSON, nullable=False),
        sa.Column("dimensions", JSON, nullable=False),
        sa.Column("measures", JSON, nullable=False),
        sa.Column("filters", JSON, nullable=False),
        sa.Column("query_kind", sa.String(20), nullable=False),
        sa.Column("profile", sa.String(20), nullable=False),
        sa.Column("cells", JSON, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sharing_release"),
    )
    op.create_index("ix_sharing_release_lookup", "sharing_release", ["dataset_key", "dimension_key"])
    op.create_index("ix_sharing_release_digest", "sharing_release", ["digest"])
    op.create_table(
        "sharing_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.String(64), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=True),
        sa.Column("agreement_slug", sa.String(100), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("profile", sa.String(20), nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("rule_results", JSON, nullable=False),
        sa.Column("proposed", JSON, nullable=False),
        sa.Column("ledger_entry", JSON, nullable=True),
        sa.Column("created", WHEN, nullable=False),
        sa.Column("decided_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(["requested_by_id"], ["user_account.id"], ondelete="SET NULL",
                                name="fk_sharing_review_requested_by_id_user_account"),
        sa.PrimaryKeyConstraint("id", name="pk_sharing_review"),
        sa.CheckConstraint("status IN ('pending', 'released', 'refused')", name="ck_sharing_review_status"),
    )
    op.create_index("ix_sharing_review_status", "sharing_review", ["status", "id"])
    op.create_table(
        "sharing_review_decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("review_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(100), nullable=False),
        sa.Column("decision", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["review_id"], ["sharing_review.id"], ondelete="CASCADE",
                                name="fk_sharing_review_decision_review_id_sharing_review"),
        sa.ForeignKeyConstraint(["reviewer_id"], ["user_account.id"],
                                name="fk_sharing_review_decision_reviewer_id_user_account"),
        sa.PrimaryKeyConstraint("id", name="pk_sharing_review_decision"),
        sa.UniqueConstraint("review_id", "reviewer_id", name="uq_sharing_review_decision_reviewer"),
        sa.CheckConstraint("decision IN ('approve', 'reject')", name="ck_sharing_review_decision_decision"),
    )
    op.create_table(
        "sharing_dp_budget",
        sa.Column("agreement_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("agreement_slug", sa.String(100), nullable=False),
        sa.Column("spent", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("agreement_id", name="pk_sharing_dp_budget"),
    )
    op.create_table(
        "sharing_dp_release",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.String(64), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("measures", JSON, nullable=False),
        sa.Column("mechanism", sa.String(100), nullable=False),
        sa.Column("created", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sharing_dp_release"),
    )
    op.create_index("ix_sharing_dp_release_agreement", "sharing_dp_release", ["agreement_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_sharing_dp_release_agreement", table_name="sharing_dp_release")
    op.drop_table("sharing_dp_release")
    op.drop_table("sharing_dp_budget")
    op.drop_table("sharing_review_decision")
    op.drop_index("ix_sharing_review_status", table_name="sharing_review")
    op.drop_table("sharing_review")
    op.drop_index("ix_sharing_release_digest", table_name="sharing_release")
    op.drop_index("ix_sharing_release_lookup", table_name="sharing_release")
    op.drop_table("sharing_release")
