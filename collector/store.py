"""Writing a batch: COPY into a staging table, then one idempotent insert, all in one transaction.

Duplicates (a redelivered message, a sample sent twice) are ignored by the samples primary key
(device, series, time), so at-least-once delivery stores every sample once. The same transaction
refreshes each device's latest values and last-seen time and, on plain PostgreSQL, marks the
5-minute rollup buckets it touched.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg import sql

from agent import wire
from collector.migrate import POSTGRES
from collector.registry import Registry

log = logging.getLogger(__name__)

DAY = 86_400
PARTITION_LOCK = 0x666C6566

# The staging table carries epoch seconds as float8: cheaper to send than timestamps.
_STAGING = ("CREATE TEMP TABLE IF NOT EXISTS staging "
            "(t float8 NOT NULL, device_id int4 NOT NULL, series_id int4 NOT NULL, value float8 NOT NULL) "
            "ON COMMIT DELETE ROWS")


@dataclass
class Rejected:
    topic: str
    reason: str
    detail: str
    payload: bytes


@dataclass
class Batch:
    telemetry: list[wire.Telemetry] = field(default_factory=list)
    births: list[wire.Birth] = field(default_factory=list)
    statuses: list[wire.Status] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return sum(t.sample_count for t in self.telemetry)

    def __len__(self) -> int:
        return len(self.telemetry) + len(self.births) + len(self.statuses) + len(self.rejected)


@dataclass
class WriteResult:
    received: int
    stored: int

    @property
    def duplicates(self) -> int:
        return self.received - self.stored


def partition_name(day: int) -> str:
    return "samples_p" + datetime.fromtimestamp(day * DAY, timezone.utc).strftime("%Y%m%d")


def ensure_partitions(conn: psycopg.Connection, days: set[int]) -> list[str]:
    """Create the daily partitions of ``samples`` that ``days`` (epoch days) need; returns new names."""
    created = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
        existing = {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'samples'::regclass")}
        for day in sorted(days):
            name = partition_name(day)
            if name in existing:
                continue
            start = datetime.fromtimestamp(day * DAY, timezone.utc)
            conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF samples FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(name), sql.Literal(start), sql.Literal(start + timedelta(days=1))))
            created.append(name)
    for name in created:
        log.info("created partition %s", name)
    return created


class Store:
    """Owns one connection; not thread-safe (the collector has one writer thread)."""

    def __init__(self, conn: psycopg.Connection, backend: str, stale_intervals: float = 3.0) -> None:
        self.conn = conn
        self.backend = backend
        self.stale_intervals = stale_intervals
        self.registry = Registry()
        self._partitions: set[int] = set()
        conn.execute(_STAGING)
        conn.commit()

    def write(self, batch: Batch) -> WriteResult:
        """Store the batch in one transaction; on any error nothing is stored and the caller retries."""
        conn = self.conn
        try:
            if self.backend == POSTGRES:
                self._ensure_partitions(batch)
            result = self._write(batch)
            conn.commit()
            return result
        except BaseException:
            if not conn.closed:
                conn.rollback()
            self.registry.clear()  # ids created in the failed transaction no longer exist
            raise

    def _write(self, batch: Batch) -> WriteResult:
        conn = self.conn
        registry = self.registry
        for birth in batch.births:
            registry.apply_birth(conn, birth)
        rows: list[tuple[float, int, int, float]] = []
        per_agent: dict[int, list[int]] = {}
        for t in batch.telemetry:
            agent = registry.agent_id(conn, t.origin)
            counters = per_agent.setdefault(agent, [0, 0, -1])
            counters[0] += 1
            counters[1] += t.sample_count
            counters[2] = max(counters[2], t.seq)
            for p in t.points:
                device = registry.device_id(conn, agent, p.device)
                series = registry.series_id
                rows.extend((p.ts, device, series(conn, k), v) for k, v in p.metrics.items())
        stored = 0
        if rows:
            with conn.cursor() as cur:
                with cur.copy("COPY staging (t, device_id, series_id, value) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["float8", "int4", "int4", "float8"])
                    for row in rows:
                        copy.write_row(row)
                cur.execute("INSERT INTO samples (time, device_id, series_id, value) "
                            "SELECT to_timestamp(t), device_id, series_id, value FROM staging "
                            "ON CONFLICT DO NOTHING")
                stored = cur.rowcount
                cur.execute(
                    "INSERT INTO latest_values (device_id, series_id, time, value) "
                    "SELECT DISTINCT ON (device_id, series_id) device_id, series_id, to_timestamp(t), value "
                    "FROM staging ORDER BY device_id, series_id, t DESC "
                    "ON CONFLICT (device_id, series_id) DO UPDATE SET time = EXCLUDED.time, value = EXCLUDED.value "
                    "WHERE latest_values.time < EXCLUDED.time")
                self._touch_devices(cur)
                if self.backend == POSTGRES:
                    # DO UPDATE (not DO NOTHING) locks the bucket row, so the rollup job cannot
                    # claim it until this batch commits (see collector/maintenance.py).
                    cur.execute("INSERT INTO rollup_dirty (bucket) "
                                "SELECT DISTINCT date_bin('5 minutes', to_timestamp(t), 'epoch') FROM staging "
                                "ON CONFLICT (bucket) DO UPDATE SET bucket = EXCLUDED.bucket")
        for agent, (messages, samples, seq) in per_agent.items():
            conn.execute("UPDATE agents SET messages = messages + %s, samples = samples + %s, "
                         "last_seq = greatest(last_seq, %s), last_seen = now() WHERE id = %s",
                         (messages, samples, seq, agent))
        for status in batch.statuses:
            registry.apply_status(conn, status)
        for r in batch.rejected:
            conn.execute("INSERT INTO rejected_messages (topic, reason, detail, size, payload) "
                         "VALUES (%s, %s, %s, %s, %s)",
                         (r.topic[:1000], r.reason, r.detail[:2000], len(r.payload), r.payload[:4096]))
        return WriteResult(len(rows), stored)

    def _ensure_partitions(self, batch: Batch) -> None:
        """Before the batch's transaction, so a new partition is never rolled back with a failed batch."""
        times = [p.ts for t in batch.telemetry for p in t.points]
        if not times:
            return
        needed = set(range(int(min(times) // DAY), int(max(times) // DAY) + 1)) - self._partitions
        if needed:
            ensure_partitions(self.conn, needed)
            self.conn.commit()
            self._partitions |= needed

    def _touch_devices(self, cur: psycopg.Cursor) -> None:
        """last_seen from the newest sample; online when that sample is recent enough."""
        cur.execute(
            "WITH newest AS (SELECT device_id, to_timestamp(max(t)) AS seen FROM staging GROUP BY device_id), "
            "changed AS ( "
            "  UPDATE devices d SET last_seen = greatest(d.last_seen, n.seen), "
            "    status = CASE WHEN n.seen >= now() - make_interval(secs => %(k)s * coalesce(a.interval_s, 60)) "
            "                  THEN 'online' ELSE d.status END, "
            "    status_since = CASE WHEN d.status <> 'online' AND "
            "                  n.seen >= now() - make_interval(secs => %(k)s * coalesce(a.interval_s, 60)) "
            "                  THEN now() ELSE d.status_since END "
            "  FROM newest n, agents a, devices o "
            "  WHERE d.id = n.device_id AND a.id = d.agent_id AND o.id = d.id "
            "  RETURNING d.id, d.status, o.status AS old_status) "
            "INSERT INTO device_events (device_id, kind, detail) "
            "SELECT id, 'online', %(detail)s FROM changed WHERE status = 'online' AND old_status <> 'online'",
            {"k": self.stale_intervals, "detail": json.dumps({"reason": "telemetry"})})
