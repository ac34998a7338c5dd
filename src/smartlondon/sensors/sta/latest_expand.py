"""The fast path of ``Datastreams?$expand=Observations($top=1;$orderby=phenomenonTime desc)``.

"The latest value of every sensor" is the query FROST-Server users see time out. Here, when a page of
Datastreams is expanded with exactly those nested options (``$select`` allowed at both levels), the
page's JSON is built by the database in ONE statement from the last-value table ``sta_latest``:
``json_object``/``json_group_array`` on SQLite, ``json_build_object``/``json_agg`` on PostgreSQL, in
the order of the page, with the same properties, ``$select`` handling, time formats, omitted null
``properties``/``parameters`` and navigation links as :func:`serialize.entity_json` writes (tests
compare the two paths). Python then only parses the array: no per-row ORM or type processing.
The same statement serves ``Things?$expand=Datastreams/Observations(...)`` for the Datastreams
under the Things of a page.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from .serialize import _OMIT_WHEN_NULL, _plan

_TIME_COLUMNS = {"phenomenon_time_start", "phenomenon_time_end", "result_time_start", "result_time_end",
                 "result_time", "valid_time_start", "valid_time_end"}
_LATEST_HAS = {"id", "@iot.id", "@iot.selfLink", "phenomenonTime", "result"}  # columns of sta_latest
_JSON_COLUMNS = {"unit_of_measurement", "observed_area", "properties", "result", "result_quality", "parameters"}


def _time_sql(column: str, dialect: str) -> str:
    """SQL giving a timestamp as :func:`serialize.format_time` writes it (``...T...Z``, microseconds if any)."""
    if dialect == "sqlite":
        return (f"(substr({column}, 1, 10) || 'T' || substr({column}, 12, 8) || CASE WHEN length({column}) > 19 "
                f"AND substr({column}, 21, 6) <> '000000' THEN '.' || substr({column}, 21, 6) ELSE '' END || 'Z')")
    # one to_char with microseconds, then drop them when they are all zero (cheaper than testing first)
    return f"(replace(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '') || 'Z')"


def _quote(expression: str, dialect: str) -> str:
    """SQL: a text value as a JSON string (``null`` for NULL)."""
    if dialect == "sqlite":
        return f"json_quote({expression})"
    return f"coalesce(to_json({expression})::text, 'null')"


def _value_sql(alias: str, attr: str, end: str, kind: str, dialect: str) -> str:
    """SQL: one property's value as JSON text."""
    column = f"{alias}.{attr}"
    if kind == "interval":
        start_text, end_text = _time_sql(column, dialect), _time_sql(f"{alias}.{end}", dialect)
        return (f"CASE WHEN {column} IS NULL THEN 'null' WHEN {alias}.{end} IS NULL THEN '\"' || {start_text} || '\"' "
                f"ELSE '\"' || {start_text} || '/' || {end_text} || '\"' END")
    if attr in _TIME_COLUMNS:
        return f"CASE WHEN {column} IS NULL THEN 'null' ELSE '\"' || {_time_sql(column, dialect)} || '\"' END"
    if attr in _JSON_COLUMNS:   # stored as JSON text (SQLite) or jsonb (PostgreSQL): written as it is
        return f"coalesce(CAST({column} AS TEXT), 'null')"
    return _quote(column, dialect)


def _is_null_json(column: str, dialect: str) -> str:
    if dialect == "sqlite":
        return f"({column} IS NULL OR {column} = 'null')"
    return f"coalesce(jsonb_typeof({column}), 'null') = 'null'"


def _key(name: str) -> str:
    return json.dumps(name).replace("'", "''")


def _sql_text(text: str) -> str:
    """``text`` inside a SQL string literal."""
    return text.replace("'", "''")


def _literal(text: str) -> str:
    """``text`` as part of a printf/format template inside a SQL string literal."""
    return text.replace("%", "%%").replace("'", "''")


def _object_sql(set_name: str, alias: str, select: list[str] | None, skip: frozenset[str], dialect: str,
                base_url: str, extra: list[tuple[str, str]] = (),  # type: ignore[assignment]
                id_column: str = "id", tail: str = "") -> str:
    """SQL building one entity's JSON object as text with one ``printf`` (SQLite) or ``format``
    (PostgreSQL) call: constant text (keys, the service root in links) is in the template, values
    are its arguments (``extra``: more (key, JSON SQL) pairs at the end; ``tail``: SQL giving more
    ``,"key":value`` text, or ``''``, before the closing brace)."""
    with_id, with_link, properties, links = _plan(set_name, None if select is None else tuple(select), skip)
    entity_id = f"CAST({alias}.{id_column} AS TEXT)"
    link = json.dumps(f"{base_url}/{set_name}(")[:-1]   # '"http://.../Things(' : the id and ')' follow
    template: list[str] = []
    args: list[str] = []

    def add(text: str, value: str | None = None) -> None:
        template.append(_literal(text) + ("%s" if value is not None else ""))
        if value is not None:
            args.append(value)

    if with_id:
        add(f",{_key('@iot.id')}:", entity_id)
    if with_link:
        add(f",{_key('@iot.selfLink')}:{link}", entity_id)
        add(')"')
    for name, kind, attr, end in properties:
        value = _value_sql(alias, attr, end, kind, dialect)
        if name in _OMIT_WHEN_NULL:
            add("", f"CASE WHEN {_is_null_json(f'{alias}.{attr}', dialect)} THEN '' "
                    f"ELSE ',{_key(name)}:' || {value} END")
        else:
            add(f",{_key(name)}:", value)
    for key, suffix in links:
        add(f",{_key(key)}:{link}", entity_id)
        add(json.dumps(")" + suffix)[1:])
    for key, value in extra:
        add(f",{_key(key)}:", value)
    if tail:
        add("", tail)
    if not args:
        return "'{}'"
    body = "".join(template)
    function = "printf" if dialect == "sqlite" else "format"
    if body.startswith(","):
        return f"{function}('{{{body[1:]}}}', {', '.join(args)})"
    # the first piece may be an omitted property (empty): drop the comma of whichever comes first
    return f"('{{' || substr({function}('{body}}}', {', '.join(args)}), 2))"


class RawJSON(str):
    """JSON text already built (by the database), to be written into a response as it is."""


def latest_json(session: Session, datastream_ids: list[int], select: list[str] | None,
                observation_select: list[str] | None, base_url: str, more_query: str) -> list[dict[str, Any]]:
    """The Datastreams ``datastream_ids`` (in that order) as JSON, each with ``Observations`` holding
    its latest Observation (or nothing), built by one statement over ``sta_latest``; a Datastream
    with more Observations (hot or archived) gets ``Observations@iot.nextLink``, its collection's
    address followed by ``more_query`` (``?$orderby=...&$top=1&$skip=1``)."""
    return json.loads(latest_json_text(session, datastream_ids, select, observation_select, base_url, more_query))


def latest_json_text(session: Session, datastream_ids: list[int], select: list[str] | None,
                     observation_select: list[str] | None, base_url: str, more_query: str) -> RawJSON:
    """As :func:`latest_json`, the JSON array as text (no parsing in Python)."""
    if not datastream_ids:
        return RawJSON("[]")
    dialect = session.get_bind().dialect.name
    # what the last-value table holds itself needs no join to the Observation
    alone = observation_select is not None and set(observation_select) <= _LATEST_HAS
    observation = (_object_sql("Observations", "l", observation_select, frozenset(), dialect, base_url,
                               id_column="observation_id")
                   if alone else _object_sql("Observations", "o", observation_select, frozenset(), dialect, base_url))
    observations = f"CASE WHEN l.observation_id IS NULL THEN '[]' ELSE '[' || {observation} || ']' END"
    more = ("(EXISTS (SELECT 1 FROM sta_observation m WHERE m.datastream_id = d.id AND m.id <> l.observation_id) "
            "OR EXISTS (SELECT 1 FROM sta_archive_segment a WHERE a.datastream_id = d.id))")
    # the link's constant parts JSON-escaped here, so each row only adds its id (no quoting per row)
    link = json.dumps(f"{base_url}/Datastreams(", ensure_ascii=False)[:-1]
    rest = json.dumps(f")/Observations{more_query}", ensure_ascii=False)[1:]
    tail = (f"CASE WHEN {more} THEN '{_sql_text(',' + _key('Observations@iot.nextLink') + ':' + link)}' || "
            f"CAST(d.id AS TEXT) || '{_sql_text(rest)}' ELSE '' END")
    stream = _object_sql("Datastreams", "d", select, frozenset({"Observations"}), dialect, base_url,
                         [("Observations", observations)], tail=tail)
    joins = "JOIN sta_datastream d ON d.id = p.id LEFT JOIN sta_latest l ON l.datastream_id = d.id"
    if not alone:
        joins += " LEFT JOIN sta_observation o ON o.id = l.observation_id"
    if dialect == "sqlite":
        sql = (f"SELECT '[' || coalesce(group_concat(doc, ','), '') || ']' FROM (SELECT {stream} AS doc "
               f"FROM (SELECT key AS position, value AS id FROM json_each(:ids)) p {joins} ORDER BY p.position)")
        params: dict[str, Any] = {"ids": json.dumps(datastream_ids)}
    else:
        sql = (f"SELECT '[' || coalesce(string_agg({stream}, ',' ORDER BY p.position), '') || ']' "
               f"FROM unnest(CAST(:ids AS bigint[])) WITH ORDINALITY AS p(id, position) {joins}")
        params = {"ids": datastream_ids}
    return RawJSON(session.execute(text(sql), params).scalar_one())
