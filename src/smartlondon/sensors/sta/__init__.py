"""The OGC SensorThings API v1.1 at ``/sta/v1.1`` (see docs/sensors.md).

Modules: ``paths`` (resource paths), ``query`` (query options and reading entities),
``serialize`` (entities as STA JSON), ``router`` (the GET routes and the landing page),
``odata`` (``$filter``/``$orderby``), ``geo`` (spatial SQL).

Errors are answered with the standard's body: ``{"code": 400, "type": "error", "message": "..."}``.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

PREFIX = "/sta/v1.1"


class StaError(Exception):
    """An error answered with its status and the SensorThings error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> JSONResponse:
        """The error as a JSON response."""
        return error_response(self.status, self.message)


def error_response(status: int, message: str) -> JSONResponse:
    """``{"code": status, "type": "error", "message": message}`` with that status."""
    return JSONResponse({"code": status, "type": "error", "message": message}, status_code=status)


def base_url(settings_base_url: str) -> str:
    """The service root: the site's base URL + ``/sta/v1.1``."""
    return settings_base_url.rstrip("/") + PREFIX
