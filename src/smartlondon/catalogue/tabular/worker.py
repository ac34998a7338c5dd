"""The background loader: threads in each serving process that work through the load queue.

Each thread claims one queued load at a time (see ``loader.claim``: only one process wins a
row) and sleeps until woken by a new upload in this process or until the next poll, which picks
up loads queued by other processes and the command line, and takes over loads whose process
died. Any number of processes may run workers; the store's write lock orders their writes.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.engine import Engine

from ...settings import Settings
from . import loader

log = logging.getLogger(__name__)


class LoadWorker:
    """Background threads that run queued loads for one database and store."""

    def __init__(self, engine: Engine, settings: Settings, threads: int = 1, poll_seconds: float = 5.0) -> None:
        self.engine = engine
        self.settings = settings
        self.poll_seconds = poll_seconds
        self.size = max(0, threads)
        self._threads: list[threading.Thread] = []
        self._wake = threading.Event()
        self._stop = threading.Event()

    def start(self) -> None:
        """Start the threads (again, after a stop), after clearing files that dead loads left behind."""
        if self.size:
            try:
                loader.store_for(self.settings).clean_work_dir()
            except OSError:
                log.warning("could not clean the analytics store's work directory", exc_info=True)
        self._stop.clear()
        self._threads = [threading.Thread(target=self._run, name=f"tabular-loader-{n}", daemon=True)
                         for n in range(self.size)]
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """Look at the queue now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the threads to finish their current load and stop; wait for them."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                c = loader.claim(self.engine)
                if c is not None:
                    loader.run_load(self.engine, self.settings, c)
                    continue
            except Exception:  # keep the worker alive; the row records the failure or stays claimable
                log.exception("the background loader hit an error")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
