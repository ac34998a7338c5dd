"""Pseudonymisation at ingest: keyed pseudonyms, epochs, crypto-shredding, and raw identifiers never stored."""

from __future__ import annotations

import json
import stat
from datetime import date

import pytest

from smartlondon.core.errors import ValidationFailed
from smartlondon.settings import Settings
from smartlondon.sharing.privacy.ingest import ingest_csv
from smartlondon.sharing.privacy.pseudonyms import KeyDestroyed, Pseudonymiser, normalise
from tests.sharing.privacy_support import DATASET, TABLE, build_world, people


@pytest.fixture
def keys(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(data_dir=tmp_path / "var", secret_key="k")


def test_nhs_numbers_must_pass_the_modulus_11_check() -> None:
    assert normalise("nhs_number", "943 476 5919") == "9434765919"
    with pytest.raises(ValidationFailed, match="Modulus 11"):
        normalise("nhs_number", "943 476 5918")
    with pytest.raises(ValidationFailed, match="10 digits"):
        normalise("nhs_number", "94347659")


def test_identifiers_are_normalised_before_pseudonymising(keys) -> None:  # type: ignore[no-untyped-def]
    p = Pseudonymiser(keys)
    assert p.pseudonym("mac", "00:1A:2B:3C:4D:5E") == p.pseudonym("mac", "001a.2b3c.4d5e") == p.pseudonym("mac", "00-1a-2b-3c-4d-5e")
    assert p.pseudonym("email", " Ann.Smith@Example.ORG ") == p.pseudonym("email", "ann.smith@example.org")
    assert p.pseudonym("uprn", "000100023336956") == p.pseudonym("uprn", "100023336956")
    assert p.pseudonym("nhs_number", "943-476-5919") == p.pseudonym("nhs_number", "9434765919")
    # the same digits as another kind of identifier never give the same pseudonym
    assert p.pseudonym("uprn", "9434765919") != p.pseudonym("nhs_number", "9434765919")
    with pytest.raises(ValidationFailed, match="MAC"):
        p.pseudonym("mac", "00:1A:2B:3C:4D")


def test_pseudonyms_are_stable_within_an_epoch_and_differ_across_epochs(keys) -> None:  # type: ignore[no-untyped-def]
    first = Pseudonymiser(keys, today=date(2026, 11, 5))
    epoch = first.current_epoch()
    assert epoch == "2026-Q4"
    value = first.pseudonym("nhs_number", "9434765919")
    assert len(value) == 32 and all(c in "0123456789abcdef" for c in value)
    # another process with the same keys directory computes the same pseudonym
    assert Pseudonymiser(keys).pseudonym("nhs_number", "9434765919", epoch=epoch) == value
    newer = first.rotate()
    assert newer == "2026-Q4.2"
    assert first.current_epoch() == newer
    assert first.pseudonym("nhs_number", "9434765919") != value
    assert first.pseudonym("nhs_number", "9434765919", epoch=epoch) == value  # the retired key still links
    assert list(first.pseudonyms_of("nhs_number", "9434765919")) == [newer, epoch]


def test_destroying_a_key_makes_its_epoch_unlinkable(keys) -> None:  # type: ignore[no-untyped-def]
    p = Pseudonymiser(keys)
    old = p.current_epoch()
    key_file = keys.keys_dir / f"{old}.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    p.pseudonym("email", "ann@example.org")
    with pytest.raises(ValidationFailed, match="rotate"):
        p.destroy(old)  # never the current epoch
    p.rotate()
    p.destroy(old)
    assert not key_file.exists()
    for fresh in (p, Pseudonymiser(keys)):
        with pytest.raises(KeyDestroyed, match="destroyed: its pseudonyms cannot be recomputed"):
            fresh.pseudonym("email", "ann@example.org", epoch=old)
    assert old not in p.pseudonyms_of("email", "ann@example.org")
    assert [e["status"] for e in p.epochs()] == ["destroyed", "current"]


def test_published_parameters_never_include_a_key(keys) -> None:  # type: ignore[no-untyped-def]
    p = Pseudonymiser(keys)
    epoch = p.current_epoch()
    key = (keys.keys_dir / f"{epoch}.key").read_text().strip()
    params = p.parameters()
    assert params["algorithm"] == "HMAC-SHA256" and params["truncation"]["bits"] == 128
    assert params["k"] == {"nhs": 8, "ons": 10}
    assert [e["name"] for e in params["epochs"]] == [epoch]
    text = json.dumps(params)
    assert key not in text and key[:16] not in text


def test_ingest_replaces_identifiers_and_keeps_raw_ones_out_of_the_store(db, settings, make_account,  # type: ignore[no-untyped-def]
                                                                          tmp_path) -> None:
    world = build_world(db, settings, make_account, rows_per_borough=3)
    new = people(3, start=500_000_000)
    path = tmp_path / "visits.csv"
    path.write_text("NHS_NUMBER,Borough,Age,Smoke_Alarm\n" + "".join(
        f"{n[:3]} {n[3:6]} {n[6:]},Newham,{70 + i},true\n" for i, n in enumerate(new)))
    with db.session() as session:
        loaded = ingest_csv(session, settings, dataset=DATASET, path=path, identifiers={"NHS_NUMBER": "nhs_number"})
    assert loaded == 3
    with world.store.cursor() as cur:
        stored = {r[0]: r[1] for r in cur.execute(f"SELECT person, age FROM {TABLE}").fetchall()}
    p = Pseudonymiser(settings)
    assert [stored.get(p.pseudonym("nhs_number", n)) for n in new] == [70, 71, 72]
    world.store.close()  # flush the file, then read its raw bytes
    raw = settings.restricted_store.read_bytes()
    for number in [*world.numbers, *new]:
        assert number.encode() not in raw and f"{number[:3]} {number[3:6]} {number[6:]}".encode() not in raw


def test_ingest_refuses_a_file_with_a_bad_identifier_and_loads_nothing(db, settings, make_account,  # type: ignore[no-untyped-def]
                                                                       tmp_path) -> None:
    world = build_world(db, settings, make_account, rows_per_borough=2)
    good = people(1, start=600_000_000)[0]
    path = tmp_path / "bad.csv"
    path.write_text(f"NHS_NUMBER,Borough,Age,Smoke_Alarm\n{good},Newham,70,true\n9434765918,Newham,71,false\n")
    with db.session() as session, pytest.raises(ValidationFailed) as failure:
        ingest_csv(session, settings, dataset=DATASET, path=path, identifiers={"NHS_NUMBER": "nhs_number"})
    assert "line 3" in failure.value.message and "nothing was loaded" in failure.value.message
    with world.store.cursor() as cur:
        assert cur.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] == 4


def test_pseudonymisation_page_and_its_json_twin(client, settings) -> None:  # type: ignore[no-untyped-def]
    Pseudonymiser(settings).current_epoch()
    page = client.get("/sharing/pseudonymisation")
    assert page.status_code == 200 and "HMAC-SHA256" in page.text and "Minimum group size" in page.text
    data = client.get("/sharing/pseudonymisation.json").json()
    assert data["epochs"][0]["status"] == "current" and "key" not in json.dumps(data["epochs"])


def test_the_command_line_ingests_and_manages_key_epochs(db, settings, make_account, tmp_path,  # type: ignore[no-untyped-def]
                                                         monkeypatch) -> None:
    from click.testing import CliRunner

    from smartlondon.cli import main

    world = build_world(db, settings, make_account, rows_per_borough=2)
    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", db.url)
    monkeypatch.setenv("SMARTLONDON_DATA_DIR", str(settings.data_dir))
    new = people(2, start=700_000_000)
    path = tmp_path / "more.csv"
    path.write_text("NHS_NUMBER,Borough,Age,Smoke_Alarm\n" + "".join(f"{n},Hackney,80,false\n" for n in new))
    runner = CliRunner()
    done = runner.invoke(main, ["sharing", "ingest", "--dataset", DATASET, str(path), "--identifier",
                                "nhs_number=NHS_NUMBER"])
    assert done.exit_code == 0, done.output
    assert "Loaded 2 rows" in done.output and new[0] not in done.output
    wrong = runner.invoke(main, ["sharing", "ingest", "--dataset", DATASET, str(path), "--identifier", "NHS_NUMBER"])
    assert wrong.exit_code == 1 and "KIND=COLUMN" in wrong.output
    old = Pseudonymiser(settings).current_epoch()
    assert runner.invoke(main, ["sharing", "rotate-key"]).exit_code == 0
    refused = runner.invoke(main, ["sharing", "destroy-key", old])
    assert refused.exit_code == 1 and "--yes" in refused.output
    assert runner.invoke(main, ["sharing", "destroy-key", old, "--yes"]).exit_code == 0
    listed = runner.invoke(main, ["sharing", "epochs"]).output
    assert f"{old}\tdestroyed" in listed
    with world.store.cursor() as cur:
        assert cur.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] == 6
