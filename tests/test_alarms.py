"""Detection on stored data: the worker turns committed batches into alarms, once, explained, and health.

Against the real PostgreSQL: a Store writes batches exactly as the collector does, the worker judges
them; restarts are a new worker on the same database.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from agent import wire
from alerting.worker import DetectionWorker
from collector.store import Batch, Store

ORIGIN = wire.Origin("acme", "hq", "gw1")
T0 = float(int(time.time()) - 2 * 86_400)


def birth(devices: dict[str, str], interval: float = 60.0) -> wire.Birth:
    return wire.Birth(ORIGIN, 1, "test", interval, {}, [wire.DeviceInfo(d, k, d, {}) for d, k in devices.items()], [])


class Feed:
    """Writes batches through the Store and hands each result to the worker, as the collector does."""

    def __init__(self, store: Store, worker: DetectionWorker, db_url: str) -> None:
        self.store, self.worker = store, worker
        self.conn = psycopg.connect(db_url, autocommit=True)
        self.seq = 0

    def batch(self, points: list[wire.Point] = (), events: list[wire.Event] = (), births=()) -> list:
        self.seq += 1
        b = Batch(births=list(births))
        if points:
            b.telemetry.append(wire.Telemetry(ORIGIN, 1, self.seq, list(points)))
        if events:
            self.seq += 1
            b.events.append(wire.Events(ORIGIN, 1, self.seq, list(events)))
        result = self.store.write(b)
        return self.worker.process(self.conn, result, time.time())

    def minutes(self, device: str, start: float, n: int, metrics) -> list:
        """n one-minute points; ``metrics(i)`` gives each point's values."""
        found = []
        for i in range(0, n, 60):  # an hour per batch
            found += self.batch([wire.Point(device, start + 60 * k, metrics(k)) for k in range(i, min(n, i + 60))])
        return found

    def rows(self, sql: str, *params) -> list[tuple]:
        rows = self.conn.execute(sql, params).fetchall()
        self.conn.commit()
        return rows


@pytest.fixture
def feed(store: Store, db_url: str):
    f = Feed(store, DetectionWorker(db_url), db_url)
    f.batch(births=[birth({"srv1": "server", "sw1": "switch"})])
    yield f
    f.conn.close()


def test_threshold_raises_once_explains_and_clears(feed: Feed) -> None:
    # disk at 60 %, then 97 % for 30 minutes, then back to 60 %
    def disk(k: int) -> dict[str, float]:
        return {"disk_used_percent{mount=/data}": 97.0 if 60 <= k < 90 else 60.0}
    feed.minutes("srv1", T0, 150, disk)
    rows = feed.rows("SELECT detector, severity, state, text, evidence, opened_at, cleared_at FROM alarms "
                     "WHERE detector = 'threshold'")
    assert len(rows) == 1, rows
    detector, severity, state, text, evidence, opened, cleared = rows[0]
    assert (severity, state) == ("critical", "cleared")
    assert "disk /data 97 %" in text and "critical at 95 %" in text
    assert evidence["value"] == 97.0 and evidence["limits"] == {"warning": 85, "critical": 95}
    assert opened.timestamp() == T0 + 62 * 60  # raised after its 2 minutes' minimum duration
    assert cleared.timestamp() == T0 + 90 * 60
    changes = feed.rows("SELECT change FROM alarm_events ORDER BY id")
    assert [c for (c,) in changes] == ["raised", "cleared"]


def test_redelivered_batch_raises_nothing_twice(feed: Feed, store: Store) -> None:
    points = [wire.Point("srv1", T0 + 60 * k, {"cpu_percent": 99.0}) for k in range(40)]
    feed.batch(points)
    b = Batch(telemetry=[wire.Telemetry(ORIGIN, 1, 1, points)])
    again = store.write(b)  # the same samples again: stored 0, judged again
    assert again.stored == 0
    assert feed.worker.process(feed.conn, again, time.time()) == []
    assert feed.rows("SELECT count(*) FROM alarms")[0][0] == 1


def test_silent_device_while_its_agent_reports(feed: Feed) -> None:
    for k in range(30):
        pts = [wire.Point("srv1", T0 + 60 * k, {"cpu_percent": 10.0})]
        if k < 5:
            pts.append(wire.Point("sw1", T0 + 60 * k, {"cpu_percent": 10.0}))
        feed.batch(pts)
    rows = feed.rows("SELECT d.name, al.severity, al.state, al.text FROM alarms al JOIN devices d ON d.id = al.device_id "
                     "WHERE detector = 'silence'")
    assert len(rows) == 1
    name, severity, state, text = rows[0]
    assert (name, severity, state) == ("sw1", "critical", "active")
    assert "no data for 10 min" in text and "agent still reports" in text
    feed.batch([wire.Point("sw1", T0 + 60 * 30, {"cpu_percent": 10.0})])
    assert feed.rows("SELECT state, clear_text FROM alarms WHERE detector = 'silence'") == [
        ("cleared", "sw1 reporting again")]


def test_traps_link_down_cleared_by_link_up_and_informational_traps_kept_off(feed: Feed) -> None:
    def trap(name: str, k: int, severity: str, if_index: str = "3") -> wire.Event:
        return wire.Event("sw1", T0 + 60 * k, "trap", severity, f"Interface went {name}",
                          {"trap": name, "if_index": if_index, "trap_oid": "1.3.6.1.6.3.1.1.5.3"})
    feed.batch([wire.Point("sw1", T0, {"cpu_percent": 5.0})], [trap("link_down", 1, "warning")])
    feed.batch(events=[trap("link_down", 2, "warning", if_index="4")])
    active = feed.rows("SELECT series, severity FROM alarms WHERE state = 'active' ORDER BY series")
    assert active == [("link_down{if_index=3}", "warning"), ("link_down{if_index=4}", "warning")]
    feed.batch(events=[trap("link_up", 3, "info")])
    active = feed.rows("SELECT series FROM alarms WHERE state = 'active'")
    assert active == [("link_down{if_index=4}",)]
    feed.batch(events=[wire.Event("sw1", T0 + 240, "trap", "info", "UPS self-test completed",
                                  {"trap": "ups_test_completed"})])
    assert feed.rows("SELECT count(*) FROM alarms")[0][0] == 2


def test_trap_with_no_clearing_trap_expires_after_its_hold(feed: Feed) -> None:
    feed.batch(events=[wire.Event("sw1", T0, "trap", "warning", "Device refused an SNMP request",
                                  {"trap": "authentication_failure"})])
    assert feed.rows("SELECT state FROM alarms") == [("active",)]
    feed.batch([wire.Point("sw1", T0 + 3700, {"cpu_percent": 5.0})])
    state, text = feed.rows("SELECT state, clear_text FROM alarms")[0]
    assert state == "cleared" and "no repeat of authentication_failure" in text


def test_reboot_from_uptime_and_event_is_one_finding(feed: Feed) -> None:
    feed.batch([wire.Point("srv1", T0, {"uptime_seconds": 5000.0})])
    feed.batch([wire.Point("srv1", T0 + 60, {"uptime_seconds": 30.0})],
               [wire.Event("srv1", T0 + 55, "reboot", "warning", "srv1 rebooted", {})])
    rows = feed.rows("SELECT detector, state, opened_at = cleared_at FROM alarms")
    assert rows == [("reboot", "cleared", True)]


def test_health_falls_with_alarms_and_recovers_and_is_a_series(feed: Feed) -> None:
    feed.minutes("srv1", T0, 20, lambda k: {"cpu_percent": 10.0})
    assert feed.rows("SELECT health FROM devices WHERE key = 'srv1'") == [(100.0,)]
    feed.minutes("srv1", T0 + 20 * 60, 30, lambda k: {"disk_used_percent{mount=/data}": 97.0})
    health, breakdown = feed.rows("SELECT health, health_breakdown FROM devices WHERE key = 'srv1'")[0]
    assert health < 70
    assert breakdown[0]["signal"] == "alarm" and "disk /data" in breakdown[0]["text"]
    feed.minutes("srv1", T0 + 50 * 60, 10, lambda k: {"disk_used_percent{mount=/data}": 50.0})
    assert feed.rows("SELECT health FROM devices WHERE key = 'srv1'")[0][0] == 100.0
    scores = [s for (s,) in feed.rows("SELECT score FROM health_scores hs JOIN devices d ON d.id = hs.device_id "
                                      "WHERE d.key = 'srv1' ORDER BY time")]
    assert scores[0] == 100.0 and min(scores) < 70 and scores[-1] == 100.0


def test_restart_keeps_a_standing_alarm_and_clears_a_gone_one(feed: Feed, store: Store, db_url: str) -> None:
    feed.minutes("srv1", T0, 30, lambda k: {"cpu_percent": 10.0, "disk_used_percent{mount=/data}": 97.0,
                                            "temperature_celsius": 90.0 if k < 20 else 40.0})
    before = feed.rows("SELECT id, series FROM alarms WHERE state = 'active' ORDER BY series")
    assert [s for _, s in before] == ["disk_used_percent{mount=/data}"]
    # a crash: the temperature alarm's clearing was stored as samples but never judged
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE alarms SET state = 'active', cleared_at = NULL WHERE series = 'temperature_celsius'")
    fresh = Feed(store, DetectionWorker(db_url), db_url)
    fresh.minutes("srv1", T0 + 30 * 60, 5, lambda k: {"cpu_percent": 10.0, "disk_used_percent{mount=/data}": 97.0,
                                                      "temperature_celsius": 40.0})
    after = fresh.rows("SELECT id, series FROM alarms WHERE state = 'active' ORDER BY series")
    assert after == before  # the disk alarm is the same row: not raised a second time
    temp = fresh.rows("SELECT clear_text FROM alarms WHERE series = 'temperature_celsius'")[0][0]
    assert "no longer present" in temp
    fresh.conn.close()


def test_agent_offline_and_snmp_states_follow_the_database(feed: Feed, db_url: str) -> None:
    feed.batch([wire.Point("sw1", T0, {"cpu_percent": 5.0})])
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE agents SET state = 'offline', state_since = now()")
        conn.execute("UPDATE devices SET status = 'auth_failure', status_detail = 'wrong digest: check auth_key', "
                     "status_since = now() WHERE key = 'sw1'")
    found = feed.worker.sweep(feed.conn)
    assert {f.alarm.detector for f in found} == {"agent_offline", "snmp"}
    assert feed.worker.sweep(feed.conn) == []  # nothing new the second time
    rows = dict(feed.rows("SELECT detector, text FROM alarms WHERE state = 'active'"))
    assert "site agent acme/hq/gw1 offline" in rows["agent_offline"]
    assert "SNMP credentials refused: sw1" in rows["snmp"] and "check auth_key" in rows["snmp"]
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE agents SET state = 'online', state_since = now()")
        conn.execute("UPDATE devices SET status = 'online' WHERE key = 'sw1'")
    feed.worker.sweep(feed.conn)
    assert feed.rows("SELECT count(*) FROM alarms WHERE state = 'active'")[0][0] == 0


def test_worker_thread_survives_losing_its_database_connection(store: Store, db_url: str) -> None:
    """The connection killed between two batches: the next batch is held, retried on a new one, stored."""
    import threading

    from tests.conftest import wait_until
    worker = DetectionWorker(db_url, sweep_s=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        def send(k0: int, value: float) -> None:
            pts = [wire.Point("srv1", T0 + 60 * k, {"mem_used_percent": value}) for k in range(k0, k0 + 30)]
            worker.submit(store.write(Batch(births=[birth({"srv1": "server"})] if k0 == 0 else [],
                                            telemetry=[wire.Telemetry(ORIGIN, 1, k0 + 1, pts)])), time.time())
        send(0, 99.0)
        wait_until(lambda: worker.idle.is_set() and worker.conn is not None, message="first batch judged")
        with psycopg.connect(db_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (worker.conn.info.backend_pid,))
        send(30, 10.0)
        wait_until(lambda: worker.processed == 2 and worker.idle.is_set(), timeout=20, message="second batch judged")
    finally:
        stop.set()
        thread.join(10)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT detector, state FROM alarms").fetchall()
    assert rows == [("threshold", "cleared")]
