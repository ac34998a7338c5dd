"""A route class for the register's machine APIs: errors always come back as JSON, whatever the Accept header."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from ..core.errors import PlatformError


class JsonErrorRoute(APIRoute):
    """An API route whose platform errors are JSON bodies (clients like QGIS send ``Accept: */*``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except PlatformError as exc:
                return JSONResponse(exc.as_dict(), status_code=exc.status)

        return route
