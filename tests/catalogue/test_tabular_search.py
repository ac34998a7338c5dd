"""Reading tables: CKAN's datastore_search and datastore_info, dumps, and who may read what."""

from __future__ import annotations

import csv
import io
import json

import duckdb
import pytest

from tests.catalogue.tabular_support import ROWS_MAX, csv_bytes, tab  # noqa: F401  (fixture)

HEADER = ["borough", "gss_code", "year", "population", "area_ha", "inner", "recorded"]
BOROUGHS = [
    ["Camden", "E09000007", 2021, 210100, 2178.9, "true", "2021-03-21T00:00:00Z"],
    ["Hackney", "E09000012", 2021, 259200, 1904.9, "true", "2021-03-21T00:00:00Z"],
    ["Barnet", "E09000003", 2021, 389300, 8674.8, "false", "2021-03-21T00:00:00Z"],
    ["Bromley", "E09000006", 2021, 330000, 15013.5, "false", "2021-03-21T00:00:00Z"],
    ["Camden", "E09000007", 2011, 220338, 2178.9, "true", "2011-03-27T00:00:00+01:00"],
    ["Hackney", "E09000012", 2011, 246270, 1904.9, "true", "2011-03-27T00:00:00+01:00"],
    ["Barnet", "E09000003", 2011, 356386, 8674.8, "false", "2011-03-27T00:00:00+01:00"],
    ["City of London", "E09000001", 2011, 7375, 314.9, "true", "2011-03-27T00:00:00+01:00"],
]


@pytest.fixture
def boroughs(tab):  # type: ignore[no-untyped-def]
    """A loaded table of borough populations; returns (tab, dataset slug, resource id)."""
    slug = tab.dataset("borough-populations")
    res = tab.upload(slug, "populations.csv", csv_bytes(HEADER, BOROUGHS))
    return tab, slug, res["id"]


def test_search_returns_ckans_shape_with_paging_links(boroughs):
    tab, _, rid = boroughs
    result = tab.search(resource_id=rid, limit=3)
    assert [f["id"] for f in result["fields"]] == ["_id", *HEADER]
    assert {f["id"]: f["type"] for f in result["fields"]} == {
        "_id": "int", "borough": "text", "gss_code": "text", "year": "int", "population": "int",
        "area_ha": "numeric", "inner": "bool", "recorded": "timestamp"}
    assert result["total"] == 8 and result["limit"] == 3 and result["resource_id"] == rid
    assert result["records"][0] == {"_id": 1, "borough": "Camden", "gss_code": "E09000007", "year": 2021,
                                    "population": 210100, "area_ha": 2178.9, "inner": True,
                                    "recorded": "2021-03-21T00:00:00"}
    assert result["_links"]["start"] == f"/api/3/action/datastore_search?resource_id={rid}&limit=3"
    assert result["_links"]["next"] == f"/api/3/action/datastore_search?resource_id={rid}&limit=3&offset=3"
    page2 = tab.search(resource_id=rid, limit=3, offset=3)
    page3 = tab.search(resource_id=rid, limit=3, offset=6)
    ids = [r["_id"] for r in result["records"] + page2["records"] + page3["records"]]
    assert ids == list(range(1, 9))
    assert tab.search(resource_id=rid, offset=8)["records"] == []


def test_offsets_with_time_zones_are_stored_in_utc(boroughs):
    tab, _, rid = boroughs
    record = tab.search(resource_id=rid, filters={"borough": "Camden", "year": 2011})["records"][0]
    assert record["recorded"] == "2011-03-26T23:00:00"


def test_filters_take_values_or_lists_and_are_typed(boroughs):
    tab, _, rid = boroughs
    assert tab.search(resource_id=rid, filters={"borough": "Camden"})["total"] == 2
    assert tab.search(resource_id=rid, filters={"borough": ["Camden", "Barnet"], "year": "2011"})["total"] == 2
    assert tab.search(resource_id=rid, filters={"inner": False, "year": 2021})["total"] == 2
    as_get = tab.client.get("/api/3/action/datastore_search",
                            params={"resource_id": rid, "filters": json.dumps({"gss_code": "E09000001"})})
    assert as_get.json()["result"]["records"][0]["borough"] == "City of London"
    bad = tab.action("datastore_search", resource_id=rid, filters={"year": "twenty"})
    assert bad.status_code == 409 and bad.json()["error"]["__type"] == "Validation Error"
    assert "filters" in bad.json()["error"]
    unknown = tab.action("datastore_search", resource_id=rid, filters={"nope": 1})
    assert unknown.status_code == 409 and unknown.json()["error"]["filters"] == ['field "nope" not in table']


def test_q_searches_text_words_anywhere_or_in_one_field(boroughs):
    tab, _, rid = boroughs
    assert {r["borough"] for r in tab.search(resource_id=rid, q="hack")["records"]} == {"Hackney"}
    assert tab.search(resource_id=rid, q="city london")["total"] == 1
    assert tab.search(resource_id=rid, q="city barnet")["total"] == 0  # every word must match
    assert tab.search(resource_id=rid, q={"gss_code": "E0900000"})["total"] == 6
    assert tab.search(resource_id=rid, q=json.dumps({"borough": "brom"}))["total"] == 1


def test_sort_fields_distinct_and_totals(boroughs):
    tab, _, rid = boroughs
    result = tab.search(resource_id=rid, sort="year asc, population desc", fields="borough,year")
    assert [f["id"] for f in result["fields"]] == ["borough", "year"]
    assert [(r["borough"], r["year"]) for r in result["records"][:3]] == [
        ("Barnet", 2011), ("Hackney", 2011), ("Camden", 2011)]
    distinct = tab.search(resource_id=rid, fields=["borough"], distinct=True, sort="borough")
    assert [r["borough"] for r in distinct["records"]] == ["Barnet", "Bromley", "Camden", "City of London", "Hackney"]
    assert distinct["total"] == 5
    no_total = tab.search(resource_id=rid, include_total=False)
    assert "total" not in no_total and len(no_total["records"]) == 8
    bad_sort = tab.action("datastore_search", resource_id=rid, sort="colour desc")
    assert bad_sort.status_code == 409 and bad_sort.json()["error"]["sort"] == ['field "colour" not in table']
    bad_field = tab.action("datastore_search", resource_id=rid, fields=["borough", "colour"])
    assert bad_field.status_code == 409 and bad_field.json()["error"]["fields"] == ['field "colour" not in table']


def test_records_formats(boroughs):
    tab, _, rid = boroughs
    lists = tab.search(resource_id=rid, records_format="lists", fields="borough,inner,recorded", limit=1)
    assert lists["records"] == [["Camden", True, "2021-03-21T00:00:00"]]
    as_csv = tab.search(resource_id=rid, records_format="csv", fields="borough,area_ha,inner,recorded", limit=2)
    assert as_csv["records"] == "Camden,2178.9,t,2021-03-21 00:00:00\nHackney,1904.9,t,2021-03-21 00:00:00\n"
    as_tsv = tab.search(resource_id=rid, records_format="tsv", fields="borough,year", limit=1)
    assert as_tsv["records"] == "Camden\t2021\n"
    bad = tab.action("datastore_search", resource_id=rid, records_format="xml")
    assert bad.status_code == 409


def test_limit_is_capped_like_ckan_and_negative_numbers_refused(boroughs):
    tab, _, rid = boroughs
    assert tab.search(resource_id=rid, limit=10 ** 6)["limit"] == ROWS_MAX
    negative = tab.action("datastore_search", resource_id=rid, limit=-1)
    assert negative.status_code == 409 and negative.json()["error"]["limit"] == ["Must be a natural number"]


def test_info_gives_fields_types_and_count(boroughs):
    tab, _, rid = boroughs
    info = tab.client.get("/api/3/action/datastore_info", params={"id": rid}).json()["result"]
    assert info["meta"]["count"] == 8 and info["meta"]["id"] == rid and info["meta"]["aliases"] == []
    assert [(f["id"], f["type"]) for f in info["fields"]][:3] == [("borough", "text"), ("gss_code", "text"),
                                                                 ("year", "int")]
    assert info["fields"][2]["schema"]["native_type"] == "BIGINT"
    assert info["table_schema"]["fields"][0] == {"name": "borough", "type": "string"}


def test_declared_titles_and_descriptions_become_ckans_data_dictionary(tab):
    schema = {"fields": [{"name": "borough", "type": "string", "title": "Borough",
                          "description": "The London borough"}, {"name": "n", "type": "integer"}]}
    slug = tab.dataset()
    res = tab.upload(slug, "n.csv", csv_bytes(["borough", "n"], [["Camden", 1]]), schema=schema)
    fields = tab.search(resource_id=res["id"])["fields"]
    assert fields[1]["info"] == {"label": "Borough", "notes": "The London borough", "type_override": ""}


def test_unknown_resources_are_ckans_not_found(boroughs):
    tab, _, _ = boroughs
    missing = tab.action("datastore_search", resource_id="00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["__type"] == "Not Found Error"
    no_id = tab.action("datastore_search")
    assert no_id.status_code == 409 and no_id.json()["error"]["resource_id"] == ["Missing value"]


def test_private_tables_are_invisible_except_to_members(tab, make_account):
    member = make_account("camden-member", camden="member")
    outsider = make_account("hackney-editor", hackney="editor")
    slug = tab.dataset("private-counts", private=True)
    rid = tab.upload(slug, "counts.csv", csv_bytes(["a"], [[1], [2]]))["id"]
    for headers in ({}, outsider.headers):
        hidden = tab.action("datastore_search", headers=headers, resource_id=rid)
        assert hidden.status_code == 404
        assert tab.client.get(f"/datastore/dump/{rid}", headers=headers).status_code == 404
        assert tab.action("datastore_info", headers=headers, id=rid).status_code == 404
    seen = tab.action("datastore_search", headers=member.headers, resource_id=rid)
    assert seen.status_code == 200 and seen.json()["result"]["total"] == 2
    assert tab.client.get(f"/datastore/dump/{rid}", headers=member.headers).status_code == 200


def test_dumps_in_every_format_are_the_whole_table(boroughs, tmp_path):
    tab, _, rid = boroughs
    as_csv = tab.client.get(f"/datastore/dump/{rid}")
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.headers["content-disposition"].startswith(f'attachment; filename="{rid}.csv"')
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert len(rows) == 8 and rows[0]["borough"] == "Camden" and rows[4]["recorded"] == "2011-03-26T23:00:00"
    with_bom = tab.client.get(f"/datastore/dump/{rid}", params={"bom": "true", "format": "tsv"})
    assert with_bom.content.startswith("\ufeff_id\tborough".encode())
    as_json = tab.client.get(f"/datastore/dump/{rid}", params={"format": "json"}).json()
    assert as_json["fields"][:2] == [{"id": "_id", "type": "int"}, {"id": "borough", "type": "text"}]
    assert len(as_json["records"]) == 8 and as_json["records"][7][:2] == [8, "City of London"]
    parquet = tab.client.get(f"/datastore/dump/{rid}", params={"format": "parquet"})
    path = tmp_path / "dump.parquet"
    path.write_bytes(parquet.content)
    conn = duckdb.connect()
    assert conn.execute(f"SELECT count(*), sum(population) FROM '{path}'").fetchone() == (8, 2018969)
    assert conn.execute(f"SELECT typeof(recorded) FROM '{path}' LIMIT 1").fetchone() == ("TIMESTAMP",)
    conn.close()
    picked = tab.client.get(f"/datastore/dump/{rid}", params={"q": "hackney", "fields": "borough,year",
                                                               "sort": "year desc"})
    assert picked.text.splitlines() == ["borough,year", "Hackney,2021", "Hackney,2011"]
    assert tab.client.get(f"/datastore/dump/{rid}", params={"format": "xml"}).status_code == 422
    assert not any(loader_files(tab))  # nothing is left behind in the work directory


def loader_files(tab) -> list:  # type: ignore[no-untyped-def]
    from smartlondon.catalogue.tabular.loader import store_for

    return [p for p in store_for(tab.settings).work_dir.iterdir() if p.name.startswith("dump-")]


def test_big_dumps_stream_in_order(tab):
    n = 60_000
    slug = tab.dataset()
    rid = tab.upload(slug, "seq.csv", csv_bytes(["n", "label"], [[i, f"row {i}"] for i in range(n)]))["id"]
    with tab.client.stream("GET", f"/datastore/dump/{rid}", params={"format": "json"}) as response:
        chunks = [chunk for chunk in response.iter_bytes()]
    assert len(chunks) > 1  # streamed, not one body
    records = json.loads(b"".join(chunks))["records"]
    assert len(records) == n and records[-1] == [n, n - 1, f"row {n - 1}"]


def test_the_ckanapi_client_uploads_then_queries_a_table(db, tmp_path):
    """The real ``ckanapi`` client against a running server: upload the real LAQN site list, then query it."""
    from ckanapi import NotFound, RemoteCKAN, ValidationError

    from tests.catalogue.live_server import serving
    from tests.conftest import SHARED_DATA

    sites = SHARED_DATA / "air-quality" / "laqn-sites.csv"
    with serving(db, tmp_path / "live", datastore_sql_enabled=True, datastore_workers=0) as server:
        token = server.token("loader", camden="editor")
        with RemoteCKAN(server.url, apikey=token) as ckan:
            ckan.action.package_create(name="laqn-sites", title="LAQN monitoring sites", owner_org="camden")
            with sites.open("rb") as handle:
                res = ckan.action.resource_create(package_id="laqn-sites", name="Sites", upload=handle)
            assert ckan.action.resource_show(id=res["id"])["datastore_active"] is True
            found = ckan.action.datastore_search(resource_id=res["id"], filters={"@SiteCode": "MY1"},
                                                 fields=["@SiteName", "@LocalAuthorityName", "@Latitude"])
            assert found["records"] == [{"@SiteName": "Westminster - Marylebone Road",
                                         "@LocalAuthorityName": "Westminster", "@Latitude": 51.52254}]
            info = ckan.action.datastore_info(id=res["id"])
            assert {f["id"]: f["type"] for f in info["fields"]}["@DateOpened"] == "timestamp"
            camden = ckan.action.datastore_search_sql(
                sql=f'SELECT count(*) AS n FROM "{res["id"]}" WHERE "@LocalAuthorityName" = \'Camden\'')
            assert camden["records"][0]["n"] >= 1
            with pytest.raises(ValidationError):
                ckan.action.datastore_search(resource_id=res["id"], sort="nowhere desc")
            with pytest.raises(NotFound):
                ckan.action.datastore_search(resource_id="not-a-resource")
