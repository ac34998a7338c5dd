"""The access log: every use of restricted data, append-only and hash-chained.

Each entry's ``hash`` is the SHA-256 of a canonical JSON of the entry (including the SHA-256 of each subject
set) and the previous entry's hash, so editing, deleting or reordering any entry breaks the chain from there
on; ``verify`` finds the first entry that does not match. Database triggers refuse UPDATE and DELETE.

Per use and dataset the log keeps the set of people whose rows were read, as a bitmap of their
``_subject_no`` computed in DuckDB with ``bitstring_agg``, zlib-compressed when it is sparse or dense.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.db import utcnow
from .models import AccessLogEntry, AccessLogSubjects

GENESIS = "0" * 64
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
    session.add(entry)
    session.flush()
    for name, data in sorted(subjects.items()):
        session.add(AccessLogSubjects(entry_id=entry.id, dataset=name, encoding=ENCODING, data=data,
                                      sha256=digests[name],
                                      count=(subject_counts or {}).get(name, _count(data))))
    session.flush()
    return entry


def _count(data: bytes) -> int:
    bits = _bits(data)[1]
    return int.from_bytes(bits, "big").bit_count() if bits else 0


def verify(session: Session) -> tuple[bool, int | None, str]:
    """Check the whole chain: (ok, id of the first bad entry or None, message)."""
    prev = GENESIS
    count = 0
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
    return True, None, f"The access log is intact: {count} entries, each chained to the one before."


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
