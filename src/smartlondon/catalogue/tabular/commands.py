"""``smartlondon datastore``: load resources into the tabular data store and see how loads went."""

from __future__ import annotations

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...cli import Env, PlatformErrors, console, fail, pass_env, progress_bar
from ..models import Resource
from . import loader
from .models import TabularTable


@click.group(cls=PlatformErrors)
def datastore() -> None:
    """The tabular data store (CSV, XLSX and Parquet resources as queryable tables)."""


def _resource_id(session: Session, ref: str) -> int:
    """A resource's number from its id (UUID) or number."""
    found = session.scalar(select(Resource.id).where(Resource.uuid == ref))
    if found is None and ref.isdigit():
        found = session.scalar(select(Resource.id).where(Resource.id == int(ref)))
    if found is None:
        fail(f"There is no resource '{ref}'. Give its id, as shown in its address or the API.")
    return int(found)  # type: ignore[arg-type]


@datastore.command("load")
@click.argument("resource", required=False)
@click.option("--all", "everything", is_flag=True, help="Every uploaded CSV, TSV, XLSX and Parquet resource.")
@click.option("--links", is_flag=True, help="With --all: also linked files (downloaded; otherwise only on request).")
@click.option("--changed-only", is_flag=True, help="With --all: skip resources whose loaded file is unchanged.")
@pass_env
def datastore_load(env: Env, resource: str | None, everything: bool, links: bool, changed_only: bool) -> None:
    """Load RESOURCE (its id) now, or --all of them; prints how each load went."""
    engine = env.db.engine
    if bool(resource) == everything:
        fail("Give one resource id, or --all.")
    if resource:
        with Session(engine) as session:
            rid = _resource_id(session, resource)
        row = loader.load_resource(engine, env.settings, rid)
        _print_row(row)
        if row.status != "loaded":
            raise SystemExit(1)
        return
    with Session(engine) as session:
        resources = [r for r in session.scalars(select(Resource).order_by(Resource.id))
                     if loader.loadable_kind(r) and (r.kind == "upload" or links)]
        for res in resources:
            loader.request_load(session, res, force=not changed_only)
        session.commit()
    removed = loader.remove_orphans(engine, env.settings)
    with progress_bar() as bar:
        task = bar.add_task("Loading tables", total=len(resources))
        while loader.run_pending(engine, env.settings, limit=1):
            bar.advance(task)
    with Session(engine) as session:
        rows = list(session.scalars(select(TabularTable).order_by(TabularTable.resource_id)))
    failed = [r for r in rows if r.status == "failed"]
    console.print(f"{sum(r.status == 'loaded' for r in rows)} tables loaded, {len(failed)} failed"
                  + (f", {removed} stray tables removed" if removed else "") + ".")
    for row in failed:
        console.print(f"  resource {row.table_name}: {row.error}")
    if failed:
        raise SystemExit(1)


@datastore.command("run")
@pass_env
def datastore_run(env: Env) -> None:
    """Do every queued load (those of uploads made while no server was running, say)."""
    done = loader.run_pending(env.db.engine, env.settings)
    console.print(f"Ran {done} queued load{'s' if done != 1 else ''}.")


@datastore.command("status")
@click.argument("resource", required=False)
@pass_env
def datastore_status(env: Env, resource: str | None) -> None:
    """How the loads went: every table, or one resource's."""
    with Session(env.db.engine) as session:
        query = select(TabularTable).order_by(TabularTable.resource_id)
        if resource:
            query = query.where(TabularTable.resource_id == _resource_id(session, resource))
        rows = list(session.scalars(query))
    if not rows:
        console.print("No tables yet." if not resource else "That resource has no table.")
    for row in rows:
        _print_row(row)


def _print_row(row: TabularTable) -> None:
    detail = ""
    if row.status == "loaded":
        detail = f"{row.row_count:,} rows, {'valid' if row.valid else f'{row.error_count:,} problems'}"
    elif row.status == "failed":
        detail = row.error or ""
    click.echo(f"{row.table_name}  {row.status:8}  {detail}")
