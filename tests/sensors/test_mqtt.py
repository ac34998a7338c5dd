"""The MQTT extension of SensorThings API v1.1 (conformance classes "MQTT create" and "MQTT receive").

These tests talk to a real Mosquitto (``SMARTLONDON_TEST_MQTT_URL``, default 127.0.0.1:1883) and
store through the real service, on SQLite and PostgreSQL. Topics are fixed by the standard, so each
test tags its Observations with a token of its own (``parameters.run``) and looks only for those.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import paho.mqtt.client as paho
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import select

from smartlondon.app import create_app
from smartlondon.core import events
from smartlondon.core.db import Database
from smartlondon.core.observability import REGISTRY
from smartlondon.sensors import mqtt, service
from smartlondon.sensors.models import Observation
from smartlondon.settings import Settings
from tests.sensors.mqtt_support import (
    BROKER,
    BROKER_URL,
    BrokerProxy,
    Listener,
    Publisher,
    unique_client_id,
    wait_until,
)

STA = "http://testserver/sta/v1.1"


# --- the world a test needs -------------------------------------------------------------------

@dataclass
class Station:
    """A Thing with one Datastream (and its Sensor and ObservedProperty) and a FeatureOfInterest."""

    thing: int
    datastream: int
    feature: int


def make_station(db: Database, name: str = "Marylebone Road") -> Station:
    """Create a monitoring station through the service, as an HTTP client would."""
    with db.session() as session:
        thing = service.create_from_path(session, "Things", {
            "name": name, "description": "a kerbside air quality monitor",
            "Locations": [{"name": name, "description": "the monitor's site", "encodingType": "application/geo+json",
                           "location": {"type": "Point", "coordinates": [-0.1546, 51.5225]}}],
            "Datastreams": [{
                "name": f"NO2 at {name}", "description": "hourly mean nitrogen dioxide",
                "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
                "unitOfMeasurement": {"name": "microgram per cubic metre", "symbol": "ug/m3",
                                      "definition": "http://www.qudt.org/qudt/owl/1.0.0/unit/Instances.html"},
                "Sensor": {"name": "chemiluminescence analyser", "description": "reference NO2 analyser",
                           "encodingType": "text/html", "metadata": "https://www.londonair.org.uk"},
                "ObservedProperty": {"name": "NO2", "description": "nitrogen dioxide",
                                     "definition": "http://vocab.nerc.ac.uk/collection/P01/current/NDAZ/"},
            }],
        }, STA)
        thing_id = thing["@iot.id"]
        stream = service.create_from_path(session, f"Things({thing_id})/Datastreams", {
            "name": f"PM2.5 at {name}", "description": "hourly mean PM2.5",
            "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "unitOfMeasurement": {"name": "microgram per cubic metre", "symbol": "ug/m3",
                                  "definition": "http://www.qudt.org/qudt/owl/1.0.0/unit/Instances.html"},
            "Sensor": {"name": "BAM 1020", "description": "beta attenuation monitor",
                       "encodingType": "text/html", "metadata": "https://www.londonair.org.uk"},
            "ObservedProperty": {"name": "PM2.5", "description": "fine particulate matter",
                                 "definition": "http://vocab.nerc.ac.uk/collection/P01/current/PM25/"},
        }, STA)
        feature = service.create_from_path(session, "FeaturesOfInterest", {
            "name": name, "description": "the air at the monitor", "encodingType": "application/geo+json",
            "feature": {"type": "Point", "coordinates": [-0.1546, 51.5225]},
        }, STA)
    return Station(thing_id, stream["@iot.id"], feature["@iot.id"])


def stored(db: Database, run: str) -> list[Observation]:
    """This test's Observations, in the order they were stored."""
    with db.session() as session:
        rows = session.scalars(select(Observation).order_by(Observation.id)).all()
        return [row for row in rows if (row.parameters or {}).get("run") == run]


def observation(run: str, result: Any, hour: int = 10, **more: Any) -> dict[str, Any]:
    """An Observation's JSON, tagged with the test's token."""
    return {"phenomenonTime": f"2023-01-01T{hour % 24:02d}:00:00Z", "result": result,
            "parameters": {"run": run}, **more}


def counter(name: str, **labels: str) -> float:
    """The current value of a Prometheus counter."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def forget_session(client_id: str) -> None:
    """Make the broker drop a test bridge's persistent session (and any messages it holds)."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    client.connect(BROKER.host, BROKER.port, clean_start=True, properties=props)
    client.loop_start()
    wait_until(client.is_connected, 10)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def run() -> str:
    """A token of this test's own, in every Observation it publishes."""
    return uuid.uuid4().hex


@pytest.fixture
def mqtt_settings(settings: Settings) -> Iterator[Settings]:
    """Settings that switch the bridge on, with a session of this test's own."""
    chosen = replace(settings, mqtt_url=BROKER_URL, mqtt_client_id=unique_client_id("bridge"))
    yield chosen
    forget_session(chosen.mqtt_client_id)


@pytest.fixture
def served(mqtt_settings: Settings, db: Database) -> Iterator[tuple[TestClient, mqtt.MqttBridge]]:
    """The application as `serve` runs it with a broker configured: HTTP client and the running bridge."""
    app = create_app(mqtt_settings, db)
    with TestClient(app) as client:
        bridge: mqtt.MqttBridge = app.state.mqtt_bridge
        assert bridge.wait_ready(10), "the bridge did not connect and subscribe to the broker"
        yield client, bridge


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    """A sensor publishing to the broker."""
    pub = Publisher()
    yield pub
    pub.close()


# --- topics and settings (no broker needed) -------------------------------------------------------

def test_a_new_observation_goes_to_its_entity_set_and_parents_navigation_sets() -> None:
    entity = {"@iot.id": 7, "result": 41.2, "phenomenonTime": "2023-01-01T10:00:00Z"}
    messages = mqtt.notification_messages("Observations", 7, "create", entity, [],
                                          {"Datastreams": 5, "FeaturesOfInterest": 3})
    assert messages == [("v1.1/Observations", entity), ("v1.1/Datastreams(5)/Observations", entity),
                        ("v1.1/FeaturesOfInterest(3)/Observations", entity)]


def test_an_update_goes_to_the_entity_and_each_changed_property_and_select_topics_get_only_their_properties() -> None:
    entity = {"@iot.id": 1, "name": "Marylebone Road", "description": "kerbside", "properties": {"borough": "Westminster"}}
    selects = mqtt.parse_select_topics("v1.1/Things(1)?$select=name,@iot.id  v1.1/Things?$select=name")
    messages = mqtt.notification_messages("Things", 1, "update", entity, ["name", "properties"], {}, selects)
    assert messages == [("v1.1/Things(1)", entity), ("v1.1/Things(1)/name", {"name": "Marylebone Road"}),
                        ("v1.1/Things(1)/properties", {"properties": {"borough": "Westminster"}}),
                        ("v1.1/Things(1)?$select=name,@iot.id", {"name": "Marylebone Road", "@iot.id": 1})]
    created = mqtt.notification_messages("Things", 2, "create", entity, None, None, selects)
    assert ("v1.1/Things?$select=name", {"name": "Marylebone Road"}) in created
    assert not any(topic.startswith("v1.1/Things(1)") for topic, _ in created)


def test_broker_urls_and_select_topics_are_checked_with_a_message_saying_what_is_wrong() -> None:
    assert mqtt.BrokerAddress.parse("mqtts://sensor:secret@broker.london.gov.uk").port == 8883
    assert mqtt.BrokerAddress.parse("mqtts://sensor:secret@broker.london.gov.uk").public == \
        "mqtts://broker.london.gov.uk:8883"
    with pytest.raises(ValueError, match="mqtt://host:1883"):
        mqtt.BrokerAddress.parse("http://127.0.0.1:1883")
    with pytest.raises(ValueError, match="not a topic like"):
        mqtt.parse_select_topics("v1.1/Observations?$filter=result gt 3")
    assert mqtt.server_settings("")["conformance"] == []
    assert mqtt.server_settings(BROKER_URL)["endpoints"][mqtt.CREATE_CONFORMANCE] == {"endpoints": [BROKER.public]}


# --- switched off -----------------------------------------------------------------------------

def test_with_no_broker_configured_no_bridge_runs_and_http_serves(db: Database, settings: Settings) -> None:
    assert settings.mqtt_url == ""
    app = create_app(settings, db)
    with TestClient(app) as client:
        assert not hasattr(app.state, "mqtt_bridge")
        assert mqtt._BRIDGES == []
        assert mqtt._publish_change not in events._after.get("sta.changed", [])  # nothing to build notifications for
        assert client.get("/healthz").status_code == 200
        assert mqtt.CREATE_CONFORMANCE not in client.get("/sta/v1.1").json()["serverSettings"]["conformance"]
    station = make_station(db)  # changes still commit: nothing waits for a broker
    with db.session() as session:
        created = service.create_from_path(session, f"Datastreams({station.datastream})/Observations",
                                           observation("off", 12.5), STA)
    assert created["result"] == 12.5


def test_a_broker_url_that_is_not_mqtt_stops_the_app_with_a_clear_message(db: Database, settings: Settings) -> None:
    with pytest.raises(ValueError, match="SMARTLONDON_MQTT_URL must look like mqtt://"):
        create_app(replace(settings, mqtt_url="http://127.0.0.1:1883"), db)


# --- MQTT create ------------------------------------------------------------------------------

def test_observations_are_created_through_each_create_topic(db: Database, served, publisher: Publisher, run: str) -> None:
    station = make_station(db)
    publisher.send_and_wait(f"v1.1/Datastreams({station.datastream})/Observations", observation(run, 1.5, 1))
    publisher.send_and_wait("v1.1/Observations",
                            observation(run, 2.5, 2, Datastream={"@iot.id": station.datastream}))
    publisher.send_and_wait(f"v1.1/FeaturesOfInterest({station.feature})/Observations",
                            observation(run, 3.5, 3, Datastream={"@iot.id": station.datastream}))
    rows = wait_until(lambda: len(stored(db, run)) == 3 and stored(db, run))
    assert [row.result for row in rows] == [1.5, 2.5, 3.5]
    assert {row.datastream_id for row in rows} == {station.datastream}
    assert rows[2].feature_of_interest_id == station.feature
    client, _ = served
    landing = client.get("/sta/v1.1").json()["serverSettings"]
    assert {mqtt.CREATE_CONFORMANCE, mqtt.RECEIVE_CONFORMANCE} <= set(landing["conformance"])
    assert landing[mqtt.CREATE_CONFORMANCE] == {"endpoints": [BROKER.public]}
    latest = client.get(f"/sta/v1.1/Datastreams({station.datastream})/Observations",
                        params={"$orderby": "phenomenonTime desc", "$top": 1})
    assert latest.status_code == 200
    assert latest.json()["value"][0]["result"] == 3.5


def test_a_burst_of_1000_observations_for_one_datastream_is_stored_in_the_order_published(
        db: Database, served, publisher: Publisher, run: str) -> None:
    station = make_station(db)
    topic = f"v1.1/Datastreams({station.datastream})/Observations"
    infos = [publisher.send(topic, observation(run, n, n)) for n in range(1000)]
    for info in infos:
        info.wait_for_publish(20)
    rows = wait_until(lambda: len(stored(db, run)) == 1000 and stored(db, run), timeout=60)
    assert [row.result for row in rows] == list(range(1000))


def test_plain_messages_are_stored_exactly_as_the_same_create_over_the_service_would_store_them(
        db: Database, served, publisher: Publisher) -> None:
    """What most sensors send (only phenomenonTime, result, maybe resultTime) takes the bridge's inline
    check; what it does not vouch for (a time with no offset, a string result) goes the general way.
    Either way each Observation, and its Datastream's time span, reads back as if it had been created
    through ``create_from_path`` (an HTTP POST)."""
    over_mqtt, reference = make_station(db, "Oxford Street"), make_station(db, "Euston Road")
    messages = [
        {"phenomenonTime": "2023-05-01T10:00:00+01:00", "result": 41},
        {"phenomenonTime": "2023-05-01T10:30:00Z", "result": 42.5, "resultTime": "2023-05-01T10:31:05.25Z"},
        {"result": 7.25, "phenomenonTime": "2023-05-01T11:00:00.5Z", "resultTime": None},
        {"phenomenonTime": "2023-05-01T12:00:00", "result": 43.0},
    ]
    for message in messages:
        publisher.send_and_wait(f"v1.1/Datastreams({over_mqtt.datastream})/Observations", message)
    publisher.send_and_wait("v1.1/Observations", {"phenomenonTime": "2023-05-01T13:00:00Z", "result": 44.75,
                                                  "Datastream": {"@iot.id": over_mqtt.datastream}})
    with db.session() as session:
        for message in messages:
            service.create_from_path(session, f"Datastreams({reference.datastream})/Observations", message, STA)
        service.create_from_path(session, "Observations", {"phenomenonTime": "2023-05-01T13:00:00Z", "result": 44.75,
                                                            "Datastream": {"@iot.id": reference.datastream}}, STA)
    client, _ = served

    def shown(stream: int) -> list[dict[str, Any]]:
        body = client.get(f"/sta/v1.1/Datastreams({stream})/Observations",
                          params={"$orderby": "id", "$expand": "FeatureOfInterest($select=name)"}).json()
        return [{k: v for k, v in o.items() if "@iot" not in k and k != "FeatureOfInterest"}
                | {"foi": o["FeatureOfInterest"]["name"]} for o in body["value"]]

    wait_until(lambda: len(shown(over_mqtt.datastream)) == 5)
    stored_over_mqtt, stored_directly = shown(over_mqtt.datastream), shown(reference.datastream)
    assert [o["result"] for o in stored_over_mqtt] == [41, 42.5, 7.25, 43.0, 44.75]
    assert [o["foi"] for o in stored_over_mqtt] == ["Oxford Street"] * 5  # generated from the Thing's Location
    assert [o | {"foi": ""} for o in stored_over_mqtt] == [o | {"foi": ""} for o in stored_directly]
    span = [client.get(f"/sta/v1.1/Datastreams({s})").json() for s in (over_mqtt.datastream, reference.datastream)]
    assert span[0]["phenomenonTime"] == span[1]["phenomenonTime"]
    assert span[0]["resultTime"] == span[1]["resultTime"]


def test_qos1_messages_published_while_the_bridge_is_away_are_stored_when_it_returns(
        db: Database, mqtt_settings: Settings, publisher: Publisher, run: str) -> None:
    station = make_station(db)
    first = mqtt.bridge_for(mqtt_settings, db)
    first.start()
    assert first.wait_ready(10)
    first.stop()  # the broker keeps the session, with its subscriptions
    topic = f"v1.1/Datastreams({station.datastream})/Observations"
    for n in range(20):
        publisher.send_and_wait(topic, observation(run, n, n), qos=1)
    assert stored(db, run) == []
    second = mqtt.bridge_for(mqtt_settings, db)  # the same client id: the same session
    second.start()
    try:
        rows = wait_until(lambda: len(stored(db, run)) == 20 and stored(db, run))
        assert [row.result for row in rows] == list(range(20))
    finally:
        second.stop()


# --- malformed messages -----------------------------------------------------------------------

def test_malformed_messages_are_rejected_counted_and_reported_and_the_stream_goes_on(
        db: Database, served, publisher: Publisher, run: str) -> None:
    station = make_station(db)
    errors = Listener(mqtt.ERROR_TOPIC)
    before = {reason: counter("smartlondon_sta_mqtt_rejected_total", reason=reason)
              for reason in ("not_json", "invalid", "not_found", "topic")}
    stream = f"v1.1/Datastreams({station.datastream})/Observations"
    try:
        sends = [
            (stream, observation(run, 1, 1)),
            (stream, b"{'result': 2"),                                   # not JSON
            (stream, observation(run, 3, 3)),
            (stream, [observation(run, 4, 4)]),                          # not one object
            (stream, observation(run, 5, 5, phenomenonTime="yesterday")),  # wrong type
            ("v1.1/Datastreams(999999)/Observations", observation(run, 6, 6)),  # no such Datastream
            ("v1.1/Observations", observation(run, 7, 7)),               # no Datastream at all
            (f"v1.1/Things({station.thing})/Observations", observation(run, 8, 8)),  # not a create topic
            (stream, observation(run, 9, 9)),
        ]
        for topic, payload in sends:
            publisher.send(topic, payload)
        publisher.send_and_wait(stream, observation(run, 10, 10))
        reports = errors.wait_for(mqtt.ERROR_TOPIC, lambda p: p["topic"].startswith("v1.1/"), count=6)
        rows = wait_until(lambda: len(stored(db, run)) == 4 and stored(db, run))
    finally:
        errors.close()
    assert [row.result for row in rows] == [1, 3, 9, 10]  # the good ones, in order; nothing of the bad
    reasons = sorted(report.json["reason"] for report in reports)
    assert reasons == ["invalid", "invalid", "not_found", "not_json", "not_json", "topic"]
    missing = next(r.json for r in reports if r.json["topic"] == "v1.1/Datastreams(999999)/Observations")
    assert "999999" in missing["message"] or "Datastream" in missing["message"]
    after = {reason: counter("smartlondon_sta_mqtt_rejected_total", reason=reason) for reason in before}
    assert {reason: after[reason] - before[reason] for reason in before} == \
        {"not_json": 2, "invalid": 2, "not_found": 1, "topic": 1}
    client, _ = served
    assert 'smartlondon_sta_mqtt_rejected_total{reason="not_json"}' in client.get("/metrics").text


# --- MQTT receive -----------------------------------------------------------------------------

def test_subscribers_receive_new_observations_on_the_entity_set_and_navigation_topics(
        db: Database, served, publisher: Publisher, run: str) -> None:
    station = make_station(db)
    ours = lambda payload: (payload.get("parameters") or {}).get("run") == run  # noqa: E731
    listener = Listener("v1.1/Observations", f"v1.1/Datastreams({station.datastream})/Observations",
                        f"v1.1/FeaturesOfInterest({station.feature})/Observations")
    try:
        publisher.send_and_wait(f"v1.1/FeaturesOfInterest({station.feature})/Observations",
                                observation(run, 42.0, Datastream={"@iot.id": station.datastream}))
        entity_set = listener.wait_for("v1.1/Observations", ours)
        navigation = listener.wait_for(f"v1.1/Datastreams({station.datastream})/Observations", ours)
        by_feature = listener.wait_for(f"v1.1/FeaturesOfInterest({station.feature})/Observations",
                                       lambda p: ours(p) and "@iot.id" in p)
    finally:
        listener.close()
    row = stored(db, run)[0]
    for received in (entity_set[0], navigation[0], by_feature[0]):
        assert received.qos == 1
        assert received.json["@iot.id"] == row.id
        assert received.json["result"] == 42.0
        assert received.json["@iot.selfLink"].endswith(f"/Observations({row.id})")
    assert len(listener.on("v1.1/Observations", ours)) == 1  # the bridge did not take its own notification as a create
    assert len(stored(db, run)) == 1


def test_observations_created_over_http_are_published_too(db: Database, served, run: str) -> None:
    station = make_station(db)
    listener = Listener(f"v1.1/Datastreams({station.datastream})/Observations")
    client, _ = served
    try:
        with db.session() as session:
            created = service.create_from_path(session, f"Datastreams({station.datastream})/Observations",
                                               observation(run, 17.0), STA)
        got = listener.wait_for(f"v1.1/Datastreams({station.datastream})/Observations",
                                lambda p: p.get("@iot.id") == created["@iot.id"])
    finally:
        listener.close()
    assert got[0].json["result"] == 17.0


def test_subscribers_receive_an_updated_entity_and_its_changed_property(db: Database, served) -> None:
    station = make_station(db)
    listener = Listener(f"v1.1/Things({station.thing})", f"v1.1/Things({station.thing})/name",
                        f"v1.1/Things({station.thing})/description")
    try:
        with db.session() as session:
            service.update_at_path(session, f"Things({station.thing})", {"name": "Marylebone Road (MY1)"}, STA)
        whole = listener.wait_for(f"v1.1/Things({station.thing})")
        name = listener.wait_for(f"v1.1/Things({station.thing})/name")
    finally:
        listener.close()
    assert whole[0].json["name"] == "Marylebone Road (MY1)"
    assert whole[0].json["@iot.id"] == station.thing
    assert name[0].json == {"name": "Marylebone Road (MY1)"}
    assert listener.on(f"v1.1/Things({station.thing})/description") == []  # it did not change


def test_configured_select_topics_receive_only_the_selected_properties(
        db: Database, settings: Settings, publisher: Publisher, run: str) -> None:
    chosen = replace(settings, mqtt_url=BROKER_URL, mqtt_client_id=unique_client_id("bridge"),
                     mqtt_select="v1.1/Observations?$select=result,parameters")
    station = make_station(db)
    listener = Listener("v1.1/Observations?$select=result,parameters")
    app = create_app(chosen, db)
    try:
        with TestClient(app):
            assert app.state.mqtt_bridge.wait_ready(10)
            publisher.send_and_wait(f"v1.1/Datastreams({station.datastream})/Observations", observation(run, 8.25))
            got = listener.wait_for("v1.1/Observations?$select=result,parameters",
                                    lambda p: p["parameters"]["run"] == run)
    finally:
        listener.close()
        forget_session(chosen.mqtt_client_id)
    assert got[0].json == {"result": 8.25, "parameters": {"run": run}}


# --- killed ingest ----------------------------------------------------------------------------

INGEST_PROCESS = """
import sys, time
from smartlondon.core.db import Database
from smartlondon.sensors.mqtt import MqttBridge
bridge = MqttBridge(Database(sys.argv[1]), sys.argv[2], base_url=sys.argv[3], client_id=sys.argv[4], batch_size=1)
bridge.start()
assert bridge.wait_ready(10), "not connected"
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def test_an_ingest_process_killed_with_sigkill_loses_no_observation(
        db: Database, mqtt_settings: Settings, publisher: Publisher, run: str) -> None:
    station = make_station(db)
    process = subprocess.Popen([sys.executable, "-c", INGEST_PROCESS, db.url, BROKER_URL, STA,
                                mqtt_settings.mqtt_client_id], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        topic = f"v1.1/Datastreams({station.datastream})/Observations"
        infos = [publisher.send(topic, observation(run, n, n)) for n in range(600)]
        for info in infos:
            info.wait_for_publish(20)  # the broker has every message: from here on none may be lost
        wait_until(lambda: len(stored(db, run)) >= 50, timeout=30)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    before_restart = [row.result for row in stored(db, run)]
    assert len(before_restart) < 600, "the killed process had already stored everything: nothing was tested"
    again = mqtt.bridge_for(mqtt_settings, db)  # the same session: the broker hands over what was not acknowledged
    again.start()
    try:
        wait_until(lambda: {row.result for row in stored(db, run)} == set(range(600)), timeout=60)
    finally:
        again.stop()
    results = [row.result for row in stored(db, run)]
    # a message committed whose acknowledgement had not reached the broker comes again (DUP set): the
    # bridge finds its (client, packet id, digest) in sta_mqtt_delivery and does not store it twice
    assert sorted(results) == list(range(600)), "a message was stored twice or lost"
    assert results[len(before_restart):] == sorted(results[len(before_restart):])  # still in order


# --- losing the broker ------------------------------------------------------------------------

def test_the_bridge_reconnects_when_the_broker_connection_drops_and_goes_on_storing_in_order(
        db: Database, settings: Settings, publisher: Publisher, run: str) -> None:
    station = make_station(db)
    proxy = BrokerProxy()
    chosen = replace(settings, mqtt_url=proxy.url, mqtt_client_id=unique_client_id("bridge"))
    bridge = mqtt.bridge_for(chosen, db)
    bridge.start()
    topic = f"v1.1/Datastreams({station.datastream})/Observations"
    try:
        assert bridge.wait_ready(10)
        for n in range(50):
            publisher.send_and_wait(topic, observation(run, n, n))
        proxy.cut()
        wait_until(lambda: not bridge.ready, timeout=10)
        for n in range(50, 100):  # published while the bridge is cut off: the broker keeps them for its session
            publisher.send_and_wait(topic, observation(run, n, n))
        assert bridge.wait_ready(15), "the bridge did not reconnect"
        rows = wait_until(lambda: len(stored(db, run)) >= 100 and stored(db, run), timeout=30)
    finally:
        bridge.stop()
        proxy.close()
        forget_session(chosen.mqtt_client_id)
    time.sleep(1)  # anything stored twice would show up now
    results = [row.result for row in stored(db, run)]
    # A message whose acknowledgement was lost with the connection comes again (DUP set); it was
    # recorded when stored, so it is acknowledged and not stored twice. None is lost, and the order holds.
    assert results == list(range(100))


def test_with_the_broker_unreachable_http_still_serves_and_the_app_stops_promptly(
        db: Database, settings: Settings) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens here
    app = create_app(replace(settings, mqtt_url=f"mqtt://127.0.0.1:{port}",
                             mqtt_client_id=unique_client_id("bridge")), db)
    started = time.monotonic()
    with TestClient(app) as client:
        assert not app.state.mqtt_bridge.wait_ready(1.5)
        assert client.get("/healthz").status_code == 200
        assert client.get("/sta/v1.1/Things").status_code == 200
    assert time.monotonic() - started < 15
