"""The scorecard's rules: what each check asks, and how a dataset passes or fails it, with the reason.

Plain functions over :class:`DatasetFacts` (what the platform knows about a dataset, gathered by
``scores.py``), so every rule can be read and tested on its own. Each check ends in one of four
states: ``pass``, ``fail``, ``not-applicable`` (the question does not arise: a historical dataset
cannot be late) or ``not-checked`` (the question arises but the platform has no answer yet, such as
a link the link checker has not visited). The overall score counts only passes and failures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ...core.reference import FREQUENCIES, GEOGRAPHIES
from ..formats import display_format

PASS, FAIL, NOT_APPLICABLE, NOT_CHECKED = "pass", "fail", "not-applicable", "not-checked"
STATUSES = (PASS, FAIL, NOT_APPLICABLE, NOT_CHECKED)
STATUS_LABELS = {PASS: "Passed", FAIL: "Failed", NOT_APPLICABLE: "Not applicable", NOT_CHECKED: "Not checked yet"}


@dataclass(frozen=True)
class Check:
    """One question of the scorecard."""

    name: str
    title: str
    question: str


CHECKS: tuple[Check, ...] = (
    Check("licence", "Open licence", "Is it published under an open licence?"),
    Check("openness", "Open format", "Is at least one resource structured data in an open format (3 stars or more)?"),
    Check("links", "Links work", "Do its files and links still work?"),
    Check("timeliness", "Up to date", "Has it been updated as often as it says it will be?"),
    Check("metadata", "Well described", "Are the recommended descriptive fields filled in?"),
    Check("schema", "Valid tables", "Do its tables match their schema?"),
    Check("dcat", "DCAT-AP valid", "Does its DCAT-AP record pass the official shapes?"),
    Check("gss", "GSS area codes", "Do tables of data by area carry GSS codes?"),
)
CHECK_NAMES = tuple(c.name for c in CHECKS)
CHECK_TITLES = {c.name: c.title for c in CHECKS}

# Ratings of the overall score (the percentage of checks passed, of those that could be decided).
RATINGS: tuple[tuple[str, str, int], ...] = (
    ("excellent", "Excellent", 90), ("good", "Good", 70), ("fair", "Fair", 50), ("poor", "Poor", 0),
)
RATING_LABELS = {key: label for key, label, _ in RATINGS} | {"unrated": "Not rated yet"}

# --- openness stars (Berners-Lee's 5-star scheme) ------------------------------------------------------

RDF_FORMATS = frozenset({"RDF", "TTL", "TURTLE", "JSON-LD", "JSONLD", "NT", "N-TRIPLES", "N3", "NQ", "TRIG",
                         "RDF+XML", "OWL"})
OPEN_STRUCTURED = frozenset({"CSV", "TSV", "JSON", "GEOJSON", "PARQUET", "XML", "ODS", "KML", "KMZ", "GML",
                             "GPKG", "SQLITE", "WMS", "WFS", "NDJSON", "JSONL", "ICS", "GTFS", "NETCDF", "AVRO"})
PROPRIETARY_STRUCTURED = frozenset({"XLSX", "XLS", "XLSB", "XLSM", "SHP", "ZIP-SHP", "DBF", "MDB", "ACCDB", "SAV",
                                    "DTA", "SAS7BDAT", "GDB", "TAB", "MAPINFO"})
TABULAR_FORMATS = frozenset({"CSV", "XLSX", "PARQUET"})  # what the tabular store loads and validates
AREA_GEOGRAPHIES = ("borough", "ward", "msoa", "lsoa")
STAR_MEANINGS = {
    0: "not under an open licence, so it earns no stars",
    1: "on the web under an open licence, but not structured data a computer can read",
    2: "structured data, but in a proprietary format",
    3: "structured data in an open, non-proprietary format",
    4: "RDF, which names things with URIs so others can point at them",
    5: "linked data: RDF that links to other people's data for context",
}


def format_stars(fmt: str, linked: bool | None = None) -> int:
    """The stars a resource of this format earns under an open licence (1 to 5)."""
    key = (fmt or "").strip().upper()
    if key in RDF_FORMATS:
        return 5 if linked else 4
    if key in OPEN_STRUCTURED:
        return 3
    if key in PROPRIETARY_STRUCTURED:
        return 2
    return 1


# --- what the rules look at -----------------------------------------------------------------------------

@dataclass
class LinkFacts:
    """The link checker's last look at a resource."""

    target: str
    alive: bool | None
    status_code: int | None
    error: str
    checked_at: datetime
    links_out: bool | None = None


@dataclass
class ResourceFacts:
    """What the rules need of one resource."""

    id: int
    title: str
    kind: str
    format: str
    description: str = ""
    url: str | None = None
    storage_key: str | None = None
    link: LinkFacts | None = None

    @property
    def target(self) -> str:
        """What the link checker checks for this resource: its URL, or its stored file."""
        return f"file:{self.storage_key}" if self.kind == "upload" else (self.url or "")

    @property
    def current_link(self) -> LinkFacts | None:
        """The last link check, if it was of what the resource points at now."""
        return self.link if self.link is not None and self.link.target == self.target else None

    @property
    def label(self) -> str:
        """The resource's title and format, for reasons: ‘Sites’ (CSV)."""
        fmt = display_format(self.format)
        named = fmt and fmt.lower() in self.title.lower()
        return f"‘{self.title}’" + (f" ({fmt})" if fmt and not named else "")


@dataclass
class DcatFacts:
    """The stored DCAT-AP validation of a dataset."""

    valid: bool
    problems: list[str]
    checked_at: datetime
    current: bool  # False if the dataset changed after it was validated


@dataclass
class DatasetFacts:
    """Everything the rules look at for one dataset.

    ``schema``, ``gss`` and ``dcat_available`` are None/False when the part of the platform that
    provides them is not installed: those checks are then "not checked", never failed.
    """

    title: str
    description: str
    licence_title: str
    licence_open: bool
    frequency: str
    modified: datetime
    geography: str
    keywords: int = 0
    themes: int = 0
    contact_email: str = ""
    temporal: bool = False
    spatial: bool = False
    resources: list[ResourceFacts] = field(default_factory=list)
    schema: dict[int, dict[str, Any]] | None = None
    gss: dict[int, list[str]] | None = None
    dcat: DcatFacts | None = None
    dcat_available: bool = False


@dataclass
class CheckResult:
    """The outcome of one check."""

    status: str
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scorecard:
    """A dataset's whole scorecard."""

    stars: int
    checks: dict[str, CheckResult]

    @property
    def passed(self) -> int:
        """How many checks passed."""
        return sum(1 for c in self.checks.values() if c.status == PASS)

    @property
    def failed(self) -> int:
        """How many checks failed."""
        return sum(1 for c in self.checks.values() if c.status == FAIL)

    @property
    def not_checked(self) -> int:
        """How many checks have no answer yet."""
        return sum(1 for c in self.checks.values() if c.status == NOT_CHECKED)

    @property
    def score(self) -> int | None:
        """The percentage of decided checks that passed (None if none was decided)."""
        decided = self.passed + self.failed
        return round(100 * self.passed / decided) if decided else None

    @property
    def rating(self) -> str:
        """The rating of the score: excellent, good, fair, poor (or unrated)."""
        return rating_for(self.score)


def rating_for(score: int | None) -> str:
    """The rating key of an overall score."""
    if score is None:
        return "unrated"
    for key, _, floor in RATINGS:
        if score >= floor:
            return key
    return "poor"


# --- wording ----------------------------------------------------------------------------------------

def _date(value: datetime) -> str:
    return f"{value.day} {value:%B %Y}"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def _listing(items: list[str], limit: int = 3) -> str:
    shown = items[:limit]
    more = len(items) - len(shown)
    text = ", ".join(shown[:-1]) + (" and " if len(shown) > 1 else "") + shown[-1] if shown else ""
    return text + (f" (and {more} more)" if more else "")


def _duration(delta: timedelta) -> str:
    days = delta.days
    if days >= 730:
        return _plural(days // 365, "year")
    if days >= 60:
        return _plural(days // 30, "month")
    if days >= 1:
        return _plural(days, "day")
    return _plural(max(1, int(delta.total_seconds() // 3600)), "hour")


# --- the checks -----------------------------------------------------------------------------------

def check_licence(facts: DatasetFacts) -> CheckResult:
    """Open licence: the licence register says whether its licence is open."""
    if facts.licence_open:
        return CheckResult(PASS, f"Published under the {facts.licence_title}, an open licence: anyone may use, "
                                 "share and adapt the data.")
    return CheckResult(FAIL, f"‘{facts.licence_title}’ is not an open licence, so people cannot be sure they may "
                             "reuse the data. Choose an open licence such as the Open Government Licence.")


def openness(facts: DatasetFacts) -> tuple[int, str, ResourceFacts | None]:
    """The stars of the dataset's best resource, why, and which resource earned them."""
    if not facts.licence_open:
        return 0, "0 stars: it is not under an open licence, and the first star is for an open licence.", None
    if not facts.resources:
        return 0, "0 stars: there is no data to download yet.", None
    best = max(facts.resources, key=lambda r: format_stars(r.format, _linked(r)))
    stars = format_stars(best.format, _linked(best))
    star_text = _plural(stars, "star")
    if not best.format:
        return stars, f"{star_text} from {best.label}: its format is not known, so it counts as a document.", best
    return stars, f"{star_text} from {best.label}: {STAR_MEANINGS[stars]}.", best


def _linked(res: ResourceFacts) -> bool | None:
    link = res.current_link
    return link.links_out if link is not None else None


def check_openness(facts: DatasetFacts) -> CheckResult:
    """Open format: at least 3 stars (structured data in an open format)."""
    stars, reason, best = openness(facts)
    detail: dict[str, Any] = {"stars": stars, "resource": best.id if best else None}
    if stars >= 3:
        return CheckResult(PASS, reason, detail)
    advice = "" if stars == 0 and not facts.licence_open else \
        " Publish it as CSV, JSON, GeoJSON or another open format to earn 3 stars."
    return CheckResult(FAIL, reason + advice, detail)


def check_links(facts: DatasetFacts) -> CheckResult:
    """Links work: every stored file is still there and every link answered the link checker."""
    if not facts.resources:
        return CheckResult(NOT_APPLICABLE, "There are no files or links to check.")
    broken: list[str] = []
    unchecked: list[ResourceFacts] = []
    checked_links: list[datetime] = []
    for res in facts.resources:
        link = res.current_link
        if res.kind == "upload":
            if link is not None and link.alive is False:
                broken.append(f"{res.label}: {link.error or 'its stored file is missing'}")
            continue
        if link is None or link.alive is None:
            unchecked.append(res)
        elif link.alive:
            checked_links.append(link.checked_at)
        else:
            answer = link.error or f"answered {link.status_code}"
            broken.append(f"{res.label} ({res.url}) {answer} when checked on {_date(link.checked_at)}")
    total = len(facts.resources)
    if broken:
        return CheckResult(FAIL, f"{_plural(len(broken), 'resource')} of {total} "
                                 f"{'is' if len(broken) == 1 else 'are'} broken: {_listing(broken)}.",
                           {"broken": len(broken)})
    if unchecked:
        why = [r.current_link.error for r in unchecked if r.current_link is not None and r.current_link.error]
        return CheckResult(NOT_CHECKED, f"{_plural(len(unchecked), 'link')} "
                                        f"{'has' if len(unchecked) == 1 else 'have'} not been checked yet"
                                        + (f" ({why[0]})" if why else "") + ". The link checker visits every link "
                                        "regularly.", {"unchecked": len(unchecked)})
    uploads = total - len(checked_links)
    parts = []
    if uploads:
        parts.append(f"{_plural(uploads, 'file')} stored here")
    if checked_links:
        parts.append(f"{_plural(len(checked_links), 'link')} that answered when last checked on "
                     f"{_date(min(checked_links))}")
    subject = "Its resource works" if total == 1 else f"All {total:,} resources work"
    return CheckResult(PASS, f"{subject}: {' and '.join(parts)}.")


# How often each frequency promises an update, and how much lateness is forgiven.
PERIODS: dict[str, tuple[timedelta, timedelta]] = {
    "hourly": (timedelta(hours=1), timedelta(hours=2)),
    "daily": (timedelta(days=1), timedelta(days=1)),
    "weekly": (timedelta(days=7), timedelta(days=3)),
    "monthly": (timedelta(days=31), timedelta(days=14)),
    "quarterly": (timedelta(days=92), timedelta(days=30)),
    "annual": (timedelta(days=366), timedelta(days=60)),
}


def check_timeliness(facts: DatasetFacts, now: datetime) -> CheckResult:
    """Up to date: last updated within its declared update period plus a grace period."""
    updated = _date(facts.modified)
    if facts.frequency == "never":
        return CheckResult(NOT_APPLICABLE, f"It is marked as not updated (historical), so it cannot be late. "
                                           f"Last updated on {updated}.")
    if facts.frequency not in PERIODS:
        return CheckResult(NOT_APPLICABLE, f"It is updated irregularly, with no schedule to keep, so it cannot "
                                           f"be late. Last updated on {updated}.")
    period, grace = PERIODS[facts.frequency]
    due = facts.modified + period + grace
    label = FREQUENCIES[facts.frequency][0].lower()
    detail = {"due": due.isoformat()}
    if now <= due:
        return CheckResult(PASS, f"Last updated on {updated}. It is updated {label}, so the next update is due "
                                 f"by {_date(due)}.", detail)
    return CheckResult(FAIL, f"Last updated on {updated}, but it is updated {label}: the next update was due by "
                             f"{_date(due)}, so it is {_duration(now - due)} late.", detail)


DESCRIPTION_MIN = 100
METADATA_PASS = 8  # of the 10 recommended fields


def _plain_length(text: str) -> int:
    return len(" ".join(re.sub(r"[#*_`>\[\]()!-]", " ", text or "").split()))


def check_metadata(facts: DatasetFacts) -> CheckResult:
    """Well described: how many of the 10 recommended DCAT-AP fields are filled in."""
    has_resources = bool(facts.resources)
    fields = [
        (f"a description of at least {DESCRIPTION_MIN} characters", _plain_length(facts.description) >= DESCRIPTION_MIN),
        ("keywords", facts.keywords > 0),
        ("themes", facts.themes > 0),
        ("a contact email", bool(facts.contact_email)),
        ("the time period covered", facts.temporal),
        ("the area covered (boroughs or a bounding box)", facts.spatial),
        ("a licence", bool(facts.licence_title)),
        ("an update frequency other than ‘irregularly’ (the default)", facts.frequency != "irregular"),
        ("a description of every resource", has_resources and all(r.description.strip() for r in facts.resources)),
        ("the format of every resource", has_resources and all(r.format for r in facts.resources)),
    ]
    missing = [name for name, ok in fields if not ok]
    filled = len(fields) - len(missing)
    detail = {"filled": filled, "of": len(fields), "missing": missing}
    summary = f"{filled} of {len(fields)} recommended fields are filled in"
    if not missing:
        return CheckResult(PASS, summary + ".", detail)
    status = PASS if filled >= METADATA_PASS else FAIL
    return CheckResult(status, f"{summary}; missing: {_listing(missing, 10)}.", detail)


def _tables(facts: DatasetFacts) -> list[ResourceFacts]:
    return [r for r in facts.resources if (r.format or "").upper() in TABULAR_FORMATS]


def _count(value: Any) -> int:
    if isinstance(value, (list, tuple, dict)):
        return len(value)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


LOAD_STATES = {"pending": "waiting to be loaded", "loading": "being loaded", "not-tabular": "not in the tabular store"}


def check_schema(facts: DatasetFacts) -> CheckResult:
    """Valid tables: every CSV, Excel and Parquet resource passed validation against its schema."""
    tables = _tables(facts)
    if not tables:
        return CheckResult(NOT_APPLICABLE, "It has no CSV, Excel or Parquet tables to validate.")
    if facts.schema is None:
        return CheckResult(NOT_CHECKED, "Table validation is not available on this installation yet.")
    invalid, pending, rows = [], [], 0
    states = table_states(facts)
    for res in tables:
        summary = facts.schema.get(res.id)
        if not summary or summary.get("valid") is None:
            state = str((summary or {}).get("status") or "not-tabular")
            if state == "not-tabular" and res.kind == "link":
                pending.append(f"{res.label} (a link: linked tables are validated once loaded into the tabular store)")
            elif state == "not-tabular":
                pending.append(f"{res.label} (waiting to be loaded)")
            else:
                pending.append(f"{res.label} ({LOAD_STATES.get(state, state)})")
            continue
        rows += _count(summary.get("rows"))
        if not summary["valid"]:
            errors = _count(summary.get("errors"))
            invalid.append(f"{res.label} has {_plural(errors, 'problem')}" if errors else f"{res.label} is not valid")
    if invalid:
        return CheckResult(FAIL, f"{_listing(invalid)}: see its validation report.",
                           {"invalid": len(invalid), "states": states})
    if pending:
        return CheckResult(NOT_CHECKED, f"Not validated yet: {_listing(pending)}.", {"states": states})
    subject = "Its table matches its schema" if len(tables) == 1 else f"All {len(tables):,} tables match their schema"
    return CheckResult(PASS, f"{subject} ({_plural(rows, 'row')}).", {"states": states})


def table_states(facts: DatasetFacts) -> dict[str, str]:
    """Where each table stands in the tabular store, to notice when a load has finished."""
    found = facts.schema or {}
    return {str(r.id): f"{(found.get(r.id) or {}).get('status')}:{(found.get(r.id) or {}).get('valid')}"
            for r in _tables(facts)}


def check_dcat(facts: DatasetFacts) -> CheckResult:
    """DCAT-AP valid: the stored SHACL validation of its current record found no violations."""
    dcat = facts.dcat
    if dcat is None:
        if not facts.dcat_available:
            return CheckResult(NOT_CHECKED, "DCAT-AP validation is not available on this installation yet.")
        return CheckResult(NOT_CHECKED, "Its DCAT-AP record has not been validated yet; the next scoring run "
                                        "will do it.")
    if not dcat.current:
        return CheckResult(NOT_CHECKED, f"It changed after its DCAT-AP record was last validated on "
                                        f"{_date(dcat.checked_at)}; the next scoring run will validate it again.")
    if dcat.valid:
        return CheckResult(PASS, f"Its DCAT-AP 3 record passes the official SHACL shapes (validated on "
                                 f"{_date(dcat.checked_at)}).")
    first = dcat.problems[0] if dcat.problems else "see the validation report"
    return CheckResult(FAIL, f"Its DCAT-AP record breaks {_plural(len(dcat.problems), 'rule')} of the official "
                             f"shapes, for example: {first}", {"problems": dcat.problems[:20]})


def check_gss(facts: DatasetFacts) -> CheckResult:
    """GSS area codes: data by borough, ward, MSOA or LSOA carries a column of GSS codes in its tables."""
    label = GEOGRAPHIES.get(facts.geography, facts.geography)
    geography = label[:1].lower() + label[1:]
    if facts.geography not in AREA_GEOGRAPHIES:
        return CheckResult(NOT_APPLICABLE, f"Its smallest geography is ‘{label}’, not areas with GSS codes.")
    tables = _tables(facts)
    if not tables:
        return CheckResult(NOT_APPLICABLE, f"It is data by {geography}, but it has no CSV, Excel or Parquet "
                                           "table to look for GSS codes in.")
    if facts.gss is None:
        return CheckResult(NOT_CHECKED, "Looking for GSS code columns is not available on this installation yet.")
    with_codes, without, pending = [], [], []
    for res in tables:
        state = (facts.schema or {}).get(res.id) or {}
        loaded = facts.schema is None or (state.get("valid") is not None and state.get("status") != "failed")
        columns = facts.gss.get(res.id) or []
        if columns:
            with_codes.append(f"{res.label} has them in {_listing([f'‘{c}’' for c in columns])}")
        elif not loaded:
            pending.append(res.label + (" (it could not be loaded)" if state.get("status") == "failed" else ""))
        else:
            without.append(res.label)
    if without:
        return CheckResult(FAIL, f"It is data by {geography}, but {_listing(without)} "
                                 f"{'has' if len(without) == 1 else 'have'} no column of GSS codes (like "
                                 "E09000007 for Camden), so it cannot be joined to other data by area.")
    if pending:
        return CheckResult(NOT_CHECKED, f"Not loaded into the tabular store: {_listing(pending)}.")
    return CheckResult(PASS, f"GSS codes: {_listing(with_codes)}.")


def scorecard(facts: DatasetFacts, now: datetime) -> Scorecard:
    """Run every check on one dataset."""
    checks = {
        "licence": check_licence(facts),
        "openness": check_openness(facts),
        "links": check_links(facts),
        "timeliness": check_timeliness(facts, now),
        "metadata": check_metadata(facts),
        "schema": check_schema(facts),
        "dcat": check_dcat(facts),
        "gss": check_gss(facts),
    }
    return Scorecard(stars=checks["openness"].detail["stars"], checks=checks)
