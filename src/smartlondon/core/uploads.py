"""Streaming multipart uploads: the file goes to storage chunk by chunk as it arrives.

Never holds a whole file in memory, checks the size limit on every chunk, computes the checksum
while streaming, and rejects a broken body with a 400 that leaves no file behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from .storage import LocalStorage, PendingFile, human_size

MAX_FIELD_BYTES = 1024 * 1024
MAX_FIELDS = 100


@dataclass
class MultipartUpload:
    """The text fields of a multipart body and its (at most one) file, not yet committed."""

    fields: dict[str, str] = field(default_factory=dict)
    file: PendingFile | None = None
    filename: str | None = None
    file_field: str | None = None

    def discard(self) -> None:
        """Throw away the uploaded file (after a failed check)."""
        if self.file is not None:
            self.file.discard()


async def receive_multipart(request: Request, storage: LocalStorage, max_bytes: int,
                            file_fields: tuple[str, ...] = ("upload", "file")) -> MultipartUpload:
    """Parse a multipart/form-data request, streaming its file into ``storage``."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise UnsupportedMediaType("Send the file as multipart/form-data, with the file in a field called "
                                   "'upload'.")
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("The multipart body has no boundary in its Content-Type header.")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + 64 * 1024:
        raise PayloadTooLarge(f"The upload is larger than the limit of {human_size(max_bytes)}. "
                              "Split it, compress it, or link to it instead.")

    result = MultipartUpload()
    state: dict[str, object] = {"name": None, "filename": None, "buffer": None, "ended": False,
                                "header_field": b"", "header_value": b"", "headers": {}}

    def on_part_begin() -> None:
        state.update(name=None, filename=None, buffer=None, headers={}, header_field=b"", header_value=b"")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header_field"] = state["header_field"] + data[start:end]  # type: ignore[operator]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["header_value"] = state["header_value"] + data[start:end]  # type: ignore[operator]

    def on_header_end() -> None:
        headers = state["headers"]
        assert isinstance(headers, dict)
        headers[bytes(state["header_field"]).lower()] = bytes(state["header_value"])  # type: ignore[arg-type]
        state["header_field"], state["header_value"] = b"", b""

    def on_headers_finished() -> None:
        headers = state["headers"]
        assert isinstance(headers, dict)
        _, disp = parse_options_header(headers.get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        filename = disp.get(b"filename")
        state["name"] = name
        if filename is not None and name in file_fields:
            if result.file is not None:
                raise BadRequest("Send one file per request.")
            result.file = storage.begin(max_bytes)
            result.filename = filename.decode("utf-8", "replace")
            result.file_field = name
            state["buffer"] = None
        else:
            if len(result.fields) >= MAX_FIELDS:
                raise BadRequest("The form has too many fields.")
            state["buffer"] = bytearray()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        buffer = state["buffer"]
        if buffer is None:
            assert result.file is not None
            result.file.write(data[start:end])
        else:
            assert isinstance(buffer, bytearray)
            buffer.extend(data[start:end])
            if len(buffer) > MAX_FIELD_BYTES:
                raise BadRequest(f"The form field '{state['name']}' is too long.")

    def on_part_end() -> None:
        buffer = state["buffer"]
        if isinstance(buffer, bytearray) and state["name"]:
            result.fields[str(state["name"])] = buffer.decode("utf-8", "replace")

    def on_end() -> None:
        state["ended"] = True

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
        "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished, "on_end": on_end,
    })
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        if not state["ended"]:
            raise BadRequest("The multipart body is incomplete: it ends before its closing boundary. "
                             "Send the whole file again.")
    except MultipartParseError as exc:
        result.discard()
        raise BadRequest(f"The multipart body is broken ({exc}). Send it again as multipart/form-data.") from exc
    except ClientDisconnect as exc:
        result.discard()
        raise BadRequest("The upload was interrupted before it finished.") from exc
    except BaseException:
        result.discard()
        raise
    return result
