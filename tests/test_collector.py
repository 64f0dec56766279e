"""The collector against a real broker and PostgreSQL: bad input is refused, counted and kept;
the stream keeps flowing; a redelivered batch is stored once."""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from agent import wire
from collector.config import ServerConfig
from tests.conftest import Broker, Publisher, wait_until

ORIGIN = wire.Origin("acme", "hq", "gw1")


def good(seq: int, ts: float, value: float = 1.0, origin: wire.Origin = ORIGIN) -> bytes:
    return wire.encode_telemetry(origin, 1, seq, [wire.Point("host", ts, {"cpu_percent": value})])


def samples(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM samples").fetchone()[0]


def rejected(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT reason, count(*) FROM rejected_messages GROUP BY 1").fetchall())


def test_bad_messages_are_rejected_counted_and_the_stream_flows(
        run_collector, publisher: Publisher, server_config: ServerConfig, prefix: str) -> None:
    col = run_collector()
    topic = wire.topic(prefix, ORIGIN, wire.TELEMETRY)
    now = time.time()
    body = json.loads(good(1, now))
    bad = {
        "bad_json": b"{not json",
        "bad_version": json.dumps({**body, "v": 99}).encode(),
        "unknown_field": json.dumps({**body, "surprise": True}).encode(),
        "too_large": b'{"v":1,"pad":"' + b"x" * (10 * 1024 * 1024) + b'"}',
        "origin_mismatch": json.dumps({**body, "customer": "globex"}).encode(),
        "bad_value": json.dumps({**body, "points": [{"device": "host", "ts": now,
                                                      "metrics": {"cpu_percent": "high"}}]}).encode(),
    }
    seq = 1
    for reason, payload in bad.items():
        publisher.publish(topic, payload)
        seq += 1
        publisher.publish(topic, good(seq, now + seq))  # a good message right behind each bad one
    # a topic whose agent id is not a valid id
    publisher.publish(f"{prefix}/v1/acme/hq/gw!1/telemetry", good(99, now))
    expected = {**{reason: 1 for reason in bad}, "bad_topic": 1}
    wait_until(lambda: samples(server_config.database.url) == len(bad), message="every good sample stored")
    counts = wait_until(lambda: (r := rejected(server_config.database.url)) and sum(r.values()) == len(expected)
                        and r, message="every bad message recorded")
    assert counts == expected
    assert dict(col.stats.rejected) == expected


def test_same_batch_delivered_twice_is_stored_once(
        run_collector, publisher: Publisher, server_config: ServerConfig, prefix: str) -> None:
    run_collector()
    topic = wire.topic(prefix, ORIGIN, wire.TELEMETRY)
    now = time.time()
    points = [wire.Point("host", now - i, {"cpu_percent": float(i), "load1": 0.1 * i}) for i in range(50)]
    payload = wire.encode_telemetry(ORIGIN, 1, 1, points)
    publisher.publish(topic, payload)
    publisher.publish(topic, payload)  # the redelivery an at-least-once link produces
    wait_until(lambda: samples(server_config.database.url) == 100, message="100 samples")
    time.sleep(0.5)
    assert samples(server_config.database.url) == 100
    with psycopg.connect(server_config.database.url) as conn:
        assert conn.execute("SELECT messages, samples FROM agents").fetchone() == (2, 200)


def test_message_the_database_refuses_is_isolated(
        run_collector, publisher: Publisher, server_config: ServerConfig, prefix: str) -> None:
    """A birth PostgreSQL cannot store (an interval too large for its real column) becomes a
    store_error; its neighbours are stored."""
    col = run_collector()
    now = time.time()
    birth = wire.encode_birth(wire.Birth(ORIGIN, 1, "1", 1e300, {}, [], []))
    publisher.publish(wire.topic(prefix, ORIGIN, wire.BIRTH), birth)
    publisher.publish(wire.topic(prefix, ORIGIN, wire.TELEMETRY), good(1, now))
    wait_until(lambda: rejected(server_config.database.url).get("store_error") == 1, message="store_error kept")
    wait_until(lambda: samples(server_config.database.url) == 1, message="neighbour stored")
    assert col.stats.rejected["store_error"] == 1
    publisher.publish(wire.topic(prefix, ORIGIN, wire.BIRTH), b"")  # clear the retained message


def test_collector_restart_resumes_its_session(
        run_collector, publisher: Publisher, server_config: ServerConfig, prefix: str, broker: Broker) -> None:
    """Messages published while the collector is away wait in its persistent session."""
    if not broker.v5:
        pytest.skip(f"{broker.kind} keeps no session for an absent subscriber")
    from collector.ingest import Collector
    import threading
    col = Collector(server_config, protocol=broker.protocol)
    stop = threading.Event()
    thread = threading.Thread(target=col.run, args=(stop,), daemon=True)
    thread.start()
    assert col.ready.wait(10)
    time.sleep(0.3)
    stop.set()
    thread.join(30)
    now = time.time()
    topic = wire.topic(prefix, ORIGIN, wire.TELEMETRY)
    for i in range(20):
        publisher.publish(topic, good(i + 1, now - i))
    run_collector()
    wait_until(lambda: samples(server_config.database.url) == 20, message="queued messages delivered")
