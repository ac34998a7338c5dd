"""Validation reports in Frictionless's own format, built from the loader's pass over the data.

The loader checks every row in DuckDB (the ``frictionless`` library does the same in Python, at a
few thousand rows a second, which would take minutes for a million rows). Each problem becomes an
error object of the ``frictionless`` library itself, so titles, descriptions and messages are the
library's; the tests check that a file's report matches what ``frictionless.validate`` says about
it. Reports list the first :data:`MAX_LISTED` errors; ``summary`` counts all of them by type and by
field, and ``stats.errors`` is the full count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from frictionless import Report, ReportTask
from frictionless import errors as fl

MAX_LISTED = 1000

# Within a row: the row's own problems, then cells by field, then uniqueness, then the primary key.
_ORDER = {"blank-row": 0, "missing-cell": 1, "extra-cell": 1, "type-error": 1, "constraint-error": 1,
          "unique-error": 2, "primary-key": 3}


@dataclass
class Problem:
    """One problem found in the data, before it becomes a Frictionless error."""

    kind: str
    row_number: int | None = None
    field_number: int = 0
    field_name: str = ""
    cell: str = ""
    note: str = ""
    cells: list[str] = field(default_factory=list)
    label: str = ""
    labels: list[str] = field(default_factory=list)

    def sort_key(self) -> tuple[int, int, int]:
        """Header problems first, then by row, kind of problem and field."""
        if self.row_number is None:
            return (0, 0, self.field_number)
        return (self.row_number, _ORDER.get(self.kind, 1), self.field_number)

    def to_error(self) -> fl.Error:
        """The ``frictionless`` error object for this problem."""
        row = self.row_number or 0
        cells = [c if c is not None else "" for c in self.cells]
        if self.kind in ("blank-label", "duplicate-label", "incorrect-label", "extra-label", "missing-label"):
            cls = {"blank-label": fl.BlankLabelError, "duplicate-label": fl.DuplicateLabelError,
                   "incorrect-label": fl.IncorrectLabelError, "extra-label": fl.ExtraLabelError,
                   "missing-label": fl.MissingLabelError}[self.kind]
            return cls(note=self.note, labels=self.labels, row_numbers=[1], label=self.label,
                       field_name=self.field_name, field_number=self.field_number)
        if self.kind == "blank-row":
            return fl.BlankRowError(note=self.note, cells=cells, row_number=row)
        if self.kind == "primary-key":
            return fl.PrimaryKeyError(note=self.note, cells=cells, row_number=row)
        cls = {"type-error": fl.TypeError, "constraint-error": fl.ConstraintError,
               "missing-cell": fl.MissingCellError, "extra-cell": fl.ExtraCellError,
               "unique-error": fl.UniqueError}[self.kind]
        return cls(note=self.note, cells=cells, row_number=row, cell=self.cell or "",
                   field_name=self.field_name, field_number=self.field_number)


@dataclass
class Findings:
    """Everything the loader found: the listed problems and the counts of all of them."""

    listed: list[Problem] = field(default_factory=list)
    by_type: dict[str, int] = field(default_factory=dict)
    by_field: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def count(self, kind: str, field_name: str = "", n: int = 1) -> None:
        """Add ``n`` problems of a kind (in a field) to the counts."""
        if n <= 0:
            return
        self.by_type[kind] = self.by_type.get(kind, 0) + n
        if field_name:
            self.by_field[field_name] = self.by_field.get(field_name, 0) + n

    @property
    def total(self) -> int:
        """How many problems there are in all."""
        return sum(self.by_type.values())


def build_report(findings: Findings, *, name: str, place: str, labels: list[str], rows: int, fields: int,
                 byte_size: int | None, seconds: float) -> dict[str, Any]:
    """The Frictionless report (as JSON-ready data) for one table, with a ``summary`` of the counts."""
    listed = sorted(findings.listed, key=Problem.sort_key)[:MAX_LISTED]
    total = findings.total
    warnings = list(findings.warnings)
    if total > len(listed):
        warnings.append(f"Only the first {len(listed)} of the {total} errors are listed.")
    valid = total == 0
    stats: dict[str, Any] = {"errors": total, "warnings": len(warnings), "seconds": round(seconds, 3),
                             "fields": fields, "rows": rows}
    if byte_size is not None:
        stats["bytes"] = byte_size
    task = ReportTask(name=name, type="table", valid=valid, place=place, labels=labels, stats=stats,  # type: ignore[arg-type]
                      warnings=warnings, errors=[p.to_error() for p in listed])
    report = Report(valid=valid, stats={"tasks": 1, "errors": total, "warnings": len(warnings),  # type: ignore[arg-type]
                                        "seconds": round(seconds, 3)}, tasks=[task])
    descriptor = report.to_descriptor()
    descriptor.setdefault("warnings", [])
    descriptor.setdefault("errors", [])
    descriptor["summary"] = {"errors": total, "listed": len(listed), "byType": dict(sorted(findings.by_type.items())),
                             "byField": dict(sorted(findings.by_field.items()))}
    return descriptor


def failure_report(*, name: str, place: str, message: str) -> dict[str, Any]:
    """The report of a file that could not be read as a table at all (a ``source-error``)."""
    task = ReportTask(name=name, type="table", valid=False, place=place, labels=[],
                      stats={"errors": 1, "warnings": 0, "seconds": 0.0},  # type: ignore[arg-type]
                      errors=[fl.SourceError(note=message)])
    descriptor = Report(valid=False, stats={"tasks": 1, "errors": 1, "warnings": 0, "seconds": 0.0},  # type: ignore[arg-type]
                        tasks=[task]).to_descriptor()
    descriptor.setdefault("warnings", [])
    descriptor.setdefault("errors", [])
    descriptor["summary"] = {"errors": 1, "listed": 1, "byType": {"source-error": 1}, "byField": {}}
    return descriptor
