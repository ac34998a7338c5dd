"""Harvest sources, jobs and the objects they bring in.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
WHEN = sa.DateTime(timezone=True)
ACTIVE_JOB = "status IN ('queued', 'running')"


def upgrade() -> None:
    op.create_table(
        "harvest_source",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("schedule", sa.String(40), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", WHEN, nullable=True),
        sa.Column("created", WHEN, nullable=False),
        sa.Column("modified", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"],
                                name="fk_harvest_source_organisation_id_organisation"),
        sa.PrimaryKeyConstraint("id", name="pk_harvest_source"),
        sa.UniqueConstraint("slug", name="uq_harvest_source_slug"),
    )
    op.create_index("ix_harvest_source_organisation_id", "harvest_source", ["organisation_id"])

    op.create_table(
        "harvest_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("queued_at", WHEN, nullable=False),
        sa.Column("started_at", WHEN, nullable=True),
        sa.Column("finished_at", WHEN, nullable=True),
        sa.Column("heartbeat_at", WHEN, nullable=True),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in (
            "pages", "seen", "created", "updated", "unchanged", "withdrawn", "skipped", "errors", "warnings")),
        sa.Column("expected", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("watermark", sa.String(40), nullable=True),
        sa.ForeignKeyConstraint(["source_id"], ["harvest_source.id"], ondelete="CASCADE",
                                name="fk_harvest_job_source_id_harvest_source"),
        sa.PrimaryKeyConstraint("id", name="pk_harvest_job"),
    )
    op.create_index("ix_harvest_job_source_id_id", "harvest_job", ["source_id", "id"])
    # One queued or running job per source: the lock that stops two harvests of one source.
    op.create_index("uq_harvest_job_one_active", "harvest_job", ["source_id"], unique=True,
                    sqlite_where=sa.text(ACTIVE_JOB), postgresql_where=sa.text(ACTIVE_JOB))

    op.create_table(
        "harvest_error",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("remote_id", sa.String(500), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["harvest_job.id"], ondelete="CASCADE",
                                name="fk_harvest_error_job_id_harvest_job"),
        sa.PrimaryKeyConstraint("id", name="pk_harvest_error"),
    )
    op.create_index("ix_harvest_error_job_id", "harvest_error", ["job_id"])

    op.create_table(
        "harvest_object",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("remote_id", sa.String(500), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("remote_modified", WHEN, nullable=True),
        sa.Column("remote_url", sa.String(2000), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("last_job_id", sa.Integer(), nullable=True),
        sa.Column("created", WHEN, nullable=False),
        sa.Column("modified", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["harvest_source.id"], ondelete="CASCADE",
                                name="fk_harvest_object_source_id_harvest_source"),
        sa.ForeignKeyConstraint(["dataset_id"], ["dataset.id"], ondelete="SET NULL",
                                name="fk_harvest_object_dataset_id_dataset"),
        sa.PrimaryKeyConstraint("id", name="pk_harvest_object"),
        sa.UniqueConstraint("source_id", "remote_id", name="uq_harvest_object_source_remote"),
    )
    op.create_index("ix_harvest_object_dataset_id", "harvest_object", ["dataset_id"])


def downgrade() -> None:
    op.drop_table("harvest_object")
    op.drop_table("harvest_error")
    op.drop_index("uq_harvest_job_one_active", table_name="harvest_job")
    op.drop_table("harvest_job")
    op.drop_table("harvest_source")
