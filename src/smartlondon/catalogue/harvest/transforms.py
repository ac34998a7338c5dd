"""Clean-up transforms and the mapping of a remote record onto the catalogue's fields.

Each transform fixes one thing portals commonly get wrong (tags, contact emails, time zones,
missing formats, signed download links, slug clashes) and says what it changed as a warning,
so a job report shows every repair. ``to_catalogue`` applies them to a :class:`RemoteRecord`
and returns the fields ``catalogue.service`` takes, ready to write.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..formats import FORMATS, guess_format, normalise_format
from .options import SourceOptions
from .records import RemoteRecord

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
URL = re.compile(r"^https?://[^\s]+$")
GSS = re.compile(r"\b([EWSN]\d{8})\b")
TAG_SEPARATORS = re.compile(r"[;|,]")
MAPPING_VERSION = "1"  # change when the mapping changes, so every record is written again

# Query parameters that make a link expire or carry a credential (S3, CloudFront, Azure, GCS...).
SIGNED_PARAMS = {
    "x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires", "x-amz-signature",
    "x-amz-signedheaders", "x-amz-security-token", "awsaccesskeyid", "signature", "expires",
    "key-pair-id", "policy", "token", "access_token", "sig", "se", "sp", "sv", "sr", "st", "spr", "skoid",
    "sktid", "skt", "ske", "sks", "skv", "googleaccessid", "x-goog-algorithm", "x-goog-credential",
    "x-goog-date", "x-goog-expires", "x-goog-signedheaders", "x-goog-signature",
}

MEDIA_TYPE_FORMATS = {media: fmt for fmt, media in FORMATS.items()}
MEDIA_TYPE_FORMATS.update({
    "application/csv": "CSV", "text/comma-separated-values": "CSV", "application/vnd.geo+json": "GEOJSON",
    "application/x-zip-compressed": "ZIP", "text/xml": "XML", "application/x-parquet": "PARQUET",
    "application/vnd.ms-excel.sheet.macroenabled.12": "XLSX", "application/ld+json": "JSON-LD",
    "application/x-shapefile": "SHP", "application/shp": "SHP", "application/gml+xml": "GML",
})
LINK_FORMATS = {"HTM": "HTML", "PHP": "HTML", "ASPX": "HTML", "ASP": "HTML", "JSP": "HTML"}
# Format names portals write in words, as the catalogue names them.
FORMAT_NAMES = {"WEB PAGE": "HTML", "WEBPAGE": "HTML", "WEBSITE": "HTML", "WEB SITE": "HTML", "HTM": "HTML",
                "ARCGIS GEOSERVICES REST API": "ESRI REST", "ESRI REST API": "ESRI REST", "SHAPEFILE": "SHP",
                "ZIPPED SHAPEFILE": "ZIP-SHP", "MS EXCEL": "XLSX", "MICROSOFT EXCEL": "XLSX", "PLAIN TEXT": "TXT",
                "GEO JSON": "GEOJSON", "COMMA SEPARATED VALUES": "CSV", "JSON API": "JSON"}

LICENCE_IDS = {
    "uk-ogl": "OGL-UK-3.0", "ogl": "OGL-UK-3.0", "ogl-uk": "OGL-UK-3.0", "ogl-uk-3.0": "OGL-UK-3.0",
    "ogl-v3": "OGL-UK-3.0", "ogl3": "OGL-UK-3.0", "ogl-3.0": "OGL-UK-3.0", "uk-ogl-3": "OGL-UK-3.0",
    "open-government-licence": "OGL-UK-3.0", "ogl_3_0": "OGL-UK-3.0", "ogl-uk-2.0": "OGL-UK-2.0",
    "ogl-v2": "OGL-UK-2.0", "ogl2": "OGL-UK-2.0", "cc-by": "CC-BY-4.0", "cc-by-4.0": "CC-BY-4.0",
    "cc-by-4": "CC-BY-4.0", "cc_by_4_0": "CC-BY-4.0", "cc_by": "CC-BY-4.0", "cc-by-sa": "CC-BY-SA-4.0",
    "cc-by-sa-4.0": "CC-BY-SA-4.0", "cc_bysa_4_0": "CC-BY-SA-4.0", "cc-by-sa-3.0": "CC-BY-SA-3.0",
    "cc_bysa_3_0": "CC-BY-SA-3.0", "cc-zero": "CC0-1.0", "cc0": "CC0-1.0", "cc0-1.0": "CC0-1.0",
    "odc-odbl": "ODbL-1.0", "odbl": "ODbL-1.0", "odbl-1.0": "ODbL-1.0", "other-closed": "other-closed",
    "os-opendata": "OS-OpenData",
}
LICENCE_URLS = (
    ("nationalarchives.gov.uk/doc/open-government-licence/version/3", "OGL-UK-3.0"),
    ("nationalarchives.gov.uk/doc/open-government-licence/version/2", "OGL-UK-2.0"),
    ("nationalarchives.gov.uk/doc/open-government-licence", "OGL-UK-3.0"),
    ("reference.data.gov.uk/id/open-government-licence", "OGL-UK-3.0"),
    ("creativecommons.org/licenses/by/4.0", "CC-BY-4.0"),
    ("creativecommons.org/licenses/by-sa/4.0", "CC-BY-SA-4.0"),
    ("creativecommons.org/licenses/by-sa/3.0", "CC-BY-SA-3.0"),
    ("creativecommons.org/publicdomain/zero/1.0", "CC0-1.0"),
    ("opendatacommons.org/licenses/odbl", "ODbL-1.0"),
    ("opendefinition.org/licenses/odc-odbl", "ODbL-1.0"),
    ("opendefinition.org/licenses/cc-by", "CC-BY-4.0"),
    ("opendefinition.org/licenses/cc-zero", "CC0-1.0"),
)

# EU Data Theme codes and words portals use for categories -> the platform's themes.
EU_THEMES = {"AGRI": "environment", "ECON": "economy", "EDUC": "education", "ENER": "energy",
             "ENVI": "environment", "GOVE": "government", "HEAL": "health", "INTR": "government",
             "JUST": "crime-and-justice", "REGI": "planning", "SOCI": "society", "TECH": "economy",
             "TRAN": "transport"}
THEME_WORDS = (
    ("environment", ("environment", "air quality", "climate", "green", "waste", "pollution", "nature")),
    ("transport", ("transport", "travel", "roads", "traffic", "cycling", "parking")),
    ("housing", ("housing", "homes", "homeless")),
    ("health", ("health", "social care", "wellbeing")),
    ("crime-and-justice", ("crime", "justice", "police", "community safety")),
    ("economy", ("economy", "business", "employment", "jobs", "skills", "economic")),
    ("education", ("education", "school", "young people", "children")),
    ("population", ("population", "demograph", "census")),
    ("planning", ("planning", "land use", "regeneration", "development")),
    ("energy", ("energy",)),
    ("government", ("council", "government", "spend", "finance", "transparency", "democracy",
                    "payments", "budget")),
    ("society", ("communit", "society", "culture", "arts", "sport", "leisure", "libraries")),
    ("boundaries", ("boundar", "geograph", "mapping", "maps", "addresses")),
)

EU_FREQUENCIES = {"HOURLY": "hourly", "CONT": "hourly", "UPDATE_CONT": "hourly", "DAILY": "daily",
                  "DAILY_2": "daily", "WEEKLY": "weekly", "WEEKLY_2": "weekly", "WEEKLY_3": "weekly",
                  "BIWEEKLY": "monthly", "MONTHLY": "monthly", "MONTHLY_2": "monthly", "MONTHLY_3": "monthly",
                  "BIMONTHLY": "quarterly", "QUARTERLY": "quarterly", "ANNUAL_2": "annual", "ANNUAL_3": "annual",
                  "ANNUAL": "annual", "BIENNIAL": "irregular", "IRREG": "irregular", "NEVER": "never",
                  "NOT_PLANNED": "never", "AS_NEEDED": "irregular", "OTHER": "irregular", "UNKNOWN": "irregular"}
FREQUENCY_WORDS = (
    ("hourly", ("hour", "real-time", "real time", "realtime", "continuous", "live")),
    ("daily", ("daily", "day")),
    ("weekly", ("weekly", "week")),
    ("monthly", ("fortnight", "monthly", "month")),
    ("quarterly", ("quarter",)),
    ("annual", ("annual", "yearly", "year", "six month", "biannual", "bi-annual", "half-year")),
    ("never", ("one off", "one-off", "never", "historic", "not updated", "no longer")),
    ("irregular", ("irregular", "ad hoc", "ad-hoc", "as required", "as and when", "as needed", "other")),
)
DURATION = re.compile(r"^(?:R\d*/)?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
# The longest period each frequency stands for, in hours: a remote period maps to the first that
# covers it, so a dataset never promises to be updated more often than its publisher says.
FREQUENCY_HOURS = (("hourly", 1), ("daily", 24), ("weekly", 168), ("monthly", 744), ("quarterly", 2232),
                   ("annual", 8784))


@dataclass
class Reference:
    """What the mapping looks up: licence ids and London's boroughs by name and code."""

    licence_ids: set[str]
    boroughs: dict[str, str]  # lowercase name or alias -> GSS code
    borough_codes: set[str]


@dataclass
class Mapped:
    """A remote record mapped onto the catalogue: dataset fields, resources, and what was fixed."""

    fields: dict[str, Any]
    resources: list[dict[str, Any]]
    name: str
    remote_modified: datetime | None
    warnings: list[str] = field(default_factory=list)

    def content_hash(self, fingerprint: str) -> str:
        """A hash of everything this record would write (and of the options that shaped it)."""
        body = json.dumps({"v": MAPPING_VERSION, "f": self.fields, "r": self.resources, "o": fingerprint},
                          sort_keys=True, default=str, ensure_ascii=False)
        return hashlib.sha256(body.encode()).hexdigest()


# --- the transforms ------------------------------------------------------------------------

def clean_tags(values: list[str], split: bool = True) -> tuple[list[str], list[str]]:
    """Tags lowercased, trimmed, split at ';' '|' ',' and without empties or repeats; and warnings."""
    out: list[str] = []
    warnings: list[str] = []
    for value in values:
        parts = TAG_SEPARATORS.split(str(value)) if split else [str(value)]
        for part in parts:
            tag = " ".join(part.split()).lower()
            if not tag:
                continue
            if len(tag) > 100:
                warnings.append(f"Dropped a keyword longer than 100 characters: '{tag[:40]}…'.")
                continue
            if tag not in out:
                out.append(tag)
    return out, warnings


def clean_email(value: str) -> tuple[str, str | None]:
    """An email address without 'mailto:' or brackets, or '' and a warning if it is not one."""
    raw = (value or "").strip()
    email = raw
    if email.lower().startswith("mailto:"):
        email = email[7:]
    email = email.split("?", 1)[0].strip().strip("<>").strip()
    if not email:
        return "", None
    if not EMAIL.match(email):
        return "", f"Dropped the contact email '{raw}': it is not an email address."
    return email, None


def parse_timestamp(value: Any, zone: str) -> datetime | None:
    """A remote timestamp in UTC; one without a zone is read in ``zone``. None if unreadable."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), timezone.utc)
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text.replace(" ", "T", 1) if len(text) > 10 else text)
        except ValueError:
            try:
                moment = datetime.combine(date.fromisoformat(text[:10]), datetime.min.time())
            except ValueError:
                return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zoneinfo.ZoneInfo(zone))
    return moment.astimezone(timezone.utc)


def parse_date(value: Any) -> date | None:
    """A date from a remote date or timestamp ('2021', '2021-03', '2021-03-04T10:00Z'); None if unreadable."""
    text = str(value or "").strip()
    if not text:
        return None
    for size, fill in ((10, ""), (7, "-01"), (4, "-01-01")):
        try:
            return date.fromisoformat(text[:size] + fill)
        except ValueError:
            continue
    return None


def strip_signed_params(url: str, extra: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """The link without query parameters that sign it or make it expire; and the names dropped."""
    parts = urlsplit(url)
    if not parts.query:
        return url, []
    names = SIGNED_PARAMS | {e.lower() for e in extra}
    kept, dropped = [], []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        (dropped if key.lower() in names else kept).append((key, value))
    if not dropped:
        return url, []
    return urlunsplit(parts._replace(query=urlencode(kept))), [k for k, _ in dropped]


def resource_format(fmt: str, media_type: str, url: str, guess: bool = True) -> str:
    """The resource's format: the given one, normalised, or guessed from its media type or address."""
    given = (fmt or "").strip()
    if given:
        if "/" in given:  # a media type or a vocabulary URI given as the format
            tail = given.rstrip("/").rsplit("/", 1)[-1]
            known = MEDIA_TYPE_FORMATS.get(given.lower().split(";")[0].strip())
            given = known or (tail if "://" in given else "")
        if given:
            name = normalise_format(" ".join(given.split()))
            return FORMAT_NAMES.get(name, name)[:40]
    if not guess:
        return ""
    media = (media_type or "").lower().split(";")[0].strip()
    if media.startswith("http"):  # an IANA media type URI
        media = media.split("/media-types/", 1)[-1]
    if media in MEDIA_TYPE_FORMATS:
        return MEDIA_TYPE_FORMATS[media]
    path = urlsplit(url).path
    guessed = guess_format(path) if "." in path.rsplit("/", 1)[-1] else ""
    return LINK_FORMATS.get(guessed, guessed if guessed in FORMATS or guessed in ("GZ", "GML", "WMS", "WFS")
                            else "HTML")


def licence_for(candidates: list[str], known: set[str]) -> str | None:
    """The platform's licence id for a remote licence id, URL or title; None if none is recognised."""
    lowered = {k.lower(): k for k in known}
    for raw in candidates:
        text = str(raw or "").strip()
        if not text:
            continue
        low = text.lower()
        if low in lowered:
            return lowered[low]
        if low in LICENCE_IDS and LICENCE_IDS[low] in known:
            return LICENCE_IDS[low]
        tail = low.rstrip("/").rsplit("/", 1)[-1]
        if "/" in low and tail in LICENCE_IDS and LICENCE_IDS[tail] in known:
            return LICENCE_IDS[tail]
        for fragment, licence in LICENCE_URLS:
            if fragment in low and licence in known:
                return licence
        words = re.sub(r"[^a-z0-9.]+", " ", low)
        guess = None
        if "open government licence" in words or "open government license" in words or re.search(
                r"\bogl\b", words):
            guess = "OGL-UK-2.0" if re.search(r"\b(v ?2|2\.0|version 2)\b", words) else "OGL-UK-3.0"
        elif "creative commons" in words or re.search(r"\bcc\b", words):
            if "zero" in words or "cc0" in words:
                guess = "CC0-1.0"
            elif "share" in words or "sa" in words.split():
                guess = "CC-BY-SA-3.0" if "3.0" in words else "CC-BY-SA-4.0"
            elif "attribution" in words or "by" in words.split():
                guess = "CC-BY-4.0"
        elif "open database" in words or "odbl" in words:
            guess = "ODbL-1.0"
        if guess and guess in known:
            return guess
    return None


def themes_for(categories: list[str], theme_map: dict[str, str], known: set[str]) -> list[str]:
    """The platform's themes for remote categories, groups or EU Data Theme URIs."""
    out: list[str] = []
    for raw in categories:
        text = str(raw or "").strip()
        if not text:
            continue
        low = text.lower()
        chosen: list[str] = []
        if low in theme_map:
            chosen = [theme_map[low]]
        elif text.rstrip("/").rsplit("/", 1)[-1].upper() in EU_THEMES and ("/" in text or text.isupper()):
            chosen = [EU_THEMES[text.rstrip("/").rsplit("/", 1)[-1].upper()]]
        else:
            chosen = [theme for theme, words in THEME_WORDS if any(w in low for w in words)]
        out.extend(t for t in chosen if t in known and t not in out)
    return out


def frequency_for(value: str) -> str | None:
    """The platform's update frequency for a remote one (word, EU URI or ISO 8601 period); None if unknown."""
    text = str(value or "").strip()
    if not text:
        return None
    tail = text.rstrip("/").rsplit("/", 1)[-1].upper()
    if "/" in text and tail in EU_FREQUENCIES and "://" in text:
        return EU_FREQUENCIES[tail]
    if text.upper() in EU_FREQUENCIES:
        return EU_FREQUENCIES[text.upper()]
    match = DURATION.match(text.upper())
    if match and any(match.groups()):
        y, mo, w, d, h, mi, s = (int(g or 0) for g in match.groups())
        hours = y * 8760 + mo * 730 + w * 168 + d * 24 + h + mi / 60 + s / 3600
        for name, limit in FREQUENCY_HOURS:
            if hours <= limit:
                return name
        return "irregular"
    low = text.lower()
    for name, words in FREQUENCY_WORDS:
        if any(re.search(rf"\b{re.escape(word)}", low) for word in words):
            return name
    return None


def boroughs_for(values: list[str], reference: Reference) -> list[str]:
    """GSS codes of the London boroughs named or coded in remote spatial values."""
    out: list[str] = []
    for raw in values:
        text = str(raw or "")
        found = [code for code in GSS.findall(text) if code in reference.borough_codes]
        if not found:
            low = " " + re.sub(r"[^a-z]+", " ", text.lower().replace("&", " and ")) + " "
            found = [code for name, code in reference.boroughs.items() if f" {name} " in low]
        out.extend(code for code in found if code not in out)
    return out


class _Markdown(HTMLParser):
    """HTML (as DataPress and Socrata write descriptions) to Markdown, the catalogue's format."""

    BLOCKS = {"p", "div", "section", "article", "table", "tr", "ul", "ol", "blockquote", "h1", "h2", "h3",
              "h4", "h5", "h6"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.links: list[str | None] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in self.BLOCKS:
            self.out.append("\n\n" + ("## " if tag in ("h1", "h2", "h3", "h4", "h5", "h6") else ""))
        elif tag == "br":
            self.out.append("\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in ("strong", "b"):
            self.out.append("**")
        elif tag in ("em", "i"):
            self.out.append("*")
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            self.links.append(href if URL.match(href) else None)
            if self.links[-1]:
                self.out.append("[")
        elif tag in ("td", "th"):
            self.out.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self.out.append("\n\n")
        elif tag in ("strong", "b"):
            self.out.append("**")
        elif tag in ("em", "i"):
            self.out.append("*")
        elif tag == "a" and self.links:
            href = self.links.pop()
            if href:
                self.out.append(f"]({href})")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(re.sub(r"\s+", " ", data))


def html_to_markdown(text: str) -> str:
    """Markdown for an HTML description: paragraphs, lists, links and emphasis kept, tags gone."""
    if "<" not in text:
        return html.unescape(text).strip()
    parser = _Markdown()
    parser.feed(text)
    parser.close()
    body = "".join(parser.out)
    lines = [line.strip() for line in body.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- the mapping ---------------------------------------------------------------------------

def _resources(record: RemoteRecord, options: SourceOptions, warnings: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for res in record.resources:
        url = (res.url or "").strip()
        if not URL.match(url):
            warnings.append(f"Dropped a resource ‘{res.title or res.remote_id or '(untitled)'}’ whose link "
                            f"'{url[:80]}' is not a web address.")
            continue
        if options.uses("signed_links"):
            url, dropped = strip_signed_params(url, options.strip_query_params)
            if dropped:
                warnings.append(f"Removed the signing parameters {', '.join(sorted(set(dropped)))} from the link "
                                f"of ‘{res.title or url}’, so that it does not expire.")
        fmt = resource_format(res.format, res.media_type, url, guess=options.uses("formats"))
        if options.uses("formats") and not (res.format or "").strip() and fmt:
            warnings.append(f"Gave the resource ‘{res.title or url}’ the format {fmt}, guessed from its "
                            f"{'media type' if res.media_type else 'address'}.")
        key = res.remote_id or url
        if key in seen:
            continue
        seen.add(key)
        title = " ".join((res.title or "").split())[:300] or (
            urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or (f"{fmt} file" if fmt else "Link"))
        item: dict[str, Any] = {"title": title, "description": res.description or "", "url": url[:2000],
                                "format": fmt, "extras": {"harvest_remote_id": key[:500]}}
        if res.media_type and "/" in res.media_type and not res.media_type.startswith("http"):
            item["media_type"] = res.media_type.split(";")[0].strip()[:200]
        if res.table_schema:
            item["table_schema"] = res.table_schema
        out.append(item)
    return out


def to_catalogue(record: RemoteRecord, options: SourceOptions, reference: Reference, *,
                 source_slug: str, known_themes: set[str]) -> Mapped:
    """Map a remote record onto the catalogue's dataset and resource fields, with the clean-ups."""
    warnings: list[str] = []
    zone = options.timezone if options.uses("timezones") else "UTC"
    title = " ".join(record.title.split())
    if len(title) > 300:
        warnings.append("Shortened the title to 300 characters.")
        title = title[:299].rstrip() + "…"
    description = html_to_markdown(record.description) if record.description_is_html else record.description.strip()

    licence = licence_for(record.licences, reference.licence_ids)
    if licence is None:
        licence = options.default_licence
        named = next((str(c) for c in record.licences if str(c or "").strip()), "")
        warnings.append(f"Unknown licence '{named}': used the source's default, {licence}." if named
                        else f"No licence given: used the source's default, {licence}.")

    if options.uses("tags"):
        keywords, tag_warnings = clean_tags(record.keywords)
        warnings += tag_warnings
    else:
        keywords = [str(k) for k in record.keywords]

    contact_email = record.contact_email.strip()
    if options.uses("emails"):
        contact_email, problem = clean_email(contact_email)
        if problem:
            warnings.append(problem)

    frequency = frequency_for(record.frequency)
    if record.frequency and frequency is None:
        warnings.append(f"Unknown update frequency '{record.frequency}': recorded as irregular.")

    start, end = parse_date(record.temporal_start), parse_date(record.temporal_end)
    if start and end and end < start:
        warnings.append(f"The time period ends ({end}) before it starts ({start}): kept the start only.")
        end = None

    landing = record.landing_page.strip()
    if landing and not URL.match(landing):
        warnings.append(f"Dropped the landing page '{landing[:80]}': it is not a web address.")
        landing = ""

    bbox = record.bbox
    if bbox is not None:
        west, south, east, north = (list(bbox) + [None] * 4)[:4]
        valid = None not in (west, south, east, north) and -180 <= west <= east <= 180 and -90 <= south <= north <= 90
        if not valid:
            warnings.append("Dropped a bounding box that is not west,south,east,north in WGS84 degrees.")
            bbox = None

    modified = parse_timestamp(record.modified, zone)
    extras = {k[:100]: str(v)[:2000] for k, v in record.extras.items() if k and v not in (None, "")}
    extras.update({"harvest_source": source_slug, "harvest_remote_id": record.remote_id[:500]})
    if record.remote_url:
        extras["harvest_remote_url"] = record.remote_url[:2000]
    if modified is not None:
        extras["harvest_remote_modified"] = modified.isoformat().replace("+00:00", "Z")
    if record.publisher_name:
        extras["harvest_remote_publisher"] = record.publisher_name[:300]

    boroughs = boroughs_for(record.spatial, reference)
    boroughs += [code for code in options.boroughs if code not in boroughs]
    version = record.version.strip()
    if len(version) > 100:
        warnings.append("Shortened the version to 100 characters.")
        version = version[:100]

    fields: dict[str, Any] = {
        "title": title, "description": description, "licence": licence, "keywords": keywords,
        "themes": themes_for(record.categories, options.theme_map, known_themes),
        "frequency": frequency or "irregular",
        "temporal_start": start.isoformat() if start else None, "temporal_end": end.isoformat() if end else None,
        "boroughs": boroughs, "bbox": bbox, "contact_name": " ".join(record.contact_name.split())[:200],
        "contact_email": contact_email, "landing_page": landing[:2000], "version": version,
        "extras": extras, "private": options.private,
    }
    resources = _resources(record, options, warnings)
    return Mapped(fields=fields, resources=resources, name=record.name, remote_modified=modified,
                  warnings=warnings)
