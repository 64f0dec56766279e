"""The embedded fallbacks start, work and stop cleanly, leaving no process behind."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from agent import mqtt, wire
from collector.config import ServerConfig
from collector.ingest import Collector
from collector.migrate import migrate
from fleetcare import embedded
from tests.conftest import Broker, Publisher, wait_until


def _gone(pid: int | None) -> bool:
    return pid is None or not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_embedded_postgres_starts_keeps_data_and_stops(tmp_path: Path) -> None:
    pg = embedded.EmbeddedPostgres(tmp_path / "pg")
    url = pg.start()
    pid = pg.pid
    assert pid and psutil.pid_exists(pid)
    migrate(url)
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO customers (key, name) VALUES ('kept', 'Kept')")
    children = psutil.Process(pid).children(recursive=True)
    pg.stop()
    wait_until(lambda: _gone(pid) and all(_gone(c.pid) for c in children), timeout=15,
               message="postmaster and its children gone")
    again = embedded.EmbeddedPostgres(tmp_path / "pg")  # data persists across runs
    with psycopg.connect(again.start()) as conn:
        assert conn.execute("SELECT name FROM customers").fetchone() == ("Kept",)
    again.stop()


@pytest.mark.skipif(embedded.PrivateMosquitto.available() is None, reason="mosquitto binary not installed")
def test_private_mosquitto_speaks_v5_and_stops(tmp_path: Path) -> None:
    broker = embedded.PrivateMosquitto(tmp_path / "mq")
    url = broker.start()
    pid = broker.pid
    assert mqtt.negotiate_protocol(url, timeout=5) == mqtt.MQTTv5
    broker.stop()
    assert _gone(pid)


def test_amqtt_fallback_carries_the_pipeline(db_url: str, tmp_path: Path) -> None:
    """On a machine without Mosquitto: 3.1.1 negotiated, telemetry stored, broker stopped cleanly."""
    broker = embedded.InProcessAmqtt()
    url = broker.start()
    broker_thread = broker._thread
    try:
        protocol = mqtt.negotiate_protocol(url, timeout=10)
        assert protocol == mqtt.MQTTv311
        cfg = ServerConfig()
        cfg.database.url = db_url
        cfg.mqtt.url = url
        cfg.collector.batch_ms = 50
        col = Collector(cfg, protocol=protocol)
        stop = threading.Event()
        thread = threading.Thread(target=col.run, args=(stop,), daemon=True)
        thread.start()
        assert col.ready.wait(10)
        time.sleep(0.5)
        pub = Publisher(Broker(url, protocol, "amqtt"))
        origin = wire.Origin("acme", "hq", "gw1")
        pub.publish(wire.topic(wire.DEFAULT_PREFIX, origin, wire.TELEMETRY),
                    wire.encode_telemetry(origin, 1, 1, [wire.Point("host", time.time(), {"cpu_percent": 3.0})]))
        pub.close()

        def stored() -> int:
            with psycopg.connect(db_url) as conn:
                return conn.execute("SELECT count(*) FROM samples").fetchone()[0]
        wait_until(stored, timeout=15, message="sample stored through amqtt")
        stop.set()
        thread.join(30)
    finally:
        broker.stop()
    assert broker_thread is not None and not broker_thread.is_alive()
