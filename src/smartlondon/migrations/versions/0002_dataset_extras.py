"""Dataset landing page, version and extras; resource extras (for CKAN and DCAT-AP).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("dataset") as batch:
        batch.add_column(sa.Column("landing_page", sa.String(2000), nullable=False, server_default=""))
        batch.add_column(sa.Column("version", sa.String(100), nullable=False, server_default=""))
        batch.add_column(sa.Column("extras", JSON, nullable=False, server_default="{}"))
    with op.batch_alter_table("resource") as batch:
        batch.add_column(sa.Column("extras", JSON, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("resource") as batch:
        batch.drop_column("extras")
    with op.batch_alter_table("dataset") as batch:
        batch.drop_column("extras")
        batch.drop_column("version")
        batch.drop_column("landing_page")
