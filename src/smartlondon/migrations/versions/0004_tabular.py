"""The tabular data store: one row per loaded resource.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tabular_table",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("table_name", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=True),
        sa.Column("valid", sa.Boolean(), nullable=True),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("schema_source", sa.String(20), nullable=False),
        sa.Column("schema", JSON, nullable=True),
        sa.Column("gss_columns", JSON, nullable=False),
        sa.Column("report", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("requested_at", WHEN, nullable=False),
        sa.Column("started_at", WHEN, nullable=True),
        sa.Column("heartbeat_at", WHEN, nullable=True),
        sa.Column("loaded_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tabular_table"),
        sa.UniqueConstraint("resource_id", name="uq_tabular_table_resource_id"),
    )
    op.create_index("ix_tabular_table_status_requested", "tabular_table", ["status", "requested_at"])


def downgrade() -> None:
    op.drop_index("ix_tabular_table_status_requested", table_name="tabular_table")
    op.drop_table("tabular_table")
