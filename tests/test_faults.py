"""Faults with real processes: the broker, the database, the collector and the agent go away (stopped,
or killed with SIGKILL) while data flows, and every sample the agent produced — its audit record,
``spool.audit_path`` — ends up in ``samples`` exactly once (DESIGN.md, "Delivery guarantees").

Each test runs its own Mosquitto (persistent, on a free loopback port) and its own embedded
PostgreSQL, so it can stop and restart them without touching the machine's services.

Mosquitto 2.0 does not persist shared subscriptions: after a restart the collector's session comes
back without them until the collector reconnects and subscribes again, and a message published in
between matches nobody (PUBACK reason "no matching subscribers"). The agent keeps such a message in
its spool and offers it again (agent/runner.py); the broker-restart scenarios (1 and 4) rely on it.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import Processes, wait_until
from tests.faults_support import STORED_SQL, Rig, collector_stats, read_audit, require_mosquitto

DEVICES = [("sw1", "switch"), ("sw2", "switch"), ("ups1", "ups"), ("ups2", "ups")]
OUTAGE_S = 30.0


@pytest.fixture
def rig(tmp_path: Path, processes: Processes) -> Iterator[Rig]:
    require_mosquitto()
    rig = Rig(tmp_path, processes)
    try:
        rig.start_services()
        yield rig
    finally:
        rig.teardown()


def sleep_to_half_second() -> None:
    """Sleep to the middle of a second. The agent (interval 1 s) collects on whole seconds and
    writes each message to its audit file just before spooling it; a SIGKILL between the two would
    leave an audited message that never existed in the spool. Mid-second the agent is idle."""
    time.sleep((0.5 - time.time() % 1.0) % 1.0)


def finish(rig: Rig) -> int:
    """Catch up, stop the agent gracefully and check the database against the audit record."""
    rig.wait_caught_up()
    rig.stop_agent()
    assert "unsent messages" not in rig.processes.log("agent"), rig.processes.log("agent")
    total = rig.assert_exactly_audited()
    rig.assert_agent_clean()
    return total


def test_broker_outage(rig: Rig) -> None:
    """The broker is away for 30 s: the agent spools on (paho keeps its in-flight messages, the disk
    spool the rest), the restarted broker restores the collector's session from its persistence
    file, and everything arrives once."""
    rig.start_collector("collector")
    rig.start_agent(DEVICES)
    rig.wait_stored(1, timeout=30, message="first samples")
    time.sleep(2)

    rig.stop_broker()
    stopped = time.monotonic()
    wait_until(lambda: rig.spooled() >= 5, timeout=15, message="the agent spooling while the broker is away")
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
    held = rig.spooled()
    assert held >= 25, f"only {held} messages spooled during a {OUTAGE_S:.0f} s outage"
    rig.start_broker()

    finish(rig)
    assert "lost broker" in rig.processes.log("agent")


def test_database_outage(rig: Rig) -> None:
    """PostgreSQL is away for 30 s: the collector holds the messages unacknowledged (the broker keeps
    the rest queued in its session), retries with back-off and resumes on the same URL."""
    url = rig.db_url
    rig.start_collector("collector")
    rig.start_agent(DEVICES)
    rig.wait_stored(1, timeout=30, message="first samples")
    time.sleep(2)

    assert rig.pg is not None
    rig.pg.stop()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2).close()
    time.sleep(OUTAGE_S)
    assert rig.pg.start() == url, "the restarted PostgreSQL must keep its URL (socket directory)"

    finish(rig)
    log = rig.processes.log("collector")
    assert "database unavailable" in log and "unacknowledged" in log, log
    assert "database back after" in log, log


def test_collector_killed_mid_batch(rig: Rig) -> None:
    """A collector SIGKILLed with a batch's transaction open; its persistent session redelivers."""
    devices = [(f"sw{i}", "switch") for i in range(20)] + [(f"ups{i}", "ups") for i in range(20)]
    client_id = f"col-{rig.prefix}"
    first = rig.start_collector("collector-1", client_id)
    first.send_signal(signal.SIGTERM)  # its session (and subscription) stays with the broker
    assert first.wait(30) == 0

    rig.start_agent(devices)
    time.sleep(15)  # a backlog queues in the collector's session: ~15 messages, ~8,000 samples
    # Small batches, so the backlog takes many transactions; kill while one of them is open (its
    # COPY done or under way), after at least one batch has been committed.
    second = rig.start_collector("collector-2", client_id, wait=False, collector_batch_samples="1500")
    in_batch = ("SELECT (SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "        AND state IN ('active', 'idle in transaction') AND xact_start IS NOT NULL "
                "        AND (query LIKE 'COPY samples%%' OR query LIKE 'COPY staging%%')) > 0 "
                "   AND EXISTS (SELECT FROM samples)")
    deadline = time.monotonic() + 60
    with psycopg.connect(rig.db_url, autocommit=True) as conn:
        while not conn.execute(in_batch, (client_id,)).fetchone()[0]:
            assert time.monotonic() < deadline, f"never saw a batch in progress\n{rig.logs()}"
            assert second.poll() is None, rig.processes.log("collector-2")
    second.send_signal(signal.SIGKILL)
    second.wait(10)
    stored_at_kill = rig.stored_count()
    produced = len(set(read_audit(rig.audit_path)))
    assert stored_at_kill < produced, "the whole backlog was stored before the kill"

    third = rig.start_collector("collector-3", client_id)
    assert "(session resumed)" in rig.processes.log("collector-3")
    finish(rig)
    third.send_signal(signal.SIGTERM)
    assert third.wait(30) == 0
    stats = collector_stats(rig.processes.log("collector-3"))
    assert stats["samples"] >= produced - stored_at_kill, stats
    print(f"\ncollector killed mid-batch with {stored_at_kill} of {produced} samples stored; "
          f"the restarted collector: {stats}")


def test_agent_killed_with_full_spool(rig: Rig) -> None:
    """The agent is SIGKILLed while its spool holds an outage's worth of messages; restarted on
    the same data_dir it sends them all (and the audit file is appended by both runs). The new
    agent connects at once while the collector waits out its reconnect back-off, so its first
    messages meet a broker without the collector's shared subscription: they must stay spooled."""
    rig.start_collector("collector")
    first = rig.start_agent(DEVICES)
    rig.wait_stored(1, timeout=30, message="first samples")
    rig.stop_broker()
    wait_until(lambda: rig.spooled() >= 8, timeout=20, message="8 messages spooled")
    sleep_to_half_second()
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    held = rig.spooled()
    assert held >= 8

    rig.start_broker()
    rig.start_agent(DEVICES)
    wait_until(lambda: rig.spooled() < held, timeout=30, message="the old spool draining")
    finish(rig)


def test_two_collectors_one_killed(rig: Rig) -> None:
    """Two collectors share the stream; one is SIGKILLed mid-stream and replaced (same client id)."""
    # What this relies on (Mosquitto 2, MQTT 5 shared subscriptions): the broker hands each message
    # of $share/<group>/... to one member, round robin over the members' sessions, whether the
    # member is connected or not. The killed collector's session (session expiry 600 s) therefore
    # keeps its unacknowledged in-flight messages and goes on receiving its share while it is away,
    # queued; the survivor does not get them. The replacement, connecting with the same client id
    # and clean_start = false, resumes that session and receives them. (Without a replacement those
    # messages would wait until the session expired, then be gone.)
    a_id, b_id = f"col-a-{rig.prefix}", f"col-b-{rig.prefix}"
    # A waits a whole second before writing a batch, so at any moment it holds messages unacknowledged.
    a = rig.start_collector("collector-a", a_id, collector_batch_ms="1000")
    b = rig.start_collector("collector-b", b_id)
    rig.start_agent(DEVICES + [("sw3", "switch"), ("ups3", "ups")])
    rig.wait_stored(1, timeout=30, message="first samples")
    time.sleep(4.3)
    a.send_signal(signal.SIGKILL)
    a.wait(10)
    time.sleep(6)  # A's share queues in its session meanwhile
    rig.stop_agent()  # everything is with the broker now (or stored)
    assert "unsent messages" not in rig.processes.log("agent"), rig.processes.log("agent")

    rig.wait_settled()
    held = set(read_audit(rig.audit_path)) - set(rig.query(STORED_SQL))
    assert held, "the survivor stored everything: nothing was queued for the killed collector"
    replacement = rig.start_collector("collector-a2", a_id)
    assert "(session resumed)" in rig.processes.log("collector-a2")
    total = rig.assert_exactly_audited()
    rig.assert_agent_clean()

    for proc in (b, replacement):
        proc.send_signal(signal.SIGTERM)
    assert b.wait(30) == 0 and replacement.wait(30) == 0
    b_stats = collector_stats(rig.processes.log("collector-b"))
    a2_stats = collector_stats(rig.processes.log("collector-a2"))
    assert 0 < b_stats["samples"] < total, (b_stats, total)  # B did not get everything: shared
    assert a2_stats["samples"] >= len(held), (a2_stats, len(held))  # A's share reached its replacement
    print(f"\n{total} samples: survivor stored {b_stats['samples']}, {len(held)} waited in the killed "
          f"collector's session, its replacement received {a2_stats['samples']}")
