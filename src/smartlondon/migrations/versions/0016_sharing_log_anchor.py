"""Sharing: published anchors of the access log's head hash (issue 6)

An anchor records, at one moment, how many entries the access log had and the hash of the newest one, so that
deleting the newest entries (which the hash chain alone cannot show) is detected by ``sharing verify-log``.
Append-only, as the log is.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sharing_log_anchor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sharing_log_anchor"),
    )
    op.create_index("ix_sharing_log_anchor_sequence", "sharing_log_anchor", ["sequence"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE FUNCTION sharing_log_anchor_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
                   "BEGIN RAISE EXCEPTION 'the sharing_log_anchor table is append-only'; END $$")
        op.execute("CREATE TRIGGER sharing_log_anchor_no_change BEFORE UPDATE OR DELETE ON sharing_log_anchor "
                   "FOR EACH ROW EXECUTE FUNCTION sharing_log_anchor_append_only()")
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER sharing_log_anchor_no_{verb.lower()} BEFORE {verb} ON sharing_log_anchor "
                       "BEGIN SELECT RAISE(ABORT, 'the sharing_log_anchor table is append-only'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS sharing_log_anchor_no_change ON sharing_log_anchor")
        op.execute("DROP FUNCTION IF EXISTS sharing_log_anchor_append_only()")
    op.drop_index("ix_sharing_log_anchor_sequence", table_name="sharing_log_anchor")
    op.drop_table("sharing_log_anchor")
