"""Search: field weights, phrases, prefixes, facets, sorting and paging, on both databases."""

from __future__ import annotations

import pytest

from smartlondon.catalogue import search, service
from smartlondon.catalogue.search import SearchRequest, parse_query
from smartlondon.core.accounts import ANONYMOUS, COMMAND_LINE

DATASETS = [
    {"slug": "air-quality-camden", "title": "Air quality monitoring in Camden", "publisher": "camden",
     "keywords": ["pollution"], "themes": ["environment"], "boroughs": ["E09000007"], "frequency": "hourly",
     "description": "Hourly nitrogen dioxide readings from roadside monitors."},
    {"slug": "tube-station-entries", "title": "Tube station entries and exits", "publisher": "transport-for-london",
     "keywords": ["transport", "stations"], "themes": ["transport"], "frequency": "annual",
     "description": "Annual counts of people entering and leaving stations. Air quality is not covered."},
    {"slug": "fuel-poverty-lsoa", "title": "Fuel poverty by LSOA", "publisher": "greater-london-authority",
     "keywords": ["energy", "air quality"], "themes": ["energy", "housing"], "frequency": "annual",
     "description": "Households in fuel poverty in each small area."},
    {"slug": "transport-spending", "title": "Spending over 500 pounds", "publisher": "transport-for-london",
     "keywords": ["finance"], "themes": ["government"], "frequency": "monthly",
     "description": "Every payment over 500 pounds, including transportation contracts."},
]


@pytest.fixture
def catalogue(db):
    with db.session() as s:
        for data in DATASETS:
            ds = service.create_dataset(s, COMMAND_LINE, data)
            if data["slug"] == "tube-station-entries":
                service.add_resource(s, COMMAND_LINE, ds, {"title": "Counts", "url": "https://tfl.gov.uk/a.csv"})
    return db


def run(db, **kwargs):
    with db.session() as s:
        result = search.search(s, ANONYMOUS, SearchRequest(**kwargs))
        return result.total, [d.slug for d in result.datasets], result.facets


def test_title_outweighs_keywords_outweighs_description(catalogue):
    total, slugs, _ = run(catalogue, q="air quality")
    assert total == 3
    assert slugs == ["air-quality-camden", "fuel-poverty-lsoa", "tube-station-entries"]


def test_phrase_prefix_or_and_exclusion(catalogue):
    assert run(catalogue, q='"nitrogen dioxide"')[1] == ["air-quality-camden"]
    assert run(catalogue, q='"dioxide nitrogen"')[0] == 0
    assert set(run(catalogue, q="transp*")[1]) == {"tube-station-entries", "transport-spending"}
    assert set(run(catalogue, q="poverty OR finance")[1]) == {"fuel-poverty-lsoa", "transport-spending"}
    assert set(run(catalogue, q="air -camden")[1]) == {"fuel-poverty-lsoa", "tube-station-entries"}


def test_stemming_matches_other_word_forms(catalogue):
    assert "air-quality-camden" in run(catalogue, q="monitor")[1]


def test_facets_count_the_whole_result_and_filters_narrow_it(catalogue):
    total, _, facets = run(catalogue, q="")
    assert total == 4
    assert ("transport-for-london", 2) in facets["publisher"]
    assert ("annual", 2) in facets["frequency"]
    assert facets["format"] == [("Tables", 1)]
    total, slugs, facets = run(catalogue, filters={"publisher": ["transport-for-london"], "frequency": ["annual"]})
    assert slugs == ["tube-station-entries"]
    total, slugs, _ = run(catalogue, filters={"publisher": ["camden", "greater-london-authority"]})
    assert set(slugs) == {"air-quality-camden", "fuel-poverty-lsoa"}
    assert run(catalogue, filters={"borough": ["E09000007"]})[1] == ["air-quality-camden"]


def test_sorting_and_paging(catalogue):
    _, slugs, _ = run(catalogue, sort="title")
    assert slugs == ["air-quality-camden", "fuel-poverty-lsoa", "transport-spending", "tube-station-entries"]
    total, page2, _ = run(catalogue, sort="title", page=2, page_size=3)
    assert total == 4 and page2 == ["tube-station-entries"]


@pytest.mark.parametrize("q", ['"', "*", "-", "OR", 'AND "unbalanced', "NEAR(a b)", "^title:x", "(((", "'; DROP"])
def test_any_input_is_safe(catalogue, q):
    total, _, _ = run(catalogue, q=q)
    assert total >= 0


def test_parse_query():
    parsed = parse_query('"air quality" transp* -covid crime OR police')
    assert [[t.text for t in c] for c in parsed.clauses] == [["air quality"], ["transp"], ["crime", "police"]]
    assert parsed.clauses[1][0].prefix and parsed.clauses[0][0].phrase
    assert [t.text for t in parsed.excluded] == ["covid"]


def test_index_follows_every_change_in_the_same_transaction(catalogue):
    with catalogue.session() as s:
        ds = service.get_dataset(s, COMMAND_LINE, "fuel-poverty-lsoa")
        service.update_dataset(s, COMMAND_LINE, ds, {"title": "Cold homes by small area"})
    assert run(catalogue, q="cold homes")[1] == ["fuel-poverty-lsoa"]
    try:
        with catalogue.session() as s:
            ds = service.get_dataset(s, COMMAND_LINE, "fuel-poverty-lsoa")
            service.update_dataset(s, COMMAND_LINE, ds, {"title": "Warm homes"})
            raise RuntimeError("the request fails after the change")
    except RuntimeError:
        pass
    assert run(catalogue, q="warm")[0] == 0  # rolled back with the data
    assert run(catalogue, q="cold")[1] == ["fuel-poverty-lsoa"]


def test_a_search_inside_the_writing_transaction_sees_its_changes(catalogue):
    """The index is written once per transaction, at commit; a search in the transaction writes it first."""
    with catalogue.session() as s:
        for slug, title in (("fuel-poverty-lsoa", "Cold homes by small area"), ("transport-spending", "Cold payments")):
            service.update_dataset(s, COMMAND_LINE, service.get_dataset(s, COMMAND_LINE, slug), {"title": title})
        found = search.search(s, ANONYMOUS, SearchRequest(q="cold", sort="title"))
        assert [d.slug for d in found.datasets] == ["fuel-poverty-lsoa", "transport-spending"]
        service.delete_dataset(s, COMMAND_LINE, service.get_dataset(s, COMMAND_LINE, "transport-spending"))
        assert [d.slug for d in search.search(s, ANONYMOUS, SearchRequest(q="cold")).datasets] == ["fuel-poverty-lsoa"]
    total, slugs, facets = run(catalogue, q="cold")
    assert (total, slugs) == (1, ["fuel-poverty-lsoa"])
    assert run(catalogue)[0] == 3 and dict(run(catalogue)[2]["publisher"]).get("transport-for-london") == 1
