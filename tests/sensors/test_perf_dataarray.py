"""The fast dataArray ingest path (``service.create_observations``): rows of a Datastream with only
``phenomenonTime``/``result``/``resultTime`` are checked inline and every group of a request goes in
with one INSERT (one COPY on PostgreSQL, written as COPY text). These tests hold it to the general
path: the same rows sent with a component that forces the general checks must be answered and
stored identically, and awkward values must survive the COPY text format.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from smartlondon.core.db import Database
from smartlondon.sensors import service
from smartlondon.sensors.models import Latest, Observation
from tests.sensors.sta_support import Network, build_network

ROOT = "http://testserver/sta/v1.1"
OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
START = datetime(2023, 2, 1, tzinfo=timezone.utc)


def _stream(db: Database, network: Network, name: str, kind: str = "OM_Measurement") -> int:
    with db.session() as session:
        return service.create_from_path(session, "Datastreams", {
            "name": name, "description": "dataArray test", "observationType": OM + kind,
            "unitOfMeasurement": {"name": "microgram per cubic metre", "symbol": "µg/m³",
                                  "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3"},
            "properties": {"species": "NO2"},
            "Thing": {"@iot.id": network.things["MY1"]}, "Sensor": {"@iot.id": network.sensors["NO2"]},
            "ObservedProperty": {"@iot.id": network.observed_properties["NO2"]}}, ROOT)["@iot.id"]


def _rows() -> list[list]:
    """80 rows (enough for COPY on PostgreSQL) mixing what the fast path takes and what it hands on."""
    rows: list[list] = []
    for hour in range(60):
        value: object = 20.0 + (hour * 7) % 30
        if hour in (10, 11):
            value = 600 + hour  # ints, and a spike for QC
        if 30 <= hour < 38:
            value = 41.5  # a flat line
        rows.append([service.format_time(START + timedelta(hours=hour)), value, None])
    rows += [
        ["2023-02-05T01:00:00+01:00", 30.5, "2023-02-05T00:30:00Z"],  # an offset: stored in UTC
        ["2023-02-05T02:00:00z", 31, "2023-02-05T02:00:00.250000+00:00"],
        ["2023-02-05T03:00:00", 32.25, None],                   # no offset: the general path (taken as UTC)
        ["2023-02-05T04:00:00Z/2023-02-05T05:00:00Z", 33.0, None],  # an interval: the general path
        ["2023-02-06", 34.0, None],                             # a date
        [" 2023-02-05T06:00:00Z", 35.0, None],                  # spaces: the general path strips them
        ["not a time", 1.0, None],                              # refused
        ["2023-02-05T07:00:00Z", True, None],                   # refused: a Boolean is not a number
        ["2023-02-05T08:00:00Z", "12", None],                   # refused: a string
        ["2023-02-05T09:00:00Z", None, None],                   # refused: null
        ["2023-02-05T10:00:00Z", 1e300, "not a time"],          # refused: a bad resultTime
        ["2023-02-05T11:00:00Z", -0.0, None],
        ["2023-02-05T12:00:00Z", 1.5e-7, None],
        ["2023-02-05T13:00:00Z", 12345678901234567, None],
        ["2023-02-05T14:00:00.123456Z", 2.5, None],
        ["2023-02-05T05:00:00-05:00", 3.5, None],
        ["2023-02-05T16:00:00Z", 4.5, None],
        ["2023-02-05T17:00:00Z", 5.5],                          # too short: refused
        ["2023-02-05T18:00:00Z", 6.5, None],
        ["2023-02-05T19:00:00Z", 7.5, None],
    ]
    return rows


def _stored(client: TestClient, stream: int) -> list[dict]:
    body = client.get(f"/sta/v1.1/Datastreams({stream})/Observations?$top=1000&$orderby=phenomenonTime,id"
                      "&$select=phenomenonTime,result,resultTime,resultQuality,parameters,validTime").json()
    return body["value"]


def test_fast_rows_are_answered_and_stored_as_the_general_path_does(client: TestClient, db: Database,
                                                                    editor) -> None:  # type: ignore[no-untyped-def]
    network = build_network(db)
    fast, general = _stream(db, network, "fast"), _stream(db, network, "general")
    rows = _rows()
    response = client.post("/sta/v1.1/CreateObservations", headers=editor.headers, json=[
        {"Datastream": {"@iot.id": fast}, "components": ["phenomenonTime", "result", "resultTime"],
         "dataArray": rows},
        # "parameters" is not a fast component: these rows take Writer._observation_row
        {"Datastream": {"@iot.id": general}, "components": ["phenomenonTime", "result", "resultTime", "parameters"],
         "dataArray": [r + [None] if len(r) == 3 else r for r in rows]},
    ])
    assert response.status_code == 201, response.text
    links = response.json()
    first, second = links[:len(rows)], links[len(rows):]
    assert ["error" if x == "error" else "ok" for x in first] == ["error" if x == "error" else "ok" for x in second]
    assert first.count("error") == 6
    ids = [int(x.rsplit("(", 1)[1].rstrip(")")) for x in links if x != "error"]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # one insert, ids in the order of the rows
    assert first[0].startswith(f"{ROOT}/Observations(")
    fast_rows, general_rows = _stored(client, fast), _stored(client, general)
    assert len(fast_rows) == len(rows) - 6
    assert fast_rows == general_rows
    by_time = {r["phenomenonTime"]: r for r in fast_rows}
    assert by_time["2023-02-05T00:00:00Z"]["resultTime"] == "2023-02-05T00:30:00Z"
    assert by_time["2023-02-05T02:00:00Z"]["resultTime"] == "2023-02-05T02:00:00.250000Z"
    assert by_time["2023-02-05T10:00:00Z"]["result"] == 3.5
    assert by_time["2023-02-05T14:00:00.123456Z"]["result"] == 2.5
    assert by_time["2023-02-05T13:00:00Z"]["result"] == 12345678901234567
    assert by_time["2023-02-02T06:00:00Z"]["resultQuality"]["qc"]["flags"] == ["flat_line"]
    assert all(r["resultQuality"]["qc"]["version"] for r in fast_rows)
    assert all(r.get("parameters", {}) == {} for r in fast_rows)
    with db.session() as session:  # the last-value table has the newest of each
        for stream in (fast, general):
            latest = session.get(Latest, stream)
            assert latest is not None and service.format_time(latest.phenomenon_time_start) == "2023-02-06T00:00:00Z"
            assert latest.result == 34.0
        count = session.scalar(select(func.count()).select_from(Observation)
                               .where(Observation.datastream_id.in_([fast, general])))
    assert count == 2 * (len(rows) - 6)


def test_awkward_values_survive_the_copy_text_format(client: TestClient, db: Database,
                                                     editor) -> None:  # type: ignore[no-untyped-def]
    network = build_network(db)
    stream = _stream(db, network, "anything", "OM_Observation")
    odd = ["back\\slash", "tab\there", "new\nline", "cr\rhere", "quote\"s", "unicode µg/m³ ✓", "\\N", "",
           {"nested": ["a\tb", {"c": "d\\e"}], "n": None}, [1, "two", None], None, 0, -1.25, True]
    rows = [[f"2023-03-01T{i // 60:02d}:{i % 60:02d}:00Z", odd[i % len(odd)], {"note": odd[(i + 1) % len(odd)]}]
            for i in range(70)]
    response = client.post("/sta/v1.1/CreateObservations", headers=editor.headers, json=[
        {"Datastream": {"@iot.id": stream}, "components": ["phenomenonTime", "result", "parameters"],
         "dataArray": rows}])
    assert response.status_code == 201, response.text
    assert "error" not in response.json()
    stored = _stored(client, stream)
    assert [r["result"] for r in stored] == [r[1] for r in rows]
    assert [r["parameters"] for r in stored] == [r[2] for r in rows]


def test_a_bad_group_stores_nothing_of_the_request(client: TestClient, db: Database,
                                                   editor) -> None:  # type: ignore[no-untyped-def]
    network = build_network(db)
    stream = _stream(db, network, "first")
    response = client.post("/sta/v1.1/CreateObservations", headers=editor.headers, json=[
        {"Datastream": {"@iot.id": stream}, "components": ["phenomenonTime", "result"],
         "dataArray": [[f"2023-03-01T00:{m:02d}:00Z", 1.0] for m in range(60)]},
        {"Datastream": {"@iot.id": 987654}, "components": ["phenomenonTime", "result"],
         "dataArray": [["2023-03-01T00:00:00Z", 1.0]]}])
    assert response.status_code == 400
    assert "987654" in response.json()["message"]
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Observation)
                              .where(Observation.datastream_id == stream)) == 0


def test_the_first_bad_group_of_a_request_is_the_one_named(client: TestClient, db: Database,
                                                           editor) -> None:  # type: ignore[no-untyped-def]
    # the Datastreams of every group are looked up before any group is checked: a later group's
    # broken link must not be reported ahead of an earlier group's mistake, and nothing is stored
    network = build_network(db)
    stream = _stream(db, network, "first")
    before = client.get(f"/sta/v1.1/Datastreams({stream})/Observations?$count=true&$top=0").json()["@iot.count"]
    response = client.post("/sta/v1.1/CreateObservations", headers=editor.headers, json=[
        {"Datastream": {"@iot.id": stream}, "components": ["phenomenonTime", "result"],
         "dataArray": [["2023-02-01T00:00:00Z", 1.0]]},
        {"Datastream": {"@iot.id": stream}, "components": ["phenomenonTime", "result"], "extra": 1,
         "dataArray": [["2023-02-01T01:00:00Z", 2.0]]},
        {"Datastream": {"@iot.id": "not a number"}, "components": ["phenomenonTime", "result"],
         "dataArray": [["2023-02-01T02:00:00Z", 3.0]]}])
    assert response.status_code == 400
    assert response.json()["message"] == "CreateObservations[1] has unknown member(s) extra."
    after = client.get(f"/sta/v1.1/Datastreams({stream})/Observations?$count=true&$top=0").json()["@iot.count"]
    assert after == before
