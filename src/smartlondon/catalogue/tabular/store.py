"""The analytics store: one DuckDB file, a table per key, shared by every process of a deployment.

DuckDB lets one process write a database file, or any number of processes read it, never both
at once; ``serve --workers N`` runs N processes, each with a loader thread. So every use of the
file goes through a lock file next to it (``fcntl.flock``, so it also orders threads of one
process):

* readers take it shared, open the file read-only, run their query and close it again;
* a writer takes it exclusive, opens the file read-write, does its (short) work and closes it.

A writer that is waiting first takes a second lock file, the *gate*, which readers pass through
on their way in: new readers queue behind a waiting writer, so a stream of searches cannot
starve a load. Loads do their slow work (parsing, inference, validation) in a private staging
file and hold the write lock only to copy the finished table in and swap it for the old one.

Untrusted SQL (``datastore_search_sql``) never runs on these connections: :meth:`sandbox` opens
an in-memory DuckDB that attaches the store read-only, then switches off file and network access
and locks its configuration.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from ...core.errors import PlatformError

SANDBOX_ALIAS = "store"
WATCH_SECONDS = 0.05  # how often a process holding a cached reader checks for a waiting writer
IDLE_SECONDS = 10.0  # a cached reader unused this long is closed


class StoreBusy(PlatformError):
    """The analytics store stayed locked by a load for longer than a request may wait (503)."""

    status = 503
    code = "store_busy"


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (any characters, including quotes and spaces)."""
    return '"' + name.replace("\x00", "").replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """``text`` as a SQL string literal, for the few places DuckDB takes no parameters (paths)."""
    return "'" + text.replace("\x00", "").replace("'", "''") + "'"


class _FileLock:
    """An flock on a file: shared or exclusive, waited for up to a timeout."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def acquire(self, exclusive: bool, timeout: float) -> int:
        """Take the lock; returns the descriptor that holds it (give it to :meth:`release`)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + timeout
        pause = 0.001
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise StoreBusy("The data store is busy loading data. Try again in a moment.") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)

    def release(self, fd: int) -> None:
        """Give the lock back."""
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def free_for_readers(self) -> bool:
        """True unless someone holds the lock exclusively (a writer waiting at the gate)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    @contextmanager
    def hold(self, exclusive: bool, timeout: float) -> Iterator[None]:
        fd = self.acquire(exclusive, timeout)
        try:
            yield
        finally:
            self.release(fd)


class _CachedReader:
    """A read-only DuckDB connection kept open between queries, and the shared lock it holds."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, lock_fd: int) -> None:
        self.conn = conn
        self.lock_fd = lock_fd
        self.users = 0
        self.retired = False
        self.last_used = time.monotonic()


class AnalyticsStore:
    """The DuckDB file at ``path`` and the locks that let many processes share it."""

    def __init__(self, path: Path, *, read_timeout: float = 30.0, write_timeout: float = 300.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _FileLock(self.path.with_name(self.path.name + ".lock"))
        self._gate = _FileLock(self.path.with_name(self.path.name + ".gate"))
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self._cache_lock = threading.Lock()
        self._reader: _CachedReader | None = None
        self._watcher: threading.Thread | None = None

    @property
    def work_dir(self) -> Path:
        """A private directory for staging files and dumps, next to the store."""
        path = self.path.with_name(self.path.stem + "-work")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def clean_work_dir(self, older_than: float = 24 * 3600) -> int:
        """Remove staging files, clean copies and dumps left by processes that died; returns how many."""
        removed = 0
        cutoff = time.time() - older_than
        for path in self.work_dir.iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        return removed

    @contextmanager
    def _shared(self) -> Iterator[None]:
        with self._gate.hold(False, self.read_timeout):
            pass  # wait here while a writer is queued or working
        with self._lock.hold(False, self.read_timeout):
            yield

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A read-only connection (None while the store has never been written).

        Opening a DuckDB file costs tens of milliseconds, more than most searches, so the
        connection is kept open between queries (each query gets its own cursor) together with
        the shared lock. A watcher thread gives both up as soon as a writer queues at the gate,
        or after a few seconds without use.
        """
        reader = self._checkout()
        if reader is None:
            yield None
            return
        cursor = reader.conn.cursor()
        try:
            yield cursor
        finally:
            cursor.close()
            self._checkin(reader)

    def _checkout(self) -> _CachedReader | None:
        with self._cache_lock:
            reader = self._reader
            if reader is not None and not reader.retired:
                reader.users += 1
                reader.last_used = time.monotonic()
                return reader
        with self._gate.hold(False, self.read_timeout):
            pass  # wait here while a writer is queued or working
        fd = self._lock.acquire(False, self.read_timeout)
        if not self.path.exists():
            self._lock.release(fd)
            return None
        try:
            conn = duckdb.connect(str(self.path), read_only=True)
        except BaseException:
            self._lock.release(fd)
            raise
        reader = _CachedReader(conn, fd)
        reader.users = 1
        with self._cache_lock:
            old, self._reader = self._reader, reader
            if old is not None and not old.retired:  # another thread opened one meanwhile: retire it
                old.retired = True
                if old.users == 0:
                    self._close(old)
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(target=self._watch, name="analytics-store-watcher", daemon=True)
                self._watcher.start()
        return reader

    def _checkin(self, reader: _CachedReader) -> None:
        with self._cache_lock:
            reader.users -= 1
            reader.last_used = time.monotonic()
            if reader.retired and reader.users == 0:
                self._close(reader)

    def _close(self, reader: _CachedReader) -> None:
        """Close a retired reader (called with the cache lock held, once nobody uses it)."""
        try:
            reader.conn.close()
        finally:
            if reader.lock_fd >= 0:
                self._lock.release(reader.lock_fd)
                reader.lock_fd = -1

    def _watch(self) -> None:
        """Retire the cached reader when a writer waits at the gate, or when it has been idle a while."""
        while True:
            time.sleep(WATCH_SECONDS)
            with self._cache_lock:
                reader = self._reader
                if reader is None or reader.retired:
                    self._reader = None
                    self._watcher = None
                    return
                idle = reader.users == 0 and time.monotonic() - reader.last_used > IDLE_SECONDS
                if idle or not self._gate.free_for_readers():
                    reader.retired = True
                    self._reader = None
                    self._watcher = None
                    if reader.users == 0:
                        self._close(reader)
                    return

    def release_readers(self) -> None:
        """Close the cached reader now (once its queries finish); tests and shutdown use this."""
        with self._cache_lock:
            reader, self._reader = self._reader, None
            if reader is not None and not reader.retired:
                reader.retired = True
                if reader.users == 0:
                    self._close(reader)

    @contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection, held exclusively; checkpointed when it closes."""
        with self._gate.hold(True, self.write_timeout), self._lock.hold(True, self.write_timeout):
            conn = duckdb.connect(str(self.path))
            try:
                yield conn
                conn.execute("CHECKPOINT")
            finally:
                conn.close()

    @contextmanager
    def attached(self, conn: duckdb.DuckDBPyConnection, alias: str = "store") -> Iterator[str]:
        """Attach the store read-write to another connection (a loader's staging database), exclusively."""
        with self._gate.hold(True, self.write_timeout), self._lock.hold(True, self.write_timeout):
            conn.execute(f"ATTACH {quote_literal(str(self.path))} AS {quote_ident(alias)}")
            try:
                yield quote_ident(alias)
                conn.execute(f"CHECKPOINT {quote_ident(alias)}")
            finally:
                conn.execute(f"DETACH {quote_ident(alias)}")

    @contextmanager
    def sandbox(self, tables: list[str], *, memory_limit: str = "1GB",
                threads: int = 2) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A connection for untrusted SELECTs that sees only views of ``tables``, with no file or network access.

        The store is attached read-only under another name; the query's own database is an empty
        in-memory one holding a view per allowed table, so an unqualified name can only find
        those. Then external access is switched off and the configuration locked.
        """
        with self._shared():
            if not self.path.exists():
                yield None
                return
            conn = duckdb.connect(":memory:", config={"threads": threads, "memory_limit": memory_limit})
            try:
                conn.execute(f"ATTACH {quote_literal(str(self.path))} AS {SANDBOX_ALIAS} (READ_ONLY)")
                for name in tables:
                    conn.execute(f"CREATE VIEW memory.main.{quote_ident(name)} AS "
                                 f"SELECT * FROM {SANDBOX_ALIAS}.main.{quote_ident(name)}")
                conn.execute("SET enable_external_access = false")
                conn.execute("SET autoinstall_known_extensions = false")
                conn.execute("SET autoload_known_extensions = false")
                conn.execute("SET lock_configuration = true")
                yield conn
            finally:
                conn.close()

    def tables(self) -> set[str]:
        """The names of the tables in the store."""
        with self.reading() as conn:
            if conn is None:
                return set()
            return {row[0] for row in conn.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                "AND schema_name = 'main'").fetchall()}

    def drop(self, name: str) -> bool:
        """Remove a table; True if there was one."""
        if not self.path.exists():
            return False
        with self.writing() as conn:
            found = conn.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' "
                                 "AND table_name = ?", [name]).fetchone()
            conn.execute(f"DROP TABLE IF EXISTS {quote_ident(name)}")
            return bool(found and found[0])
