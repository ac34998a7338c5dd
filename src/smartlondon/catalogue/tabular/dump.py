"""Dumps of a whole table (CKAN's ``/datastore/dump/<resource_id>``) as CSV, TSV, JSON or Parquet.

DuckDB writes the dump to a temporary file with ``COPY ... TO`` (streaming, in parallel, never
the whole table in memory), under the store's read lock, which is then released: a slow client
downloading a big dump never holds up a load. The file is then streamed to the client in chunks
and deleted. The JSON dump has CKAN's shape, ``{"fields": [...], "records": [[...], ...]}``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ...core.accounts import Actor
from ...core.errors import NotFound, ValidationFailed
from ...settings import Settings
from .loader import store_for
from .query import as_bool, as_int, as_json, columns_of, name_list, parse_sort, unquote, where_clauses, ckan_type, find_table
from .schema import Params
from .store import quote_ident, quote_literal

FORMATS = {"csv": "text/csv; charset=utf-8", "tsv": "text/tab-separated-values; charset=utf-8",
           "json": "application/json", "parquet": "application/vnd.apache.parquet"}
CHUNK = 256 * 1024
_ROW_PREFIX = b'{"r":'


@dataclass
class Dump:
    """A dump written to a temporary file, ready to stream."""

    path: Path
    media_type: str
    filename: str
    fields: list[dict[str, str]]
    fmt: str
    bom: bool

    def chunks(self) -> Iterator[bytes]:
        """The dump's bytes, in chunks; the file is deleted once they have all been read (or on close)."""
        try:
            if self.bom and self.fmt in ("csv", "tsv"):
                yield "\ufeff".encode()
            if self.fmt == "json":
                yield from self._json_chunks()
                return
            with open(self.path, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    yield chunk
        finally:
            self.path.unlink(missing_ok=True)

    def _json_chunks(self) -> Iterator[bytes]:
        yield b'{"fields": ' + json.dumps(self.fields).encode() + b', "records": ['
        first = True
        batch: list[bytes] = []
        with open(self.path, "rb") as handle:
            for line in handle:
                line = line.strip()
                if not line.startswith(_ROW_PREFIX):
                    continue
                batch.append((b"" if first else b",") + line[len(_ROW_PREFIX):-1])
                first = False
                if len(batch) >= 2000:
                    yield b"".join(batch)
                    batch = []
        yield b"".join(batch) + b"]}"


def prepare_dump(session: Session, actor: Actor, settings: Settings, resource_id: str,
                 params: dict[str, Any]) -> Dump:
    """Write a table (or the part of it that ``q``/``filters``/``fields``/``sort``/``limit`` pick) to a file."""
    table = find_table(session, actor, resource_id)
    fmt = str(params.get("format") or "csv").lower()
    if fmt not in FORMATS:
        raise ValidationFailed(f"format: Choose one of {', '.join(FORMATS)}.", {"format": [f"Choose one of {', '.join(FORMATS)}"]})  # type: ignore[dict-item]
    bom = as_bool(params, "bom", False)
    store = store_for(settings)
    target = store.work_dir / f"dump-{uuid.uuid4().hex}.{fmt}"
    with store.reading() as conn:
        columns = columns_of(conn, table.name) if conn is not None else []
        if not columns:
            raise NotFound(f'Resource "{table.name}" was not found in the datastore.')
        known = dict(columns)
        chosen = name_list(params.get("fields"), "fields")
        if chosen is not None:
            chosen = [unquote(n) for n in chosen]
            unknown = [n for n in chosen if n not in known]
            if unknown:
                raise ValidationFailed(f'fields: field "{unknown[0]}" not in table', {"fields": [f'field "{unknown[0]}" not in table']})  # type: ignore[dict-item]
        selected = chosen or [n for n, _ in columns]
        filters = as_json(params, "filters") or {}
        if not isinstance(filters, dict):
            raise ValidationFailed("filters: Not a JSON object", {"filters": ["Not a JSON object"]})  # type: ignore[dict-item]
        p = Params()
        where = where_clauses(filters, as_json(params, "q"), known, p)
        sort = parse_sort(params.get("sort"), known) or [("_id", "asc")]
        order = ", ".join(f"{quote_ident(n)} {d.upper()}" for n, d in sort)
        limit = as_int(params, "limit", 0) if params.get("limit") not in (None, "") else None
        offset = as_int(params, "offset", 0)
        exprs = [_dump_expr(n, known[n], fmt) for n in selected]
        if fmt == "json":
            body = f"json_array({', '.join(exprs)}) AS r"
        else:
            body = ", ".join(f"{e} AS {quote_ident(n)}" for e, n in zip(exprs, selected))
        sql = (f"SELECT {body} FROM {quote_ident(table.name)}{' WHERE ' + ' AND '.join(where) if where else ''} "
               f"ORDER BY {order}" + (f" LIMIT {p.add(limit)}" if limit is not None else "")
               + (f" OFFSET {p.add(offset)}" if offset else ""))
        options = {"csv": "FORMAT csv, HEADER true", "tsv": "FORMAT csv, HEADER true, DELIMITER '\t'",
                   "json": "FORMAT json", "parquet": "FORMAT parquet, COMPRESSION zstd"}[fmt]
        try:
            conn.execute(f"COPY ({sql}) TO {quote_literal(str(target))} ({options})", p.values)  # type: ignore[union-attr]
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    fields = [{"id": n, "type": "int" if n == "_id" else ckan_type(known[n])} for n in selected]
    return Dump(target, FORMATS[fmt], f"{table.name}.{fmt}", fields, fmt, bom)


def _dump_expr(name: str, duck_type: str, fmt: str) -> str:
    """How a column is written: timestamps as ISO 8601 text in text formats, else as stored."""
    column = quote_ident(name)
    if fmt != "parquet" and duck_type.startswith("TIMESTAMP"):
        return (f"CASE WHEN microsecond({column}) % 1000000 = 0 THEN strftime({column}, '%Y-%m-%dT%H:%M:%S') "
                f"ELSE strftime({column}, '%Y-%m-%dT%H:%M:%S.%f') END")
    return column
