"""Archived Observations through every path that lists Observations, not only a Datastream's.

Each test archives the network of ``test_archive`` (December 2022 and the first 12 hours of January
move to Parquet), reads, restores, reads again: the JSON must be the same both times, and the same
as before archiving.
"""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner
from fastapi.testclient import TestClient

from smartlondon.cli import main
from smartlondon.core.db import Database
from smartlondon.sensors import archive
from smartlondon.settings import Settings
from tests.sensors.sta_support import Network
from tests.sensors.test_archive import STA, _archive, _rounded, network  # noqa: F401  (the fixture)


def _chain(client: TestClient, url: str) -> list[dict[str, Any]]:
    pages = []
    while url:
        body = client.get(url.replace("http://testserver", "")).json()
        pages.append(body)
        url = body.get("@iot.nextLink")
    return pages


def _everywhere(client: TestClient, net: Network) -> dict[str, Any]:
    my1 = net.datastreams["MY1/NO2"]
    foi = net.features["MY1"]
    december = client.get(f"{STA}/Observations?$filter=phenomenonTime lt 2023-01-01T00:00:00Z&$top=1&$select=id"
                          ).json()["value"][0]["@iot.id"]
    queries = {
        "top-first-page": f"{STA}/Observations",
        "top-window": f"{STA}/Observations?$filter=phenomenonTime ge 2022-12-31T20:00:00Z and "
                      "phenomenonTime lt 2023-01-01T06:00:00Z&$orderby=phenomenonTime,id",
        "top-filter-order-count": f"{STA}/Observations?$filter=result gt 50&$orderby=result desc,id&$count=true",
        "top-by-stream": f"{STA}/Observations?$filter=Datastream/id eq {my1}&$count=true&$top=10&$skip=20",
        "top-count": f"{STA}/Observations?$count=true&$top=3",
        "top-desc": f"{STA}/Observations?$orderby=phenomenonTime desc&$top=5&$skip=60",
        "top-data-array": f"{STA}/Observations?$resultFormat=dataArray&$filter=year(phenomenonTime) eq 2022",
        "top-expand": f"{STA}/Observations?$top=4&$expand=Datastream($select=id;"
                      "$expand=Observations($top=3;$orderby=phenomenonTime))",
        "top-ref": f"{STA}/Observations/$ref?$filter=phenomenonTime lt 2023-01-01T00:00:00Z&$count=true",
        "foi": f"{STA}/FeaturesOfInterest({foi})/Observations?$count=true",
        "foi-window": f"{STA}/FeaturesOfInterest({foi})/Observations?$filter=phenomenonTime lt "
                      "2023-01-01T03:00:00Z&$orderby=result,id&$select=id,result",
        "expand-datastreams": f"{STA}/Datastreams?$expand=Observations($filter=phenomenonTime lt "
                              "2023-01-01T06:00:00Z;$orderby=result desc,id;$top=5;$count=true)",
        "expand-one": f"{STA}/Datastreams({my1})?$expand=Observations($top=3;$skip=20;$select=id,phenomenonTime)",
        "expand-things": f"{STA}/Things?$expand=Datastreams($select=id;$expand=Observations($select=id,result;"
                         "$top=4;$expand=FeatureOfInterest($select=name)))",
        "expand-latest": f"{STA}/Datastreams?$expand=Observations($top=1;$orderby=phenomenonTime desc)",
        # $filter paths from another entity through Observations
        # (only archived Observations are older than 2023 or carry a note, and only Datastreams(my1) has them)
        "filter-ds-path": f"{STA}/Datastreams?$filter=Observations/phenomenonTime lt 2023-01-01T00:00:00Z"
                          "&$select=id",
        "filter-ds-path-any": f"{STA}/Datastreams?$filter=Observations/any(o: o/phenomenonTime lt "
                              "2023-01-01T00:00:00Z)&$select=id",
        "filter-things-path": f"{STA}/Things?$filter=Datastreams/Observations/parameters/note eq 'December'"
                              "&$select=id",
        "filter-things-any-note": f"{STA}/Things?$filter=Datastreams/any(d: d/Observations/any(o: o/parameters/note "
                                  "eq 'December'))&$select=id",
        "filter-ds-any-dec": f"{STA}/Datastreams?$filter=Observations/any(o: o/phenomenonTime lt "
                             "2023-01-01T00:00:00Z)&$select=id&$count=true",
        "filter-ds-all": f"{STA}/Datastreams?$filter=Observations/all(o: o/phenomenonTime ge "
                         "2023-01-01T00:00:00Z)&$select=id",
        "filter-things-any": f"{STA}/Things?$filter=Datastreams/any(d: d/Observations/any(o: o/result gt 60))"
                             "&$select=id",
        "filter-foi-path": f"{STA}/FeaturesOfInterest?$filter=Observations/phenomenonTime lt "
                           "2023-01-01T00:00:00Z&$select=id",
        "filter-foi-any": f"{STA}/FeaturesOfInterest?$filter=Observations/any(o: o/parameters/note eq 'December')"
                          "&$select=id",
        "filter-expand": f"{STA}/Things?$select=id&$expand=Datastreams($select=id;"
                         "$filter=Observations/any(o: o/result gt 60))",
        "filter-mds": f"{STA}/MultiDatastreams?$filter=Observations/any()&$select=id",
        # nested and other paths to Observations
        "foi-expand": f"{STA}/FeaturesOfInterest?$select=id&$expand=Observations($select=id,result;$top=5;"
                      "$orderby=phenomenonTime;$count=true)",
        "foi-one-expand": f"{STA}/FeaturesOfInterest({foi})?$expand=Observations($filter=phenomenonTime lt "
                          "2023-01-01T00:00:00Z;$select=id)",
        "obs-foi-obs": f"{STA}/Observations?$top=3&$filter=phenomenonTime lt 2023-01-01T00:00:00Z&"
                       "$expand=FeatureOfInterest/Observations($select=id;$top=4;$count=true)",
        "things-ds-obs": f"{STA}/Things?$select=id&$expand=Datastreams/Observations($select=id;$top=2;$skip=40)",
        "mds-obs": f"{STA}/MultiDatastreams({net.multi_datastream})/Observations?$count=true"
                   "&$expand=FeatureOfInterest/Observations($select=id;$top=3;$orderby=phenomenonTime)",
        "mds-expand": f"{STA}/MultiDatastreams?$expand=Observations($select=id),"
                      "Thing/Datastreams/Observations($select=id;$top=2;$orderby=phenomenonTime)",
        # paths through an archived Observation
        "archived-obs-datastream": f"{STA}/Observations({december})/Datastream?$select=id,name",
        "archived-obs-foi-name": f"{STA}/Datastreams({my1})/Observations({december})/FeatureOfInterest/name",
        "archived-obs-foi-obs": f"{STA}/Observations({december})/FeatureOfInterest/Observations?$top=3&$select=id"
                                "&$filter=phenomenonTime lt 2023-01-01T00:00:00Z",
        "top-desc-10": f"{STA}/Observations?$orderby=phenomenonTime desc&$top=10",
        "top-asc-10": f"{STA}/Observations?$orderby=phenomenonTime&$top=10&$count=true",
        "top-count-only": f"{STA}/Observations?$count=true&$top=0",
        "top-count-order": f"{STA}/Observations?$count=true&$orderby=result desc,id&$top=5",
    }
    out: dict[str, Any] = {name: client.get(url).json() for name, url in queries.items()}
    out["top-pages"] = _chain(client, f"{STA}/Observations?$top=17")
    out["foi-pages"] = _chain(client, f"{STA}/FeaturesOfInterest({foi})/Observations?$top=9")
    out["batch"] = client.post(f"{STA}/$batch", json={"requests": [
        {"id": "1", "method": "get", "url": f"Observations?$filter=phenomenonTime lt 2023-01-01T00:00:00Z"}]}).json()
    return out


def test_every_path_answers_the_same_archived_and_restored(db: Database, client: TestClient, settings: Settings,
                                                           network: Network) -> None:
    before = _everywhere(client, network)
    assert before["top-ref"]["@iot.count"] == 30 and before["foi"]["@iot.count"] == 78
    my1 = {"@iot.id": network.datastreams["MY1/NO2"]}
    assert [{"@iot.id": v["@iot.id"]} for v in before["filter-ds-path-any"]["value"]] == [my1]
    assert my1["@iot.id"] not in [v["@iot.id"] for v in before["filter-ds-all"]["value"]]
    assert [v["@iot.id"] for v in before["filter-things-any-note"]["value"]] == [network.things["MY1"]]
    for name in ("filter-ds-path", "filter-things-path", "filter-foi-path"):   # a path through a collection
        assert before[name]["code"] == 400 and "whether any or all members must match" in before[name]["message"]
    assert "Observations/any(o: o/phenomenonTime" in before["filter-ds-path"]["message"]
    report = _archive(db, settings)
    assert report.segments == 4 and report.rows > 50
    archived = _everywhere(client, network)
    archive.restore(db, settings.archive_dir)
    restored = _everywhere(client, network)
    for name in before:
        assert _rounded(archived[name]) == _rounded(restored[name]) == _rounded(before[name]), name
    assert len(archived["top-pages"]) > 5 and len(archived["foi-pages"]) == 9
    assert archived["archived-obs-datastream"]["@iot.id"] == network.datastreams["MY1/NO2"]


def test_an_archived_observation_under_a_feature_of_interest_says_where_to_read_it(
        db: Database, client: TestClient, settings: Settings, network: Network) -> None:
    foi = network.features["MY1"]
    december = client.get(f"{STA}/Observations?$filter=phenomenonTime lt 2023-01-01T00:00:00Z&$top=1").json()
    oid = december["value"][0]["@iot.id"]
    url = f"{STA}/FeaturesOfInterest({foi})/Observations({oid})"
    assert client.get(url).json() == december["value"][0]
    _archive(db, settings)
    refused = client.get(url)
    assert refused.status_code == 501 and f"read it at Observations({oid})" in refused.json()["message"]
    assert client.get(f"{STA}/Observations({oid})").json() == december["value"][0]
    assert client.get(f"{STA}/FeaturesOfInterest({network.features['BL0']})/Observations({oid})").status_code == 404


def test_top_level_reads_only_the_segments_it_can_touch(db: Database, client: TestClient, settings: Settings,
                                                        network: Network, monkeypatch) -> None:
    _archive(db, settings)
    loads: list[int] = []
    real = archive.load
    monkeypatch.setattr(archive, "load", lambda session, folder, found, *bounds: loads.append(len(found)) or real(
        session, folder, found, *bounds))
    hot = client.get(f"{STA}/Observations?$filter=phenomenonTime ge 2023-01-02T00:00:00Z&$count=true").json()
    assert hot["@iot.count"] > 0 and loads == []
    december = client.get(f"{STA}/Observations?$filter=phenomenonTime lt 2023-01-01T00:00:00Z&$count=true").json()
    assert december["@iot.count"] == 30 and loads == [1]   # only the December segment
    loads.clear()
    client.get(f"{STA}/Datastreams?$expand=Observations($filter=phenomenonTime ge 2023-01-02T00:00:00Z)")
    assert loads == []
    first = client.get(f"{STA}/Observations?$top=2").json()
    assert len(first["value"]) == 2 and len(loads) == 1 and loads[0] <= 4
    loads.clear()
    total = client.get(f"{STA}/Observations?$count=true&$top=0").json()
    assert total["@iot.count"] == 178 and loads == [0]   # the hot count plus the manifest's row counts
    newest = client.get(f"{STA}/Observations?$orderby=phenomenonTime desc&$top=10&$count=true").json()
    assert len(newest["value"]) == 10 and newest["@iot.count"] == 178 and loads == [0, 0]   # all hot
    oldest = client.get(f"{STA}/Observations?$orderby=phenomenonTime,id&$top=10").json()
    assert oldest["value"][0]["phenomenonTime"] == "2022-12-30T18:00:00Z" and loads == [0, 0, 1]   # December
    loads.clear()
    client.get(f"{STA}/Datastreams?$filter=Observations/any(o: o/phenomenonTime lt 2023-01-01T00:00:00Z)")
    assert loads == [1]   # the bounds inside an any() prune the manifest too
    client.get(f"{STA}/Datastreams?$filter=Observations/all(o: o/phenomenonTime lt 2023-01-01T00:00:00Z)")
    assert loads == [1, 4]   # an all() is false as soon as any row fails it: every segment


def test_quality_control_refuses_a_range_with_archived_rows(db: Database, settings: Settings, network: Network,
                                                             monkeypatch) -> None:
    _archive(db, settings)
    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SMARTLONDON_ARCHIVE_PATH", str(settings.archive_dir))
    stream = network.datastreams["MY1/NO2"]
    runner = CliRunner()
    refused = runner.invoke(main, ["sensors", "qc", "--datastream", str(stream)])
    assert refused.exit_code != 0
    assert "archived" in refused.output and "sensors restore" in refused.output
    hot_only = runner.invoke(main, ["sensors", "qc", "--datastream", str(stream), "--from", "2023-01-02T00:00:00Z"])
    assert hot_only.exit_code == 0, hot_only.output
    everything = runner.invoke(main, ["sensors", "qc", "--all"])
    assert everything.exit_code != 0 and "archived" in everything.output
