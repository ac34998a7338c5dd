"""Background work of ``serve``: threads that tick until stopped, started and stopped with the app.

A capability's scheduler subclasses ``TickingThread`` (its ``tick`` does one round of work) and
hooks itself to the application's lifespan with ``run_during_lifespan``, so it starts when the
server starts and stops when it stops, and tests that never enter the lifespan never start it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

log = logging.getLogger(__name__)


class TickingThread:
    """Calls ``tick()`` in a daemon thread every ``interval`` seconds until stopped.

    A failing tick is logged and the loop goes on: background work must outlive any one failure.
    """

    thread_name = "background"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        """Whether ``stop`` was asked for (long ticks check this between steps)."""
        return self._stop.is_set()

    def tick(self) -> Any:
        """One round of work."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait a little for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("%s tick failed", self.thread_name)
            self._stop.wait(self.interval)


class Startable(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


def run_during_lifespan(app: Any, attribute: str, make: Callable[[Any], Startable]) -> None:
    """Start ``make(app)`` when the app starts (kept as ``app.state.<attribute>``), stop it at shutdown."""
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        worker = make(application)
        setattr(application.state, attribute, worker)
        worker.start()
        try:
            async with previous(application) as state:
                yield state
        finally:
            worker.stop()

    app.router.lifespan_context = lifespan
