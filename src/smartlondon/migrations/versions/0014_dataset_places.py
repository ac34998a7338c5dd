"""Places: links between places, datasets and sensors.

A dataset may name any place in the register by its ``ldn:`` uid (``dataset_place``), beside the
boroughs it covers by GSS code (``dataset_area``). Sensor Things need no table: they are linked by
their LAQN site code, a ``properties.place`` uid or their location (see ``places/links.py``).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_place",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("place_uid", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["dataset.id"], name="fk_dataset_place_dataset_id_dataset",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dataset_id", "place_uid", name="pk_dataset_place"),
    )
    op.create_index("ix_dataset_place_place_uid", "dataset_place", ["place_uid"])


def downgrade() -> None:
    op.drop_index("ix_dataset_place_place_uid", table_name="dataset_place")
    op.drop_table("dataset_place")
