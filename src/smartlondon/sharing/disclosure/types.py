"""The values passed between the LODA gateway and disclosure control: an aggregate before control, an outcome after."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

QueryKind = Literal["aggregate", "sql"]
Status = Literal["released", "review", "refused"]

#: Marker placed in the safe table beside a suppressed cell (the cell itself is None).
SUPPRESSED = "*"


@dataclass
class AggregateResult:
    """A table computed by the gateway with TRUE values, before any disclosure control.

    ``rows`` are dicts holding each dimension's value, each measure's value (keys as in ``measures``,
    e.g. ``"count"``, ``"sum_age"``, ``"mean_age"``) and ``"_n"``: the true number of distinct people
    contributing to the cell. ``where`` is the canonical filter (field -> sorted IN list, or
    field -> {op: value}) used by the release ledger's differencing check. For ``query_kind == "sql"``
    ``dimensions`` are the output's other columns, ``measures`` the declared ``count_columns`` (holding counts
    of people; empty when undeclared, and then the rows are lists or dicts of every column).
    """

    datasets: list[str]
    dimensions: list[str]
    measures: list[str]
    rows: list[dict[str, Any]]
    where: dict[str, Any] = field(default_factory=dict)
    query_kind: QueryKind = "aggregate"
    count_columns: list[str] = field(default_factory=list)
    #: For differential privacy: field -> [lower, upper], the bounds the gateway clamped each summed field to.
    bounds: dict[str, list[float]] = field(default_factory=dict)
    #: For the dominance and p% rules of sums and means: cell key (``rules.ALL`` in margins) -> measure ->
    #: [total, largest, second largest] absolute contribution of one person. Cells left out were proved safe
    #: from bounds; ``dominance_checked`` says the gateway looked at all.
    dominance: dict[tuple[Any, ...], dict[str, list[float]]] = field(default_factory=dict)
    dominance_checked: bool = False

    @property
    def dataset(self) -> str:
        """The first (usually only) dataset slug."""
        return self.datasets[0] if self.datasets else ""

    @property
    def columns(self) -> list[str]:
        """The output columns: dimensions then measures."""
        return [*self.dimensions, *self.measures]


@dataclass
class Outcome:
    """The result of disclosure control: what may be shown, and why.

    ``rows`` is the safe table as a list of lists in ``columns`` order; a suppressed cell is ``None`` and
    its column name appears in the row's entry of ``summary["suppressed_cells"]``; ``SUPPRESSED`` is the
    display marker. ``summary`` holds: profile, suppressed_primary, suppressed_secondary, rounding_base,
    differencing_hits, dp (epsilon_spent, epsilon_remaining) and review_id when routed to review.
    """

    status: Status
    columns: list[str]
    rows: list[list[Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form used in the gateway's responses."""
        return {
            "status": self.status,
            "table": {"columns": list(self.columns), "rows": [list(r) for r in self.rows]},
            "disclosure": dict(self.summary),
            "reasons": list(self.reasons),
        }
