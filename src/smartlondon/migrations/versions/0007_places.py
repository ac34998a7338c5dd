"""The places register: places, names, identifiers, containing areas, proposals and history.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "place_kind",
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("parent", sa.String(40), nullable=True),
        sa.Column("is_area", sa.Boolean(), nullable=False),
        sa.Column("community", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["parent"], ["place_kind.code"], name="fk_place_kind_parent_place_kind"),
        sa.PrimaryKeyConstraint("code", name="pk_place_kind"),
    )
    op.create_table(
        "place",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("successors", JSON, nullable=False),
        sa.Column("properties", JSON, nullable=False),
        sa.Column("geometry", JSON, nullable=True),
        sa.Column("geometry_bng", JSON, nullable=True),
        sa.Column("geometry_source", sa.String(200), nullable=False),
        sa.Column("geometry_asserted_at", WHEN, nullable=True),
        sa.Column("min_lon", sa.Float(), nullable=True),
        sa.Column("min_lat", sa.Float(), nullable=True),
        sa.Column("max_lon", sa.Float(), nullable=True),
        sa.Column("max_lat", sa.Float(), nullable=True),
        sa.Column("point_lon", sa.Float(), nullable=True),
        sa.Column("point_lat", sa.Float(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["kind"], ["place_kind.code"], name="fk_place_kind_place_kind"),
        sa.PrimaryKeyConstraint("id", name="pk_place"),
        sa.UniqueConstraint("uid", name="uq_place_uid"),
        sa.CheckConstraint("status IN ('proposed', 'active', 'retired')", name="ck_place_status"),
    )
    op.create_index("ix_place_kind", "place", ["kind"])
    op.create_index("ix_place_kind_status", "place", ["kind", "status"])
    op.create_index("ix_place_updated_at", "place", ["updated_at"])

    op.create_table(
        "place_name",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("place_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("lang", sa.String(20), nullable=False),
        sa.Column("preferred", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("asserted_at", WHEN, nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["place_id"], ["place.id"], name="fk_place_name_place_id_place", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_place_name"),
    )
    op.create_index("ix_place_name_place_id", "place_name", ["place_id"])

    op.create_table(
        "place_identifier",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("place_id", sa.Integer(), nullable=False),
        sa.Column("scheme", sa.String(40), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("asserted_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["place_id"], ["place.id"], name="fk_place_identifier_place_id_place",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_place_identifier"),
    )
    op.create_index("ix_place_identifier_place_id", "place_identifier", ["place_id"])
    op.create_index("ix_place_identifier_value", "place_identifier", ["value"])
    op.create_index("uq_place_identifier_scheme_value_active", "place_identifier", ["scheme", "value"], unique=True,
                    sqlite_where=sa.text("active"), postgresql_where=sa.text("active"))

    op.create_table(
        "place_area",
        sa.Column("place_id", sa.Integer(), nullable=False),
        sa.Column("area_id", sa.Integer(), nullable=False),
        sa.Column("area_kind", sa.String(40), nullable=False),
        sa.ForeignKeyConstraint(["place_id"], ["place.id"], name="fk_place_area_place_id_place", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["area_id"], ["place.id"], name="fk_place_area_area_id_place", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("place_id", "area_id", name="pk_place_area"),
    )
    op.create_index("ix_place_area_area_id", "place_area", ["area_id", "place_id"])

    op.create_table(
        "place_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("place_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changes", JSON, nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["place_id"], ["place.id"], name="fk_place_version_place_id_place",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_place_version"),
        sa.UniqueConstraint("place_id", "version", name="uq_place_version_place_id_version"),
    )
    op.create_index("ix_place_version_place_id", "place_version", ["place_id"])

    op.create_table(
        "place_proposal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("target_uid", sa.String(200), nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("proposer", sa.String(200), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("result_uid", sa.String(200), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("decided_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_place_proposal"),
    )
    op.create_index("ix_place_proposal_target_uid", "place_proposal", ["target_uid"])
    op.create_index("ix_place_proposal_status", "place_proposal", ["status"])

    if op.get_bind().dialect.name == "postgresql":
        # PostGIS: the WGS84 geometry as a generated column with a GiST index.
        op.execute("ALTER TABLE place ADD COLUMN geom geometry(Geometry, 4326) GENERATED ALWAYS AS ("
                   "ST_SetSRID(ST_GeomFromGeoJSON(geometry), 4326)) STORED")
        op.execute("CREATE INDEX ix_place_geom ON place USING gist (geom)")
    else:
        # SQLite: an R*Tree over the bounding boxes, kept in step with the table by triggers.
        op.execute("CREATE VIRTUAL TABLE place_rtree USING rtree(id, min_lon, max_lon, min_lat, max_lat)")
        op.execute("CREATE TRIGGER place_rtree_insert AFTER INSERT ON place WHEN new.min_lon IS NOT NULL BEGIN "
                   "INSERT INTO place_rtree VALUES (new.id, new.min_lon, new.max_lon, new.min_lat, new.max_lat); END")
        op.execute("CREATE TRIGGER place_rtree_update AFTER UPDATE OF min_lon, max_lon, min_lat, max_lat ON place "
                   "BEGIN DELETE FROM place_rtree WHERE id = old.id; "
                   "INSERT INTO place_rtree SELECT new.id, new.min_lon, new.max_lon, new.min_lat, new.max_lat "
                   "WHERE new.min_lon IS NOT NULL; END")
        op.execute("CREATE TRIGGER place_rtree_delete AFTER DELETE ON place BEGIN "
                   "DELETE FROM place_rtree WHERE id = old.id; END")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for trigger in ("place_rtree_insert", "place_rtree_update", "place_rtree_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS place_rtree")
    for table in ("place_proposal", "place_version", "place_area", "place_identifier", "place_name", "place", "place_kind"):
        op.drop_table(table)
