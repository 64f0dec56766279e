"""Where messages wait between being read and being acknowledged by the broker.

``DiskSpool`` (SQLite, the agent's default) survives restarts; ``MemorySpool`` bounds memory and
is for tests and throw-away agents. Both count what they drop, behind the same calls (``put``,
``take``, ``done``, ``release``, ``reconnected``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    seq: int
    payload: bytes
    samples: int
    kind: str = "telemetry"  # the topic suffix it is published on
    id: int | None = None    # the disk spool's row id


class MemorySpool:
    """A bounded FIFO: when full the oldest message is dropped and counted (newest data matters most)."""

    def __init__(self, max_messages: int = 10_000) -> None:
        self._queue: deque[Entry] = deque()
        self._max = max_messages
        self._lock = threading.Lock()
        self.dropped_messages = 0
        self.dropped_samples = 0
        self.delivered_messages = 0

    def put(self, entry: Entry) -> None:
        with self._lock:
            self._queue.append(entry)
            while len(self._queue) > self._max:
                old = self._queue.popleft()
                self.dropped_messages += 1
                self.dropped_samples += old.samples

    def take(self) -> Entry | None:
        """The oldest waiting message, now owned by the caller until ``done`` (or ``put`` back)."""
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def done(self, entry: Entry) -> None:
        """The broker acknowledged ``entry``: nothing to keep in memory."""
        with self._lock:
            self.delivered_messages += 1

    def release(self, entry: Entry) -> None:
        """The broker did not take ``entry`` after all: it waits again, first in line."""
        with self._lock:
            self._queue.appendleft(entry)

    def reconnected(self) -> None:
        """Nothing to do: the backlog is drained as fast as the window allows."""

    def __len__(self) -> int:
        with self._lock:
            return len(self._queue)


class DiskSpool:
    """Messages in SQLite (WAL), so a restart — even ``kill -9`` — loses nothing that was spooled.

    Each ``put`` is one committed transaction (WAL, synchronous=NORMAL: it survives the process
    dying; a power cut may take the last moments, see docs/decisions.md). ``take`` hands out
    fresh messages first and the backlog — what was waiting when the broker came back — oldest
    first at ``backlog_rate`` messages per second, so fresh data keeps flowing while it drains.
    Bounds: ``max_bytes`` and ``max_age_s``; past them the oldest messages are dropped and counted
    (the counters persist too). A message handed out and not yet ``done`` is never dropped.
    """

    def __init__(self, path: str | Path, max_bytes: int = 256 * 2**20, max_age_s: float = 7 * 86_400,
                 backlog_rate: float = 200.0, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.max_age_s, self.backlog_rate = max_bytes, max_age_s, backlog_rate
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                         "seq INTEGER NOT NULL, kind TEXT NOT NULL, payload BLOB NOT NULL, "
                         "samples INTEGER NOT NULL, created REAL NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        row = self._db.execute("SELECT count(*), coalesce(sum(length(payload)), 0), coalesce(max(id), 0) "
                               "FROM messages").fetchone()
        self._count, self._bytes = int(row[0]), int(row[1])
        self._taken: set[int] = set()
        self._acked: list[int] = []  # acknowledged, deleted at the next group write
        self._acked_at = self._clock()
        self._backlog_until = int(row[2])  # what was here at start drains at the bounded rate
        self._tokens = 0.0
        self._tokens_at = self._clock()
        self.written_bytes = 0

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One commit for several statements (the connection is in autocommit mode, where
        ``with connection`` would not open a transaction): a drop and its count go together."""
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ------------------------------------------------------------ counters

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, name: str, by: int) -> None:
        self._db.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value", (name, by))

    @property
    def dropped_messages(self) -> int:
        with self._lock:
            return self._counter("dropped_messages")

    @property
    def dropped_samples(self) -> int:
        with self._lock:
            return self._counter("dropped_samples")

    @property
    def delivered_messages(self) -> int:
        with self._lock:
            return self._counter("delivered_messages") + len(self._acked)

    # ------------------------------------------------------------ the three calls

    def put(self, entry: Entry) -> None:
        with self._lock:
            now = self._clock()
            cur = self._db.execute("INSERT INTO messages (seq, kind, payload, samples, created) VALUES (?, ?, ?, ?, ?)",
                                   (entry.seq, entry.kind, entry.payload, entry.samples, now))
            self._count += 1
            self._bytes += len(entry.payload)
            self.written_bytes += len(entry.payload)
            self._enforce(now, keep=cur.lastrowid)

    def _enforce(self, now: float, keep: int | None) -> None:
        """Drop the oldest messages (never one handed out) while over the size or age bound."""
        if self._acked and (self._bytes > self.max_bytes or self._oldest_created() < now - self.max_age_s):
            self._flush_acked()  # acknowledged messages go first, and are not drops
        while self._count:
            # the oldest message that may go (not handed out, not the one just put), judged on its
            # own age: an old message still in flight must not make the spool drop newer ones
            row = self._db.execute(
                "SELECT id, samples, length(payload), created FROM messages WHERE id NOT IN (%s) ORDER BY id LIMIT 1"
                % ",".join(str(i) for i in (self._taken | ({keep} if keep else set())) or {0})).fetchone()
            if row is None or not (self._bytes > self.max_bytes or float(row[3]) < now - self.max_age_s):
                return
            with self._transaction():
                self._db.execute("DELETE FROM messages WHERE id = ?", (row[0],))
                self._bump("dropped_messages", 1)
                self._bump("dropped_samples", int(row[1]))
            self._count -= 1
            self._bytes -= int(row[2])

    def _oldest_created(self) -> float:
        # ids grow with time, so the oldest message is the first by primary key (no scan)
        row = self._db.execute("SELECT created FROM messages ORDER BY id LIMIT 1").fetchone()
        return float(row[0]) if row and row[0] is not None else float("inf")

    def take(self) -> Entry | None:
        """Fresh messages first; then the backlog oldest-first, within its rate."""
        with self._lock:
            if self._acked and self._clock() - self._acked_at >= 1.0:
                self._flush_acked()
            skip = ",".join(str(i) for i in (*self._taken, *self._acked)) or "0"
            row = self._db.execute(
                f"SELECT id, seq, kind, payload, samples FROM messages WHERE id > ? AND id NOT IN ({skip}) "
                "ORDER BY id LIMIT 1", (self._backlog_until,)).fetchone()
            if row is None:
                now = self._clock()
                self._tokens = min(self._tokens + (now - self._tokens_at) * self.backlog_rate,
                                   max(self.backlog_rate, 1.0))
                self._tokens_at = now
                if self._tokens < 1.0:
                    return None
                row = self._db.execute(
                    f"SELECT id, seq, kind, payload, samples FROM messages WHERE id <= ? AND id NOT IN ({skip}) "
                    "ORDER BY id LIMIT 1", (self._backlog_until,)).fetchone()
                if row is None:
                    return None
                self._tokens -= 1.0
            self._taken.add(int(row[0]))
            return Entry(int(row[1]), bytes(row[3]), int(row[4]), str(row[2]), int(row[0]))

    def done(self, entry: Entry) -> None:
        """The broker has the message: forget it. Deletions are written in groups (at most a
        second late): one write per group instead of one per message spares flash storage; after
        a crash the few acknowledged but not yet deleted are sent again, and the store ignores them."""
        with self._lock:
            if entry.id is None:
                return
            self._taken.discard(entry.id)
            self._acked.append(entry.id)
            if len(self._acked) >= 256 or self._clock() - self._acked_at >= 1.0:
                self._flush_acked()

    def _flush_acked(self) -> None:
        self._acked_at = self._clock()
        if not self._acked:
            return
        ids = ",".join(str(i) for i in self._acked)
        row = self._db.execute(f"SELECT count(*), coalesce(sum(length(payload)), 0) FROM messages "
                               f"WHERE id IN ({ids})").fetchone()
        with self._transaction():
            self._db.execute(f"DELETE FROM messages WHERE id IN ({ids})")
            self._bump("delivered_messages", len(self._acked))
        self._count -= int(row[0])
        self._bytes -= int(row[1])
        self._acked.clear()

    def release(self, entry: Entry) -> None:
        """The broker did not take ``entry`` after all: hand it out again (it keeps its place)."""
        with self._lock:
            if entry.id is not None:
                self._taken.discard(entry.id)

    def reconnected(self) -> None:
        """The broker is back: everything waiting now is backlog, drained at the bounded rate while
        fresh messages go first. (Messages paho had in flight it resends itself.)"""
        with self._lock:
            row = self._db.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()
            self._backlog_until = int(row[0])

    def __len__(self) -> int:
        """Messages waiting (handed out and acknowledged ones not counted)."""
        with self._lock:
            return self._count - len(self._acked) - len(self._taken)

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def close(self) -> None:
        with self._lock:
            self._flush_acked()
            self._db.close()
