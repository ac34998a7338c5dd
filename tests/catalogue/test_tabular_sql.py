"""datastore_search_sql: opt-in, one read-only SELECT over public tables, a time limit and a row cap."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from smartlondon.app import create_app
from tests.catalogue.tabular_support import ROWS_MAX, Tab, csv_bytes, tab, tab_settings  # noqa: F401  (fixture)


@pytest.fixture
def tables(tab):  # type: ignore[no-untyped-def]
    """A public table of sites, a public table of readings, and a private table; returns their ids."""
    public = tab.dataset("sites")
    sites = tab.upload(public, "sites.csv", csv_bytes(["code", "name", "borough"], [
        ["BG1", "Rush Green", "Barking and Dagenham"], ["CD1", "Swiss Cottage", "Camden"],
        ["MY1", "Marylebone Road", "Westminster"]]))["id"]
    readings = tab.upload(public, "readings.csv", csv_bytes(["site", "no2"], [
        ["BG1", 20.5], ["CD1", 41.0], ["CD1", 39.0], ["MY1", 80.25]]))["id"]
    secret = tab.dataset("secret-sites", private=True)
    hidden = tab.upload(secret, "secret.csv", csv_bytes(["code", "note"], [["X1", "confidential"]]))["id"]
    return tab, sites, readings, hidden


def sql(tab, query: str):  # type: ignore[no-untyped-def]
    return tab.action("datastore_search_sql", sql=query)


def refused(tab, query: str, status: int) -> str:  # type: ignore[no-untyped-def]
    res = sql(tab, query)
    assert res.status_code == status, (query, res.text)
    assert res.json()["success"] is False
    return res.text


def test_a_select_with_a_join_and_aggregates_works(tables):
    tab, sites, readings, _ = tables
    res = sql(tab, f'SELECT s.name, avg(r.no2) AS mean_no2 FROM "{sites}" s JOIN "{readings}" r ON r.site = s.code '
                   'GROUP BY s.name ORDER BY mean_no2 DESC;')
    assert res.status_code == 200, res.text
    result = res.json()["result"]
    assert result["fields"] == [{"id": "name", "type": "text"}, {"id": "mean_no2", "type": "numeric"}]
    assert result["records"] == [{"name": "Marylebone Road", "mean_no2": 80.25},
                                 {"name": "Swiss Cottage", "mean_no2": 40.0}, {"name": "Rush Green", "mean_no2": 20.5}]
    assert "records_truncated" not in result
    ctes = sql(tab, f'WITH busy AS (SELECT site FROM "{readings}" WHERE no2 > 40) SELECT count(*) AS n FROM busy')
    assert ctes.json()["result"]["records"] == [{"n": 2}]
    as_get = tab.client.get("/api/3/action/datastore_search_sql", params={"sql": f'SELECT code FROM "{sites}" LIMIT 1'})
    assert as_get.status_code == 200 and as_get.json()["result"]["records"] == [{"code": "BG1"}]


REFUSED = [
    ('SELECT 1; SELECT 2', 409, "not a single statement"),
    ('SELECT * FROM "{sites}"; DROP TABLE "{sites}"', 409, "not a single statement"),
    ('DROP TABLE "{sites}"', 403, "Only SELECT"),
    ('DELETE FROM "{sites}"', 403, "Only SELECT"),
    ('CREATE TABLE x AS SELECT 1', 403, "Only SELECT"),
    ("COPY \"{sites}\" TO '/tmp/stolen.csv'", 403, "Only SELECT"),
    ("ATTACH '/tmp/other.duckdb' AS other", 403, "Only SELECT"),
    ("INSTALL httpfs", 403, "Only SELECT"),
    ("PRAGMA database_list", 403, "Only SELECT"),
    ("SET enable_external_access = true", 403, "Only SELECT"),
    ("EXPORT DATABASE '/tmp/out'", 403, "Only SELECT"),
    ("CALL duckdb_settings()", 403, "Only SELECT"),
    ("SELECT * FROM read_csv('/etc/passwd')", 403, "Table functions"),
    ("SELECT * FROM '/etc/passwd'", 403, "Not authorized"),
    ("SELECT * FROM read_text('/etc/hostname')", 403, "Table functions"),
    ("SELECT * FROM query('SELECT 1')", 403, "Table functions"),
    ("SELECT * FROM duckdb_tables()", 403, "Table functions"),
    ("SHOW TABLES", 403, "SHOW"),
    ("SELECT * FROM information_schema.tables", 403, "without a schema"),
    ('SELECT * FROM store.main."{sites}"', 403, "without a schema"),
    ("SELECT current_setting('temp_directory')", 403, "current_setting"),
    ('SELECT * FROM "{hidden}"', 403, "Not authorized"),
    ('SELECT * FROM "{sites}" WHERE code IN (SELECT code FROM "{hidden}")', 403, "Not authorized"),
    ('SELECT * FROM (WITH "{hidden}" AS (SELECT 1) SELECT 1) AS a, "{hidden}"', 403, "Not authorized"),
    ("SELECT * FROM nonexistent_table", 403, "Not authorized"),
    ("SELEC 1", 409, "syntax error"),
]


def test_anything_but_one_select_over_public_tables_is_refused(tables):
    tab, sites, _, hidden = tables
    for query, status, says in REFUSED:
        text = refused(tab, query.format(sites=sites, hidden=hidden), status)
        assert says in text, (query, text)
    assert tab.search(resource_id=sites, limit=0)["total"] == 3  # and nothing was changed
    assert not Path("/tmp/stolen.csv").exists()


def test_a_slow_query_is_stopped_at_the_time_limit(tables):
    tab, sites, _, _ = tables
    res = sql(tab, f'SELECT count(*) FROM "{sites}", range(100000) a, range(100000) b, range(1000) c')
    assert res.status_code == 409 and "took too long" in res.text


def test_results_are_capped_and_say_so(tables):
    tab, sites, _, _ = tables
    result = sql(tab, f'SELECT a.code, b.range FROM "{sites}" a, range(1000) b').json()["result"]
    assert len(result["records"]) == ROWS_MAX and result["records_truncated"] is True


def test_sql_is_off_unless_the_site_turns_it_on(settings, db, editor):
    app = create_app(tab_settings(settings, datastore_sql_enabled=False), db)
    with TestClient(app) as client:
        t = Tab(client, app.state.settings, db, editor.headers)
        rid = t.upload(t.dataset(), "a.csv", csv_bytes(["a"], [[1]]))["id"]
        res = t.action("datastore_search_sql", sql=f'SELECT * FROM "{rid}"')
        assert res.status_code == 403 and res.json()["error"]["__type"] == "Authorization Error"
        assert "not enabled" in res.json()["error"]["message"]
        assert replace(app.state.settings).datastore_sql_enabled is False
