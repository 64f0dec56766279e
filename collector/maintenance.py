"""Storage and liveness housekeeping, run by the scheduler: rollups, partitions, retention, offline sweep.

Each job takes a connection, is safe to run from several collectors at once, and returns a figure
for the log. On TimescaleDB the rollup, partitions and retention are the extension's own policies.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import psycopg

from collector.migrate import POSTGRES, backend_of
from collector.store import DAY, ensure_partitions

log = logging.getLogger(__name__)

PARTITION_DAYS_AHEAD = 3


def rollup(conn: psycopg.Connection, limit: int = 2000) -> int:
    """Recompute the 5-minute buckets ingest marked dirty; returns how many.

    Two transactions on purpose: claiming the buckets commits first, and a bucket whose row a batch
    still holds locked (ingest upserts it with DO UPDATE) is skipped, not claimed, until that batch
    commits; so the recompute's fresh snapshot sees every sample of the batches behind a bucket.
    """
    with conn.transaction():
        buckets = [r[0] for r in conn.execute(
            "DELETE FROM rollup_dirty WHERE bucket IN "
            "(SELECT bucket FROM rollup_dirty ORDER BY bucket LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING bucket",
            (limit,))]
    if not buckets:
        return 0
    try:
        with conn.transaction():
            conn.execute(
                "INSERT INTO samples_5m (bucket, device_id, series_id, v_avg, v_min, v_max, n) "
                "SELECT b.bucket, s.device_id, s.series_id, avg(s.value), min(s.value), max(s.value), count(*) "
                "FROM unnest(%s::timestamptz[]) AS b(bucket) "
                "JOIN samples s ON s.time >= b.bucket AND s.time < b.bucket + interval '5 minutes' "
                "GROUP BY b.bucket, s.device_id, s.series_id "
                "ON CONFLICT (device_id, series_id, bucket) DO UPDATE SET v_avg = EXCLUDED.v_avg, "
                "v_min = EXCLUDED.v_min, v_max = EXCLUDED.v_max, n = EXCLUDED.n",
                (buckets,))
    except BaseException:
        # put the claim back so the buckets are not forgotten
        with conn.transaction():
            conn.execute("INSERT INTO rollup_dirty (bucket) SELECT unnest(%s::timestamptz[]) ON CONFLICT DO NOTHING",
                         (buckets,))
        raise
    return len(buckets)


def rollup_backlog(conn: psycopg.Connection, budget_s: float = 20.0, limit: int = 2000) -> int:
    """Roll up batch after batch while there is a backlog (a site's spool, replayed history), within
    a time budget so the job's cadence holds; returns the buckets done."""
    import time
    done, started = 0, time.monotonic()
    while True:
        n = rollup(conn, limit)
        done += n
        if n < limit or time.monotonic() - started > budget_s:
            return done


def partitions(conn: psycopg.Connection, retention_days: int) -> int:
    """Create the next days' partitions and drop those past retention; returns partitions dropped."""
    today = int(time.time() // DAY)
    ensure_partitions(conn, set(range(today, today + PARTITION_DAYS_AHEAD + 1)))
    cutoff = today - retention_days
    dropped = 0
    with conn.transaction():
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'samples'::regclass").fetchall()
        for (name,) in rows:
            day = int(datetime.strptime(name[-8:], "%Y%m%d").replace(tzinfo=timezone.utc).timestamp() // DAY)
            if day + 1 <= cutoff:  # the whole day is past retention
                conn.execute(f"DROP TABLE {name}")
                log.info("dropped partition %s (past %d days retention)", name, retention_days)
                dropped += 1
        conn.execute("DELETE FROM samples_5m WHERE bucket < now() - make_interval(days => %s)",
                     (retention_days * 4,))
    return dropped


def prune(conn: psycopg.Connection, keep_days: int = 30) -> int:
    """Forget rejected messages and received sequence numbers after a while: evidence, not data."""
    with conn.transaction():
        cur = conn.execute("DELETE FROM rejected_messages WHERE received_at < now() - make_interval(days => %s)",
                           (keep_days,))
        seqs = conn.execute("DELETE FROM agent_sequences WHERE received_at < now() - make_interval(days => %s)",
                            (keep_days,))
    return cur.rowcount + seqs.rowcount


def liveness(conn: psycopg.Connection, stale_intervals: float = 3.0) -> int:
    """Mark offline the devices (and agents) that stopped reporting; logs each change once.

    A device is stale after ``stale_intervals`` of its own interval (``attrs.interval_s``, which
    SNMP targets announce: they are polled far less often than the agent reports), else its
    agent's."""
    with conn.transaction():
        devices = conn.execute(
            "WITH changed AS (UPDATE devices d SET status = 'offline', status_since = now() FROM agents a "
            "  WHERE a.id = d.agent_id AND d.status IN ('online', 'partial') "
            "  AND d.last_seen < now() - make_interval(secs => %(k)s * coalesce((d.attrs->>'interval_s')::float8, a.interval_s, 60)) "
            "  RETURNING d.id, d.name, d.last_seen) "
            "INSERT INTO device_events (device_id, kind, detail) "
            "SELECT id, 'offline', jsonb_build_object('reason', 'no data', 'last_seen', last_seen) FROM changed "
            "RETURNING device_id", {"k": stale_intervals}).fetchall()
        agents = conn.execute(
            "WITH changed AS (UPDATE agents SET state = 'offline', state_since = now() "
            "  WHERE state = 'online' AND last_seen < now() - make_interval(secs => %(k)s * coalesce(interval_s, 60)) "
            "  RETURNING id) "
            "INSERT INTO device_events (agent_id, kind, detail) "
            "SELECT id, 'agent_offline', %(detail)s FROM changed RETURNING agent_id",
            {"k": stale_intervals, "detail": json.dumps({"reason": "no data"})}).fetchall()
    for (device_id,) in devices:
        log.info("device %s went offline: no data for %.0f intervals", device_id, stale_intervals)
    for (agent_id,) in agents:
        log.info("agent %s went offline: no data for %.0f intervals", agent_id, stale_intervals)
    return len(devices) + len(agents)


@dataclass(frozen=True)
class Job:
    name: str
    seconds: int
    run: Callable[[psycopg.Connection], int]
    #: None: every backend; else only on this one.
    backend: str | None = None


def jobs(retention_days: int, stale_intervals: float) -> list[Job]:
    """The collector's housekeeping, as the scheduler registers it."""
    return [
        Job("rollup", 30, rollup_backlog, POSTGRES),
        Job("partitions", 3600, lambda c: partitions(c, retention_days), POSTGRES),
        Job("prune-rejected", 3600, prune),
        Job("liveness", 15, lambda c: liveness(c, stale_intervals)),
    ]


def applicable(conn: psycopg.Connection, all_jobs: list[Job]) -> list[Job]:
    backend = backend_of(conn)
    conn.commit()
    return [j for j in all_jobs if j.backend in (None, backend)]
