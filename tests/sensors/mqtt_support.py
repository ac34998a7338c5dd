"""Talking to the real MQTT broker in tests: a listener that records what arrives, and a publisher.

The broker is the Mosquitto of the machine or of CI (``SMARTLONDON_TEST_MQTT_URL``, default
``mqtt://127.0.0.1:1883``). With no broker the MQTT tests fail, saying so: CI allows no skips.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.subscribeoptions import SubscribeOptions

from smartlondon.sensors.mqtt import BrokerAddress

BROKER_URL = os.environ.get("SMARTLONDON_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
BROKER = BrokerAddress.parse(BROKER_URL)


def require_broker() -> None:
    """Fail the test at once when no broker answers."""
    try:
        socket.create_connection((BROKER.host, BROKER.port), timeout=2).close()
    except OSError as exc:
        pytest.fail(f"No MQTT broker at {BROKER_URL} ({exc}): start Mosquitto or set SMARTLONDON_TEST_MQTT_URL")


def unique_client_id(purpose: str) -> str:
    """A client id no other test (or run) uses."""
    return f"test-{purpose}-{uuid.uuid4().hex[:10]}"


def wait_until(condition: Callable[[], Any], timeout: float = 15.0, every: float = 0.05) -> Any:
    """Poll until ``condition()`` is truthy; returns its value, or fails saying it timed out."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {getattr(condition, '__name__', condition)}")
        time.sleep(every)


@dataclass
class Received:
    """One message a listener got."""

    topic: str
    payload: bytes
    qos: int
    properties: Any

    @property
    def json(self) -> Any:
        """The payload, parsed."""
        return json.loads(self.payload)


def _client(purpose: str) -> paho.Client:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=unique_client_id(purpose), protocol=paho.MQTTv5)
    if BROKER.username:
        client.username_pw_set(BROKER.username, BROKER.password)
    return client


class Listener:
    """An MQTT client subscribed to some topics, keeping every message it receives."""

    def __init__(self, *topics: str, qos: int = 1) -> None:
        require_broker()
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = _client("listener")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect(BROKER.host, BROKER.port)
        self.client.loop_start()
        self.client.subscribe([(topic, SubscribeOptions(qos=qos)) for topic in topics])
        if not self._subscribed.wait(10):
            pytest.fail(f"the broker did not confirm the subscription to {topics}")

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(message.topic, message.payload, message.qos,
                                          getattr(message, "properties", None)))

    def on(self, topic: str, where: Callable[[Any], bool] = lambda payload: True) -> list[Received]:
        """The messages received on ``topic`` whose JSON payload passes ``where``."""
        with self._lock:
            found = []
            for message in self.messages:
                if message.topic != topic:
                    continue
                try:
                    if where(message.json):
                        found.append(message)
                except (ValueError, TypeError, KeyError):
                    continue
            return found

    def wait_for(self, topic: str, where: Callable[[Any], bool] = lambda payload: True, count: int = 1,
                 timeout: float = 15.0) -> list[Received]:
        """Wait until ``count`` matching messages have arrived on ``topic``; returns them."""
        def arrived() -> list[Received] | None:
            found = self.on(topic, where)
            return found if len(found) >= count else None
        arrived.__name__ = f"{count} message(s) on {topic}"
        return wait_until(arrived, timeout)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


class Publisher:
    """An MQTT client that publishes and waits for the broker to take each message."""

    def __init__(self) -> None:
        require_broker()
        self.client = _client("publisher")
        self.client.max_inflight_messages_set(1000)
        self.client.connect(BROKER.host, BROKER.port)
        self.client.loop_start()

    def send(self, topic: str, payload: Any, qos: int = 1) -> paho.MQTTMessageInfo:
        """Publish ``payload`` (bytes as they are, anything else as JSON)."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.client.publish(topic, data, qos=qos)

    def send_and_wait(self, topic: str, payload: Any, qos: int = 1) -> None:
        """Publish and wait until the broker has the message."""
        self.send(topic, payload, qos).wait_for_publish(10)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


class BrokerProxy:
    """A TCP relay in front of the broker whose connections a test can cut, as a network failure would."""

    def __init__(self) -> None:
        require_broker()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        """The broker URL that goes through this relay."""
        return f"mqtt://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                inbound, _ = self._server.accept()
            except OSError:
                return
            outbound = socket.create_connection((BROKER.host, BROKER.port))
            with self._lock:
                self._sockets += [inbound, outbound]
            for a, b in ((inbound, outbound), (outbound, inbound)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Drop every connection going through the relay (new ones are still accepted)."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        """Stop relaying."""
        self._closed = True
        self._server.close()
        self.cut()
