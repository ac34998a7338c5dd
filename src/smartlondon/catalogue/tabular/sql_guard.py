"""What ``datastore_search_sql`` accepts: one read-only SELECT over resource tables, nothing else.

The SQL is parsed by DuckDB's own parser (``extract_statements`` and ``json_serialize_sql``), so
the check sees exactly what DuckDB would run, not what a regular expression guesses:

* exactly one statement, and it must be a SELECT (no DDL, DML, PRAGMA, SET, ATTACH, COPY,
  EXPORT, INSTALL/LOAD, CALL, EXPLAIN ...);
* every table it reads is a plain table named by a resource id (or a common table expression
  of the query itself), with no schema or database in front of it;
* no table functions (``read_csv``, ``read_parquet``, ``glob``, ``query``, ``duckdb_*``,
  ``sniff_csv`` ...) except the pure ones that only make rows (``range``, ``generate_series``,
  ``unnest``), no ``SHOW``/``DESCRIBE``, and no functions that read settings or variables.

This check is the first of three walls: the query then runs in a sandbox connection that can
see only views of the allowed tables, with file and network access switched off and its
configuration locked (``store.sandbox``).
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from ...core.errors import Forbidden, ValidationFailed

ALLOWED_REFS = {"BASE_TABLE", "JOIN", "SUBQUERY", "EMPTY", "EXPRESSION_LIST"}
QUERY_NODES = {"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"}
SAFE_TABLE_FUNCTIONS = {"range", "generate_series", "unnest"}  # pure: they make rows, read nothing
DENIED_FUNCTIONS = {"current_setting", "getvariable", "getenv", "current_schemas", "duckdb_api",
                    "current_setting_value", "pragma_version", "version"}
MAX_SQL_CHARS = 100_000


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(f"sql: {message}", {"sql": [message]})  # type: ignore[dict-item]


def referenced_tables(sql: str) -> tuple[str, set[str]]:
    """The single SELECT statement (without a trailing semicolon) and the tables it reads.

    Raises 409-style validation errors for SQL that is not one SELECT, and 403 for anything it may
    not touch (table functions, qualified names, settings).
    """
    if not sql or not sql.strip():
        raise _invalid("Missing value")
    if len(sql) > MAX_SQL_CHARS:
        raise _invalid(f"The query is longer than {MAX_SQL_CHARS} characters.")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise _invalid(_first_line(exc)) from exc
    if len(statements) != 1:
        raise _invalid("Query is not a single statement.")
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        raise Forbidden(f"Only SELECT queries are allowed, not {statement.type.name}.")
    text = sql.strip().rstrip(";").strip()
    conn = duckdb.connect(":memory:")
    try:
        serialized = conn.execute("SELECT json_serialize_sql(?)", [text]).fetchone()
    except duckdb.Error as exc:
        raise _invalid(_first_line(exc)) from exc
    finally:
        conn.close()
    tree = json.loads(serialized[0]) if serialized else {}
    if tree.get("error"):
        message = str(tree.get("error_message") or "The query could not be read.")
        if "Only SELECT" in message:
            raise Forbidden("Only SELECT queries are allowed.")
        raise _invalid(message)
    if len(tree.get("statements", [])) != 1:
        raise _invalid("Query is not a single statement.")
    tables: set[str] = set()
    _walk(tree["statements"][0], frozenset(), tables)
    return text, tables


def _walk(node: Any, ctes: frozenset[str], tables: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, ctes, tables)
        return
    if not isinstance(node, dict):
        return
    cte_map = node.get("cte_map")
    if isinstance(cte_map, dict) and cte_map.get("map"):
        ctes = ctes | {str(entry.get("key", "")).lower() for entry in cte_map["map"] if isinstance(entry, dict)}
    kind = node.get("type")
    if "sample" in node and kind not in QUERY_NODES:  # a table reference
        function = node.get("function") if kind == "TABLE_FUNCTION" else None
        if (isinstance(function, dict) and str(function.get("function_name", "")).lower() in SAFE_TABLE_FUNCTIONS
                and not function.get("schema") and not function.get("catalog")):
            pass
        elif kind not in ALLOWED_REFS:
            what = {"TABLE_FUNCTION": "Table functions (such as read_csv or query) are not allowed.",
                    "SHOW_REF": "SHOW, DESCRIBE and SUMMARIZE are not allowed."}.get(
                str(kind), f"This kind of table reference ({kind}) is not allowed.")
            raise Forbidden(what)
        if kind == "BASE_TABLE":
            if node.get("schema_name") or node.get("catalog_name"):
                raise Forbidden("Name tables by their resource id alone, without a schema or database.")
            name = str(node.get("table_name", ""))
            if name.lower() not in ctes:
                tables.add(name.lower())
    if node.get("class") == "FUNCTION":
        name = str(node.get("function_name", "")).lower()
        if name in DENIED_FUNCTIONS or name.startswith(("duckdb_", "pragma_")):
            raise Forbidden(f"The function {name} is not allowed.")
        if node.get("schema") or node.get("catalog"):
            raise Forbidden("Call functions by their name alone, without a schema or database.")
    for value in node.values():
        if isinstance(value, (dict, list)):
            _walk(value, ctes, tables)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
