"""A running smartlondon on a free local port, for tests that need real HTTP clients.

``serving(db, data_dir)`` starts uvicorn in a thread with ``create_app(settings, db)``, the
settings' ``base_url`` being the server's own address (so download links in API answers work),
and stops it afterwards. The fixtures:

- ``live_server``: the test's database (SQLite, and PostgreSQL in the second run);
- ``second_live_server``: another, empty instance (a fresh SQLite database), e.g. to load or
  harvest into, or to harvest from.

Use them from a test module with ``from .live_server import live_server, second_live_server``
(``# noqa: F401``), or ``serving`` directly for other setups.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from smartlondon.app import create_app
from smartlondon.core import accounts
from smartlondon.core.db import Database
from smartlondon.settings import Settings


@dataclass
class LiveServer:
    """A running instance: its address, app, database and settings."""

    url: str
    app: Any
    db: Database
    settings: Settings

    def token(self, username: str, sysadmin: bool = False, **roles: str) -> str:
        """Make a user on this instance (roles by organisation slug, ``_`` for ``-``) and return an API token."""
        with self.db.session() as session:
            user = accounts.create_user(session, username=username, email=f"{username}@example.org",
                                        password=f"{username}-password-123", sysadmin=sysadmin)
            for org, role in roles.items():
                accounts.set_role(session, user, accounts.get_organisation(session, org.replace("_", "-")), role)
            _, secret = accounts.create_token(session, user, "tests", 30)
        return secret


@contextmanager
def serving(db: Database, data_dir: Path, **settings_changes: Any) -> Iterator[LiveServer]:
    """Serve ``create_app`` on the database with uvicorn on a free 127.0.0.1 port, for the block's duration."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    options = {"max_upload_bytes": 5 * 1024 * 1024, **settings_changes}
    settings = Settings(data_dir=data_dir, database_url=db.url, secret_key="live-test-secret", base_url=url,
                        **options).resolved()
    app = create_app(settings, db)
    with serve_app(app, sock) as served:
        yield LiveServer(url=served, app=app, db=db, settings=settings)


@contextmanager
def serve_app(app: Any, sock: socket.socket | None = None) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread (on ``sock``, or a free 127.0.0.1 port); yields its base URL."""
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, loop="asyncio", log_level="warning", access_log=False))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # not the main thread
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def live_server(db: Database, tmp_path: Path) -> Iterator[LiveServer]:
    """The app on the test's database, served over real HTTP."""
    with serving(db, tmp_path / "live") as server:
        yield server


@pytest.fixture
def second_live_server(tmp_path: Path, sqlite_template: Path) -> Iterator[LiveServer]:
    """A second, empty instance (its own SQLite database), served over real HTTP."""
    path = tmp_path / "second.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    try:
        with serving(database, tmp_path / "second") as server:
            yield server
    finally:
        database.dispose()
