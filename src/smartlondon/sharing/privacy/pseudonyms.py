"""Keyed pseudonyms for direct identifiers, with keys kept apart from the data and rotated per epoch.

A pseudonym is ``HMAC-SHA256(key_of_epoch, kind + 0x1f + normalised identifier)``, hex encoded and
truncated to ``TRUNCATION_HEX`` characters (128 bits). The same identifier gives the same pseudonym
within an epoch and a different one in every other epoch, and identifiers of different kinds never
collide. Keys live in ``settings.keys_dir``, one file per epoch (mode 0600, 32 bytes from
``secrets``), never in the database or the restricted store. A small manifest (``epochs.json``, no
keys) records each epoch's status: ``current`` (new data is pseudonymised with it), ``retired`` (its
key is kept so a data controller can still find a person's rows for a subject request) and
``destroyed`` (its key was overwritten and removed: crypto-shredding, after which nobody can
recompute or link that epoch's pseudonyms). A ``pending`` epoch is a rotation under way (``rotation()``):
its key exists, so stored rows can be rewritten to it, but it becomes current only once that succeeded.

Speed: re-pseudonymising a dataset computes two or more HMACs per stored identifier, so the keyed
SHA-256 states (key XOR ipad, key XOR opad, RFC 2104) are made once per epoch and copied per value, and
``pseudonym_table`` normalises each distinct identifier once for all epochs. The outputs are exactly
``hmac.new(key, message, sha256)``'s (a test compares them).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timezone
from typing import Any

from ...core.errors import PlatformError, ValidationFailed
from ...settings import Settings

ALGORITHM = "HMAC-SHA256"
TRUNCATION_HEX = 32  # 128 of the 256 bits: collisions stay negligible for any city's population
KEY_BYTES = 32
KINDS = ("nhs_number", "uprn", "mac", "email")
KIND_LABELS = {"nhs_number": "NHS number", "uprn": "UPRN (Unique Property Reference Number)",
               "mac": "device MAC address", "email": "email address"}
EPOCH_NAME = re.compile(r"^\d{4}-Q[1-4](?:\.\d+)?$")
MANIFEST = "epochs.json"
NHS_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
_NHS_ZEROS = 48 * sum(NHS_WEIGHTS)  # the weighted sum of nine ASCII "0" bytes: subtracted to get the digits' sum


class KeyDestroyed(PlatformError):
    """The epoch's key was destroyed, so its pseudonyms can no longer be computed or linked (410)."""

    status = 410
    code = "key_destroyed"


# --- normalising identifiers -------------------------------------------------------------------

def nhs_number_is_valid(digits: str) -> bool:
    """True if ten digits pass the NHS number's Modulus 11 check digit."""
    if len(digits) != 10 or not digits.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1)))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


def normalise(kind: str, value: str) -> str:
    """The canonical form of an identifier of this kind; 422 saying what is wrong (never echoing the value)."""
    if kind not in KINDS:
        raise ValidationFailed(f"Unknown identifier kind '{kind}'.", {"kind": f"Use one of {', '.join(KINDS)}."})
    text = str(value if value is not None else "").strip()
    if kind == "nhs_number":
        digits = re.sub(r"[\s-]", "", text)
        if not (len(digits) == 10 and digits.isdigit()):
            raise ValidationFailed("An NHS number has 10 digits.",
                                   {"nhs_number": "Enter the 10 digits of the NHS number."})
        if not nhs_number_is_valid(digits):
            raise ValidationFailed("The NHS number's check digit is wrong (Modulus 11).",
                                   {"nhs_number": "It fails the Modulus 11 check: check it for a typo."})
        return digits
    if kind == "uprn":
        digits = text.replace(" ", "")
        if not digits.isdigit() or not 1 <= len(digits.lstrip("0") or "0") <= 12 or int(digits) == 0:
            raise ValidationFailed("A UPRN is a whole number of up to 12 digits.",
                                   {"uprn": "Enter the UPRN's digits only."})
        return str(int(digits))
    if kind == "mac":
        hexes = re.sub(r"[\s:.\-]", "", text).lower()
        if not re.fullmatch(r"[0-9a-f]{12}", hexes):
            raise ValidationFailed("A MAC address has 12 hexadecimal digits, like 00:1A:2B:3C:4D:5E.",
                                   {"mac": "Enter 12 hexadecimal digits, with or without separators."})
        return ":".join(hexes[i:i + 2] for i in range(0, 12, 2))
    email = re.sub(r"\s+", "", text).lower()
    if not re.fullmatch(r"[^@]+@[^@]+\.[^@]+", email):
        raise ValidationFailed("An email address looks like name@example.org.",
                               {"email": "Enter an email address like name@example.org."})
    return email


def _nhs_canonical(text: str) -> str | None:
    """The canonical NHS number for the common case (ten ASCII digits, valid check digit); None otherwise.

    A fast path for bulk work: whatever it does not accept goes through ``normalise``, so the result (or the
    error) is always what ``normalise`` gives.
    """
    if len(text) != 10 or not text.isascii() or not text.isdigit():
        return None
    data = text.encode()
    check = 11 - (sum(map(int.__mul__, data[:9], NHS_WEIGHTS)) - _NHS_ZEROS) % 11
    if check == 11:
        check = 0
    return text if check == data[9] - 48 else None


def epoch_for(day: date) -> str:
    """The quarterly epoch a day falls in, such as ``2026-Q4``."""
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def minimum_group_sizes() -> dict[str, int]:
    """k for each disclosure profile: the smallest number of people a released count may describe."""
    from ..disclosure.rules import PROFILES

    return {name: profile.threshold for name, profile in PROFILES.items()}


# --- the pseudonymiser -------------------------------------------------------------------------

class Pseudonymiser:
    """Computes pseudonyms with the keys in ``settings.keys_dir`` and manages their epochs."""

    def __init__(self, settings: Settings, today: date | None = None) -> None:
        self.keys_dir = settings.keys_dir
        self._today = today
        self._keys: dict[str, bytes] = {}
        self._states: dict[str, tuple[Any, Any]] = {}  # epoch -> the keyed inner and outer SHA-256 states

    # manifest and key files
    def _read(self) -> list[dict[str, Any]]:
        path = self.keys_dir / MANIFEST
        if not path.exists():
            return []
        return list(json.loads(path.read_text())["epochs"])

    def _write(self, epochs: list[dict[str, Any]]) -> None:
        path = self.keys_dir / MANIFEST
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"algorithm": ALGORITHM, "epochs": epochs}, indent=2))
        os.replace(tmp, path)

    @contextmanager
    def _locked(self) -> Iterator[list[dict[str, Any]]]:
        """The manifest, locked against other processes while it is changed."""
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.keys_dir, 0o700)
        with open(self.keys_dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                epochs = self._read()
                yield epochs
                self._write(epochs)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _key_path(self, epoch: str):  # type: ignore[no-untyped-def]
        return self.keys_dir / f"{epoch}.key"

    def _new_key(self, epoch: str) -> None:
        fd = os.open(self._key_path(epoch), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(KEY_BYTES))

    def _now(self) -> str:
        return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _today_epoch(self, existing: list[dict[str, Any]]) -> str:
        base = epoch_for(self._today or datetime.now(timezone.utc).date())
        names = {e["name"] for e in existing}
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}.{n}"
        return name

    # public interface
    def epochs(self) -> list[dict[str, Any]]:
        """Every epoch with its status and dates (no keys), oldest first."""
        return self._read()

    def current_epoch(self) -> str:
        """The epoch new data is pseudonymised with (created, with its key, on first use)."""
        for entry in self._read():
            if entry["status"] == "current":
                return str(entry["name"])
        with self._locked() as epochs:
            for entry in epochs:
                if entry["status"] == "current":
                    return str(entry["name"])
            name = self._today_epoch(epochs)
            self._new_key(name)
            epochs.append({"name": name, "status": "current", "created": self._now()})
            return name

    def live_epochs(self) -> list[str]:
        """The epochs whose keys still exist (current and retired), newest first."""
        return [e["name"] for e in reversed(self._read()) if e["status"] != "destroyed"]

    def rotate(self) -> str:
        """Start a new epoch with a new key; the previous one is retired (its key kept until destroyed)."""
        with self._locked() as epochs:
            name = self._today_epoch(epochs)
            self._new_key(name)
            for entry in epochs:
                if entry["status"] == "current":
                    entry["status"] = "retired"
                    entry["retired"] = self._now()
            epochs.append({"name": name, "status": "current", "created": self._now()})
        return name

    @contextmanager
    def rotation(self) -> Iterator[str]:
        """A new epoch that becomes current only if the block succeeds (rewrite stored rows to it inside).

        Inside the block the new epoch's key exists (its pseudonyms can be computed) and the manifest lists
        it as ``pending``, while new data is still pseudonymised with the current epoch. If the block raises,
        the new key is shredded and the epoch forgotten: nothing was stored under it. If the process dies
        after the block's data was committed but before the epoch was made current, the pending epoch stays
        live (its key kept), so the next rewrite treats it as an old epoch and moves its rows on.
        """
        with self._locked() as epochs:
            name = self._today_epoch(epochs)
            self._new_key(name)
            epochs.append({"name": name, "status": "pending", "created": self._now()})
        try:
            yield name
        except BaseException:
            with self._locked() as epochs:
                self._shred(name)
                epochs[:] = [e for e in epochs if e["name"] != name]
            raise
        with self._locked() as epochs:
            for entry in epochs:
                if entry["status"] == "current":
                    entry["status"] = "retired"
                    entry["retired"] = self._now()
                elif entry["name"] == name:
                    entry["status"] = "current"

    def _shred(self, epoch: str) -> None:
        """Overwrite the epoch's key file with random bytes, sync it and delete it; forget the key."""
        path = self._key_path(epoch)
        if path.exists():
            size = path.stat().st_size
            with open(path, "r+b") as handle:
                handle.write(secrets.token_bytes(size))
                handle.flush()
                os.fsync(handle.fileno())
            path.unlink()
        self._keys.pop(epoch, None)
        self._states.pop(epoch, None)

    def destroy(self, epoch: str) -> None:
        """Overwrite and remove a retired epoch's key: its pseudonyms can never be recomputed or linked."""
        with self._locked() as epochs:
            entry = next((e for e in epochs if e["name"] == epoch), None)
            if entry is None:
                raise ValidationFailed(f"There is no pseudonym epoch '{epoch}'.",
                                       {"epoch": f"Use one of {', '.join(e['name'] for e in epochs) or 'none yet'}."})
            if entry["status"] == "current":
                raise ValidationFailed(f"Epoch '{epoch}' is the current one: rotate to a new epoch first.",
                                       {"epoch": "Run the rotation, then destroy the retired epoch."})
            self._shred(epoch)
            if entry["status"] != "destroyed":
                entry["status"] = "destroyed"
                entry["destroyed"] = self._now()

    def _key(self, epoch: str) -> bytes:
        key = self._keys.get(epoch)
        if key is not None:
            return key
        path = self._key_path(epoch)
        if not path.exists():
            status = next((e["status"] for e in self._read() if e["name"] == epoch), None)
            if status == "destroyed":
                raise KeyDestroyed(f"The key of epoch '{epoch}' was destroyed: its pseudonyms cannot be "
                                   "recomputed or linked to anyone any more.")
            raise ValidationFailed(f"There is no pseudonym epoch '{epoch}'.",
                                   {"epoch": f"Use one of {', '.join(self.live_epochs()) or 'none yet'}."})
        key = bytes.fromhex(path.read_text().strip())
        self._keys[epoch] = key
        return key

    def _keyed(self, epoch: str) -> tuple[Any, Any]:
        """The SHA-256 states after (key XOR ipad) and (key XOR opad): HMAC's key setup, done once per epoch."""
        states = self._states.get(epoch)
        if states is None:
            block = self._key(epoch).ljust(64, b"\0")  # a 32-byte key is shorter than SHA-256's 64-byte block
            states = (hashlib.sha256(bytes(b ^ 0x36 for b in block)), hashlib.sha256(bytes(b ^ 0x5C for b in block)))
            self._states[epoch] = states
        return states

    def _digester(self, epoch: str) -> Callable[[bytes], str]:
        """A function from the HMAC input bytes to the truncated hex pseudonym, in this epoch."""
        inner, outer = self._keyed(epoch)

        def digest(message: bytes) -> str:
            first = inner.copy()
            first.update(message)
            second = outer.copy()
            second.update(first.digest())
            return second.hexdigest()[:TRUNCATION_HEX]

        return digest

    def pseudonym(self, kind: str, value: str, *, epoch: str | None = None) -> str:
        """The pseudonym of an identifier in an epoch (default: the current one)."""
        canonical = normalise(kind, value)
        return self._digester(epoch or self.current_epoch())(f"{kind}\x1f{canonical}".encode())

    def pseudonym_table(self, kind: str, values: Iterable[Any], epochs: Sequence[str], *,
                        progress: Callable[[int], None] | None = None) -> tuple[list[tuple[str, ...]], list[int]]:
        """For each distinct identifier among ``values``, its pseudonym in each of ``epochs`` (in that order),
        and the 1-based positions of the values that are not valid identifiers of ``kind``.

        Empty values (None or blank) are skipped. ``progress(n)``, if given, is called as values are done.
        """
        if kind not in KINDS:
            normalise(kind, "")  # the message naming the kinds
        digesters = [self._digester(epoch) for epoch in epochs]
        prefix = f"{kind}\x1f"
        seen: set[str] = set()
        out: list[tuple[str, ...]] = []
        bad: list[int] = []
        done = 0
        for position, value in enumerate(values, start=1):
            done += 1
            if progress is not None and done == 10_000:
                progress(done)
                done = 0
            if value is None:
                continue
            text = value.strip() if isinstance(value, str) else str(value).strip()
            if not text:
                continue
            canonical = _nhs_canonical(text) if kind == "nhs_number" else None
            if canonical is None:
                try:
                    canonical = normalise(kind, text)
                except ValidationFailed:
                    bad.append(position)
                    continue
            if canonical in seen:
                continue
            seen.add(canonical)
            message = (prefix + canonical).encode()
            out.append(tuple(digest(message) for digest in digesters))
        if progress is not None and done:
            progress(done)
        return out, bad

    def pseudonyms_of(self, kind: str, value: str) -> dict[str, str]:
        """The identifier's pseudonym in every live epoch (to find a person's rows), newest epoch first."""
        normalise(kind, value)
        if not self.live_epochs():
            self.current_epoch()
        return {epoch: self.pseudonym(kind, value, epoch=epoch) for epoch in self.live_epochs()}

    def parameters(self) -> dict[str, Any]:
        """The published parameters: algorithm, truncation, k and every epoch's status; never a key."""
        return {
            "algorithm": ALGORITHM,
            "input": "identifier kind, the byte 0x1F, then the normalised identifier, UTF-8",
            "truncation": {"hex_characters": TRUNCATION_HEX, "bits": TRUNCATION_HEX * 4},
            "key_bits": KEY_BYTES * 8,
            "kinds": {kind: KIND_LABELS[kind] for kind in KINDS},
            "normalisation": {
                "nhs_number": "spaces and hyphens removed; 10 digits with a valid Modulus 11 check digit",
                "uprn": "spaces and leading zeros removed; a whole number of up to 12 digits",
                "mac": "separators removed, lower case, written as six colon-separated pairs",
                "email": "white space removed, lower case",
            },
            "epochs": [{k: e.get(k) for k in ("name", "status", "created", "retired", "destroyed")}
                       for e in self._read()],
            "rotation": "quarterly; a retired epoch's key is destroyed once its data's retention ends",
            "k": minimum_group_sizes(),
        }
