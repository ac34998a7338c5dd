"""Building a resource's table: file -> typed, validated table in a private staging database.

:func:`build_table` reads the whole file (never a sample), works out the schema (the publisher's
Table Schema, or one inferred over every value), checks every cell against it, and leaves the
finished table ``typed`` in a staging DuckDB file, ready to be copied into the store. Cells that
do not fit are reported and stored as NULL; nothing about a bad value stops the load.

The table has the ``_id`` column every CKAN datastore table has: the row's position among the
data rows of the file (its Frictionless row number minus one), so ``_id`` order is file order
and a reported row number always finds its row. Blank rows are reported and left out.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from ...core.errors import ValidationFailed
from . import sources
from .report import MAX_LISTED, Findings, Problem, build_report
from .schema import (
    GSS_PATTERN,
    INFERENCE_ORDER,
    Field,
    Params,
    constraint_checks,
    converter_sql,
    describe_fields,
    infer_field,
    missing_sql,
    parse_schema,
    primary_key,
)
from .store import quote_ident

ROW = "_row"
SAMPLE_ROWS = 10_000
STAGE_IN_MEMORY_BYTES = 256 * 1024 * 1024


@dataclass
class BuiltTable:
    """A finished table ``typed`` in an open staging database, and what is known about it.

    Use it as a context manager: leaving it closes the staging database and deletes its file.
    """

    conn: duckdb.DuckDBPyConnection
    staging: Path
    fields: list[Field]
    schema: dict[str, Any]
    schema_source: str
    row_count: int
    report: dict[str, Any]
    valid: bool
    error_count: int
    gss_columns: list[str] = field(default_factory=list)
    in_file_order: bool = True  # ``typed`` is stored in _id order (false after blank rows were taken out)

    def __enter__(self) -> "BuiltTable":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the staging database and remove its files."""
        try:
            self.conn.close()
        finally:
            _remove(self.staging)


def _remove(staging: Path) -> None:
    for path in (staging, staging.with_name(staging.name + ".wal")):
        path.unlink(missing_ok=True)


@dataclass
class _Column:
    """A field and the raw column it reads from (None when the file lacks it)."""

    field: Field
    raw: str | None
    number: int


def build_table(path: Path, kind: str, *, gz: bool, declared: dict[str, Any] | None, work_dir: Path,
                name: str, place: str, byte_size: int | None = None,
                options: dict[str, str] | None = None) -> BuiltTable:
    """Read, type and validate a whole file into a staging DuckDB file (close the result when done)."""
    started = time.monotonic()
    staging = work_dir / f"stage-{uuid.uuid4().hex}.duckdb"
    expected = path.stat().st_size * (6 if gz else 1)
    # Small files are staged in memory (faster); big ones in a file, since DuckDB spills only file-backed tables.
    conn = duckdb.connect(":memory:" if expected <= STAGE_IN_MEMORY_BYTES else str(staging),
                          config={"preserve_insertion_order": True})
    try:
        conn.execute("SET enable_progress_bar = false")
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute(f"SET temp_directory = '{(work_dir / 'spill').as_posix()}'")
        raw = sources.stage(conn, kind, path, gz=gz, work_dir=work_dir, options=options)
        findings = Findings(warnings=list(raw.warnings))
        for lp in raw.label_problems:
            findings.listed.append(Problem(lp.kind, None, lp.position, raw.names[lp.position - 1], label=lp.label,
                                           note=lp.note, labels=raw.labels))
            findings.count(lp.kind)
        if declared:
            fields, missing = parse_schema(declared)
            columns = _match_declared(conn, fields, raw, findings)
            schema_source = "declared"
        else:
            missing = [""]
            if raw.types:
                fields = [Field(n, sources.parquet_type(raw.types[n])) for n in raw.names]
                schema_source = "parquet"
            else:
                fields = _infer(conn, raw)
                schema_source = "inferred"
            columns = [_Column(f, n, i) for i, (f, n) in enumerate(zip(fields, raw.names), start=1)]
        for problem in raw.row_problems:
            if problem.field_number and problem.field_number <= len(columns):
                problem_field = columns[problem.field_number - 1].field.name
            else:
                problem_field = ""
            findings.listed.append(Problem(problem.kind, problem.row_number, problem.field_number, problem_field,
                                           cell=problem.cell, cells=problem.cells))
        for kind_name, n in raw.row_problem_counts.items():
            findings.count(kind_name, n=n)
        row_count, in_order = _check_and_type(conn, raw, columns, missing, declared, findings)
        gss = _gss_columns(conn, [c.field for c in columns])
        schema = describe_fields([c.field for c in columns], declared)
        if not declared:
            schema["missingValues"] = [""]
        report = build_report(findings, name=name, place=place, labels=raw.labels, rows=row_count,
                              fields=len(columns), byte_size=byte_size, seconds=time.monotonic() - started)
        conn.execute("DROP TABLE raw")
    except BaseException:
        conn.close()
        _remove(staging)
        raise
    return BuiltTable(conn, staging, [c.field for c in columns], schema, schema_source, row_count, report,
                      report["valid"], report["summary"]["errors"], gss, in_order)


def _match_declared(conn: duckdb.DuckDBPyConnection, fields: list[Field], raw: sources.RawTable,
                    findings: Findings) -> list[_Column]:
    """Pair declared fields with the file's columns by position, reporting label mismatches."""
    problem_positions = {lp.position for lp in raw.label_problems}
    columns: list[_Column] = []
    for number, f in enumerate(fields, start=1):
        if number <= len(raw.names):
            label = raw.labels[number - 1]
            if label != f.name and number not in problem_positions:
                findings.listed.append(Problem("incorrect-label", None, number, f.name, label=label,
                                               labels=raw.labels))
                findings.count("incorrect-label")
            columns.append(_Column(f, raw.names[number - 1], number))
        else:
            findings.listed.append(Problem("missing-label", None, number, f.name, labels=raw.labels))
            findings.count("missing-label")
            columns.append(_Column(f, None, number))
    for number in range(len(fields) + 1, len(raw.names) + 1):
        findings.listed.append(Problem("extra-label", None, number, "", label=raw.labels[number - 1],
                                       labels=raw.labels))
        findings.count("extra-label")
    for f in fields:
        if f.type in ("string", "any") and isinstance(f.constraints.get("pattern"), str):
            try:
                conn.execute("SELECT regexp_full_match('', ?)", [f.constraints["pattern"]]).fetchall()
            except duckdb.Error as exc:
                raise ValidationFailed(f"The pattern of field '{f.name}' is not a regular expression this platform "
                                       f"can use: {str(exc).splitlines()[0]}", {"table_schema": "bad pattern"}) from exc
    return columns


def _infer(conn: duckdb.DuckDBPyConnection, raw: sources.RawTable) -> list[Field]:
    """Infer each column's type from every value in it.

    A type is accepted only if it reads every distinct non-missing value of the whole column.
    To avoid checking hopeless types over millions of rows, the types are first tried on the
    first rows: a type that fails there cannot read the whole column, so it is dropped. (The
    sample can only rule types out, never in.)
    """
    p = Params()
    selects: list[str] = []
    for n in raw.names:
        cell = quote_ident(n)
        for kind in INFERENCE_ORDER:
            conv = converter_sql(Field(n, kind), cell, p, inferring=True)
            selects.append(f"count(*) FILTER (WHERE NOT {missing_sql(cell, [''], p)} AND {conv} IS NULL)")
    sample = conn.execute(f"SELECT {', '.join(selects)} FROM (SELECT * FROM raw LIMIT {SAMPLE_ROWS})",
                          p.values).fetchone()
    assert sample is not None
    fields: list[Field] = []
    for i, n in enumerate(raw.names):
        failures = sample[i * len(INFERENCE_ORDER):(i + 1) * len(INFERENCE_ORDER)]
        candidates = [kind for kind, bad in zip(INFERENCE_ORDER, failures) if bad == 0]
        if not candidates:
            fields.append(Field(n, "string"))
            continue
        p = Params()
        value = '"v"'
        checks = [f"count(*) FILTER (WHERE NOT {missing_sql(value, [''], p)})"]
        for kind in candidates:
            conv = converter_sql(Field(n, kind), value, p, inferring=True)
            checks.append(f"count(*) FILTER (WHERE NOT {missing_sql(value, [''], p)} AND {conv} IS NULL)")
        row = conn.execute(f"SELECT {', '.join(checks)} FROM (SELECT DISTINCT {quote_ident(n)} AS v FROM raw)",
                           p.values).fetchone()
        assert row is not None
        fields.append(infer_field(n, dict(zip(candidates, row[1:])), row[0]))
    return fields


def _check_and_type(conn: duckdb.DuckDBPyConnection, raw: sources.RawTable, columns: list[_Column],
                    missing: list[str], declared: dict[str, Any] | None, findings: Findings) -> tuple[int, bool]:
    """Find every bad cell, then build ``typed``; returns its row count and whether it is in file order."""
    row = raw.row_expr
    p = Params()
    present_cols = [c.raw for c in columns if c.raw is not None]
    blank = " AND ".join(missing_sql(quote_ident(n), missing, p) for n in present_cols) or "true"
    conn.execute(f"CREATE TEMP TABLE blank_rows AS SELECT {row} AS {ROW} FROM raw WHERE {blank}", p.values)
    not_blank = f"{row} NOT IN (SELECT {ROW} FROM blank_rows)"
    p = Params()
    parts: list[str] = []
    check_types = bool(declared) or bool(raw.types)  # an inferred type accepts every value by construction
    for c in columns:
        f = c.field
        if c.raw is None:  # the file lacks the declared column: every row misses its cell (as Frictionless says)
            parts.append(f"SELECT {row} AS {ROW}, {p.add(c.number)} AS field_number, {p.add(f.name)} AS field_name, "
                         f"'missing-cell' AS kind, '' AS cell, '' AS note FROM raw WHERE {not_blank}")
            continue
        cell = quote_ident(c.raw)

        def head(kind: str, value: str, note: str, f: Field = f, c: _Column = c) -> str:
            return f"SELECT {row}, {p.add(c.number)}, {p.add(f.name)}, '{kind}', {value}, {p.add(note)}"

        if check_types:
            type_note = f'type is "{f.type_note}"'
            parts.append(f"{head('type-error', cell, type_note)} FROM raw "
                         f"WHERE NOT {missing_sql(cell, missing, p)} AND {converter_sql(f, cell, p)} IS NULL")
        if f.constraints.get("required") is True:
            required_note = 'constraint "required" is "True"'
            parts.append(f"{head('constraint-error', repr(''), required_note)} FROM raw "
                         f"WHERE {missing_sql(cell, missing, p)} AND {not_blank}")
        if constraint_checks(f, cell, cell, Params()):  # only build the typed value if a constraint needs it
            typed = converter_sql(f, cell, p)
            for condition, note in constraint_checks(f, cell, typed, p):
                parts.append(f"{head('constraint-error', cell, note)} FROM raw "
                             f"WHERE NOT {missing_sql(cell, missing, p)} AND {typed} IS NOT NULL AND ({condition})")
        if f.constraints.get("unique") is True:
            conv = converter_sql(f, cell, p)
            parts.append(
                f"SELECT r, {p.add(c.number)}, {p.add(f.name)}, 'unique-error', v, "
                f"'the same as in the row at position ' || first "
                f"FROM (SELECT {row} AS r, {cell} AS v, min({row}) OVER (PARTITION BY {conv}) AS first "
                f"FROM raw WHERE NOT {missing_sql(cell, missing, p)} AND {conv} IS NOT NULL) WHERE r > first")
    key = primary_key(declared)
    by_name = {c.field.name: c for c in columns}
    if key and all(k in by_name and by_name[k].raw for k in key):
        convs = [converter_sql(by_name[k].field, quote_ident(by_name[k].raw or ""), p) for k in key]
        not_null = " AND ".join(f"{cv} IS NOT NULL" for cv in convs)
        parts.append(f"SELECT r, 0, '', 'primary-key', '', 'the same as in the row at position ' || first "
                     f"FROM (SELECT {row} AS r, min({row}) OVER (PARTITION BY {', '.join(convs)}) AS first "
                     f"FROM raw WHERE {not_null}) WHERE r > first")
    parts.append(f"SELECT {ROW}, 0, '', 'blank-row', '', '' FROM blank_rows")
    conn.execute(f"CREATE TEMP TABLE problems AS SELECT * FROM ({' UNION ALL '.join(parts)}) "
                 f"AS u({ROW}, field_number, field_name, kind, cell, note)", p.values)
    for kind, field_name, n in conn.execute("SELECT kind, field_name, count(*) FROM problems GROUP BY ALL").fetchall():
        findings.count(kind, field_name, n)
    listed = conn.execute(f"SELECT {ROW}, field_number, field_name, kind, cell, note FROM problems "
                          f"ORDER BY {ROW}, field_number LIMIT {MAX_LISTED}").fetchall()
    cells_by_row = _cells(conn, raw, sorted({r[0] for r in listed}))
    for row_number, field_number, field_name, kind, cell, note in listed:
        findings.listed.append(Problem(kind, row_number, field_number, field_name, cell=cell or "", note=note or "",
                                       cells=cells_by_row.get(row_number, [])))
    p = Params()
    selects = [f"{row} - 1 AS _id"]
    for c in columns:
        if c.raw is None:
            selects.append(f"CAST(NULL AS {c.field.sql_type}) AS {quote_ident(c.field.name)}")
            continue
        cell = quote_ident(c.raw)
        conv = converter_sql(c.field, cell, p, trusted=not check_types)
        selects.append(f"(CASE WHEN {missing_sql(cell, missing, p)} THEN NULL ELSE {conv} END)"
                       f"::{c.field.sql_type} AS {quote_ident(c.field.name)}")
    blanks = conn.execute(f"SELECT count(*) FROM blank_rows").fetchone()
    where = f"WHERE {not_blank}" if blanks and blanks[0] else ""  # (a join would not keep the file's order)
    conn.execute(f"CREATE TABLE typed AS SELECT {', '.join(selects)} FROM raw {where}", p.values)
    counted = conn.execute("SELECT count(*) FROM typed").fetchone()
    return (int(counted[0]) if counted else 0), not where


def _cells(conn: duckdb.DuckDBPyConnection, raw: sources.RawTable, rows: list[int]) -> dict[int, list[str]]:
    """The cells of the given rows as written in the file (for the errors' ``cells``)."""
    if not rows:
        return {}
    columns = ", ".join(f"coalesce({quote_ident(n)}, '')" for n in raw.names)
    placeholders = ", ".join(f"${i}" for i in range(1, len(rows) + 1))
    found = conn.execute(f"SELECT {raw.row_expr}, {columns} FROM raw WHERE {raw.row_expr} IN ({placeholders})",
                         rows).fetchall()
    return {r[0]: list(r[1:]) for r in found}


def _gss_columns(conn: duckdb.DuckDBPyConnection, fields: list[Field]) -> list[str]:
    """The text columns whose values are all GSS codes (and that have some); the first rows rule out most."""
    found: list[str] = []

    def all_codes(source: str) -> bool:
        row = conn.execute(f"SELECT count(v) > 0 AND count(*) FILTER (WHERE v IS NOT NULL AND NOT "
                           f"regexp_full_match(v, '{GSS_PATTERN}')) = 0 FROM ({source})").fetchone()
        return bool(row and row[0])

    for f in fields:
        col = quote_ident(f.name)
        if (f.sql_type == "VARCHAR" and all_codes(f"SELECT {col} AS v FROM typed LIMIT {SAMPLE_ROWS}")
                and all_codes(f"SELECT DISTINCT {col} AS v FROM typed")):
            found.append(f.name)
    return found
