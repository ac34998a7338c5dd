"""The SensorThings API v1.1 query language: ``$filter`` and ``$orderby``.

``parse_filter`` turns the text into a small tree (the dataclasses below); ``compile_filter``
turns the tree into a SQLAlchemy condition for SQLite or PostgreSQL + PostGIS, with the same
answers on both. The caller maps property paths (``Datastream/Thing/name``, ``properties/owner``,
``result``) to columns with its ``resolve`` function, so this module knows nothing of tables.
The lambda operators ``any``/``all`` over to-many navigation (``Datastreams/any(d: d/name eq 'x')``,
an OData 4.01 addition) need the resolver's ``collection`` attribute: ``collection(path)`` gives the
members' resolver and a function wrapping a condition in a correlated ``EXISTS``.

Positions in error messages count characters from 0, the first character of the option's text.
The language is described for users in docs/sensors-query.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Union

from sqlalchemy import (Boolean, Date, Float, Integer, Interval, Numeric, String, Time, and_, case, cast, extract, false, func,
                        literal, not_, or_)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from ...core.db import JSONType, UTCDateTime, sqlite_function
from . import geo

#: the operand types ``resolve`` may return
OPERAND_TYPES = frozenset({"string", "number", "datetime", "boolean", "geometry", "json", "id"})
MAX_FILTER_LENGTH = 10_000
MAX_DEPTH = 100


class QueryError(ValueError):
    """A ``$filter`` or ``$orderby`` that cannot be understood; ``message`` says what and where."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        return self.message


@dataclass
class Operand:
    """A compiled value: its SQL expression and its type (one of ``OPERAND_TYPES``, or internally
    ``date``, ``time`` and ``null``)."""

    expr: ColumnElement[Any]
    type: str


# -- the tree ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Literal:
    """A literal value: ``'text'``, ``42``, ``true``, ``null``, ``2023-01-01T00:00:00Z``, ``geography'POINT(0 51)'``."""

    value: Any
    type: str  # string number boolean null datetime date time geometry
    position: int


@dataclass(frozen=True)
class Path:
    """A property path such as ``Datastream/Thing/name``."""

    segments: tuple[str, ...]
    position: int


@dataclass(frozen=True)
class Call:
    """A built-in function call such as ``substringof('NO2', name)``."""

    name: str
    args: tuple[Expr, ...]
    position: int


@dataclass(frozen=True)
class Binary:
    """A binary operation: comparison (eq ...), logical (and, or) or arithmetic (add ...)."""

    op: str
    left: Expr
    right: Expr
    position: int


@dataclass(frozen=True)
class Unary:
    """``not`` or arithmetic negation (``-``)."""

    op: str
    operand: Expr
    position: int


@dataclass(frozen=True)
class Lambda:
    """``Datastreams/any(d: d/name eq 'x')`` or ``.../all(...)``: a condition over a to-many collection."""

    op: str                       # "any" or "all"
    collection: tuple[str, ...]   # the navigation path to the collection, e.g. ("Datastreams",)
    variable: str | None          # the range variable (None for "any()": the collection is not empty)
    body: "Expr | None"
    position: int


Expr = Union[Literal, Path, Call, Binary, Unary, Lambda]

COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
ARITHMETIC = ("add", "sub", "mul", "div", "mod")
KEYWORDS = frozenset({"and", "or", "not", *COMPARISONS, *ARITHMETIC})

#: name -> (smallest, largest) number of arguments
FUNCTIONS: dict[str, tuple[int, int]] = {
    "substringof": (2, 2), "contains": (2, 2), "endswith": (2, 2), "startswith": (2, 2),
    "length": (1, 1), "indexof": (2, 2), "substring": (2, 3), "tolower": (1, 1), "toupper": (1, 1),
    "trim": (1, 1), "concat": (2, 2),
    "year": (1, 1), "month": (1, 1), "day": (1, 1), "hour": (1, 1), "minute": (1, 1), "second": (1, 1),
    "fractionalseconds": (1, 1), "date": (1, 1), "time": (1, 1), "totaloffsetminutes": (1, 1),
    "now": (0, 0), "mindatetime": (0, 0), "maxdatetime": (0, 0),
    "round": (1, 1), "floor": (1, 1), "ceiling": (1, 1),
    "geo.intersects": (2, 2), "geo.length": (1, 1), "geo.distance": (2, 2),
    **{f"st_{name}": (2, 2) for name in geo.RELATIONS}, "st_relate": (3, 3),
}

# -- tokens -----------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<geo>(?:geography|geometry)'(?:[^']|'')*')
  | (?P<duration>duration'[^']*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_@$][\w@$.]*(?:/[A-Za-z_@$][\w@$.]*)*)
  | (?P<punct>[(),:-])
""", re.VERBOSE | re.IGNORECASE)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokens(text: str, option: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos] == "'" or text[pos:].lower().startswith(("geography'", "geometry'")):
                raise QueryError(f"unterminated string starting at position {pos} in {option}", pos)
            raise QueryError(f"unexpected character {text[pos]!r} at position {pos} in {option}", pos)
        kind = match.lastgroup or ""
        if kind != "space":
            out.append(_Token(kind, match.group(), pos))
        pos = match.end()
    return out


def _describe(token: _Token | None) -> str:
    return "the end" if token is None else repr(token.text)


# -- parsing ----------------------------------------------------------------------------------

class _Parser:
    def __init__(self, text: str, option: str = "$filter") -> None:
        if len(text) > MAX_FILTER_LENGTH:
            raise QueryError(f"{option} is too long ({len(text)} characters; at most {MAX_FILTER_LENGTH})", 0)
        self.text = text
        self.option = option
        self.tokens = _tokens(text, option)
        self.index = 0
        self.depth = 0

    # token helpers
    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token is not None and token.kind == "name" and token.text.lower() in words:
            return token.text.lower()
        return None

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def end_position(self) -> int:
        return len(self.text)

    def error(self, what: str, token: _Token | None) -> QueryError:
        position = self.end_position() if token is None else token.position
        return QueryError(f"{what} at position {position} in {self.option}", position)

    def expect_punct(self, char: str, context: str) -> _Token:
        token = self.peek()
        if token is None or token.kind != "punct" or token.text != char:
            raise self.error(f"expected {char!r} {context} but found {_describe(token)}", token)
        return self.advance()

    # grammar: or < and < not < eq ne < gt ge lt le < add sub < mul div mod < negation < primary
    def parse(self) -> Expr:
        if not self.tokens:
            raise QueryError(f"{self.option} is empty", 0)
        expr = self.parse_or()
        token = self.peek()
        if token is not None:
            raise self.error(f"unexpected {_describe(token)}", token)
        return expr

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            token = self.peek()
            raise self.error(f"expression nested too deeply (more than {MAX_DEPTH} levels)", token)

    def parse_or(self) -> Expr:
        left = self.parse_and()
        while self.keyword("or"):
            token = self.advance()
            left = Binary("or", left, self.operand_after(token, self.parse_and), token.position)
        return left

    def parse_and(self) -> Expr:
        left = self.parse_not()
        while self.keyword("and"):
            token = self.advance()
            left = Binary("and", left, self.operand_after(token, self.parse_not), token.position)
        return left

    def parse_not(self) -> Expr:
        if self.keyword("not"):
            token = self.advance()
            self.nested()
            operand = self.operand_after(token, self.parse_not)
            self.depth -= 1
            return Unary("not", operand, token.position)
        return self.parse_equality()

    def parse_equality(self) -> Expr:
        left = self.parse_relational()
        while word := self.keyword("eq", "ne"):
            token = self.advance()
            left = Binary(word, left, self.operand_after(token, self.parse_relational), token.position)
        return left

    def parse_relational(self) -> Expr:
        left = self.parse_additive()
        while word := self.keyword("gt", "ge", "lt", "le"):
            token = self.advance()
            left = Binary(word, left, self.operand_after(token, self.parse_additive), token.position)
        return left

    def parse_additive(self) -> Expr:
        left = self.parse_multiplicative()
        while word := self.keyword("add", "sub"):
            token = self.advance()
            left = Binary(word, left, self.operand_after(token, self.parse_multiplicative), token.position)
        return left

    def parse_multiplicative(self) -> Expr:
        left = self.parse_unary()
        while word := self.keyword("mul", "div", "mod"):
            token = self.advance()
            left = Binary(word, left, self.operand_after(token, self.parse_unary), token.position)
        return left

    def parse_unary(self) -> Expr:
        token = self.peek()
        if token is not None and token.kind == "punct" and token.text == "-":
            self.advance()
            following = self.peek()
            if following is not None and following.kind == "number" and following.position == token.position + 1:
                self.advance()
                return Literal(-_number(following.text), "number", token.position)
            self.nested()
            operand = self.operand_after(token, self.parse_unary)
            self.depth -= 1
            return Unary("-", operand, token.position)
        return self.parse_primary()

    def operand_after(self, token: _Token, parse: Callable[[], Expr]) -> Expr:
        following = self.peek()
        if following is None:
            raise self.error(f"expected a value after {token.text!r} but found the end", None)
        if following.kind == "name" and following.text.lower() in KEYWORDS - {"not"} \
                and self.keyword(following.text.lower()):
            raise self.error(f"expected a value after {token.text!r} but found {following.text!r}", following)
        return parse()

    def parse_primary(self) -> Expr:
        token = self.peek()
        if token is None:
            raise self.error("expected a value but found the end", None)
        kind = token.kind
        if kind == "punct":
            if token.text == "(":
                self.nested()
                self.advance()
                inner = self.parse_or()
                self.depth -= 1
                self.expect_punct(")", "to close the '(' at position %d" % token.position)
                return inner
            raise self.error(f"unexpected {token.text!r}", token)
        self.advance()
        if kind == "string":
            return Literal(token.text[1:-1].replace("''", "'"), "string", token.position)
        if kind == "number":
            return Literal(_number(token.text), "number", token.position)
        if kind == "datetime":
            return Literal(self.datetime_value(token), "datetime", token.position)
        if kind == "date":
            try:
                return Literal(date.fromisoformat(token.text), "date", token.position)
            except ValueError:
                raise self.error(f"{token.text!r} is not a valid date", token) from None
        if kind == "time":
            try:
                return Literal(time.fromisoformat(token.text), "time", token.position)
            except ValueError:
                raise self.error(f"{token.text!r} is not a valid time", token) from None
        if kind == "duration":
            return Literal(self.duration_value(token), "duration", token.position)
        if kind == "geo":
            quote = token.text.index("'")
            wkt = token.text[quote + 1:-1].replace("''", "'")
            try:
                geo.parse_wkt(wkt)
            except geo.GeometryError as exc:
                raise self.error(f"bad {token.text[:quote]} literal: {exc}", token) from None
            return Literal(wkt, "geometry", token.position)
        # a name: keyword literal, function call or property path
        lowered = token.text.lower()
        following = self.peek()
        if following is not None and following.kind == "punct" and following.text == "(":
            if "/" in lowered and lowered.rsplit("/", 1)[1] in ("any", "all"):
                return self.parse_lambda(token)
            return self.parse_call(token)
        if lowered in ("true", "false"):
            return Literal(lowered == "true", "boolean", token.position)
        if lowered == "null":
            return Literal(None, "null", token.position)
        if lowered in KEYWORDS:
            raise self.error(f"expected a value but found {token.text!r}", token)
        if lowered in FUNCTIONS:
            raise self.error(f"function {lowered!r} needs its arguments in brackets", token)
        return Path(tuple(token.text.split("/")), token.position)

    def datetime_value(self, token: _Token) -> datetime:
        raw = token.text
        try:
            value = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.upper().endswith("Z") else raw)
        except ValueError:
            raise self.error(f"{raw!r} is not a valid date and time", token) from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    def duration_value(self, token: _Token) -> timedelta:
        raw = token.text[token.text.index("'") + 1:-1]
        match = _DURATION.fullmatch(raw)
        if match is None or raw.endswith("T") or not any(match.group(g) for g in ("d", "h", "m", "s")):
            if re.fullmatch(r"-?P.*[YW].*|-?P[^T]*M.*", raw):
                raise self.error(f"duration {raw!r}: years, months and weeks are not supported; use days "
                                 "(e.g. duration'P7D')", token)
            raise self.error(f"{raw!r} is not an ISO 8601 duration such as 'P1DT2H30M'", token)
        value = timedelta(days=int(match.group("d") or 0), hours=int(match.group("h") or 0),
                          minutes=int(match.group("m") or 0), seconds=float(match.group("s") or 0))
        return -value if match.group("sign") else value

    def parse_lambda(self, name_token: _Token) -> Lambda:
        """``Path/any(v: condition)``, ``Path/all(v: condition)`` or ``Path/any()``."""
        *collection, op = name_token.text.split("/")
        op = op.lower()
        open_token = self.advance()  # "("
        self.nested()
        token = self.peek()
        if op == "any" and token is not None and token.kind == "punct" and token.text == ")":
            self.advance()
            self.depth -= 1
            return Lambda(op, tuple(collection), None, None, name_token.position)
        if token is None or token.kind != "name" or "/" in token.text or token.text.lower() in KEYWORDS:
            raise self.error(f"{op}( needs a range variable and a condition, e.g. {op}(d: d/name eq 'x')", token)
        variable = self.advance().text
        self.expect_punct(":", f"after the range variable {variable!r} of {op}(")
        body = self.parse_or()
        self.expect_punct(")", f"to close {op}( at position {open_token.position}")
        self.depth -= 1
        return Lambda(op, tuple(collection), variable, body, name_token.position)

    def parse_call(self, name_token: _Token) -> Call:
        name = name_token.text.lower()
        if name not in FUNCTIONS:
            raise self.error(f"unknown function {name_token.text!r}", name_token)
        open_token = self.advance()  # "("
        args: list[Expr] = []
        self.nested()
        token = self.peek()
        if token is not None and token.kind == "punct" and token.text == ")":
            self.advance()
        else:
            while True:
                args.append(self.parse_or())
                token = self.peek()
                if token is not None and token.kind == "punct" and token.text == ",":
                    self.advance()
                    continue
                self.expect_punct(")", f"to close {name}( at position {open_token.position}")
                break
        self.depth -= 1
        low, high = FUNCTIONS[name]
        if not low <= len(args) <= high:
            wanted = str(low) if low == high else f"{low} or {high}"
            raise self.error(f"{name} takes {wanted} argument{'s' if high != 1 else ''}, "
                             f"not {len(args)}", name_token)
        return Call(name, tuple(args), name_token.position)


_DURATION = re.compile(r"(?P<sign>-)?P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?")


def _number(text: str) -> int | float:
    if re.fullmatch(r"\d+", text):
        return int(text)
    return float(Decimal(text))


def parse_filter(text: str) -> Expr:
    """The syntax tree of a ``$filter`` expression; QueryError if it is not valid."""
    return _Parser(text, "$filter").parse()


_PATH = re.compile(r"[A-Za-z_@$][\w@$.]*(?:/[A-Za-z_@$][\w@$.]*)*")


def parse_orderby(text: str) -> list[tuple[tuple[str, ...], str]]:
    """The ``$orderby`` items as (path, "asc" | "desc") pairs; QueryError if not valid."""
    if len(text) > MAX_FILTER_LENGTH:
        raise QueryError(f"$orderby is too long ({len(text)} characters)", 0)
    items: list[tuple[tuple[str, ...], str]] = []
    position = 0
    for part in text.split(","):
        stripped = part.strip()
        start = position + (len(part) - len(part.lstrip()))
        if not stripped:
            raise QueryError(f"expected a property to order by at position {start} in $orderby", start)
        words = stripped.split()
        match = _PATH.fullmatch(words[0])
        if match is None:
            raise QueryError(f"{words[0]!r} at position {start} in $orderby is not a property path "
                             "(ordering by expressions is not supported)", start)
        direction = "asc"
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            wrong_direction = words[1].lower() not in ("asc", "desc")
            bad = words[1] if wrong_direction else words[2]
            where = position + part.index(bad, part.index(words[0]) + len(words[0]))
            hint = "asc or desc" if wrong_direction else "',' or the end"
            raise QueryError(f"unexpected {bad!r} at position {where} in $orderby: expected {hint}", where)
        if len(words) == 2:
            direction = words[1].lower()
        items.append((tuple(words[0].split("/")), direction))
        position += len(part) + 1
    return items


# -- dialect-neutral SQL pieces ---------------------------------------------------------------

class _JsonScalar(FunctionElement[Any]):
    """A JSON value's scalar of one kind (NULL if the value is of another kind)."""

    inherit_cache = True
    kind = ""


class json_number(_JsonScalar):
    """A JSON number as a float."""

    name = "sta_json_number"
    type = Float()
    inherit_cache = True
    kind = "number"


class json_string(_JsonScalar):
    """A JSON string as text."""

    name = "sta_json_string"
    type = String()
    inherit_cache = True
    kind = "string"


class json_boolean(_JsonScalar):
    """A JSON boolean as a boolean."""

    name = "sta_json_boolean"
    type = Boolean()
    inherit_cache = True
    kind = "boolean"


_SQLITE_JSON = {"number": ("('integer', 'real')", "CAST(json_extract({x}, '$') AS REAL)"),
                "string": ("('text')", "json_extract({x}, '$')"),
                "boolean": ("('true', 'false')", "json_extract({x}, '$')")}
_PG_JSON = {"number": ("number", "CAST(({x} #>> '{{}}') AS DOUBLE PRECISION)"),
            "string": ("string", "({x} #>> '{{}}')"),
            "boolean": ("boolean", "CAST(({x} #>> '{{}}') AS BOOLEAN)")}


@compiles(_JsonScalar, "sqlite")
def _json_scalar_sqlite(element: _JsonScalar, compiler: Any, **kw: Any) -> str:
    x = compiler.process(list(element.clauses)[0], **kw)
    kinds, value = _SQLITE_JSON[element.kind]
    return f"(CASE WHEN json_type({x}) IN {kinds} THEN {value.format(x=x)} END)"


@compiles(_JsonScalar, "postgresql")
def _json_scalar_pg(element: _JsonScalar, compiler: Any, **kw: Any) -> str:
    x = "CAST(%s AS JSONB)" % compiler.process(list(element.clauses)[0], **kw)
    kind, value = _PG_JSON[element.kind]
    return f"(CASE WHEN jsonb_typeof({x}) = '{kind}' THEN {value.format(x=x)} END)"


class json_kind(FunctionElement[Any]):
    """The kind of a JSON value: 'null', 'string', 'boolean', 'number' or another JSON type name."""

    name = "sta_json_kind"
    type = String()
    inherit_cache = True


@compiles(json_kind, "sqlite")
def _json_kind_sqlite(element: json_kind, compiler: Any, **kw: Any) -> str:
    x = compiler.process(list(element.clauses)[0], **kw)
    return (f"(CASE json_type({x}) WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' "
            f"WHEN 'text' THEN 'string' WHEN 'true' THEN 'boolean' WHEN 'false' THEN 'boolean' "
            f"ELSE json_type({x}) END)")


@compiles(json_kind, "postgresql")
def _json_kind_pg(element: json_kind, compiler: Any, **kw: Any) -> str:
    return "jsonb_typeof(CAST(%s AS JSONB))" % compiler.process(list(element.clauses)[0], **kw)


class bytewise(FunctionElement[Any]):
    """Text compared and sorted by code point, as SQLite does, also on PostgreSQL (``COLLATE "C"``)."""

    name = "sta_bytewise"
    type = String()
    inherit_cache = True


@compiles(bytewise)
def _bytewise_default(element: bytewise, compiler: Any, **kw: Any) -> str:
    return compiler.process(list(element.clauses)[0], **kw)


@compiles(bytewise, "postgresql")
def _bytewise_pg(element: bytewise, compiler: Any, **kw: Any) -> str:
    return '(%s COLLATE "C")' % compiler.process(list(element.clauses)[0], **kw)


_SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a DateTime in SQLite


def _sqlite_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


@sqlite_function("sta_shift_time", 2)
def _sqlite_shift_time(value: object, seconds: object) -> str | None:
    moment = _sqlite_time(value)
    if moment is None or not isinstance(seconds, (int, float)):
        return None
    try:
        return (moment + timedelta(seconds=seconds)).strftime(_SQLITE_TIME_FORMAT)
    except OverflowError:
        return None


@sqlite_function("sta_seconds_between", 2)
def _sqlite_seconds_between(a: object, b: object) -> float | None:
    first, second = _sqlite_time(a), _sqlite_time(b)
    return None if first is None or second is None else (first - second).total_seconds()


@sqlite_function("sta_lower", 1)
def _sqlite_lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


@sqlite_function("sta_upper", 1)
def _sqlite_upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


class _JsonMember(FunctionElement[Any]):
    """The JSON value at a path inside a JSON document, still JSON (booleans stay booleans)."""

    name = "sta_json_member"
    type = JSONType
    inherit_cache = True


@compiles(_JsonMember, "sqlite")
def _json_member_sqlite(element: _JsonMember, compiler: Any, **kw: Any) -> str:
    column, path, _ = list(element.clauses)
    doc, at = compiler.process(column, **kw), compiler.process(path, **kw)
    value = f"json_extract({doc}, {at})"
    return (f"(CASE json_type({doc}, {at}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
            f"WHEN 'null' THEN 'null' WHEN 'object' THEN {value} WHEN 'array' THEN {value} "
            f"ELSE json_quote({value}) END)")


@compiles(_JsonMember, "postgresql")
def _json_member_pg(element: _JsonMember, compiler: Any, **kw: Any) -> str:
    column, _, keys = list(element.clauses)
    return f"(CAST({compiler.process(column, **kw)} AS JSONB) #> {compiler.process(keys, **kw)})"


def json_member(column: ColumnElement[Any], keys: tuple[str, ...] | list[str]) -> ColumnElement[Any]:
    """The JSON value at ``keys`` inside a JSON column, as a "json" operand expression wants it.

    A missing member is SQL NULL or JSON null; ``eq null`` matches both.
    """
    keys = tuple(keys)
    if not keys:
        return column
    path = "$" + "".join('."' + key.replace('"', '\\"') + '"' for key in keys)
    return _JsonMember(column, literal(path, String()), cast(literal(list(keys), ARRAY(String())), ARRAY(String())))


# -- compiling --------------------------------------------------------------------------------

Resolver = Callable[[tuple[str, ...]], Operand]

_SQL_COMPARISON = {"eq": "__eq__", "ne": "__ne__", "gt": "__gt__", "ge": "__ge__", "lt": "__lt__", "le": "__le__"}
_PG_NUMERIC = Numeric()  # exact arithmetic where double precision would round differently from SQLite
_MIN_DATETIME = datetime(1, 1, 1, tzinfo=timezone.utc)
_MAX_DATETIME = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)


class _Compiler:
    def __init__(self, resolve: Resolver, dialect: str) -> None:
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"dialect must be 'sqlite' or 'postgresql', not {dialect!r}")
        self.resolve = resolve
        self.dialect = dialect
        self.pg = dialect == "postgresql"

    def error(self, what: str, node: Expr) -> QueryError:
        return QueryError(f"{what} at position {node.position} in $filter", node.position)

    # entry points
    def condition(self, node: Expr) -> ColumnElement[Any]:
        operand = self.compile(node)
        if operand.type == "json":
            return json_boolean(operand.expr) == literal(True, Boolean())
        if operand.type != "boolean":
            raise self.error(f"$filter must be a condition (true or false), but the expression is a "
                             f"{_TYPE_NAMES.get(operand.type, operand.type)}", node)
        return operand.expr

    def compile(self, node: Expr) -> Operand:
        if isinstance(node, Literal):
            return self.literal(node)
        if isinstance(node, Path):
            return self.path(node)
        if isinstance(node, Unary):
            return self.unary(node)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Lambda):
            return self.lambda_(node)
        raise TypeError(f"not a $filter expression: {node!r}")

    def lambda_(self, node: Lambda) -> Operand:
        """``any``/``all`` as ``EXISTS``/``NOT EXISTS`` over the collection (the resolver's ``collection``
        hook gives the collection's resolver and wraps a condition in the correlated subquery)."""
        scope = getattr(self.resolve, "collection", None)
        if scope is None:
            raise self.error("any/all are not available here", node)
        try:
            inner, exists = scope(node.collection)
        except QueryError as exc:
            raise QueryError(f"{exc.message} at position {node.position} in $filter", node.position) from None
        if node.body is None:
            return Operand(exists(None), "boolean")
        outer, variable = self.resolve, node.variable

        def resolve(segments: tuple[str, ...]) -> Operand:
            if segments[0] == variable:
                if len(segments) == 1:
                    raise QueryError(f"use a property of {variable}, e.g. {variable}/id")
                return inner(segments[1:])
            return outer(segments)

        def collection(segments: tuple[str, ...]) -> Any:
            if segments[0] == variable:
                return inner.collection(segments[1:])  # type: ignore[attr-defined]
            return outer.collection(segments)  # type: ignore[attr-defined]

        resolve.collection = collection  # type: ignore[attr-defined]
        compiler = _Compiler(resolve, self.dialect)
        condition = compiler.condition(node.body)
        if node.op == "any":
            return Operand(exists(condition), "boolean")
        return Operand(~exists(~func.coalesce(condition, false())), "boolean")

    def literal(self, node: Literal) -> Operand:
        value, kind = node.value, node.type
        if kind == "string":
            return Operand(literal(value, String()), "string")
        if kind == "number":
            return Operand(literal(value, Integer() if isinstance(value, int) else Float()), "number")
        if kind == "boolean":
            return Operand(literal(value, Boolean()), "boolean")
        if kind == "null":
            return Operand(literal(None), "null")
        if kind == "datetime":
            return Operand(literal(value, UTCDateTime()), "datetime")
        if kind == "date":
            return Operand(literal(value, Date()) if self.pg else literal(value.isoformat(), String()), "date")
        if kind == "time":
            return Operand(literal(value, Time()) if self.pg else literal(value.isoformat(), String()), "time")
        if kind == "geometry":
            return Operand(geo.from_wkt(value, self.dialect), "geometry")
        if kind == "duration":  # an interval on PostgreSQL, seconds on SQLite
            if self.pg:  # a plain number of seconds: a day is always 24 hours, whatever the session's zone
                return Operand(cast(literal(f"{value.total_seconds()} seconds", String()), Interval()), "duration")
            return Operand(literal(value.total_seconds(), Float()), "duration")
        raise self.error(f"unsupported literal {value!r}", node)

    def path(self, node: Path) -> Operand:
        try:
            operand = self.resolve(node.segments)
        except QueryError as exc:
            if exc.position is not None:
                raise
            raise QueryError(f"{exc.message} at position {node.position} in $filter", node.position) from None
        if operand.type not in OPERAND_TYPES:
            raise ValueError(f"resolve returned an operand of unknown type {operand.type!r}")
        if operand.type == "geometry":
            return Operand(geo.from_geojson(operand.expr, self.dialect), "geometry")
        return operand

    # coercions
    def as_type(self, operand: Operand, wanted: str, node: Expr, role: str) -> ColumnElement[Any]:
        """The operand's expression as ``wanted`` (json values are unpacked), or a QueryError."""
        kind = operand.type
        if kind == wanted or kind == "null":
            return operand.expr
        if kind == "json":
            return {"number": json_number, "string": json_string, "boolean": json_boolean}[wanted](operand.expr) \
                if wanted in ("number", "string", "boolean") else self._type_error(operand, wanted, node, role)
        if kind == "id" and wanted == "number":
            return operand.expr
        if kind == "id" and wanted == "string":
            return cast(operand.expr, String())
        return self._type_error(operand, wanted, node, role)

    def _type_error(self, operand: Operand, wanted: str, node: Expr, role: str) -> ColumnElement[Any]:
        raise self.error(f"{role} must be a {_TYPE_NAMES.get(wanted, wanted)}, not a "
                         f"{_TYPE_NAMES.get(operand.type, operand.type)}", node)

    def unify(self, left: Operand, right: Operand, lnode: Expr, rnode: Expr, op: str) -> tuple[
            ColumnElement[Any], ColumnElement[Any], str]:
        """Both sides of a comparison in one type: (left SQL, right SQL, the type)."""
        lt, rt = left.type, right.type
        # a string or date literal beside a date-time is read as a date-time
        if lt == "datetime" and rt in ("string", "date"):
            right = self.coerce_datetime(right, rnode)
            rt = right.type
        elif rt == "datetime" and lt in ("string", "date"):
            left = self.coerce_datetime(left, lnode)
            lt = left.type
        if lt == "geometry" or rt == "geometry":
            node = lnode if lt == "geometry" else rnode
            raise self.error(f"geometries cannot be compared with {op}; use st_equals or another "
                             "spatial function", node)
        if lt == rt and lt != "json":
            return left.expr, right.expr, lt
        if lt == "json" and rt == "json":
            return json_number(left.expr), json_number(right.expr), "json"
        if lt == "json":
            kind = "number" if rt == "id" else rt
            return self.as_type(left, kind, lnode, "the left side"), self.as_type(right, kind, rnode, "the right side"), kind
        if rt == "json":
            kind = "number" if lt == "id" else lt
            return self.as_type(left, kind, lnode, "the left side"), self.as_type(right, kind, rnode, "the right side"), kind
        if {lt, rt} == {"id", "number"}:
            return left.expr, right.expr, "number"
        if {lt, rt} == {"id", "string"}:
            ids = left if lt == "id" else right
            text = right if lt == "id" else left
            node = rnode if lt == "id" else lnode
            if isinstance(node, Literal) and re.fullmatch(r"-?\d+", str(node.value)):
                number = literal(int(node.value), Integer())
                return (ids.expr, number, "number") if lt == "id" else (number, ids.expr, "number")
            return (cast(ids.expr, String()), text.expr, "string") if lt == "id" else \
                (text.expr, cast(ids.expr, String()), "string")
        raise self.error(f"cannot compare a {_TYPE_NAMES.get(lt, lt)} with a {_TYPE_NAMES.get(rt, rt)}",
                         lnode if not isinstance(lnode, Literal) else rnode)

    def coerce_datetime(self, operand: Operand, node: Expr) -> Operand:
        if isinstance(node, Literal) and node.type == "date":
            value = datetime.combine(node.value, time(0), tzinfo=timezone.utc)
            return Operand(literal(value, UTCDateTime()), "datetime")
        if isinstance(node, Literal) and node.type == "string":
            raw = str(node.value)
            try:
                value = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.upper().endswith("Z") else raw)
            except ValueError:
                raise self.error(f"{raw!r} is not a date and time (write e.g. 2023-01-01T00:00:00Z)", node) from None
            if value.tzinfo is None:
                value = value.replace(tzinfo=timezone.utc)
            return Operand(literal(value, UTCDateTime()), "datetime")
        return operand

    # operators
    def unary(self, node: Unary) -> Operand:
        operand = self.compile(node.operand)
        if node.op == "not":
            inner = self.as_type(operand, "boolean", node.operand, "the operand of not")
            return Operand(not_(func.coalesce(inner, false())), "boolean")
        value = self.as_type(operand, "number", node.operand, "the operand of -")
        return Operand(-value, "number")

    def binary(self, node: Binary) -> Operand:
        op = node.op
        left, right = self.compile(node.left), self.compile(node.right)
        if op in ("and", "or"):
            lhs = self.as_type(left, "boolean", node.left, f"the left side of {op}")
            rhs = self.as_type(right, "boolean", node.right, f"the right side of {op}")
            return Operand((and_ if op == "and" else or_)(lhs, rhs), "boolean")
        if op in COMPARISONS:
            return Operand(self.comparison(op, left, right, node), "boolean")
        if {left.type, right.type} & {"datetime", "duration"}:
            return self.time_arithmetic(op, left, right, node)
        lhs = self.as_type(left, "number", node.left, f"the left side of {op}")
        rhs = self.as_type(right, "number", node.right, f"the right side of {op}")
        return Operand(self.arithmetic(op, lhs, rhs), "number")

    def time_arithmetic(self, op: str, left: Operand, right: Operand, node: Binary) -> Operand:
        """date-time ± duration, date-time - date-time, duration ± duration."""
        kinds = (left.type, right.type)
        if op == "add" and kinds in (("datetime", "duration"), ("duration", "datetime")):
            moment, span = (left, right) if kinds[0] == "datetime" else (right, left)
            return Operand(self.shift(moment.expr, span.expr, 1), "datetime")
        if op == "sub" and kinds == ("datetime", "duration"):
            return Operand(self.shift(left.expr, right.expr, -1), "datetime")
        if op == "sub" and kinds == ("datetime", "datetime"):
            if self.pg:
                return Operand(left.expr.op("-", return_type=Interval())(right.expr), "duration")
            return Operand(func.sta_seconds_between(left.expr, right.expr, type_=Float()), "duration")
        if op in ("add", "sub") and kinds == ("duration", "duration"):
            return Operand(left.expr.op("+" if op == "add" else "-", return_type=Interval() if self.pg else Float())(
                right.expr), "duration")
        raise self.error(f"cannot {op} a {_TYPE_NAMES.get(kinds[0], kinds[0])} and a "
                         f"{_TYPE_NAMES.get(kinds[1], kinds[1])}", node)

    def shift(self, moment: ColumnElement[Any], span: ColumnElement[Any], sign: int) -> ColumnElement[Any]:
        if self.pg:
            return moment.op("+" if sign > 0 else "-", return_type=UTCDateTime())(span)
        return func.sta_shift_time(moment, span if sign > 0 else -span, type_=UTCDateTime())

    def comparison(self, op: str, left: Operand, right: Operand, node: Binary) -> ColumnElement[Any]:
        if left.type == "null" or right.type == "null":
            other = right if left.type == "null" else left
            if other.type == "json":  # SQL NULL, a missing member or JSON null
                missing = or_(other.expr.is_(None), json_kind(other.expr) == "null")
                return missing if op == "eq" else not_(missing) if op == "ne" else false()
            if op == "eq":
                return other.expr.is_(None)
            if op == "ne":
                return other.expr.is_not(None)
            return false()
        lhs, rhs, kind = self.unify(left, right, node.left, node.right, op)
        if kind == "json":  # two JSON values: equal numbers, or equal strings
            lstr, rstr = json_string(left.expr), json_string(right.expr)
            if op == "eq":
                return or_(lhs == rhs, lstr == rstr)
            if op == "ne":
                return not_(func.coalesce(or_(lhs == rhs, lstr == rstr), false()))
            return getattr(lhs, _SQL_COMPARISON[op])(rhs)
        if kind == "string" and op not in ("eq", "ne"):
            lhs, rhs = bytewise(lhs), bytewise(rhs)
        if op == "ne":
            return lhs.is_distinct_from(rhs)
        return getattr(lhs, _SQL_COMPARISON[op])(rhs)

    def arithmetic(self, op: str, lhs: ColumnElement[Any], rhs: ColumnElement[Any]) -> ColumnElement[Any]:
        if op == "add":
            return lhs.op("+", return_type=Float())(rhs)
        if op == "sub":
            return lhs.op("-", return_type=Float())(rhs)
        if op == "mul":
            return lhs.op("*", return_type=Float())(rhs)
        divisor = func.nullif(rhs, 0)
        if op == "div":
            return lhs.op("/", return_type=Float())(divisor)
        # mod: the remainder of truncated division, with the sign of the dividend (as both databases do)
        if self.pg:
            return func.mod(cast(lhs, _PG_NUMERIC), cast(divisor, _PG_NUMERIC), type_=Float())
        return lhs.op("-", return_type=Float())(
            rhs.op("*")(cast(lhs.op("/")(divisor), Integer())))

    # functions
    def call(self, node: Call) -> Operand:
        name, args = node.name, node.args
        if name in ("now", "mindatetime", "maxdatetime"):
            value = {"now": datetime.now(timezone.utc), "mindatetime": _MIN_DATETIME,
                     "maxdatetime": _MAX_DATETIME}[name]
            return Operand(literal(value, UTCDateTime()), "datetime")
        operands = [self.compile(arg) for arg in args]

        def arg(i: int, kind: str) -> ColumnElement[Any]:
            return self.as_type(operands[i], kind, args[i], f"argument {i + 1} of {name}")

        pg = self.pg
        if name in ("substringof", "contains"):
            needle, haystack = (arg(0, "string"), arg(1, "string")) if name == "substringof" \
                else (arg(1, "string"), arg(0, "string"))
            return Operand((func.strpos if pg else func.instr)(haystack, needle) > 0, "boolean")
        if name == "startswith":
            text, prefix = arg(0, "string"), arg(1, "string")
            return Operand(func.substr(text, 1, func.length(prefix)) == prefix, "boolean")
        if name == "endswith":
            text, suffix = arg(0, "string"), arg(1, "string")
            return Operand(and_(func.length(text) >= func.length(suffix),
                                func.substr(text, func.length(text) - func.length(suffix) + 1) == suffix),
                           "boolean")
        if name == "length":
            return Operand(func.length(arg(0, "string"), type_=Integer()), "number")
        if name == "indexof":
            position = (func.strpos if pg else func.instr)(arg(0, "string"), arg(1, "string"), type_=Integer())
            return Operand(position - 1, "number")
        if name == "substring":
            start = (func.greatest if pg else func.max)(cast(arg(1, "number"), Integer()) + 1, 1, type_=Integer())
            parts = [arg(0, "string"), start]  # a start before the beginning is the beginning, on both
            if len(args) == 3:
                if isinstance(args[2], Literal) and isinstance(args[2].value, (int, float)) and args[2].value < 0:
                    raise self.error("the length given to substring must not be negative", args[2])
                count = cast(arg(2, "number"), Integer())
                parts.append((func.greatest if pg else func.max)(count, 0, type_=Integer()))
            return Operand(func.substr(*parts, type_=String()), "string")
        if name in ("tolower", "toupper"):
            fn = {"tolower": (func.lower, func.sta_lower), "toupper": (func.upper, func.sta_upper)}[name][0 if pg else 1]
            return Operand(fn(arg(0, "string"), type_=String()), "string")
        if name == "trim":
            return Operand(func.trim(arg(0, "string"), type_=String()), "string")
        if name == "concat":
            parts = [self.as_text(operands[i], args[i], name, i) for i in range(2)]
            return Operand(parts[0].op("||", return_type=String())(parts[1]), "string")
        if name in ("year", "month", "day", "hour", "minute", "second", "fractionalseconds", "date", "time",
                    "totaloffsetminutes"):
            return self.datetime_part(name, arg(0, "datetime"), args[0])
        if name in ("round", "floor", "ceiling"):
            return Operand(self.rounding(name, arg(0, "number")), "number")
        if name in ("geo.intersects", "geo.distance") or (name.startswith("st_") and name != "st_relate"):
            a, b = arg(0, "geometry"), arg(1, "geometry")
            if name == "geo.distance":
                return Operand(geo.distance(a, b, self.dialect), "number")
            relation = "intersects" if name == "geo.intersects" else name[3:]
            return Operand(geo.relation(relation, a, b, self.dialect), "boolean")
        if name == "geo.length":
            return Operand(geo.length(arg(0, "geometry"), self.dialect), "number")
        if name == "st_relate":
            a, b, pattern = arg(0, "geometry"), arg(1, "geometry"), arg(2, "string")
            if not (isinstance(args[2], Literal) and args[2].type == "string"):
                raise self.error("the pattern of st_relate must be a string literal such as 'T********'", args[2])
            if not geo.valid_pattern(str(args[2].value)):
                raise self.error(f"{args[2].value!r} is not a DE-9IM pattern (nine of T F * 0 1 2)", args[2])
            return Operand(geo.relate(a, b, pattern, self.dialect), "boolean")
        raise self.error(f"function {name!r} is not supported", node)

    def as_text(self, operand: Operand, node: Expr, name: str, index: int) -> ColumnElement[Any]:
        if operand.type in ("string", "null"):
            return operand.expr
        if operand.type == "json":
            return json_string(operand.expr)
        if operand.type in ("number", "id"):
            return cast(operand.expr, String())
        raise self.error(f"argument {index + 1} of {name} must be a string, not a "
                         f"{_TYPE_NAMES.get(operand.type, operand.type)}", node)

    def datetime_part(self, name: str, value: ColumnElement[Any], node: Expr) -> Operand:
        if name == "totaloffsetminutes":
            # stored times are UTC; a literal keeps the offset it was written with
            offset = 0
            if isinstance(node, Literal) and isinstance(node.value, datetime) and node.value.utcoffset():
                offset = int(node.value.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
            return Operand(literal(offset, Integer()), "number")
        if self.pg:
            utc = func.timezone("UTC", value)
            if name == "date":
                return Operand(cast(utc, Date()), "date")
            if name == "time":
                return Operand(cast(func.date_trunc("second", utc), Time()), "time")
            if name == "fractionalseconds":
                micro = extract("microseconds", utc)
                return Operand(func.round(cast(func.mod(micro, 1000000) / 1000000.0, _PG_NUMERIC), 3), "number")
            field = {"year": "year", "month": "month", "day": "day", "hour": "hour", "minute": "minute",
                     "second": "second"}[name]
            return Operand(cast(func.floor(extract(field, utc)), Integer()), "number")
        if name == "date":
            return Operand(func.date(value, type_=String()), "date")
        if name == "time":
            return Operand(func.time(value, type_=String()), "time")
        if name == "fractionalseconds":
            seconds = cast(func.strftime("%f", value), Float())
            whole = cast(func.strftime("%S", value), Float())
            return Operand(func.round(seconds - whole, 3), "number")
        pattern = {"year": "%Y", "month": "%m", "day": "%d", "hour": "%H", "minute": "%M", "second": "%S"}[name]
        return Operand(cast(func.strftime(pattern, value), Integer()), "number")

    def rounding(self, name: str, value: ColumnElement[Any]) -> ColumnElement[Any]:
        if self.pg:
            if name == "round":  # numeric rounds halves away from zero, as SQLite does
                return cast(func.round(cast(value, _PG_NUMERIC)), Float())
            return getattr(func, name)(value, type_=Float())
        if name == "round":
            return func.round(value, type_=Float())
        whole = cast(value, Integer())
        if name == "floor":
            return case((value < whole, whole - 1), else_=whole)
        return case((value > whole, whole + 1), else_=whole)


_TYPE_NAMES = {"string": "string", "number": "number", "datetime": "date-time", "boolean": "condition",
               "geometry": "geometry", "json": "JSON value", "id": "id", "null": "null", "date": "date",
               "time": "time of day", "duration": "duration"}


def compile_filter(expr: Expr | str, resolve: Resolver, dialect: str) -> ColumnElement[Any]:
    """The SQL condition of a parsed ``$filter`` (text is parsed first) for "sqlite" or "postgresql"."""
    tree = parse_filter(expr) if isinstance(expr, str) else expr
    return _Compiler(resolve, dialect).condition(tree)


def compile_orderby(items: list[tuple[tuple[str, ...], str]], resolve: Resolver) -> list[ColumnElement[Any]]:
    """The ORDER BY clauses of parsed ``$orderby`` items; nulls first ascending, last descending (OData)."""
    clauses: list[ColumnElement[Any]] = []
    for path, direction in items:
        try:
            operand = resolve(tuple(path))
        except QueryError as exc:
            if exc.position is not None:
                raise
            raise QueryError(f"{exc.message} in $orderby", None) from None
        if operand.type == "geometry":
            raise QueryError(f"cannot order by {'/'.join(path)!r}: it is a geometry", None)
        if operand.type == "json":  # numbers first, then strings (reversed when descending)
            number, text = json_number(operand.expr), json_string(operand.expr)
            if direction == "desc":
                clauses += [text.desc().nulls_last(), number.desc().nulls_last()]
            else:
                clauses += [number.asc().nulls_last(), text.asc().nulls_last()]
            continue
        if operand.type == "string":
            keys = [bytewise(operand.expr)]
        else:
            keys = [operand.expr]
        for key in keys:
            clauses.append(key.desc().nulls_last() if direction == "desc" else key.asc().nulls_first())
    return clauses


__all__ = ["Operand", "QueryError", "Literal", "Path", "Call", "Binary", "Unary", "Expr", "FUNCTIONS",
           "parse_filter", "parse_orderby", "compile_filter", "compile_orderby", "json_member",
           "json_number", "json_string", "json_boolean", "json_kind", "bytewise"]
