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
    report = _archive(db, settings)
    assert report.segments == 4 and report.rows > 50
    archived = _everywhere(client, network)
    archive.restore(db, settings.archive_dir)
    restored = _everywhere(client, network)
    for name in before:
        assert _rounded(archived[name]) == _rounded(restored[name]) == _rounded(before[name]), name
    assert len(archived["top-pages"]) > 5 and len(archived["foi-pages"]) == 9


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
