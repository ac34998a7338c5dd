"""Bulk dumps: the whole public catalogue as JSON lines and CSV, fresh after every change."""

from __future__ import annotations

import csv
import errno
import io
import json
import os

import duckdb
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from smartlondon.catalogue import dumps
from smartlondon.cli import main

AIR = {
    "title": "Nitrogen dioxide diffusion tubes, Camden",
    "slug": "camden-no2-tubes",
    "description": "Monthly readings, in µg/m³.\n\nSecond paragraph, with \"quotes\", commas and a £ sign.",
    "publisher": "camden",
    "keywords": ["air quality", "NO2"],
    "themes": ["environment", "health"],
    "frequency": "monthly",
    "temporal_start": "2023-01-01",
    "boroughs": ["E09000007"],
    "bbox": [-0.2135, 51.5128, -0.1053, 51.5729],
    "contact_email": "air@camden.example.org",
    "extras": {"source": "Camden air quality team"},
}


def make(client, headers, **fields):  # type: ignore[no-untyped-def]
    """Create a dataset through the API."""
    res = client.post("/api/datasets", json={"publisher": "camden", "description": "d", **fields}, headers=headers)
    assert res.status_code == 201, res.text
    return res.json()


def jsonl(client) -> list[dict]:  # type: ignore[no-untyped-def]
    """The JSON lines dump, parsed."""
    res = client.get("/catalog/dump.jsonl")
    assert res.status_code == 200 and res.headers["content-type"].startswith("application/jsonl")
    return [json.loads(line) for line in res.text.splitlines()]


def csv_rows(client, address: str = "/catalog/dump.csv") -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    """A CSV dump, read the way a script would."""
    res = client.get(address)
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(res.content.decode("utf-8-sig"), newline="")))


def test_dumps_follow_every_change(client, editor):
    first = make(client, editor.headers, **AIR)
    make(client, editor.headers, title="Second", slug="second-one")
    res = client.get("/catalog/dump.jsonl")
    etag, modified = res.headers["etag"], res.headers["last-modified"]
    records = jsonl(client)
    assert [r["slug"] for r in records] == ["camden-no2-tubes", "second-one"]
    assert records[0] == client.get(f"/api/datasets/{first['slug']}").json()  # the native API's dict, exactly
    assert 'filename="catalogue.jsonl"' in res.headers["content-disposition"]

    again = client.get("/catalog/dump.jsonl", headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.content
    assert client.get("/catalog/dump.jsonl", headers={"If-Modified-Since": modified}).status_code == 304

    assert client.patch("/api/datasets/second-one", json={"title": "Second, renamed"},
                        headers=editor.headers).status_code == 200
    changed = client.get("/catalog/dump.jsonl", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert [json.loads(line)["title"] for line in changed.text.splitlines()][1] == "Second, renamed"

    client.post("/api/datasets/second-one/resources", json={"title": "Page", "url": "https://example.org/data.csv"},
                headers=editor.headers)
    resources = csv_rows(client, "/catalog/dump-resources.csv")
    assert [(r["dataset_slug"], r["title"], r["download_url"]) for r in resources] == [
        ("second-one", "Page", "https://example.org/data.csv")]
    assert client.delete("/api/datasets/camden-no2-tubes", headers=editor.headers).status_code == 204
    assert [r["slug"] for r in csv_rows(client)] == ["second-one"]
    assert csv_rows(client, "/catalog/dump-resources.csv")[0]["dataset_slug"] == "second-one"


def test_organisation_renames_reach_the_dumps(client, editor, db):
    make(client, editor.headers, title="One", slug="one-dataset")
    assert csv_rows(client)[0]["publisher_name"] == "Camden"
    with db.session() as session:  # an organisation change is not a dataset change, but the dump shows its name
        from smartlondon.core.models import Organisation

        session.query(Organisation).filter_by(slug="camden").one().name = "London Borough of Camden"
    assert csv_rows(client)[0]["publisher_name"] == "London Borough of Camden"


def test_private_draft_and_deleted_datasets_are_never_dumped(client, editor):
    make(client, editor.headers, title="Public", slug="public-one")
    make(client, editor.headers, title="Private", slug="private-one", private=True)
    make(client, editor.headers, title="Draft", slug="draft-one", state="draft")
    make(client, editor.headers, title="Deleted", slug="deleted-one")
    client.delete("/api/datasets/deleted-one", headers=editor.headers)
    for headers in ({}, editor.headers):  # even its publisher gets the public dump
        lines = client.get("/catalog/dump.jsonl", headers=headers).text.splitlines()
        assert [json.loads(line)["slug"] for line in lines] == ["public-one"]
    assert [r["slug"] for r in csv_rows(client)] == ["public-one"]
    assert csv_rows(client, "/catalog/dump-resources.csv") == []


def test_the_csv_opens_in_a_spreadsheet(client, editor, tmp_path):
    make(client, editor.headers, **AIR)
    make(client, editor.headers, title="=HYPERLINK(\"http://evil.example\",\"click\")", slug="formula-title",
         keywords=["-1", "+cmd"])
    raw = client.get("/catalog/dump.csv").content
    assert raw.startswith(b"\xef\xbb\xbf")  # a UTF-8 byte order mark, so Excel reads UTF-8
    assert b"\r\n" in raw  # RFC 4180 line ends
    rows = csv_rows(client)
    assert list(rows[0]) == list(dumps.DATASET_COLUMNS)
    air = rows[0]
    assert air["description"] == AIR["description"]  # newlines, quotes, commas, µ, ³ and £ survive
    assert air["keywords"] == "air quality; no2" and air["themes"] == "environment; health"
    assert air["boroughs"] == "E09000007" and air["bbox_west"] == "-0.2135"  # numbers are not prefixed
    assert json.loads(air["extras"]) == {"source": "Camden air quality team"}
    assert rows[1]["title"].startswith("'=HYPERLINK(")  # a spreadsheet shows it, never runs it
    assert rows[1]["keywords"] == "'-1; +cmd"

    path = tmp_path / "catalogue.csv"
    path.write_bytes(raw)
    table = duckdb.sql(f"SELECT slug, title, description FROM read_csv('{path}', header = true)").fetchall()
    assert [row[0] for row in table] == ["camden-no2-tubes", "formula-title"]
    assert table[0][2] == AIR["description"]


def test_a_failed_rewrite_keeps_the_last_good_files(client, editor, settings, monkeypatch):
    make(client, editor.headers, title="Kept", slug="kept-one")
    good = client.get("/catalog/dump.csv").content
    make(client, editor.headers, title="New", slug="new-one")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dumps.os, "fsync", disk_full)
    with pytest.raises(OSError):
        dumps.ensure_fresh(client.app.state.db.engine, settings.data_dir, settings.base_url)
    monkeypatch.undo()
    folder = dumps.dump_dir(settings.data_dir)
    assert (folder / "catalogue.csv").read_bytes() == good
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert [r["slug"] for r in csv_rows(client)] == ["kept-one", "new-one"]  # and the next request catches up


def test_a_corrupt_record_is_left_out_of_the_dumps(client, editor, db):
    make(client, editor.headers, title="Good", slug="good-one")
    make(client, editor.headers, title="Bad", slug="bad-one")
    make(client, editor.headers, title="Unreadable", slug="unreadable-one")
    with db.engine.begin() as conn:  # damage written behind the service's back
        conn.execute(text("UPDATE dataset SET extras = '[1, 2]' WHERE slug = 'bad-one'"))
        if db.dialect == "sqlite":  # a value the driver cannot even read back
            conn.execute(text("UPDATE dataset SET temporal_start = 'the first of May' WHERE slug = 'unreadable-one'"))
    left_out = {"bad-one"} | ({"unreadable-one"} if db.dialect == "sqlite" else set())
    res = client.get("/catalog/dump.csv")
    assert res.status_code == 200 and res.headers["x-skipped-records"] == str(len(left_out))
    assert {r["slug"] for r in csv_rows(client)} == {"good-one", "bad-one", "unreadable-one"} - left_out
    manifest = dumps.read_manifest(client.app.state.settings.data_dir)
    assert manifest is not None and {item["slug"] for item in manifest.skipped} == left_out


def test_the_cli_writes_the_dumps(db, settings, client, editor, monkeypatch):
    make(client, editor.headers, title="One", slug="one-dataset")
    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", db.url)
    monkeypatch.setenv("SMARTLONDON_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SMARTLONDON_BASE_URL", settings.base_url)
    runner = CliRunner()
    first = runner.invoke(main, ["catalogue", "dump"])
    assert first.exit_code == 0, first.output
    assert "written" in first.output and "1 datasets" in first.output
    lines = (dumps.dump_dir(settings.data_dir) / "catalogue.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["slug"] for line in lines] == ["one-dataset"]
    second = runner.invoke(main, ["catalogue", "dump"])
    assert second.exit_code == 0 and "unchanged" in second.output
    assert oct(os.stat(dumps.dump_dir(settings.data_dir) / "catalogue.csv").st_mode)[-3:] == "644"
