"""The collector: MQTT in, validate, batch, COPY into PostgreSQL, acknowledge after commit.

paho's network thread only queues messages; one writer thread parses them, builds batches and
writes them. A message is acknowledged (PUBACK) only after the transaction holding its rows (or its
rejection record) has committed, so a crash or a database outage costs a redelivery, never a sample.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import mqtt, wire
from collector.config import ServerConfig
from collector.migrate import backend_of
from collector.store import Batch, Rejected, Store, WriteResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inbound:
    mid: int
    qos: int
    topic: str
    payload: bytes
    received: float


class Stats:
    """Counters since start; the collector logs them every minute."""

    def __init__(self) -> None:
        self.messages = 0
        self.samples_received = 0
        self.samples_stored = 0
        self.duplicates = 0
        self.batches = 0
        self.rejected: Counter[str] = Counter()
        self.db_errors = 0

    def line(self) -> str:
        rejected = ", ".join(f"{k}={v}" for k, v in sorted(self.rejected.items())) or "none"
        return (f"messages={self.messages} samples={self.samples_received} stored={self.samples_stored} "
                f"duplicates={self.duplicates} batches={self.batches} rejected: {rejected}")


def _first_line(exc: BaseException) -> str:
    """An error in one line for the log and the rejection record."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _estimate_samples(item: Inbound) -> int:
    """A cheap size guess for batching, before parsing (a sample is roughly 25 bytes of JSON)."""
    return max(1, len(item.payload) // 25)


#: Called with every committed write and the wall time its oldest message was received.
Listener = Callable[[WriteResult, float], None]


class Collector:
    def __init__(self, config: ServerConfig, *, protocol: int = mqtt.MQTTv5,
                 listeners: list[Listener] | None = None) -> None:
        self.config = config
        self.listeners = list(listeners or [])
        self.protocol = protocol
        self.prefix = config.mqtt.topic_prefix
        self.stats = Stats()
        self.ready = threading.Event()  # subscribed and able to write
        self._inbox: queue.Queue[Inbound] = queue.Queue()
        self._address = mqtt.BrokerAddress.parse(config.mqtt.url)
        self._store: Store | None = None
        self._db_down_since: float | None = None
        self.client = self._make_client()

    # ------------------------------------------------------------ MQTT side (network thread)

    def _make_client(self) -> paho.Client:
        m = self.config.mqtt
        client = mqtt.new_client(m.client_id, self.protocol, username=m.username, password=m.password,
                                 tls=self._address.tls, ca_file=m.ca_file, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _connect_properties(self) -> Properties | None:
        if self.protocol != mqtt.MQTTv5:
            return None
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.config.mqtt.session_expiry_s
        props.ReceiveMaximum = self.config.collector.receive_maximum
        return props

    def subscriptions(self) -> list[str]:
        """Telemetry and events through shared subscriptions (collectors split them); birth and status plain,
        because retained messages are not delivered to shared subscriptions and every collector
        should know every agent."""
        shared = [wire.subscription(self.prefix, k) for k in (wire.TELEMETRY, wire.EVENTS, wire.RESULT)]
        if self.protocol == mqtt.MQTTv5:
            shared = [f"$share/{self.config.mqtt.share_group}/{t}" for t in shared]
        return shared + [wire.subscription(self.prefix, wire.BIRTH), wire.subscription(self.prefix, wire.STATUS)]

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            log.error("broker %s refused the collector: %s", self._address, reason_code)
            return
        log.info("collector connected to %s (session %s)", self._address,
                 "resumed" if flags.session_present else "new")
        client.subscribe([(t, wire.QOS) for t in self.subscriptions()])
        self.ready.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if self.ready.is_set():
            log.warning("collector lost broker %s (%s); reconnecting", self._address, reason_code)

    def _on_message(self, client, userdata, message: paho.MQTTMessage) -> None:  # noqa: ANN001
        self._inbox.put(Inbound(message.mid, message.qos, message.topic, message.payload, time.time()))

    # ------------------------------------------------------------ parsing

    def classify(self, item: Inbound, batch: Batch, now: float) -> None:
        """Parse one message into the batch, or record why it was refused."""
        oldest = now - self.config.database.retention_days * 86_400
        try:
            origin, kind = wire.parse_topic(self.prefix, item.topic)
            if kind == wire.TELEMETRY:
                batch.telemetry.append(wire.parse_telemetry(
                    origin, item.payload, max_bytes=self.config.collector.max_payload_bytes,
                    oldest=oldest, now=now))
            elif kind == wire.RESULT:
                batch.results.append(wire.parse_result(origin, item.payload,
                                                       max_bytes=self.config.collector.max_payload_bytes))
            elif kind == wire.EVENTS:
                batch.events.append(wire.parse_events(origin, item.payload,
                                                      max_bytes=self.config.collector.max_payload_bytes, now=now))
            elif kind == wire.BIRTH:
                if item.payload:  # an empty retained message clears the topic: nothing to do
                    batch.births.append(wire.parse_birth(origin, item.payload,
                                                         max_bytes=self.config.collector.max_payload_bytes))
            elif kind == wire.STATUS:
                if item.payload:
                    batch.statuses.append(wire.parse_status(origin, item.payload,
                                                            max_bytes=self.config.collector.max_payload_bytes))
            else:  # a command: addressed to an agent, never stored
                raise wire.WireError("bad_topic", f"{kind} messages are not for the collector")
        except wire.WireError as exc:  # counted and logged once stored (see _write)
            batch.rejected.append(Rejected(item.topic, exc.reason, exc.detail, item.payload))

    # ------------------------------------------------------------ database side (writer thread)

    def _connect_db(self) -> Store:
        conn = psycopg.connect(self.config.database.url, autocommit=False, connect_timeout=5)
        backend = backend_of(conn)
        conn.commit()
        return Store(conn, backend, stale_intervals=self.config.collector.stale_intervals)

    def _write(self, batch: Batch, stop: threading.Event, received: float | None = None) -> bool:
        """Write with back-off while the database is unreachable; True once stored, False on stop.

        Only connection failures are retried as they are. Any other database error is about the
        data, so the batch is written again message by message (see ``_isolate``).
        """
        delay = 0.5
        while True:
            try:
                if self._store is None or self._store.conn.closed:
                    self._store = self._connect_db()
                result = self._store.write(batch)
            except psycopg.OperationalError as exc:
                if not self._connection_lost(exc):
                    raise  # deadlock, limit exceeded, cancelled: about the data — isolate it
                self._db_failed(exc, len(batch))
                if stop.wait(delay):
                    return False
                delay = min(delay * 2, 10.0)
                continue
            if self._db_down_since is not None:
                log.info("database back after %.0f s", time.monotonic() - self._db_down_since)
                self._db_down_since = None
            self.stats.batches += 1
            for r in batch.rejected:
                self.stats.rejected[r.reason] += 1
                log.warning("rejected message on %s (%d bytes): %s: %s", r.topic[:200], len(r.payload),
                            r.reason, r.detail)
            self.stats.samples_received += result.received
            self.stats.samples_stored += result.stored
            self.stats.duplicates += result.duplicates
            self._tell(result, received)
            return True

    def _tell(self, result: WriteResult, received: float | None) -> None:
        """Hand a committed write to the listeners; one that fails costs a log line, never the ingest."""
        for listener in self.listeners:
            try:
                listener(result, received if received is not None else time.time())
            except Exception:
                log.exception("a listener failed on a stored batch")

    def _connection_lost(self, exc: psycopg.OperationalError) -> bool:
        """A lost or refused connection (retry as is), as opposed to an error about the data that
        psycopg also files as OperationalError (SQLSTATE classes 40, 53, 54, 57)."""
        state = exc.sqlstate
        if state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03"):
            return True  # no server answer, connection exception, admin/crash shutdown, starting up
        return self._store is None or self._store.conn.broken

    def _db_failed(self, exc: Exception, held: int) -> None:
        self.stats.db_errors += 1
        if self._db_down_since is None:
            self._db_down_since = time.monotonic()
            log.error("database unavailable (%s); holding %d messages unacknowledged, retrying",
                      _first_line(exc), held)
        self._drop_connection()

    def _drop_connection(self) -> None:
        """Forget the database connection; the next write opens a new one."""
        if self._store is not None:
            try:
                self._store.conn.close()
            except Exception:
                pass
            self._store = None

    def _store_items(self, items: list[Inbound], stop: threading.Event) -> bool:
        batch = Batch()
        now = time.time()
        for item in items:
            self.classify(item, batch, now)
        try:
            return self._write(batch, stop, min(i.received for i in items))
        except Exception as exc:  # anything but a lost connection: one message may be the cause
            log.error("batch of %d messages failed to store (%s); retrying them one by one",
                      len(items), _first_line(exc))
            return self._isolate(items, stop)

    def _store_items_guarded(self, items: list[Inbound], stop: threading.Event) -> bool:
        """The writer thread must not die: an error nothing else handled is logged and the same
        messages are tried again after a pause (unacknowledged meanwhile, so nothing is lost)."""
        delay = 1.0
        while True:
            try:
                return self._store_items(items, stop)
            except Exception:
                log.exception("could not store %d messages; trying again in %.0f s", len(items), delay)
                self._drop_connection()
                if stop.wait(delay):
                    return False
                delay = min(delay * 2, 30.0)

    def _isolate(self, items: list[Inbound], stop: threading.Event) -> bool:
        """Store each message alone; one the database still refuses is kept as rejected
        (reason ``store_error``, payload and error recorded) so the stream keeps flowing."""
        for item in items:
            single = Batch()
            self.classify(item, single, time.time())
            try:
                if not self._write(single, stop, item.received):
                    return False
            except Exception as exc:  # the database (or our code) refuses this message: keep it aside
                detail = _first_line(exc)
                if not self._write(Batch(rejected=[Rejected(item.topic, "store_error", detail, item.payload)]),
                                   stop):
                    return False
        return True

    def _writer(self, stop: threading.Event) -> None:
        cfg = self.config.collector
        last_stats = time.monotonic()
        while not stop.is_set():
            try:
                first = self._inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            items = [first]
            samples = _estimate_samples(first)
            deadline = time.monotonic() + cfg.batch_ms / 1000
            while samples < cfg.batch_samples:
                remaining = deadline - time.monotonic()
                try:
                    item = self._inbox.get(timeout=remaining) if remaining > 0 else self._inbox.get_nowait()
                except queue.Empty:
                    break
                items.append(item)
                samples += _estimate_samples(item)
            stored = self._store_items_guarded(items, stop)
            if not stored:
                return  # stopping during an outage: unacknowledged, the broker redelivers
            self.stats.messages += len(items)
            for item in items:
                if item.qos > 0:
                    self.client.ack(item.mid, item.qos)
            if time.monotonic() - last_stats > 60:
                log.info("collector: %s", self.stats.line())
                last_stats = time.monotonic()

    # ------------------------------------------------------------ lifecycle

    def run(self, stop: threading.Event) -> None:
        """Connect (retrying), consume until ``stop``; unacknowledged messages stay with the broker."""
        props = self._connect_properties()
        if self.protocol == mqtt.MQTTv5:  # 3.1.1 takes clean_session=False from the client instead
            self.client.connect_async(self._address.host, self._address.port, keepalive=30,
                                      clean_start=False, properties=props)
        else:
            self.client.connect_async(self._address.host, self._address.port, keepalive=30)
        self.client.loop_start()
        writer = threading.Thread(target=self._writer, args=(stop,), name="collector-writer", daemon=True)
        writer.start()
        try:
            stop.wait()
        finally:
            writer.join(timeout=30)
            self.client.disconnect()
            self.client.loop_stop()
            if self._store is not None:
                self._store.conn.close()
            log.info("collector stopped: %s", self.stats.line())
