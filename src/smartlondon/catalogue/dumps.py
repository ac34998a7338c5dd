"""Bulk dumps of the public catalogue: JSON lines and CSV files, rebuilt when the catalogue changes.

Three files live under ``<data dir>/dumps``:

- ``catalogue.jsonl``: one public dataset per line, the native API's dataset dict (with resources);
- ``catalogue.csv``: one row per dataset, flat columns (lists joined with ``"; "``);
- ``catalogue-resources.csv``: one row per resource, with its dataset's id and slug.

``manifest.json`` records the catalogue's *stamp* when they were written (the last search-index
change, the number of public datasets, the latest dataset and organisation change). ``ensure_fresh``
compares it with the database's stamp and rewrites the files when they differ. Each file is
written to a temporary name and renamed into place, so a reader never sees half a file.

CSV files start with a UTF-8 byte order mark, so spreadsheet programs that otherwise guess a
legacy encoding (Excel) read accents and pound signs correctly; text cells that a spreadsheet would
run as a formula (starting with ``=``, ``+``, ``-``, ``@``) are prefixed with an apostrophe. The
JSON lines file is the faithful copy.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ..core.models import Organisation
from .dcat import iter_public_ids, load_views, public_filter
from .formats import display_format
from .listing import DatasetView
from .models import Dataset, SearchChange
from .service import bbox_of, dataset_dict

log = logging.getLogger(__name__)

FILES = {
    "jsonl": ("catalogue.jsonl", "application/jsonl; charset=utf-8"),
    "csv": ("catalogue.csv", "text/csv; charset=utf-8"),
    "resources.csv": ("catalogue-resources.csv", "text/csv; charset=utf-8"),
}
MANIFEST = "manifest.json"
BOM = "\ufeff"

DATASET_COLUMNS = (
    "id", "slug", "url", "title", "description", "publisher", "publisher_name", "licence", "licence_title",
    "licence_url", "contact_name", "contact_email", "keywords", "themes", "frequency", "temporal_start",
    "temporal_end", "boroughs", "bbox_west", "bbox_south", "bbox_east", "bbox_north", "geography",
    "landing_page", "version", "created", "modified", "resource_count", "formats", "extras",
)
RESOURCE_COLUMNS = (
    "dataset_id", "dataset_slug", "id", "position", "title", "description", "kind", "format", "media_type",
    "byte_size", "sha256", "download_url", "created", "modified",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_lock = threading.Lock()


@dataclass
class DumpFile:
    """One written dump file."""

    name: str
    byte_size: int
    sha256: str
    rows: int


@dataclass
class Manifest:
    """What the dump directory holds and which catalogue state it reflects."""

    stamp: str
    generated: str
    datasets: int
    skipped: list[dict[str, str]] = field(default_factory=list)
    files: dict[str, DumpFile] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def generated_at(self) -> datetime:
        """When the files were written (UTC)."""
        return datetime.fromisoformat(self.generated)

    def as_dict(self) -> dict[str, Any]:
        """The manifest as JSON."""
        return {**asdict(self), "files": {k: asdict(v) for k, v in self.files.items()}}


def dump_dir(data_dir: Path) -> Path:
    """Where the dump files are kept."""
    return data_dir / "dumps"


def catalogue_stamp(session: Session) -> str:
    """A value that changes whenever anything a dump shows may have changed."""
    change = session.scalar(select(func.max(SearchChange.id))) or 0
    count, modified = session.execute(select(func.count(), func.max(Dataset.modified))
                                      .select_from(Dataset).where(*public_filter())).one()
    organisations = session.scalar(select(func.max(Organisation.modified)))
    return f"{change}|{count}|{modified.isoformat() if modified else '-'}|" \
           f"{organisations.isoformat() if organisations else '-'}"


def read_manifest(data_dir: Path) -> Manifest | None:
    """The manifest of the files on disk, or None if there are none (or it is unreadable)."""
    path = dump_dir(data_dir) / MANIFEST
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        files = {k: DumpFile(**v) for k, v in raw.pop("files").items()}
        manifest = Manifest(**raw, files=files)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if any(not (dump_dir(data_dir) / f.name).exists() for f in manifest.files.values()):
        return None
    return manifest


def is_fresh(session: Session, data_dir: Path) -> bool:
    """True if the files on disk show the catalogue as it is now."""
    manifest = read_manifest(data_dir)
    return manifest is not None and manifest.stamp == catalogue_stamp(session) and set(manifest.files) == set(FILES)


def ensure_fresh(engine: Engine, data_dir: Path, base_url: str, force: bool = False) -> Manifest:
    """The current dumps, rewriting them first if the catalogue changed since they were written."""
    with _lock, _directory_lock(dump_dir(data_dir)):
        with Session(engine) as session:
            manifest = read_manifest(data_dir)
            stamp = catalogue_stamp(session)
            if (not force and manifest is not None and manifest.stamp == stamp
                    and set(manifest.files) == set(FILES)):
                return manifest
            return write_dumps(session, data_dir, base_url, stamp)


class _directory_lock:
    """An exclusive lock on the dump directory, so two processes never write it at once."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / ".lock"
        self.handle: IO[str] | None = None

    def __enter__(self) -> None:
        self.handle = open(self.path, "a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        assert self.handle is not None
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def write_dumps(session: Session, data_dir: Path, base_url: str, stamp: str | None = None) -> Manifest:
    """Write all three files (each to a temporary name, then renamed into place) and the manifest."""
    started = time.perf_counter()
    stamp = stamp or catalogue_stamp(session)
    directory = dump_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    writers = {key: _AtomicWriter(directory, name) for key, (name, _) in FILES.items()}
    try:
        jsonl = writers["jsonl"].text()
        datasets_csv = _csv_writer(writers["csv"].text(), DATASET_COLUMNS)
        resources_csv = _csv_writer(writers["resources.csv"].text(), RESOURCE_COLUMNS)
        counts = {key: 0 for key in FILES}
        skipped: list[dict[str, str]] = []
        for line, dataset_row, resource_rows in _public_records(session, base_url, skipped):
            jsonl.write(line)
            datasets_csv.writerow(dataset_row)
            resources_csv.writerows(resource_rows)
            counts["jsonl"] += 1
            counts["csv"] += 1
            counts["resources.csv"] += len(resource_rows)
        files = {key: writers[key].commit(counts[key]) for key in FILES}
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise
    manifest = Manifest(stamp=stamp, generated=datetime.now(timezone.utc).isoformat(), datasets=counts["jsonl"],
                        skipped=skipped, files=files, seconds=round(time.perf_counter() - started, 3))
    _write_atomically(directory / MANIFEST, json.dumps(manifest.as_dict(), indent=2).encode("utf-8"))
    for item in skipped:
        log.warning("dataset left out of the catalogue dumps", extra={"fields": item})
    return manifest


def _public_records(session: Session, base_url: str, skipped: list[dict[str, str]]
                    ) -> Iterator[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """Each public dataset as its JSON line, its CSV row and its resources' CSV rows."""
    for ids in iter_public_ids(session):
        views, unreadable = load_views(session, ids)
        skipped += [s.as_dict() for s in unreadable]
        for view in views:
            try:
                record = dataset_dict(view, base_url)  # type: ignore[arg-type]
                line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
                rows = _dataset_row(view, record), [_resource_row(view, r) for r in record["resources"]]
            except Exception as exc:  # one corrupt record is reported, never fatal
                skipped.append({"identifier": view.uuid, "slug": view.slug, "reason": f"{type(exc).__name__}: {exc}"})
                continue
            yield line, *rows


def _csv_writer(handle: "_TextSink", columns: tuple[str, ...]) -> Any:
    writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="raise", lineterminator="\r\n")
    handle.write(BOM)
    writer.writeheader()
    return writer


def _cell(value: Any) -> Any:
    """A text cell a spreadsheet will not run as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _joined(values: list[str]) -> str:
    return "; ".join(values)


def _dataset_row(view: DatasetView, record: dict[str, Any]) -> dict[str, Any]:
    box = bbox_of(view) or [None, None, None, None]  # type: ignore[arg-type]
    row = {
        "id": record["id"], "slug": record["slug"], "url": record["url"], "title": _cell(record["title"]),
        "description": _cell(record["description"]), "publisher": record["publisher"]["slug"],
        "publisher_name": _cell(record["publisher"]["name"]), "licence": record["licence"]["id"],
        "licence_title": _cell(record["licence"]["title"]), "licence_url": record["licence"]["url"],
        "contact_name": _cell(record["contact_name"]), "contact_email": _cell(record["contact_email"]),
        "keywords": _cell(_joined(record["keywords"])), "themes": _joined(record["themes"]),
        "frequency": record["frequency"], "temporal_start": record["temporal_start"] or "",
        "temporal_end": record["temporal_end"] or "", "boroughs": _joined(record["boroughs"]),
        "bbox_west": box[0], "bbox_south": box[1], "bbox_east": box[2], "bbox_north": box[3],
        "geography": record["geography"], "landing_page": record["landing_page"],
        "version": _cell(record["version"]), "created": record["created"], "modified": record["modified"],
        "resource_count": len(record["resources"]),
        "formats": _joined(sorted({r["format"] for r in record["resources"] if r["format"]})),
        "extras": _cell(json.dumps(record["extras"], ensure_ascii=False)) if record["extras"] else "",
    }
    return {k: ("" if v is None else v) for k, v in row.items()}


def _resource_row(view: DatasetView, resource: dict[str, Any]) -> dict[str, Any]:
    original = next((r for r in view.resources if r.uuid == resource["id"]), None)
    row = {
        "dataset_id": view.uuid, "dataset_slug": view.slug, "id": resource["id"], "position": resource["position"],
        "title": _cell(resource["title"]), "description": _cell(resource["description"]),
        "kind": resource["kind"], "format": display_format(resource["format"]), "media_type": resource["media_type"],
        "byte_size": resource["byte_size"], "sha256": resource["sha256"],
        "download_url": resource["download_url"],
        "created": original.created.isoformat() if original else "",
        "modified": original.modified.isoformat() if original else "",
    }
    return {k: ("" if v is None else v) for k, v in row.items()}


class _AtomicWriter:
    """A file written under a temporary name, hashed as it goes, and renamed into place on commit."""

    def __init__(self, directory: Path, name: str) -> None:
        self.target = directory / name
        fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        self.temp = Path(temp)
        self.raw = os.fdopen(fd, "wb")
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def text(self) -> "_TextSink":
        """A text sink onto the file: strings are written as UTF-8, newlines as given."""
        return _TextSink(self)

    def commit(self, rows: int) -> DumpFile:
        """Flush, sync and rename the file into place."""
        self.raw.flush()
        os.fsync(self.raw.fileno())
        self.raw.close()
        os.chmod(self.temp, 0o644)
        os.replace(self.temp, self.target)
        return DumpFile(name=self.target.name, byte_size=self.size, sha256=self.hasher.hexdigest(), rows=rows)

    def discard(self) -> None:
        """Drop the temporary file (after a failure)."""
        try:
            self.raw.close()
        finally:
            self.temp.unlink(missing_ok=True)


class _TextSink:
    """The text side of an _AtomicWriter (what ``csv`` and ``json`` write to)."""

    def __init__(self, owner: _AtomicWriter) -> None:
        self.owner = owner

    def write(self, text: str) -> int:
        self.owner.write(text.encode("utf-8"))
        return len(text)


def _write_atomically(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
