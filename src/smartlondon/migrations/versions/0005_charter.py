"""Open Data Charter scores and link checks.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
WHEN = sa.DateTime(timezone=True)
CHECKS = ("licence", "openness", "links", "timeliness", "metadata", "schema", "dcat", "gss")  # frozen with this revision


def upgrade() -> None:
    op.create_table(
        "dataset_score",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("rating", sa.String(20), nullable=False),
        sa.Column("stars", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("not_checked", sa.Integer(), nullable=False),
        *(sa.Column(f"check_{name}", sa.String(20), nullable=False) for name in CHECKS),
        sa.Column("computed_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["dataset.id"], name="fk_dataset_score_dataset_id_dataset",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dataset_id", name="pk_dataset_score"),
    )
    op.create_index("ix_dataset_score_public_organisation", "dataset_score", ["public", "organisation_id"])

    op.create_table(
        "dataset_check",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["dataset_score.dataset_id"],
                                name="fk_dataset_check_dataset_id_dataset_score", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dataset_id", "name", name="pk_dataset_check"),
    )
    op.create_index("ix_dataset_check_name_status", "dataset_check", ["name", "status"])

    op.create_table(
        "link_check",
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(2000), nullable=False),
        sa.Column("alive", sa.Boolean(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(500), nullable=False),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("elapsed_ms", sa.Integer(), nullable=True),
        sa.Column("links_out", sa.Boolean(), nullable=True),
        sa.Column("checked_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["resource_id"], ["resource.id"], name="fk_link_check_resource_id_resource",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("resource_id", name="pk_link_check"),
    )
    op.create_index("ix_link_check_checked_at", "link_check", ["checked_at"])

    op.create_table(
        "dataset_dcat_check",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("problems", JSON, nullable=False),
        sa.Column("dataset_modified", WHEN, nullable=False),
        sa.Column("checked_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["dataset.id"], name="fk_dataset_dcat_check_dataset_id_dataset",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dataset_id", name="pk_dataset_dcat_check"),
    )

    op.create_table(
        "charter_job",
        sa.Column("name", sa.String(20), nullable=False),
        sa.Column("next_run_at", WHEN, nullable=True),
        sa.Column("last_run_at", WHEN, nullable=True),
        sa.Column("last_result", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_charter_job"),
    )


def downgrade() -> None:
    op.drop_table("charter_job")
    op.drop_table("dataset_dcat_check")
    op.drop_table("link_check")
    op.drop_index("ix_dataset_check_name_status", table_name="dataset_check")
    op.drop_table("dataset_check")
    op.drop_index("ix_dataset_score_public_organisation", table_name="dataset_score")
    op.drop_table("dataset_score")
