"""Sensor ingest benchmark (issue 4, item 7): observations per second into a live server, beside the floor.

* dataArray: ``POST /sta/v1.1/CreateObservations`` to a running ``smartlondon serve`` (requests of
  ``--per-request`` rows spread over 10 Datastreams, sent one after another);
* MQTT: single-Observation messages, QoS 1, published to ``v1.1/Datastreams(<id>)/Observations``
  on the broker (``--mqtt-url``, Mosquitto) to a running server with ``SMARTLONDON_MQTT_URL`` set;
  timed from the first publish until the database holds every one of them;
* floor: the raw database bulk insert of the same number of rows (sqlite3 executemany on SQLite,
  COPY on PostgreSQL), straight into ``sta_observation``, in the same run.

Targets: >= 50,000 observations/s bulk on PostgreSQL, >= 10,000 single-observation MQTT messages/s.

    .venv/bin/python benchmarks/sensors_ingest.py                       # both backends
    .venv/bin/python benchmarks/sensors_ingest.py --backend sqlite --rows 100000 --messages 5000
    .venv/bin/python benchmarks/sensors_ingest.py --mqtt-only --messages 20000 --publishers 4 --window 4000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text

from sensors_common import (  # type: ignore[import-not-found]
    api_token, build_fleet, floor_insert, fresh_database, log, start_server, stop_server, thing_of, uptime,
)
from smartlondon.core import migrate
from smartlondon.core.db import Database
from smartlondon.sensors.models import Observation

START = datetime(2024, 1, 1, tzinfo=timezone.utc)


_floor_runs = 0


def floor_rate(db: Database, streams: list[int], n: int) -> float:
    global _floor_runs
    _floor_runs += 1
    # the rows are made before the clock starts, as the dataArray bodies are: both figures time storing
    # rows already in memory (the floor still formats its COPY text inside the timing)
    rows = [(streams[i % len(streams)], thing_of(streams[i % len(streams)]), START + timedelta(seconds=i), 20.0 + i % 50)
            for i in range(n)]
    started = time.perf_counter()
    floor_insert(db, rows, first_id=_floor_runs * 1_000_000_000)
    return n / (time.perf_counter() - started)


def stored(db: Database, streams: list[int]) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Observation)
                                  .where(Observation.datastream_id.in_(streams))))


def data_array_rate(base: str, token: str, streams: list[int], n: int, per_request: int) -> tuple[float, float]:
    """Send the rows as CreateObservations requests, one after another: (obs/s, the client's encoding seconds).

    The request bodies are built and JSON-encoded before the clock starts (the floor's rows are made
    before its clock too); that client-side encoding is timed separately and reported beside the figure.
    """
    headers = {"Authorization": f"Bearer {token}"}
    sent = 0
    bodies = []
    encoding = time.perf_counter()
    while sent < n:
        size = min(per_request, n - sent)
        groups = []
        per_stream = max(1, size // len(streams))
        for k, ds in enumerate(streams):
            count = per_stream if k < len(streams) - 1 else size - per_stream * (len(streams) - 1)
            groups.append({"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"],
                           "dataArray": [[(START + timedelta(seconds=sent + j)).isoformat().replace("+00:00", "Z"),
                                          10.0 + (sent + j) % 40] for j in range(count)]})
        bodies.append(json.dumps(groups))
        sent += size
    encoding = time.perf_counter() - encoding
    with httpx.Client(timeout=600) as client:
        started = time.perf_counter()
        for body in bodies:
            response = client.post(f"{base}/sta/v1.1/CreateObservations", content=body,
                                   headers={**headers, "Content-Type": "application/json"})
            response.raise_for_status()
            if "error" in response.json():
                raise SystemExit("CreateObservations refused a row")
        return n / (time.perf_counter() - started), encoding


def mqtt_rate(db: Database, mqtt_url: str, streams: list[int], n: int, timeout: float,
              window: int) -> tuple[float, int, float]:
    """Publish ``n`` single-Observation messages (QoS 1) and wait until they are all stored.

    Returns (stored msgs/s, how many stored, the publisher's own rate: all PUBACKs received)."""
    import paho.mqtt.client as paho

    from smartlondon.sensors.mqtt import BrokerAddress

    address = BrokerAddress.parse(mqtt_url)
    before = stored(db, streams)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}",
                         protocol=paho.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    acks = {"n": 0, "at": 0.0}
    lock = threading.Lock()

    def on_publish(*_args: object) -> None:
        with lock:
            acks["n"] += 1
            if acks["n"] == n:
                acks["at"] = time.perf_counter()
    client.on_publish = on_publish
    client.connect(address.host, address.port)
    client.loop_start()
    payloads = [(f"v1.1/Datastreams({streams[i % len(streams)]})/Observations",
                 json.dumps({"phenomenonTime": (START + timedelta(days=30, seconds=i)).isoformat().replace("+00:00", "Z"),
                             "result": 15.0 + i % 30})) for i in range(n)]
    started = time.perf_counter()
    deadline = started + timeout
    for i, (topic, payload) in enumerate(payloads):
        if window and i % 250 == 0 and i:
            # flow control: the broker keeps only so many messages for a slow subscriber (Mosquitto's
            # max_queued_messages, 1000 by default) and drops the rest, so never run more than
            # --window ahead of what is stored
            while i - (stored(db, streams) - before) > window and time.perf_counter() < deadline:
                time.sleep(0.005)
        client.publish(topic, payload, qos=1)
    done = 0
    while time.perf_counter() < deadline:
        done = stored(db, streams) - before
        if done >= n:
            break
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    client.loop_stop()
    client.disconnect()
    published = n / (acks["at"] - started) if acks["at"] else 0.0
    return done / elapsed, done, published


def _publish_share(mqtt_url: str, prefix: str, streams: list[int], first: int, count: int, sent: Any,
                   stored_now: Any, window: int, go: Any, done: Any) -> None:
    """One publisher process: its own paho client (and client id), ``count`` QoS 1 messages to its own
    Datastreams, each Datastream's messages in time order; returns once every PUBACK is back."""
    import paho.mqtt.client as paho

    from smartlondon.sensors.mqtt import BrokerAddress

    address = BrokerAddress.parse(mqtt_url)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}",
                         protocol=paho.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    acked = threading.Event()
    acks = [0]

    def on_publish(*_args: object) -> None:
        acks[0] += 1
        if acks[0] == count:
            acked.set()
    client.on_publish = on_publish
    client.connect(address.host, address.port)
    client.loop_start()
    payloads = [(f"{prefix}v1.1/Datastreams({streams[i % len(streams)]})/Observations",
                 json.dumps({"phenomenonTime": (START + timedelta(days=30, seconds=first + i)).isoformat()
                             .replace("+00:00", "Z"), "result": 15.0 + i % 30})) for i in range(count)]
    go.wait()
    for i, (topic, payload) in enumerate(payloads):
        if window and i % 100 == 0 and i:
            with sent.get_lock():
                sent.value += 100
            while sent.value - stored_now.value > window:  # see --window
                time.sleep(0.002)
        client.publish(topic, payload, qos=1)
    acked.wait(600)
    client.loop_stop()
    client.disconnect()
    done.value = time.time()


def mqtt_parallel_rate(db: Database | None, mqtt_url: str, streams: list[int], n: int, publishers: int,
                       timeout: float, window: int, prefix: str = "") -> tuple[float, int, float]:
    """Publish ``n`` messages from ``publishers`` processes (each a share of the Datastreams) and wait
    until the database holds them all (``db`` None: nobody stores them, the publishers alone).

    Returns (stored msgs/s, how many stored, the publishers' own rate: all PUBACKs back)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    before = stored(db, streams) if db is not None else 0
    sent, stored_now, go = ctx.Value("q", 0), ctx.Value("q", 0, lock=False), ctx.Event()
    shares = [streams[k::publishers] for k in range(publishers)]
    counts = [n // publishers + (1 if k < n % publishers else 0) for k in range(publishers)]
    finished = [ctx.Value("d", 0.0, lock=False) for _ in range(publishers)]
    procs = [ctx.Process(target=_publish_share, args=(mqtt_url, prefix, shares[k], k * n, counts[k], sent,
                                                      stored_now, window if db is not None else 0, go, finished[k]))
             for k in range(publishers)]
    for proc in procs:
        proc.start()
    time.sleep(1.0)  # every publisher connected and its payloads built
    started_wall, started = time.time(), time.perf_counter()
    go.set()
    deadline = started + timeout
    done = 0
    while db is not None and time.perf_counter() < deadline:
        done = stored(db, streams) - before
        stored_now.value = done
        if done >= n:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join(timeout)
    last_ack = max(f.value for f in finished)
    published = n / (last_ack - started_wall) if last_ack and all(f.value for f in finished) else 0.0
    return (done / elapsed if db is not None else 0.0), done, published


def out_of_order(db: Database, streams: list[int]) -> int:
    """Observations stored (numbered) before an earlier-published one of the same Datastream."""
    ids = ", ".join(str(s) for s in streams)
    with db.engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM (SELECT phenomenon_time_start AS t, lag(phenomenon_time_start) OVER "
            f"(PARTITION BY datastream_id ORDER BY id) AS prev FROM sta_observation WHERE datastream_id IN ({ids})) "
            "AS q WHERE prev > t")).scalar_one())


def _end_session(mqtt_url: str, client_id: str) -> None:
    """Make the broker drop the benchmark bridge's persistent session, which would otherwise go on
    queueing every later create message (of any bridge's run) for a day."""
    import paho.mqtt.client as paho
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from smartlondon.sensors.mqtt import BrokerAddress

    address = BrokerAddress.parse(mqtt_url)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    client.connect(address.host, address.port, clean_start=True, properties=props)
    client.loop_start()
    deadline = time.monotonic() + 10
    while not client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()


def run_mqtt(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    """The MQTT part alone (``--mqtt-only``), on a database of its own, with ``--publishers`` processes."""
    log(f"[{backend}] fresh database")
    url = fresh_database(backend, workdir, "smartlondon_bench_mqtt_ingest")
    db = Database(url)
    migrate.upgrade(db)
    streams = build_fleet(db, 30)
    floor_streams, mqtt_streams = streams[:10], streams[20:30]
    out: dict[str, object] = {"backend": backend}
    log(f"[{backend}] the {args.publishers} publishers alone: {args.messages:,} messages nobody stores")
    _, _, out["alone"] = mqtt_parallel_rate(None, args.mqtt_url, mqtt_streams, args.messages, args.publishers,
                                            args.timeout, 0, prefix=f"bench-alone-{uuid.uuid4().hex[:6]}/")
    bridge_id = f"bench-bridge-{uuid.uuid4().hex[:8]}"
    proc, _ = start_server(url, workdir, {"SMARTLONDON_MQTT_URL": args.mqtt_url, "SMARTLONDON_MQTT_CLIENT_ID": bridge_id})
    try:
        time.sleep(2)  # the bridge connects and subscribes
        log(f"[{backend}] MQTT: {args.messages:,} messages from {args.publishers} publishers")
        out["mqtt"], out["mqtt_stored"], out["published"] = mqtt_parallel_rate(
            db, args.mqtt_url, mqtt_streams, args.messages, args.publishers, args.timeout, args.window)
    finally:
        stop_server(proc)
        _end_session(args.mqtt_url, bridge_id)
    out["out_of_order"] = out_of_order(db, mqtt_streams)
    out["floor_mqtt"] = floor_rate(db, floor_streams, args.messages)
    db.dispose()
    return out


def report_mqtt(results: list[dict[str, object]], args: argparse.Namespace) -> None:
    print(f"\nMQTT ingest, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {args.messages:,} messages, QoS 1, "
          f"{args.publishers} publisher processes, window {args.window:,}; load: {uptime()}\n")
    print("| backend | ours (msg/s) | floor: raw bulk insert (obs/s) | ours / floor | publishers alone (msg/s) "
          "| out of order | target |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in results:
        note = "" if r["mqtt_stored"] >= args.messages else f" (only {r['mqtt_stored']:,} stored in time)"
        print(f"| {r['backend']} | {r['mqtt']:,.0f}{note} | {r['floor_mqtt']:,.0f} | "
              f"{r['mqtt'] / r['floor_mqtt']:.3f} | {r['alone']:,.0f} | {r['out_of_order']} | >= 10,000/s |")


def run(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    log(f"[{backend}] fresh database")
    url = fresh_database(backend, workdir, "smartlondon_bench_sensors_ingest")
    db = Database(url)
    migrate.upgrade(db)
    streams = build_fleet(db, 30)
    floor_streams, http_streams, mqtt_streams = streams[:10], streams[10:20], streams[20:30]
    token = api_token(db)
    out: dict[str, object] = {"backend": backend}
    log(f"[{backend}] floor: {args.rows:,} rows raw")
    out["floor"] = floor_rate(db, floor_streams, args.rows)
    proc, base = start_server(url, workdir)
    try:
        log(f"[{backend}] dataArray over HTTP: {args.rows:,} rows")
        out["http"], out["encoding"] = data_array_rate(base, token, http_streams, args.rows, args.per_request)
    finally:
        stop_server(proc)
    if args.messages:
        proc, base = start_server(url, workdir, {"SMARTLONDON_MQTT_URL": args.mqtt_url,
                                                 "SMARTLONDON_MQTT_CLIENT_ID": f"bench-bridge-{uuid.uuid4().hex[:8]}"})
        try:
            time.sleep(2)  # the bridge connects and subscribes
            log(f"[{backend}] MQTT: {args.messages:,} messages")
            out["mqtt"], out["mqtt_stored"], out["published"] = mqtt_rate(db, args.mqtt_url, mqtt_streams, args.messages, args.timeout,
                                                                         args.window)
        finally:
            stop_server(proc)
    out["floor_mqtt"] = floor_rate(db, floor_streams, args.messages) if args.messages else None
    db.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rows", type=int, default=200_000, help="observations for dataArray and the floor")
    parser.add_argument("--per-request", type=int, default=10_000, help="rows per CreateObservations request")
    parser.add_argument("--messages", type=int, default=2_000, help="MQTT messages (0: skip MQTT)")
    parser.add_argument("--mqtt-url", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for the MQTT messages")
    parser.add_argument("--window", type=int, default=0,
                        help="most MQTT messages published ahead of those stored (0: no flow control; keep "
                             "--messages within the broker's queue, Mosquitto's max_queued_messages + the bridge's "
                             "receive maximum, or the broker drops the rest)")
    parser.add_argument("--mqtt-only", action="store_true",
                        help="only the MQTT part, on a database of its own, from --publishers processes")
    parser.add_argument("--publishers", type=int, default=4, help="MQTT publisher processes with --mqtt-only")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = []
    if args.mqtt_only:
        with tempfile.TemporaryDirectory() as tmp:
            report_mqtt([run_mqtt(backend, args, Path(tmp)) for backend in backends], args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            results.append(run(backend, args, Path(tmp)))
    print(f"\nSensor ingest, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {args.rows:,} rows "
          f"({args.per_request:,} per request), {args.messages:,} MQTT messages; load: {uptime()}\n")
    print("| backend | path | ours (obs/s) | floor: raw bulk insert (obs/s) | ours / floor | target |")
    print("|---|---|---:|---:|---:|---|")
    for r in results:
        print(f"| {r['backend']} | dataArray over HTTP | {r['http']:,.0f} | {r['floor']:,.0f} | "
              f"{r['http'] / r['floor']:.2f} | {'>= 50,000/s' if r['backend'] == 'postgresql' else '-'} |")
        if r.get("mqtt") is not None:
            note = "" if r["mqtt_stored"] >= args.messages else f" (only {r['mqtt_stored']:,} stored in time)"
            print(f"| {r['backend']} | MQTT, 1 observation per message, QoS 1{note} | {r['mqtt']:,.0f} | "
                  f"{r['floor_mqtt']:,.0f} | {r['mqtt'] / r['floor_mqtt']:.3f} | >= 10,000/s |")
    print("\nThe dataArray client's request building and JSON encoding, before the clock (not in the figure): "
          + ", ".join(f"{r['backend']} {r['encoding']:.2f} s ({args.rows / r['encoding']:,.0f} rows/s)" for r in results))
    print("\nThe MQTT publisher alone (one paho client, QoS 1; all PUBACKs back; flow-controlled only with --window): "
          + ", ".join(f"{r['backend']} {r['published']:,.0f} msgs/s" for r in results if r.get("published")))


if __name__ == "__main__":
    main()
