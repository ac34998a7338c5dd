"""Re-pseudonymising stored rows after a key rotation: all or nothing, subject numbers kept, old uses still found.

Rows are ingested with real keyed pseudonyms into the test's DuckDB store; the key is rotated; the rows are
rewritten from the source identifiers to the new epoch, in one store transaction.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from smartlondon.core.errors import ValidationFailed
from smartlondon.sharing.privacy.ingest import ingest_rows
from smartlondon.sharing.privacy.pseudonyms import KeyDestroyed, Pseudonymiser
from smartlondon.sharing.privacy.rekey import aliases_of, repseudonymise, rotate_and_rewrite
from smartlondon.sharing.store import RestrictedStore
from tests.sharing.privacy_support import DATASET, TABLE, build_world, count_query, people

COLUMNS = {"person": "VARCHAR", "carer": "VARCHAR", "age": "BIGINT"}


@pytest.fixture
def loaded(settings):  # type: ignore[no-untyped-def]
    """Six people (each with a carer's email) ingested in the first epoch, then the key rotated."""
    store = RestrictedStore(settings)
    keys = Pseudonymiser(settings)
    numbers = people(6)
    carers = [f"carer{i}@example.org" for i in range(6)]
    rows = [(n, c, 70 + i) for i, (n, c) in enumerate(zip(numbers, carers))]
    ingest_rows(store, keys, "visits", COLUMNS, rows, {"person": "nhs_number", "carer": "email"},
                subject_column="person")
    first = keys.current_epoch()
    keys.rotate()
    yield store, keys, numbers, carers, first
    store.close()


def table(store: RestrictedStore, name: str = "visits") -> list[tuple]:  # type: ignore[type-arg]
    with store.cursor() as cur:
        return cur.execute(f"SELECT person, carer, age, _subject_no FROM {name} ORDER BY age").fetchall()


def test_rows_move_to_the_new_epoch_and_keep_their_subject_numbers(loaded) -> None:  # type: ignore[no-untyped-def]
    store, keys, numbers, carers, first = loaded
    before = table(store)
    assert before[0][0] == keys.pseudonym("nhs_number", numbers[0], epoch=first)
    done = repseudonymise(store, keys, "visits", {"person": ("nhs_number", numbers), "carer": ("email", carers)})
    after = table(store)
    assert [r[0] for r in after] == [keys.pseudonym("nhs_number", n) for n in numbers]
    assert [r[1] for r in after] == [keys.pseudonym("email", c) for c in carers]
    assert [r[2:] for r in after] == [r[2:] for r in before]          # ages and subject numbers unchanged
    assert done.changed == {"person": 6, "carer": 6} and done.rows == 6 and done.from_epochs == [first]
    # the person's new pseudonym finds the subject number their old one had (the access log's sets use numbers)
    assert store.subject_nos([keys.pseudonym("nhs_number", numbers[2])]) == {
        keys.pseudonym("nhs_number", numbers[2]): before[2][3]}
    assert store.subject_nos([before[2][0]]) == {}                    # the old pseudonym is gone from the store


def test_a_source_that_misses_a_person_changes_nothing(loaded) -> None:  # type: ignore[no-untyped-def]
    store, keys, numbers, carers, first = loaded
    before = table(store)
    with pytest.raises(ValidationFailed, match="1 rows of visits hold a person pseudonym"):
        repseudonymise(store, keys, "visits", {"person": ("nhs_number", numbers[:-1])})
    assert table(store) == before
    # the person column is rewritten first, then the carer column fails: the whole transaction rolls back
    with pytest.raises(ValidationFailed, match="carer pseudonym"):
        repseudonymise(store, keys, "visits", {"person": ("nhs_number", numbers), "carer": ("email", carers[1:])})
    assert table(store) == before
    with pytest.raises(ValidationFailed, match="not valid nhs_number"):
        repseudonymise(store, keys, "visits", {"person": ("nhs_number", [*numbers, "1234567890"])})
    assert table(store) == before
    assert keys.live_epochs()[1] == first                              # no key was destroyed


def test_the_old_key_is_destroyed_only_after_the_rewrite(loaded) -> None:  # type: ignore[no-untyped-def]
    store, keys, numbers, carers, first = loaded
    with pytest.raises(ValidationFailed):
        repseudonymise(store, keys, "visits", {"person": ("nhs_number", numbers[:2])}, destroy_old=True)
    assert first in keys.live_epochs()                                  # failed: old key kept
    done = repseudonymise(store, keys, "visits", {"person": ("nhs_number", numbers), "carer": ("email", carers)},
                          destroy_old=True)
    assert done.destroyed == [first] and keys.live_epochs() == [done.epoch]
    with pytest.raises(KeyDestroyed):
        keys.pseudonym("nhs_number", numbers[0], epoch=first)
    assert [r[0] for r in table(store)] == [keys.pseudonym("nhs_number", n) for n in numbers]


def test_a_person_ingested_in_both_epochs_is_joined_under_one_number(loaded) -> None:  # type: ignore[no-untyped-def]
    store, keys, numbers, carers, first = loaded
    old_no = table(store)[0][3]
    ingest_rows(store, keys, "visits", COLUMNS, [(numbers[0], carers[0], 90)], {"person": "nhs_number", "carer": "email"},
                subject_column="person")                               # the same person again, new epoch
    new_no = table(store)[-1][3]
    assert new_no != old_no
    done = repseudonymise(store, keys, "visits", {"person": ("nhs_number", numbers), "carer": ("email", carers)})
    assert done.merged_subjects == 1
    rows = [r for r in table(store) if r[0] == keys.pseudonym("nhs_number", numbers[0])]
    assert [r[2] for r in rows] == [70, 90] and {r[3] for r in rows} == {new_no}
    assert aliases_of(store, [new_no]) == {old_no}                    # uses logged under the old number still count


def test_the_first_rewrite_needs_a_rotation(settings) -> None:  # type: ignore[no-untyped-def]
    store, keys = RestrictedStore(settings), Pseudonymiser(settings)
    ingest_rows(store, keys, "visits", COLUMNS, [(people(1)[0], "a@example.org", 1)], {"person": "nhs_number"},
                subject_column="person")
    with pytest.raises(ValidationFailed, match="rotate the key first"):
        repseudonymise(store, keys, "visits", {"person": ("nhs_number", people(1))})
    store.close()


def test_a_subject_access_request_after_rewrite_and_shredding_still_shows_earlier_uses(  # type: ignore[no-untyped-def]
        client, db, settings, make_account) -> None:
    world = build_world(db, settings, make_account, rows_per_borough=10)
    assert client.post("/api/sharing/queries", json=count_query(), headers=world.analyst.headers).status_code == 200
    keys = Pseudonymiser(settings)
    keys.rotate()
    done = repseudonymise(world.store, keys, TABLE, {"person": ("nhs_number", world.numbers)}, destroy_old=True)
    assert done.changed == {"person": 20} and len(done.destroyed) == 1
    opened = client.post("/api/sharing/subject-requests", headers=world.officer.headers,
                         json={"organisation": "london-fire-brigade", "identifier_kind": "nhs_number", "kind": "access",
                               "identifier": world.numbers[0], "received_on": "2026-11-02"})
    assert opened.status_code == 201, opened.text
    assert opened.json()["result"]["rows"] == {DATASET: 1} and opened.json()["result"]["uses"] == 1
    world.store.close()


def test_the_command_line_rewrites_from_the_source_file(db, settings, make_account, tmp_path,  # type: ignore[no-untyped-def]
                                                        monkeypatch) -> None:
    from click.testing import CliRunner

    from smartlondon.cli import main

    world = build_world(db, settings, make_account, rows_per_borough=2)
    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", db.url)
    monkeypatch.setenv("SMARTLONDON_DATA_DIR", str(settings.data_dir))
    source = tmp_path / "source.csv"
    source.write_text("NHS_NUMBER,Borough\n" + "".join(f"{n},Newham\n" for n in world.numbers))
    runner = CliRunner()
    assert runner.invoke(main, ["sharing", "rotate-key"]).exit_code == 0
    unconfirmed = runner.invoke(main, ["sharing", "repseudonymise", "--dataset", DATASET, str(source),
                                       "--identifier", "nhs_number=NHS_NUMBER", "--destroy-old"])
    assert unconfirmed.exit_code == 1 and "--yes" in unconfirmed.output
    done = runner.invoke(main, ["sharing", "repseudonymise", "--dataset", DATASET, str(source),
                                "--identifier", "nhs_number=NHS_NUMBER", "--destroy-old", "--yes"])
    assert done.exit_code == 0, done.output
    assert "4 rows; values changed: 4 person" in done.output and "Destroyed the key" in done.output
    assert world.numbers[0] not in done.output
    keys = Pseudonymiser(settings)
    with world.store.cursor() as cur:
        stored = sorted(r[0] for r in cur.execute(f"SELECT person FROM {TABLE}").fetchall())
    assert stored == sorted(keys.pseudonym("nhs_number", n) for n in world.numbers)
    world.store.close()


def test_bulk_pseudonyms_are_the_plain_hmac_of_each_identifier(settings) -> None:  # type: ignore[no-untyped-def]
    keys = Pseudonymiser(settings)
    old = keys.current_epoch()
    new = keys.rotate()
    numbers = people(3)
    # spaced, hyphenated, repeated, blank and invalid values: each distinct identifier once, bad ones by position
    values = [numbers[0], f" {numbers[1][:3]} {numbers[1][3:6]}-{numbers[1][6:]} ", None, "  ", numbers[0],
              "1234567890", numbers[2], "12345"]
    table, bad = keys.pseudonym_table("nhs_number", values, [new, old])
    assert bad == [6, 8]

    def plain(epoch: str, message: str) -> str:
        key = bytes.fromhex((settings.keys_dir / f"{epoch}.key").read_text().strip())
        return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()[:32]

    expected = [(plain(new, f"nhs_number\x1f{n}"), plain(old, f"nhs_number\x1f{n}")) for n in numbers]
    assert table == expected
    assert [keys.pseudonym("nhs_number", n) for n in numbers] == [row[0] for row in expected]
    emails, bad = keys.pseudonym_table("email", [" Ann@Example.ORG", "ann@example.org", "not an email"], [new])
    assert emails == [(plain(new, "email\x1fann@example.org"),)] and bad == [3]
    assert keys.pseudonym("mac", "00-1A-2B-3C-4D-5E") == plain(new, "mac\x1f00:1a:2b:3c:4d:5e")


def test_rotate_and_rewrite_makes_the_new_epoch_current_with_the_rows_on_it(loaded) -> None:  # type: ignore[no-untyped-def]
    store, keys, numbers, carers, first = loaded
    before = table(store)
    second = keys.current_epoch()
    done = rotate_and_rewrite(store, keys, "visits", {"person": ("nhs_number", numbers), "carer": ("email", carers)})
    assert keys.current_epoch() == done.epoch not in (first, second)
    assert done.from_epochs == [second, first]
    assert [e["status"] for e in keys.epochs()] == ["retired", "retired", "current"]
    after = table(store)
    assert [r[0] for r in after] == [keys.pseudonym("nhs_number", n) for n in numbers]
    assert [r[1] for r in after] == [keys.pseudonym("email", c) for c in carers]
    assert [r[2:] for r in after] == [r[2:] for r in before]


def test_a_failed_rotate_and_rewrite_leaves_the_old_epoch_current_and_no_new_key(loaded) -> None:  # type: ignore[no-untyped-def]
    store, keys, numbers, carers, first = loaded
    before, epochs_before = table(store), keys.epochs()
    second = keys.current_epoch()
    key_files = sorted(p.name for p in keys.keys_dir.glob("*.key"))
    # the carer column fails after the person column was rewritten inside the transaction
    with pytest.raises(ValidationFailed, match="carer pseudonym"):
        rotate_and_rewrite(store, keys, "visits", {"person": ("nhs_number", numbers), "carer": ("email", carers[1:])},
                           destroy_old=True)
    assert table(store) == before
    assert keys.epochs() == epochs_before and keys.current_epoch() == second
    assert sorted(p.name for p in keys.keys_dir.glob("*.key")) == key_files   # the new key was shredded
    assert store.subject_nos([before[0][0]]) == {before[0][0]: before[0][3]}  # old pseudonyms still resolve
    # the next attempt, with the complete source, works
    done = rotate_and_rewrite(store, keys, "visits", {"person": ("nhs_number", numbers), "carer": ("email", carers)})
    assert [r[0] for r in table(store)] == [keys.pseudonym("nhs_number", n, epoch=done.epoch) for n in numbers]


def test_a_rotation_that_crashed_after_its_rewrite_is_moved_on_by_the_next(loaded) -> None:  # type: ignore[no-untyped-def]
    from smartlondon.sharing.privacy.rekey import _rewrite

    store, keys, numbers, carers, first = loaded
    sources = {"person": ("nhs_number", numbers), "carer": ("email", carers)}
    # what a process leaves behind if it dies after committing the rewrite, before making its epoch current
    with keys._locked() as epochs:
        stranded = keys._today_epoch(epochs)
        keys._new_key(stranded)
        epochs.append({"name": stranded, "status": "pending", "created": "2026-12-01T00:00:00Z"})
    _rewrite(store, keys, "visits", sources, [first, keys.current_epoch()], stranded, None)
    assert keys.current_epoch() != stranded
    done = rotate_and_rewrite(store, keys, "visits", sources)
    assert stranded in done.from_epochs
    assert [r[0] for r in table(store)] == [keys.pseudonym("nhs_number", n) for n in numbers]


def test_rotate_key_with_rewrite_on_the_command_line(db, settings, make_account, tmp_path,  # type: ignore[no-untyped-def]
                                                      monkeypatch) -> None:
    from click.testing import CliRunner

    from smartlondon.cli import main

    world = build_world(db, settings, make_account, rows_per_borough=2)
    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", db.url)
    monkeypatch.setenv("SMARTLONDON_DATA_DIR", str(settings.data_dir))
    keys = Pseudonymiser(settings)
    first = keys.current_epoch()
    runner = CliRunner()
    partial = tmp_path / "partial.csv"
    partial.write_text("NHS_NUMBER\n" + "".join(f"{n}\n" for n in world.numbers[1:]))
    args = ["sharing", "rotate-key", "--rewrite", "--dataset", DATASET, "--identifier", "nhs_number=NHS_NUMBER"]
    stray = runner.invoke(main, ["sharing", "rotate-key", "--dataset", DATASET])
    assert stray.exit_code == 1 and "go with --rewrite" in stray.output
    failed = runner.invoke(main, [*args, str(partial)])
    assert failed.exit_code == 1 and "1 rows of" in failed.output
    assert Pseudonymiser(settings).current_epoch() == first            # the rotation did not happen
    source = tmp_path / "source.csv"
    source.write_text("NHS_NUMBER,Borough\n" + "".join(f"{n},Newham\n" for n in world.numbers))
    done = runner.invoke(main, [*args, str(source), "--destroy-old", "--yes"])
    assert done.exit_code == 0, done.output
    keys = Pseudonymiser(settings)
    assert f"New current epoch: {keys.current_epoch()}" in done.output
    assert "4 rows; values changed: 4 person" in done.output
    assert [e["status"] for e in keys.epochs()] == ["destroyed", "current"]
    with world.store.cursor() as cur:
        stored = sorted(r[0] for r in cur.execute(f"SELECT person FROM {TABLE}").fetchall())
    assert stored == sorted(keys.pseudonym("nhs_number", n) for n in world.numbers)
    world.store.close()
