"""Where telemetry waits between being read and being acknowledged by the broker.

``MemorySpool`` bounds memory and counts what it drops; the disk spool of the delivery-guarantees
issue plugs in behind the same three calls (``put``, ``take``, ``done``).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    seq: int
    payload: bytes
    samples: int
    kind: str = "telemetry"  # the topic suffix it is published on


class MemorySpool:
    """A bounded FIFO: when full the oldest message is dropped and counted (newest data matters most)."""

    def __init__(self, max_messages: int = 10_000) -> None:
        self._queue: deque[Entry] = deque()
        self._max = max_messages
        self._lock = threading.Lock()
        self.dropped_messages = 0
        self.dropped_samples = 0

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

    def __len__(self) -> int:
        with self._lock:
            return len(self._queue)
