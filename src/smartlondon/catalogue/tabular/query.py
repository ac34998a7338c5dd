"""The query service: CKAN's ``datastore_search``, ``datastore_info`` and ``datastore_search_sql``.

Plain functions over a session, an actor and the settings; the CKAN actions (``actions.py``) and
the dump route call them. Answers have CKAN's shape. Tables are found by resource id, and only
resources of datasets the actor may see are reachable (``datastore_search_sql``: only public
ones). Column names are always quoted identifiers checked against the table's own columns, and
every value from the request is a bound parameter: nothing a client sends is pasted into SQL.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import threading
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import duckdb
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.accounts import Actor
from ...core.errors import Forbidden, NotFound, ValidationFailed
from ...settings import Settings
from ..models import Dataset, Resource
from ..service import visible_to
from .loader import store_for
from .models import TabularTable
from .schema import Params
from .sql_guard import referenced_tables
from .store import quote_ident

RECORDS_FORMATS = ("objects", "lists", "csv", "tsv")
DEFAULT_LIMIT = 100
SEARCH_PATH = "/api/3/action/datastore_search"
TRUE_WORDS = {"true", "yes", "t", "y", "1", "on"}

# DuckDB column types as CKAN's datastore names them.
_CKAN_TYPES = {"BIGINT": "int", "INTEGER": "int", "SMALLINT": "int", "TINYINT": "int", "HUGEINT": "int",
               "UBIGINT": "int", "UINTEGER": "int", "USMALLINT": "int", "UTINYINT": "int",
               "DOUBLE": "numeric", "FLOAT": "numeric", "BOOLEAN": "bool", "DATE": "date", "TIME": "time",
               "TIMESTAMP": "timestamp", "TIMESTAMP WITH TIME ZONE": "timestamptz", "JSON": "json",
               "VARCHAR": "text", "UUID": "text", "BLOB": "bytea"}


def ckan_type(duck_type: str) -> str:
    """The CKAN datastore type name of a DuckDB column type."""
    if duck_type.startswith("DECIMAL"):
        return "numeric"
    if duck_type.endswith("[]"):
        return "_" + ckan_type(duck_type[:-2])
    return _CKAN_TYPES.get(duck_type.upper(), "text")


def _invalid(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{name}: {message}", {name: [message]})  # type: ignore[dict-item]


# --- finding a table ---------------------------------------------------------------------------------------

@dataclass
class Table:
    """A resource's loaded table, found and allowed."""

    name: str
    resource_id: int
    dataset_slug: str
    status: str
    table_schema: dict[str, Any] | None
    schema_source: str

    def field_info(self) -> dict[str, dict[str, str]]:
        """CKAN's data dictionary ``info`` per field: the schema's title and description."""
        info: dict[str, dict[str, str]] = {}
        for item in (self.table_schema or {}).get("fields", []):
            if isinstance(item, dict) and (item.get("title") or item.get("description")):
                info[str(item.get("name"))] = {"label": str(item.get("title") or ""),
                                               "notes": str(item.get("description") or ""), "type_override": ""}
        return info


@dataclass
class _Visibility:
    """What ``visible_to`` needs to know about a dataset."""

    state: str
    private: bool
    organisation_id: int


def find_table(session: Session, actor: Actor, resource_id: Any) -> Table:
    """The loaded table of a resource the actor may see; 404 otherwise (as CKAN says it).

    One query, of only the columns needed: this runs before every search.
    """
    if not isinstance(resource_id, str) or not resource_id.strip():
        raise _invalid("resource_id", "Missing value")
    rid = resource_id.strip()
    found = session.execute(
        select(Resource.id, Dataset.slug, Dataset.state, Dataset.private, Dataset.organisation_id,
               TabularTable.table_name, TabularTable.status, TabularTable.available, TabularTable.table_schema,
               TabularTable.schema_source)
        .join(Dataset, Dataset.id == Resource.dataset_id)
        .outerjoin(TabularTable, TabularTable.resource_id == Resource.id)
        .where(Resource.uuid == rid)).first()
    if found is None or not visible_to(actor, _Visibility(found.state, found.private, found.organisation_id)):  # type: ignore[arg-type]
        raise NotFound(f'Resource "{rid}" was not found.')
    if found.table_name is None or not found.available:
        hint = {"pending": " Its data is waiting to be loaded; try again shortly.",
                "loading": " Its data is being loaded; try again shortly.",
                "failed": " Loading its data failed; see its validation report."}.get(found.status or "", "")
        raise NotFound(f'Resource "{rid}" was not found in the datastore.{hint}')
    return Table(found.table_name, found.id, found.slug, found.status, found.table_schema, found.schema_source)


def columns_of(conn: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """The table's columns and their DuckDB types (empty if there is no such table)."""
    try:
        rows = conn.execute(f"DESCRIBE SELECT * FROM {quote_ident(table)}").fetchall()
    except duckdb.CatalogException:
        return []
    return [(r[0], r[1]) for r in rows]


# --- parameters ---------------------------------------------------------------------------------------------

def as_int(params: dict[str, Any], name: str, default: int) -> int:
    """A whole, non-negative number parameter; CKAN's "Invalid integer" or "Must be a natural number" if not."""
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = int(value)
    except (TypeError, ValueError):
        raise _invalid(name, "Invalid integer") from None
    if number < 0:
        raise _invalid(name, "Must be a natural number")
    return number


def as_bool(params: dict[str, Any], name: str, default: bool) -> bool:
    """A true/false parameter (true, yes, t, y, 1, on mean true)."""
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUE_WORDS


def as_json(params: dict[str, Any], name: str) -> Any:
    """A parameter that may come as JSON text (GET) or as an object or list (POST)."""
    value = params.get(name)
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            raise _invalid(name, "Could not parse as valid JSON") from None
    return value


def name_list(value: Any, name: str) -> list[str] | None:
    """Field names given as a list or a comma-separated string (None when not given)."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        return [part.strip() for part in _split_commas(value) if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value]
    raise _invalid(name, "Not a list of strings")


def _split_commas(text: str) -> list[str]:
    """Split on commas outside double quotes."""
    parts, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def unquote(name: str) -> str:
    """A field name without the double quotes a client may put around it."""
    name = name.strip()
    if len(name) >= 2 and name[0] == '"' and name[-1] == '"':
        return name[1:-1].replace('""', '"')
    return name


def parse_sort(value: Any, known: dict[str, str]) -> list[tuple[str, str]]:
    """CKAN's sort: "field1, field2 desc" (names may be double-quoted); a list of such clauses too."""
    clauses: list[str] = []
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, str):
                raise _invalid("sort", "Not a list of strings")
            clauses += _split_commas(item)
    elif isinstance(value, str):
        clauses = _split_commas(value)
    elif value not in (None, ""):
        raise _invalid("sort", "Not a string")
    out: list[tuple[str, str]] = []
    for clause in clauses:
        clause = clause.strip()
        if not clause:
            continue
        name, direction = clause, "asc"
        match = re.match(r'^(.*?)\s+(asc|desc)$', clause, re.IGNORECASE)
        if unquote(clause) not in known and match:
            name, direction = match.group(1), match.group(2).lower()
        name = unquote(name)
        if name not in known:
            raise _invalid("sort", f'field "{name}" not in table')
        out.append((name, direction))
    return out


# --- datastore_search --------------------------------------------------------------------------------------

def datastore_search(session: Session, actor: Actor, settings: Settings, params: dict[str, Any],
                     *, path: str = SEARCH_PATH) -> dict[str, Any]:
    """Search a resource's table, as CKAN's ``datastore_search`` does (same parameters, same answer)."""
    table = find_table(session, actor, params.get("resource_id", params.get("id")))
    limit = min(as_int(params, "limit", DEFAULT_LIMIT), settings.datastore_rows_max)
    offset = as_int(params, "offset", 0)
    include_total = as_bool(params, "include_total", True)
    distinct = as_bool(params, "distinct", False)
    records_format = str(params.get("records_format") or "objects")
    if records_format not in RECORDS_FORMATS:
        raise _invalid("records_format", f"Value must be one of {list(RECORDS_FORMATS)}")
    filters = as_json(params, "filters")
    if filters in (None, ""):
        filters = {}
    if not isinstance(filters, dict):
        raise _invalid("filters", "Not a JSON object")
    q = as_json(params, "q")
    store = store_for(settings)
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
                raise _invalid("fields", f'field "{unknown[0]}" not in table')
        selected = chosen or [name for name, _ in columns]
        p = Params()
        where = where_clauses(filters, q, known, p)
        sort = parse_sort(params.get("sort"), known)
        if not sort and not distinct:
            sort = [("_id", "asc")]
        elif sort and not distinct and "_id" not in {n for n, _ in sort}:
            sort.append(("_id", "asc"))  # a stable order, so pages never overlap
        select_list = ", ".join(quote_ident(n) for n in selected)
        source = f"{quote_ident(table.name)}{' WHERE ' + ' AND '.join(where) if where else ''}"
        order = (" ORDER BY " + ", ".join(f"{quote_ident(n)} {d.upper()}" for n, d in sort)) if sort else ""
        sql = (f"SELECT {'DISTINCT ' if distinct else ''}{select_list} FROM {source}{order} "
               f"LIMIT {p.add(limit)} OFFSET {p.add(offset)}")
        try:
            rows = conn.execute(sql, p.values).fetchall()  # type: ignore[union-attr]
            total = None
            if include_total:
                count_p = Params()
                count_where = where_clauses(filters, q, known, count_p)
                count_source = f"{quote_ident(table.name)}{' WHERE ' + ' AND '.join(count_where) if count_where else ''}"
                count_sql = (f"SELECT count(*) FROM (SELECT DISTINCT {select_list} FROM {count_source})" if distinct
                             else f"SELECT count(*) FROM {count_source}")
                counted = conn.execute(count_sql, count_p.values).fetchone()  # type: ignore[union-attr]
                total = int(counted[0]) if counted else 0
        except duckdb.ConversionException as exc:
            raise _invalid("filters", f"A filter value does not fit its field's type: {_first_line(exc)}") from exc
        except duckdb.Error as exc:
            raise _invalid("query", f"Invalid query: {_first_line(exc)}") from exc
    types = {name: ("int" if name == "_id" else ckan_type(t)) for name, t in columns}
    info = table.field_info()
    fields = [{"id": n, "type": types[n], **({"info": info[n]} if n in info else {})} for n in selected]
    result: dict[str, Any] = {
        "include_total": include_total, "limit": limit, "records_format": records_format,
        "resource_id": table.name, "total_estimation_threshold": params.get("total_estimation_threshold"),
        "records": _format_records(rows, selected, [types[n] for n in selected], records_format),
        "fields": fields, "_links": _links(path, params, limit, offset),
    }
    for echoed in ("filters", "q", "sort", "distinct"):
        if params.get(echoed) not in (None, "", {}):
            result[echoed] = {"filters": filters, "q": q}.get(echoed, params[echoed])
    if "offset" in params:
        result["offset"] = offset
    if include_total:
        result["total"] = total
        result["total_was_estimated"] = False
    return result


def where_clauses(filters: dict[str, Any], q: Any, known: dict[str, str], p: Params) -> list[str]:
    """SQL conditions for CKAN's ``filters`` and ``q`` (values as parameters)."""
    conditions: list[str] = []
    for name, value in filters.items():
        if name not in known:
            raise _invalid("filters", f'field "{name}" not in table')
        column, sql_type = quote_ident(name), known[name]
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, (dict, list)) for v in values):
            raise _invalid("filters", f'the filter on "{name}" must be a value or a list of values')
        present = [v for v in values if v is not None]
        parts = []
        if present:
            cast = [f"CAST({p.add(_filter_text(v))} AS {sql_type})" for v in present]
            parts.append(f"{column} IN ({', '.join(cast)})")
        if len(present) < len(values):
            parts.append(f"{column} IS NULL")
        conditions.append("(" + " OR ".join(parts) + ")" if parts else "false")
    if isinstance(q, str) and q.strip():
        text_columns = [n for n, t in known.items() if t == "VARCHAR"] or [n for n in known if n != "_id"]
        for word in q.lower().split():
            word_p = p.add(word)
            conditions.append("(" + " OR ".join(f"contains(lower({quote_ident(n)}::VARCHAR), {word_p})"
                                                for n in text_columns) + ")")
    elif isinstance(q, dict):
        for name, text in q.items():
            if name not in known:
                raise _invalid("q", f'field "{name}" not in table')
            for word in str(text).lower().split():
                conditions.append(f"contains(lower({quote_ident(name)}::VARCHAR), {p.add(word)})")
    elif q not in (None, ""):
        raise _invalid("q", "Give q as text, or as an object of field: text")
    return conditions


def _filter_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _links(path: str, params: dict[str, Any], limit: int, offset: int) -> dict[str, str]:
    """CKAN's paging links: ``start`` without an offset, ``next`` with offset + limit."""
    def encode(values: dict[str, Any]) -> str:
        flat = {k: (json.dumps(v) if isinstance(v, (dict, list)) else str(v).lower() if isinstance(v, bool) else v)
                for k, v in values.items() if v is not None}
        return urlencode(flat)

    base = {k: v for k, v in params.items() if k != "offset"}
    return {"start": f"{path}?{encode(base)}", "next": f"{path}?{encode({**base, 'offset': offset + limit})}"}


def _json_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if kind == "json" and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


def _text_value(value: Any) -> str:
    """A value as PostgreSQL's COPY writes it (what CKAN's csv and tsv records hold)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("NaN" if math.isnan(value) else
                                                          ("Infinity" if value > 0 else "-Infinity"))
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value)


def _format_records(rows: list[tuple[Any, ...]], names: list[str], kinds: list[str], fmt: str) -> Any:
    if fmt == "objects":
        return [{n: _json_value(v, k) for n, v, k in zip(names, row, kinds)} for row in rows]
    if fmt == "lists":
        return [[_json_value(v, k) for v, k in zip(row, kinds)] for row in rows]
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
    for row in rows:
        writer.writerow([_text_value(v) for v in row])
    return out.getvalue()


# --- datastore_info --------------------------------------------------------------------------------------

def datastore_info(session: Session, actor: Actor, settings: Settings, params: dict[str, Any]) -> dict[str, Any]:
    """A table's fields and size, as CKAN's ``datastore_info`` gives them."""
    table = find_table(session, actor, params.get("resource_id", params.get("id")))
    with store_for(settings).reading() as conn:
        columns = columns_of(conn, table.name) if conn is not None else []
        if not columns:
            raise NotFound(f'Resource "{table.name}" was not found in the datastore.')
        counted = conn.execute(f"SELECT count(*) FROM {quote_ident(table.name)}").fetchone()  # type: ignore[union-attr]
    info = table.field_info()
    fields = [{"id": name, "type": ckan_type(duck_type),
               "schema": {"native_type": duck_type, "notnull": False, "index_name": None, "is_index": False,
                          "uniquekey": False},
               **({"info": info[name]} if name in info else {})}
              for name, duck_type in columns if name != "_id"]
    return {"meta": {"id": table.name, "count": int(counted[0]) if counted else 0, "table_type": "BASE TABLE",
                     "aliases": []},
            "fields": fields, "table_schema": table.table_schema, "schema_source": table.schema_source}


# --- datastore_search_sql --------------------------------------------------------------------------------------

def public_tables(session: Session, names: set[str]) -> set[str]:
    """Which of these table names are loaded tables of public resources."""
    if not names:
        return set()
    rows = session.execute(select(TabularTable.table_name).join(Resource, Resource.id == TabularTable.resource_id)
                           .join(Dataset, Dataset.id == Resource.dataset_id)
                           .where(TabularTable.table_name.in_(sorted(names)), TabularTable.available.is_(True),
                                  Dataset.private.is_(False), Dataset.state == "active"))
    return {r[0] for r in rows}


def datastore_search_sql(session: Session, actor: Actor, settings: Settings, params: dict[str, Any]) -> dict[str, Any]:
    """Run one read-only SELECT over public tables (opt-in), with a time limit and a row cap."""
    if not settings.datastore_sql_enabled:
        raise Forbidden("datastore_search_sql is not enabled on this site. Use datastore_search, or ask its "
                        "administrators to turn it on (SMARTLONDON_DATASTORE_SQL=1).")
    sql = params.get("sql")
    if not isinstance(sql, str):
        raise _invalid("sql", "Missing value")
    statement, names = referenced_tables(sql)
    allowed = public_tables(session, names)
    refused = sorted(names - allowed)
    if refused:
        raise Forbidden(f'Not authorized to read resource "{refused[0]}": the query may only read the tables of '
                        "public resources, named by their resource id.")
    cap = settings.datastore_rows_max
    wrapped = f"SELECT * FROM (\n{statement}\n) AS _query LIMIT {int(cap) + 1}"
    with store_for(settings).sandbox(sorted(allowed)) as conn:
        if conn is None:
            raise NotFound("The datastore is empty.")
        timer = threading.Timer(settings.datastore_sql_timeout, conn.interrupt)
        timer.start()
        try:
            cursor = conn.execute(wrapped)
            rows = cursor.fetchall()
            description = cursor.description or []
        except duckdb.InterruptException:
            raise _invalid("query", f"Query took too long (the limit is {settings.datastore_sql_timeout:g} "
                                    "seconds)") from None
        except duckdb.PermissionException as exc:
            raise Forbidden(f"Not allowed: {_first_line(exc)}") from exc
        except duckdb.Error as exc:
            raise _invalid("query", _first_line(exc)) from exc
        finally:
            timer.cancel()
    names_out = [d[0] for d in description]
    kinds = [ckan_type(str(d[1])) for d in description]
    truncated = len(rows) > cap
    rows = rows[:cap]
    result: dict[str, Any] = {"sql": sql, "fields": [{"id": n, "type": k} for n, k in zip(names_out, kinds)],
                              "records": _format_records(rows, names_out, kinds, "objects")}
    if truncated:
        result["records_truncated"] = True
    return result


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
