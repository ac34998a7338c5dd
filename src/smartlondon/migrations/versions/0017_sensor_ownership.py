"""Sensors: per-organisation ownership of Things (issue 4)

A Thing belongs to an organisation (``sta_thing.owner_organisation_id``); its editors and admins
(and sysadmins) may change it and what hangs off it through the SensorThings API
(sensors/ownership.py). Existing Things stay unowned until a loader or an admin gives them an owner.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sta_thing", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_organisation_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_sta_thing_owner_organisation_id_organisation"), "organisation",
                                    ["owner_organisation_id"], ["id"], ondelete="SET NULL")
        batch_op.create_index(batch_op.f("ix_sta_thing_owner_organisation_id"), ["owner_organisation_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sta_thing", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sta_thing_owner_organisation_id"))
        batch_op.drop_constraint(batch_op.f("fk_sta_thing_owner_organisation_id_organisation"), type_="foreignkey")
        batch_op.drop_column("owner_organisation_id")
