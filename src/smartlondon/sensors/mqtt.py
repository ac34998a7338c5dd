"""The MQTT extension of SensorThings API v1.1: a bridge between an MQTT broker and the sensor hub.

The bridge is one MQTT v5 client of an external broker (Mosquitto, ``SMARTLONDON_MQTT_URL``):

- **create**: it subscribes with QoS 1 to the create topics ``v1.1/Observations``,
  ``v1.1/Datastreams(<id>)/Observations`` and ``v1.1/FeaturesOfInterest(<id>)/Observations`` and
  stores each message's Observation through the service layer, exactly as an HTTP POST to the same
  path would. One ingest thread stores messages in the order they arrive (so the observations of a
  Datastream keep their order), many queued messages in one transaction, and acknowledges a message
  to the broker only once its observation is committed (or it has been rejected). A message that is
  not a JSON object, or that the service refuses, is rejected: logged with its topic and reason,
  counted in ``smartlondon_sta_mqtt_rejected_total`` and described on the error topic
  (``smartlondon/sta/rejected``); the messages around it are stored as usual.
- **receive**: after every committed create or update (the ``sta.changed`` event, from MQTT or
  HTTP alike) it publishes the entity to the topics the standard defines: the entity set and the
  navigation sets of its parents on create, the entity and each changed property on update, and the
  ``$select`` topics named in ``SMARTLONDON_MQTT_SELECT`` (a broker does not tell a publisher what
  others subscribe to, so those have to be configured).

Its session is persistent (a fixed client id, ``clean_start`` off), so the broker keeps what the
bridge has not acknowledged while it is away and hands it over again when it is back: an ingest
process killed with SIGKILL loses no message, since it acknowledges only after the commit. The few it
had committed but not yet acknowledged come again with DUP set; the storing transaction recorded
(client id, packet id, SHA-256 of topic and payload) in ``sta_mqtt_delivery``, so those are
acknowledged and not stored twice. Notifications are published after the commit from a thread of
their own, in commit order. Notifications carry the MQTT v5 user property ``smartlondon: notification``; the
bridge subscribes with *No Local* and also ignores messages with that mark, because
``v1.1/Observations`` is a create topic and a notification topic at once.
"""

from __future__ import annotations

import builtins
import fcntl
import hashlib
import json
import logging
import queue
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from prometheus_client import Counter
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ..core.db import Database
from ..core.errors import NotFound, PlatformError
from ..core.events import subscribe, unsubscribe
from ..core.observability import REGISTRY

log = logging.getLogger(__name__)

VERSION = "v1.1"
CREATE_SUBSCRIPTIONS = (f"{VERSION}/Observations", f"{VERSION}/+/Observations")
ERROR_TOPIC = "smartlondon/sta/rejected"
STA_PREFIX = "/sta/v1.1"  # where the HTTP API lives: the base of the links in notifications
NOTIFICATION_MARK = ("smartlondon", "notification")
CREATE_CONFORMANCE = "http://www.opengis.net/spec/iot_sensing/1.1/req/create-observations-via-mqtt/observations-creation"
RECEIVE_CONFORMANCE = "http://www.opengis.net/spec/iot_sensing/1.1/req/receive-updates-via-mqtt/receive-updates"
_CREATE_TOPIC = re.compile(r"^v1\.1/(?:(?:Datastreams|FeaturesOfInterest)\(\d+\)/)?Observations$")
_SELECT_TOPIC = re.compile(r"^(v1\.1/[^?#+\s]+)\?\$select=([A-Za-z@.,]+)$")

MESSAGES = Counter("smartlondon_sta_mqtt_messages_total", "MQTT create messages handled by the bridge",
                   ["outcome"], registry=REGISTRY)
REJECTED = Counter("smartlondon_sta_mqtt_rejected_total", "MQTT create messages rejected, by reason",
                   ["reason"], registry=REGISTRY)
NOTIFICATIONS = Counter("smartlondon_sta_mqtt_notifications_total", "Notifications published to MQTT topics",
                        registry=REGISTRY)

Create = Callable[[Session, str, dict[str, Any]], dict[str, Any]]
CreateMany = Callable[[Session, list[tuple[str, dict[str, Any]]]], list[Any]]


# --- addresses and topics -------------------------------------------------------------------

@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is: from ``mqtt://[user[:password]@]host[:port]`` (``mqtts://`` for TLS)."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> "BrokerAddress":
        """Read a broker URL; a ValueError says what is wrong with it."""
        parts = urlsplit(url.strip())
        if parts.scheme not in {"mqtt", "mqtts", "tcp", "ssl"} or not parts.hostname:
            raise ValueError(f"SMARTLONDON_MQTT_URL must look like mqtt://host:1883 or mqtts://host:8883, not {url!r}")
        tls = parts.scheme in {"mqtts", "ssl"}
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise ValueError(f"SMARTLONDON_MQTT_URL has a port that is not a number: {url!r}") from exc
        return cls(parts.hostname, port, tls, unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)

    @property
    def public(self) -> str:
        """The address without credentials, as the landing page shows it."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


@dataclass(frozen=True)
class SelectTopic:
    """A ``$select`` topic, such as ``v1.1/Observations?$select=result,phenomenonTime``."""

    topic: str
    base: str
    properties: tuple[str, ...]


def parse_select_topics(text_: str) -> tuple[SelectTopic, ...]:
    """Read the ``$select`` topics of ``SMARTLONDON_MQTT_SELECT`` (separated by spaces or new lines)."""
    found = []
    for topic in text_.split():
        match = _SELECT_TOPIC.match(topic)
        if not match:
            raise ValueError(f"SMARTLONDON_MQTT_SELECT: {topic!r} is not a topic like "
                             "v1.1/Observations?$select=result,phenomenonTime")
        names = tuple(name for name in match.group(2).split(",") if name)
        found.append(SelectTopic(topic, match.group(1), names))
    return tuple(found)


def _to_one_links(links: Mapping[str, Any] | None) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    for entity_set, ids in (links or {}).items():
        for one in ids if isinstance(ids, (list, tuple, set)) else [ids]:
            if one is not None:
                pairs.append((entity_set, one))
    return pairs


def notification_messages(entity_set: str, entity_id: Any, op: str, entity: Mapping[str, Any],
                          changed: Iterable[str] | None = None, links: Mapping[str, Any] | None = None,
                          selects: Iterable[SelectTopic] = ()) -> list[tuple[str, dict[str, Any]]]:
    """The (topic, payload) pairs the standard asks for when an entity is created or updated.

    On create: the entity set (``v1.1/Observations``) and the navigation sets of its parents
    (``v1.1/Datastreams(5)/Observations``). On update: the entity (``v1.1/Things(1)``) and each
    changed property (``v1.1/Things(1)/name``, payload ``{"name": ...}``). Any ``$select`` topic
    whose base is one of those gets the entity with only the selected properties.
    """
    entity = dict(entity)
    bases: list[str] = []
    messages: list[tuple[str, dict[str, Any]]] = []
    if op == "create":
        bases.append(f"{VERSION}/{entity_set}")
        bases += [f"{VERSION}/{parent}({parent_id})/{entity_set}" for parent, parent_id in _to_one_links(links)]
        messages += [(topic, entity) for topic in bases]
    elif op == "update":
        single = f"{VERSION}/{entity_set}({entity_id})"
        bases.append(single)
        messages.append((single, entity))
        for name in changed or ():
            if name in entity:
                messages.append((f"{single}/{name}", {name: entity[name]}))
    for select in selects:
        if select.base in bases:
            messages.append((select.topic, {name: entity[name] for name in select.properties if name in entity}))
    return messages


def server_settings(url: str) -> dict[str, Any]:
    """What the landing page's ``serverSettings`` says about MQTT when a broker is configured."""
    if not url:
        return {"conformance": [], "endpoints": {}}
    endpoint = {"endpoints": [BrokerAddress.parse(url).public]}
    return {"conformance": [CREATE_CONFORMANCE, RECEIVE_CONFORMANCE],
            "endpoints": {CREATE_CONFORMANCE: endpoint, RECEIVE_CONFORMANCE: endpoint}}


# --- the bridge -----------------------------------------------------------------------------

class _PackedProperties(Properties):
    """PUBLISH properties that never change, packed once instead of on every publish."""

    def __init__(self, user_properties: list[tuple[str, str]], content_type: str) -> None:
        super().__init__(PacketTypes.PUBLISH)
        self.UserProperty = user_properties
        self.ContentType = content_type
        object.__setattr__(self, "_packed", super().pack())

    def pack(self) -> bytes:
        return self._packed


#: every notification carries the mark (so bridges ignore it as a create request) and its content type
_NOTIFICATION_PROPERTIES = _PackedProperties([NOTIFICATION_MARK], "application/json")


class Rejected(Exception):
    """A message that cannot become an Observation, with a short reason code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Incoming:
    """A message from the broker, waiting to be stored and acknowledged."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    epoch: int
    path: str = ""
    body: dict[str, Any] | None = None
    dup: bool = False  # the broker says it may have sent this message before (a redelivery)

    @property
    def digest(self) -> str:
        """What identifies the message's content: a SHA-256 of its topic and payload."""
        return hashlib.sha256(self.topic.encode("utf-8") + b"\0" + self.payload).hexdigest()


#: the idempotency record of the bridge: per client id and MQTT packet id, the digest of the last
#: message stored with it, written in the transaction that stores the message. A redelivered message
#: (DUP set) whose (client, packet id, digest) is here was stored before its acknowledgement was lost,
#: so it is acknowledged and not stored again. At most 65,535 rows per client id (packet ids are reused).
#: The table is made by migration 0018.
DELIVERIES = Table(
    "sta_mqtt_delivery", MetaData(),
    Column("client_id", String(200), primary_key=True),
    Column("mid", Integer, primary_key=True, autoincrement=False),
    Column("digest", String(64), nullable=False),
)


def _service_create(base_url: str) -> Create:
    def create(session: Session, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        from . import service  # written alongside; imported when the first message arrives

        return service.create_from_path(session, path, payload, base_url)
    return create


def _service_create_many(base_url: str) -> CreateMany:
    def create_many(session: Session, items: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        from . import service

        return service.create_many_from_path(session, items, base_url, entities=False)
    return create_many


def _parse(item: Incoming) -> Incoming:
    if not _CREATE_TOPIC.match(item.topic):
        raise Rejected("topic", f"{item.topic} is not a create topic: publish Observations to v1.1/Observations, "
                                "v1.1/Datastreams(<id>)/Observations or v1.1/FeaturesOfInterest(<id>)/Observations")
    try:
        body = json.loads(item.payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected("not_json", f"the message is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Rejected("not_json", "the message must be a JSON object (one Observation), "
                                   f"not {type(body).__name__}")
    item.path = item.topic[len(VERSION) + 1:]
    item.body = body
    return item


def _reason_of(exc: Exception) -> str:
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, PlatformError):
        return "invalid"
    return "error"


_BRIDGES: list["MqttBridge"] = []
_BRIDGES_LOCK = threading.Lock()


class MqttBridge:
    """The MQTT client of the sensor hub: stores Observations published to it and publishes changes."""

    def __init__(self, db: Database, url: str, *, base_url: str = "", create: Create | None = None,
                 client_id: str = "smartlondon-sta-bridge", session_expiry: int = 86400,
                 select_topics: Iterable[SelectTopic] = (), error_topic: str = ERROR_TOPIC,
                 batch_size: int = 2000, notify_qos: int = 1) -> None:
        self.db = db
        self.address = BrokerAddress.parse(url)
        self.create = create or _service_create(base_url)
        #: the batch path (one transaction, one INSERT per batch), used unless a custom ``create`` is given
        self.create_many: CreateMany | None = None if create is not None else _service_create_many(base_url)
        self.client_id = client_id
        self.session_expiry = session_expiry
        self.select_topics = tuple(select_topics)
        self.error_topic = error_topic
        self.batch_size = max(1, batch_size)
        self.notify_qos = notify_qos
        self._queue: queue.Queue[Incoming] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._state = threading.Lock()
        self._epoch = 0  # changes when the broker starts us a new session (old message ids mean nothing)
        self._connected = False
        self._unacked_done: set[int] = set()  # stored, but the connection dropped before the ack went out
        self._subscribe_mid: int | None = None
        self._thread: threading.Thread | None = None
        self._notices: queue.Queue[dict[str, Any]] = queue.Queue()  # committed changes to publish, in order
        self._notifier: threading.Thread | None = None
        self.client = self._make_client()

    # lifecycle

    def start(self) -> None:
        """Connect (retrying with backoff in the background) and start the ingest thread."""
        with _BRIDGES_LOCK:
            if self not in _BRIDGES:
                _BRIDGES.append(self)
            subscribe("sta.changed", after_commit=True)(_publish_change)
        connect = Properties(PacketTypes.CONNECT)
        connect.SessionExpiryInterval = self.session_expiry
        connect.ReceiveMaximum = min(max(self.batch_size * 8, 100), 65535)  # what the broker may send ahead of our acks
        self.client.connect_async(self.address.host, self.address.port, keepalive=30, clean_start=False,
                                  properties=connect)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="sta-mqtt-ingest", daemon=True)
        self._thread.start()
        self._notifier = threading.Thread(target=self._run_notifier, name="sta-mqtt-notify", daemon=True)
        self._notifier.start()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Wait until connected and subscribed to the create topics; whether that happened in time."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand, then disconnect; the broker keeps unacknowledged messages for the next run."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._notifier is not None:  # it publishes what is queued, then ends
            self._notifier.join(timeout)
        with _BRIDGES_LOCK:
            if self in _BRIDGES:
                _BRIDGES.remove(self)
            if not _BRIDGES:  # with no bridge running, the service need not build notifications at all
                unsubscribe("sta.changed", _publish_change)
        self.client.disconnect()
        self.client.loop_stop()
        self._ready.clear()

    @property
    def ready(self) -> bool:
        """Whether it is connected and subscribed right now."""
        return self._ready.is_set()

    @property
    def backlog(self) -> int:
        """Messages received and not yet stored."""
        return self._queue.qsize()

    # the MQTT client and its callbacks (run in paho's network thread)

    def _make_client(self) -> paho.Client:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=paho.MQTTv5, manual_ack=True)
        if self.address.username:
            client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            client.tls_set()
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker refused the bridge", extra={"fields": {"broker": self.address.public,
                                                                             "reason": str(reason)}})
            return
        with self._state:
            self._connected = True
            if not flags.session_present:
                self._epoch += 1
                self._unacked_done.clear()
        log.info("MQTT bridge connected", extra={"fields": {"broker": self.address.public,
                                                             "session_present": bool(flags.session_present)}})
        options = SubscribeOptions(qos=1, noLocal=True)
        _, self._subscribe_mid = client.subscribe([(topic, options) for topic in CREATE_SUBSCRIPTIONS])

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: list[Any], properties: Any) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            log.error("MQTT broker refused the create subscriptions", extra={"fields": {"reasons": refused}})
            return
        self._ready.set()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._ready.clear()
        with self._state:
            self._connected = False
        if not self._stop.is_set():
            log.warning("MQTT bridge lost the broker; reconnecting", extra={"fields": {
                "broker": self.address.public, "reason": str(reason)}})

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        props = getattr(message, "properties", None)
        if NOTIFICATION_MARK in (getattr(props, "UserProperty", None) or []):
            client.ack(message.mid, message.qos)  # another bridge's notification, not a create request
            return
        with self._state:
            epoch = self._epoch
            stored_already = message.dup and message.mid in self._unacked_done
            self._unacked_done.discard(message.mid)
        if stored_already:  # stored before the connection dropped, and handed over again
            client.ack(message.mid, message.qos)
            return
        self._queue.put(Incoming(message.topic, message.payload, message.mid, message.qos, epoch,
                                 dup=bool(message.dup)))

    # the ingest thread

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self.handle(batch)
            except Exception:  # never let the ingest thread die; the messages stay unacknowledged
                log.exception("MQTT bridge failed on a batch of %d messages", len(batch))

    def handle(self, batch: list[Incoming]) -> None:
        """Store a batch of messages in order, rejecting the malformed ones, and acknowledge each."""
        batch = self._skip_stored(batch)
        run: list[Incoming] = []
        for item in batch:
            try:
                run.append(_parse(item))
            except Rejected as exc:
                self._store(run)
                run = []
                self._reject(item, exc.reason, exc.message)
        self._store(run)

    # idempotency across lost acknowledgements

    def _skip_stored(self, batch: list[Incoming]) -> list[Incoming]:
        """Acknowledge, without storing them again, redelivered messages this bridge has already stored."""
        redelivered = [item for item in batch if item.dup and item.qos]
        if not redelivered:
            return batch
        try:
            with self.db.engine.connect() as conn:
                known = {(int(mid), digest) for mid, digest in conn.execute(
                    select(DELIVERIES.c.mid, DELIVERIES.c.digest).where(
                        DELIVERIES.c.client_id == self.client_id,
                        DELIVERIES.c.mid.in_(sorted({item.mid for item in redelivered}))))}
        except Exception:  # the database is away: store as usual (the store waits it out)
            return batch
        keep = []
        for item in batch:
            if item.dup and item.qos and (item.mid, item.digest) in known:
                MESSAGES.labels("duplicate").inc()
                self._ack(item)
            else:
                keep.append(item)
        return keep

    def _remember(self, session: Session, items: list[Incoming]) -> None:
        """Record the stored messages' (client, packet id, digest) in the storing transaction."""
        rows = [{"client_id": self.client_id, "mid": item.mid, "digest": item.digest} for item in items if item.qos]
        if not rows:
            return
        latest: dict[int, dict[str, Any]] = {row["mid"]: row for row in rows}  # one row per packet id
        make = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        stmt = make(DELIVERIES)
        stmt = stmt.on_conflict_do_update(index_elements=[DELIVERIES.c.client_id, DELIVERIES.c.mid],
                                          set_={"digest": stmt.excluded.digest})
        session.execute(stmt, [latest[mid] for mid in sorted(latest)])

    def _attempt(self, items: list[Incoming]) -> tuple[int | None, Exception | None]:
        """Store the items in one transaction: (None, None) if committed, else which one failed and why."""
        session = self.db.sessions()
        try:
            for index, item in enumerate(items):
                try:
                    self.create(session, item.path, item.body or {})
                except Exception as exc:
                    session.rollback()
                    return index, exc
            try:
                self._remember(session, items)
                session.commit()
            except Exception as exc:
                session.rollback()
                return -1, exc
            return None, None
        finally:
            session.close()

    def _store(self, items: list[Incoming]) -> None:
        if self.create_many is not None and len(items) > 1:
            items = self._store_many(items)
        self._store_each(items)

    def _store_many(self, items: list[Incoming]) -> list[Incoming]:
        """Store the items with one ``create_many`` and one commit; then acknowledge the stored ones and
        reject the refused ones, in order. Returns the items left for ``_store_each`` (all of them if
        the batch as a whole failed for a reason other than an unreachable database)."""
        assert self.create_many is not None
        delay = 0.5
        while True:
            session = self.db.sessions()
            try:
                results = self.create_many(session, [(item.path, item.body or {}) for item in items])
                self._remember(session, [item for item, result in zip(items, results)
                                         if not isinstance(result, Exception)])
                session.commit()
                error: Exception | None = None
            except Exception as exc:
                session.rollback()
                error = exc
            finally:
                session.close()
            if error is None:
                break
            if not isinstance(error, PlatformError) and not self._database_answers():
                log.warning("database unavailable; MQTT messages wait", extra={"fields": {"error": str(error)}})
                if self._stop.wait(delay):
                    return []  # unacknowledged: the broker hands them over again next time
                delay = min(delay * 2, 30.0)
                continue
            return items  # one by one, to find the culprit
        MESSAGES.labels("created").inc(sum(1 for r in results if not isinstance(r, Exception)))
        for item, result in zip(items, results):
            if isinstance(result, Exception):
                if not isinstance(result, PlatformError):
                    log.error("MQTT message failed to store", exc_info=result)
                self._reject(item, _reason_of(result), getattr(result, "message", None) or str(result))
            else:
                self._ack(item)
        return []

    def _store_each(self, items: list[Incoming]) -> None:
        delay = 0.5
        while items:
            index, exc = self._attempt(items)
            if index is None:
                MESSAGES.labels("created").inc(len(items))
                for item in items:
                    self._ack(item)
                return
            assert exc is not None
            if not isinstance(exc, PlatformError) and not self._database_answers():
                log.warning("database unavailable; MQTT messages wait", extra={"fields": {"error": str(exc)}})
                if self._stop.wait(delay):
                    return  # unacknowledged: the broker hands them over again next time
                delay = min(delay * 2, 30.0)
                continue
            if index == -1:  # the commit failed: store one by one to find the culprit
                if len(items) == 1:
                    index = 0
                else:
                    for item in items:
                        self._store_each([item])
                    return
            if index > 0:
                self._store_each(items[:index])
            if not isinstance(exc, PlatformError):
                log.error("MQTT message failed to store", exc_info=exc)
            self._reject(items[index], _reason_of(exc), getattr(exc, "message", None) or str(exc))
            items = items[index + 1:]

    def _database_answers(self) -> bool:
        try:
            with self.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def _reject(self, item: Incoming, reason: str, message: str) -> None:
        MESSAGES.labels("rejected").inc()
        REJECTED.labels(reason).inc()
        log.warning("MQTT message rejected", extra={"fields": {"topic": item.topic, "reason": reason,
                                                               "message": message}})
        if self.error_topic:
            report = {"topic": item.topic, "reason": reason, "message": message,
                      "payload": item.payload[:1000].decode("utf-8", "replace")}
            self._publish(self.error_topic, report, qos=0)
        self._ack(item)

    def _ack(self, item: Incoming) -> None:
        if item.qos == 0:
            return
        with self._state:
            if item.epoch != self._epoch:
                return  # that session is gone; the broker no longer expects this acknowledgement
            if not self._connected or self.client.ack(item.mid, item.qos) != paho.MQTT_ERR_SUCCESS:
                self._unacked_done.add(item.mid)

    # notifications

    def _publish(self, topic: str, payload: Mapping[str, Any] | str | bytes, qos: int) -> None:
        text_ = payload if isinstance(payload, (str, bytes)) else json.dumps(payload, separators=(",", ":"), default=str)
        self.client.publish(topic, text_, qos=qos, properties=_NOTIFICATION_PROPERTIES)

    def notify(self, entity_set: str, id: Any, op: str, entity: Mapping[str, Any] | None = None,
               changed: Iterable[str] | None = None, links: Mapping[str, Any] | None = None,
               **_: Any) -> int:
        """Publish a committed change to its topics; how many messages went out.

        A payload sent to several topics (a new entity goes to its set and its parents' sets) is
        serialised and encoded once.
        """
        if entity is None:
            return 0
        messages = notification_messages(entity_set, id, op, entity, changed, links, self.select_topics)
        texts: dict[int, bytes] = {}
        for topic, payload in messages:
            key = builtins.id(payload)
            if key not in texts:
                texts[key] = json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8")
            self._publish(topic, texts[key], qos=self.notify_qos)
        NOTIFICATIONS.inc(len(messages))
        return len(messages)

    def _notify_later(self, payload: dict[str, Any]) -> None:
        """Queue a committed change for the notifier thread (in commit order)."""
        self._notices.put(payload)

    def _run_notifier(self) -> None:
        """Publish queued changes, in order, off the ingest thread (so storing the next batch need not wait)."""
        while True:
            try:
                payload = self._notices.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            try:
                self.notify(**payload)
            except Exception:  # a notification that cannot go out must not stop the others
                log.exception("MQTT notification failed")
            finally:
                self._notices.task_done()

    def drain_notifications(self, timeout: float = 10.0) -> bool:
        """Wait until every queued notification has been handed to the MQTT client; whether it happened in time."""
        deadline = time.monotonic() + timeout
        while self._notices.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


def _publish_change(engine: Engine, **payload: Any) -> None:
    """Send a committed change to the broker through every running bridge on this database.

    Subscribed to ``sta.changed`` (after commit) while a bridge runs, and only then.
    """
    with _BRIDGES_LOCK:
        bridges = [bridge for bridge in _BRIDGES if bridge.db.engine is engine]
    for bridge in bridges:
        if bridge._notifier is not None:  # noqa: SLF001  (a started bridge publishes from its notifier thread)
            bridge._notify_later(payload)  # noqa: SLF001
        else:
            bridge.notify(**payload)


# --- the hook of `serve` --------------------------------------------------------------------

_declared = 0


def _declare(url: str, on: bool) -> None:
    """Add (or take back) the MQTT classes and endpoint on the landing page while an app with a broker runs."""
    global _declared
    from .sta import router

    with _BRIDGES_LOCK:
        _declared += 1 if on else -1
        extra = server_settings(url)
        if on and _declared == 1:
            router.CONFORMANCE.extend(c for c in extra["conformance"] if c not in router.CONFORMANCE)
            router.SERVER_SETTINGS.update(extra["endpoints"])
        elif not on and _declared == 0:
            router.CONFORMANCE[:] = [c for c in router.CONFORMANCE if c not in extra["conformance"]]
            for key in extra["endpoints"]:
                router.SERVER_SETTINGS.pop(key, None)


def _take_lock(data_dir: Path) -> IO[str] | None:
    """One bridge per data directory: with ``serve --workers N`` only the first worker runs it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "mqtt-bridge.lock", "w")  # noqa: SIM115 (held for the app's lifetime)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def bridge_for(settings: Any, db: Database) -> MqttBridge:
    """The bridge the settings describe."""
    return MqttBridge(db, settings.mqtt_url, base_url=f"{settings.base_url}{STA_PREFIX}",
                      client_id=settings.mqtt_client_id, select_topics=parse_select_topics(settings.mqtt_select))


def install(app: Any) -> None:
    """Run the bridge for the app's lifetime when ``SMARTLONDON_MQTT_URL`` is set; else do nothing."""
    settings = app.state.settings
    if not getattr(settings, "mqtt_url", ""):
        return
    BrokerAddress.parse(settings.mqtt_url)  # a wrong URL stops the app at once, with a clear message
    parse_select_topics(settings.mqtt_select)
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        _declare(settings.mqtt_url, True)
        lock = _take_lock(Path(settings.data_dir))
        bridge = None
        if lock is None:
            log.info("another process of this data directory runs the MQTT bridge")
        else:
            bridge = bridge_for(settings, application.state.db)
            application.state.mqtt_bridge = bridge
            bridge.start()
        try:
            async with previous(application) as state:
                yield state
        finally:
            if bridge is not None:
                bridge.stop()
            if lock is not None:
                lock.close()
            _declare(settings.mqtt_url, False)

    app.router.lifespan_context = lifespan
