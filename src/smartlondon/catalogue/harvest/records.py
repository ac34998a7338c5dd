"""The common shape of a remote record: what every source type reads a remote dataset into.

Fields hold what the remote portal said, cleaned of nothing: ``transforms.to_catalogue`` does
the clean-up and the mapping onto the catalogue's fields, the same way for every source type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RemoteResource:
    """A file or service of a remote dataset, to be kept as a link."""

    url: str
    title: str = ""
    description: str = ""
    format: str = ""
    media_type: str = ""
    remote_id: str = ""
    table_schema: dict[str, Any] | None = None


@dataclass
class RemoteRecord:
    """A remote dataset as its portal describes it."""

    remote_id: str
    title: str
    name: str = ""
    description: str = ""
    description_is_html: bool = False
    remote_url: str = ""
    landing_page: str = ""
    modified: str = ""
    licences: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    frequency: str = ""
    temporal_start: str = ""
    temporal_end: str = ""
    spatial: list[str] = field(default_factory=list)
    bbox: list[float] | None = None
    version: str = ""
    contact_name: str = ""
    contact_email: str = ""
    publisher_name: str = ""
    resources: list[RemoteResource] = field(default_factory=list)
    extras: dict[str, str] = field(default_factory=dict)


@dataclass
class RecordProblem:
    """A remote record that cannot be read at all (no id, no title, not an object...)."""

    remote_id: str | None
    reason: str


def text_of(value: Any) -> str:
    """A remote value as trimmed text ('' for None, lists joined with commas)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(text_of(v) for v in value if text_of(v))
    if isinstance(value, dict):
        for key in ("name", "title", "value", "@value", "id", "url"):
            if value.get(key):
                return text_of(value[key])
        return ""
    return str(value).strip()


def list_of(value: Any) -> list[Any]:
    """A remote value as a list (a single value becomes a one-item list; None an empty one)."""
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


@dataclass
class Crawl:
    """What a source type reads with: the address, options, fetcher and where to start from."""

    url: str
    options: Any  # SourceOptions
    fetcher: Any  # Fetcher
    since: str | None = None  # UTC, like 2024-05-01T10:00:00Z: only records changed since (incremental)
    expect: Any = None  # called with the number of records the source says it has

    def expecting(self, total: int | None) -> None:
        """Tell the job how many records to expect (for its progress bar)."""
        if self.expect is not None and isinstance(total, int):
            self.expect(total)
