"""The tabular data API: CSV, XLSX and Parquet resources loaded into the analytics store and queried.

* ``store``: the analytics store (DuckDB), shared safely by many processes;
* ``sources``, ``schema``, ``build``, ``report``: reading a file, typing it with a Table Schema
  (declared or inferred over the whole file), validating every cell, and the Frictionless report;
* ``loader`` and ``worker``: the load queue, loads after uploads, and the background loader;
* ``query``, ``sql_guard``, ``dump``: CKAN's ``datastore_search``, ``datastore_info``,
  ``datastore_search_sql`` and dumps; ``actions``: those as CKAN actions;
* ``routes``: the dump route and each resource's validation report page; ``status``: what the
  rest of the platform may ask (``validation_summary``, ``gss_columns``).

See ``docs/tabular.md``.
"""

from __future__ import annotations

from typing import Any

from . import loader as _loader  # noqa: F401  (subscribes to the catalogue's resource events)
from .status import gss_columns, validation_summary

__all__ = ["gss_columns", "install", "validation_summary"]


def install(app: Any) -> None:
    """Mount the routes, bind the app's database to its store and run the background loader with the app."""
    from .routes import pages, router, statuses_for
    from .worker import LoadWorker

    app.include_router(router)
    app.include_router(pages)
    app.state.templates.globals["tabular_status"] = statuses_for
    settings = app.state.settings
    engine = app.state.db.engine
    worker = LoadWorker(engine, settings, threads=settings.datastore_workers)
    binding = _loader.Binding(settings, worker.wake if settings.datastore_workers > 0 else None)
    _loader.bind(engine, binding)  # also before startup, for apps used without their lifespan

    def start() -> None:
        _loader.bind(engine, binding)
        worker.start()

    def stop() -> None:
        worker.stop()
        _loader.unbind(engine, binding)
        _loader.store_for(settings).release_readers()

    app.router.on_startup.append(start)
    app.router.on_shutdown.append(stop)
