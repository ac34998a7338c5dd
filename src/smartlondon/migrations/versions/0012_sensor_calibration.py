"""Sensors: calibration models of low-cost Datastreams (sensors/calibration/models.py).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
WHEN = sa.DateTime(timezone=True)


def _stream(column: str, nullable: bool, ondelete: str) -> tuple[sa.Column, sa.ForeignKeyConstraint]:
    return (sa.Column(column, sa.Integer(), nullable=nullable),
            sa.ForeignKeyConstraint([column], ["sta_datastream.id"], name=f"fk_sta_calibration_{column}_sta_datastream",
                                    ondelete=ondelete))


def upgrade() -> None:
    columns: list = []
    constraints: list = []
    for column, nullable, ondelete in (("datastream_id", False, "CASCADE"), ("reference_datastream_id", False, "CASCADE"),
                                       ("derived_datastream_id", True, "SET NULL"),
                                       ("humidity_datastream_id", True, "SET NULL"),
                                       ("temperature_datastream_id", True, "SET NULL")):
        col, fk = _stream(column, nullable, ondelete)
        columns.append(col)
        constraints.append(fk)
    op.create_table(
        "sta_calibration",
        sa.Column("id", sa.Integer(), nullable=False),
        *columns,
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("code_version", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("fit_start", WHEN, nullable=False),
        sa.Column("fit_end", WHEN, nullable=False),
        sa.Column("stats", JSON, nullable=False),
        sa.Column("distance_m", sa.Float(), nullable=True),
        sa.Column("created", WHEN, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        *constraints,
        sa.PrimaryKeyConstraint("id", name="pk_sta_calibration"),
        sa.UniqueConstraint("datastream_id", "version", name="uq_sta_calibration_datastream_version"),
    )
    op.create_index("ix_sta_calibration_reference_datastream_id", "sta_calibration", ["reference_datastream_id"])
    op.create_index("ix_sta_calibration_derived_datastream_id", "sta_calibration", ["derived_datastream_id"])


def downgrade() -> None:
    op.drop_index("ix_sta_calibration_derived_datastream_id", table_name="sta_calibration")
    op.drop_index("ix_sta_calibration_reference_datastream_id", table_name="sta_calibration")
    op.drop_table("sta_calibration")
