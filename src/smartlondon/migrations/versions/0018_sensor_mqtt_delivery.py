"""Sensors: the MQTT bridge's delivery record, so a QoS 1 message redelivered after a lost
acknowledgement is not stored twice (docs/sensors-mqtt.md).

One row per (bridge client id, MQTT packet id): the SHA-256 of the topic and payload last stored with
that packet id, written in the transaction that stores the message.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sta_mqtt_delivery",
        sa.Column("client_id", sa.String(200), nullable=False),
        sa.Column("mid", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "mid", name="pk_sta_mqtt_delivery"),
    )


def downgrade() -> None:
    op.drop_table("sta_mqtt_delivery")
