"""The harvest scheduler: a background thread of ``serve`` that runs due sources, one job at a time.

Every tick it fails stalled jobs (the watchdog), then runs each due source. Several server
processes (``serve --workers N``) each run a scheduler; the database decides which one runs a
source: a process must first move the source's ``next_run_at`` forward (an atomic update that
only one can win), and the job lock refuses a second job of a source that is running.
Switched by ``SMARTLONDON_HARVEST_SCHEDULER`` (on for ``serve``; off unless set in tests).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ...core.db import Database

log = logging.getLogger(__name__)


class HarvestScheduler:
    """Runs due harvest sources in a daemon thread until stopped."""

    def __init__(self, db: Database, tick_seconds: float = 60.0, stall_minutes: float = 15.0) -> None:
        self.db = db
        self.tick_seconds = tick_seconds
        self.stall_minutes = stall_minutes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="harvest-scheduler", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait a little for it (a running job is failed later by the watchdog)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def tick(self) -> int:
        """One round: the watchdog, then every due source; returns how many jobs ran."""
        from .runner import run_due

        self.ticks += 1
        return len(run_due(self.db, self.stall_minutes))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the scheduler must outlive any one failure
                log.exception("harvest scheduler tick failed")
            self._stop.wait(self.tick_seconds)


def install(app: Any) -> None:
    """Run a scheduler for the app's lifetime when the settings switch it on."""
    settings = app.state.settings
    if not getattr(settings, "harvest_scheduler", False):
        return
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        scheduler = HarvestScheduler(application.state.db, settings.harvest_tick_seconds,
                                     settings.harvest_stall_minutes)
        application.state.harvest_scheduler = scheduler
        scheduler.start()
        try:
            async with previous(application) as state:
                yield state
        finally:
            scheduler.stop()

    app.router.lifespan_context = lifespan
