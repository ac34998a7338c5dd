"""Name search (/places/search), bulk CSV matching over HTTP (/places/match) and `smartlondon places match`."""

from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner

from smartlondon.cli import main
from smartlondon.places import match_api
from smartlondon.places.records import MatchRecord
from tests.places.match_data import seed_register

KINGS_CROSS = "ldn:station:625"
MESSY = ("ref,station name,notes\r\n"
         "1,Kings X,busy\r\n"
         "2,Padington,\r\n"
         "3,Shepards Bush Market,typo\r\n"
         "4,,blank\r\n"
         "5,Atlantis Central,not in London\r\n")


@pytest.fixture
def register(db):  # type: ignore[no-untyped-def]
    return seed_register(db)


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def upload(client, body: bytes | str, **fields: str):  # type: ignore[no-untyped-def]
    data = body.encode() if isinstance(body, str) else body
    return client.post("/places/match", files={"upload": ("stations.csv", data, "text/csv")}, data=fields,
                       headers={"Accept": "application/json"})


# --- search ----------------------------------------------------------------------------------------

def test_search_page_shows_ranked_places_in_a_table(register, client) -> None:
    response = client.get("/places/search", params={"q": "kings x"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<form method="get" action="/places/search"' in page
    assert 'href="/places/ldn:station:625"' in page and "King&#39;s Cross St. Pancras" in page
    assert "Best match" in page and "<table" in page


def test_search_json_twin(register, client) -> None:
    data = client.get("/places/search.json", params={"q": "St. Pancras", "kind": "station", "limit": 3}).json()
    assert data["query"] == "St. Pancras" and data["kind"] == "station"
    assert data["results"][0]["uid"] == KINGS_CROSS and data["results"][0]["match"] is True
    assert data["results"][0]["url"] == f"http://testserver/places/{KINGS_CROSS}"
    assert data["results"][0]["borough"] == "Camden"
    assert data["count"] == len(data["results"]) <= 3
    by_accept = client.get("/places/search", params={"q": "E09000007"}, headers={"Accept": "application/json"}).json()
    assert by_accept["results"][0]["name"] == "Camden"


def test_search_in_an_area(register, client) -> None:
    data = client.get("/places/search.json", params={"q": "Camden 001", "area": "Camden", "kind": "lsoa"}).json()
    assert data["area"] == "ldn:borough:E09000007" and data["area_name"] == "Camden"
    assert data["results"] and all(r["kind"] == "lsoa" for r in data["results"])
    none = client.get("/places/search.json", params={"q": "Kings Cross St Pancras", "area": "E09000013"}).json()
    assert none["results"] == []
    html = client.get("/places/search", params={"q": "Kings Cross St Pancras", "area": "E09000013"}).text
    assert "No places found" in html


@pytest.mark.parametrize("params, status, message", [
    ({"q": "Bank", "kind": "spaceport"}, 400, "There are no places of kind 'spaceport'"),
    ({"q": "Bank", "area": "Atlantis"}, 400, "No area is called or coded 'Atlantis'"),
    ({"q": "Bank", "limit": "0"}, 400, "'limit' must be between 1 and 100"),
    ({"q": "Bank", "limit": "many"}, 400, "limit"),
])
def test_search_bad_input(register, client, params, status, message) -> None:
    response = client.get("/places/search.json", params=params)
    assert response.status_code == status and message in response.json()["error"]["message"]


def test_the_index_follows_the_register(register, db, client) -> None:
    assert client.get("/places/search.json", params={"q": "Crystal Palace Park"}).json()["results"][0]["name"] != \
        "Crystal Palace Park"
    seed_register(db, [MatchRecord("ldn:park:crystal-palace", "park", "Crystal Palace Park", alt_names=("CPP",))])
    found = client.get("/places/search.json", params={"q": "Crystal Palace Park"}).json()["results"][0]
    assert (found["uid"], found["score"], found["match"]) == ("ldn:park:crystal-palace", 100.0, True)


def test_a_retired_place_is_no_longer_found(register, db, client) -> None:
    from smartlondon.places import service

    assert client.get("/places/search.json", params={"q": "625"}).json()["results"][0]["uid"] == KINGS_CROSS
    with db.session() as session:
        service.retire_place(session, KINGS_CROSS, source="test", reason="testing the matcher")
    assert client.get("/places/search.json", params={"q": "625"}).json()["results"] == []
    found = client.get("/places/search.json", params={"q": "Kings Cross St Pancras"}).json()["results"]
    assert KINGS_CROSS not in [r["uid"] for r in found]


# --- CSV over HTTP ---------------------------------------------------------------------------------

def test_match_form_page(register, client) -> None:
    page = client.get("/places/match").text
    assert 'enctype="multipart/form-data"' in page and 'name="column"' in page and 'name="upload"' in page


def test_a_csv_comes_back_with_matches(register, client) -> None:
    response = upload(client, MESSY, column="station name", kind="station")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="stations-matched.csv"' in response.headers["content-disposition"]
    rows = rows_of(response.text)
    assert list(rows[0]) == ["ref", "station name", "notes", "match_uid", "match_name", "match_kind", "score",
                             "matched", "alternatives"]
    assert [r["ref"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert rows[0]["match_uid"] == KINGS_CROSS and rows[0]["matched"] == "true" and rows[0]["notes"] == "busy"
    assert rows[1]["match_name"].startswith("Paddington") and rows[1]["matched"] == "false"
    assert rows[1]["alternatives"].split(";")[0].split("|")[1].startswith("Paddington")
    assert rows[2]["match_name"] == "Shepherd's Bush Market" and rows[2]["matched"] == "true"
    assert rows[3]["match_uid"] == "" and rows[3]["matched"] == "false"
    assert rows[4]["matched"] == "false"
    assert all(r["match_kind"] in ("station", "") for r in rows)


def test_area_restricts_csv_matches(register, client) -> None:
    text = "name\nSwiss Cottage\nKings Cross\nShepherd's Bush Market\n"
    rows = rows_of(upload(client, text, column="name", area="Camden").text)
    assert [r["match_uid"] for r in rows[:2]] == ["ldn:station:723", KINGS_CROSS]
    assert rows[2]["match_name"] != "Shepherd's Bush Market"  # in Hammersmith and Fulham, not Camden


@pytest.mark.parametrize("body, fields, status, message", [
    (MESSY, {"column": "station"}, 400, "no column called 'station'. Its columns are: ref, station name, notes"),
    ("", {"column": "name"}, 400, "The file is empty"),
    ("   \n", {"column": "name"}, 400, "The file is empty"),
    ("name\nCaf\xe9\n".encode("latin-1"), {"column": "name"}, 400, "not UTF-8"),
    ("name,score\nBank,1\n", {"column": "name"}, 400, "already has the column(s) score"),
    (MESSY, {}, 400, "Say which column holds the names"),
    (MESSY, {"column": "station name", "kind": "spaceport"}, 400, "no places of kind 'spaceport'"),
    (MESSY, {"column": "station name", "area": "Atlantis"}, 400, "No area is called or coded 'Atlantis'"),
])
def test_bad_csv_uploads(register, client, body, fields, status, message) -> None:
    response = upload(client, body, **fields)
    assert response.status_code == status
    assert message in response.json()["error"]["message"]


def test_no_file_too_big_and_too_many_rows(register, client, monkeypatch, settings) -> None:
    response = client.post("/places/match", files={"other": ("x.csv", b"a\n1\n", "text/csv")}, data={"column": "a"},
                           headers={"Accept": "application/json"})
    assert response.status_code == 400 and "Choose a CSV file" in response.json()["error"]["message"]
    monkeypatch.setattr(match_api, "MAX_MATCH_BYTES", 50)
    big = upload(client, "name\n" + "Bank\n" * 40, column="name")
    assert big.status_code == 413 and "larger than the upload limit" in big.json()["error"]["message"]
    monkeypatch.setattr(match_api, "MAX_MATCH_BYTES", 1024 * 1024)
    monkeypatch.setattr(match_api, "MAX_MATCH_ROWS", 3)
    many = upload(client, "name\nBank\nBank\nBank\nBank\n", column="name")
    assert many.status_code == 413 and "more than 3 rows" in many.json()["error"]["message"]
    tmp = settings.files_dir / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []  # no upload left behind
    assert not any(p.is_file() for p in settings.files_dir.rglob("*"))


# --- the command -----------------------------------------------------------------------------------

@pytest.fixture
def cli_env(db, settings, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", db.url)
    monkeypatch.setenv("SMARTLONDON_DATA_DIR", str(settings.data_dir))


def test_cli_matches_a_file(register, cli_env, tmp_path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(MESSY, encoding="utf-8")
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(main, ["places", "match", str(source), "--column", "station name", "--kind", "station",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Matched 2 of 5 rows confidently" in " ".join(result.output.split())
    rows = rows_of(out.read_text(encoding="utf-8"))
    assert rows[0]["match_uid"] == KINGS_CROSS and rows[2]["match_name"] == "Shepherd's Bush Market"
    to_stdout = CliRunner().invoke(main, ["places", "match", str(source), "--column", "station name"])
    assert to_stdout.exit_code == 0 and KINGS_CROSS in to_stdout.stdout


@pytest.mark.parametrize("content, args, message", [
    (MESSY, ["--column", "station"], "has no column called 'station'"),
    ("", ["--column", "name"], "is empty"),
    (MESSY, ["--column", "station name", "--kind", "spaceport"], "no places of kind 'spaceport'"),
    (MESSY, ["--column", "station name", "--area", "Atlantis"], "No area is called or coded 'Atlantis'"),
    ("name\nCaf\xe9\n".encode("latin-1"), ["--column", "name"], "is not UTF-8 text"),
    ("name,matched\nBank,x\n", ["--column", "name"], "already has the column(s) matched"),
])
def test_cli_bad_input(register, cli_env, tmp_path, content, args, message) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(main, ["places", "match", str(source), *args, "--out", str(out)])
    assert result.exit_code == 1 and message in " ".join(result.output.split())
    assert not out.exists()
