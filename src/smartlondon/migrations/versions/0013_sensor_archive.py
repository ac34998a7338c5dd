"""Sensors: archived observation segments (Parquet).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)
OBSERVATION_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sta_archive_segment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("datastream_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("time_start", WHEN, nullable=False),
        sa.Column("time_end", WHEN, nullable=False),
        sa.Column("min_id", OBSERVATION_ID, nullable=False),
        sa.Column("max_id", OBSERVATION_ID, nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("created", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["datastream_id"], ["sta_datastream.id"],
                                name="fk_sta_archive_segment_datastream_id_sta_datastream", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_sta_archive_segment"),
    )
    op.create_index("ix_sta_archive_segment_datastream_time", "sta_archive_segment",
                    ["datastream_id", "time_start", "time_end"])
    op.create_index("ix_sta_archive_segment_ids", "sta_archive_segment", ["min_id", "max_id"])


def downgrade() -> None:
    op.drop_table("sta_archive_segment")
