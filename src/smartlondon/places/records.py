"""What the name matcher needs to know about a place: the contract between the register and matching.

The register (``places.service.iter_match_records``) produces these from its tables; the matcher
(``places.matching``) indexes them. Neither reaches into the other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MatchRecord:
    """One active place, as the matcher sees it."""

    uid: str                      # the stable identifier, e.g. "ldn:station:..." (never reused)
    kind: str                     # "borough", "lsoa", "station", "aq-site", ...
    name: str                     # the preferred name
    alt_names: tuple[str, ...] = ()   # alternative names that are valid now
    identifiers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # scheme -> values ("gss", "nlc", "laqn", ...)
    lon: float | None = None      # a representative point (WGS84)
    lat: float | None = None
    areas: dict[str, str] = field(default_factory=dict)  # containing area kind -> uid ("borough" -> "ldn:borough:E09000007")
