"""Writing a batch: one binary COPY straight into samples, all in one transaction.

Duplicates (a redelivered message, a sample sent twice) make that COPY fail on the samples primary
key (device, series, time); the batch then goes through a staging table and INSERT … ON CONFLICT
DO NOTHING, so at-least-once delivery stores every sample once while the common case runs at COPY
speed. The same transaction refreshes each device's latest values and last-seen time and, on plain
PostgreSQL, marks the 5-minute rollup buckets it touched.
"""

from __future__ import annotations

import json
import logging
import struct
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

_COLUMNS = "time, device_id, series_id, value"
_STAGING = ("CREATE TEMP TABLE IF NOT EXISTS staging "
            "(time timestamptz NOT NULL, device_id int4 NOT NULL, series_id int4 NOT NULL, value float8 NOT NULL) "
            "ON COMMIT DELETE ROWS")

# PostgreSQL's binary COPY format, written directly: a header, then per row the field count and
# each field as length + big-endian value (timestamptz = int64 µs since 2000-01-01), then -1.
# Packing rows with struct costs a fraction of psycopg's per-row write_row (docs/decisions.md).
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_ROW = struct.Struct(">hiqiiiiid")
_PG_EPOCH = 946_684_800  # 2000-01-01 in Unix seconds


def copy_buffer(rows: list[tuple[float, int, int, float]]) -> bytes:
    """(epoch seconds, device_id, series_id, value) rows as one binary COPY payload."""
    pack = _COPY_ROW.pack
    parts = [_COPY_HEADER]
    parts.extend(pack(4, 8, round((ts - _PG_EPOCH) * 1_000_000), 4, device, 4, series, 8, value)
                 for ts, device, series, value in rows)
    parts.append(b"\xff\xff")
    return b"".join(parts)


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
    events: list[wire.Events] = field(default_factory=list)
    results: list[wire.Result] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return sum(t.sample_count for t in self.telemetry)

    def __len__(self) -> int:
        return (len(self.telemetry) + len(self.births) + len(self.statuses) + len(self.events)
                + len(self.results) + len(self.rejected))


@dataclass
class WriteResult:
    """What a committed batch held, for the counters and for whoever listens (the detection worker)."""

    received: int
    stored: int
    rows: list[tuple[float, int, int, float]] = field(default_factory=list)  # (ts, device, series id, value)
    events: list[tuple[int, wire.Event]] = field(default_factory=list)  # (device id, event)
    births: set[int] = field(default_factory=set)  # agents whose birth (devices, kinds) just arrived

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
        births = set()
        for birth in batch.births:
            registry.apply_birth(conn, birth)
            births.add(registry.agent_id(conn, birth.origin))
        rows: list[tuple[float, int, int, float]] = []
        per_agent: dict[int, list[int]] = {}
        newest: dict[int, float] = {}  # device → its newest sample time in this batch
        newest_points: set[float] = set()
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
                if p.ts > newest.get(device, 0.0):
                    newest[device] = p.ts
                newest_points.add(p.ts)
        stored = 0
        if rows:
            stored = self._insert_samples(rows)
            self._update_latest(rows)
            self._touch_devices(newest)
            if self.backend == POSTGRES:
                # DO UPDATE (not DO NOTHING) locks the bucket row, so the rollup job cannot
                # claim it until this batch commits (see collector/maintenance.py).
                conn.execute("INSERT INTO rollup_dirty (bucket) SELECT to_timestamp(b) FROM unnest(%s::float8[]) b "
                             "ON CONFLICT (bucket) DO UPDATE SET bucket = EXCLUDED.bucket",
                             (sorted({ts // 300 * 300 for ts in newest_points}),))
        for agent, (messages, samples, seq) in per_agent.items():
            conn.execute("UPDATE agents SET messages = messages + %s, samples = samples + %s, "
                         "last_seq = greatest(last_seq, %s), last_seen = now() WHERE id = %s",
                         (messages, samples, seq, agent))
        events_out: list[tuple[int, wire.Event]] = []
        for events in batch.events:
            registry.apply_events(conn, events)
            agent = registry.agent_id(conn, events.origin)
            events_out.extend((registry.device_id(conn, agent, e.device), e) for e in events.events)
        for result in batch.results:
            registry.apply_result(conn, result)
        for status in batch.statuses:
            registry.apply_counters(conn, status)
            registry.apply_status(conn, status)
        self._record_sequences(batch)
        for r in batch.rejected:
            conn.execute("INSERT INTO rejected_messages (topic, reason, detail, size, payload) "
                         "VALUES (%s, %s, %s, %s, %s)",
                         (r.topic[:1000], r.reason, r.detail[:2000], len(r.payload), r.payload[:4096]))
        return WriteResult(len(rows), stored, rows, events_out, births)

    def _record_sequences(self, batch: Batch) -> None:
        """Which (boot, seq) of each agent arrived: the API counts the gaps."""
        rows: list[tuple[int, int, int]] = []
        for message in (*batch.telemetry, *batch.events):
            rows.append((self.registry.agent_id(self.conn, message.origin), message.boot, message.seq))
        if rows:
            self.conn.execute(
                "INSERT INTO agent_sequences (agent_id, boot, seq) "
                "SELECT * FROM unnest(%s::int4[], %s::int8[], %s::int8[]) ON CONFLICT DO NOTHING",
                ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]))

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

    def _insert_samples(self, rows: list[tuple[float, int, int, float]]) -> int:
        """COPY straight into samples; a duplicate (a redelivery) fails that COPY, and only then the
        batch goes the slower idempotent way through staging. Returns the rows actually stored."""
        buffer = copy_buffer(rows)
        conn = self.conn
        try:
            with conn.transaction():  # a savepoint: only the COPY is undone on a duplicate
                with conn.cursor().copy(f"COPY samples ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(buffer)
            return len(rows)
        except psycopg.errors.UniqueViolation:
            pass
        with conn.cursor() as cur:
            with cur.copy(f"COPY staging ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(buffer)
            cur.execute(f"INSERT INTO samples ({_COLUMNS}) SELECT {_COLUMNS} FROM staging ON CONFLICT DO NOTHING")
            stored = cur.rowcount
            cur.execute("DELETE FROM staging")
        return stored

    def _update_latest(self, rows: list[tuple[float, int, int, float]]) -> None:
        latest: dict[tuple[int, int], tuple[float, int, int, float]] = {}
        for row in rows:
            key = (row[1], row[2])
            held = latest.get(key)
            if held is None or row[0] > held[0]:
                latest[key] = row
        with self.conn.cursor() as cur:
            with cur.copy(f"COPY staging ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(copy_buffer(list(latest.values())))
            cur.execute("INSERT INTO latest_values (device_id, series_id, time, value) "
                        "SELECT device_id, series_id, time, value FROM staging "
                        "ON CONFLICT (device_id, series_id) DO UPDATE SET time = EXCLUDED.time, "
                        "value = EXCLUDED.value WHERE latest_values.time < EXCLUDED.time")
            cur.execute("DELETE FROM staging")

    def _touch_devices(self, newest: dict[int, float]) -> None:
        """last_seen from the newest sample; online when that sample is recent enough.

        The rows are locked first, in id order: the detection worker updates the same rows (health)
        in id order too, and two transactions taking the same rows in different orders deadlock."""
        self.conn.execute("SELECT 1 FROM devices WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE",
                          (sorted(newest),))
        self.conn.execute(
            "WITH newest AS (SELECT d AS device_id, to_timestamp(t) AS seen "
            "                FROM unnest(%(ids)s::int4[], %(times)s::float8[]) AS n(d, t)), "
            "changed AS ( "
            "  UPDATE devices d SET last_seen = greatest(d.last_seen, n.seen), received_at = now(), "
            "    status = CASE WHEN d.status IN ('unknown', 'offline') AND "
            "                  n.seen >= now() - make_interval(secs => %(k)s * coalesce((d.attrs->>'interval_s')::float8, a.interval_s, 60)) "
            "                  THEN 'online' ELSE d.status END, "
            "    status_since = CASE WHEN d.status IN ('unknown', 'offline') AND "
            "                  n.seen >= now() - make_interval(secs => %(k)s * coalesce((d.attrs->>'interval_s')::float8, a.interval_s, 60)) "
            "                  THEN now() ELSE d.status_since END "
            "  FROM newest n, agents a, devices o "
            "  WHERE d.id = n.device_id AND a.id = d.agent_id AND o.id = d.id "
            "  RETURNING d.id, d.status, o.status AS old_status) "
            "INSERT INTO device_events (device_id, kind, detail) "
            "SELECT id, 'online', %(detail)s FROM changed WHERE status = 'online' AND old_status <> 'online'",
            {"ids": list(newest), "times": list(newest.values()), "k": self.stale_intervals,
             "detail": json.dumps({"reason": "telemetry"})})
