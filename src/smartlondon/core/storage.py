"""File storage for uploads: streamed in chunks, hashed while streaming, never whole in memory.

``Storage`` is the interface; ``LocalStorage`` (files under the data directory) is the default,
so an object store can plug in later behind the same methods.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from .errors import PayloadTooLarge

CHUNK = 1024 * 1024


@dataclass
class StoredFile:
    """A file that has been written to storage."""

    key: str
    byte_size: int
    sha256: str


class PendingFile:
    """A file being written: feed it chunks, then ``commit`` or ``discard`` it.

    The size limit is checked on every chunk, so an oversize upload stops early and leaves
    nothing behind.
    """

    def __init__(self, storage: "LocalStorage", max_bytes: int) -> None:
        self._storage = storage
        self.max_bytes = max_bytes
        self.key = f"{uuid.uuid4().hex}"
        self._tmp = storage.root / "tmp" / self.key
        self._tmp.parent.mkdir(parents=True, exist_ok=True)
        self._handle: BinaryIO | None = open(self._tmp, "wb")
        self._hash = hashlib.sha256()
        self.byte_size = 0

    def write(self, chunk: bytes) -> None:
        """Append a chunk; raises 413 (and discards) once the limit is passed."""
        if not chunk:
            return
        self.byte_size += len(chunk)
        if self.byte_size > self.max_bytes:
            self.discard()
            raise PayloadTooLarge(
                f"The file is larger than the upload limit of {human_size(self.max_bytes)}. "
                "Split it, compress it, or link to it instead."
            )
        assert self._handle is not None
        self._handle.write(chunk)
        self._hash.update(chunk)

    def commit(self) -> StoredFile:
        """Close the file and move it into place."""
        assert self._handle is not None
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None
        final = self._storage.path(self.key)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, final)
        return StoredFile(self.key, self.byte_size, self._hash.hexdigest())

    def discard(self) -> None:
        """Throw the partial file away."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._tmp.unlink(missing_ok=True)


class Storage(Protocol):
    """What the catalogue needs of a file store."""

    def begin(self, max_bytes: int) -> PendingFile: ...
    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...
    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> None: ...
    def local_path(self, key: str) -> Path | None: ...


class LocalStorage:
    """Files on the local filesystem, under ``root``, sharded by key."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """Where the file with this key lives."""
        if not key.isalnum():
            raise ValueError(f"bad storage key {key!r}")
        return self.root / key[:2] / key[2:4] / key

    def begin(self, max_bytes: int) -> PendingFile:
        """Start writing a new file of at most ``max_bytes``."""
        return PendingFile(self, max_bytes)

    def store_stream(self, chunks: Iterator[bytes], max_bytes: int) -> StoredFile:
        """Write a whole stream of chunks as one file."""
        pending = self.begin(max_bytes)
        try:
            for chunk in chunks:
                pending.write(chunk)
        except BaseException:
            pending.discard()
            raise
        return pending.commit()

    def store_file(self, path: Path, max_bytes: int) -> StoredFile:
        """Copy a local file into storage, chunk by chunk."""
        with open(path, "rb") as handle:
            return self.store_stream(iter(lambda: handle.read(CHUNK), b""), max_bytes)

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the bytes from ``start`` to ``end`` inclusive (the whole file by default)."""
        path = self.path(key)
        with open(path, "rb") as handle:
            handle.seek(start)
            remaining = (end - start + 1) if end is not None else None
            while remaining is None or remaining > 0:
                chunk = handle.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def size(self, key: str) -> int:
        """The size of a stored file in bytes."""
        return self.path(key).stat().st_size

    def delete(self, key: str) -> None:
        """Remove a stored file (no error if it is already gone)."""
        self.path(key).unlink(missing_ok=True)

    def local_path(self, key: str) -> Path | None:
        """A local path to the file, for previews."""
        return self.path(key)


def human_size(n: int | None) -> str:
    """A byte count for people: 1.2 MB, 5 GB."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            if unit == "bytes":
                return f"{int(size)} bytes"
            return f"{size:.1f} {unit}".replace(".0 ", " ")
        size /= 1024
    return f"{n} bytes"
