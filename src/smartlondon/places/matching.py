"""The name matcher: find places by any of their names or identifiers, tolerating typos.

A ``MatchIndex`` is built in memory from ``MatchRecord``s (the register's contract in
``places.records``). Names are normalised (case, accents, apostrophes, punctuation, ``&``, common
abbreviations, generic suffixes such as "station" or "LU"), each normalised name is indexed by its
tokens, and a query only scores the places that share a token with it (or with a close spelling of
one of its tokens), so a search never scans the whole register.

Scores run from 0 to 100 and keep this order: identifier or exact preferred name (100; 99 for its
core without "station"/"LU"/a note in brackets, 96 for the part after " - ") > exact alternative
name (95-98) > prefix (85-95) > every query word present (75-85) > fuzzy (at most 85).
Proximity to a point adds up to 5 (never lifting a non-exact hit to 100). ``match`` is true when the
best candidate is confidently better than the next.

``IndexCache`` keeps one index per database and rebuilds it when the register's version stamp
changes (see ``docs/places-matching.md``).
"""

from __future__ import annotations

import heapq
import math
import re
import threading
import time
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz, process

from ..core.errors import BadRequest
from .records import MatchRecord

# One spelling for each common abbreviation (the key) or variant spelling.
ABBREVIATIONS: dict[str, str] = {
    "x": "cross", "xing": "crossing", "rd": "road", "stn": "station", "sta": "station",
    "ctr": "centre", "cntr": "centre", "center": "centre", "upr": "upper", "lwr": "lower",
    "gdns": "gardens", "gdn": "garden", "ln": "lane", "sq": "square", "pk": "park", "ave": "avenue",
    "av": "avenue", "tce": "terrace", "terr": "terrace", "pl": "place", "cres": "crescent",
    "grn": "green", "hse": "house", "ct": "court", "mkt": "market", "jn": "junction", "jct": "junction",
    "bdwy": "broadway", "hts": "heights", "nth": "north", "sth": "south", "gt": "great", "int": "international",
    "intl": "international", "tfl": "tfl", "hosp": "hospital", "univ": "university", "mt": "mount",
    "rly": "railway", "bdg": "bridge",
    # "St" is saint or street; both (and the spelt-out words) become one token, so "St. Pancras",
    # "Saint Pancras" and "Oxford St" / "Oxford Street" meet in the index.
    "st": "st", "saint": "st", "street": "st", "ste": "st",
}

# Words that say what kind of thing a name is rather than which one; stripped for the core name.
GENERIC_SUFFIXES: tuple[tuple[str, ...], ...] = (
    ("underground", "station"), ("tube", "station"), ("rail", "station"), ("railway", "station"),
    ("overground", "station"), ("dlr", "station"), ("tram", "stop"), ("tram", "station"), ("station",),
    ("lu",), ("nr",), ("tfl",), ("el",), ("dlr",), ("lo",), ("tram",), ("line",),
)
LINE_NOTE = re.compile(r"\((?:[^()]*\b(?:line|lines|branch|dlr|overground|underground)\b[^()]*)\)", re.I)

# Well-known three-letter station codes of London's main termini (National Rail CRS codes),
# accepted as whole queries.
STATION_CODES: dict[str, str] = {
    "kgx": "kings cross", "stp": "st pancras", "eus": "euston", "pad": "paddington", "lst": "liverpool st",
    "wat": "waterloo", "vic": "victoria", "chx": "charing cross", "lbg": "london bridge",
    "mye": "marylebone", "fst": "fenchurch st", "cst": "cannon st", "bfr": "blackfriars",
    "sfa": "stratford", "clj": "clapham junction",
}

_APOSTROPHES = re.compile(r"[\u2019\u2018\u02bc'`\u00b4]")
_NON_WORD = re.compile(r"[^a-z0-9]+")
_TERMINAL = re.compile(r"^t([0-9])$")
_TRAILING_NOTE = re.compile(r"\s*\([^()]*\)\s*$")


def _fold(text: str) -> str:
    """Lower case, accents removed, apostrophes dropped, ``&``/``+`` spelt ``and``."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = _APOSTROPHES.sub("", text)
    return text.replace("&", " and ").replace("+", " and ")


def tokens(text: str) -> list[str]:
    """The normalised words of ``text``, abbreviations expanded."""
    words = _NON_WORD.split(_fold(LINE_NOTE.sub(" ", text)))
    out: list[str] = []
    for word in words:
        if not word:
            continue
        terminal = _TERMINAL.match(word)
        if terminal:  # "T5" -> "terminal 5"
            out.extend(("terminal", terminal.group(1)))
            continue
        out.extend(ABBREVIATIONS.get(word, word).split())
    return out


def normalise(text: str) -> str:
    """The comparable form of a name: ``"King's X St. Pancras"`` -> ``"kings cross st pancras"``."""
    return " ".join(tokens(text))


def core_name(words: list[str]) -> list[str]:
    """``words`` without trailing generic suffixes ("station", "LU", ...), never emptied."""
    words = list(words)
    changed = True
    while changed:
        changed = False
        for suffix in GENERIC_SUFFIXES:
            n = len(suffix)
            if len(words) > n and tuple(words[-n:]) == suffix:
                words = words[:-n]
                changed = True
                break
    return words


def name_forms(name: str) -> list[tuple[str, int]]:
    """Every normalised form a name is indexed under, with how far it is from the name as written:
    0 the whole name, 1 its core (generic suffixes stripped), 2 the part after " - "."""
    words = tokens(name)
    forms = [(" ".join(words), 0)]
    # the core drops generic suffixes and a trailing note in brackets: "Edgware Road (Bak)" -> "edgware road"
    core = " ".join(core_name(tokens(_TRAILING_NOTE.sub(" ", name)) or words))
    if core and core != forms[0][0]:
        forms.append((core, 1))
    # "Barking and Dagenham - Rush Green" (LAQN site names): the part after the dash is a name too
    if " - " in name:
        tail = " ".join(core_name(tokens(name.split(" - ", 1)[1])))
        if tail and all(tail != f for f, _ in forms):
            forms.append((tail, 2))
    return [(f, d) for f, d in forms if f]


def identifier_key(value: str) -> str:
    """The comparable form of an identifier: upper case, no spaces."""
    return re.sub(r"\s+", "", value).upper()


@dataclass(frozen=True)
class Candidate:
    """One place that may be the one a query means."""

    record: MatchRecord
    score: float           # 0-100
    how: str               # "identifier", "exact", "alt", "prefix", "words", "fuzzy"
    matched_name: str      # the name (as written in the register) that matched
    match: bool = False    # true for the best candidate when it is confidently the one

    def as_dict(self) -> dict[str, Any]:
        """The candidate as the JSON APIs show it."""
        r = self.record
        return {"uid": r.uid, "name": r.name, "kind": r.kind, "score": round(self.score, 1), "match": self.match,
                "how": self.how, "matched_name": self.matched_name, "areas": dict(r.areas),
                "lon": r.lon, "lat": r.lat}


@dataclass
class _Entry:
    record: MatchRecord
    forms: list[tuple[str, str, int]] = field(default_factory=list)  # (normalised form, name as written, distance)


class MatchIndex:
    """An in-memory index of places by name, name tokens and identifiers; places can be added and
    removed one at a time (``add``, ``remove``) without rebuilding it."""

    def __init__(self, records: Iterable[MatchRecord]) -> None:
        import bisect

        started = time.perf_counter()
        self._bisect = bisect
        self.entries: list[_Entry | None] = []  # None: removed (its postings are skipped, then compacted away)
        self.by_uid: dict[str, int] = {}
        self.by_form: dict[str, list[int]] = defaultdict(list)
        self.by_token: dict[str, list[int]] = defaultdict(list)
        self.by_identifier: dict[str, list[int]] = defaultdict(list)
        self.kinds: dict[str, int] = defaultdict(int)
        self.removed = 0
        self._sets: dict[str, set[int]] = {}
        self.vocabulary: list[str] = []
        self.sorted_forms: list[str] = []
        for record in records:
            self._insert(record)
        self._sort()
        self.build_seconds = time.perf_counter() - started

    def _sort(self) -> None:
        self.vocabulary = sorted(self.by_token)
        self.sorted_forms = sorted(self.by_form)

    def _insert(self, record: MatchRecord) -> tuple[set[str], set[str]]:
        """Index one record; returns the tokens and forms it brought that the index did not know."""
        i = len(self.entries)
        entry = _Entry(record)
        names = [(record.name, True)] + [(alt, False) for alt in record.alt_names if alt]
        seen_tokens: set[str] = set()
        new_forms: set[str] = set()
        for original, preferred in names:
            for form, derived in name_forms(original):
                entry.forms.append((form, original, derived + (0 if preferred else 3)))
                postings = self.by_form.get(form)
                if postings is None:
                    postings = self.by_form[form] = []
                    new_forms.add(form)
                if not postings or postings[-1] != i:
                    postings.append(i)
                seen_tokens.update(form.split())
        new_tokens = {tok for tok in seen_tokens if tok not in self.by_token}
        for tok in seen_tokens:
            self.by_token[tok].append(i)
            held = self._sets.get(tok)
            if held is not None:
                held.add(i)
        for key in self._identifier_keys(record):
            self.by_identifier[key].append(i)
        self.by_uid[record.uid] = i
        self.kinds[record.kind] += 1
        self.entries.append(entry)
        return new_tokens, new_forms

    @staticmethod
    def _identifier_keys(record: MatchRecord) -> list[str]:
        keys = [identifier_key(record.uid)]
        for scheme, values in record.identifiers.items():
            for value in values:
                for key in (identifier_key(value), identifier_key(f"{scheme}:{value}")):
                    if key not in keys:
                        keys.append(key)
        return keys

    def add(self, record: MatchRecord) -> None:
        """Index a new or changed place (a place already indexed under the same uid is replaced)."""
        self.remove(record.uid)
        new_tokens, new_forms = self._insert(record)
        for tok in new_tokens:
            self._bisect.insort(self.vocabulary, tok)
        for form in new_forms:
            self._bisect.insort(self.sorted_forms, form)

    def remove(self, uid: str) -> bool:
        """Take a place out of the index (retired, or about to be replaced); whether it was there."""
        i = self.by_uid.pop(uid, None)
        if i is None:
            return False
        entry = self.entries[i]
        assert entry is not None
        for key in self._identifier_keys(entry.record):
            postings = self.by_identifier.get(key)
            if postings and i in postings:
                postings.remove(i)
                if not postings:
                    del self.by_identifier[key]
        self.kinds[entry.record.kind] -= 1
        if self.kinds[entry.record.kind] <= 0:
            del self.kinds[entry.record.kind]
        self.entries[i] = None  # token and form postings still hold i: they are skipped when read
        self.removed += 1
        return True

    def apply(self, removed: Iterable[str], records: Iterable[MatchRecord]) -> None:
        """Remove the places ``removed`` (uids), then add (or replace) ``records``."""
        for uid in removed:
            self.remove(uid)
        for record in records:
            self.add(record)
        if self.removed > max(1000, len(self.entries) // 5):  # compact: drop the removed entries' postings
            self.__init__([e.record for e in self.entries if e is not None])  # type: ignore[misc]

    def _live(self, ids: Iterable[int]) -> list[int]:
        return [i for i in ids if self.entries[i] is not None]

    def __len__(self) -> int:
        return len(self.entries) - self.removed

    def record(self, uid: str) -> MatchRecord | None:
        """The place with this uid, if indexed."""
        i = self.by_uid.get(uid)
        entry = self.entries[i] if i is not None else None
        return entry.record if entry is not None else None

    # --- identifiers ---------------------------------------------------------------------------

    def lookup_identifier(self, value: str) -> list[MatchRecord]:
        """Places that carry ``value`` as an identifier (uid, GSS code, NLC, LAQN code ...)."""
        return [self.entries[i].record for i in self._live(self.by_identifier.get(identifier_key(value), []))]  # type: ignore[union-attr]

    def resolve_area(self, area: str) -> MatchRecord:
        """The area meant by a uid, a code or an exact name; 400 if there is none or several."""
        area = (area or "").strip()
        found = self.lookup_identifier(area)
        if not found:
            form = normalise(area)
            found = [self.entries[i].record for i in self._live(self.by_form.get(form, []))  # type: ignore[union-attr]
                     if self.entries[i].record.kind in AREA_KINDS]  # type: ignore[union-attr]
        if not found:
            raise BadRequest(f"No area is called or coded '{area}'. Give a borough, ward, MSOA or LSOA name, "
                             "its GSS code (like E09000007) or its ldn: identifier.", {"area": "Not found."})
        if len({r.uid for r in found}) > 1:
            raise BadRequest(f"'{area}' names more than one area. Use its GSS code or ldn: identifier.",
                             {"area": "Ambiguous."})
        return found[0]

    # --- search ----------------------------------------------------------------------------------

    def search(self, query: str, kind: str | Iterable[str] | None = None, area: str | None = None,
               near: tuple[float, float] | None = None, limit: int = 10,
               prefer_areas: dict[str, str] | None = None) -> list[Candidate]:
        """The best candidates for ``query``, best first; the first has ``match`` set when it is sure.

        ``kind`` and ``area`` filter (an area is a uid, a code or an exact name); ``near`` (lon, lat)
        and ``prefer_areas`` (area kind -> uid, e.g. the borough a spreadsheet row names) boost.
        """
        query = (query or "").strip()
        if not query:
            return []
        limit = max(1, min(int(limit), 100))
        kinds = {kind} if isinstance(kind, str) else (set(kind) if kind else None)
        area_uid = self.resolve_area(area).uid if area else None

        def allowed(record: MatchRecord) -> bool:
            if kinds and record.kind not in kinds:
                return False
            return area_uid is None or area_uid in record.areas.values()

        scored: dict[int, Candidate] = {}
        for i in self._live(self.by_identifier.get(identifier_key(query), [])):
            rec = self.entries[i].record  # type: ignore[union-attr]
            if allowed(rec):
                scored[i] = Candidate(rec, 100.0, "identifier", query)

        q_words = tokens(STATION_CODES.get(query.lower(), query))
        q_forms = {" ".join(q_words), " ".join(core_name(q_words))} - {""}
        for i in self._candidate_ids(q_words, q_forms):
            entry = self.entries[i]
            if i in scored or entry is None:
                continue
            if not allowed(entry.record):
                continue
            best = self._score(entry, q_forms)
            if best is not None:
                scored[i] = best

        ranked = [self._boost(c, near, prefer_areas) for c in scored.values()]
        ranked.sort(key=lambda c: (-c.score, c.record.name, c.record.uid))
        ranked = ranked[:limit]
        if ranked and _confident(ranked):
            ranked[0] = Candidate(ranked[0].record, ranked[0].score, ranked[0].how, ranked[0].matched_name, True)
        return ranked

    def _candidate_ids(self, q_words: list[str], q_forms: set[str]) -> set[int]:
        """Places sharing a form, a prefix, a word or a close spelling of a word with the query."""
        ids: set[int] = set()
        for form in q_forms:
            ids.update(self.by_form.get(form, ()))
            ids.update(self._prefixed(form))
        total = len(self.entries) or 1
        found: list[tuple[int, str, float]] = []  # (postings, word, similarity)
        for word in set(q_words):
            variants = [(word, 1.0)] if word in self.by_token else []
            if len(word) >= 4 and not any(ch.isdigit() for ch in word):
                # typos: the closest spellings in the vocabulary (fewer, closer ones for a known word)
                cutoff, most = (85, 2) if variants else (75, 4)
                for other, similarity, _ in process.extract(word, self.vocabulary, scorer=fuzz.ratio,
                                                            score_cutoff=cutoff, limit=most):
                    if other != word:
                        variants.append((other, similarity / 100))
            found.extend((len(self.by_token[other]), other, weight) for other, weight in variants)
        # rarest words first: their places are the candidates; a common word ("road", "lane") only adds
        # its weight to candidates already found (a set lookup each), instead of walking its postings
        weights: dict[int, float] = {}
        scanned = 0
        for n, other, weight in sorted(found):
            gain = weight * math.log(1 + total / n)
            if not weights or scanned + n <= SCAN_BUDGET:
                for i in self.by_token[other][:CANDIDATE_POSTINGS_CAP]:
                    weights[i] = weights.get(i, 0.0) + gain
                scanned += min(n, CANDIDATE_POSTINGS_CAP)
            else:
                members = self._posting_set(other)
                for i in weights:
                    if i in members:
                        weights[i] += gain
        best = heapq.nlargest(MAX_CANDIDATES, weights.items(), key=lambda kv: kv[1])
        ids.update(i for i, _ in best)
        return ids

    def _posting_set(self, token: str) -> set[int]:
        """The places with ``token``, as a set (kept for common words, updated as places are added)."""
        held = self._sets.get(token)
        if held is None:
            if len(self._sets) >= 5000:
                self._sets.clear()
            held = self._sets[token] = set(self.by_token.get(token, ()))
        return held

    def _prefixed(self, form: str, cap: int = 50) -> list[int]:
        """Places with a name form starting with ``form`` (at a word boundary), at most ``cap``."""
        import bisect

        if len(form) < 3:
            return []
        out: list[int] = []
        start = bisect.bisect_left(self.sorted_forms, form)
        for other in self.sorted_forms[start:start + cap]:
            if not other.startswith(form):
                break
            if len(other) == len(form) or other[len(form)] == " ":
                out.extend(self.by_form[other])
        return out

    def _score(self, entry: _Entry, q_forms: set[str]) -> Candidate | None:
        """How well the best of the entry's names fits the query."""
        best: Candidate | None = None
        for form, original, distance in entry.forms:
            for q in q_forms:
                score, how = _compare(q, form, distance)
                if score and (best is None or score > best.score):
                    best = Candidate(entry.record, score, how, original)
        return best if best is not None and best.score >= MIN_SCORE else None

    @staticmethod
    def _boost(c: Candidate, near: tuple[float, float] | None, prefer_areas: dict[str, str] | None) -> Candidate:
        score = c.score
        if prefer_areas:
            hits = sum(1 for k, uid in prefer_areas.items() if c.record.areas.get(k) == uid or c.record.uid == uid)
            score += 6 * hits if hits else -6
        if near is not None and c.record.lon is not None and c.record.lat is not None:
            km = _km(near, (c.record.lon, c.record.lat))
            score += max(0.0, 5.0 * (1 - km / 10))
        ceiling = 100.0 if c.how in ("identifier", "exact", "alt") else 99.0
        score = max(0.0, min(score, ceiling))
        return Candidate(c.record, round(score, 2), c.how, c.matched_name, c.match)


AREA_KINDS = ("borough", "ward", "msoa", "lsoa")
MIN_SCORE = 50.0
MAX_CANDIDATES = 150
CANDIDATE_POSTINGS_CAP = 20000
SCAN_BUDGET = 5000  # postings walked per query beyond the rarest word; commoner words are set lookups


EXACT_SCORES = (100.0, 99.0, 96.0, 98.0, 97.0, 95.0)  # by distance: preferred name, its core, its part; alt ...


def _compare(q: str, form: str, distance: int) -> tuple[float, str]:
    """Score one query form against one name form (``distance`` 0-2 preferred name, 3-5 alternative)."""
    preferred = distance < 3
    if q == form:
        return EXACT_SCORES[distance], "exact" if preferred else "alt"
    if len(q) >= 3 and form.startswith(q + " "):
        return 85.0 + 10.0 * len(q) / len(form), "prefix"
    q_words, f_words = q.split(), form.split()
    if set(q_words) <= set(f_words):
        return 75.0 + 10.0 * len(q) / len(form), "words"
    raw = max(fuzz.ratio(q, form), fuzz.token_sort_ratio(q, form),
              0.95 * fuzz.token_set_ratio(q, form) if len(q_words) > 1 else 0)
    return min(85.0, 0.85 * raw + (2.0 if preferred else 0.0)), "fuzzy"


def _confident(ranked: list[Candidate]) -> bool:
    """Whether the first candidate is confidently the one."""
    best = ranked[0]
    second = ranked[1].score if len(ranked) > 1 else 0.0
    if best.how in ("identifier", "exact", "alt") and best.score >= 95:
        return second < best.score
    return best.score >= 75 and best.score - second >= 8


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in kilometres between two (lon, lat) points."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 12742 * math.asin(math.sqrt(h))


class IndexCache:
    """One index per database, brought up to date when the register's version stamp changes: in place
    with only the changed places when it can be (``update``), otherwise rebuilt."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._indexes: dict[str, tuple[Any, MatchIndex]] = {}
        self.rebuilds = 0  # full builds so far (incremental updates do not count)

    def get(self, key: str, stamp: Any, load: Callable[[], Iterable[MatchRecord]],
            update: Callable[[Any, MatchIndex], bool] | None = None) -> MatchIndex:
        """The index for ``key``; if ``stamp`` differs from the last one, ``update(old_stamp, index)``
        patches it in place (returning True), else it is rebuilt from ``load()``."""
        with self._lock:
            held = self._indexes.get(key)
            if held is not None and held[0] == stamp:
                return held[1]
            if held is not None and update is not None and update(held[0], held[1]):
                self._indexes[key] = (stamp, held[1])
                return held[1]
            index = MatchIndex(load())
            self.rebuilds += 1
            self._indexes[key] = (stamp, index)
            return index

    def clear(self) -> None:
        """Forget every index (they are rebuilt on next use)."""
        with self._lock:
            self._indexes.clear()


CACHE = IndexCache()
MAX_INCREMENTAL = 50_000  # more changed places than this since the last look: rebuild instead


# --- the register's index -----------------------------------------------------------------------

def register_stamp(session: Any) -> tuple[Any, ...]:
    """What changes whenever a place, a name or an identifier is added or a place is changed: the
    newest row ids and change time (maxima of indexed columns, so cheap on a register of millions),
    and the uid of the newest place (so a database emptied and refilled is noticed)."""
    from sqlalchemy import func, select

    from .models import Place, PlaceIdentifier, PlaceName, PlaceVersion

    newest = select(func.max(Place.id)).scalar_subquery()
    row = session.execute(select(
        newest, select(func.max(Place.updated_at)).scalar_subquery(),
        select(func.max(PlaceName.id)).scalar_subquery(), select(func.max(PlaceIdentifier.id)).scalar_subquery(),
        select(func.max(PlaceVersion.id)).scalar_subquery(),
        select(Place.uid).where(Place.id == newest).scalar_subquery())).one()
    return tuple(row)


def changed_place_ids(session: Any, old: tuple[Any, ...]) -> set[int] | None:
    """Ids of the places added or changed since the stamp ``old`` was read; None if that cannot be told
    (the register was emptied and refilled, or too much changed) and the index must be rebuilt."""
    from sqlalchemy import func, or_, select

    from .models import Place, PlaceIdentifier, PlaceName, PlaceVersion

    if len(old) != 6 or old[0] is None or old[1] is None:
        return None
    max_id, updated, name_id, ident_id, version_id, uid = old
    name_id, ident_id, version_id = name_id or 0, ident_id or 0, version_id or 0
    if session.scalar(select(Place.uid).where(Place.id == max_id)) != uid:
        return None
    found = select(Place.id).where(or_(Place.id > max_id, Place.updated_at >= updated))
    names = select(PlaceName.place_id).where(PlaceName.id > name_id)
    idents = select(PlaceIdentifier.place_id).where(PlaceIdentifier.id > ident_id)
    versions = select(PlaceVersion.place_id).where(PlaceVersion.id > version_id)
    union = found.union(names, idents, versions).subquery()
    if session.scalar(select(func.count()).select_from(union)) > MAX_INCREMENTAL:
        return None
    return set(session.scalars(select(union.c[0])))


def register_index(session: Any, cache: IndexCache | None = None) -> MatchIndex:
    """The index of the register's active places, updated with the places changed since it was last read."""
    from sqlalchemy import select

    from . import service
    from .models import Place

    cache = cache or CACHE
    key = str(session.get_bind().url)

    def update(old: tuple[Any, ...], index: MatchIndex) -> bool:
        ids = changed_place_ids(session, old)
        if ids is None:
            return False
        ordered = sorted(ids)
        uids = [uid for start in range(0, len(ordered), 5000)
                for uid in session.scalars(select(Place.uid).where(Place.id.in_(ordered[start:start + 5000])))]
        index.apply(uids, service.iter_match_records(session, place_ids=ids))
        return True

    return cache.get(key, register_stamp(session), lambda: list(service.iter_match_records(session)), update)


# --- matching a table ----------------------------------------------------------------------------

MATCH_COLUMNS = ("match_uid", "match_name", "match_kind", "score", "matched", "alternatives")


def match_rows(index: MatchIndex, rows: Iterable[dict[str, str]], column: str, kind: str | None = None,
               area: str | None = None) -> Iterable[dict[str, str]]:
    """Each row with its best match, score, whether it is confident, and the next three candidates."""
    for row in rows:
        value = (row.get(column) or "").strip()
        found = index.search(value, kind=kind, area=area, limit=4) if value else []
        best = found[0] if found else None
        out = dict(row)
        out.update({
            "match_uid": best.record.uid if best else "",
            "match_name": best.record.name if best else "",
            "match_kind": best.record.kind if best else "",
            "score": f"{best.score:.1f}" if best else "",
            "matched": "true" if best is not None and best.match else "false",
            "alternatives": ";".join(f"{c.record.uid}|{c.record.name}|{c.score:.1f}" for c in found[1:4]),
        })
        yield out
