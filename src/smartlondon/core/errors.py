"""Errors that carry an HTTP status and a message saying what to fix.

The service layer raises these; the web layer turns them into a JSON error body
(``{"error": {"status", "code", "message", "fields"}}``) or an HTML page with an error summary.
"""

from __future__ import annotations


class PlatformError(Exception):
    """Base class: an error a user can act on, with its HTTP status."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}

    def as_dict(self) -> dict[str, object]:
        """The error as the JSON body every API returns."""
        return {"error": {"status": self.status, "code": self.code, "message": self.message,
                          "fields": self.fields}}


class ValidationFailed(PlatformError):
    """The input is well-formed but some fields are not valid (422)."""

    status = 422
    code = "validation_failed"


class BadRequest(PlatformError):
    """The request itself is malformed: bad JSON, broken multipart (400)."""

    status = 400
    code = "bad_request"


class NotAuthenticated(PlatformError):
    """No valid credentials were given (401)."""

    status = 401
    code = "not_authenticated"


class Forbidden(PlatformError):
    """The credentials are valid but do not allow this (403)."""

    status = 403
    code = "forbidden"


class NotFound(PlatformError):
    """Nothing exists at this address, or it is private to others (404)."""

    status = 404
    code = "not_found"


class Conflict(PlatformError):
    """The change clashes with what exists, such as a slug already in use (409)."""

    status = 409
    code = "conflict"


class PayloadTooLarge(PlatformError):
    """The upload is larger than the configured limit (413)."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(PlatformError):
    """The request body's type is not one this endpoint accepts (415)."""

    status = 415
    code = "unsupported_media_type"
