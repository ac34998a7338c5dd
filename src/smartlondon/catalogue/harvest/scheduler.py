"""The harvest scheduler: a background thread of ``serve`` that runs due sources, one job at a time.

Every tick it fails stalled jobs (the watchdog), then runs each due source. Several server
processes (``serve --workers N``) each run a scheduler; the database decides which one runs a
source: a process must first move the source's ``next_run_at`` forward (an atomic update that
only one can win), and the job lock refuses a second job of a source that is running.
Switched by ``SMARTLONDON_HARVEST_SCHEDULER`` (on for ``serve``; off unless set in tests).
"""

from __future__ import annotations

from typing import Any

from ...core.background import TickingThread, run_during_lifespan
from ...core.db import Database


class HarvestScheduler(TickingThread):
    """Runs due harvest sources in a daemon thread until stopped."""

    thread_name = "harvest-scheduler"

    def __init__(self, db: Database, tick_seconds: float = 60.0, stall_minutes: float = 15.0) -> None:
        super().__init__(tick_seconds)
        self.db = db
        self.tick_seconds = tick_seconds
        self.stall_minutes = stall_minutes
        self.ticks = 0

    def tick(self) -> int:
        """One round: the watchdog, then every due source; returns how many jobs ran."""
        from .runner import run_due

        self.ticks += 1
        return len(run_due(self.db, self.stall_minutes))


def install(app: Any) -> None:
    """Run a scheduler for the app's lifetime when the settings switch it on."""
    settings = app.state.settings
    if getattr(settings, "harvest_scheduler", False):
        run_during_lifespan(app, "harvest_scheduler", lambda application: HarvestScheduler(
            application.state.db, settings.harvest_tick_seconds, settings.harvest_stall_minutes))
