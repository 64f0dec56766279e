"""The agent's main loop: poll on a fixed cadence, spool, publish QoS 1 in a bounded window.

The birth message (retained) announces the agent, its devices and metric catalogue; the retained
status topic says online, and the broker's Last Will says offline when the agent vanishes.
"""

from __future__ import annotations

import logging
import math
import queue
import sqlite3
import threading
import time
from typing import Any

import paho.mqtt.client as paho

from agent import mqtt, wire
from agent.config import AgentConfig
from agent.pollers import Poller
from agent.diagnostics import Diagnostics
from agent.spool import DiskSpool, Entry, MemorySpool

log = logging.getLogger(__name__)

#: Samples per telemetry message: small enough to stay far below the payload limit.
MAX_SAMPLES_PER_MESSAGE = 1000
#: Seconds between status messages carrying the delivery counters.
STATUS_EVERY = 60.0
#: PUBACK reason code 0x10: the broker took the message but no subscription matched, so no
#: collector will ever see it (none subscribed yet, or a restarted Mosquitto 2.0, which does not
#: persist shared subscriptions, before the collector has subscribed again). Such a message —
#: or one the broker refused — stays in the spool and is offered again after a pause that doubles
#: from RETRY_MIN_S to RETRY_MAX_S.
NO_MATCHING_SUBSCRIBERS = 0x10
RETRY_MIN_S, RETRY_MAX_S = 0.5, 5.0


def agent_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # ~1 MB: only when asked
    try:
        return version("fleetcare")
    except PackageNotFoundError:
        return "0+unknown"


def chunk(points: list[wire.Point], limit: int = MAX_SAMPLES_PER_MESSAGE) -> list[list[wire.Point]]:
    """Group points into messages of at most ``limit`` samples (a larger point is split)."""
    out: list[list[wire.Point]] = []
    current: list[wire.Point] = []
    size = 0
    for point in points:
        items = list(point.metrics.items())
        for start in range(0, max(len(items), 1), limit):
            part = wire.Point(point.device, point.ts, dict(items[start:start + limit]))
            if current and size + len(part.metrics) > limit:
                out.append(current)
                current, size = [], 0
            current.append(part)
            size += len(part.metrics)
    if current:
        out.append(current)
    return out


class Agent:
    def __init__(self, config: AgentConfig, pollers: list[Poller], *,
                 protocol: int | None = None, spool: MemorySpool | DiskSpool | None = None) -> None:
        """``protocol`` None: found out in the background (waiting for the broker) while polling runs."""
        self.config = config
        self.pollers = pollers
        self.origin = config.origin
        self.prefix = config.mqtt.topic_prefix
        self.boot = int(time.time() * 1000)
        self.seq = 0
        self.spool = spool if spool is not None else MemorySpool()  # an empty spool is falsy
        self.connected = threading.Event()
        self._inflight: dict[int, Entry] = {}
        self._acks: queue.SimpleQueue[tuple[int, bool]] = queue.SimpleQueue()  # (mid, taken by the broker)
        self._hold_until = 0.0  # no publishing before this (monotonic): the broker refused a message
        self._retry_delay = 0.0
        self._wake = threading.Event()
        self._seq_lock = threading.Lock()  # pollers on other threads emit too
        self._birth_due = threading.Event()
        self._window = config.mqtt.max_inflight
        self._address = mqtt.BrokerAddress.parse(config.mqtt.url)
        self.protocol = protocol
        self.client: paho.Client | None = None
        self._dropped_reported = 0
        self._spool_failing = False
        # Always there: without a secret it answers every command "diagnostics are not enabled".
        snmp = next((p for p in pollers if getattr(p, "name", "") == "snmp"), None)
        self.diagnostics: Diagnostics | None = Diagnostics(config, self.respond, self.status_report, snmp)
        audit = config.spool.audit_path
        self._audit_file = open(audit, "ab") if audit else None  # noqa: SIM115 - lives with the agent

    def _build_client(self, protocol: int) -> paho.Client:
        m = self.config.mqtt
        # named after the topic prefix too: two fleets on one broker (or two test runs) may have an
        # agent of the same ids, and a broker disconnects the older of two clients of one id
        client = mqtt.new_client(
            f"{self.prefix}-agent-{self.origin.customer}-{self.origin.site}-{self.origin.agent}", protocol,
            username=m.username, password=m.password, tls=self._address.tls, ca_file=m.ca_file)
        client.max_inflight_messages_set(self._window)
        client.will_set(self._topic(wire.STATUS), wire.encode_status(self.origin, "offline", self.boot),
                        qos=wire.QOS, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.message_callback_add(self._topic(wire.CMD), self._on_command)
        return client

    def _connect(self, stop: threading.Event) -> None:
        """Wait for the broker (polling goes on meanwhile), then let paho keep the connection."""
        if self.protocol is None:
            m = self.config.mqtt
            try:
                self.protocol = mqtt.negotiate_protocol(m.url, username=m.username, password=m.password,
                                                        ca_file=m.ca_file, timeout=float("inf"), stop=stop)
            except mqtt.BrokerUnavailable as exc:
                if not stop.is_set():
                    log.error("%s", exc)
                return
        client = self._build_client(self.protocol)
        client.connect_async(self._address.host, self._address.port, keepalive=self.config.mqtt.keepalive)
        client.loop_start()
        self.client = client

    def _topic(self, kind: str) -> str:
        return wire.topic(self.prefix, self.origin, kind)

    def birth(self) -> wire.Birth:
        from agent.pollers.host import host_facts
        devices = [d for p in self.pollers for d in p.devices()]
        metrics: dict[str, wire.MetricInfo] = {}
        for p in self.pollers:
            metrics.update((m.name, m) for m in p.metrics())
        return wire.Birth(self.origin, self.boot, agent_version(), self.config.agent.interval,
                          host_facts(), devices, list(metrics.values()))

    # ------------------------------------------------------------ paho callbacks (network thread)
    # Callbacks never block: paho calls on_publish holding its own lock, so they only record the
    # event and wake the publisher thread, which alone touches the in-flight table.

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            log.error("broker %s refused the agent: %s", self._address, reason_code)
            return
        log.info("connected to %s as %s/%s/%s", self._address, *vars(self.origin).values())
        client.publish(self._topic(wire.BIRTH), wire.encode_birth(self.birth()), qos=wire.QOS, retain=True)
        client.publish(self._topic(wire.STATUS), wire.encode_status(
            self.origin, "online", self.boot, counters=self.counters()), qos=wire.QOS, retain=True)
        self.spool.reconnected()
        client.subscribe(self._topic(wire.CMD), qos=wire.QOS)
        self.connected.set()
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if self.connected.is_set():
            log.warning("lost broker %s (%s); collecting on, will resend", self._address, reason_code)
        self.connected.clear()

    def _on_command(self, client, userdata, message) -> None:  # noqa: ANN001
        if self.diagnostics is not None:
            self.diagnostics.receive(message.payload)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # noqa: ANN001
        self._acks.put((mid, not (reason_code.is_failure or reason_code.value == NO_MATCHING_SUBSCRIBERS)))
        self._wake.set()

    # ------------------------------------------------------------ publishing (publisher thread)

    def _reconcile(self) -> None:
        while True:
            try:
                mid, taken = self._acks.get_nowait()
            except queue.Empty:
                return
            entry = self._inflight.pop(mid, None)
            if entry is None:
                continue
            if taken:
                self.spool.done(entry)
                self._retry_delay = 0.0
                continue
            self.spool.release(entry)  # delivered to nobody: keep it, offer it again later
            if time.monotonic() >= self._hold_until:
                delay = min(max(self._retry_delay * 2, RETRY_MIN_S), RETRY_MAX_S)
                self._hold_until = time.monotonic() + delay
                if delay != self._retry_delay:  # warned at each step, then quiet at the longest pause
                    self._retry_delay = delay
                    log.warning("broker %s delivered a %s message to no subscriber (is no collector subscribed?); "
                                "keeping it, retrying in %.1f s", self._address, entry.kind, delay)

    def drain(self) -> None:
        """Hand waiting messages to paho while connected and the in-flight window has room."""
        self._reconcile()
        if self._birth_due.is_set() and self.client is not None and self.connected.is_set():
            self._birth_due.clear()
            self.client.publish(self._topic(wire.BIRTH), wire.encode_birth(self.birth()), qos=wire.QOS,
                                retain=True)
        self._report_drops()
        if time.monotonic() < self._hold_until:
            return
        while self.client is not None and self.connected.is_set() and len(self._inflight) < self._window:
            entry = self.spool.take()
            if entry is None:
                return
            info = self.client.publish(self._topic(entry.kind), entry.payload, qos=wire.QOS)
            self._inflight[info.mid] = entry

    def _report_drops(self) -> None:
        dropped = getattr(self.spool, "dropped_messages", 0)
        if dropped > self._dropped_reported:
            log.warning("queue full: dropped %d oldest messages (%d samples) so far",
                        dropped, getattr(self.spool, "dropped_samples", 0))
            self._dropped_reported = dropped

    def _publish_loop(self, stop: threading.Event) -> None:
        last_status = 0.0
        failing = False
        while not stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self.drain()
                if (time.monotonic() - last_status >= STATUS_EVERY and self.client is not None
                        and self.connected.is_set()):
                    self.publish_status()
                    last_status = time.monotonic()
                if failing:
                    log.info("publishing again")
                    failing = False
            except (sqlite3.Error, OSError) as exc:  # the spool cannot be read: keep trying
                if not failing:
                    log.error("publishing stalled: spool error (%s); retrying", exc)
                    failing = True
                stop.wait(2.0)
        self._reconcile()

    def counters(self) -> dict[str, int]:
        """What the agent reports of its own delivery (wire.COUNTER_KEYS)."""
        return {"spooled": self.pending, "delivered_messages": getattr(self.spool, "delivered_messages", 0),
                "dropped_messages": getattr(self.spool, "dropped_messages", 0),
                "dropped_samples": getattr(self.spool, "dropped_samples", 0), "seq": self.seq}

    def publish_status(self) -> None:
        """The retained "online" status, with the delivery counters the collector shows."""
        if self.client is not None:
            self.client.publish(self._topic(wire.STATUS), wire.encode_status(
                self.origin, "online", self.boot, counters=self.counters()), qos=wire.QOS, retain=True)

    def collect(self, now: float) -> int:
        """Poll every poller once and spool the result; returns the number of samples."""
        points: list[wire.Point] = []
        for poller in self.pollers:
            try:
                points.extend(poller.poll(now))
            except Exception:  # a poller bug must not stop the others
                log.exception("poller %s failed", poller.name)
        return self.emit_points(points)

    # ------------------------------------------------------------ the sink push pollers use

    def emit_points(self, points: list[wire.Point]) -> int:
        """Spool points as telemetry messages (thread-safe); returns the number of samples."""
        total = 0
        for group in chunk(points):
            samples = sum(len(p.metrics) for p in group)
            with self._seq_lock:
                try:  # encode first: a sequence number is spent only on a message that exists
                    payload = wire.encode_telemetry(self.origin, self.boot, self.seq + 1, group)
                except ValueError as exc:  # a non-finite value slipped through a poller
                    log.error("telemetry of %s not sent: %s", sorted({p.device for p in group}), exc)
                    continue
                self.seq += 1
                self._audit(wire.TELEMETRY, payload)
                self._put(Entry(self.seq, payload, samples))
            total += samples
        self._wake.set()
        return total

    def emit_events(self, events: list[wire.Event]) -> None:
        """Spool events (state changes, reboots, traps) to be sent at once (thread-safe)."""
        if not events:
            return
        with self._seq_lock:
            payload = wire.encode_events(self.origin, self.boot, self.seq + 1, events)
            self.seq += 1
            self._audit(wire.EVENTS, payload)
            self._put(Entry(self.seq, payload, 0, wire.EVENTS))
        self._wake.set()

    def _put(self, entry: Entry) -> None:
        """Spool one message; a spool that cannot write (disk full, file removed) costs that message,
        logged once per failure streak, never the agent."""
        try:
            self.spool.put(entry)
            if self._spool_failing:
                log.info("spool writable again")
                self._spool_failing = False
        except (OSError, sqlite3.Error) as exc:
            if not self._spool_failing:
                log.error("spool write failed (%s): messages are being lost until it recovers", exc)
                self._spool_failing = True

    def _audit(self, kind: str, payload: bytes) -> None:
        """With spool.audit_path set, every message is also appended there (one JSON line) before
        it is spooled: the record acceptance tests compare the database against."""
        if self._audit_file is not None:
            self._audit_file.write(b'{"kind":"' + kind.encode() + b'","payload":' + payload + b"}\n")
            self._audit_file.flush()

    def respond(self, request_id: str, ok: bool, error: str | None, output: Any) -> None:
        """A diagnostic's result, sent back through the spool (thread-safe)."""
        payload = wire.encode_result(self.origin, request_id, ok, error, output)
        if len(payload) > wire.MAX_PAYLOAD_BYTES // 2:
            payload = wire.encode_result(self.origin, request_id, False, "result too large to send", None)
        with self._seq_lock:
            self._put(Entry(0, payload, 0, wire.RESULT))
        self._wake.set()

    def status_report(self) -> dict[str, Any]:
        """What the "status" diagnostic returns."""
        snmp = next((p for p in self.pollers if getattr(p, "name", "") == "snmp"), None)
        return {"version": agent_version(), "boot": self.boot, "uptime_s": round(time.time() - self.boot / 1000, 1),
                "connected": self.connected.is_set(), "broker": str(self._address), "counters": self.counters(),
                "pollers": [p.name for p in self.pollers],
                "snmp": snmp.status() if snmp is not None else None}

    def devices_changed(self) -> None:
        """A poller learned something about its devices: announce a fresh birth message."""
        self._birth_due.set()
        self._wake.set()

    @property
    def pending(self) -> int:
        """Messages not yet acknowledged by the broker."""
        return len(self.spool) + len(self._inflight)

    def run(self, stop: threading.Event) -> None:
        """Collect on a fixed cadence (aligned to the interval) until ``stop`` is set."""
        interval = self.config.agent.interval
        connector = threading.Thread(target=self._connect, args=(stop,), name="connector", daemon=True)
        connector.start()
        if self.diagnostics is not None:
            self.diagnostics.start()
        for poller in self.pollers:
            start = getattr(poller, "start", None)
            if start is not None:  # push pollers (SNMP) run on their own schedule
                start(self)
        publishing = threading.Event()
        publisher = threading.Thread(target=self._publish_loop, args=(publishing,), name="publisher", daemon=True)
        publisher.start()
        try:
            next_at = math.ceil(time.time() / interval) * interval
            while not stop.is_set():
                self.collect(time.time())
                next_at += interval
                now = time.time()
                if next_at < now:  # we fell behind (suspend, slow poll): skip, don't burst
                    next_at = math.ceil(now / interval) * interval
                stop.wait(next_at - now)
        finally:
            for poller in self.pollers:
                stop_poller = getattr(poller, "stop", None)
                if stop_poller is not None:
                    stop_poller()
            if self.diagnostics is not None:
                self.diagnostics.stop()
            self._flush(deadline=time.monotonic() + 5.0)
            publishing.set()
            self._wake.set()
            publisher.join(timeout=2.0)
            connector.join(timeout=2.0)
            self.close()

    def _flush(self, deadline: float) -> None:
        while self.pending and self.connected.is_set() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.05)

    def close(self, timeout: float = 5.0) -> None:
        """Say goodbye properly: mark ourselves offline, disconnect."""
        deadline = time.monotonic() + timeout
        if self.pending:
            log.warning("stopping with %d unsent messages", self.pending)
        closer = getattr(self.spool, "close", None)
        if self.client is None:
            if closer is not None:
                closer()
            return
        if self.connected.is_set():
            info = self.client.publish(self._topic(wire.STATUS),
                                       wire.encode_status(self.origin, "offline", self.boot),
                                       qos=wire.QOS, retain=True)
            try:
                info.wait_for_publish(timeout=max(deadline - time.monotonic(), 0.5))
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        if closer is not None:
            closer()  # writes the pending deletions of acknowledged messages
