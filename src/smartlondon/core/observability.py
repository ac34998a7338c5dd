"""Structured request logs, request ids and Prometheus metrics, as one ASGI middleware."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .audit import request_id as request_id_var

log = logging.getLogger("smartlondon.request")
REGISTRY = CollectorRegistry()
REQUESTS = Counter("smartlondon_http_requests_total", "HTTP requests served",
                   ["method", "route", "status"], registry=REGISTRY)
LATENCY = Histogram("smartlondon_http_request_duration_seconds", "Time to serve an HTTP request",
                    ["method", "route"], registry=REGISTRY,
                    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


class JsonFormatter(logging.Formatter):
    """One JSON object per log line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                                 "logger": record.name, "message": record.getMessage()}
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    """Send the platform's logs to stderr as JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("smartlondon")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class ObservabilityMiddleware:
    """Give each request an id, time it, count it and log it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        path = scope.get("path")  # as asked for, before the .json suffix is taken off
        rid = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode()[:64] or uuid.uuid4().hex
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            REQUESTS.labels(method, route_path, str(status)).inc()
            LATENCY.labels(method, route_path).observe(elapsed)
            actor = scope["state"].get("actor_label")
            log.info("request", extra={"fields": {
                "request_id": rid, "method": method, "path": path, "route": route_path,
                "status": status, "duration_ms": round(elapsed * 1000, 2), "actor": actor,
            }})
            request_id_var.reset(token)


class JsonSuffixMiddleware:
    """Serve ``/dataset/x.json`` as the JSON twin of ``/dataset/x`` (as Datasette does)."""

    EXEMPT_PREFIXES = ("/static/", "/api/", "/openapi.json", "/catalog.")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (scope["type"] == "http" and path.endswith(".json") and "/download/" not in path
                and not path.startswith(self.EXEMPT_PREFIXES)):
            scope["path"] = path[: -len(".json")] or "/"
            if scope["path"] == "/index":
                scope["path"] = "/"
            scope["raw_path"] = scope["path"].encode()
            scope.setdefault("state", {})
            scope["state"]["json_suffix"] = True
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    """A strict Content-Security-Policy and the usual hardening headers."""

    CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self' 'sha256-GUQ5ad8JK5KmEWmROf3LZd9ge94daqNvd8xy9YS1iDw='; "
           "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
    DOCS_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = self.DOCS_CSP if scope.get("path") == "/api/docs" else self.CSP

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                for name, value in ((b"content-security-policy", csp), (b"x-content-type-options", "nosniff"),
                                    (b"referrer-policy", "strict-origin-when-cross-origin"),
                                    (b"x-frame-options", "DENY")):
                    if name not in names:
                        headers.append((name, value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)
