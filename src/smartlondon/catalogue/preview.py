"""Previews of tabular files: the first rows of a CSV (plain or gzipped) or of an XLSX sheet.

Files are read as streams and only as far as the preview needs, whatever their size: the CSV
reader stops after the requested rows (and after a byte budget, for files with enormous lines),
and XLSX sheets are opened read-only, which openpyxl streams row by row. Every value is shown as
text, exactly as written: a preview never guesses types from the first rows.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any

from .formats import normalise_format

SAMPLE_BYTES = 64 * 1024
MAX_CELL_CHARS = 500
MAX_COLUMNS = 200
LINE_CHUNK = 1024 * 1024
READ_BUDGET = 32 * 1024 * 1024
TABLE_FORMATS = ("CSV", "TSV", "XLSX")


@dataclass
class Preview:
    """The first rows of a table: its column names, the rows as text, and whether there is more."""

    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    truncated: bool = False
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The preview as JSON-ready data."""
        return asdict(self)


def can_preview(fmt: str | None, filename: str | None) -> bool:
    """True if a file of this format and name can be previewed as a table."""
    return _kind(fmt, filename) is not None


def preview_table(path: Path, fmt: str, filename: str, rows: int = 100) -> Preview | None:
    """The first ``rows`` rows of a CSV/TSV (optionally .gz) or XLSX file; None if not a table format."""
    kind = _kind(fmt, filename)
    if kind is None:
        return None
    rows = max(0, rows)
    try:
        if kind == "xlsx":
            return _preview_xlsx(path, rows)
        return _preview_csv(path, (filename or "").lower().endswith(".gz"), rows, kind == "tsv")
    except (OSError, EOFError, csv.Error, ValueError, KeyError, TypeError) as exc:
        return Preview(columns=[], rows=[], truncated=False,
                       note=f"This file could not be previewed ({_describe(exc)}). Download it to open it.")


def _kind(fmt: str | None, filename: str | None) -> str | None:
    name = (filename or "").lower()
    if name.endswith(".gz"):
        name = name[:-3]
    fmt_name = normalise_format(fmt)
    if name.endswith(".xlsx") or (fmt_name == "XLSX" and not name.endswith((".csv", ".tsv", ".xls"))):
        return "xlsx"
    if name.endswith(".tsv") or (fmt_name == "TSV" and not name.endswith(".csv")):
        return "tsv"
    if name.endswith(".csv") or fmt_name == "CSV":
        return "csv"
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text[:200]


# --- CSV -------------------------------------------------------------------------------------

def _open_binary(path: Path, gzipped: bool) -> IO[bytes]:
    return gzip.open(path, "rb") if gzipped else open(path, "rb")  # noqa: SIM115


def _encoding_of(sample: bytes) -> str:
    """utf-8-sig if the sample decodes as UTF-8 (allowing a character cut at its end), else latin-1."""
    try:
        codecs.getincrementaldecoder("utf-8-sig")().decode(sample, final=False)
        return "utf-8-sig"
    except UnicodeDecodeError:
        return "latin-1"


def _dialect(sample_text: str, tab_separated: bool) -> type[csv.Dialect] | csv.Dialect:
    """The sniffed CSV dialect of a sample (whole lines only), or a sensible default."""
    cut = sample_text.rfind("\n")
    lines = sample_text[:cut] if cut > 0 else sample_text
    try:
        return csv.Sniffer().sniff(lines, delimiters="\t" if tab_separated else ",;\t|")
    except csv.Error:
        return csv.excel_tab if tab_separated else csv.excel


class _BoundedLines:
    """The lines of a text stream, read in bounded chunks, stopping after ``budget`` characters."""

    def __init__(self, handle: io.TextIOBase, budget: int) -> None:
        self.handle = handle
        self.budget = budget
        self.used = 0
        self.over_budget = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.used >= self.budget:
            self.over_budget = True
            raise StopIteration
        line = self.handle.readline(LINE_CHUNK)
        if not line:
            raise StopIteration
        self.used += len(line)
        return line


def _preview_csv(path: Path, gzipped: bool, rows: int, tab_separated: bool) -> Preview:
    with _open_binary(path, gzipped) as raw:
        sample = raw.read(SAMPLE_BYTES)
    encoding = _encoding_of(sample)
    sample_text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(sample, final=False)
    if not sample_text.strip():
        return Preview(columns=[], note="This file is empty.")
    dialect = _dialect(sample_text, tab_separated)
    with _open_binary(path, gzipped) as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
        lines = _BoundedLines(text, READ_BUDGET)
        reader = csv.reader(lines, dialect)
        header: list[str] | None = None
        body: list[list[str]] = []
        truncated = False
        for record in reader:
            if header is None:
                if not any(cell.strip() for cell in record):
                    continue
                header = record
                continue
            if not record:
                continue
            if len(body) >= rows:
                truncated = True
                break
            body.append(record)
        stopped_early = not truncated and lines.over_budget
    if header is None:
        return Preview(columns=[], note="This file has no rows.")
    preview = _shape(header, body, truncated or stopped_early)
    notes = []
    if encoding == "latin-1":
        notes.append("The file is not UTF-8; it was read as Latin-1 (ISO 8859-1).")
    if stopped_early:
        notes.append("The preview stopped early because the file has very long lines.")
    preview.note = " ".join([preview.note, *notes]).strip()
    return preview


# --- XLSX ------------------------------------------------------------------------------------

def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ") if (value.hour, value.minute, value.second) != (0, 0, 0) \
            else value.date().isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _preview_xlsx(path: Path, rows: int) -> Preview:
    from zipfile import BadZipFile

    import openpyxl

    # Open the file ourselves: stored files have no extension, which openpyxl would refuse.
    handle = open(path, "rb")  # noqa: SIM115
    try:
        book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    except (BadZipFile, OSError, KeyError, ValueError) as exc:
        handle.close()
        return Preview(columns=[], note=f"This spreadsheet could not be read ({_describe(exc)}). "
                                        "Download it to open it.")
    try:
        if not book.worksheets:
            return Preview(columns=[], note="This spreadsheet has no sheets.")
        sheet = book.worksheets[0]
        header: list[str] | None = None
        body: list[list[str]] = []
        truncated = False
        for values in sheet.iter_rows(values_only=True):
            cells = [_cell_text(v) for v in values[:MAX_COLUMNS * 2]]
            if header is None:
                if not any(c.strip() for c in cells):
                    continue
                header = cells
                continue
            if not any(c.strip() for c in cells):
                continue
            if len(body) >= rows:
                truncated = True
                break
            body.append(cells)
        sheet_count = len(book.sheetnames)
        title = sheet.title
    finally:
        book.close()
        handle.close()
    if header is None:
        return Preview(columns=[], note="The first sheet of this spreadsheet is empty.")
    # Trailing empty columns are common in spreadsheets: drop them.
    width = max([i + 1 for i, c in enumerate(header) if c.strip()]
                + [i + 1 for row in body for i, c in enumerate(row) if c.strip()] + [1])
    preview = _shape(header[:width], [row[:width] for row in body], truncated)
    if sheet_count > 1:
        preview.note = (f"This shows the first sheet, ‘{title}’, of {sheet_count}. " + preview.note).strip()
    return preview


# --- shared ----------------------------------------------------------------------------------

def _shape(header: list[str], body: list[list[str]], truncated: bool) -> Preview:
    """Give every row as many cells as there are columns, name unnamed columns, clip long cells."""
    width = min(max([len(header), *(len(r) for r in body)]), MAX_COLUMNS)
    columns = [(header[i].strip() if i < len(header) else "") or f"Column {i + 1}" for i in range(width)]
    rows = [[_clip(row[i]) if i < len(row) else "" for i in range(width)] for row in body]
    note = ""
    if max([len(header), *(len(r) for r in body)]) > MAX_COLUMNS:
        note = f"Only the first {MAX_COLUMNS} columns are shown."
    return Preview(columns=[_clip(c) for c in columns], rows=rows, truncated=truncated, note=note)


def _clip(value: str) -> str:
    return value if len(value) <= MAX_CELL_CHARS else value[: MAX_CELL_CHARS - 1] + "…"
