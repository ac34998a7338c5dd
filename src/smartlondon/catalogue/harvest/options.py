"""A source's options (its ``config`` JSON): what each means, its default, and its checks.

Unknown options and values of the wrong kind are refused with a message that says what to
fix, so a typo in a config never silently changes what a harvest does.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from ...core.errors import ValidationFailed

TYPES = ("ckan", "dcat", "datapress", "socrata", "dcat-us")
TYPE_LABELS = {
    "ckan": "CKAN Action API", "dcat": "DCAT (RDF: Turtle, JSON-LD, RDF/XML; Hydra paging)",
    "datapress": "DataPress export.json (London Datastore)", "socrata": "Socrata Discovery API",
    "dcat-us": "DCAT-US data.json (Project Open Data 1.1: ArcGIS Hub, DKAN)",
}
WITHDRAW_POLICIES = ("delete", "draft", "keep")
TRANSFORMS = ("tags", "emails", "timezones", "formats", "signed_links", "slugs")
# CKAN documents metadata_modified as UTC without an offset; other portals' naive times are local.
DEFAULT_ZONES = {"ckan": "UTC"}
SECRET_OPTIONS = ("api_key",)


@dataclass(frozen=True)
class SourceOptions:
    """The parsed options of a source, with their defaults."""

    page_size: int = 100
    max_pages: int = 1000
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    retries: int = 3
    backoff: float = 1.0
    max_bytes: int = 200 * 1024 * 1024
    withdraw: str = "draft"
    default_licence: str = "OGL-UK-3.0"
    timezone: str = "Europe/London"
    full_every_days: float = 7.0
    private: bool = False
    transforms: frozenset[str] = frozenset(TRANSFORMS)
    strip_query_params: tuple[str, ...] = ()
    theme_map: dict[str, str] = field(default_factory=dict)
    boroughs: tuple[str, ...] = ()
    exclude_ids: frozenset[str] = frozenset()
    require_keywords: frozenset[str] = frozenset()
    fq: str = ""
    api_key: str = ""
    domain: str = ""
    only: str = "dataset"
    modified_since: bool = False
    rdf_format: str = ""

    def uses(self, transform: str) -> bool:
        """True if this clean-up transform is switched on."""
        return transform in self.transforms


# name: (kind, help)
OPTIONS: dict[str, tuple[str, str]] = {
    "page_size": ("int:1:1000", "records per page (CKAN rows, Socrata limit); default 100"),
    "max_pages": ("int:1:100000", "the page cap: stop after this many pages; default 1000"),
    "connect_timeout": ("float:0.05:300", "seconds to wait for a connection; default 10"),
    "read_timeout": ("float:0.05:600", "seconds to wait for each read of a response; default 30"),
    "retries": ("int:0:10", "retries after a timeout or a 5xx/429 answer, with backoff; default 3"),
    "backoff": ("float:0:120", "seconds before the first retry, doubling each time; default 1"),
    "max_bytes": ("int:1024:10000000000", "the largest response accepted, in bytes; default 200 MB"),
    "withdraw": ("choice:" + ",".join(WITHDRAW_POLICIES),
                 "what happens to datasets gone upstream: delete, draft (hidden) or keep; default draft"),
    "default_licence": ("str", "licence id for records whose licence is unknown; default OGL-UK-3.0"),
    "timezone": ("zone", "the zone of timestamps given without one; default Europe/London (UTC for CKAN)"),
    "full_every_days": ("float:0:3650", "days between full runs of an incremental source; default 7"),
    "private": ("bool", "make harvested datasets private; default false"),
    "transforms": ("list:" + ",".join(TRANSFORMS), "the clean-up transforms to apply; default all"),
    "strip_query_params": ("strlist", "more query parameters to drop from links (signed_links)"),
    "theme_map": ("dict", "remote category or group (lowercase) -> theme id"),
    "boroughs": ("strlist", "GSS codes added to every harvested dataset"),
    "exclude_ids": ("strlist", "remote ids never to harvest"),
    "require_keywords": ("strlist", "harvest only records with one of these keywords"),
    "fq": ("str", "CKAN: an extra Solr filter, e.g. organization:camden"),
    "api_key": ("str", "CKAN: an API token, to harvest private datasets"),
    "domain": ("str", "Socrata: the portal's domain, e.g. data.cityofnewyork.us"),
    "only": ("str", "Socrata: the asset type to harvest; default dataset"),
    "modified_since": ("bool", "DCAT: ask for records changed since the last run (modified_since=)"),
    "rdf_format": ("choice:,turtle,xml,json-ld,n3,nt", "DCAT: the RDF syntax, if the server does not say"),
}


def _number(kind: str, value: Any, name: str) -> float:
    _, low, high = kind.split(":")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Give '{name}' as a number.")
    if kind.startswith("int") and not float(value).is_integer():
        raise ValueError(f"Give '{name}' as a whole number.")
    if not float(low) <= value <= float(high):
        raise ValueError(f"'{name}' must be between {low} and {high}.")
    return value


def _check(name: str, kind: str, value: Any) -> Any:
    if kind.startswith(("int", "float")):
        number = _number(kind, value, name)
        return int(number) if kind.startswith("int") else float(number)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"Give '{name}' as true or false.")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"Give '{name}' as text.")
        return value.strip()
    if kind.startswith("choice:"):
        allowed = kind[7:].split(",")
        if value not in allowed:
            raise ValueError(f"'{name}' must be one of: {', '.join(a for a in allowed if a)}.")
        return value
    if kind == "zone":
        try:
            zoneinfo.ZoneInfo(str(value))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not a time zone name like Europe/London or UTC.") from None
        return str(value)
    if kind in ("strlist",) or kind.startswith("list:"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"Give '{name}' as a list of text values.")
        if kind.startswith("list:"):
            allowed = kind[5:].split(",")
            bad = [v for v in value if v not in allowed]
            if bad:
                raise ValueError(f"Unknown {name[:-1]} '{bad[0]}'. Choose from: {', '.join(allowed)}.")
        return [v.strip() for v in value if v.strip()]
    if kind == "dict":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ValueError(f"Give '{name}' as an object of text values.")
        return {str(k).strip().lower(): v.strip() for k, v in value.items()}
    raise AssertionError(kind)


def check_config(source_type: str, config: Any) -> dict[str, Any]:
    """The config with every option checked; raises 422 naming each problem."""
    if config in (None, ""):
        return {}
    if not isinstance(config, dict):
        raise ValidationFailed("The options must be a JSON object, like {\"withdraw\": \"draft\"}.",
                               {"config": "Give the options as a JSON object."})
    problems: list[str] = []
    cleaned: dict[str, Any] = {}
    for name, value in config.items():
        if name not in OPTIONS:
            problems.append(f"Unknown option '{name}'. The options are: {', '.join(OPTIONS)}.")
            continue
        try:
            cleaned[name] = _check(name, OPTIONS[name][0], value)
        except ValueError as exc:
            problems.append(str(exc))
    if source_type == "socrata" and not str(cleaned.get("domain", "")):
        problems.append("A Socrata source needs the 'domain' option, like {\"domain\": \"data.example.gov\"}.")
    if problems:
        raise ValidationFailed("The options have problems: " + " ".join(problems), {"config": " ".join(problems)})
    return cleaned


def parse_options(source_type: str, config: dict[str, Any] | None) -> SourceOptions:
    """The options of a source of this type, with defaults filled in."""
    values = check_config(source_type, config or {})
    values.setdefault("timezone", DEFAULT_ZONES.get(source_type, "Europe/London"))
    for name in ("transforms", "exclude_ids", "require_keywords"):
        if name in values:
            items = values[name]
            values[name] = frozenset(v.lower() if name == "require_keywords" else v for v in items)
    for name in ("strip_query_params", "boroughs"):
        if name in values:
            values[name] = tuple(values[name])
    return SourceOptions(**values)


def public_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """The config as pages show it: secrets (an API key) masked."""
    return {k: ("********" if k in SECRET_OPTIONS and v else v) for k, v in (config or {}).items()}
