"""The subset of Solr's query syntax that CKAN clients send in ``q`` and ``fq``, compiled to SQL.

Supported: ``field:value``, ``field:"a phrase"``, ``field:prefix*``, ``field:*``, groups
``field:(a OR b)``, ``(x OR y)``, implicit AND between clauses (CKAN's Solr schema uses AND as
the default operator), ``AND``/``&&``, ``OR``/``||``, negation ``-x``/``NOT x``/``!x``, ``+x``,
``*:*``, and ranges ``[a TO b]`` / ``{a TO b}`` with ``*`` and Solr date math (``NOW-1DAY``) on
``metadata_modified`` and ``metadata_created``. Bare words are full text, like ``text:``.

Fields: organization, owner_org, groups, tags, res_format, license_id, name, id, private,
capacity, state, dataset_type/type, title, text/notes, url, version, author/maintainer(+_email),
metadata_modified, metadata_created, and ``extras_<key>``. An unknown field is a
:class:`~.actions.SearchError`, as Solr answers "undefined field".
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Union

from sqlalchemy import Boolean, and_, bindparam, false, func, literal_column, not_, or_, select, text, true
from sqlalchemy.sql.elements import ColumnElement

from ...core.models import Organisation
from ..formats import normalise_format
from ..models import Dataset, DatasetFacet, DatasetKeyword, DatasetTheme, Resource
from ..search import Term, fts5_expression, parse_query, pg_tsquery
from .actions import SearchError

# --- the syntax tree -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """A field's value: a word (maybe a ``prefix*`` or ``*``) or a phrase."""

    text: str
    phrase: bool = False

    @property
    def any(self) -> bool:
        """True for ``*``: the field has some value."""
        return not self.phrase and self.text == "*"

    @property
    def prefix(self) -> str | None:
        """The prefix of ``abc*``, or None."""
        if not self.phrase and len(self.text) > 1 and self.text.endswith("*") and "*" not in self.text[:-1]:
            return self.text[:-1]
        return None


@dataclass(frozen=True)
class Range:
    """A range ``[low TO high]`` (inclusive) or ``{low TO high}`` (exclusive); ``*`` is open."""

    low: str
    high: str
    include_low: bool
    include_high: bool


@dataclass(frozen=True)
class Clause:
    """``field:value`` (``field`` None for bare full text)."""

    field: str | None
    value: Union[Value, Range]


@dataclass(frozen=True)
class All:
    """``*:*``: every dataset."""


@dataclass(frozen=True)
class Not:
    """Negation."""

    node: "Node"


@dataclass(frozen=True)
class And:
    """Every part must match."""

    nodes: tuple["Node", ...]


@dataclass(frozen=True)
class Or:
    """Some part must match."""

    nodes: tuple["Node", ...]


Node = Union[Clause, All, Not, And, Or]

# --- tokens ----------------------------------------------------------------------------------------

_FIELD = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]*):")
_OPERATORS = {"AND": "AND", "&&": "AND", "OR": "OR", "||": "OR", "NOT": "NOT"}


@dataclass(frozen=True)
class _Token:
    kind: str  # ( ) FIELD WORD PHRASE RANGE ALL AND OR NOT PLUS MINUS
    text: str = ""
    range: Range | None = None


def _read_until(source: str, start: int, stops: str) -> tuple[str, int]:
    """Read a word with backslash escapes until whitespace or a stop character."""
    out: list[str] = []
    i = start
    while i < len(source):
        ch = source[i]
        if ch == "\\" and i + 1 < len(source):
            out.append(source[i + 1])
            i += 2
            continue
        if ch.isspace() or ch in stops:
            break
        out.append(ch)
        i += 1
    return "".join(out), i


def _read_phrase(source: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    while i < len(source):
        ch = source[i]
        if ch == "\\" and i + 1 < len(source):
            out.append(source[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise SearchError(f"Search error: the quotes in the query are not closed: {source!r}")


def _read_range(source: str, start: int) -> tuple[Range, int]:
    end = -1
    for j in range(start + 1, len(source)):
        if source[j] in "]}":
            end = j
            break
    if end < 0:
        raise SearchError(f"Search error: the range in the query is not closed: {source!r}")
    inside = source[start + 1:end].strip()
    parts = re.split(r"\s+TO\s+", inside)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise SearchError(f"Search error: a range must look like [low TO high], not {source[start:end + 1]!r}")
    low, high = (p.strip().strip('"') for p in parts)
    return Range(low, high, source[start] == "[", source[end] == "]"), end + 1


def tokenize(source: str) -> list[_Token]:
    """Split a Solr query into tokens."""
    tokens: list[_Token] = []
    i = 0
    after_field = False
    while i < len(source):
        ch = source[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "()":
            tokens.append(_Token(ch))
            i += 1
            after_field = False
            continue
        if ch == '"':
            phrase, i = _read_phrase(source, i)
            tokens.append(_Token("PHRASE", phrase))
            after_field = False
            continue
        if ch in "[{" and after_field:
            found, i = _read_range(source, i)
            tokens.append(_Token("RANGE", range=found))
            after_field = False
            continue
        if not after_field:
            if source.startswith("*:*", i):
                tokens.append(_Token("ALL"))
                i += 3
                continue
            if ch in "+-!" and i + 1 < len(source) and not source[i + 1].isspace():
                tokens.append(_Token({"+": "PLUS", "-": "MINUS", "!": "NOT"}[ch]))
                i += 1
                continue
            match = _FIELD.match(source, i)
            if match:
                tokens.append(_Token("FIELD", match.group(1)))
                i = match.end()
                after_field = True
                continue
        word, i = _read_until(source, i, "()" if after_field else "()\"")
        if not word:  # a stray character such as an unmatched quote mark position
            i += 1
            continue
        if not after_field and word in _OPERATORS:
            tokens.append(_Token(_OPERATORS[word]))
        else:
            tokens.append(_Token("WORD", word))
        after_field = False
    return tokens


def has_fields(source: str) -> bool:
    """True if the query uses Solr syntax (``field:value`` or ``*:*``), not just words."""
    try:
        return any(t.kind in ("FIELD", "ALL") for t in tokenize(source))
    except SearchError:
        return True


# --- parser ------------------------------------------------------------------------------------------

class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.pos = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def fail(self, why: str) -> SearchError:
        return SearchError(f"Search error: cannot parse {self.source!r}: {why}")

    def parse(self) -> Node:
        if not self.tokens:
            return All()
        node = self.or_expr(None)
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek().text or self.peek().kind!r}")  # type: ignore[union-attr]
        return node

    def or_expr(self, field: str | None) -> Node:
        nodes = [self.and_expr(field)]
        while self.peek() is not None and self.peek().kind == "OR":  # type: ignore[union-attr]
            self.take()
            nodes.append(self.and_expr(field))
        return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))

    def and_expr(self, field: str | None) -> Node:
        nodes = [self.unary(field)]
        while True:
            token = self.peek()
            if token is None or token.kind in (")", "OR"):
                break
            if token.kind == "AND":
                self.take()
            nodes.append(self.unary(field))
        return nodes[0] if len(nodes) == 1 else And(tuple(nodes))

    def unary(self, field: str | None) -> Node:
        token = self.peek()
        if token is None:
            raise self.fail("it ends too soon")
        if token.kind in ("NOT", "MINUS"):
            self.take()
            return Not(self.unary(field))
        if token.kind == "PLUS":
            self.take()
            return self.unary(field)
        return self.primary(field)

    def primary(self, field: str | None) -> Node:
        token = self.take()
        if token.kind == "(":
            node = self.or_expr(field)
            if self.peek() is None or self.take().kind != ")":
                raise self.fail("a bracket is not closed")
            return node
        if token.kind == "ALL":
            return All()
        if token.kind == "FIELD":
            if field is not None:
                raise self.fail(f"a field ({token.text}) inside the values of {field}")
            value = self.peek()
            if value is None:
                raise self.fail(f"no value after {token.text}:")
            if value.kind == "(":
                self.take()
                node = self.or_expr(token.text)
                if self.peek() is None or self.take().kind != ")":
                    raise self.fail("a bracket is not closed")
                return node
            return self.value(token.text, self.take())
        return self.value(field, token)

    def value(self, field: str | None, token: _Token) -> Node:
        if token.kind == "WORD":
            return Clause(field, Value(token.text))
        if token.kind == "PHRASE":
            return Clause(field, Value(token.text, phrase=True))
        if token.kind == "RANGE" and token.range is not None:
            return Clause(field, token.range)
        raise self.fail(f"unexpected {token.text or token.kind!r}")


def parse(source: str) -> Node:
    """Parse a Solr query (``q`` or ``fq``) into a tree; a malformed one is a SearchError."""
    return _Parser(source).parse()


# --- dates ---------------------------------------------------------------------------------------------

_MATH = re.compile(r"([+-]\d+|/)(YEARS?|MONTHS?|DAYS?|DATE|HOURS?|MINUTES?|SECONDS?)", re.IGNORECASE)


def _round(value: datetime, unit: str) -> datetime:
    unit = unit.upper().rstrip("S")
    if unit == "YEAR":
        return value.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "MONTH":
        return value.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit in ("DAY", "DATE"):
        return value.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "HOUR":
        return value.replace(minute=0, second=0, microsecond=0)
    if unit == "MINUTE":
        return value.replace(second=0, microsecond=0)
    return value.replace(microsecond=0)


def _shift(value: datetime, amount: int, unit: str) -> datetime:
    unit = unit.upper().rstrip("S")
    if unit in ("YEAR", "MONTH"):
        months = value.month - 1 + amount * (12 if unit == "YEAR" else 1)
        year, month = value.year + months // 12, months % 12 + 1
        day = min(value.day, [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
                              31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1])
        return value.replace(year=year, month=month, day=day)
    seconds = {"DAY": 86400, "DATE": 86400, "HOUR": 3600, "MINUTE": 60, "SECOND": 1}[unit]
    return value + timedelta(seconds=amount * seconds)


def parse_date(value: str, now: datetime | None = None) -> datetime:
    """A Solr date (ISO 8601, ``NOW``, date math such as ``NOW-7DAYS/DAY``) as an aware UTC datetime."""
    raw = value.strip()
    base, math = raw, ""
    if raw.upper().startswith("NOW"):
        moment = now or datetime.now(timezone.utc)
        math = raw[3:]
    else:
        split = re.search(r"(?:[+-]\d+[A-Za-z]+|/[A-Za-z]+)+$", raw)
        if split:
            base, math = raw[:split.start()], raw[split.start():]
        try:
            text_value = base[:-1] + "+00:00" if base.endswith("Z") else base
            moment = datetime.fromisoformat(text_value)
        except ValueError:
            raise SearchError(f"Search error: Invalid Date String:'{value}'") from None
        moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    position = 0
    for match in _MATH.finditer(math):
        if match.start() != position:
            break
        op, unit = match.group(1), match.group(2)
        try:
            moment = _round(moment, unit) if op == "/" else _shift(moment, int(op), unit)
        except (ValueError, OverflowError):
            raise SearchError(f"Search error: Invalid Date String:'{value}'") from None
        position = match.end()
    if position != len(math):
        raise SearchError(f"Search error: Invalid Date String:'{value}'")
    return moment


# --- compiling to SQL ----------------------------------------------------------------------------------

LICENCE_ALIASES = {
    "uk-ogl": "OGL-UK-3.0", "ogl-uk-3.0": "OGL-UK-3.0", "ogl-uk-2.0": "OGL-UK-2.0", "cc-by": "CC-BY-4.0",
    "cc-by-4.0": "CC-BY-4.0", "cc-by-sa": "CC-BY-SA-4.0", "cc-by-sa-4.0": "CC-BY-SA-4.0", "cc-zero": "CC0-1.0",
    "cc0-1.0": "CC0-1.0", "odc-odbl": "ODbL-1.0", "odbl-1.0": "ODbL-1.0",
}
TEXT_FIELDS = {"text", "notes", "res_name", "res_description"}
SIMPLE_COLUMNS = {"url": "landing_page", "version": "version", "author_email": "contact_email",
                  "maintainer_email": "contact_email"}


def licence_id(value: str) -> str:
    """Our licence id for a CKAN one (``uk-ogl`` is ``OGL-UK-3.0``); others unchanged."""
    return LICENCE_ALIASES.get(value.lower(), value)


class Compiler:
    """Turns a query tree into a SQLAlchemy condition on ``dataset``."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres
        self._names = itertools.count()

    def compile(self, node: Node) -> ColumnElement[bool]:
        """The condition a dataset must meet to match ``node``."""
        if isinstance(node, All):
            return true()
        if isinstance(node, Not):
            return not_(self.compile(node.node))
        if isinstance(node, And):
            return and_(*[self.compile(n) for n in node.nodes])
        if isinstance(node, Or):
            return or_(*[self.compile(n) for n in node.nodes])
        return self.clause(node)

    # full text -----------------------------------------------------------------------------------
    def full_text(self, value: Value) -> ColumnElement[bool]:
        """Datasets whose title, keywords or description match the words (or phrase)."""
        parsed = parse_query(f'"{value.text}"' if value.phrase else value.text)
        if value.any or not parsed.clauses:
            return true()
        return and_(*[self.text_match(clause) for clause in parsed.clauses])

    def text_match(self, terms: list[Term]) -> ColumnElement[bool]:
        """Datasets matching any of these terms in the full-text index."""
        if self.postgres:
            return Dataset.search_vector.op("@@", return_type=Boolean)(pg_tsquery([terms]))
        name = f"fts_{next(self._names)}"
        matches = (select(literal_column("rowid")).select_from(text("dataset_fts"))
                   .where(text(f"dataset_fts MATCH :{name}").bindparams(bindparam(name, fts5_expression([terms])))))
        return Dataset.id.in_(matches)

    # fields --------------------------------------------------------------------------------------
    def clause(self, clause: Clause) -> ColumnElement[bool]:
        field = clause.field
        value = clause.value
        if field is None or field in TEXT_FIELDS:
            if isinstance(value, Range):
                raise SearchError(f"Search error: a range cannot be used on full text ({field or 'text'})")
            return self.full_text(value)
        if field in ("metadata_modified", "metadata_created"):
            return self.date_clause(Dataset.modified if field == "metadata_modified" else Dataset.created, value)
        if isinstance(value, Range):
            if field in ("name", "id"):
                return self.string_range(Dataset.slug if field == "name" else Dataset.uuid, value)
            raise SearchError(f"Search error: ranges are supported on metadata_modified, metadata_created, "
                              f"name and id, not on {field}")
        if field in ("organization", "owner_org"):
            column = Organisation.slug if field == "organization" else Organisation.uuid
            if value.any:
                return true()
            ids = select(Organisation.id).where(self.match(column, value))
            if value.prefix is None:  # one organisation: a scalar the planner can use with the dataset index
                return Dataset.organisation_id == ids.scalar_subquery()
            return Dataset.organisation_id.in_(ids)
        if field == "tags":
            return self.facet("keyword", value, lower=True, table=DatasetKeyword.dataset_id)
        if field == "groups":
            return self.facet("theme", value, table=DatasetTheme.dataset_id)
        if field == "license_id":
            return Dataset.licence_id.is_not(None) if value.any else self.match(Dataset.licence_id, value,
                                                                                 transform=licence_id)
        if field == "res_format":
            if value.any:
                return Dataset.id.in_(select(Resource.dataset_id))
            return Dataset.id.in_(select(Resource.dataset_id).where(
                self.match(Resource.format, value, transform=normalise_format)))
        if field == "name":
            return self.match(Dataset.slug, value)
        if field == "id":
            return self.match(Dataset.uuid, value)
        if field in ("private", "capacity"):
            wanted = value.text.lower() in ("true", "1", "private") if field == "private" else value.text == "private"
            return true() if value.any else Dataset.private.is_(wanted)
        if field == "state":
            return true() if value.any else Dataset.state == value.text
        if field in ("dataset_type", "type"):
            return true() if value.any or value.text == "dataset" else false()
        if field == "title":
            words = [w for w in re.split(r"\W+", value.text.lower()) if w]
            if value.any or not words:
                return true()
            if value.phrase:
                return func.lower(Dataset.title).contains(" ".join(words), autoescape=True)
            return and_(*[func.lower(Dataset.title).contains(w, autoescape=True) for w in words])
        if field in ("author", "maintainer"):
            return true() if value.any else func.lower(Dataset.contact_name).contains(value.text.lower(),
                                                                                     autoescape=True)
        if field in SIMPLE_COLUMNS:
            column = getattr(Dataset, SIMPLE_COLUMNS[field])
            return column != "" if value.any else self.match(column, value)
        if field.startswith("extras_") and len(field) > 7:
            return self.extra(field[7:], value)
        raise SearchError(f"Search error: undefined field {field}")

    def extra(self, key: str, value: Value) -> ColumnElement[bool]:
        """``extras_<key>``: the platform's own fields first, then the free extras."""
        if key == "frequency":
            return self.facet("frequency", value)
        if key == "boroughs":
            return self.facet("borough", value, upper=True)
        if key == "geography":
            return self.match(Dataset.geography, value)
        column = Dataset.extras[key].as_string()
        return column.is_not(None) if value.any else self.match(column, value)

    @staticmethod
    def match(column: Any, value: Value, transform: Any = None) -> ColumnElement[bool]:
        """``column`` equal to the value (or starting with its prefix)."""
        prefix = value.prefix
        if prefix is not None:
            return column.startswith(prefix, autoescape=True)
        return column == (transform(value.text) if transform else value.text)

    def facet(self, facet: str, value: Value, *, lower: bool = False, upper: bool = False,
              table: Any = None) -> ColumnElement[bool]:
        """Datasets with a value of one of the indexed facets (``dataset_facet``)."""
        if value.any:
            return Dataset.id.in_(select(table)) if table is not None else Dataset.id.in_(
                select(DatasetFacet.dataset_id).where(DatasetFacet.facet == facet))
        text_value = value.text.lower() if lower else value.text.upper() if upper else value.text
        condition = self.match(DatasetFacet.value, Value(text_value, value.phrase))
        return Dataset.id.in_(select(DatasetFacet.dataset_id).where(DatasetFacet.facet == facet, condition))

    @staticmethod
    def date_clause(column: Any, value: Value | Range) -> ColumnElement[bool]:
        """A timestamp equal to a date (the whole day for a bare date) or inside a range."""
        if isinstance(value, Value):
            if value.any:
                return true()
            moment = parse_date(value.text)
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.text.strip()):
                return and_(column >= moment, column < moment + timedelta(days=1))
            return column == moment
        parts = []
        if value.low != "*":
            low = parse_date(value.low)
            parts.append(column >= low if value.include_low else column > low)
        if value.high != "*":
            high = parse_date(value.high)
            parts.append(column <= high if value.include_high else column < high)
        return and_(true(), *parts)

    @staticmethod
    def string_range(column: Any, value: Range) -> ColumnElement[bool]:
        """A string between two bounds."""
        parts = []
        if value.low != "*":
            parts.append(column >= value.low if value.include_low else column > value.low)
        if value.high != "*":
            parts.append(column <= value.high if value.include_high else column < value.high)
        return and_(true(), *parts)
