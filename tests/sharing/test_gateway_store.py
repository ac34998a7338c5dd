"""The restricted store under the gateway: subject numbers, row ids, rectification and erasure."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartlondon.core.errors import ValidationFailed
from smartlondon.sharing.store import RestrictedStore


@pytest.fixture
def plain_store(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = RestrictedStore(tmp_path / "restricted.duckdb")
    yield store
    store.close()


def test_subjects_get_dense_numbers_shared_across_tables(plain_store) -> None:  # type: ignore[no-untyped-def]
    plain_store.load_rows("visits", {"person": "VARCHAR", "age": "INTEGER"}, [("b", 70), ("a", 30), ("b", 71)],
                          subject_column="person")
    plain_store.load_rows("alarms", {"person": "VARCHAR", "fitted": "BOOLEAN"}, [("c", True), ("a", False)],
                          subject_column="person")
    nos = plain_store.subject_nos(["a", "b", "c", "nobody"])
    assert sorted(nos.values()) == [1, 2, 3] and "nobody" not in nos
    with plain_store.cursor() as cur:
        rows = {r[0]: r[1:] for r in cur.execute("SELECT person, _subject_no, _row FROM alarms").fetchall()}
    assert rows["a"][0] == nos["a"] and rows["c"][0] == nos["c"]
    assert min(r[1] for r in rows.values()) > 3  # row ids never reused across tables
    assert plain_store.table_info("visits") == ("person", False)
    assert plain_store.table_info("alarms") == ("person", True)
    assert plain_store.tables() == ["alarms", "visits"]


def test_rectify_and_erase_a_subject(plain_store) -> None:  # type: ignore[no-untyped-def]
    plain_store.load_rows("visits", {"person": "VARCHAR", "age": "INTEGER"}, [("a", 30), ("b", 40), ("a", 31)],
                          subject_column="person")
    assert plain_store.update_rows("visits", "a", {"age": 33}) == 2
    assert plain_store.delete_subject("visits", "b") == 1
    with plain_store.cursor() as cur:
        assert cur.execute("SELECT person, age FROM visits ORDER BY _row").fetchall() == [("a", 33), ("a", 33)]
    with pytest.raises(ValidationFailed):
        plain_store.update_rows("visits", "a", {"_subject_no": 9})
    with pytest.raises(ValidationFailed):
        plain_store.update_rows("visits", "a", {"person": "z"})


def test_bad_tables_and_columns_are_refused(plain_store) -> None:  # type: ignore[no-untyped-def]
    for table, columns in (("Drop Table", {"a": "INTEGER"}), ("ok", {"a; --": "INTEGER"}), ("ok", {"a": "BLOBBY"})):
        with pytest.raises(ValidationFailed):
            plain_store.load_rows(table, columns, [], subject_column=None)
    with pytest.raises(ValidationFailed):
        plain_store.load_rows("ok", {"a": "INTEGER"}, [(1, 2)], subject_column=None)
    assert plain_store.tables() == []


def test_opt_out_sets_are_materialised_per_set_and_forgotten_on_load(plain_store) -> None:  # type: ignore[no-untyped-def]
    plain_store.load_rows("visits", {"person": "VARCHAR"}, [(f"p{i}",) for i in range(10)], subject_column="person")
    nos = plain_store.subject_nos(["p1", "p2", "p3"])

    def kept(excluded: set[int]) -> int:
        where = plain_store.exclusion_filter("visits", excluded)
        with plain_store.cursor() as cur:
            return cur.execute(f"SELECT count(*) FROM visits {'WHERE ' + where if where else ''}").fetchone()[0]

    assert kept(set()) == 10
    assert kept({nos["p1"]}) == 9
    assert kept({nos["p1"], nos["p2"]}) == 8        # a new set gets its own slot
    assert kept({nos["p1"]}) == 9                   # the first is still right
    for extra in range(6):                          # more sets than slots: the oldest are recomputed
        assert kept({nos["p3"], 100 + extra}) == 9
    assert kept({nos["p1"], nos["p2"]}) == 8
    plain_store.load_rows("visits", {"person": "VARCHAR"}, [("p1",), ("p11",)], subject_column="person")
    assert kept({nos["p1"]}) == 10                  # 12 rows, p1's two left out
    assert "_excl_1" not in plain_store.columns("visits")
