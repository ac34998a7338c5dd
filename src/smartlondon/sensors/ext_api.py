"""SensorThings extensions beyond the standard, under ``/sta/v1.1/ext`` (docs/sensors-extensions.md).

* ``GET /sta/v1.1/ext/aggregates``: avg/min/max/sum/count per interval for one or many Datastreams;
* ``GET /sta/v1.1/ext/latest``: the latest Observation of many Datastreams from ``sta_latest``;
* ``GET /sta/v1.1/ext/count/{EntitySet}``: the size of a whole entity set, exact where cheap,
  otherwise a declared estimate from the planner's statistics.

``ext`` is not an entity set name, so these paths never clash with STA resource paths; the router
is included before the STA read router so its catch-all ``/sta/v1.1/{path}`` does not take them.
Errors use the SensorThings error body (``{"code", "type": "error", "message"}``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select, text

from ..core.db import Database
from . import aggregates as agg
from . import archive
from .counting import count_entities
from .models import ENTITIES, Datastream
from .sta import PREFIX, StaError, base_url
from .sta.latest_expand import _literal, _quote, _value_sql
from .sta.router import CONFORMANCE
from .sta.serialize import format_interval, format_time

EXT = PREFIX + "/ext"
CONFORMANCE_BASE = "https://smartlondon.example/spec/sta-ext/"
AGGREGATES_CLASS = CONFORMANCE_BASE + "aggregates"
LATEST_CLASS = CONFORMANCE_BASE + "latest"
QC_CLASS = CONFORMANCE_BASE + "quality-control"
NGSI_LD_CLASS = CONFORMANCE_BASE + "ngsi-ld-views"
COUNT_CLASS = CONFORMANCE_BASE + "fast-count"
for _cls in (AGGREGATES_CLASS, LATEST_CLASS, QC_CLASS, NGSI_LD_CLASS, COUNT_CLASS):
    if _cls not in CONFORMANCE:
        CONFORMANCE.append(_cls)

MAX_LATEST = 10_000

router = APIRouter(tags=["SensorThings API extensions"])


def _root(request: Request) -> str:
    return base_url(request.app.state.settings.base_url)


def _single(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise StaError(400, f"{name} is given more than once.")
    return values[0] if values else None


@router.get(EXT + "/aggregates", summary="Aggregates per interval for one or many Datastreams")
def aggregates(request: Request) -> Response:
    """``?datastreams=1,2&interval=PT1H&from=2023-01-01T00:00:00Z&to=2023-01-02T00:00:00Z&functions=avg,max``.

    ``interval``: ``minute``, ``hour``, ``day`` or an ISO 8601 duration (``PT15M``, ``P1D``).
    ``from`` (inclusive) and ``to`` (exclusive) bound the phenomenon time; ``functions`` defaults
    to all of avg, min, max, sum, count; ``qc=unflagged`` leaves out values quality control flagged.
    Only numeric results are aggregated.
    """
    try:
        allowed = {"datastreams", "interval", "from", "to", "functions", "qc"}
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise StaError(400, f"Unknown parameter {', '.join(unknown)}; use {', '.join(sorted(allowed))}.")
        ids = agg.parse_ids(_single(request, "datastreams"))
        interval_text = _single(request, "interval")
        if not interval_text:
            raise StaError(400, "interval is required: minute, hour, day or an ISO 8601 duration such as PT15M.")
        step = agg.parse_interval(interval_text)
        start = agg.parse_time(_single(request, "from"), "from")
        end = agg.parse_time(_single(request, "to"), "to")
        functions = agg.parse_functions(_single(request, "functions"))
        qc = agg.parse_qc(_single(request, "qc"))
        root = _root(request)
        db: Database = request.app.state.db
        with db.sessions() as session:
            archived = archive.streams_source(session, request.app.state.settings.archive_dir, ids, start, end)
            result = agg.aggregate(session, ids, step, start, end, functions, qc,
                                   **({"observations": archived} if archived is not None else {}))
            units = {r[0]: r[1] for r in session.execute(
                select(Datastream.id, Datastream.unit_of_measurement).where(Datastream.id.in_(ids)))}
        return JSONResponse({
            "interval": interval_text, "intervalSeconds": step,
            "from": format_time(start), "to": format_time(end), "functions": functions, "qc": qc,
            "value": [{
                "Datastream@iot.id": i,
                "Datastream@iot.navigationLink": f"{root}/Datastreams({i})",
                "unitOfMeasurement": units.get(i),
                "aggregates": [{"phenomenonTime": format_interval(b.start, b.end), **b.values} for b in buckets],
            } for i, buckets in result.items()],
        })
    except StaError as exc:
        return exc.response()


def _int(request: Request, name: str, default: int, maximum: int | None = None) -> int:
    text = _single(request, name)
    if text is None:
        return default
    if not text.strip().isdigit():
        raise StaError(400, f"{name}={text!r} is not a whole number.")
    value = int(text)
    if maximum is not None and value > maximum:
        raise StaError(400, f"{name} is at most {maximum}.")
    return value


# The answer is built by the database as one JSON text, each item with one printf (SQLite) or
# format (PostgreSQL) call whose template holds the keys and the service root: 5,000 Datastreams
# cost one indexed join and no per-row work in Python, and the stored JSON (unit, result) is
# written as it is rather than parsed again by json()/json_build_object.
def _latest_sql(dialect: str, where: str, root: str) -> str:
    link = _literal(json.dumps(root)[:-1])   # '"http://.../sta/v1.1': the rest of the address follows
    template = (
        '{"Datastream@iot.id":%s,"Datastream@iot.navigationLink":' + link + '/Datastreams(%s)",'
        '"name":%s,"unitOfMeasurement":%s,"Thing@iot.id":%s,"ObservedProperty@iot.id":%s,'
        '"Observation":{"@iot.id":%s,"@iot.selfLink":' + link + '/Observations(%s)",'
        '"phenomenonTime":%s,"result":%s}}')
    number = "coalesce(CAST({} AS TEXT), 'null')"
    args = [
        "CAST(datastream_id AS TEXT)", "CAST(datastream_id AS TEXT)", _quote("name", dialect),
        number.format("unit_of_measurement"), number.format("thing_id"), number.format("observed_property_id"),
        "CAST(observation_id AS TEXT)", "CAST(observation_id AS TEXT)", "phenomenon_time", number.format("result"),
    ]
    when = _value_sql("l", "phenomenon_time_start", "phenomenon_time_end", "interval", dialect)
    inner = (f"SELECT l.datastream_id, l.observation_id, {when} AS phenomenon_time, l.result, d.name, "
             "d.unit_of_measurement, d.thing_id, d.observed_property_id "
             "FROM sta_latest l JOIN sta_datastream d ON d.id = l.datastream_id"
             f"{where} ORDER BY l.datastream_id LIMIT :top OFFSET :skip")
    function = "printf" if dialect == "sqlite" else "format"
    item = f"{function}('{template}', {', '.join(args)})"
    if dialect == "sqlite":  # group_concat keeps the order of the ordered subquery
        return f"SELECT '[' || coalesce(group_concat({item}, ','), '') || ']', count(*) FROM ({inner}) AS page"
    return (f"SELECT '[' || coalesce(string_agg({item}, ',' ORDER BY datastream_id), '') || ']', count(*) "
            f"FROM ({inner}) AS page")


@router.get(EXT + "/latest", summary="The latest Observation of many Datastreams")
def latest(request: Request) -> Response:
    """``?datastreams=1,2,3`` or ``?thing=7`` or ``?observedProperty=2`` (or none: every Datastream).

    One indexed join of ``sta_latest`` and ``sta_datastream``; ``$top`` (default and most 10,000)
    and ``$skip`` page through, with ``@iot.nextLink`` when there is more.
    """
    try:
        allowed = {"datastreams", "thing", "observedProperty", "$top", "$skip"}
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise StaError(400, f"Unknown parameter {', '.join(unknown)}; use {', '.join(sorted(allowed))}.")
        top = _int(request, "$top", MAX_LATEST, MAX_LATEST)
        skip = _int(request, "$skip", 0)
        conditions: list[str] = []
        params: dict[str, Any] = {"top": top, "skip": skip}
        if _single(request, "datastreams") is not None:
            ids = agg.parse_ids(_single(request, "datastreams"))
            conditions.append("l.datastream_id IN (" + ", ".join(f":d{i}" for i in range(len(ids))) + ")")
            params.update({f"d{i}": v for i, v in enumerate(ids)})
        for name, column in (("thing", "d.thing_id"), ("observedProperty", "d.observed_property_id")):
            text_value = _single(request, name)
            if text_value is not None:
                if not text_value.strip().isdigit() or int(text_value) <= 0:
                    raise StaError(400, f"{name}={text_value!r} is not an id (a positive integer).")
                conditions.append(f"{column} = :{name}")
                params[name] = int(text_value)
        where = (" WHERE " + " AND ".join(conditions)) if conditions else ""
        root = _root(request)
        db: Database = request.app.state.db
        with db.engine.connect() as conn:
            items, listed = conn.execute(text(_latest_sql(db.dialect, where, root)), params).one()
            more = False
            if listed == top and top > 0:  # a full page: is there a next one?
                probe = (f"SELECT 1 FROM sta_latest l JOIN sta_datastream d ON d.id = l.datastream_id{where} "
                         "ORDER BY l.datastream_id LIMIT 1 OFFSET :after")
                more = conn.execute(text(probe), {**params, "after": skip + top}).first() is not None
        head = ""
        if more:
            query = [(k, v) for k, v in request.query_params.multi_items() if k not in ("$top", "$skip")]
            query += [("$top", str(top)), ("$skip", str(skip + top))]
            head = '"@iot.nextLink": ' + json.dumps(f"{root}/ext/latest?" + urlencode(query, safe="$,")) + ", "
        return Response("{" + head + '"value": ' + items + "}", media_type="application/json")
    except StaError as exc:
        return exc.response()


@router.get(EXT + "/count/{entity_set}", summary="The number of entities in a whole entity set (fast)")
def count(entity_set: str, request: Request) -> Response:
    """``/sta/v1.1/ext/count/Observations`` -> ``{"@iot.count": 123, "@iot.countEstimated": false}``.

    Exact (``COUNT(*)``) unless the table holds more than a million rows by the planner's statistics,
    when it answers that statistic with ``"@iot.countEstimated": true``. No query options.
    """
    try:
        if request.query_params:
            raise StaError(400, "count takes no query options; for a filtered count use the collection's $count=true.")
        etype = ENTITIES.get(entity_set)
        if etype is None:
            raise StaError(404, f"There is no entity set {entity_set!r}; use one of {', '.join(ENTITIES)}.")
        db: Database = request.app.state.db
        with db.sessions() as session:
            result = count_entities(session, etype)
        return JSONResponse({"@iot.count": result.value, "@iot.countEstimated": result.estimated})
    except StaError as exc:
        return exc.response()
