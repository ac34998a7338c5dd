"""Reading a resource's file into a staging table of text: CSV/TSV (also gzipped), XLSX and Parquet.

The result is always the same shape, a DuckDB table ``raw`` with one VARCHAR column per field
and a way to name each row's number in the file (Frictionless's ``rowNumber``: the header is
row 1), so typing and validation need not care where the data came from.

CSV takes one of two roads:

* **fast**: DuckDB's own parallel reader, every column as text, when the file is well formed:
  UTF-8, every record with as many cells as the header, no blank lines. Then a row's number is
  its position plus 2. A byte scan finds blank lines first (they would shift that arithmetic),
  and DuckDB's reject table catches the rest;
* **careful**: otherwise a streaming pass with Python's ``csv`` module numbers every record,
  reports blank rows and missing or extra cells (as Frictionless does), reads Windows-1252 if
  the file is not UTF-8, and writes a clean copy with an explicit row number for DuckDB.

XLSX sheets are streamed row by row (openpyxl's read-only mode) through the careful road;
Parquet is read by DuckDB with its own types, then seen as text like the rest.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any

import duckdb

from .store import quote_ident, quote_literal

RESERVED_NAMES = ("_id", "_row")
NULL_MARK = "\ue000"  # written for an absent cell in clean copies; read back as NULL
CHUNK = 1024 * 1024
MAX_STRUCTURE_ERRORS = 1000


@dataclass
class LabelProblem:
    """A problem with the header row (blank or duplicate label)."""

    kind: str  # blank-label, duplicate-label
    position: int
    label: str
    note: str = ""


@dataclass
class RowProblem:
    """A problem with a whole row: blank-row, missing-cell or extra-cell."""

    kind: str
    row_number: int
    cells: list[str]
    field_number: int = 0
    cell: str = ""


@dataclass
class RawTable:
    """The staging table ``raw``: its columns, the header as written, and the problems met."""

    labels: list[str]
    names: list[str]
    row_expr: str
    types: dict[str, str] = field(default_factory=dict)  # Parquet's own column types, by name
    label_problems: list[LabelProblem] = field(default_factory=list)
    row_problems: list[RowProblem] = field(default_factory=list)
    row_problem_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    road: str = "fast"


class SourceProblem(Exception):
    """The file cannot be read as a table at all (wrong format, no header, corrupt)."""


def table_kind(fmt: str, filename: str | None) -> str | None:
    """``csv``, ``tsv``, ``xlsx`` or ``parquet`` for a loadable file; None otherwise."""
    name = (filename or "").lower()
    if name.endswith(".gz"):
        name = name[:-3]
    fmt = (fmt or "").upper()
    for ext, kind in ((".csv", "csv"), (".tsv", "tsv"), (".tab", "tsv"), (".xlsx", "xlsx"),
                      (".parquet", "parquet"), (".pq", "parquet")):
        if name.endswith(ext):
            return kind
    return {"CSV": "csv", "TSV": "tsv", "XLSX": "xlsx", "PARQUET": "parquet"}.get(fmt)


def column_names(labels: list[str]) -> tuple[list[str], list[LabelProblem], list[str]]:
    """Unique, non-empty column names for the header labels, the label problems and warnings.

    A blank label becomes ``field<N>`` (as Frictionless names it); a repeated label gets a
    suffix. DuckDB compares names without regard to case, so ``Name`` and ``name`` are repeats
    to it even though Frictionless accepts them: the second is renamed, with a warning. ``_id``
    is the row id every table has (as in CKAN), so a column of that name is renamed too.
    """
    names: list[str] = []
    problems: list[LabelProblem] = []
    warnings: list[str] = []
    taken: set[str] = set()
    first_at: dict[str, int] = {}
    for position, label in enumerate(labels, start=1):
        label = label or ""
        name = label
        duplicate = False
        if not label.strip():
            problems.append(LabelProblem("blank-label", position, label))
            name = f"field{position}"
        elif label in first_at:
            duplicate = True
            problems.append(LabelProblem("duplicate-label", position, label, f'at position "{first_at[label]}"'))
        else:
            first_at[label] = position
        if name.lower() in RESERVED_NAMES:
            name = f"{name}_{position}"
            warnings.append(f"The column “{label}” was renamed “{name}”: {label.lower()} is a name the data store uses "
                            "itself (_id is the row id of every table).")
        candidate, n = name, 2
        while candidate.lower() in taken:
            candidate = f"{name}_{n}"
            n += 1
        if candidate != name and not duplicate:
            warnings.append(f"The column “{label}” was renamed “{candidate}”: another column has the same name "
                            "apart from upper and lower case.")
        taken.add(candidate.lower())
        names.append(candidate)
    return names, problems, warnings


# --- CSV -----------------------------------------------------------------------------------------

def _open_bytes(path: Path, gz: bool) -> IO[bytes]:
    return gzip.open(path, "rb") if gz else open(path, "rb")  # type: ignore[return-value]


def _has_blank_line(path: Path, gz: bool) -> bool:
    """True if the file has an empty line anywhere (which DuckDB skips and Frictionless counts)."""
    tail = b""
    first = True
    with _open_bytes(path, gz) as handle:
        while True:
            chunk = handle.read(CHUNK)
            if not chunk:
                return False
            data = tail + chunk
            if first and (data.startswith(b"\n") or data.startswith(b"\r\n")):
                return True
            first = False
            if b"\n\n" in data or b"\n\r\n" in data or b"\r\r" in data:
                return True
            tail = data[-2:]


def _guess_delimiter(path: Path, gz: bool, kind: str) -> str:
    """The delimiter of a CSV file: whichever of , ; | or tab its header line has most of."""
    if kind == "tsv":
        return "\t"
    with _open_bytes(path, gz) as handle:
        line = handle.readline(256 * 1024).decode("utf-8", errors="replace")
    counts: dict[str, int] = {}
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in ",;|\t":
            counts[char] = counts.get(char, 0) + 1
    return max(counts, key=lambda c: (counts[c], c == ",")) if counts else ","


def _text_stream(path: Path, gz: bool, encoding: str) -> IO[str]:
    raw = _open_bytes(path, gz)
    return io.TextIOWrapper(raw, encoding=encoding, newline="")  # type: ignore[arg-type]


def _read_header(path: Path, gz: bool, delimiter: str) -> tuple[list[str], str]:
    """The header row's labels, and the encoding they were read in (UTF-8, else Windows-1252)."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            with _text_stream(path, gz, encoding) as text:
                for record in csv.reader(text, delimiter=delimiter, quotechar='"', doublequote=True):
                    if record:
                        return record, encoding
                return [], encoding
        except UnicodeDecodeError:
            continue
    raise SourceProblem("The file is neither UTF-8 nor Windows-1252 text.")


def stage_csv(conn: duckdb.DuckDBPyConnection, path: Path, *, gz: bool, kind: str, work_dir: Path) -> RawTable:
    """Load a CSV/TSV file into ``raw`` (fast road when it is well formed, careful road otherwise)."""
    delimiter = _guess_delimiter(path, gz, kind)
    labels, header_encoding = _read_header(path, gz, delimiter)
    if not labels or all(not label.strip() for label in labels):
        raise SourceProblem("The file has no header row: the first row must name the columns.")
    names, label_problems, warnings = column_names(labels)
    if header_encoding != "cp1252" and not _has_blank_line(path, gz):
        columns = "{" + ", ".join(f"{quote_literal(n)}: 'VARCHAR'" for n in names) + "}"
        options = (f"header = true, columns = {columns}, delim = {quote_literal(delimiter)}, quote = '\"', "
                   f"escape = '\"', nullstr = {quote_literal(NULL_MARK)}, ignore_errors = true, "
                   f"store_rejects = true, rejects_table = 'raw_rejects', rejects_scan = 'raw_reject_scans', "
                   f"encoding = 'utf-8'" + (", compression = 'gzip'" if gz else ""))
        try:
            conn.execute(f"CREATE TABLE raw AS SELECT * FROM read_csv({quote_literal(str(path))}, {options})")
            rejected = conn.execute("SELECT count(*) FROM raw_rejects").fetchone()
            if rejected and rejected[0] == 0:
                return RawTable(labels, names, "(rowid + 2)", label_problems=label_problems, warnings=warnings)
        except duckdb.Error:
            pass
        conn.execute("DROP TABLE IF EXISTS raw")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            with _text_stream(path, gz, encoding) as text:
                records = csv.reader(text, delimiter=delimiter, quotechar='"', doublequote=True)
                next(records, None)  # the header, read above
                raw = _stage_rows(conn, records, labels, names, work_dir)
        except UnicodeDecodeError:
            conn.execute("DROP TABLE IF EXISTS raw")
            continue
        except csv.Error as exc:
            raise SourceProblem(f"The file is not valid CSV: {exc}.") from exc
        raw.label_problems, raw.warnings = label_problems, warnings
        if encoding == "cp1252":
            raw.warnings.append("The file is not UTF-8; it was read as Windows-1252. Save it as UTF-8 to be sure "
                                "every character is right.")
        return raw
    raise SourceProblem("The file is neither UTF-8 nor Windows-1252 text.")


def _stage_rows(conn: duckdb.DuckDBPyConnection, records: Iterable[list[str | None]], labels: list[str],
                names: list[str], work_dir: Path, header_row: int = 1) -> RawTable:
    """The careful road: number every record, note structural problems, write a clean copy, load it."""
    width = len(names)
    raw = RawTable(labels, names, "_row", road="careful")
    counts = raw.row_problem_counts

    def note(problem: RowProblem) -> None:
        counts[problem.kind] = counts.get(problem.kind, 0) + 1
        if len(raw.row_problems) < MAX_STRUCTURE_ERRORS:
            raw.row_problems.append(problem)

    clean = work_dir / f"clean-{uuid.uuid4().hex}.csv"
    try:
        with open(clean, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["_row", *names])
            row_number = header_row
            for record in records:
                row_number += 1
                cells = ["" if c is None else c for c in record]
                if not record:
                    note(RowProblem("blank-row", row_number, []))
                    continue
                if len(record) < width:
                    for position in range(len(record) + 1, width + 1):
                        note(RowProblem("missing-cell", row_number, cells, position))
                    record = [*record, *([None] * (width - len(record)))]
                elif len(record) > width:
                    for position in range(width + 1, len(record) + 1):
                        note(RowProblem("extra-cell", row_number, cells, position, cells[position - 1]))
                    record = record[:width]
                writer.writerow([row_number, *(NULL_MARK if c is None else c for c in record)])
        columns = "{'_row': 'BIGINT', " + ", ".join(f"{quote_literal(n)}: 'VARCHAR'" for n in names) + "}"
        conn.execute(f"CREATE TABLE raw AS SELECT * FROM read_csv({quote_literal(str(clean))}, header = true, "
                     f"columns = {columns}, delim = ',', quote = '\"', escape = '\"', "
                     f"nullstr = {quote_literal(NULL_MARK)}, strict_mode = true, encoding = 'utf-8')")
    finally:
        clean.unlink(missing_ok=True)
    return raw


# --- XLSX ----------------------------------------------------------------------------------------

def _cell_text(value: Any) -> str | None:
    """A spreadsheet cell as the text a CSV export would hold (None for an empty cell)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(sep="T")
    if isinstance(value, (date, time)):
        return value.isoformat()
    text = str(value)
    return text if text != "" else None


def stage_xlsx(conn: duckdb.DuckDBPyConnection, path: Path, *, work_dir: Path, sheet: str | None = None,
               header_row: int = 1) -> RawTable:
    """Load a sheet of an XLSX workbook (the first, or ``sheet`` by name or number) into ``raw``, row by row.

    ``header_row`` is the row (1-based) that names the columns; rows above it (titles, notes) are skipped.
    """
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    handle = open(path, "rb")  # a file object: stored files have no .xlsx extension for openpyxl to check
    try:
        book = load_workbook(handle, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        handle.close()
        raise SourceProblem(f"The file is not a readable XLSX workbook ({exc}).") from exc
    try:
        worksheet = _pick_sheet(book, sheet)
        rows = worksheet.iter_rows(values_only=True)
        for _ in range(max(0, header_row - 1)):
            next(rows, None)
        header = next(rows, None)
        labels = [_cell_text(v) or "" for v in (header or ())]
        while labels and not labels[-1]:
            labels.pop()
        if not labels:
            raise SourceProblem(f"Row {header_row} of the sheet “{worksheet.title}” is empty: it must name the "
                                "columns (set the resource's header_row extra if the names are further down).")
        names, label_problems, warnings = column_names(labels)

        def records() -> Iterator[list[str | None]]:
            blanks = 0
            for row in rows:
                cells = [_cell_text(v) for v in row]
                while cells and cells[-1] is None and len(cells) > len(names):
                    cells.pop()
                if all(c is None for c in cells):
                    blanks += 1  # held back: blank rows at the end of a sheet are formatting, not data
                    continue
                for _ in range(blanks):
                    yield []
                blanks = 0
                yield cells

        raw = _stage_rows(conn, records(), labels, names, work_dir, header_row)
        chosen = worksheet.title
    finally:
        book.close()
        handle.close()
    raw.label_problems, raw.warnings = label_problems, warnings
    if len(book.sheetnames) > 1:
        raw.warnings.append(f"Only the sheet “{chosen}” was loaded; the workbook has {len(book.sheetnames)} "
                            f"({', '.join(book.sheetnames)}). Set the resource's sheet extra to load another.")
    return raw


def _pick_sheet(book: Any, sheet: str | None) -> Any:
    """The worksheet named (or numbered, from 1) by ``sheet``; the first one when not given."""
    if sheet in (None, ""):
        return book.worksheets[0]
    if sheet in book.sheetnames:
        return book[sheet]
    if str(sheet).isdigit() and 1 <= int(str(sheet)) <= len(book.worksheets):
        return book.worksheets[int(str(sheet)) - 1]
    raise SourceProblem(f"The workbook has no sheet “{sheet}”; its sheets are {', '.join(book.sheetnames)}.")


# --- Parquet -------------------------------------------------------------------------------------

PARQUET_TYPES = {
    "BOOLEAN": "boolean", "TINYINT": "integer", "SMALLINT": "integer", "INTEGER": "integer", "BIGINT": "integer",
    "UTINYINT": "integer", "USMALLINT": "integer", "UINTEGER": "integer", "UBIGINT": "integer",
    "HUGEINT": "integer", "FLOAT": "number", "DOUBLE": "number", "DATE": "date", "TIME": "time",
    "TIMESTAMP": "datetime", "TIMESTAMP WITH TIME ZONE": "datetime", "TIMESTAMP_NS": "datetime",
    "TIMESTAMP_MS": "datetime", "TIMESTAMP_S": "datetime",
}


def parquet_type(duck_type: str) -> str:
    """The Table Schema type for a Parquet column's DuckDB type."""
    if duck_type.startswith("DECIMAL"):
        return "number"
    return PARQUET_TYPES.get(duck_type, "string")


def stage_parquet(conn: duckdb.DuckDBPyConnection, path: Path) -> RawTable:
    """Load a Parquet file into ``raw``: its columns as text, its own types kept aside."""
    source = f"read_parquet({quote_literal(str(path))})"
    try:
        described = conn.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    except duckdb.Error as exc:
        raise SourceProblem(f"The file is not readable Parquet ({str(exc).splitlines()[0]}).") from exc
    labels = [row[0] for row in described]
    names, label_problems, warnings = column_names(labels)
    selects = []
    types: dict[str, str] = {}
    for (label, duck_type, *_), name in zip(described, names):
        types[name] = duck_type
        column = quote_ident(label)
        if duck_type.startswith(("STRUCT", "MAP")) or duck_type.endswith("]"):
            text = f"to_json({column})::VARCHAR"
        elif duck_type == "BLOB":
            text = f"to_base64({column})"
        elif duck_type.startswith("TIMESTAMP"):
            text = f"strftime({column}::TIMESTAMP, '%Y-%m-%dT%H:%M:%S.%f')"
        else:
            text = f"{column}::VARCHAR"
        selects.append(f"{text} AS {quote_ident(name)}")
    conn.execute(f"CREATE TABLE raw AS SELECT {', '.join(selects)} FROM {source}")
    return RawTable(labels, names, "(rowid + 2)", types=types, label_problems=label_problems, warnings=warnings)


def stage(conn: duckdb.DuckDBPyConnection, kind: str, path: Path, *, gz: bool, work_dir: Path,
          options: dict[str, str] | None = None) -> RawTable:
    """Load any supported file into the staging table ``raw`` (``options``: an XLSX ``sheet`` and ``header_row``)."""
    options = options or {}
    if kind in ("csv", "tsv"):
        return stage_csv(conn, path, gz=gz, kind=kind, work_dir=work_dir)
    if kind == "xlsx":
        header_row = str(options.get("header_row") or "1")
        if not header_row.isdigit() or int(header_row) < 1:
            raise SourceProblem(f"The header_row extra must be a row number (1 or more), not “{header_row}”.")
        return stage_xlsx(conn, path, work_dir=work_dir, sheet=options.get("sheet"), header_row=int(header_row))
    if kind == "parquet":
        return stage_parquet(conn, path)
    raise SourceProblem(f"{kind} files cannot be loaded into the data store.")
