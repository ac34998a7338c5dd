"""$count=true in the standard's collections: exact where cheap, a declared estimate on big whole sets.

A whole, unfiltered entity set whose table the database's statistics say is bigger than the
threshold (1,000,000 rows; lowered here) answers the statistics' figure with
``"@iot.countEstimated": true`` beside ``@iot.count``; any filtered collection, any collection under
an entity (``Datastreams(1)/Observations``, an index-only count) and any small set is exact and
carries no annotation.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from smartlondon.core.db import Database
from smartlondon.sensors import counting
from smartlondon.sensors.models import Observation
from tests.sensors.sta_support import Network, build_network


@pytest.fixture
def network(db: Database) -> Network:
    return build_network(db)


def _analyze(db: Database) -> None:
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


def _observations(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Observation))


def _add_three(db: Database, network: Network) -> None:
    stream, feature = network.datastreams["MY1/NO2"], network.features["MY1"]
    with db.session() as session:
        for hour in range(3):
            when = datetime(2022, 12, 31, hour, tzinfo=timezone.utc)
            session.add(Observation(datastream_id=stream, feature_of_interest_id=feature,
                                    phenomenon_time_start=when, result=1.0, result_number=1.0))


def test_small_sets_are_counted_exactly(client: TestClient, network: Network, db: Database) -> None:
    _analyze(db)
    body = client.get("/sta/v1.1/Observations?$count=true&$top=1").json()
    assert body["@iot.count"] == _observations(db) and "@iot.countEstimated" not in body
    things = client.get("/sta/v1.1/Things?$count=true").json()
    assert things["@iot.count"] == 2 and "@iot.countEstimated" not in things


def test_a_big_whole_set_answers_the_declared_estimate(client: TestClient, network: Network, db: Database,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(counting, "ESTIMATE_THRESHOLD", 10)
    _analyze(db)
    analysed = _observations(db)
    _add_three(db, network)   # the statistics do not know about these yet
    body = client.get("/sta/v1.1/Observations?$count=true&$top=2").json()
    assert body["@iot.count"] == analysed and body["@iot.countEstimated"] is True
    assert len(body["value"]) == 2
    refs = client.get("/sta/v1.1/Observations/$ref?$count=true&$top=1").json()
    assert refs["@iot.count"] == analysed and refs["@iot.countEstimated"] is True
    # what the standard counts exactly stays exact: filtered, and under one entity
    my1 = network.datastreams["MY1/NO2"]
    filtered = client.get("/sta/v1.1/Observations?$count=true&$filter=id gt 0").json()
    assert filtered["@iot.count"] == analysed + 3 and "@iot.countEstimated" not in filtered
    one = client.get(f"/sta/v1.1/Datastreams({my1})/Observations?$count=true&$top=1").json()
    assert one["@iot.count"] == len(network.values["MY1/NO2"]) + 3 and "@iot.countEstimated" not in one
    # below the threshold the exact COUNT(*) is answered
    monkeypatch.setattr(counting, "ESTIMATE_THRESHOLD", 10_000)
    exact = client.get("/sta/v1.1/Observations?$count=true&$top=1").json()
    assert exact["@iot.count"] == analysed + 3 and "@iot.countEstimated" not in exact


def test_count_false_or_absent_gives_no_count(client: TestClient, network: Network) -> None:
    assert "@iot.count" not in client.get("/sta/v1.1/Observations?$count=false&$top=1").json()
    assert "@iot.count" not in client.get("/sta/v1.1/Observations?$top=1").json()
    bad = client.get("/sta/v1.1/Observations?$count=maybe")
    assert bad.status_code == 400 and "$count must be true or false" in bad.json()["message"]


def test_the_landing_page_declares_the_extensions(client: TestClient) -> None:
    conformance = client.get("/sta/v1.1").json()["serverSettings"]["conformance"]
    for name in ("archive", "latest-expand", "estimated-count"):
        assert f"https://smartlondon.example/spec/sta-ext/{name}" in conformance
