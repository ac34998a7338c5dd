"""Disclosure control rules on known tables: profiles, primary and secondary suppression, margins, rounding.

The recovery check is independent of the rules' own graph reasoning: it writes every margin as a linear
equation over the suppressed cells (with the TRUE values of every shown cell, the strongest attacker) and asks
numpy whether any suppressed cell is determined by them.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from smartlondon.core.errors import ValidationFailed
from smartlondon.sharing.disclosure.rules import ALL, PROFILES, Table, primary_sql, profile_named
from smartlondon.sharing.disclosure.types import AggregateResult


def aggregate(counts: dict[tuple, int], dims: list[str]) -> AggregateResult:
    """An aggregate of people counts, one row per cell."""
    rows = [{**dict(zip(dims, key)), "count": n, "_n": n} for key, n in counts.items()]
    return AggregateResult(["fire-visits"], dims, ["count"], rows)


def determined_cells(table: Table) -> list[tuple]:
    """The suppressed cells an attacker can solve for exactly from every margin equation."""
    hidden = [c.key for c in table.suppressed()]
    if not hidden:
        return []
    index = {key: i for i, key in enumerate(hidden)}
    dims = len(table.dimensions)
    equations = []
    # every margin cell equals the sum of the cells it totals
    for total in (c for c in table.cells.values() if c.margin):
        members = [c for c in table.cells.values() if not c.margin and all(
            t == ALL or t == k for t, k in zip(total.key, c.key))]
        if dims == 2 and total.key == (ALL, ALL):  # the grand total also sums the row totals
            members_sets = [members,
                            [c for c in table.cells.values() if c.margin and c.key[1] == ALL and c.key[0] != ALL],
                            [c for c in table.cells.values() if c.margin and c.key[0] == ALL and c.key[1] != ALL]]
        else:
            members_sets = [members]
        for group in members_sets:
            row = np.zeros(len(hidden))
            for c in [total, *group]:
                if c.key in index:
                    row[index[c.key]] += -1 if c is total else 1
            if row.any():
                equations.append(row)
    if not equations:
        return []
    matrix = np.array(equations)
    rank = np.linalg.matrix_rank(matrix)
    solved = []
    for key, i in index.items():
        unit = np.zeros(len(hidden))
        unit[i] = 1
        if np.linalg.matrix_rank(np.vstack([matrix, unit])) == rank:
            solved.append(key)
    return solved


def shown(table: Table, profile: str) -> dict[tuple, object]:
    """The released table as {dimension values: count}."""
    columns, rows, _ = table.render(PROFILES[profile])
    return {tuple(r[:-1]): r[-1] for r in rows}


def test_profiles_publish_their_exact_rules():
    nhs, ons = profile_named("nhs"), profile_named("ons")
    assert [n for n in range(0, 12) if nhs.unsafe(n)] == [1, 2, 3, 4, 5, 6, 7]
    assert [n for n in range(0, 12) if ons.unsafe(n)] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert [nhs.round(n) for n in (0, 8, 12, 13, 17, 18, 22, 1234)] == [0, 10, 10, 15, 15, 20, 20, 1235]
    assert nhs.as_dict()["zero_is_safe"] is True
    with pytest.raises(ValidationFailed, match="no disclosure profile called 'gdpr'"):
        profile_named("gdpr")


@pytest.mark.parametrize("profile, expected", [
    # nhs: 1-7 suppressed (Camden), 8 and above rounded to 5; Hackney (8) hides Camden; 0 stays 0
    ("nhs", {("Barnet",): 0, ("Camden",): None, ("Ealing",): 10, ("Hackney",): None, ("Islington",): 85,
             ("Total",): 110}),
    # ons: below 10 suppressed, so Ealing (9) and Hackney (8) are suppressed in their own right
    ("ons", {("Barnet",): 0, ("Camden",): None, ("Ealing",): None, ("Hackney",): None, ("Islington",): 85,
             ("Total",): 110}),
])
def test_one_way_table_suppressed_and_rounded_by_profile(profile, expected):
    counts = {("Barnet",): 0, ("Camden",): 5, ("Ealing",): 9, ("Hackney",): 8, ("Islington",): 87}
    table = Table.from_result(aggregate(counts, ["borough"]))
    table.suppress_primary(PROFILES[profile])
    table.suppress_secondary()
    assert shown(table, profile) == expected
    assert determined_cells(table) == []


def test_lone_suppressed_cell_in_a_one_way_table_gets_a_complement():
    counts = {("Camden",): 3, ("Hackney",): 40, ("Islington",): 25}
    table = Table.from_result(aggregate(counts, ["borough"]))
    assert table.suppress_primary(PROFILES["nhs"]) == 1
    assert determined_cells(table) == [("Camden",)]  # 68 - 40 - 25: recoverable before secondary suppression
    assert table.suppress_secondary() == 1
    assert [c.key for c in table.suppressed("secondary")] == [("Islington",)]  # the smallest other cell
    assert determined_cells(table) == []
    assert shown(table, "nhs")[("Total",)] == 70  # 68, rounded on its own


def test_two_way_table_secondary_suppression_picks_the_cheapest_cycle():
    counts = {("Camden", "0-64"): 40, ("Camden", "65+"): 3, ("Hackney", "0-64"): 52, ("Hackney", "65+"): 21,
              ("Islington", "0-64"): 33, ("Islington", "65+"): 12}
    table = Table.from_result(aggregate(counts, ["borough", "age"]))
    table.suppress_primary(PROFILES["nhs"])
    table.suppress_secondary()
    assert {c.key for c in table.suppressed()} == {("Camden", "0-64"), ("Camden", "65+"),
                                                     ("Islington", "0-64"), ("Islington", "65+")}
    assert determined_cells(table) == []
    released = shown(table, "nhs")
    assert released[("Hackney", "65+")] == 20 and released[("Camden", "Total")] == 45
    assert released[("Total", "Total")] == 160


def test_small_margin_is_suppressed_and_protected_too():
    # the 65+ column totals 6 people: the margin itself is primary-suppressed and must not be recoverable
    counts = {("Camden", "0-64"): 40, ("Camden", "65+"): 2, ("Hackney", "0-64"): 52, ("Hackney", "65+"): 4}
    table = Table.from_result(aggregate(counts, ["borough", "age"]))
    table.suppress_primary(PROFILES["nhs"])
    table.suppress_secondary()
    assert table.cells[(ALL, "65+")].suppressed == "primary"
    assert determined_cells(table) == []
    assert shown(table, "nhs")[("Total", "65+")] is None


@pytest.mark.parametrize("seed", range(12))
def test_no_suppressed_cell_recoverable_on_random_two_way_tables(seed):
    rng = random.Random(seed)
    boroughs = [f"B{i}" for i in range(rng.randint(2, 6))]
    bands = [f"A{i}" for i in range(rng.randint(2, 5))]
    counts = {(b, a): rng.choice([0, 1, 2, 5, 7, 9, 14, 30, 61, 120]) for b, a in itertools.product(boroughs, bands)}
    counts = {k: v for k, v in counts.items() if v or rng.random() < 0.5}  # some groups absent, some zero
    profile = rng.choice(["nhs", "ons"])
    table = Table.from_result(aggregate(counts, ["borough", "age"]))
    table.suppress_primary(PROFILES[profile])
    table.suppress_secondary()
    assert determined_cells(table) == []
    for cell in table.cells.values():  # every primary-unsafe cell stays hidden
        assert not PROFILES[profile].unsafe(cell.n) or cell.suppressed


def test_sums_and_means_follow_their_cells_suppression():
    rows = [{"borough": "Camden", "count": 4, "_n": 4, "sum_age": 300, "mean_age": 75.0},
            {"borough": "Hackney", "count": 30, "_n": 30, "sum_age": 1200, "mean_age": 40.0},
            {"borough": "Islington", "count": 20, "_n": 20, "sum_age": 1000, "mean_age": 50.0}]
    result = AggregateResult(["fire-visits"], ["borough"], ["count", "sum_age", "mean_age"], rows)
    table = Table.from_result(result)
    table.suppress_primary(PROFILES["nhs"])
    table.suppress_secondary()
    columns, out, marks = table.render(PROFILES["nhs"])
    assert columns == ["borough", "count", "sum_age", "mean_age"]
    by = {r[0]: r[1:] for r in out}
    assert by["Camden"] == [None, None, None] and by["Islington"] == [None, None, None]
    assert by["Hackney"] == [30, 1200, 40.0]
    assert by["Total"] == [55, 2500, round(2500 / 54, 1)]  # margin mean weighted by the cells' counts
    assert [0, "sum_age"] in marks


def test_people_count_governs_even_when_the_row_count_is_large():
    # 40 visits but only 3 distinct people: disclosive, so suppressed
    rows = [{"borough": "Camden", "count": 40, "_n": 3}, {"borough": "Hackney", "count": 50, "_n": 50},
            {"borough": "Islington", "count": 60, "_n": 60}]
    table = Table.from_result(AggregateResult(["v"], ["borough"], ["count"], rows))
    assert table.suppress_primary(PROFILES["nhs"]) == 1


def test_sql_output_counts_suppressed_with_their_row_and_rounded():
    rows = [{"ward": "Kentish Town", "n": 6, "avg_age": 81.5}, {"ward": "Gospel Oak", "n": 23, "avg_age": 70.2}]
    out, marks, hit = primary_sql(rows, ["ward", "n", "avg_age"], ["n"], PROFILES["nhs"])
    assert out == [["Kentish Town", None, None], ["Gospel Oak", 25, 70.2]]
    assert marks == [[0, "n"], [0, "avg_age"]] and hit == 1


@pytest.mark.parametrize("seed", range(6))
def test_large_table_path_still_leaves_nothing_recoverable(seed, monkeypatch):
    """Large tables get a linear line pass first; the result must pass the same independent check."""
    from smartlondon.sharing.disclosure import rules

    monkeypatch.setattr(rules, "LARGE_TABLE", 0)
    rng = random.Random(100 + seed)
    counts = {(f"L{i}", f"A{j}"): rng.choice([1, 3, 6, 9, 12, 20, 40]) for i in range(8) for j in range(4)}
    table = Table.from_result(aggregate(counts, ["lsoa", "age"]))
    table.suppress_primary(PROFILES["nhs"])
    table.suppress_secondary()
    assert determined_cells(table) == []


def test_a_ten_thousand_cell_table_is_protected_in_reasonable_time():
    import time

    from smartlondon.sharing.disclosure.rules import recoverable_cells

    rng = random.Random(7)
    counts = {(f"L{i:04d}", f"B{j}"): rng.choice([1, 3, 6, 9, 12, 20, 40, 80]) for i in range(2000) for j in range(5)}
    table = Table.from_result(aggregate(counts, ["lsoa", "band"]))
    started = time.perf_counter()
    table.suppress_primary(PROFILES["nhs"])
    table.suppress_secondary()
    assert time.perf_counter() - started < 5  # about 0.2 s on an idle machine
    assert recoverable_cells(table) == []
