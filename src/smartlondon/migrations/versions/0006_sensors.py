"""The sensor hub: OGC SensorThings API v1.1 entities, observations and the last-value table.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
WHEN = sa.DateTime(timezone=True)
OBSERVATION_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _named() -> list[sa.Column]:
    return [sa.Column("name", sa.String(500), nullable=False), sa.Column("description", sa.Text(), nullable=False)]


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    name = f"fk_{table}_{column}_{target}"
    if len(name) > 63:  # PostgreSQL's limit: the long link-table names drop the target
        name = f"fk_{table}_{column}"
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=name, ondelete=ondelete)


def _interval(prefix: str) -> list[sa.Column]:
    return [sa.Column(f"{prefix}_start", WHEN, nullable=True), sa.Column(f"{prefix}_end", WHEN, nullable=True)]


def upgrade() -> None:
    op.create_table(
        "sta_thing", _id(), *_named(),
        sa.Column("properties", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sta_thing"),
    )
    op.create_table(
        "sta_location", _id(), *_named(),
        sa.Column("encoding_type", sa.String(100), nullable=False),
        sa.Column("location", JSON, nullable=False),
        sa.Column("properties", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sta_location"),
    )
    op.create_table(
        "sta_thing_location",
        sa.Column("thing_id", sa.Integer(), nullable=False),
        sa.Column("location_id", sa.Integer(), nullable=False),
        _fk("sta_thing_location", "thing_id", "sta_thing"),
        _fk("sta_thing_location", "location_id", "sta_location"),
        sa.PrimaryKeyConstraint("thing_id", "location_id", name="pk_sta_thing_location"),
    )
    op.create_index("ix_sta_thing_location_location_id", "sta_thing_location", ["location_id"])
    op.create_table(
        "sta_historical_location", _id(),
        sa.Column("thing_id", sa.Integer(), nullable=False),
        sa.Column("time", WHEN, nullable=False),
        _fk("sta_historical_location", "thing_id", "sta_thing"),
        sa.PrimaryKeyConstraint("id", name="pk_sta_historical_location"),
    )
    op.create_index("ix_sta_historical_location_thing_id", "sta_historical_location", ["thing_id", "time"])
    op.create_table(
        "sta_historical_location_location",
        sa.Column("historical_location_id", sa.Integer(), nullable=False),
        sa.Column("location_id", sa.Integer(), nullable=False),
        _fk("sta_historical_location_location", "historical_location_id", "sta_historical_location"),
        _fk("sta_historical_location_location", "location_id", "sta_location"),
        sa.PrimaryKeyConstraint("historical_location_id", "location_id", name="pk_sta_historical_location_location"),
    )
    op.create_index("ix_sta_historical_location_location_location_id", "sta_historical_location_location",
                    ["location_id"])
    op.create_table(
        "sta_sensor", _id(), *_named(),
        sa.Column("encoding_type", sa.String(100), nullable=False),
        sa.Column("metadata", JSON, nullable=True),
        sa.Column("properties", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sta_sensor"),
    )
    op.create_table(
        "sta_observed_property", _id(),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("definition", sa.String(1000), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("properties", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sta_observed_property"),
    )
    op.create_table(
        "sta_datastream", _id(), *_named(),
        sa.Column("observation_type", sa.String(300), nullable=False),
        sa.Column("unit_of_measurement", JSON, nullable=False),
        sa.Column("observed_area", JSON, nullable=True),
        *_interval("phenomenon_time"), *_interval("result_time"),
        sa.Column("properties", JSON, nullable=True),
        sa.Column("thing_id", sa.Integer(), nullable=False),
        sa.Column("sensor_id", sa.Integer(), nullable=False),
        sa.Column("observed_property_id", sa.Integer(), nullable=False),
        _fk("sta_datastream", "thing_id", "sta_thing"),
        _fk("sta_datastream", "sensor_id", "sta_sensor"),
        _fk("sta_datastream", "observed_property_id", "sta_observed_property"),
        sa.PrimaryKeyConstraint("id", name="pk_sta_datastream"),
    )
    op.create_index("ix_sta_datastream_thing_id", "sta_datastream", ["thing_id"])
    op.create_index("ix_sta_datastream_sensor_id", "sta_datastream", ["sensor_id"])
    op.create_index("ix_sta_datastream_observed_property_id", "sta_datastream", ["observed_property_id"])
    op.create_table(
        "sta_multi_datastream", _id(), *_named(),
        sa.Column("observation_type", sa.String(300), nullable=False),
        sa.Column("multi_observation_data_types", JSON, nullable=False),
        sa.Column("unit_of_measurements", JSON, nullable=False),
        sa.Column("observed_area", JSON, nullable=True),
        *_interval("phenomenon_time"), *_interval("result_time"),
        sa.Column("properties", JSON, nullable=True),
        sa.Column("thing_id", sa.Integer(), nullable=False),
        sa.Column("sensor_id", sa.Integer(), nullable=False),
        _fk("sta_multi_datastream", "thing_id", "sta_thing"),
        _fk("sta_multi_datastream", "sensor_id", "sta_sensor"),
        sa.PrimaryKeyConstraint("id", name="pk_sta_multi_datastream"),
    )
    op.create_index("ix_sta_multi_datastream_thing_id", "sta_multi_datastream", ["thing_id"])
    op.create_index("ix_sta_multi_datastream_sensor_id", "sta_multi_datastream", ["sensor_id"])
    op.create_table(
        "sta_multi_datastream_observed_property",
        sa.Column("multi_datastream_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("observed_property_id", sa.Integer(), nullable=False),
        _fk("sta_multi_datastream_observed_property", "multi_datastream_id", "sta_multi_datastream"),
        _fk("sta_multi_datastream_observed_property", "observed_property_id", "sta_observed_property"),
        sa.PrimaryKeyConstraint("multi_datastream_id", "position", name="pk_sta_multi_datastream_observed_property"),
    )
    op.create_index("ix_sta_multi_datastream_observed_property_observed_property_id",
                    "sta_multi_datastream_observed_property", ["observed_property_id"])
    op.create_table(
        "sta_feature_of_interest", _id(), *_named(),
        sa.Column("encoding_type", sa.String(100), nullable=False),
        sa.Column("feature", JSON, nullable=False),
        sa.Column("properties", JSON, nullable=True),
        sa.Column("source_location_id", sa.Integer(), nullable=True),
        _fk("sta_feature_of_interest", "source_location_id", "sta_location", ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_sta_feature_of_interest"),
    )
    op.create_index("ix_sta_feature_of_interest_source_location_id", "sta_feature_of_interest",
                    ["source_location_id"])
    op.create_table(
        "sta_observation",
        sa.Column("id", OBSERVATION_ID, nullable=False),
        sa.Column("phenomenon_time_start", WHEN, nullable=False),
        sa.Column("phenomenon_time_end", WHEN, nullable=True),
        sa.Column("result_time", WHEN, nullable=True),
        sa.Column("result", JSON, nullable=True),
        sa.Column("result_number", sa.Float(), nullable=True),
        sa.Column("result_quality", JSON, nullable=True),
        *_interval("valid_time"),
        sa.Column("parameters", JSON, nullable=True),
        sa.Column("datastream_id", sa.Integer(), nullable=True),
        sa.Column("multi_datastream_id", sa.Integer(), nullable=True),
        sa.Column("feature_of_interest_id", sa.Integer(), nullable=False),
        sa.CheckConstraint("(datastream_id IS NULL) <> (multi_datastream_id IS NULL)",
                           name="ck_sta_observation_one_stream"),
        _fk("sta_observation", "datastream_id", "sta_datastream"),
        _fk("sta_observation", "multi_datastream_id", "sta_multi_datastream"),
        _fk("sta_observation", "feature_of_interest_id", "sta_feature_of_interest"),
        sa.PrimaryKeyConstraint("id", name="pk_sta_observation"),
    )
    op.create_index("ix_sta_observation_datastream_time", "sta_observation",
                    ["datastream_id", "phenomenon_time_start", "id"])
    op.create_index("ix_sta_observation_multi_datastream_time", "sta_observation",
                    ["multi_datastream_id", "phenomenon_time_start", "id"])
    op.create_index("ix_sta_observation_feature_of_interest_id", "sta_observation", ["feature_of_interest_id"])
    op.create_table(
        "sta_latest",
        sa.Column("datastream_id", sa.Integer(), nullable=False),
        sa.Column("observation_id", OBSERVATION_ID, nullable=False),
        sa.Column("phenomenon_time_start", WHEN, nullable=False),
        sa.Column("phenomenon_time_end", WHEN, nullable=True),
        sa.Column("result", JSON, nullable=True),
        _fk("sta_latest", "datastream_id", "sta_datastream"),
        _fk("sta_latest", "observation_id", "sta_observation"),
        sa.PrimaryKeyConstraint("datastream_id", name="pk_sta_latest"),
    )
    op.create_index("ix_sta_latest_observation_id", "sta_latest", ["observation_id"])


def downgrade() -> None:
    for table in ("sta_latest", "sta_observation", "sta_feature_of_interest", "sta_multi_datastream_observed_property",
                  "sta_multi_datastream", "sta_datastream", "sta_observed_property", "sta_sensor",
                  "sta_historical_location_location", "sta_historical_location", "sta_thing_location",
                  "sta_location", "sta_thing"):
        op.drop_table(table)
