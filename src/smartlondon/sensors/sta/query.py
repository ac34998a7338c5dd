"""Query options and reading entities: ``$select``, ``$expand``, ``$filter``, ``$orderby``, ``$top``,
``$skip``, ``$count``, ``$resultFormat=dataArray`` and ``@iot.nextLink``.

:func:`parse_options` checks the options against the entity type before anything is read (400 for
an unknown option, property or navigation property; 501 for an OData option this service
recognises but does not offer). :func:`read_collection` and :func:`read_entity` answer with the
standard's JSON.

Reading is batched: one query per page, one per expanded navigation property per level (the
children of every parent on the page at once, each parent's own ``$top``/``$skip``/``$orderby``
applied per parent: ``LATERAL`` on PostgreSQL, a correlated ``IN (... LIMIT n)`` on SQLite, a
window function for link tables on SQLite), one ``COUNT`` for ``$count``. Rows are read as plain
result rows with only the columns ``$select`` needs, not as ORM objects. A Datastream page
expanded with ``Observations($top=1;$orderby=phenomenonTime desc)`` reads the last-value table
``sta_latest``; when that is the only expansion of the Datastreams, the database builds their JSON
text (sta/latest_expand.py). In the default order ``@iot.nextLink`` continues with a ``$skiptoken``
(keyset). ``$count`` of a whole, unfiltered big entity set is the planner's estimate, declared with
``@iot.countEstimated`` (sensors/counting.py). A ``source`` (an alias of the Observation model over
hot and archived rows, sensors/archive.py) can stand in for the table; so can one in each ``any``/``all``
over Observations of a ``$filter``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Callable
from urllib.parse import quote

from sqlalchemy import BigInteger, Select, and_, any_, bindparam, func, inspect, select, true, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from ..models import (
    ENTITIES, EntityType, Latest, MultiDatastreamObservedProperty, Navigation, Observation,
)
from .. import archive, counting
from ..archive import ArchiveSegment
from . import StaError, odata
from .latest_expand import RawJSON, latest_json, latest_json_text
from .serialize import entity_json, format_time, property_value

DEFAULT_TOP = 100
MAX_TOP = 10_000
KNOWN = {"$select", "$expand", "$filter", "$orderby", "$top", "$skip", "$count", "$resultFormat", "$skiptoken"}
NOT_SUPPORTED = {"$search", "$apply", "$compute", "$levels", "$format", "$deltatoken", "$index",
                 "$schemaversion", "$id"}
DATA_ARRAY_DEFAULT = ["id", "phenomenonTime", "resultTime", "result"]
#: the annotation beside ``@iot.count`` saying the count is the database's estimate, not exact
COUNT_ESTIMATED = "@iot.countEstimated"
#: ``session.info`` key of the archive directory: when set, a nested ``$expand=Observations`` of
#: Datastreams reads archived Observations too (sensors/archive.py)
ARCHIVE_DIR = "sta_archive_dir"

# property types for $filter/$orderby (odata.Operand.type)
_TYPES = {
    "id": "id", "name": "string", "description": "string", "encodingType": "string", "definition": "string",
    "observationType": "string", "time": "datetime", "resultTime": "datetime", "phenomenonTime": "datetime",
    "validTime": "datetime", "location": "geometry", "feature": "geometry", "observedArea": "geometry",
}


@dataclass
class Expand:
    """One ``$expand`` item: a navigation property and its own options."""

    nav: str
    options: "Options"


@dataclass
class Options:
    """The query options of one level (the request, or an ``$expand`` item)."""

    select: list[str] | None = None
    expand: list[Expand] = field(default_factory=list)
    filter: Any = None                 # the parsed $filter (odata.parse_filter)
    filter_text: str | None = None
    orderby: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    top: int | None = None
    skip: int = 0
    skiptoken: tuple[datetime | None, int] | None = None  # keyset paging: after (phenomenon time, id)
    count: bool = False
    result_format: str | None = None

    @property
    def limit(self) -> int:
        """``$top``, or the default page size, capped at the maximum."""
        return min(DEFAULT_TOP if self.top is None else self.top, MAX_TOP)


# --- parsing ----------------------------------------------------------------------------------

def _split(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside parentheses and quoted strings."""
    parts: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted:
            current.append(ch)
            if ch == "'":
                if i + 1 < len(text) and text[i + 1] == "'":
                    current.append("'")
                    i += 1
                else:
                    quoted = False
        elif ch == "'":
            quoted = True
            current.append(ch)
        elif ch == "(":
            depth += 1
            current.append(ch)
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise StaError(400, f"Unbalanced ')' in '{text}'.")
            current.append(ch)
        elif ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    if quoted:
        raise StaError(400, f"Unterminated quoted string in '{text}'.")
    if depth != 0:
        raise StaError(400, f"Unbalanced '(' in '{text}'.")
    parts.append("".join(current))
    return parts


def _int(name: str, raw: str) -> int:
    text = raw.strip()
    if not text.isdigit():
        raise StaError(400, f"{name} must be a whole number of 0 or more (got '{raw}').")
    return int(text)


def _parse_orderby(text: str) -> list[tuple[tuple[str, ...], str]]:
    try:
        return odata.parse_orderby(text)
    except odata.QueryError as exc:
        raise StaError(400, f"$orderby is not valid: {exc.message}") from None


def parse_options(pairs: list[tuple[str, str]], etype: EntityType, nested: bool = False) -> Options:
    """Parse the query options of a request (or of an ``$expand`` item) for entity type ``etype``."""
    options = Options()
    seen: set[str] = set()
    for raw_key, value in pairs:
        key = raw_key.strip()
        if not key.startswith("$"):
            if nested:
                raise StaError(400, f"'{raw_key}' is not a query option: options inside $expand start with '$'.")
            continue  # custom query options are allowed by OData and ignored here
        if key in NOT_SUPPORTED and not (key == "$format" and value.strip().lower() == "json"):
            raise StaError(501, f"The query option {key} is not supported by this service.")
        if key not in KNOWN and key != "$format":
            raise StaError(400, f"Unknown query option '{key}'. Options: {', '.join(sorted(KNOWN))}.")
        if key in seen:
            raise StaError(400, f"The query option {key} is given more than once.")
        seen.add(key)
        if key == "$select":
            names = [n.strip() for n in _split(value, ",")]
            for name in names:
                if name in ("id", "@iot.id", "@iot.selfLink"):
                    continue
                if name not in etype.properties and name not in etype.intervals and name not in etype.navigation:
                    raise StaError(400, f"Unknown property '{name}' in $select: {etype.singular} has "
                                        f"{', '.join(['id', *etype.all_properties, *etype.navigation])}.")
            options.select = names
        elif key == "$expand":
            options.expand = _parse_expand(value, etype)
        elif key == "$filter":
            try:
                options.filter = odata.parse_filter(value)
            except odata.QueryError as exc:
                raise StaError(400, f"$filter is not valid: {exc.message}") from None
            options.filter_text = value
        elif key == "$orderby":
            options.orderby = _parse_orderby(value)
            for path, _direction in options.orderby:
                _check_path(etype, path, "$orderby")
        elif key == "$top":
            options.top = _int("$top", value)
        elif key == "$skip":
            options.skip = _int("$skip", value)
        elif key == "$skiptoken":
            if nested:
                raise StaError(400, "$skiptoken is not allowed inside $expand.")
            options.skiptoken = parse_skiptoken(value)
        elif key == "$count":
            if value.strip() not in ("true", "false"):
                raise StaError(400, f"$count must be true or false (got '{value}').")
            options.count = value.strip() == "true"
        elif key == "$resultFormat":
            if nested:
                raise StaError(400, "$resultFormat is not allowed inside $expand.")
            if value != "dataArray":
                raise StaError(400, f"Unknown $resultFormat '{value}': this service offers dataArray.")
            if etype.name != "Observations":
                raise StaError(400, "$resultFormat=dataArray is only for Observations.")
            options.result_format = value
    if options.result_format and options.expand:
        raise StaError(400, "$expand cannot be combined with $resultFormat=dataArray.")
    if options.result_format and options.select:
        for name in options.select:
            if name in etype.navigation:
                raise StaError(400, f"'{name}' cannot be a dataArray component: choose Observation properties.")
    return options


def parse_skiptoken(text: str) -> tuple[datetime | None, int]:
    """``123`` (after id 123) or ``2023-01-01T00:00:00Z|123`` (after that phenomenon time and id)."""
    when, _, last_id = text.strip().rpartition("|")
    try:
        time = datetime.fromisoformat(when) if when else None
        if time is not None and time.tzinfo is None:
            raise ValueError
    except ValueError:
        raise StaError(400, f"$skiptoken '{text}' is not valid: use the @iot.nextLink the service gave.") from None
    if not last_id.isdigit():
        raise StaError(400, f"$skiptoken '{text}' is not valid: use the @iot.nextLink the service gave.")
    return time, int(last_id)


def skiptoken(item: Any, by_time: bool) -> str:
    """The $skiptoken that continues after ``item``."""
    if by_time:
        return f"{format_time(item.phenomenon_time_start)}|{item.id}"
    return str(item.id)


def _check_path(etype: EntityType, path: tuple[str, ...], option: str) -> None:
    current = etype
    for i, name in enumerate(path):
        nav = current.navigation.get(name)
        if nav is not None and i < len(path) - 1:
            current = ENTITIES[nav.target]
            continue
        if name == "id" or name in current.intervals or name in current.properties:
            if name in _JSON_PROPERTIES or i == len(path) - 1:
                return
        raise StaError(400, f"Unknown property '{'/'.join(path)}' in {option} for {etype.singular}.")


def _parse_expand(text: str, etype: EntityType) -> list[Expand]:
    items: list[Expand] = []
    for part in _split(text, ","):
        part = part.strip()
        if not part:
            raise StaError(400, "$expand has an empty item.")
        inner = ""
        if "(" in part:
            if not part.endswith(")"):
                raise StaError(400, f"$expand item '{part}' is not valid: options go in parentheses at the end.")
            head, inner = part[:part.index("(")], part[part.index("(") + 1:-1]
        else:
            head = part
        names = [n.strip() for n in head.split("/")]
        _add_expand(items, etype, names, inner)
    return items


def _add_expand(items: list[Expand], etype: EntityType, names: list[str], inner: str) -> None:
    name = names[0]
    nav = etype.navigation.get(name)
    if nav is None:
        raise StaError(400, f"Unknown navigation property '{name}' in $expand: {etype.singular} has "
                            f"{', '.join(etype.navigation)}.")
    target = ENTITIES[nav.target]
    existing = next((item for item in items if item.nav == name), None)
    if len(names) > 1:
        if existing is None:
            existing = Expand(name, Options())
            items.append(existing)
        _add_expand(existing.options.expand, target, names[1:], inner)
        return
    pairs: list[tuple[str, str]] = []
    if inner.strip():
        for opt in _split(inner, ";"):
            if "=" not in opt:
                raise StaError(400, f"'{opt}' in $expand={name}(...) is not an option: use e.g. $top=1.")
            k, v = opt.split("=", 1)
            pairs.append((k.strip(), v))
    options = parse_options(pairs, target, nested=True)
    if existing is None:
        items.append(Expand(name, options))
    else:  # Datastreams/Sensor,Datastreams($top=2): keep the nested expands, take the options
        options.expand = existing.options.expand + options.expand
        existing.options = options


# --- $filter and $orderby paths -> SQL -------------------------------------------------------------

def resolver(etype: EntityType, model: Any,
             observations: Callable[[], Any] | None = None) -> Callable[[tuple[str, ...]], odata.Operand]:
    """The ``resolve(path)`` function odata.compile_filter needs, for ``model`` (the class or an alias).

    ``observations`` gives a new alias of hot and archived Observations together
    (archive.union_model): an ``any``/``all`` over Observations then reads archived rows too."""

    def resolve(path: tuple[str, ...]) -> odata.Operand:
        return _resolve(etype, model, path, path)

    def collection(path: tuple[str, ...]) -> tuple[Callable[[tuple[str, ...]], odata.Operand], Any]:
        """For ``any``/``all``: the resolver of a to-many navigation's entities (an alias correlated
        to ``model``) and a function wrapping a condition on them in ``EXISTS``."""
        nav = etype.navigation.get(path[0]) if len(path) == 1 else None
        if nav is None or not nav.to_many:
            raise odata.QueryError(f"any/all need a collection of {etype.singular}: one of "
                                   f"{', '.join(n for n, v in etype.navigation.items() if v.to_many)}")
        target = ENTITIES[nav.target]
        alias = observations() if observations is not None and target.name == "Observations" \
            else aliased(target.model)
        if nav.remote is not None:
            base = select(alias.id).where(getattr(alias, nav.remote) == model.id)  # type: ignore[attr-defined]
        else:
            link = aliased(nav.link)  # type: ignore[arg-type]
            base = (select(alias.id).join(link, getattr(link, nav.link_other) == alias.id)  # type: ignore[attr-defined]
                    .where(getattr(link, nav.link_self) == model.id))  # type: ignore[attr-defined]

        def exists(condition: Any) -> Any:
            return (base if condition is None else base.where(condition)).exists()

        return resolver(target, alias, observations), exists

    resolve.collection = collection  # type: ignore[attr-defined]
    return resolve


_JSON_PROPERTIES = ("properties", "parameters", "unitOfMeasurement", "resultQuality", "result")


def _resolve(etype: EntityType, model: Any, path: tuple[str, ...], full: tuple[str, ...]) -> odata.Operand:
    name = path[0]
    nav = etype.navigation.get(name)
    if nav is not None and len(path) > 1:
        if nav.to_many:
            example = name[0].lower()
            raise odata.QueryError(f"'{'/'.join(full)}' goes through the collection '{name}': only single-valued "
                                   "navigation (e.g. Datastream/Thing/name) can be compared; for a collection "
                                   f"say whether any or all members must match, e.g. {name}/any({example}: "
                                   f"{example}/{'/'.join(path[1:])} ...)")
        target = ENTITIES[nav.target]
        alias = aliased(target.model)
        inner = _resolve(target, alias, path[1:], full)
        sub = select(inner.expr).where(alias.id == getattr(model, nav.fk)).limit(1).scalar_subquery()  # type: ignore[arg-type]
        return odata.Operand(sub, inner.type)
    if name == "id" and len(path) == 1:
        return odata.Operand(model.id, "id")
    if name in etype.intervals and len(path) == 1:
        return odata.Operand(getattr(model, etype.intervals[name][0]), "datetime")
    if name in etype.properties:
        column = getattr(model, etype.properties[name])
        if len(path) == 1:
            return odata.Operand(column, _TYPES.get(name, "json"))
        if name in _JSON_PROPERTIES:
            return odata.Operand(odata.json_member(column, path[1:]), "json")
    raise odata.QueryError(f"unknown property {'/'.join(full)}")


def _where(stmt: Select[Any], etype: EntityType, model: Any, options: Options, dialect: str,
           observations: Callable[[], Any] | None = None) -> Select[Any]:
    if options.filter is None:
        return stmt
    try:
        clause = odata.compile_filter(options.filter, resolver(etype, model, observations), dialect)
    except odata.QueryError as exc:
        raise StaError(400, f"$filter is not valid: {exc.message}") from None
    return stmt.where(clause)


def _lambda_observations(session: Session, options: Options) -> Callable[[], Any] | None:
    """For a ``$filter`` with ``any``/``all`` over Observations when archived rows exist: what makes
    the alias each lambda reads (hot and archived rows, archive.union_model), else None."""
    archive_dir = session.info.get(ARCHIVE_DIR)
    if archive_dir is None or options.filter is None:
        return None
    return archive.union_model if archive.lambda_source(session, archive_dir, options.filter) else None


def _order(etype: EntityType, model: Any, options: Options, default_position: Any = None,
           by_time: bool = False) -> list[Any]:
    """ORDER BY for ``options``; without $orderby: ``default_position``, or phenomenonTime for the
    Observations of one (Multi)Datastream (``by_time``, the order of their index); then the id, in
    the direction of the last key, so that an index can be read forwards or backwards."""
    clauses: list[Any] = []
    resolve = resolver(etype, model)
    direction = "asc"
    try:
        for path, direction in options.orderby:
            operand = resolve(tuple(path))
            column = getattr(operand.expr, "nullable", True)
            if column is False and operand.type in ("datetime", "number", "id"):
                # NOT NULL: no NULLS FIRST/LAST, which would keep the database from using an index
                clauses.append(operand.expr.desc() if direction == "desc" else operand.expr.asc())
            else:
                clauses += odata.compile_orderby([(path, direction)], resolve)
    except odata.QueryError as exc:
        raise StaError(400, f"$orderby is not valid: {exc.message}") from None
    if not options.orderby:
        if default_position is not None:
            clauses.append(default_position.asc())
        elif by_time:
            clauses.append(model.phenomenon_time_start.asc())
    clauses.append(model.id.desc() if direction == "desc" else model.id.asc())
    return clauses


# --- reading --------------------------------------------------------------------------------------

@dataclass
class Page:
    """One page of a collection."""

    items: list[Any]
    more: bool
    count: int | None
    keyset: bool = False   # in the default order: the next page continues after the last item
    by_time: bool = False  # ... ordered by (phenomenon time, id) rather than by id
    count_estimated: bool = False  # ``count`` is the planner's estimate (a big, unfiltered entity set)

    def next_link(self, url: str, pairs: list[tuple[str, str]], options: Options) -> str | None:
        """``@iot.nextLink``: a $skiptoken after the last item in the default order, else the next $skip."""
        if not self.more:
            return None
        if self.keyset:
            kept = [(k, v) for k, v in pairs if k not in ("$top", "$skip", "$skiptoken")]
            kept += [("$top", str(options.limit)), ("$skiptoken", skiptoken(self.items[-1], self.by_time))]
            return url + "?" + "&".join(f"{quote(k, safe='$')}={quote(v, safe='')}" for k, v in kept)
        return next_link(url, pairs, options.limit, options.skip + options.limit)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _in(column: Any, ids: list[int] | set[int], dialect: str) -> ColumnElement[bool]:
    """``column IN ids``; on PostgreSQL one array parameter (``= ANY(:ids)``), not thousands."""
    values = sorted(ids)
    if dialect == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(BigInteger())))
    return column.in_(values)


def _columns(etype: EntityType, model: Any, options: Options, extra: tuple[str, ...] = ()) -> list[Any]:
    """The columns a page needs, labelled with the model's attribute names (rows read like objects).

    Everything without ``$select``; with it, the id, the selected properties, the foreign keys of
    expanded to-one navigation, and the stream ids a dataArray groups by."""
    attrs = [attr.key for attr in inspect(etype.model).column_attrs]
    if options.select is not None:
        wanted = {"id"}
        for name in options.select:
            if name in etype.properties:
                wanted.add(etype.properties[name])
            elif name in etype.intervals:
                wanted.update(etype.intervals[name])
        for item in options.expand:
            nav = etype.navigation[item.nav]
            if nav.fk is not None:
                wanted.add(nav.fk)
        if options.result_format:
            wanted.update(("datastream_id", "multi_datastream_id"))
        wanted.update(extra)
        attrs = [a for a in attrs if a in wanted]
    return [getattr(model, a).label(a) for a in attrs]


def fetch_page(session: Session, etype: EntityType, condition: ColumnElement[bool] | None, options: Options,
               parent: str | None = None, source: Any = None) -> Page:
    """The entities of a collection on this page, whether there are more, and ``$count`` if asked.

    ``parent`` is the entity set the collection hangs from (``"Datastreams"`` for
    ``Datastreams(1)/Observations``), which sets the default order. ``source`` replaces the entity's
    table (an alias of its model, e.g. hot and archived Observations together; ``condition`` is then
    written on it). ``$count`` of a whole, unfiltered entity set is :func:`counting.count_entities`:
    exact below its threshold, otherwise the planner's estimate (``Page.count_estimated``)."""
    model = etype.model if source is None else source
    dialect = _dialect(session)
    by_time = etype.name == "Observations" and parent in ("Datastreams", "MultiDatastreams")
    keyset = not options.orderby
    base = select(*_columns(etype, model, options, ("phenomenon_time_start",) if by_time else ()))
    if condition is not None:
        base = base.where(condition)
    base = _where(base, etype, model, options, dialect, _lambda_observations(session, options))
    count = None
    estimated = False
    deferred = None if source is None else archive.take_deferred(session, source)
    if options.count and condition is None and options.filter is None and (source is None or deferred is not None):
        counted = counting.count_entities(session, etype, counting.ESTIMATE_THRESHOLD)
        count, estimated = counted.value, counted.estimated
        if deferred is not None:   # the whole set: the hot rows and the manifest's row counts
            count += archive.archived_total(session)
    elif options.count:
        count = session.execute(select(func.count()).select_from(
            base.with_only_columns(model.id).order_by(None).subquery())).scalar_one()  # type: ignore[attr-defined]
    if options.skiptoken is not None:
        if not keyset:
            raise StaError(400, "$skiptoken continues the default order and cannot be combined with $orderby: "
                                "follow the @iot.nextLink the service gave.")
        when, last_id = options.skiptoken
        if by_time:
            if when is None:
                raise StaError(400, "This $skiptoken does not fit this collection: follow the @iot.nextLink "
                                    "the service gave.")
            base = base.where(tuple_(model.phenomenon_time_start, model.id) > tuple_(  # type: ignore[attr-defined]
                bindparam(None, when, type_=model.phenomenon_time_start.type), last_id))  # type: ignore[attr-defined]
        else:
            base = base.where(model.id > last_id)  # type: ignore[attr-defined]
    limit = options.limit
    if deferred is not None:
        first = options.orderby[0] if options.orderby else None
        time_order = first[1] if first is not None and tuple(first[0]) == ("phenomenonTime",) else None
        archive.load_page(session, deferred, options.skip + limit + 1 if limit > 0 else 0, keyset, time_order)
    stmt = base.order_by(*_order(etype, model, options, by_time=by_time)).offset(options.skip).limit(limit + 1)
    items = list(session.execute(stmt).all())
    more = limit > 0 and len(items) > limit
    return Page(items[:limit], more, count, keyset, by_time, estimated)


def next_link(url: str, pairs: list[tuple[str, str]], top: int, skip: int) -> str:
    kept = [(k, v) for k, v in pairs if k not in ("$top", "$skip")]
    kept += [("$top", str(top)), ("$skip", str(skip))]
    return url + "?" + "&".join(f"{quote(k, safe='$')}={quote(v, safe='')}" for k, v in kept)


def dump_collection(body: dict[str, Any]) -> str:
    """A :func:`read_collection` answer as JSON text (its ``value`` may be database-built :class:`RawJSON`)."""
    value = body.get("value")
    if not isinstance(value, RawJSON):
        return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    head = json.dumps({k: v for k, v in body.items() if k != "value"}, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":"))
    return head[:-1] + ("," if len(head) > 2 else "") + '"value":' + value + "}"


def read_collection(session: Session, etype: EntityType, condition: ColumnElement[bool] | None, options: Options,
                    base_url: str, url: str, pairs: list[tuple[str, str]], parent: str | None = None,
                    source: Any = None) -> dict[str, Any]:
    """A collection as ``{"@iot.count"?, "@iot.countEstimated"?, "@iot.nextLink"?, "value": [...]}``.

    ``url`` is the collection's own address (for ``@iot.nextLink``), ``pairs`` the request's query,
    ``source`` as for :func:`fetch_page`.
    """
    fetch = options if _latest_only(etype, options) is None else replace(options, select=["id"])
    page = fetch_page(session, etype, condition, fetch, parent, source)
    out: dict[str, Any] = {}
    if page.count is not None:
        out["@iot.count"] = page.count
        if page.count_estimated:
            out[COUNT_ESTIMATED] = True
    link = page.next_link(url, pairs, options)
    if link:
        out["@iot.nextLink"] = link
    latest = _latest_only(etype, options)
    if options.result_format == "dataArray":
        out["value"] = data_array(page.items, options, base_url)
    elif latest is not None:  # JSON text from the database, written into the response as it is
        out["value"] = latest_json_text(session, [item.id for item in page.items], options.select,
                                        latest.options.select, base_url, _more_query(latest.options))
    else:
        out["value"] = serialize_many(session, etype, page.items, options, base_url)
    return out


def read_entity(session: Session, etype: EntityType, entity_id: int, options: Options, base_url: str,
                source: Any = None) -> dict[str, Any]:
    """One entity with its ``$select`` and ``$expand`` (``source`` as for :func:`fetch_page`)."""
    if (options.filter is not None or options.orderby or options.top is not None or options.skip or options.count
            or options.skiptoken is not None):
        raise StaError(400, "$filter, $orderby, $top, $skip, $skiptoken and $count apply to collections, "
                            "not to one entity.")
    model = etype.model if source is None else source
    obj = session.execute(select(*_columns(etype, model, options)).where(model.id == entity_id)).first()  # type: ignore[attr-defined]
    if obj is None:
        raise StaError(404, f"No {etype.singular} with id {entity_id}.")
    return serialize_many(session, etype, [obj], options, base_url)[0]


def references(items: list[Any], etype: EntityType, base_url: str) -> list[dict[str, str]]:
    """``$ref`` entries: ``[{"@iot.selfLink": ...}]``."""
    return [{"@iot.selfLink": f"{base_url}/{etype.name}({obj.id})"} for obj in items]


def data_array(items: list[Any], options: Options, base_url: str) -> list[dict[str, Any]]:
    """Observations in the dataArray format, one group per (Multi)Datastream, in page order."""
    etype = ENTITIES["Observations"]
    components = [("id" if c == "@iot.id" else c) for c in (options.select or DATA_ARRAY_DEFAULT)]
    groups: dict[tuple[str, int], list[list[Any]]] = {}
    for obs in items:
        key = ("Datastream", obs.datastream_id) if obs.datastream_id is not None else (
            "MultiDatastream", obs.multi_datastream_id)
        groups.setdefault(key, []).append([property_value(etype, obs, c) for c in components])
    out = []
    for (kind, stream_id), rows in groups.items():
        out.append({f"{kind}@iot.navigationLink": f"{base_url}/{kind}s({stream_id})", "components": components,
                    "dataArray@iot.count": len(rows), "dataArray": rows})
    return out


def serialize_many(session: Session, etype: EntityType, objs: list[Any], options: Options,
                   base_url: str) -> list[dict[str, Any]]:
    """Entities with their expansions, one query per expanded navigation property (never per entity)."""
    latest = _latest_only(etype, options)
    if latest is not None:  # "latest of every Datastream": JSON built by the database from sta_latest
        return latest_json(session, [obj.id for obj in objs], options.select, latest.options.select, base_url,
                           _more_query(latest.options))
    skip = frozenset(e.nav for e in options.expand)
    out = [entity_json(etype, obj, base_url, options.select, skip) for obj in objs]
    if not objs:
        return out
    for item in options.expand:
        nav = etype.navigation[item.nav]
        target = ENTITIES[nav.target]
        fetch = item.options if _latest_only(target, item.options) is None else replace(item.options, select=["id"])
        related, more, counts = _fetch_related(session, etype, nav, objs, fetch,
                                               _expand_source(session, etype, item, objs))
        unique = {child.id: child for children in related.values() for child in children}
        children_json = dict(zip(unique, serialize_many(session, target, list(unique.values()), item.options,
                                                        base_url)))
        for obj, data in zip(objs, out):
            children = [children_json[c.id] for c in related.get(obj.id, [])]
            if not nav.to_many:
                data[item.nav] = children[0] if children else None
                continue
            data[item.nav] = children
            if counts is not None:
                data[f"{item.nav}@iot.count"] = counts.get(obj.id, 0)
            if obj.id in more:
                link = f"{base_url}/{etype.name}({obj.id})/{item.nav}"
                opts = item.options
                data[f"{item.nav}@iot.nextLink"] = next_link(
                    link, _nested_pairs(opts), opts.limit, opts.skip + opts.limit)
    return out


def _expand_source(session: Session, etype: EntityType, item: Expand, objs: list[Any]) -> Any:
    """Hot and archived Observations together for ``Datastreams?$expand=Observations(...)`` and
    ``FeaturesOfInterest?$expand=Observations(...)`` when the expansion can touch an archived range
    (never for the latest-value expansion), else None. MultiDatastreams' Observations are never archived."""
    archive_dir = session.info.get(ARCHIVE_DIR)
    if (archive_dir is None or etype.name not in ("Datastreams", "FeaturesOfInterest") or item.nav != "Observations"
            or _is_latest(etype, item.nav, item.options)):
        return None
    if etype.name == "FeaturesOfInterest":
        if not archive.has_archive(session):
            return None
        return archive.collection_source(session, archive_dir, item.options.filter,
                                         feature_ids=[obj.id for obj in objs])
    return archive.collection_source(session, archive_dir, item.options.filter,
                                     datastream_ids=[obj.id for obj in objs])


def _nested_pairs(options: Options) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    if options.filter_text:
        pairs.append(("$filter", options.filter_text))
    if options.orderby:
        pairs.append(("$orderby", ",".join(f"{'/'.join(p)} {d}" for p, d in options.orderby)))
    if options.select:
        pairs.append(("$select", ",".join(options.select)))
    return pairs


_LATEST_HAS = {"id", "@iot.id", "@iot.selfLink", "phenomenonTime", "result"}


def _is_latest(etype: EntityType, nav_name: str, options: Options) -> bool:
    return (etype.name == "Datastreams" and nav_name == "Observations" and options.top == 1 and options.skip == 0
            and options.filter is None and not options.count
            and [("/".join(p), d) for p, d in options.orderby] == [("phenomenonTime", "desc")])


def _more_query(options: Options) -> str:
    """The query part of a nested collection's ``@iot.nextLink`` (after its address)."""
    return next_link("", _nested_pairs(options), options.limit, options.skip + options.limit)


def _latest_only(etype: EntityType, options: Options) -> Expand | None:
    """The $expand item when Datastreams are expanded with exactly the latest Observation and nothing else."""
    if etype.name != "Datastreams" or len(options.expand) != 1:
        return None
    item = options.expand[0]
    if _is_latest(etype, item.nav, item.options) and not item.options.expand:
        return item
    return None


def _fetch_related(session: Session, etype: EntityType, nav: Navigation, objs: list[Any], options: Options,
                   source: Any = None) -> tuple[dict[int, list[Any]], set[int], dict[int, int] | None]:
    """The related entities of every parent in one query: ({parent id: [children]}, parents with more,
    {parent id: count} when $count). ``source``: the Observations of Datastreams over hot and archived
    rows (:func:`_expand_source`), read with a window over the union."""
    target = ENTITIES[nav.target]
    model = target.model if source is None else source
    dialect = _dialect(session)
    columns = _columns(target, model, options)
    parent_ids = {obj.id for obj in objs}
    related: dict[int, list[Any]] = defaultdict(list)
    more: set[int] = set()
    nav_name = next(n for n, v in etype.navigation.items() if v is nav)
    observations = _lambda_observations(session, options)
    by_time = target.name == "Observations" and etype.name in ("Datastreams", "MultiDatastreams")

    if source is not None:
        group = getattr(source, nav.remote)  # type: ignore[arg-type]
        base = _where(select(*columns, group.label("parent_id")).where(_in(group, parent_ids, dialect)),
                      target, model, options, dialect, observations)
        counts = _counts(session, base, group) if options.count else None
        stmt = _windowed_page(base, group, _order(target, model, options, by_time=by_time), options)
        _collect(session, stmt, options.limit, related, more)
        return related, more, counts

    if not nav.to_many:
        fks = {getattr(obj, nav.fk) for obj in objs} - {None}  # type: ignore[arg-type]
        if not fks:
            return related, more, None
        stmt = _where(select(*columns).where(_in(model.id, fks, dialect)), target, model, options, dialect,  # type: ignore[attr-defined]
                      observations)
        by_id = {child.id: child for child in session.execute(stmt)}
        for obj in objs:
            child = by_id.get(getattr(obj, nav.fk))  # type: ignore[arg-type]
            if child is not None:
                related[obj.id].append(child)
        return related, more, None

    if _is_latest(etype, nav_name, options):
        if options.select is not None and set(options.select) <= _LATEST_HAS:
            # everything asked for is in the last-value table itself: no join at all
            stmt = select(Latest.datastream_id.label("parent_id"), Latest.observation_id.label("id"),
                          Latest.phenomenon_time_start.label("phenomenon_time_start"),
                          Latest.phenomenon_time_end.label("phenomenon_time_end"), Latest.result.label("result"))
        else:
            stmt = (select(Latest.datastream_id.label("parent_id"), *columns)
                    .join(Observation, Observation.id == Latest.observation_id))
        stmt = stmt.where(_in(Latest.datastream_id, parent_ids, dialect))
        for row in session.execute(stmt):
            related[row.parent_id].append(row)
        other = aliased(Observation)
        more.update(session.execute(select(Latest.datastream_id).where(
            _in(Latest.datastream_id, parent_ids, dialect),
            select(other.id).where(other.datastream_id == Latest.datastream_id,
                                   other.id != Latest.observation_id).exists()
            | select(ArchiveSegment.id).where(ArchiveSegment.datastream_id == Latest.datastream_id).exists()
        )).scalars())
        return related, more, None

    if nav.remote is not None:
        group = getattr(model, nav.remote)
        base = select(*columns, group.label("parent_id")).where(_in(group, parent_ids, dialect))
        position = None
    else:
        link = nav.link
        group = getattr(link, nav.link_self)
        base = (select(*columns, group.label("parent_id"))
                .join(link, getattr(link, nav.link_other) == model.id)  # type: ignore[attr-defined]
                .where(_in(group, parent_ids, dialect)))
        position = link.position if link is MultiDatastreamObservedProperty else None  # type: ignore[union-attr]
    base = _where(base, target, model, options, dialect, observations)
    counts = _counts(session, base, group) if options.count else None
    if dialect == "postgresql":
        stmt = _lateral_page(target, nav, group, parent_ids, options, by_time, observations)
    elif nav.remote is not None:
        stmt = _correlated_page(target, nav, parent_ids, options, by_time, observations)
    else:  # SQLite, through a link table (small collections): a window over the related rows
        stmt = _windowed_page(base, group, _order(target, model, options, position, by_time=by_time), options)
    _collect(session, stmt, options.limit, related, more)
    return related, more, counts


def _counts(session: Session, base: Any, group: Any) -> dict[int, int]:
    """{parent id: how many related rows} for a statement with a ``parent_id`` column grouped by ``group``."""
    return {pid: n for pid, n in session.execute(base.with_only_columns(group, func.count()).group_by(group)
                                                 .order_by(None))}


def _windowed_page(base: Any, group: Any, order: Any, options: Options) -> Any:
    """Each parent's page of ``base`` (its ``$skip`` and ``$top``, plus one row to tell whether there are more),
    numbered with a window per ``group`` in ``order``."""
    row_number = func.row_number().over(partition_by=group, order_by=order)
    inner = base.add_columns(row_number.label("rn")).subquery()
    return (select(inner).where(and_(inner.c.rn > options.skip, inner.c.rn <= options.skip + options.limit + 1))
            .order_by(inner.c.parent_id, inner.c.rn))


def _collect(session: Session, stmt: Any, limit: int, related: dict[int, list[Any]], more: set[int]) -> None:
    """Rows of ``stmt`` (ordered by parent) into ``related``, at most ``limit`` per parent; parents with a row
    beyond that go into ``more``."""
    for row in session.execute(stmt):
        if len(related[row.parent_id]) >= limit:
            if limit > 0:
                more.add(row.parent_id)
            continue
        related[row.parent_id].append(row)


def _lateral_page(target: EntityType, nav: Navigation, group: Any, parent_ids: set[int], options: Options,
                  by_time: bool, observations: Callable[[], Any] | None = None) -> Select[Any]:
    """PostgreSQL: each parent's page of related entities with ``LATERAL (... LIMIT n)``, so a
    Datastream with millions of Observations costs an index read of n rows, not a window over all."""
    model = target.model
    parents = func.unnest(bindparam(None, sorted(parent_ids), type_=ARRAY(BigInteger()))) \
        .table_valued("parent_id").render_derived()
    inner = select(model.__table__)  # type: ignore[attr-defined]
    position = None
    if nav.link is not None:
        link = nav.link
        inner = inner.join(link, getattr(link, nav.link_other) == model.id)  # type: ignore[attr-defined]
        if link is MultiDatastreamObservedProperty:
            position = link.position
            inner = inner.add_columns(link.position.label("link_position"))
    inner = inner.where(group == parents.c.parent_id)
    inner = _where(inner, target, model, options, "postgresql", observations)
    inner = inner.order_by(*_order(target, model, options, position, by_time=by_time))
    page = inner.offset(options.skip).limit(options.limit + 1).lateral("related")
    alias = aliased(model, page)
    default_position = page.c.link_position if position is not None else None
    return (select(parents.c.parent_id, *_columns(target, alias, options))
            .select_from(parents).join(page, true())
            .order_by(parents.c.parent_id, *_order(target, alias, options, default_position, by_time=by_time)))


def _correlated_page(target: EntityType, nav: Navigation, parent_ids: set[int], options: Options,
                     by_time: bool, observations: Callable[[], Any] | None = None) -> Select[Any]:
    """SQLite: each parent's page of related entities as ``id IN (SELECT ... WHERE fk = parent
    ORDER BY ... LIMIT n)``, evaluated per parent, so it reads n rows of the index per parent."""
    model = target.model
    parents = func.json_each(json.dumps(sorted(parent_ids))).table_valued("value").alias("parents")
    inner_model = aliased(model)
    inner = select(inner_model.id).where(getattr(inner_model, nav.remote) == parents.c.value)  # type: ignore[arg-type]
    inner = _where(inner, target, inner_model, options, "sqlite", observations)
    inner = (inner.order_by(*_order(target, inner_model, options, by_time=by_time))
             .offset(options.skip).limit(options.limit + 1))
    return (select(parents.c.value.label("parent_id"), *_columns(target, model, options))
            .select_from(parents).join(model, model.id.in_(inner.scalar_subquery()))  # type: ignore[attr-defined]
            .order_by(parents.c.value, *_order(target, model, options, by_time=by_time)))
