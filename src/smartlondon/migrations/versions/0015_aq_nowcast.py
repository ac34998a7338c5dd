"""Air quality nowcast runs and their area values (issue 7); slot, filled by the nowcast work

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "aq_nowcast_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("species", sa.String(10), nullable=False),
        sa.Column("hour", WHEN, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("method", sa.String(40), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("n_reference_sites", sa.Integer(), nullable=False),
        sa.Column("n_sensor_sites", sa.Integer(), nullable=False),
        sa.Column("n_cells", sa.Integer(), nullable=False),
        sa.Column("grid_file", sa.String(300), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_aq_nowcast_run"),
        sa.UniqueConstraint("species", "hour", name="uq_aq_nowcast_run_species_hour"),
    )
    op.create_index("ix_aq_nowcast_run_hour", "aq_nowcast_run", ["hour"])
    op.create_table(
        "aq_nowcast_area",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("area_code", sa.String(20), nullable=False),
        sa.Column("area_kind", sa.String(10), nullable=False),
        sa.Column("mean", sa.Float(), nullable=False),
        sa.Column("std", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["aq_nowcast_run.id"], name="fk_aq_nowcast_area_run_id_aq_nowcast_run",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "area_code", name="pk_aq_nowcast_area"),
    )
    op.create_index("ix_aq_nowcast_area_code", "aq_nowcast_area", ["area_code"])


def downgrade() -> None:
    op.drop_table("aq_nowcast_area")
    op.drop_table("aq_nowcast_run")
