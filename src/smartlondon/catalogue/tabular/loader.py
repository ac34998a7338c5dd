"""Loading resources into the analytics store: the queue, the load itself, and the change events.

The ``tabular_table`` row of a resource is its place in the queue. When an upload is added or
replaced (``resource.changed``, after the commit) the row becomes ``pending``; a loader *claims*
it (an UPDATE that only one process can win) and turns it ``loading``, then ``loaded`` or
``failed``. Files up to ``datastore_inline_bytes`` are loaded straight away, before the upload's
response is sent, so a small CSV is queryable as soon as it is published; bigger ones are left to
the background worker (``worker.py``), which also picks up rows queued by other processes.

A load never leaves a half-written table: the new table is built in a staging database, copied
into the store under a new name and swapped in (drop the old, rename the new) in one DuckDB
transaction. A loader that dies leaves its row ``loading`` with a stale heartbeat; the next
claim takes it over (and gives up after a few attempts, marking it ``failed``).

Every row carries a ``generation``, bumped whenever a new load is asked for; a load whose file
was replaced while it ran does not overwrite the newer request's row.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import threading
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import delete, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ...core import events
from ...core.db import utcnow
from ...core.errors import NotFound, PayloadTooLarge, ValidationFailed
from ...core.storage import LocalStorage
from ...settings import Settings
from ..models import Resource
from .build import BuiltTable, build_table
from .models import TabularTable
from .report import failure_report
from .sources import SourceProblem, table_kind
from .store import AnalyticsStore, quote_ident

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=2)
HEARTBEAT_SECONDS = 20.0
MAX_ATTEMPTS = 3
READ_OPTIONS = ("sheet", "header_row")  # resource extras that say how to read a file

_stores: dict[Path, AnalyticsStore] = {}
_stores_lock = threading.Lock()


@atexit.register
def _close_readers() -> None:
    """Close cached read connections before the interpreter goes (DuckDB objects dislike being left)."""
    for store in list(_stores.values()):
        store.release_readers()


def store_for(settings: Settings) -> AnalyticsStore:
    """The analytics store of these settings (one object per file, per process)."""
    path = Path(settings.analytics_store).resolve()
    with _stores_lock:
        if path not in _stores:
            _stores[path] = AnalyticsStore(path)
        return _stores[path]


# --- which resources have tables ---------------------------------------------------------------------

def loadable_kind(res: Resource) -> str | None:
    """The table format of a resource's file or link (csv, tsv, xlsx, parquet), or None."""
    name = res.filename if res.kind == "upload" else urlparse(res.url or "").path
    return table_kind(res.format, name)


def source_of(res: Resource) -> str:
    """What a load of this resource depends on: its file (or link), format and declared schema."""
    schema = json.dumps(res.table_schema, sort_keys=True) if res.table_schema else ""
    schema += json.dumps({k: v for k, v in (res.extras or {}).items() if k in READ_OPTIONS}, sort_keys=True)
    origin = res.sha256 if res.kind == "upload" else res.url
    digest = hashlib.sha256(f"{res.kind}\n{origin}\n{res.format}\n{res.filename}\n{schema}".encode()).hexdigest()
    return f"{res.kind}:{digest}"


def request_load(session: Session, res: Resource, *, force: bool = False) -> TabularTable:
    """Queue a (re)load of the resource, unless what it would load is already loaded or queued."""
    row = session.scalar(select(TabularTable).where(TabularTable.resource_id == res.id))
    source = source_of(res)
    if row is not None and row.source == source and not force:
        return row
    if row is None:
        row = TabularTable(resource_id=res.id, table_name=res.uuid, generation=0, available=False,
                           error_count=0, gss_columns=[], attempts=0, schema_source="")
        session.add(row)
    row.generation = (row.generation or 0) + 1
    row.status, row.source, row.requested_at = "pending", source, utcnow()
    row.attempts, row.error, row.heartbeat_at = 0, None, None
    session.flush()
    return row


# --- claiming ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """A load this process has claimed: which row, for which resource, at which generation."""

    row_id: int
    resource_id: int
    generation: int


def claim(engine: Engine, *, resource_id: int | None = None) -> Claim | None:
    """Claim the oldest pending load (or that of one resource), taking over stale ones; None if none."""
    with Session(engine) as session:
        now = utcnow()
        stale = now - STALE_AFTER
        query = select(TabularTable).where(or_(
            TabularTable.status == "pending",
            (TabularTable.status == "loading") & (TabularTable.heartbeat_at < stale)))
        if resource_id is not None:
            query = query.where(TabularTable.resource_id == resource_id)
        for row in session.scalars(query.order_by(TabularTable.requested_at).limit(20)).all():
            if row.status == "loading" and row.attempts >= MAX_ATTEMPTS:
                session.execute(update(TabularTable).where(
                    TabularTable.id == row.id, TabularTable.generation == row.generation,
                    TabularTable.status == "loading").values(
                    status="failed", error=f"The load stopped making progress {row.attempts} times "
                                           "(the loading process ended or hung); it was given up."))
                session.commit()
                continue
            condition = [TabularTable.id == row.id, TabularTable.generation == row.generation,
                         TabularTable.status == row.status]
            if row.status == "loading":
                condition.append(TabularTable.heartbeat_at < stale)
            won = session.execute(update(TabularTable).where(*condition).values(
                status="loading", started_at=now, heartbeat_at=now, attempts=TabularTable.attempts + 1))
            session.commit()
            if won.rowcount == 1:  # type: ignore[attr-defined]
                return Claim(row.id, row.resource_id, row.generation)
    return None


@contextmanager
def _heartbeat(engine: Engine, c: Claim) -> Iterator[None]:
    """Keep the claim's heartbeat fresh while a load runs, so others know it is alive."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                with engine.begin() as conn:
                    conn.execute(update(TabularTable).where(TabularTable.id == c.row_id,
                                                            TabularTable.generation == c.generation,
                                                            TabularTable.status == "loading")
                                 .values(heartbeat_at=utcnow()))
            except Exception:  # a missed beat is not fatal; the next one may succeed
                log.warning("could not record the loader's heartbeat", exc_info=True)

    thread = threading.Thread(target=beat, name="tabular-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


# --- loading -------------------------------------------------------------------------------------------

def run_load(engine: Engine, settings: Settings, c: Claim) -> str:
    """Do a claimed load; returns the row's final status (or ``gone`` when the resource was deleted)."""
    store = store_for(settings)
    with Session(engine) as session:
        res = session.get(Resource, c.resource_id)
        if res is None or loadable_kind(res) is None:
            table = session.scalar(select(TabularTable.table_name).where(TabularTable.id == c.row_id))
            if table:
                store.drop(table)
            session.execute(delete(TabularTable).where(TabularTable.id == c.row_id,
                                                       TabularTable.generation == c.generation))
            session.commit()
            return "gone"
        kind = loadable_kind(res)
        table_name, fmt_name, declared = res.uuid, res.filename or res.url or res.title, res.table_schema
        gz = (res.filename or urlparse(res.url or "").path).lower().endswith(".gz")
        kind_of_resource, key, url, size = res.kind, res.storage_key, res.url, res.byte_size
        options = {k: str(v) for k, v in (res.extras or {}).items() if k in READ_OPTIONS}
    assert kind is not None
    downloaded: Path | None = None
    try:
        with _heartbeat(engine, c):
            if kind_of_resource == "upload":
                path = LocalStorage(settings.files_dir).local_path(key or "")
                if path is None or not path.exists():
                    raise SourceProblem("The resource's file is missing from storage.")
            else:
                downloaded = path = _download(url or "", store.work_dir, settings.max_upload_bytes)
                size = path.stat().st_size
            with build_table(path, kind, gz=gz, declared=declared, work_dir=store.work_dir,
                             name=table_name, place=fmt_name, byte_size=size, options=options) as built:
                return _publish(engine, store, c, table_name, built)
    except (SourceProblem, ValidationFailed, PayloadTooLarge) as exc:
        message = exc.message if hasattr(exc, "message") else str(exc)  # type: ignore[attr-defined]
        return _fail(engine, store, c, table_name, message,
                     failure_report(name=table_name, place=fmt_name, message=message))
    except Exception as exc:
        log.exception("loading resource %s into the analytics store failed", c.resource_id)
        first_line = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        return _fail(engine, store, c, table_name, f"The file could not be loaded: {first_line[:500]}", None)
    finally:
        if downloaded is not None:
            downloaded.unlink(missing_ok=True)


def _still_current(engine: Engine, c: Claim) -> bool:
    with Session(engine) as session:
        found = session.scalar(select(TabularTable.generation).where(TabularTable.id == c.row_id))
        return found == c.generation


def _publish(engine: Engine, store: AnalyticsStore, c: Claim, table_name: str, built: BuiltTable) -> str:
    """Swap the built table into the store and record the load (both under the store's write lock)."""
    conn = built.conn
    with store.attached(conn) as db:
        if not _still_current(engine, c):
            return "superseded"  # a newer file arrived while this one loaded; its own load will follow
        new_name = f"{table_name}__loading_{uuid.uuid4().hex[:8]}"
        conn.execute("BEGIN TRANSACTION")
        try:
            order = "" if built.in_file_order else " ORDER BY _id"
            conn.execute(f"CREATE TABLE {db}.main.{quote_ident(new_name)} AS SELECT * FROM typed{order}")
            conn.execute(f"DROP TABLE IF EXISTS {db}.main.{quote_ident(table_name)}")
            conn.execute(f"ALTER TABLE {db}.main.{quote_ident(new_name)} RENAME TO {quote_ident(table_name)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        with Session(engine) as session:
            session.execute(update(TabularTable).where(
                TabularTable.id == c.row_id, TabularTable.generation == c.generation).values(
                status="loaded", available=True, row_count=built.row_count, valid=built.valid,
                error_count=built.error_count, schema_source=built.schema_source, table_schema=built.schema,
                gss_columns=built.gss_columns, report=built.report, error=None, loaded_at=utcnow(),
                heartbeat_at=None))
            _announce(session, c)
            session.commit()
    return "loaded"


def _fail(engine: Engine, store: AnalyticsStore, c: Claim, table_name: str, message: str,
          report: dict[str, Any] | None) -> str:
    """Record a failed load; the old table goes too, since it no longer matches the resource's file."""
    if not _still_current(engine, c):
        return "superseded"
    try:
        store.drop(table_name)
    except Exception:
        log.exception("could not drop table %s after a failed load", table_name)
    with Session(engine) as session:
        session.execute(update(TabularTable).where(
            TabularTable.id == c.row_id, TabularTable.generation == c.generation).values(
            status="failed", available=False, error=message, report=report, valid=False if report else None,
            error_count=1 if report else 0, row_count=None, heartbeat_at=None))
        _announce(session, c)
        session.commit()
    return "failed"


def _announce(session: Session, c: Claim) -> None:
    """Emit ``resource.loaded`` in the transaction that records the outcome, so the scorecard's
    schema and GSS checks follow the load at once instead of waiting for the charter scheduler."""
    dataset_id = session.scalar(select(Resource.dataset_id).where(Resource.id == c.resource_id))
    if dataset_id is not None:
        events.emit(session, "resource.loaded", resource_id=c.resource_id, dataset_id=dataset_id)


def _download(url: str, work_dir: Path, max_bytes: int) -> Path:
    """Fetch a linked file into the work directory, streamed and size-limited."""
    import httpx

    target = work_dir / f"download-{uuid.uuid4().hex}"
    received = 0
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=httpx.Timeout(30.0, read=120.0)) as response:
            if response.status_code >= 400:
                raise SourceProblem(f"The link answered HTTP {response.status_code}.")
            with open(target, "wb") as out:
                for chunk in response.iter_bytes(1024 * 1024):
                    received += len(chunk)
                    if received > max_bytes:
                        raise SourceProblem("The linked file is larger than the upload limit.")
                    out.write(chunk)
    except httpx.HTTPError as exc:
        target.unlink(missing_ok=True)
        raise SourceProblem(f"The link could not be fetched ({exc.__class__.__name__}: {exc}).") from exc
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def run_pending(engine: Engine, settings: Settings, *, limit: int | None = None) -> int:
    """Do queued loads until there are none left (or ``limit``); returns how many ran."""
    done = 0
    while limit is None or done < limit:
        c = claim(engine)
        if c is None:
            break
        run_load(engine, settings, c)
        done += 1
    return done


def load_resource(engine: Engine, settings: Settings, resource_id: int, *, force: bool = True) -> TabularTable:
    """Load one resource now (also a link, on request); returns its row afterwards."""
    with Session(engine) as session:
        res = session.get(Resource, resource_id)
        if res is None:
            raise NotFound(f"There is no resource {resource_id}.")
        if loadable_kind(res) is None:
            raise ValidationFailed(f"The resource “{res.title}” is not a CSV, TSV, XLSX or Parquet file, so it "
                                   "cannot be loaded into the data store.", {"resource": "not a table format"})
        request_load(session, res, force=force)
        session.commit()
    c = claim(engine, resource_id=resource_id)
    if c is not None:
        run_load(engine, settings, c)
    with Session(engine) as session:
        row = session.scalar(select(TabularTable).where(TabularTable.resource_id == resource_id))
        if row is None:
            raise NotFound(f"Resource {resource_id} has no table.")
        session.expunge(row)
        return row


def forget_resource(engine: Engine, settings: Settings | None, resource_id: int) -> None:
    """Drop a deleted resource's table and row (or queue that, when no store is known here)."""
    with Session(engine) as session:
        row = session.scalar(select(TabularTable).where(TabularTable.resource_id == resource_id))
        if row is None:
            return
        if settings is None:  # another process with a store will finish the job (run_load sees it gone)
            row.status, row.generation, row.requested_at = "pending", row.generation + 1, utcnow()
            session.commit()
            return
        table = row.table_name
        session.delete(row)
        session.commit()
    store_for(settings).drop(table)


def remove_orphans(engine: Engine, settings: Settings) -> int:
    """Drop store tables that no row accounts for (left by crashes or deleted resources); returns how many."""
    store = store_for(settings)
    with Session(engine) as session:
        known = set(session.scalars(select(TabularTable.table_name)))
    dropped = 0
    for name in store.tables():
        base = name.split("__loading_")[0]
        if base not in known or "__loading_" in name:
            store.drop(name)
            dropped += 1
    return dropped


# --- reacting to the catalogue's changes ---------------------------------------------------------------

@dataclass
class Binding:
    """What a process's application tells the loader about an engine: its settings and worker."""

    settings: Settings
    wake: Any = None  # a callable that wakes the background worker


_bindings: "weakref.WeakKeyDictionary[Engine, Binding]" = weakref.WeakKeyDictionary()


def bind(engine: Engine, binding: Binding) -> None:
    """Tell the event handlers which settings (store, storage) and worker belong to an engine."""
    _bindings[engine] = binding


def binding_for(engine: Engine) -> Binding | None:
    """The binding of an engine in this process, if its application installed one."""
    return _bindings.get(engine)


def unbind(engine: Engine, binding: Binding) -> None:
    """Forget an engine's binding (if it is still this one)."""
    if _bindings.get(engine) is binding:
        del _bindings[engine]


@events.subscribe("resource.changed", after_commit=True)
def _resource_changed(engine: Engine, resource_id: int, dataset_id: int) -> None:
    """Queue a load of a new or replaced upload; load small files at once when this process can."""
    binding = _bindings.get(engine)
    with Session(engine) as session:
        res = session.get(Resource, resource_id)
        if res is None:
            return
        row = session.scalar(select(TabularTable).where(TabularTable.resource_id == resource_id))
        if res.kind == "upload" and loadable_kind(res):
            row = request_load(session, res)
        elif row is not None and loadable_kind(res):  # a link that was loaded on request: follow it
            row = request_load(session, res)
        elif row is not None:  # no longer a table (replaced by a PDF, say): its table goes
            row.status, row.generation, row.requested_at = "pending", row.generation + 1, utcnow()
        else:
            return
        session.commit()
        pending = row.status == "pending"
        size = res.byte_size or 0
    if binding is None or not pending:
        return
    if size <= binding.settings.datastore_inline_bytes:
        c = claim(engine, resource_id=resource_id)
        if c is not None:
            run_load(engine, binding.settings, c)
    elif binding.wake is not None:
        binding.wake()


@events.subscribe("resource.deleted", after_commit=True)
def _resource_deleted(engine: Engine, resource_id: int, dataset_id: int) -> None:
    """Drop a deleted resource's table."""
    binding = _bindings.get(engine)
    forget_resource(engine, binding.settings if binding else None, resource_id)
