"""Alembic environment: runs the platform's migrations on the configured database."""

from __future__ import annotations

from alembic import context

from smartlondon.core.db import Base, make_engine
from smartlondon.models import load_all_models

load_all_models()
config = context.config
target_metadata = Base.metadata


def run() -> None:
    """Run the migrations online, on a connection given by the caller or a new engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata,
                          render_as_batch=True, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
