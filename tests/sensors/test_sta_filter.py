"""The SensorThings $filter and $orderby language, on the real LAQN site list, on both databases.

Each case states a filter and, in plain Python over the same rows, which sites it must return;
the test runs the compiled SQL on SQLite and on PostgreSQL + PostGIS and compares.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from shapely.geometry import LineString, Point, Polygon
from sqlalchemy import select

from smartlondon.core.db import Database
from smartlondon.sensors.sta.odata import (
    Binary,
    Literal,
    Operand,
    Path,
    QueryError,
    compile_filter,
    compile_orderby,
    parse_filter,
    parse_orderby,
)
from tests.sensors import filter_support
from tests.sensors.filter_support import resolve, rows, sites

Row = dict[str, Any]
CENTRAL = "POLYGON((-0.2 51.48, -0.05 51.48, -0.05 51.53, -0.2 51.53, -0.2 51.48))"
CENTRAL_SHAPE = Polygon([(-0.2, 51.48), (-0.05, 51.48), (-0.05, 51.53), (-0.2, 51.53)])
CHARING_CROSS = Point(-0.1276, 51.5072)


def point(row: Row) -> Point:
    return Point(row["longitude"], row["latitude"])


@pytest.fixture
def laqn(db: Database) -> Iterator[Database]:
    """The database with the LAQN site table loaded."""
    filter_support.load(db.engine)
    yield db
    filter_support.drop(db.engine)


def codes(db: Database, text: str) -> set[str]:
    """The site codes a $filter selects."""
    condition = compile_filter(parse_filter(text), resolve, db.dialect)
    with db.engine.connect() as conn:
        return {r[0] for r in conn.execute(select(sites.c.code).where(condition))}


def expected(predicate: Callable[[Row], bool]) -> set[str]:
    return {r["code"] for r in rows() if predicate(r)}


def check(db: Database, cases: list[tuple[str, Callable[[Row], bool]]], allow_empty: tuple[str, ...] = ()) -> None:
    """Run every case and report all that differ at once."""
    failures = []
    for text, predicate in cases:
        want = expected(predicate)
        if not want and text not in allow_empty:
            failures.append(f"{text}: the case selects nothing, so it proves nothing")
        got = codes(db, text)
        if got != want:
            failures.append(f"{text}: got {sorted(got)} expected {sorted(want)}")
    assert not failures, "\n".join(failures)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)  # type: ignore[misc]


def test_the_table_is_real_data(laqn: Database) -> None:
    assert len(rows()) == 88
    assert codes(laqn, "code eq 'BG1'") == {"BG1"}
    numeric = [r for r in rows() if isinstance(r["result"], float)]
    assert len(numeric) > 60


def test_comparison_operators(laqn: Database) -> None:
    check(laqn, [
        ("siteType eq 'Kerbside'", lambda r: r["site_type"] == "Kerbside"),
        ("siteType ne 'Roadside'", lambda r: r["site_type"] != "Roadside"),
        ("latitude gt 51.6", lambda r: r["latitude"] > 51.6),
        ("latitude ge 51.563752", lambda r: r["latitude"] >= 51.563752),
        ("longitude lt -0.4", lambda r: r["longitude"] < -0.4),
        ("longitude le 0 and latitude lt 51.45", lambda r: r["longitude"] <= 0 and r["latitude"] < 51.45),
        ("Thing/name eq 'Bexley - Belvedere'", lambda r: r["name"] == "Bexley - Belvedere"),
        ("name gt 'Westminster'", lambda r: r["name"] > "Westminster"),
        ("name lt 'Bexley'", lambda r: r["name"] < "Bexley"),
        ("id eq 5", lambda r: r["id"] == 5),
        ("@iot.id le 3", lambda r: r["id"] <= 3),
        ("id eq '7'", lambda r: r["id"] == 7),
        ("5 eq id", lambda r: r["id"] == 5),
        ("active eq true", lambda r: r["active"]),
        ("active", lambda r: r["active"]),
        ("active eq false", lambda r: not r["active"]),
    ])


def test_datetime_comparisons_honour_offsets_and_accept_dates(laqn: Database) -> None:
    check(laqn, [
        ("opened lt 1995-01-01T00:00:00Z", lambda r: r["opened"] < utc(1995, 1, 1)),
        # 01:00 at +01:00 is midnight UTC, the moment BQ7 opened
        ("opened ge 2010-08-24T01:00:00+01:00", lambda r: r["opened"] >= utc(2010, 8, 24)),
        ("opened eq 2010-08-24T00:00:00Z", lambda r: r["opened"] == utc(2010, 8, 24)),
        ("opened gt '2015-01-01T00:00:00Z'", lambda r: r["opened"] > utc(2015, 1, 1)),
        ("opened lt 2000-01-01", lambda r: r["opened"] < utc(2000, 1, 1)),
        ("closed lt 2026-01-01T00:00:00.000Z", lambda r: r["closed"] is not None and r["closed"] < utc(2026, 1, 1)),
        ("opened lt now()", lambda r: True),
        ("opened gt mindatetime() and opened lt maxdatetime()", lambda r: True),
    ])


def test_durations_and_date_time_arithmetic(laqn: Database) -> None:
    from datetime import timedelta
    now = datetime.now(timezone.utc)
    check(laqn, [
        ("opened add duration'P1D' eq 2010-08-25T00:00:00Z", lambda r: r["opened"] + timedelta(days=1) == utc(2010, 8, 25)),
        ("opened sub duration'PT15H' eq 1998-01-24T00:00:00Z", lambda r: r["opened"] - timedelta(hours=15) == utc(1998, 1, 24)),
        ("duration'PT1.5S' add opened gt 2010-08-24T00:00:01Z",
         lambda r: r["opened"] + timedelta(seconds=1.5) > utc(2010, 8, 24, 0, 0, 1)),
        ("closed sub opened gt duration'P9000D'", lambda r: r["closed"] is not None and r["closed"] - r["opened"] > timedelta(days=9000)),
        ("now() sub opened lt duration'P3650D' add duration'P1D'", lambda r: now - r["opened"] < timedelta(days=3651)),
        ("year(opened add duration'P40D') eq 1999 and month(opened add duration'P40D') eq 12",
         lambda r: (r["opened"] + timedelta(days=40)).year == 1999 and (r["opened"] + timedelta(days=40)).month == 12),
    ])


def test_null_comparisons(laqn: Database) -> None:
    check(laqn, [
        ("closed eq null", lambda r: r["closed"] is None),
        ("closed ne null", lambda r: r["closed"] is not None),
        ("null eq closed", lambda r: r["closed"] is None),
        ("properties/missing eq null", lambda r: True),
        ("properties/owner ne null", lambda r: True),
        ("result eq null", lambda r: False),
    ], allow_empty=("result eq null",))


def test_logical_operators_and_precedence(laqn: Database) -> None:
    check(laqn, [
        # and binds tighter than or
        ("siteType eq 'Suburban' or siteType eq 'Industrial' and borough eq 'Bexley'",
         lambda r: r["site_type"] == "Suburban" or (r["site_type"] == "Industrial" and r["borough"] == "Bexley")),
        ("(siteType eq 'Suburban' or siteType eq 'Industrial') and borough eq 'Bexley'",
         lambda r: r["site_type"] in ("Suburban", "Industrial") and r["borough"] == "Bexley"),
        ("not (siteType eq 'Roadside')", lambda r: r["site_type"] != "Roadside"),
        ("not siteType eq 'Roadside' and not active", lambda r: r["site_type"] != "Roadside" and not r["active"]),
        ("not not active", lambda r: r["active"]),
        # OData: a comparison with a missing value is false, so its negation is true
        ("not (closed lt 2026-01-01T00:00:00Z)", lambda r: not (r["closed"] is not None and r["closed"] < utc(2026, 1, 1))),
        ("NOT active OR code EQ 'BG1'", lambda r: not r["active"] or r["code"] == "BG1"),
    ])


def test_arithmetic(laqn: Database) -> None:
    check(laqn, [
        ("latitude add 1 gt 52.6", lambda r: r["latitude"] + 1 > 52.6),
        ("latitude sub longitude gt 51.6", lambda r: r["latitude"] - r["longitude"] > 51.6),
        ("id mul 2 eq 10", lambda r: r["id"] * 2 == 10),
        ("id div 2 eq 3", lambda r: r["id"] // 2 == 3),  # integer division of integers
        ("id mod 10 eq 3", lambda r: r["id"] % 10 == 3),
        ("longitude mod 0.1 lt -0.05", lambda r: (r["longitude"] - 0.1 * int(r["longitude"] / 0.1)) < -0.05),
        ("properties/offset div 100 eq 2.5", lambda r: r["properties"]["offset"] / 100 == 2.5),
        ("-longitude gt 0.4", lambda r: -r["longitude"] > 0.4),
        ("id sub 2 sub 3 eq 0", lambda r: r["id"] - 2 - 3 == 0),
        ("id sub (2 sub 3) eq 6", lambda r: r["id"] - (2 - 3) == 6),
        ("2 add id mul 3 eq 11", lambda r: 2 + r["id"] * 3 == 11),
        ("latitude div 0 eq 1 or id eq 1", lambda r: r["id"] == 1),  # division by zero is null, not an error
    ])


def test_string_functions(laqn: Database) -> None:
    check(laqn, [
        ("substringof('Road', name)", lambda r: "Road" in r["name"]),
        ("substringof('road', name)", lambda r: "road" in r["name"]),  # case matters on both databases
        ("contains(name, 'Road')", lambda r: "Road" in r["name"]),
        ("startswith(name, 'Camden')", lambda r: r["name"].startswith("Camden")),
        ("endswith(name, 'Road')", lambda r: r["name"].endswith("Road")),
        ("endswith(name, '')", lambda r: True),
        ("length(code) eq 3", lambda r: len(r["code"]) == 3),
        ("indexof(name, ' - ') eq 6", lambda r: r["name"].find(" - ") == 6),
        ("indexof(name, 'zzz') eq -1", lambda r: True),
        ("substring(code, 1) eq 'G1'", lambda r: r["code"][1:] == "G1"),
        ("substring(name, 0, 6) eq 'Bexley'", lambda r: r["name"][:6] == "Bexley"),
        ("substring(code, -2) eq code", lambda r: True),
        ("substring(code, 1, id sub 100) eq ''", lambda r: True),  # a computed negative length is 0
        ("tolower(code) eq 'bg1'", lambda r: r["code"].lower() == "bg1"),
        ("toupper(borough) eq 'CAMDEN'", lambda r: r["borough"].upper() == "CAMDEN"),
        ("trim(concat('  ', code)) eq 'BG1'", lambda r: r["code"] == "BG1"),
        ("concat(concat(code, '/'), siteType) eq 'BG1/Suburban'", lambda r: f"{r['code']}/{r['site_type']}" == "BG1/Suburban"),
        ("name eq 'Camden - Swiss Cottage' or name eq 'it''s'", lambda r: r["name"] == "Camden - Swiss Cottage"),
    ], allow_empty=("substringof('road', name)",))
    assert codes(laqn, "startswith(name, 'bexley')") == set()  # no case-insensitive LIKE on SQLite


def test_date_functions(laqn: Database) -> None:
    check(laqn, [
        ("year(opened) eq 1999", lambda r: r["opened"].year == 1999),
        ("month(opened) eq 11", lambda r: r["opened"].month == 11),
        ("day(opened) eq 1", lambda r: r["opened"].day == 1),
        ("hour(opened) eq 15", lambda r: r["opened"].hour == 15),
        ("minute(opened) eq 0", lambda r: r["opened"].minute == 0),
        ("second(opened) eq 0", lambda r: r["opened"].second == 0),
        ("fractionalseconds(opened) eq 0", lambda r: True),
        ("date(opened) eq 1998-01-24", lambda r: r["opened"].date().isoformat() == "1998-01-24"),
        ("time(opened) eq 15:00:00", lambda r: r["opened"].time().isoformat() == "15:00:00"),
        ("time(opened) gt 12:00", lambda r: r["opened"].hour >= 12 and r["opened"].time().isoformat() > "12:00:00"),
        ("totaloffsetminutes(opened) eq 0", lambda r: True),
        ("year(closed) eq 2026", lambda r: r["closed"] is not None and r["closed"].year == 2026),
        ("year(opened) add 1 eq 2000", lambda r: r["opened"].year == 1999),
    ])


def test_math_functions(laqn: Database) -> None:
    check(laqn, [
        ("round(latitude) eq 52", lambda r: round(r["latitude"]) == 52),
        ("floor(longitude) eq -1", lambda r: r["longitude"] // 1 == -1),
        ("ceiling(longitude) eq 0", lambda r: -1 < r["longitude"] <= 0),
        ("floor(latitude mul 10) eq 515", lambda r: int(r["latitude"] * 10 // 1) == 515),
        # 250 / 100 = 2.5 rounds away from zero on both databases
        ("round(properties/offset div 100) eq 3", lambda r: 250 <= r["properties"]["offset"] < 350),
    ])


def test_json_members_compare_by_the_literal_type(laqn: Database) -> None:
    check(laqn, [
        ("result gt 40", lambda r: isinstance(r["result"], float) and r["result"] > 40),
        ("result le 15.5", lambda r: isinstance(r["result"], float) and r["result"] <= 15.5),
        ("result eq 'no data'", lambda r: r["result"] == "no data"),
        ("result ne 'no data'", lambda r: r["result"] != "no data"),
        ("result lt 10 or result eq 'no data'", lambda r: r["result"] == "no data" or r["result"] < 10),
        ("result add 10 gt 50", lambda r: isinstance(r["result"], float) and r["result"] + 10 > 50),
        ("properties/owner eq 'Greenwich'", lambda r: r["properties"]["owner"] == "Greenwich"),
        ("startswith(properties/owner, 'Green')", lambda r: r["properties"]["owner"].startswith("Green")),
        ("properties/offset eq 250", lambda r: r["properties"]["offset"] == 250),
        ("properties/authority le 3", lambda r: r["properties"]["authority"] <= 3),
        ("properties/reference eq true and properties/authority eq 1", lambda r: r["properties"]["authority"] == 1),
        ("properties/reference", lambda r: True),
        ("properties/offset eq properties/offset", lambda r: True),
    ])


def test_spatial_functions(laqn: Database) -> None:
    within = lambda r: CENTRAL_SHAPE.contains(point(r))  # noqa: E731
    check(laqn, [
        (f"st_within(location, geography'{CENTRAL}')", within),
        (f"geo.intersects(location, geography'{CENTRAL}')", within),
        (f"st_intersects(location, geography'{CENTRAL}')", within),
        (f"st_contains(geography'{CENTRAL}', location)", within),
        (f"st_disjoint(location, geography'{CENTRAL}')", lambda r: not within(r)),
        (f"st_relate(location, geography'{CENTRAL}', 'T********')", within),
        ("st_equals(location, geography'POINT(0.177891 51.563752)')", lambda r: r["code"] == "BG1"),
        ("st_touches(location, geography'LINESTRING(0.177891 51.563752, 1 52)')", lambda r: r["code"] == "BG1"),
        (f"st_overlaps(location, geography'{CENTRAL}')", lambda r: False),  # points never overlap polygons
        (f"st_crosses(geography'LINESTRING(-1 51.5, 1 51.5)', geography'{CENTRAL}') and id eq 1", lambda r: r["id"] == 1),
        ("geo.distance(location, geography'POINT(-0.1276 51.5072)') lt 0.05",
         lambda r: point(r).distance(CHARING_CROSS) < 0.05),
        ("geo.distance(location, geography'POINT(-0.1276 51.5072)') ge 0.3",
         lambda r: point(r).distance(CHARING_CROSS) >= 0.3),
        ("geo.length(geography'LINESTRING(0 0, 3 4)') eq 5", lambda r: True),
        ("geo.length(location) eq 0", lambda r: True),
    ], allow_empty=(f"st_overlaps(location, geography'{CENTRAL}')",))
    assert LineString([(-1, 51.5), (1, 51.5)]).crosses(CENTRAL_SHAPE)


def ordered(db: Database, text: str) -> list[str]:
    clauses = compile_orderby(parse_orderby(text), resolve)
    with db.engine.connect() as conn:
        return [r[0] for r in conn.execute(select(sites.c.code).order_by(*clauses))]


def test_orderby(laqn: Database) -> None:
    data = list(rows())
    assert ordered(laqn, "latitude desc, id") == [r["code"] for r in sorted(data, key=lambda r: (-r["latitude"], r["id"]))]
    assert ordered(laqn, "siteType, name desc") == [
        r["code"] for r in sorted(sorted(data, key=lambda r: r["name"], reverse=True), key=lambda r: r["site_type"])]
    # ascending: null first (OData), then by time; ties broken by id
    assert ordered(laqn, "closed asc, id") == [
        r["code"] for r in sorted(data, key=lambda r: (r["closed"] is not None, r["closed"] or utc(1, 1, 1), r["id"]))]
    assert ordered(laqn, "closed desc, id") == [
        r["code"] for r in sorted(data, key=lambda r: (r["closed"] is None, -(r["closed"] or utc(1, 1, 1)).timestamp(), r["id"]))]
    # JSON values: numbers in numeric order, then strings
    numbers = sorted((r for r in data if isinstance(r["result"], float)), key=lambda r: (r["result"], r["id"]))
    strings = [r for r in data if isinstance(r["result"], str)]
    assert ordered(laqn, "result, @iot.id") == [r["code"] for r in numbers + strings]
    assert ordered(laqn, "properties/offset desc, name")[0] == max(
        data, key=lambda r: (r["properties"]["offset"], [-ord(c) for c in r["name"]]))["code"]


@pytest.mark.parametrize(("text", "message", "position"), [
    ("siteType eqq 'x'", "unexpected 'eqq' at position 9 in $filter", 9),
    ("nosuch eq 1", "unknown property 'nosuch' at position 0 in $filter", 0),
    ("id eq 1 and Thing/nosuch eq 'x'", "unknown property 'Thing/nosuch' at position 12", 12),
    ("name eq 5", "cannot compare a string with a number at position 0", 0),
    ("name", "$filter must be a condition (true or false), but the expression is a string", 0),
    ("location eq 1", "geometries cannot be compared with eq", 0),
    ("startswith(name)", "startswith takes 2 arguments, not 1 at position 0", 0),
    ("year(name) eq 2000", "argument 1 of year must be a date-time, not a string at position 5", 5),
    ("id eq 1 and st_within(location, geography'POINT(1)')", "bad geography literal", 32),
    ("st_relate(location, location, 'XYZ')", "'XYZ' is not a DE-9IM pattern", 30),
    ("st_relate(location, location, name)", "the pattern of st_relate must be a string literal", 30),
    ("substring(name, 1, -2) eq 'a'", "the length given to substring must not be negative", 19),
    ("opened gt 'yesterday'", "'yesterday' is not a date and time", 10),
    ("(name eq 'a'", "expected ')' to close the '(' at position 0 but found the end at position 12", 12),
    ("name eq 'a", "unterminated string starting at position 8", 8),
    ("name eq 'a' and", "expected a value after 'and' but found the end at position 15", 15),
    ("name # 'a'", "unexpected character '#' at position 5", 5),
    ("opened eq 2023-13-01T00:00:00Z", "'2023-13-01T00:00:00Z' is not a valid date and time at position 10", 10),
    ("nosuchfunction(name)", "unknown function 'nosuchfunction' at position 0", 0),
    ("name eq 'a' 'b'", "unexpected \"'b'\" at position 12", 12),
    ("", "$filter is empty", 0),
    ("opened add 1 gt now()", "cannot add a date-time and a number at position 7", 7),
    ("opened lt now() add duration'P1M'", "years, months and weeks are not supported; use days", 20),
    ("opened sub duration'one day' lt now()", "'one day' is not an ISO 8601 duration", 11),
    ("not name", "the operand of not must be a condition, not a string", 4),
    ("name add 1 eq 2", "the left side of add must be a number, not a string", 0),
    ("(" * 150 + "active" + ")" * 150, "nested too deeply", 100),
])
def test_bad_filters_are_refused_with_what_and_where(laqn: Database, text: str, message: str, position: int) -> None:
    with pytest.raises(QueryError) as caught:
        codes(laqn, text)
    assert message in caught.value.message
    assert caught.value.position == position
    assert isinstance(caught.value, ValueError) and str(caught.value) == caught.value.message


@pytest.mark.parametrize(("text", "message", "position"), [
    ("name sideways", "unexpected 'sideways' at position 5 in $orderby: expected asc or desc", 5),
    ("name, ", "expected a property to order by at position 6", 6),
    ("name desc asc", "unexpected 'asc' at position 10", 10),
    ("length(name)", "is not a property path", 0),
])
def test_bad_orderby_is_refused(text: str, message: str, position: int) -> None:
    with pytest.raises(QueryError) as caught:
        parse_orderby(text)
    assert message in caught.value.message
    assert caught.value.position == position


def test_orderby_on_unknown_or_geometry_property_is_refused() -> None:
    with pytest.raises(QueryError, match="unknown property 'nosuch' in \\$orderby"):
        compile_orderby(parse_orderby("nosuch"), resolve)
    with pytest.raises(QueryError, match="cannot order by 'location': it is a geometry"):
        compile_orderby(parse_orderby("location desc"), resolve)


def test_the_tree_and_defaults() -> None:
    tree = parse_filter("Datastream/Thing/name eq 'x'")
    assert tree == Binary("eq", Path(("Datastream", "Thing", "name"), 0), Literal("x", "string", 25), 22)
    assert parse_orderby("Datastream/name desc,id") == [(("Datastream", "name"), "desc"), (("id",), "asc")]
    # a resolver that knows nothing else still works with the contract's Operand
    seen: list[tuple[str, ...]] = []

    def only_id(path: tuple[str, ...]) -> Operand:
        seen.append(path)
        return Operand(sites.c.id, "id")
    compile_filter("@iot.id gt 2", only_id, "postgresql")
    assert seen == [("@iot.id",)]
    with pytest.raises(ValueError, match="dialect"):
        compile_filter("@iot.id gt 2", only_id, "oracle")
