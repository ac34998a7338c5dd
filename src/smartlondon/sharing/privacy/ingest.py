"""Pseudonymisation at ingest: rows with direct identifiers go into the restricted store with pseudonyms instead.

Identifier columns are replaced, value by value, with the current epoch's pseudonym; the raw values are
held only in memory while a batch is converted and are never written to the store, the database or a
log. A file with any bad identifier is refused as a whole (with its line numbers) before anything loads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import NotFound, PlatformError, ValidationFailed
from ...settings import Settings
from ..models import RestrictedDataset
from ..store import IDENT, RestrictedStore
from .pseudonyms import KINDS, Pseudonymiser, normalise

BATCH = 10_000
STORE_TYPES = {"BIGINT": "BIGINT", "INTEGER": "BIGINT", "SMALLINT": "BIGINT", "TINYINT": "BIGINT",
               "DOUBLE": "DOUBLE", "FLOAT": "DOUBLE", "BOOLEAN": "BOOLEAN", "DATE": "DATE", "TIMESTAMP": "TIMESTAMP"}


def pseudonymised_rows(pseudonymiser: Pseudonymiser, rows: Iterable[tuple[Any, ...]], positions: dict[int, str],
                       epoch: str | None = None) -> Iterator[tuple[Any, ...]]:
    """The rows with the value at each identifier position replaced by its pseudonym (None stays None)."""
    epoch = epoch or pseudonymiser.current_epoch()
    for row in rows:
        values = list(row)
        for index, kind in positions.items():
            if values[index] is not None and str(values[index]).strip() != "":
                values[index] = pseudonymiser.pseudonym(kind, str(values[index]), epoch=epoch)
            else:
                values[index] = None
        yield tuple(values)


def ingest_rows(store: RestrictedStore, pseudonymiser: Pseudonymiser, table: str, columns: dict[str, str],
                rows: Iterable[tuple[Any, ...]], identifiers: dict[str, str], *, subject_column: str) -> int:
    """Pseudonymise the identifier columns of ``rows`` and append them to ``table``; returns rows loaded."""
    names = list(columns)
    for column, kind in identifiers.items():
        if column not in columns:
            raise ValidationFailed(f"The identifier column '{column}' is not one of the columns.",
                                   {"identifiers": f"Use one of {', '.join(names)}."})
        if kind not in KINDS:
            raise ValidationFailed(f"Unknown identifier kind '{kind}'.",
                                   {"identifiers": f"Use one of {', '.join(KINDS)}."})
    if subject_column not in identifiers:
        raise ValidationFailed("The subject column must be one of the identifier columns.",
                               {"subject_column": "Name the column that identifies the person."})
    positions = {names.index(c): k for c, k in identifiers.items()}
    kinds = {**columns, **{c: "VARCHAR" for c in identifiers}}
    return store.load_rows(table, kinds, pseudonymised_rows(pseudonymiser, rows, positions),
                           subject_column=subject_column)


def _dataset(session: Session, slug: str) -> RestrictedDataset:
    found = session.scalar(select(RestrictedDataset).where(RestrictedDataset.slug == slug))
    if found is None:
        raise NotFound(f"There is no restricted dataset '{slug}'. Register it first (docs/sharing.md).")
    return found


def ingest_csv(session: Session, settings: Settings, *, dataset: str, path: Path, identifiers: dict[str, str],
               progress: Callable[[int], None] | None = None, total: Callable[[int], None] | None = None) -> int:
    """Load a CSV file into a restricted dataset, its identifier columns pseudonymised; returns rows loaded.

    ``identifiers`` maps each CSV column holding a direct identifier to its kind; the first one is the
    person (it becomes the dataset's subject column). Other CSV columns are loaded under their names in
    lower case, with the types DuckDB reads from the whole file.
    """
    target = _dataset(session, dataset)
    if not identifiers:
        raise ValidationFailed("Name at least one identifier column.",
                               {"identifier": "Give --identifier KIND=COLUMN, such as nhs_number=NHS_NUMBER."})
    if not path.is_file():
        raise NotFound(f"There is no file at {path}.")
    reader = duckdb.connect(":memory:")
    try:
        def literal(text: str) -> str:
            return "'" + text.replace("'", "''") + "'"

        types_sql = "{" + ", ".join(f"{literal(c)}: 'VARCHAR'" for c in identifiers) + "}"
        try:
            reader.execute(f"CREATE VIEW src AS SELECT * FROM read_csv({literal(str(path))}, header = true, "
                           f"sample_size = -1, types = {types_sql})")
            described = reader.execute("DESCRIBE src").fetchall()
        except duckdb.Error as exc:
            raise ValidationFailed(f"The file could not be read as CSV: {str(exc).splitlines()[0]}",
                                   {"file": "Send a CSV file with a header row and the named columns."}) from exc
        source = [row[0] for row in described]
        missing = [c for c in identifiers if c not in source]
        if missing:
            raise ValidationFailed(f"The file has no column {', '.join(missing)}.",
                                   {"identifier": f"The columns are: {', '.join(source)}."})
        subject_csv = next(iter(identifiers))
        out_names = [target.subject_column if c == subject_csv and target.subject_column else
                     (f"{identifiers[c]}_pseudonym" if c in identifiers else c.strip().lower()) for c in source]
        bad = [n for n in out_names if not IDENT.match(n or "")]
        if bad:
            raise ValidationFailed(f"These column names cannot be stored: {', '.join(map(str, bad))}.",
                                   {"file": "Use column names of letters, digits and underscores."})
        types = {name: STORE_TYPES.get(str(row[1]).upper(), "VARCHAR") for name, row in zip(out_names, described)}
        quoted = ", ".join('"' + c.replace('"', '""') + '"' for c in identifiers)
        # first pass: every identifier must be valid before anything is written
        cursor = reader.execute(f"SELECT {quoted} FROM src")
        problems: list[str] = []
        line, rows = 1, 0
        while batch := cursor.fetchmany(BATCH):
            for values in batch:
                line += 1
                for column, value in zip(identifiers, values):
                    if value is None or not str(value).strip():
                        continue
                    try:
                        normalise(identifiers[column], str(value))
                    except PlatformError as exc:
                        if len(problems) < 10:
                            problems.append(f"line {line}, {column}: {next(iter(exc.fields.values()), exc.message)}")
            rows += len(batch)
        if problems:
            raise ValidationFailed(f"The file has invalid identifiers; nothing was loaded. {'; '.join(problems)}",
                                   {"file": "Correct these lines and load the file again."})
        if total:
            total(rows)
        store = RestrictedStore(settings)
        pseudonymiser = Pseudonymiser(settings)
        data = reader.execute("SELECT * FROM src")

        def stream() -> Iterator[tuple[Any, ...]]:
            while batch := data.fetchmany(BATCH):
                yield from batch
                if progress:
                    progress(len(batch))

        mapping = {out_names[source.index(c)]: kind for c, kind in identifiers.items()}
        return ingest_rows(store, pseudonymiser, target.table_name, types, stream(), mapping,
                           subject_column=out_names[source.index(subject_csv)])
    finally:
        reader.close()
