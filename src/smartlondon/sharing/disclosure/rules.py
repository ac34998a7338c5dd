"""Disclosure control rules: named profiles, primary and secondary suppression, margins and rounding.

Pure functions over an in-memory table, with no database: the release ledger and the review add what needs
memory. A ``Table`` holds every cell of an aggregate (interior cells and the margins this module adds), each
with its TRUE values; rules mark cells suppressed, and ``render`` rounds what is left.

Secondary suppression is exact for the tables we publish margins for: in a 2-way table with margins every
cell sits in two linear constraints (its row and its column), so the suppressed cells form a graph with the
rows and columns as nodes; a suppressed cell can be recovered exactly iff it is a bridge of that graph (no
cycle of suppressed cells passes through it). A 1-way table (or a table of 3+ dimensions, which gets only a
grand total) is one constraint, where any single suppressed cell is recoverable.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ...core.errors import ValidationFailed
from .types import AggregateResult

#: The dimension value of margin cells (totals) inside a table; rendered as ``TOTAL_LABEL``.
ALL = "__total__"
TOTAL_LABEL = "Total"
#: 2-way tables with more cells than this get a linear line-by-line pass before the exact bridge pass.
LARGE_TABLE = 1500


@dataclass(frozen=True)
class Profile:
    """A named set of disclosure rules: cells with 0 < n < threshold are suppressed; the rest rounded."""

    name: str
    title: str
    threshold: int
    rounding_base: int
    description: str
    zero_is_safe: bool = True
    #: (n, k) dominance rules for sums and means: a cell is sensitive if its n largest contributors (n is 1 or 2)
    #: make up more than k% of its total.
    dominance: tuple[tuple[int, float], ...] = ()
    #: The p% rule: a cell is sensitive if the total minus its two largest contributions is less than p% of
    #: the largest (the second largest contributor could then estimate the largest within p%).
    p_percent: float | None = None

    @property
    def has_magnitude_rules(self) -> bool:
        """True if sums and means are checked for dominance."""
        return bool(self.dominance) or self.p_percent is not None

    def dominated(self, total: float, first: float, second: float) -> bool:
        """True if a cell with this total and two largest absolute contributions is sensitive."""
        if total <= 0:
            return False
        for n, k in self.dominance:
            if (first if n == 1 else first + second) > k / 100 * total:
                return True
        return self.p_percent is not None and total - first - second < self.p_percent / 100 * first

    def surely_safe(self, total: float, largest: float) -> bool:
        """True if no cell with this total and a largest contribution at most ``largest`` can be sensitive."""
        if total <= 0:
            return True
        for n, k in self.dominance:
            if n * largest > k / 100 * total:
                return False
        return self.p_percent is None or total - 2 * largest >= self.p_percent / 100 * largest

    def unsafe(self, value: float | int | None) -> bool:
        """True if a count of this many people may not be shown."""
        if value is None:
            return False
        return 0 < value < self.threshold or (value == 0 and not self.zero_is_safe)

    def round(self, value: int | float) -> int:
        """The count rounded to the nearest multiple of the rounding base (halves away from zero)."""
        base = self.rounding_base
        if base <= 1:
            return int(value)
        return int(math.floor(value / base + 0.5) * base)

    def as_dict(self) -> dict[str, Any]:
        """The published rules of this profile."""
        return {"name": self.name, "title": self.title, "threshold": self.threshold,
                "suppress": f"counts from 1 to {self.threshold - 1}", "rounding_base": self.rounding_base,
                "zero_is_safe": self.zero_is_safe, "description": self.description,
                "dominance": [{"n": n, "k": k} for n, k in self.dominance], "p_percent": self.p_percent}


PROFILES: dict[str, Profile] = {
    "nhs": Profile("nhs", "NHS England small numbers", threshold=8, rounding_base=5,
                   description="Counts of 1 to 7 people are suppressed; every other count is rounded to the "
                               "nearest 5. Zero is shown as 0. A sum or mean is suppressed where one person "
                               "makes up more than 50% of its total, or two people more than 85%.",
                   dominance=((1, 50), (2, 85))),
    "ons": Profile("ons", "ONS threshold rule", threshold=10, rounding_base=5,
                   description="Counts below 10 people (1 to 9) are suppressed; every other count is rounded "
                               "to the nearest 5. Zero is shown as 0. A sum or mean is suppressed where one "
                               "person makes up more than 50% of its total, or two people more than 85%.",
                   dominance=((1, 50), (2, 85))),
}


def profile_named(name: str | None) -> Profile:
    """The profile with this name; 422 naming the choices if unknown."""
    if name in PROFILES:
        return PROFILES[name]  # type: ignore[index]
    raise ValidationFailed(f"There is no disclosure profile called '{name}'.",
                           {"disclosure.profile": f"Choose one of {', '.join(sorted(PROFILES))}."})


@dataclass(slots=True)
class Cell:
    """One cell of a table: its dimension values (``ALL`` in margins), TRUE measures and people count."""

    key: tuple[Any, ...]
    values: dict[str, Any]
    n: int
    margin: bool = False
    suppressed: str | None = None  # "primary" | "secondary" | "differencing"
    #: the cell's ``count`` measure, if it has one (the rules read it often: worked out once)
    count: int | None = field(init=False)

    def __post_init__(self) -> None:
        value = self.values.get("count")
        self.count = int(value) if isinstance(value, (int, float)) else None


@dataclass
class Table:
    """An aggregate with margins, its cells marked as rules suppress them."""

    dimensions: list[str]
    measures: list[str]
    cells: dict[tuple[Any, ...], Cell] = field(default_factory=dict)

    # --- building -----------------------------------------------------------------------------------------

    @classmethod
    def from_result(cls, result: AggregateResult, *, margins: bool = True) -> Table:
        """The result's cells plus margins (1-way: a total; 2-way: row, column and grand totals; 3+: a total)."""
        table = cls(list(result.dimensions), list(result.measures))
        for row in result.rows:
            key = tuple(row.get(d) for d in result.dimensions)
            if key in table.cells:
                raise ValidationFailed(f"The aggregate has two rows for {key}.")
            n = row.get("_n")
            if n is None:
                n = row.get("count", 0)
            table.cells[key] = Cell(key, {m: row.get(m) for m in result.measures}, int(n or 0))
        if margins and result.dimensions:
            table._add_margins()
        return table

    def _add_margins(self) -> None:
        """Add the margin cells in one pass over the interior cells."""
        dims = len(self.dimensions)
        grand = (ALL,) * dims
        means = [m for m in self.measures if m.startswith("mean_")]
        others = [m for m in self.measures if not m.startswith("mean_")]
        # per margin: [people, {measure: total}, {mean: weighted total}, {mean: weight}]
        totals: dict[tuple[Any, ...], list[Any]] = {}
        for cell in list(self.cells.values()):
            keys = [(cell.key[0], ALL), (ALL, cell.key[1]), grand] if dims == 2 else [grand]
            weight = cell.count if cell.count is not None else cell.n
            for key in keys:
                acc = totals.get(key)
                if acc is None:
                    acc = totals[key] = [0, {}, {}, {}]
                acc[0] += cell.n
                for m in others:
                    value = cell.values.get(m)
                    if isinstance(value, (int, float)):
                        acc[1][m] = acc[1].get(m, 0) + value
                for m in means:
                    value = cell.values.get(m)
                    if isinstance(value, (int, float)):
                        acc[2][m] = acc[2].get(m, 0) + value * weight
                        acc[3][m] = acc[3].get(m, 0) + weight
        for key, (n, sums, weighted, weights) in totals.items():
            values = {m: sums.get(m) for m in others}
            values.update({m: (weighted[m] / weights[m] if weights.get(m) else None) for m in means})
            self.cells[key] = Cell(key, {m: values.get(m) for m in self.measures}, n, margin=True)

    # --- views --------------------------------------------------------------------------------------------

    def interior(self) -> list[Cell]:
        """The cells that are not margins."""
        return [c for c in self.cells.values() if not c.margin]

    def suppressed(self, kind: str | None = None) -> list[Cell]:
        """The suppressed cells (of one kind, if given)."""
        return [c for c in self.cells.values() if c.suppressed and (kind is None or c.suppressed == kind)]

    def is_empty(self) -> bool:
        """True when no interior cell with people in it is left to show."""
        return not any(c.n > 0 and not c.suppressed for c in self.interior())

    def copy(self) -> Table:
        """An independent copy (cells and marks)."""
        clone = Table(list(self.dimensions), list(self.measures))
        clone.cells = {k: Cell(c.key, dict(c.values), c.n, c.margin, c.suppressed) for k, c in self.cells.items()}
        return clone

    # --- rules --------------------------------------------------------------------------------------------

    def suppress_primary(self, profile: Profile) -> int:
        """Suppress every cell with too few people (by ``_n`` or by its count); returns how many."""
        hits = 0
        for cell in self.cells.values():
            if not cell.suppressed and (profile.unsafe(cell.n) or profile.unsafe(cell.count)):
                cell.suppressed = "primary"
                hits += 1
        return hits

    def suppress_dominance(self, profile: Profile, dominance: dict[tuple[Any, ...], dict[str, list[float]]]) -> int:
        """Suppress every cell whose sum or mean is dominated by one or two people (profile's rules)."""
        hits = 0
        for key, measures in dominance.items():
            cell = self.cells.get(key)
            if cell is not None and not cell.suppressed and any(profile.dominated(*v) for v in measures.values()):
                cell.suppressed = "dominance"
                hits += 1
        return hits

    def suppress(self, keys: Iterable[tuple[Any, ...]], kind: str) -> int:
        """Suppress these cells (if not already); returns how many were newly suppressed."""
        hits = 0
        for key in keys:
            cell = self.cells.get(key)
            if cell is not None and not cell.suppressed:
                cell.suppressed = kind
                hits += 1
        return hits

    def suppress_secondary(self) -> int:
        """Suppress complementary cells until no suppressed cell can be recovered from the margins."""
        if len(self.dimensions) == 2:
            return self._secondary_2way()
        if self.dimensions:
            return self._secondary_line(list(self.cells.values()))
        return 0

    @staticmethod
    def _cost(cell: Cell) -> tuple[Any, ...]:
        # the cheapest complement: an interior cell with people in it before a zero cell or a margin,
        # fewest people, then a stable order (a zero hides nothing: everyone can guess it)
        return (cell.margin or cell.n == 0, cell.n, repr(cell.key))

    def _secondary_line(self, line: list[Cell]) -> int:
        added = 0
        while sum(1 for c in line if c.suppressed) == 1:
            candidates = [c for c in line if not c.suppressed]
            if not candidates:
                break
            min(candidates, key=self._cost).suppressed = "secondary"
            added += 1
        return added

    def _secondary_2way(self) -> int:
        added = self._line_pass() if len(self.cells) > LARGE_TABLE else 0
        adjacent: dict[tuple[str, Any], list[tuple[tuple[str, Any], Cell]]] = {}
        for c in self.cells.values():
            r, k = ("r", c.key[0]), ("c", c.key[1])
            adjacent.setdefault(r, []).append((k, c))
            adjacent.setdefault(k, []).append((r, c))
        penalty = 1 + sum(c.n for c in self.cells.values())
        while True:
            bridges = recoverable_cells(self)
            if not bridges:
                return added
            progress = 0
            for target in sorted(bridges, key=lambda c: repr(c.key)):
                # a path found for an earlier bridge may already protect this one: then the path costs nothing
                path = self._cheapest_cycle(target, adjacent, penalty)
                for cell in path:
                    cell.suppressed = "secondary"
                progress += len(path)
            if not progress:  # nothing left to hide them behind (cannot happen while margins are shown)
                return added
            added += progress

    def _line_pass(self) -> int:
        """A cheap first pass for large tables: no row or column keeps exactly one suppressed cell.

        Linear in the table's size; the exact (bridge) pass that follows then has little left to do.
        """
        lines: dict[tuple[str, Any], list[Cell]] = {}
        for c in self.cells.values():
            lines.setdefault(("r", c.key[0]), []).append(c)
            lines.setdefault(("c", c.key[1]), []).append(c)
        added = 0
        changed = True
        while changed:
            changed = False
            for line in lines.values():
                if sum(1 for c in line if c.suppressed) == 1:
                    free = [c for c in line if not c.suppressed]
                    if free:
                        min(free, key=self._cost).suppressed = "secondary"
                        added += 1
                        changed = True
        return added

    def _cheapest_cycle(self, cell: Cell, adjacent: dict[tuple[str, Any], list[tuple[tuple[str, Any], Cell]]],
                        penalty: int) -> list[Cell]:
        """The unsuppressed cells that, suppressed, put ``cell`` on a cycle of suppressed cells, at least cost.

        A shortest path (Dijkstra) from the cell's row to its column not using the cell itself: suppressed cells
        cost nothing, others cost their people count, margins and zeros cost more than any interior cell.
        """
        start, goal = ("r", cell.key[0]), ("c", cell.key[1])
        best: dict[tuple[str, Any], float] = {start: 0}
        via: dict[tuple[str, Any], tuple[tuple[str, Any], Cell]] = {}
        queue: list[tuple[float, str, tuple[str, Any]]] = [(0, repr(start), start)]
        while queue:
            cost, _, node = heapq.heappop(queue)
            if node == goal:
                break
            if cost > best.get(node, math.inf):
                continue
            for nxt, c in adjacent.get(node, []):
                if c is cell:
                    continue
                step = 0 if c.suppressed else (c.n + (penalty if c.margin or c.n == 0 else 0) + 1)
                if cost + step < best.get(nxt, math.inf):
                    best[nxt] = cost + step
                    via[nxt] = (node, c)
                    heapq.heappush(queue, (cost + step, repr(nxt), nxt))
        if goal not in via:
            return []
        path: list[Cell] = []
        node = goal
        while node != start:
            node, c = via[node]
            if not c.suppressed:
                path.append(c)
        return path

    # --- output -------------------------------------------------------------------------------------------

    def render(self, profile: Profile | None) -> tuple[list[str], list[list[Any]], list[list[Any]]]:
        """Columns, rows (suppressed cells None, counts rounded) and the suppressed [row, column] pairs.

        Interior rows come first in a stable order, then margins; ``profile=None`` shows values unrounded
        (the proposed output a reviewer sees).
        """
        columns = [*self.dimensions, *self.measures]
        ordered = sorted(self.cells.values(), key=lambda c: (c.margin, sum(k == ALL for k in c.key),
                                                               [_sort_key(k) for k in c.key]))
        rows: list[list[Any]] = []
        marks: list[list[Any]] = []
        for i, cell in enumerate(ordered):
            dims = [TOTAL_LABEL if k == ALL else k for k in cell.key]
            values: list[Any] = []
            for m in self.measures:
                value = cell.values.get(m)
                if cell.suppressed:
                    marks.append([i, m])
                    values.append(None)
                else:
                    values.append(_shown(m, value, profile))
            rows.append([*dims, *values])
        return columns, rows, marks


def _shown(measure: str, value: Any, profile: Profile | None) -> Any:
    """A measure's value as released: counts rounded by the profile, means to 1 decimal place."""
    if value is None or profile is None:
        return value
    if measure == "count" or measure.startswith("count_"):
        return profile.round(value)
    if measure.startswith("mean_"):
        return round(float(value), 1)
    if measure.startswith("sum_"):
        return round(float(value), 1) if isinstance(value, float) else value
    return value


def _sort_key(value: Any) -> tuple[int, str]:
    return (value is None, "" if value is None else str(value))


def recoverable_cells(table: Table) -> list[Cell]:
    """The suppressed cells an attacker can compute exactly from the shown cells and margins.

    2-way tables: the bridges of the graph of suppressed cells (rows and columns as nodes). 1-way tables and
    tables with only a grand total: a line with exactly one suppressed cell.
    """
    if len(table.dimensions) != 2:
        hidden = table.suppressed()
        return hidden if len(hidden) == 1 and table.dimensions else []
    return _bridges(table.suppressed())


def _bridges(edges: list[Cell]) -> list[Cell]:
    """The cells that are bridges of the graph rows -- cells -- columns (Tarjan's algorithm, iterative)."""
    adjacent: dict[tuple[str, Any], list[tuple[tuple[str, Any], int]]] = {}
    for i, c in enumerate(edges):
        r, k = ("r", c.key[0]), ("c", c.key[1])
        adjacent.setdefault(r, []).append((k, i))
        adjacent.setdefault(k, []).append((r, i))
    order: dict[tuple[str, Any], int] = {}
    low: dict[tuple[str, Any], int] = {}
    found: list[Cell] = []
    for root in adjacent:
        if root in order:
            continue
        order[root] = low[root] = len(order)
        stack = [(root, -1, iter(adjacent[root]))]
        while stack:
            node, via, neighbours = stack[-1]
            advanced = False
            for nxt, edge in neighbours:
                if edge == via:
                    continue
                if nxt in order:
                    low[node] = min(low[node], order[nxt])
                else:
                    order[nxt] = low[nxt] = len(order)
                    stack.append((nxt, edge, iter(adjacent[nxt])))
                    advanced = True
                    break
            if not advanced:
                stack.pop()
                if stack:
                    parent = stack[-1][0]
                    low[parent] = min(low[parent], low[node])
                    if low[node] > order[parent]:
                        found.append(edges[via])
    return found


def primary_sql(rows: list[dict[str, Any]], columns: list[str], count_columns: list[str],
                profile: Profile) -> tuple[list[list[Any]], list[list[Any]], int]:
    """Primary suppression and rounding of an SQL output's declared count columns.

    When a row's count is suppressed, every other numeric column of that row is suppressed with it (it may be
    a sum over the same few people). Returns rows, suppressed [row, column] pairs and the number of rows hit.
    """
    out: list[list[Any]] = []
    marks: list[list[Any]] = []
    hit_rows = 0
    for i, row in enumerate(rows):
        unsafe = any(isinstance(row.get(c), (int, float)) and profile.unsafe(row[c]) for c in count_columns)
        hit_rows += unsafe
        values: list[Any] = []
        for col in columns:
            value = row.get(col)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if unsafe and (col in count_columns or numeric):
                marks.append([i, col])
                values.append(None)
            elif col in count_columns and numeric:
                values.append(profile.round(value))
            else:
                values.append(value)
        out.append(values)
    return out, marks, hit_rows
