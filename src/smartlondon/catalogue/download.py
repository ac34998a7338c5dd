"""Downloads: stored files streamed with Range support, the right type and a safe file name."""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from ..core.storage import LocalStorage
from .models import Resource

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """The (start, end) of a single byte range; None for no range; False if it cannot be satisfied."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # multiple or malformed ranges: send the whole file, as RFC 9110 allows
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if start >= size or (last and int(last) < start):
            return False
    else:
        length = int(last)
        if length == 0:
            return False
        start, end = max(0, size - length), size - 1
    return start, end


def content_disposition(filename: str) -> str:
    """An attachment header that works for ASCII and non-ASCII names (RFC 6266)."""
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


def file_response(request: Request, storage: LocalStorage, res: Resource) -> Response:
    """Stream a stored resource, honouring ``Range`` and ``If-None-Match``."""
    assert res.storage_key is not None
    size = storage.size(res.storage_key)
    etag = f'"{res.sha256}"' if res.sha256 else None
    headers = {"Accept-Ranges": "bytes", "Content-Disposition": content_disposition(res.filename or "data"),
               "Cache-Control": "public, max-age=300"}
    if etag:
        headers["ETag"] = etag
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
    wanted = parse_range(request.headers.get("range"), size)
    if request.headers.get("if-range") and etag and request.headers.get("if-range") != etag:
        wanted = None
    if wanted is False:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    media_type = res.media_type or "application/octet-stream"
    if wanted is None:
        headers["Content-Length"] = str(size)
        body = storage.open_range(res.storage_key) if request.method != "HEAD" else iter(())
        return StreamingResponse(body, media_type=media_type, headers=headers)
    start, end = wanted  # type: ignore[misc]
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    body = storage.open_range(res.storage_key, start, end) if request.method != "HEAD" else iter(())
    return StreamingResponse(body, status_code=206, media_type=media_type, headers=headers)
