"""A remote portal for harvest tests: a real local HTTP server answering in the real formats.

``Portal`` serves routes (path -> handler) on a free 127.0.0.1 port and records every request.
``ckan_package_search`` answers like CKAN's ``package_search`` over a list of package dicts:
``rows``/``start`` paging, ``sort=id asc`` (or ``metadata_modified asc``) and ``fq`` filters on
``metadata_modified:[<time> TO *]``, as the real Birmingham portal would. Other helpers serve
fixture files, hang (for timeouts) or fail with 5xx a given number of times.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "harvest"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "catalogue-fixtures"
BIRMINGHAM = SHARED / "birmingham-ckan-package_search.json"

Answer = tuple[int, str, bytes]  # status, content type, body
Handler = Callable[[dict[str, str]], Answer]


@dataclass
class Portal:
    """A local HTTP server with routes; ``requests`` lists (path, query) of every request."""

    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def start(self) -> "Portal":
        portal = self

        class Handle(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                portal.requests.append((parts.path, query))
                handler = portal.routes.get(parts.path)
                status, kind, body = handler(query) if handler else (404, "text/plain", b"not found")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, path: str) -> list[dict[str, str]]:
        """The queries of the requests made to ``path``."""
        return [q for p, q in self.requests if p == path]


def json_answer(value: Any, status: int = 200) -> Answer:
    return status, "application/json", json.dumps(value).encode()


def file_answer(name: str, kind: str) -> Handler:
    body = (FIXTURES / name).read_bytes()
    return lambda query: (200, kind, body)


def birmingham_packages() -> list[dict[str, Any]]:
    """The ten real package dicts of the Birmingham CKAN response (a fresh copy)."""
    return copy.deepcopy(json.loads(BIRMINGHAM.read_text())["result"]["results"])


def _moment(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)  # CKAN's naive times are UTC


def ckan_package_search(packages: list[dict[str, Any]]) -> Handler:
    """CKAN's package_search over ``packages`` (read at each request, so tests can change them)."""
    help_url = "https://data.birmingham.gov.uk/api/3/action/help_show?name=package_search"

    def answer(query: dict[str, str]) -> Answer:
        rows, start = int(query.get("rows", 10)), int(query.get("start", 0))
        if rows > 1000:
            return json_answer({"help": help_url, "success": False,
                                "error": {"__type": "Validation Error", "rows": ["Must be 1000 or less"]}}, 409)
        found = [p for p in packages if p.get("state", "active") == "active" and not p.get("private")]
        for match in re.finditer(r"metadata_modified:\[(\S+) TO \*\]", query.get("fq", "")):
            since = _moment(match.group(1))
            found = [p for p in found if _moment(p.get("metadata_modified", "1970-01-01")) >= since]
        sort = query.get("sort", "score desc, metadata_modified desc")
        if sort.startswith("id"):
            found.sort(key=lambda p: p.get("id", ""))
        elif sort.startswith("metadata_modified asc"):
            found.sort(key=lambda p: p.get("metadata_modified", ""))
        return json_answer({"help": help_url, "success": True, "result": {
            "count": len(found), "sort": sort, "facets": {}, "results": found[start:start + rows],
            "search_facets": {}}})

    return answer


def hanging(seconds: float) -> Handler:
    """Answers only after ``seconds`` (longer than a short read timeout)."""
    def answer(query: dict[str, str]) -> Answer:
        time.sleep(seconds)
        return json_answer({"success": True, "result": {"count": 0, "results": []}})

    return answer


def failing(times: int, then: Handler, status: int = 503) -> Handler:
    """Answers ``status`` for the first ``times`` requests, then like ``then``."""
    left = [times]

    def answer(query: dict[str, str]) -> Answer:
        if left[0] > 0:
            left[0] -= 1
            return status, "text/plain", b"Service Unavailable"
        return then(query)

    return answer
