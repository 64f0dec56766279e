"""The store: one transaction per batch, duplicates ignored, registry and liveness kept, rollups exact."""

from __future__ import annotations

import time

import psycopg
import pytest

from agent import wire
from collector import maintenance
from collector.migrate import POSTGRES
from collector.store import Batch, Rejected, Store

ORIGIN = wire.Origin("acme", "hq", "gw1")


def telemetry(seq: int, ts: float, values: dict[str, float], device: str = "host") -> wire.Telemetry:
    return wire.Telemetry(ORIGIN, 1, seq, [wire.Point(device, ts, values)])


def count(conn: psycopg.Connection, sql: str, *params: object) -> int:
    row = conn.execute(sql, params).fetchone()
    conn.commit()
    return int(row[0])


def test_batch_is_stored_once_even_when_delivered_twice(store: Store) -> None:
    now = time.time()
    batch = Batch(telemetry=[telemetry(1, now - 10, {"cpu_percent": 10.0, "load1": 0.5}),
                             telemetry(2, now, {"cpu_percent": 12.0, "load1": 0.7})])
    first = store.write(batch)
    assert (first.received, first.stored) == (4, 4)
    again = store.write(batch)
    assert (again.received, again.stored, again.duplicates) == (4, 0, 4)
    # the same message twice inside one batch as well
    third = store.write(Batch(telemetry=[telemetry(3, now + 1, {"cpu_percent": 1.0})] * 2))
    assert (third.received, third.stored) == (2, 1)
    assert count(store.conn, "SELECT count(*) FROM samples") == 5
    latest = store.conn.execute(
        "SELECT se.key, lv.value FROM latest_values lv JOIN series se ON se.id = lv.series_id ORDER BY 1").fetchall()
    store.conn.commit()
    assert latest == [("cpu_percent", 1.0), ("load1", 0.7)]
    agents = store.conn.execute("SELECT messages, samples, last_seq FROM agents").fetchall()
    store.conn.commit()
    assert agents == [(6, 10, 3)]  # counts deliveries (including redeliveries), last_seq the highest


def test_older_sample_does_not_replace_latest_value(store: Store) -> None:
    now = time.time()
    store.write(Batch(telemetry=[telemetry(2, now, {"temp": 40.0})]))
    store.write(Batch(telemetry=[telemetry(1, now - 60, {"temp": 30.0})]))  # late backlog
    assert count(store.conn, "SELECT value FROM latest_values") == 40


def test_birth_registers_devices_and_catalogue(store: Store) -> None:
    birth = wire.Birth(ORIGIN, 7, "1.2.3", 10.0, {"hostname": "gw1"},
                       [wire.DeviceInfo("host", "host", "gw1", {}), wire.DeviceInfo("sw1", "switch", "Core SW", {"a": 1})],
                       [wire.MetricInfo("cpu_percent", "%", "gauge", "CPU busy")])
    store.write(Batch(births=[birth]))
    rows = store.conn.execute("SELECT key, kind, name FROM devices ORDER BY key").fetchall()
    assert rows == [("host", "host", "gw1"), ("sw1", "switch", "Core SW")]
    assert store.conn.execute("SELECT version, boot, interval_s FROM agents").fetchone() == ("1.2.3", 7, 10.0)
    assert store.conn.execute("SELECT unit FROM metric_catalogue WHERE name = 'cpu_percent'").fetchone() == ("%",)
    store.conn.commit()


def test_telemetry_from_unannounced_device_is_kept(store: Store) -> None:
    store.write(Batch(telemetry=[telemetry(1, time.time(), {"x": 1.0}, device="mystery")]))
    assert store.conn.execute("SELECT key, kind, status FROM devices").fetchone() == ("mystery", "unknown", "online")
    store.conn.commit()


def test_status_offline_marks_devices_offline_and_ignores_stale_boot(store: Store) -> None:
    now = time.time()
    store.write(Batch(births=[wire.Birth(ORIGIN, 200, "1", 10.0, {}, [wire.DeviceInfo("host", "host", "h", {})], [])],
                      statuses=[wire.Status(ORIGIN, "online", now, 200)],
                      telemetry=[telemetry(1, now, {"x": 1.0})]))
    assert store.conn.execute("SELECT state FROM agents").fetchone() == ("online",)
    store.conn.commit()
    # a Last Will of an older process arrives late: ignored
    store.write(Batch(statuses=[wire.Status(ORIGIN, "offline", now, 100)]))
    assert store.conn.execute("SELECT state FROM agents").fetchone() == ("online",)
    store.conn.commit()
    store.write(Batch(statuses=[wire.Status(ORIGIN, "offline", now, 200)]))
    assert store.conn.execute("SELECT state FROM agents").fetchone() == ("offline",)
    assert store.conn.execute("SELECT status FROM devices").fetchone() == ("offline",)
    kinds = [r[0] for r in store.conn.execute("SELECT kind FROM device_events ORDER BY id")]
    store.conn.commit()
    assert sorted(kinds[:2]) == ["agent_online", "online"]
    assert kinds[2:] == ["agent_offline", "offline"]


def test_rejected_messages_are_kept_truncated(store: Store) -> None:
    payload = b"x" * 10_000
    store.write(Batch(rejected=[Rejected("fleetcare/v1/a/b/c/telemetry", "bad_json", "not JSON", payload)]))
    row = store.conn.execute("SELECT reason, size, length(payload) FROM rejected_messages").fetchone()
    store.conn.commit()
    assert row == ("bad_json", 10_000, 4096)


def test_failed_batch_stores_nothing(store: Store) -> None:
    now = time.time()
    store.write(Batch(telemetry=[telemetry(1, now, {"a": 1.0})]))
    # PostgreSQL refuses NUL in text and jsonb: a realistic poison message
    bad = Batch(telemetry=[telemetry(2, now + 1, {"a": 2.0})],
                births=[wire.Birth(ORIGIN, 1, "1", 10.0, {"note": "nul\u0000byte"}, [], [])])
    with pytest.raises(psycopg.Error):
        store.write(bad)
    assert count(store.conn, "SELECT count(*) FROM samples") == 1
    # the registry cache was reset: later writes still work
    assert store.write(Batch(telemetry=[telemetry(3, now + 2, {"b": 1.0})])).stored == 1


def test_partitions_are_created_for_old_and_new_days(store: Store) -> None:
    if store.backend != POSTGRES:
        pytest.skip("daily partitions are the plain-PostgreSQL path")
    now = time.time()
    store.write(Batch(telemetry=[telemetry(1, now - 3 * 86_400, {"a": 1.0}), telemetry(2, now, {"a": 2.0})]))
    names = [r[0] for r in store.conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'samples'::regclass")]
    store.conn.commit()
    assert len(names) == 4  # three days ago … today


def test_rollup_matches_raw_samples(store: Store) -> None:
    if store.backend != POSTGRES:
        pytest.skip("on TimescaleDB the continuous aggregate does this")
    base = (time.time() // 300) * 300 - 900  # three whole buckets ago
    values = [float(v) for v in range(30)]
    store.write(Batch(telemetry=[telemetry(i, base + i * 30, {"v": v}) for i, v in enumerate(values)]))
    assert maintenance.rollup(store.conn) == 3
    rows = store.conn.execute("SELECT v_avg, v_min, v_max, n FROM samples_5m ORDER BY bucket").fetchall()
    store.conn.commit()
    assert rows == [(4.5, 0.0, 9.0, 10), (14.5, 10.0, 19.0, 10), (24.5, 20.0, 29.0, 10)]
    # a late sample re-dirties its bucket and the next run corrects it
    store.write(Batch(telemetry=[telemetry(99, base + 15, {"v": 100.0})]))
    assert maintenance.rollup(store.conn) == 1
    first = store.conn.execute("SELECT v_max, n FROM samples_5m ORDER BY bucket LIMIT 1").fetchone()
    store.conn.commit()
    assert first == (100.0, 11)
    assert maintenance.rollup(store.conn) == 0


def test_liveness_marks_silent_devices_offline_once(store: Store) -> None:
    now = time.time()
    store.write(Batch(births=[wire.Birth(ORIGIN, 1, "1", 10.0, {}, [], [])],
                      telemetry=[telemetry(1, now, {"a": 1.0})]))
    assert maintenance.liveness(store.conn) == 0
    store.conn.execute("UPDATE devices SET last_seen = now() - interval '31 seconds'")
    store.conn.execute("UPDATE agents SET last_seen = now() - interval '31 seconds', state = 'online'")
    store.conn.commit()
    assert maintenance.liveness(store.conn) == 2  # the device and its agent
    assert maintenance.liveness(store.conn) == 0  # a state change is reported once
    assert store.conn.execute("SELECT status FROM devices").fetchone() == ("offline",)
    store.conn.commit()


def test_partition_job_creates_days_ahead(store: Store) -> None:
    if store.backend != POSTGRES:
        pytest.skip("plain-PostgreSQL path")
    assert maintenance.partitions(store.conn, retention_days=90) == 0
    n = count(store.conn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'samples'::regclass")
    assert n == maintenance.PARTITION_DAYS_AHEAD + 1
    # a partition past retention is dropped
    store.write(Batch(telemetry=[telemetry(1, time.time() - 10 * 86_400, {"a": 1.0})]))
    assert maintenance.partitions(store.conn, retention_days=5) == 1
