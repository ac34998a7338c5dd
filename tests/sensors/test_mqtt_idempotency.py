"""The MQTT bridge does not store a redelivered message twice (sensors/mqtt.py, ``sta_mqtt_delivery``).

A QoS 1 message whose acknowledgement never reached the broker is sent again with DUP set when the
bridge's session resumes. The bridge records (client id, packet id, SHA-256 of topic and payload) in
the transaction that stores a message, and acknowledges such a redelivery without storing it. These
tests lose acknowledgements on purpose against the real Mosquitto and cut the connection, so the
broker redelivers.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace

from sqlalchemy import func, select

from smartlondon.core.db import Database
from smartlondon.core.observability import REGISTRY
from smartlondon.sensors import mqtt
from smartlondon.settings import Settings
from tests.sensors.mqtt_support import BrokerProxy, Publisher, require_broker, unique_client_id, wait_until
from tests.sensors.test_mqtt import forget_session, make_station, observation, stored


def _duplicates() -> float:
    return REGISTRY.get_sample_value("smartlondon_sta_mqtt_messages_total", {"outcome": "duplicate"}) or 0.0


def test_a_redelivered_message_whose_ack_was_lost_is_acknowledged_and_not_stored_again(
        db: Database, settings: Settings) -> None:
    require_broker()
    run = uuid.uuid4().hex
    station = make_station(db)
    proxy = BrokerProxy()
    chosen = replace(settings, mqtt_url=proxy.url, mqtt_client_id=unique_client_id("bridge"))
    bridge = mqtt.bridge_for(chosen, db)
    real_ack = bridge._ack
    lost: list[int] = []

    def lose_first_acks(item: mqtt.Incoming) -> None:
        if len(lost) < 20:  # stored and committed, but the broker never hears of it
            lost.append(item.mid)
            return
        real_ack(item)

    bridge._ack = lose_first_acks  # type: ignore[method-assign]
    publisher = Publisher()
    before = _duplicates()
    topic = f"v1.1/Datastreams({station.datastream})/Observations"
    try:
        bridge.start()
        assert bridge.wait_ready(10)
        for n in range(30):
            publisher.send_and_wait(topic, observation(run, n, n))
        wait_until(lambda: len(stored(db, run)) >= 30, timeout=30)
        assert len(lost) == 20
        proxy.cut()  # the session resumes on reconnect: the broker sends the 20 unacknowledged again, DUP set
        wait_until(lambda: not bridge.ready, timeout=10)
        assert bridge.wait_ready(15), "the bridge did not reconnect"
        wait_until(lambda: _duplicates() - before >= 20, timeout=30)
        for n in range(30, 40):
            publisher.send_and_wait(topic, observation(run, n, n))
        wait_until(lambda: len(stored(db, run)) >= 40, timeout=30)
        time.sleep(0.5)
    finally:
        bridge.stop()
        publisher.close()
        proxy.close()
        forget_session(chosen.mqtt_client_id)
    assert [row.result for row in stored(db, run)] == list(range(40))  # each once, in order
    assert 20 <= _duplicates() - before <= 30  # the 20 lost, and any ack the cut swallowed
    with db.session() as session:  # one record per packet id of this client
        count = session.scalar(select(func.count()).select_from(mqtt.DELIVERIES)
                               .where(mqtt.DELIVERIES.c.client_id == chosen.mqtt_client_id))
    assert 30 <= count <= 40


def test_a_redelivery_flag_on_a_reused_packet_id_with_other_content_is_stored(
        db: Database, settings: Settings) -> None:
    """The packet id alone does not decide: a different message under a reused id is new."""
    run = uuid.uuid4().hex
    station = make_station(db)
    bridge = mqtt.MqttBridge(db, "mqtt://127.0.0.1:1883", base_url="http://testserver/sta/v1.1",
                             client_id=unique_client_id("bridge"))  # not started: handle() is called directly
    topic = f"v1.1/Datastreams({station.datastream})/Observations"

    def message(mid: int, n: int, dup: bool) -> mqtt.Incoming:
        return mqtt.Incoming(topic, json.dumps(observation(run, n, n)).encode(), mid, 1, bridge._epoch, dup=dup)

    bridge.handle([message(5, 0, False), message(6, 1, False)])
    bridge.handle([message(5, 0, True)])   # the same message again: skipped
    bridge.handle([message(6, 2, True)])   # id 6 reused for other content: stored
    bridge.handle([message(7, 3, True)])   # never seen: stored
    assert [row.result for row in stored(db, run)] == [0, 1, 2, 3]
