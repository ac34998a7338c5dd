"""Initial schema: organisations, users, tokens, audit log, the catalogue and its search index.

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 04:01:58.046076
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('object_type', sa.String(length=40), nullable=False),
    sa.Column('object_id', sa.String(length=100), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=True),
    sa.Column('organisation_id', sa.Integer(), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('before', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('after', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_event'))
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_at'), ['at'], unique=False)
        batch_op.create_index('ix_audit_event_dataset', ['dataset_id', 'id'], unique=False)
        batch_op.create_index('ix_audit_event_object', ['object_type', 'object_id'], unique=False)

    op.create_table('licence',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('is_open', sa.Boolean(), nullable=False),
    sa.Column('spdx', sa.String(length=60), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_licence'))
    )
    op.create_table('organisation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('slug', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('gss_code', sa.String(length=9), nullable=True),
    sa.Column('url', sa.String(length=500), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modified', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organisation')),
    sa.UniqueConstraint('gss_code', name=op.f('uq_organisation_gss_code')),
    sa.UniqueConstraint('slug', name=op.f('uq_organisation_slug')),
    sa.UniqueConstraint('uuid', name=op.f('uq_organisation_uuid'))
    )
    op.create_table('user_account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('is_sysadmin', sa.Boolean(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_account')),
    sa.UniqueConstraint('email', name=op.f('uq_user_account_email')),
    sa.UniqueConstraint('username', name=op.f('uq_user_account_username'))
    )
    op.create_table('api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_api_token_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash'))
    )
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_token_user_id'), ['user_id'], unique=False)

    op.create_table('dataset',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('slug', sa.String(length=100), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('title_sort', sa.String(length=300), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('licence_id', sa.String(length=40), nullable=False),
    sa.Column('contact_name', sa.String(length=200), nullable=False),
    sa.Column('contact_email', sa.String(length=320), nullable=False),
    sa.Column('frequency', sa.String(length=20), nullable=False),
    sa.Column('temporal_start', sa.Date(), nullable=True),
    sa.Column('temporal_end', sa.Date(), nullable=True),
    sa.Column('bbox_west', sa.Float(), nullable=True),
    sa.Column('bbox_south', sa.Float(), nullable=True),
    sa.Column('bbox_east', sa.Float(), nullable=True),
    sa.Column('bbox_north', sa.Float(), nullable=True),
    sa.Column('geography', sa.String(length=20), nullable=False),
    sa.Column('private', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('featured', sa.Boolean(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modified', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['licence_id'], ['licence.id'], name=op.f('fk_dataset_licence_id_licence')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], name=op.f('fk_dataset_organisation_id_organisation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset')),
    sa.UniqueConstraint('slug', name=op.f('uq_dataset_slug')),
    sa.UniqueConstraint('uuid', name=op.f('uq_dataset_uuid'))
    )
    with op.batch_alter_table('dataset', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dataset_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_index('ix_dataset_state_modified', ['state', 'private', 'modified'], unique=False)
        batch_op.create_index('ix_dataset_title_sort', ['title_sort'], unique=False)

    op.create_table('membership',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], name=op.f('fk_membership_organisation_id_organisation'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_membership_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'organisation_id', name=op.f('pk_membership'))
    )
    op.create_table('dataset_area',
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('gss_code', sa.String(length=9), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], name=op.f('fk_dataset_area_dataset_id_dataset'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('dataset_id', 'gss_code', name=op.f('pk_dataset_area'))
    )
    op.create_table('dataset_facet',
    sa.Column('facet', sa.String(length=20), nullable=False),
    sa.Column('value', sa.String(length=100), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], name=op.f('fk_dataset_facet_dataset_id_dataset'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('facet', 'value', 'dataset_id', name=op.f('pk_dataset_facet'))
    )
    with op.batch_alter_table('dataset_facet', schema=None) as batch_op:
        batch_op.create_index('ix_dataset_facet_dataset', ['dataset_id'], unique=False)

    op.create_table('dataset_keyword',
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('keyword', sa.String(length=100), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], name=op.f('fk_dataset_keyword_dataset_id_dataset'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('dataset_id', 'keyword', name=op.f('pk_dataset_keyword'))
    )
    op.create_table('dataset_theme',
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('theme', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], name=op.f('fk_dataset_theme_dataset_id_dataset'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('dataset_id', 'theme', name=op.f('pk_dataset_theme'))
    )
    op.create_table('resource',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=True),
    sa.Column('storage_key', sa.String(length=200), nullable=True),
    sa.Column('filename', sa.String(length=300), nullable=True),
    sa.Column('format', sa.String(length=40), nullable=False),
    sa.Column('media_type', sa.String(length=200), nullable=False),
    sa.Column('byte_size', sa.BigInteger(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('table_schema', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modified', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], name=op.f('fk_resource_dataset_id_dataset'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resource')),
    sa.UniqueConstraint('uuid', name=op.f('uq_resource_uuid'))
    )
    with op.batch_alter_table('resource', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resource_dataset_id'), ['dataset_id'], unique=False)


    op.create_table(
        "search_change",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_change")),
        sqlite_autoincrement=True,
    )
    _create_search_index()
    _make_audit_append_only()


def _create_search_index() -> None:
    """The full-text index: FTS5 on SQLite, a weighted tsvector with GIN on PostgreSQL."""
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("dataset", sa.Column("search_vector", postgresql.TSVECTOR(), nullable=True))
        op.create_index("ix_dataset_search_vector", "dataset", ["search_vector"], postgresql_using="gin")
        # PostGIS: the bounding box as a geometry, for spatial search and later capabilities.
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        op.execute(
            "ALTER TABLE dataset ADD COLUMN footprint geometry(Polygon, 4326) GENERATED ALWAYS AS ("
            "CASE WHEN bbox_west IS NOT NULL AND bbox_south IS NOT NULL AND bbox_east IS NOT NULL "
            "AND bbox_north IS NOT NULL THEN ST_MakeEnvelope(bbox_west, bbox_south, bbox_east, bbox_north, 4326) "
            "END) STORED"
        )
        op.execute("CREATE INDEX ix_dataset_footprint ON dataset USING gist (footprint)")
    else:
        op.execute(
            "CREATE VIRTUAL TABLE dataset_fts USING fts5("
            "title, keywords, description, tokenize = 'porter unicode61 remove_diacritics 2')"
        )
        op.add_column("dataset", sa.Column("search_vector", sa.Text(), nullable=True))


def _make_audit_append_only() -> None:
    """Refuse UPDATE and DELETE on the audit log, in the database itself."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON audit_event "
            "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_event_no_{verb.lower()} BEFORE {verb} ON audit_event "
                "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_change ON audit_event")
        op.execute("DROP FUNCTION IF EXISTS audit_event_append_only()")
    else:
        op.execute("DROP TABLE IF EXISTS dataset_fts")
    for table in ("search_change", "resource", "dataset_facet", "dataset_area", "dataset_theme", "dataset_keyword",
                  "membership", "dataset", "api_token", "user_account", "organisation", "licence",
                  "audit_event"):
        op.drop_table(table)
