"""Frictionless Table Schema in SQL: what each field type accepts, as DuckDB expressions.

Every cell arrives as text. For each field type there is one *converter*: an SQL expression
that turns the text into the typed value, or NULL when the text does not fit the type. The same
converter serves three purposes, so they can never disagree:

* inference: a column gets the first type (integer, number, boolean, date, datetime, time,
  string) whose converter accepts every non-missing value of the whole column;
* validation: a non-missing cell whose converter gives NULL is a ``type-error``;
* loading: the table's column is the converter applied to every cell.

What each type accepts follows the Table Schema specification and the ``frictionless`` library's
defaults (checked against it in the tests), with one deliberate difference in inference: a
column with numbers written with leading zeros ("007") is inferred as text, because such columns
are codes and turning them into numbers would lose the zeros.

Constants from a publisher's schema (missing values, formats, constraint values) are passed as
query parameters through :class:`Params`, never written into the SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...core.errors import ValidationFailed
from .store import quote_ident

SQL_TYPES = {
    "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN", "date": "DATE", "datetime": "TIMESTAMP",
    "time": "TIME", "year": "BIGINT", "object": "JSON", "array": "JSON",
}
# Field types CKAN clients know (datastore_create's type names).
CKAN_TYPES = {
    "integer": "int", "year": "int", "number": "numeric", "boolean": "bool", "date": "date",
    "datetime": "timestamp", "time": "time", "object": "json", "array": "json",
}
KNOWN_TYPES = ("string", "number", "integer", "boolean", "object", "array", "date", "time", "datetime", "year",
               "yearmonth", "duration", "geopoint", "geojson", "any")
INFERENCE_ORDER = ("integer", "number", "boolean", "date", "datetime", "time")
DEFAULT_TRUE = ["true", "True", "TRUE", "1"]
DEFAULT_FALSE = ["false", "False", "FALSE", "0"]
GSS_PATTERN = "[EWSN][0-9]{8}"

_INTEGER = r"[+-]?[0-9]+"
_PLAIN_INTEGER = r"[+-]?(0|[1-9][0-9]*)"
_NUMBER = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(NaN|INF|Infinity|nan|inf)"
_PLAIN_NUMBER = r"[+-]?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
_DATE = r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
_TIME = r"[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
_OFFSET = r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)"
_DATETIME_NAIVE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"


class Params:
    """Query parameters collected while an SQL text is built: ``p.add(value)`` returns ``$n``.

    Numbered placeholders, so a fragment that uses a value may appear in a query more than once.
    """

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        """Keep ``value`` and return its placeholder."""
        self.values.append(value)
        return f"${len(self.values)}"

    def in_list(self, values: list[Any]) -> str:
        """``(?, ?, ...)`` for the values."""
        return "(" + ", ".join(self.add(v) for v in values) + ")"


@dataclass
class Field:
    """One field of a Table Schema, as the loader uses it."""

    name: str
    type: str = "string"
    format: str = "default"
    descriptor: dict[str, Any] = field(default_factory=dict)

    @property
    def sql_type(self) -> str:
        """The DuckDB column type the field is stored as."""
        return SQL_TYPES.get(self.type, "VARCHAR")

    @property
    def ckan_type(self) -> str:
        """The type name CKAN's datastore would report for the field."""
        return CKAN_TYPES.get(self.type, "text")

    @property
    def constraints(self) -> dict[str, Any]:
        """The field's constraints (may be empty)."""
        value = self.descriptor.get("constraints")
        return value if isinstance(value, dict) else {}

    @property
    def type_note(self) -> str:
        """``type/format``, as Frictionless names the type in its errors."""
        return f"{self.type}/{self.format or 'default'}"


def parse_schema(descriptor: dict[str, Any]) -> tuple[list[Field], list[str]]:
    """The fields and the missing values of a declared Table Schema; 422 if it cannot be used."""
    fields_in = descriptor.get("fields")
    problems: list[str] = []
    if not isinstance(fields_in, list) or not fields_in:
        raise ValidationFailed("The Table Schema has no fields.", {"table_schema": "Give at least one field."})
    fields: list[Field] = []
    seen: set[str] = set()
    for number, item in enumerate(fields_in, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            problems.append(f"field {number} has no name")
            continue
        kind = str(item.get("type") or "string")
        if kind not in KNOWN_TYPES:
            problems.append(f"field '{item['name']}' has an unknown type '{kind}'")
        if item["name"].lower() in seen:
            problems.append(f"field '{item['name']}' appears twice (names are compared without regard to case)")
        if item["name"].lower() == "_id":
            problems.append("the name _id is taken by the row id every table has; rename that field")
        seen.add(item["name"].lower())
        fmt = str(item.get("format") or "default")
        if fmt.startswith("fmt:"):
            fmt = fmt[4:]
        fields.append(Field(item["name"], kind, fmt, item))
    missing = descriptor.get("missingValues", [""])
    if not isinstance(missing, list) or not all(isinstance(v, str) for v in missing):
        problems.append("missingValues must be a list of strings")
        missing = [""]
    if problems:
        raise ValidationFailed("The Table Schema cannot be used: " + "; ".join(problems) + ".",
                               {"table_schema": "; ".join(problems)})
    return fields, list(missing)


def primary_key(descriptor: dict[str, Any] | None) -> list[str]:
    """The primary key's field names (empty if none)."""
    value = (descriptor or {}).get("primaryKey")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def missing_sql(cell: str, missing: list[str], p: Params) -> str:
    """True where the cell is missing (NULL or one of the missing values)."""
    if not missing:
        return f"({cell} IS NULL)"
    return f"({cell} IS NULL OR {cell} IN {p.in_list(missing)})"


def converter_sql(f: Field, cell: str, p: Params, *, inferring: bool = False, trusted: bool = False) -> str:
    """The SQL expression turning the text ``cell`` into the field's type (NULL if it does not fit).

    ``inferring`` applies inference's stricter reading (no leading zeros); ``trusted`` is for a
    column already shown to hold only values the type accepts, where a plain cast gives the same
    result as the full check, faster.
    """
    kind, fmt, d = f.type, f.format, f.descriptor
    if trusted and fmt == "default" and not d:
        if kind in ("integer", "number"):
            return f"TRY_CAST(trim({cell}) AS {f.sql_type})"
        if kind in ("date", "time"):
            return f"TRY_CAST({cell} AS {f.sql_type})"
    if kind in ("integer", "number"):
        text = f"trim({cell})"
        if d.get("groupChar"):
            text = f"replace({text}, {p.add(str(d['groupChar']))}, '')"
        if kind == "number" and d.get("decimalChar") and d["decimalChar"] != ".":
            text = f"replace({text}, {p.add(str(d['decimalChar']))}, '.')"
        if d.get("bareNumber") is False:
            text = f"regexp_replace({text}, '^[^0-9+.-]+|[^0-9.]+$', '', 'g')"
        if kind == "integer":
            pattern = _PLAIN_INTEGER if inferring else _INTEGER
            return f"(CASE WHEN regexp_full_match({text}, '{pattern}') THEN TRY_CAST({text} AS BIGINT) END)"
        pattern = _PLAIN_NUMBER if inferring else _NUMBER
        return f"(CASE WHEN regexp_full_match({text}, '{pattern}') THEN TRY_CAST({text} AS DOUBLE) END)"
    if kind == "boolean":
        trues = d.get("trueValues") if isinstance(d.get("trueValues"), list) else DEFAULT_TRUE
        falses = d.get("falseValues") if isinstance(d.get("falseValues"), list) else DEFAULT_FALSE
        return (f"(CASE WHEN {cell} IN {p.in_list([str(v) for v in trues])} THEN true "
                f"WHEN {cell} IN {p.in_list([str(v) for v in falses])} THEN false END)")
    if kind == "date":
        if fmt == "default":
            return f"(CASE WHEN regexp_full_match({cell}, '{_DATE}') THEN TRY_CAST({cell} AS DATE) END)"
        if fmt == "any":
            return (f"COALESCE(CASE WHEN regexp_full_match({cell}, '{_DATE}') THEN TRY_CAST({cell} AS DATE) END, "
                    f"try_strptime({cell}, '%d/%m/%Y')::DATE, try_strptime({cell}, '%d %B %Y')::DATE, "
                    f"try_strptime({cell}, '%d %b %Y')::DATE)")
        return f"try_strptime({cell}, {p.add(fmt)})::DATE"
    if kind == "datetime":
        if fmt in ("default", "any"):
            naive = f"regexp_full_match({cell}, '{_DATETIME_NAIVE}')"
            if trusted:  # every value is an ISO date-time: only those with an offset need the slow path
                offset = f"(right({cell}, 1) = 'Z' OR contains(substr({cell}, 20), '+') OR contains(substr({cell}, 20), '-'))"
                return (f"(CASE WHEN {offset} THEN (TRY_CAST({cell} AS TIMESTAMPTZ) AT TIME ZONE 'UTC') "
                        f"ELSE TRY_CAST({cell} AS TIMESTAMP) END)")
            return (f"(CASE WHEN {naive} THEN TRY_CAST({cell} AS TIMESTAMP) "
                    f"WHEN regexp_full_match({cell}, '{_DATETIME_NAIVE}{_OFFSET}') "
                    f"THEN (TRY_CAST({cell} AS TIMESTAMPTZ) AT TIME ZONE 'UTC') END)")
        return f"try_strptime({cell}, {p.add(fmt)})::TIMESTAMP"
    if kind == "time":
        if fmt in ("default", "any"):
            return f"(CASE WHEN regexp_full_match({cell}, '{_TIME}') THEN TRY_CAST({cell} AS TIME) END)"
        return f"try_strptime({cell}, {p.add(fmt)})::TIME"
    if kind == "year":
        return f"(CASE WHEN regexp_full_match(trim({cell}), '[0-9]{{4}}') THEN TRY_CAST(trim({cell}) AS BIGINT) END)"
    if kind in ("object", "array"):
        wanted = "OBJECT" if kind == "object" else "ARRAY"
        return f"(CASE WHEN json_valid({cell}) AND json_type({cell}::JSON) = '{wanted}' THEN {cell}::JSON END)"
    return cell  # string, any and the types stored as text (geopoint, geojson, duration, yearmonth)


def constraint_checks(f: Field, cell: str, typed: str, p: Params) -> list[tuple[str, str]]:
    """(SQL condition that is true for a bad value, Frictionless note) per value constraint of a field."""
    c = f.constraints
    checks: list[tuple[str, str]] = []
    sql_type = f.sql_type
    if "enum" in c and isinstance(c["enum"], list):
        values = [str(v) for v in c["enum"]]
        if sql_type == "VARCHAR":
            checks.append((f"{cell} NOT IN {p.in_list(values)}", f'constraint "enum" is "{_py_list(c["enum"])}"'))
        else:
            casts = ", ".join(f"TRY_CAST({p.add(v)} AS {sql_type})" for v in values)
            checks.append((f"{typed} NOT IN ({casts})", f'constraint "enum" is "{_py_list(c["enum"])}"'))
    for name, op in (("minimum", "<"), ("maximum", ">"), ("exclusiveMinimum", "<="), ("exclusiveMaximum", ">=")):
        if name in c and c[name] is not None and sql_type != "JSON":
            bound = f"TRY_CAST({p.add(str(c[name]))} AS {sql_type})"
            checks.append((f"{typed} {op} {bound}", f'constraint "{name}" is "{c[name]}"'))
    for name, op in (("minLength", "<"), ("maxLength", ">")):
        if name in c and isinstance(c[name], int) and f.type in ("string", "any"):
            checks.append((f"length({cell}) {op} {p.add(int(c[name]))}", f'constraint "{name}" is "{c[name]}"'))
    if isinstance(c.get("pattern"), str) and f.type in ("string", "any"):
        checks.append((f"NOT regexp_full_match({cell}, {p.add(c['pattern'])})",
                       f'constraint "pattern" is "{c["pattern"]}"'))
    return checks


def _py_list(values: list[Any]) -> str:
    return "[" + ", ".join(repr(v) for v in values) + "]"


def infer_field(name: str, counts: dict[str, int], nonmissing: int) -> Field:
    """The first type whose converter accepted every non-missing value (string if none did)."""
    if nonmissing:
        for kind in INFERENCE_ORDER:
            if counts.get(kind, 1) == 0:
                return Field(name, kind)
    return Field(name, "string")


def describe_fields(fields: list[Field], declared: dict[str, Any] | None) -> dict[str, Any]:
    """The Table Schema the table was loaded with (the declared one, names as loaded)."""
    out_fields = []
    for f in fields:
        item = {k: v for k, v in f.descriptor.items() if k not in ("name", "type", "format")}
        item = {"name": f.name, "type": f.type, **({"format": f.format} if f.format != "default" else {}), **item}
        out_fields.append(item)
    schema: dict[str, Any] = {"fields": out_fields}
    if declared:
        for key, value in declared.items():
            if key != "fields":
                schema[key] = value
    return schema


def column_list(fields: list[Field]) -> str:
    """The quoted column names, comma-separated."""
    return ", ".join(quote_ident(f.name) for f in fields)
