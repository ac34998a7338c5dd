"""The name matcher on real London names: stations, boroughs, MSOAs, LSOAs and air quality sites.

The index is built from the real files (tests/places/match_data.py), as the register builds it from
its tables, so these tests need no database.
"""

from __future__ import annotations

import time

import pytest

from smartlondon.core.errors import BadRequest
from smartlondon.places.matching import MatchIndex, match_rows, normalise
from smartlondon.places.records import MatchRecord
from tests.places.match_data import real_records

KINGS_CROSS = "ldn:station:625"
CAMDEN = "ldn:borough:E09000007"


@pytest.fixture(scope="module")
def index() -> MatchIndex:
    return MatchIndex(real_records())


def best(index: MatchIndex, query: str, **kw) -> tuple[str, str, float, bool]:
    found = index.search(query, **kw)
    assert found, f"nothing found for {query!r}"
    top = found[0]
    return top.record.uid, top.record.name, top.score, top.match


def test_normalise_folds_case_punctuation_apostrophes_and_abbreviations() -> None:
    assert normalise("King's X  St. Pancras") == "kings cross st pancras"
    assert normalise("Kings Cross Saint Pancras") == "kings cross st pancras"
    assert normalise("Hammersmith & Fulham") == "hammersmith and fulham"
    assert normalise("Tottenham Ct. Rd") == "tottenham court road"
    assert normalise("Upr Holloway Stn") == "upper holloway station"
    assert normalise("Covent Gdns") == "covent gardens"
    assert normalise("Bank (Central line)") == "bank"
    assert normalise("Heathrow T5") == "heathrow terminal 5"
    assert normalise("Caf\u00e9 \u2019Nero\u2019") == "cafe nero"


def test_the_register_is_real_and_builds_fast(index: MatchIndex) -> None:
    kinds = dict(index.kinds)
    assert kinds["borough"] == 33 and kinds["msoa"] == 983 and kinds["lsoa"] == 4835 and kinds["station"] == 471
    assert kinds["aq-site"] >= 80
    assert index.build_seconds < 2.0  # about 0.1 s for 6,400 places on the CI machine


@pytest.mark.parametrize("query", ["kings x", "Kings X", "St. Pancras", "St Pancras", "Kings Cross St Pancras",
                                   "King's Cross St. Pancras", "KINGS CROSS ST PANCRAS STATION", "kgx",
                                   "Kings Cross Saint Pancras underground station", "Kings Cros St Pancras"])
def test_every_way_of_writing_kings_cross_finds_the_station(index: MatchIndex, query: str) -> None:
    uid, name, score, match = best(index, query)
    assert (uid, name) == (KINGS_CROSS, "King's Cross St. Pancras")
    assert match is True


def test_exact_names_score_100_and_abbreviations_count_as_exact(index: MatchIndex) -> None:
    assert best(index, "Tottenham Ct Rd")[1:] == ("Tottenham Court Road", 100.0, True)
    assert best(index, "St Johns Wood")[1:] == ("St. John's Wood", 100.0, True)
    assert best(index, "Shepherds Bush Market")[1:] == ("Shepherd's Bush Market", 100.0, True)


@pytest.mark.parametrize("typo, expected", [
    ("Padington", "Paddington"), ("Shepards Bush Market", "Shepherd's Bush Market"),
    ("Totenham Court Road", "Tottenham Court Road"), ("Wimbeldon", "Wimbledon"),
    ("Elephant and Castel", "Elephant & Castle"), ("Hamersmith and Fulham", "Hammersmith and Fulham"),
    ("Tower Hamlet", "Tower Hamlets"),
])
def test_typos_still_find_the_place(index: MatchIndex, typo: str, expected: str) -> None:
    found = index.search(typo, limit=3)
    assert found[0].record.name.startswith(expected), [c.record.name for c in found]
    assert found[0].how == "fuzzy"
    assert found[0].score < 90  # a guess is never scored like an exact name


def test_two_equally_good_places_are_not_a_confident_match(index: MatchIndex) -> None:
    found = index.search("Paddington", kind="station")
    assert {c.record.name for c in found[:2]} == {"Paddington NR", "Paddington TfL"}
    assert found[0].score == found[1].score
    assert not any(c.match for c in found)


def test_borough_names_with_and_or_ampersand(index: MatchIndex) -> None:
    for query in ("Hammersmith & Fulham", "Hammersmith and Fulham", "hammersmith + fulham",
                  "London Borough of Hammersmith & Fulham"):
        uid, name, score, match = best(index, query, kind="borough")
        assert name == "Hammersmith and Fulham" and match, query
    # the alternative name scores just below the preferred one
    assert best(index, "London Borough of Camden")[2] == 98.0


def test_identifiers_find_the_place(index: MatchIndex) -> None:
    assert best(index, "E09000007") == (CAMDEN, "Camden", 100.0, True)
    assert best(index, " e09000007 ")[0] == CAMDEN
    assert best(index, "625")[0] == KINGS_CROSS  # TfL NLC
    assert best(index, "nlc:625")[0] == KINGS_CROSS
    assert best(index, "BL0")[1] == "Camden - Bloomsbury"  # LAQN site code
    assert best(index, "E01000001")[1] == "City of London 001A"  # LSOA GSS code
    assert best(index, KINGS_CROSS)[0] == KINGS_CROSS
    assert index.search("E09999999") == []
    # the TfL file gives NLC 3186 to two stations: both are found, neither is a confident match
    shared = index.search("3186")
    assert {c.record.name for c in shared} == {"Headstone Lane", "Hayes and Harlington"}
    assert not any(c.match for c in shared)


def test_kind_filter(index: MatchIndex) -> None:
    assert best(index, "Camden")[1:2] == ("Camden",)
    assert {c.record.kind for c in index.search("Camden", kind="msoa", limit=20)} == {"msoa"}
    assert best(index, "Swiss Cottage", kind="aq-site")[1] == "Camden - Swiss Cottage"
    assert index.search("Kings Cross St Pancras", kind="borough") == []


def test_area_filter_by_name_or_code(index: MatchIndex) -> None:
    in_camden = index.search("Camden 001", area="Camden", limit=10)
    assert in_camden and all(CAMDEN in c.record.areas.values() for c in in_camden)
    assert [c.record.uid for c in index.search("Kings Cross", area="E09000007")][:1] == [KINGS_CROSS]
    assert index.search("Kings Cross St Pancras", area="Hammersmith & Fulham") == []
    with pytest.raises(BadRequest, match="No area is called or coded 'Atlantis'"):
        index.search("Bank", area="Atlantis")


def test_ranking_exact_then_alternative_then_prefix_then_words_then_fuzzy() -> None:
    records = [
        MatchRecord("ldn:x:1", "park", "Green Park"),
        MatchRecord("ldn:x:2", "park", "Greenwich Park", alt_names=("Green Park Greenwich",)),
        MatchRecord("ldn:x:3", "park", "Green Park Gardens"),
        MatchRecord("ldn:x:4", "park", "Old Green Park"),
        MatchRecord("ldn:x:5", "park", "Gren Parks"),
        MatchRecord("ldn:x:6", "park", "Victoria Park", alt_names=("Green Park",)),
    ]
    found = MatchIndex(records).search("Green Park", limit=10)
    assert [(c.record.uid, c.how) for c in found] == [
        ("ldn:x:1", "exact"), ("ldn:x:6", "alt"), ("ldn:x:3", "prefix"), ("ldn:x:2", "prefix"),
        ("ldn:x:4", "words"), ("ldn:x:5", "fuzzy")]
    scores = [c.score for c in found]
    assert scores == sorted(scores, reverse=True) and scores[0] == 100.0
    assert found[0].match is True


def test_a_nearby_place_ranks_first_among_equals(index: MatchIndex) -> None:
    paddington_nr = next(r for r in real_records() if r.name == "Paddington NR")
    near = (paddington_nr.lon, paddington_nr.lat)
    found = index.search("Paddington", kind="station", near=near, limit=2)
    assert found[0].record.name == "Paddington NR"


def test_a_search_only_scores_candidates_and_is_fast(index: MatchIndex) -> None:
    queries = ["kings x", "Padington", "Camden 001A", "Hammersmith & Fulham", "Shepards Bush Market", "E09000007",
               "Tower Hamlets 012", "Canary Wharf", "Barking and Dagenham - Rush Green", "Heathrow T5"]
    timings = []
    for q in queries * 5:
        start = time.perf_counter()
        index.search(q, limit=10)
        timings.append(time.perf_counter() - start)
    timings.sort()
    assert timings[int(len(timings) * 0.95)] < 0.05  # well under 20 ms here; generous for a loaded CI machine


def test_empty_and_blank_queries_find_nothing(index: MatchIndex) -> None:
    assert index.search("") == [] and index.search("   ") == []
    assert index.search("zzqqxx") == []


def test_match_rows_adds_best_match_score_and_alternatives(index: MatchIndex) -> None:
    rows = [{"station": "Kings X", "n": "1"}, {"station": "Padington", "n": "2"}, {"station": "", "n": "3"}]
    out = list(match_rows(index, rows, "station", kind="station"))
    assert out[0]["match_uid"] == KINGS_CROSS and out[0]["matched"] == "true" and out[0]["n"] == "1"
    assert out[1]["match_name"].startswith("Paddington") and out[1]["matched"] == "false"
    alternatives = out[1]["alternatives"].split(";")
    assert 1 <= len(alternatives) <= 3 and alternatives[0].startswith("ldn:station:")
    assert len(alternatives[0].split("|")) == 3
    assert out[2]["match_uid"] == "" and out[2]["matched"] == "false" and out[2]["score"] == ""
