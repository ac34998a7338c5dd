"""The access log: every use of restricted data, append-only and hash-chained.

Each entry's ``hash`` is the SHA-256 of a canonical JSON of the entry (including the SHA-256 of each subject
set) and the previous entry's hash, so editing, deleting or reordering any entry breaks the chain from there
on; ``verify`` finds the first entry that does not match. Database triggers refuse UPDATE and DELETE.

The chain alone cannot show that the newest entries were deleted, so the head (the number of entries and the
newest hash) is published as an *anchor*: a row of ``sharing_log_anchor`` every ``ANCHOR_EVERY`` entries and on
``smartlondon sharing anchor-log``, on the public page ``/sharing/uses/log-anchors`` and in
``<data_dir>/sharing/log-head.json`` for operators to copy elsewhere. ``verify`` checks the log against them.

Per use and dataset the log keeps the set of people whose rows were read, as a bitmap of their
``_subject_no`` computed in DuckDB with ``bitstring_agg``, zlib-compressed when it is sparse or dense.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from ..core.db import utcnow
from .models import AccessLogEntry, AccessLogSubjects, LogAnchor

GENESIS = "0" * 64
ANCHOR_EVERY = 100  # an anchor is published when an entry's id is a multiple of this
HEAD_FILE = Path("sharing") / "log-head.json"  # under the data directory
ENCODING = "bits1"  # 8-byte signed lo, 1 flag byte (0 raw, 1 zlib), bitmap: byte k bit (7 - j) is subject lo + 8k + j


def encode_bitmap(bits: bytes, lo: int, ones: int | None = None) -> bytes:
    """The compact form of a bitmap whose first bit is subject ``lo`` (``ones``: bits set, if known).

    Sparse or dense bitmaps are zlib-compressed; a bitmap about half full barely compresses, so it is
    kept raw (flag byte 0) rather than spending time on it.
    """
    density = (ones / (len(bits) * 8)) if ones is not None and bits else 0.0
    if 0.05 < density < 0.95:
        return lo.to_bytes(8, "big", signed=True) + b"\x00" + bits
    return lo.to_bytes(8, "big", signed=True) + b"\x01" + zlib.compress(bits, 1)


def _bits(data: bytes) -> tuple[int, bytes]:
    lo = int.from_bytes(data[:8], "big", signed=True)
    return lo, (data[9:] if data[8:9] == b"\x00" else zlib.decompress(data[9:]))


def encode_subjects(subject_nos: list[int] | set[int]) -> bytes:
    """The compact form of a set of subject numbers (for small sets made in Python)."""
    nos = sorted(set(int(n) for n in subject_nos))
    if not nos:
        return encode_bitmap(b"", 0)
    lo, hi = nos[0], nos[-1]
    bits = bytearray((hi - lo) // 8 + 1)
    for n in nos:
        k = n - lo
        bits[k // 8] |= 0x80 >> (k % 8)
    return encode_bitmap(bytes(bits), lo)


def decode_subjects(data: bytes) -> set[int]:
    """The subject numbers in a compact set (slow for huge sets: use ``contains``)."""
    lo, bits = _bits(data)
    out = set()
    for k, byte in enumerate(bits):
        if byte:
            for j in range(8):
                if byte & (0x80 >> j):
                    out.add(lo + k * 8 + j)
    return out


def contains(data: bytes, subject_no: int) -> bool:
    """Whether a compact subject set holds ``subject_no``."""
    lo, bits = _bits(data)
    k = subject_no - lo
    if k < 0:
        return False
    return k // 8 < len(bits) and bool(bits[k // 8] & (0x80 >> (k % 8)))


def _canonical(entry: AccessLogEntry, digests: dict[str, str]) -> bytes:
    body = {
        "at": entry.at.isoformat(timespec="microseconds"), "actor": entry.actor, "organisation": entry.organisation,
        "agreement": entry.agreement, "purpose": entry.purpose, "datasets": list(entry.datasets),
        "fields": list(entry.fields), "boroughs": list(entry.boroughs), "rows_read": int(entry.rows_read),
        "released": entry.released, "query_id": entry.query_id, "subjects": digests, "prev_hash": entry.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _last_hash(session: Session) -> str:
    last = session.scalar(select(AccessLogEntry.hash).order_by(AccessLogEntry.id.desc()).limit(1))
    return last or GENESIS


def append(session: Session, *, actor: str, organisation: str, agreement: str, purpose: str, datasets: list[str],
           fields: list[str], rows_read: int, released: dict[str, Any], subjects: dict[str, bytes],
           query_id: int | None, boroughs: list[str] | None = None, at: datetime | None = None,
           subject_counts: dict[str, int] | None = None) -> AccessLogEntry:
    """Append one use to the log, chained to the previous entry, in the caller's transaction."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        from sqlalchemy import text

        session.execute(text("LOCK TABLE sharing_access_log IN EXCLUSIVE MODE"))  # one chain, no forks
    at = at or utcnow()
    entry = AccessLogEntry(at=at, actor=actor, organisation=organisation, agreement=agreement, purpose=purpose,
                           datasets=list(datasets), fields=list(fields), boroughs=sorted(boroughs or []),
                           rows_read=int(rows_read), released=released, query_id=query_id,
                           prev_hash=_last_hash(session))
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(subjects.items())}
    entry.hash = hashlib.sha256(_canonical(entry, digests)).hexdigest()
    entry.subjects = [AccessLogSubjects(dataset=name, encoding=ENCODING, data=data, sha256=digests[name],
                                        count=(subject_counts or {}).get(name, _count(data)))
                      for name, data in sorted(subjects.items())]
    session.add(entry)
    session.flush()  # one flush: the entry, then its subject sets
    return entry


def _count(data: bytes) -> int:
    bits = _bits(data)[1]
    return int.from_bytes(bits, "big").bit_count() if bits else 0


def verify(session: Session, anchors: list[dict[str, Any]] | None = None) -> tuple[bool, int | None, str]:
    """Check the whole chain, then the published anchors: (ok, id of the first bad entry or None, message).

    ``anchors`` are heads kept outside the database (as in ``log-head.json``), checked with the table's own.
    """
    prev = GENESIS
    count = 0
    heads: list[tuple[int, str]] = []  # (id, hash) of each entry in order
    for entry in session.scalars(select(AccessLogEntry).order_by(AccessLogEntry.id)):
        count += 1
        subjects = {s.dataset: s for s in entry.subjects}
        for name, s in subjects.items():
            if hashlib.sha256(s.data).hexdigest() != s.sha256:
                return False, entry.id, f"Entry {entry.id}: the subject set of {name} was altered."
        if entry.prev_hash != prev:
            return False, entry.id, (f"Entry {entry.id} does not follow the entry before it: an entry was deleted, "
                                     "inserted or reordered.")
        digests = {name: s.sha256 for name, s in sorted(subjects.items())}
        if hashlib.sha256(_canonical(entry, digests)).hexdigest() != entry.hash:
            return False, entry.id, f"Entry {entry.id} was edited after it was written: its hash does not match."
        prev = entry.hash
        heads.append((entry.id, entry.hash))
    published = [{"sequence": a.sequence, "head_hash": a.head_hash, "at": a.at.isoformat(timespec="seconds"),
                  "where": "the anchor table"}
                 for a in session.scalars(select(LogAnchor).order_by(LogAnchor.sequence, LogAnchor.id))]
    published += [{**a, "where": a.get("where", "the anchor file")} for a in anchors or []]
    for anchor in published:
        sequence, head = int(anchor["sequence"]), str(anchor["head_hash"])
        if sequence > count:
            return False, None, (f"The access log has {count} entries but the anchor in {anchor['where']} published "
                                 f"at {anchor['at']} recorded {sequence}: the newest entries were deleted.")
        if sequence and heads[sequence - 1][1] != head:
            return False, heads[sequence - 1][0], (
                f"Entry {heads[sequence - 1][0]} is not the head published at {anchor['at']} in {anchor['where']}: "
                "entries were deleted or replaced.")
    return True, None, (f"The access log is intact: {count} entries, each chained to the one before, "
                        f"consistent with {len(published)} published anchors.")


def publish_anchor(session: Session, *, reason: str = "command", data_dir: Path | None = None) -> LogAnchor:
    """Record the log's current head as an anchor (and write it to ``<data_dir>/sharing/log-head.json``)."""
    count = session.scalar(select(func.count()).select_from(AccessLogEntry)) or 0
    last = session.execute(select(AccessLogEntry.id, AccessLogEntry.hash)
                           .order_by(AccessLogEntry.id.desc()).limit(1)).first()
    anchor = LogAnchor(sequence=int(count), entry_id=last[0] if last else None, head_hash=last[1] if last else GENESIS,
                       at=utcnow(), reason=reason)
    session.add(anchor)
    session.flush()
    if data_dir is not None:  # once committed: the file never names a head the database rolled back
        published = anchor_json(anchor)
        event.listen(session, "after_commit", lambda _s: write_head_file(Path(data_dir), published), once=True)
    return anchor


def anchor_json(anchor: LogAnchor) -> dict[str, Any]:
    """The public form of an anchor."""
    return {"sequence": anchor.sequence, "entry_id": anchor.entry_id, "head_hash": anchor.head_hash,
            "at": anchor.at.isoformat(timespec="seconds"), "reason": anchor.reason}


def write_head_file(data_dir: Path, anchor: dict[str, Any]) -> Path:
    """Write an anchor to ``<data_dir>/sharing/log-head.json`` (atomically: a reader never sees half a file)."""
    path = data_dir / HEAD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(anchor, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_head_file(path: Path) -> dict[str, Any] | None:
    """The anchor kept in a head file (None if there is no file); ValueError if it is not one."""
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("sequence"), int) or not isinstance(
            data.get("head_hash"), str):
        raise ValueError(f"{path} is not an access log head (it needs sequence and head_hash).")
    return {**data, "at": data.get("at", "?"), "where": str(path)}


def anchor_if_due(session: Session, entry: AccessLogEntry, data_dir: Path | None = None) -> LogAnchor | None:
    """Publish an anchor when this entry's id is a multiple of ``ANCHOR_EVERY``."""
    if entry.id % ANCHOR_EVERY:
        return None
    return publish_anchor(session, reason=f"every {ANCHOR_EVERY} entries", data_dir=data_dir)


def anchors(session: Session) -> list[LogAnchor]:
    """Every published anchor, newest first."""
    return list(session.scalars(select(LogAnchor).order_by(LogAnchor.id.desc())))


def uses_touching(session: Session, dataset_slug: str, subject_no: int) -> list[AccessLogEntry]:
    """Every logged use whose read rows of ``dataset_slug`` included this subject, oldest first."""
    rows = session.execute(select(AccessLogSubjects.entry_id, AccessLogSubjects.data)
                           .where(AccessLogSubjects.dataset == dataset_slug)
                           .order_by(AccessLogSubjects.entry_id)).all()
    ids = [entry_id for entry_id, data in rows if contains(data, int(subject_no))]
    if not ids:
        return []
    return list(session.scalars(select(AccessLogEntry).where(AccessLogEntry.id.in_(ids)).order_by(AccessLogEntry.id)))


def entries(session: Session) -> list[AccessLogEntry]:
    """Every entry, newest first."""
    return list(session.scalars(select(AccessLogEntry).order_by(AccessLogEntry.id.desc())))
