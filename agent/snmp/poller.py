"""The SNMP poller: every target on its own schedule, asyncio with bounded concurrency.

One slow or dead device never delays the others: each poll has its own timeout, an unreachable
device is retried with back-off, and a failing table or OID costs only itself (state ``partial``).
Counters become per-second rates with 32/64-bit wrap handling; a sysUpTime that goes backwards is
a reboot (reported as an event) and resets every counter of that device.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent import wire
from agent.config import SnmpSection, SnmpTarget
from agent.snmp.profiles import Library, Profile, Reading, Table
from agent.snmp.session import Credentials, Session, SnmpError, Value, close, new_engine

log = logging.getLogger(__name__)

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
SYS_LOCATION = "1.3.6.1.2.1.1.6.0"
IDENTITY = [SYS_DESCR, SYS_OBJECT_ID, SYS_NAME, SYS_LOCATION, SYS_UPTIME]

MAX_BACKOFF_INTERVALS = 5  # an unreachable device is tried at most every 5 intervals
# entPhySensorScale (RFC 3433) → power of ten; note exa(14) comes before peta(15) in the MIB
SENSOR_EXPONENT = {1: -24, 2: -21, 3: -18, 4: -15, 5: -12, 6: -9, 7: -6, 8: -3, 9: 0, 10: 3, 11: 6, 12: 9,
                   13: 12, 14: 18, 15: 15, 16: 21, 17: 24}

UPTIME_METRIC = wire.MetricInfo("uptime_seconds", "s", "gauge", "Time since the device started; a drop "
                                "means a reboot")
SNMP_UP_METRIC = wire.MetricInfo("snmp_up", "", "gauge", "1 when the device answered its last SNMP poll")
RESPONSE_METRIC = wire.MetricInfo("snmp_poll_seconds", "s", "gauge", "Time the last SNMP poll took")


class Sink(Protocol):
    """Where the poller delivers (the agent): thread-safe, never blocks."""

    def emit_points(self, points: list[wire.Point]) -> None: ...

    def emit_events(self, events: list[wire.Event]) -> None: ...

    def devices_changed(self) -> None: ...


def label_value(raw: Any) -> str:
    """Make a label value safe for the wire: no braces, commas or equals signs, at most 128 chars."""
    text = str(raw).strip().translate(str.maketrans({"{": "(", "}": ")", ",": ";", "=": ":"}))
    return text[:128] or "-"


@dataclass
class Counter:
    raw: int
    ticks: int | None
    at: float


@dataclass
class Device:
    """A target and what the poller knows of it."""

    target: SnmpTarget
    session: Session
    profiles: list[Profile] = field(default_factory=list)
    identified: bool = False
    facts: dict[str, str] = field(default_factory=dict)
    kind: str = "snmp"
    state: str = "unknown"
    detail: str = ""
    counters: dict[tuple[str, str], Counter] = field(default_factory=dict)
    last_ticks: int | None = None
    unsupported: set[str] = field(default_factory=set)  # scalar OIDs absent at the first poll
    skip_columns: set[str] = field(default_factory=set)  # columns not worth walking (see _read_table)
    fresh: bool = True  # the next read is the first since identification
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one poll of a device at a time
    failures: int = 0
    next_due: float = 0.0
    polls: int = 0
    last_poll: float = 0.0
    late: int = 0

    @property
    def name(self) -> str:
        return self.target.name


def rate(previous: Counter | None, raw: int, bits: int | None, ticks: int | None, now: float) -> float | None:
    """Per-second rate of a counter between two readings, or None when there is no honest one
    (first reading, reset, or no time elapsed). 32-bit counters may wrap once; a 64-bit counter
    that goes backwards was reset."""
    if previous is None:
        return None
    delta = raw - previous.raw
    if delta < 0:
        if bits == 32 and raw + 2**32 - previous.raw < 2**31:
            delta = raw + 2**32 - previous.raw
        else:
            return None
    if ticks is not None and previous.ticks is not None and ticks > previous.ticks:
        elapsed = (ticks - previous.ticks) / 100.0  # the device's own clock, free of poll jitter
    else:
        elapsed = now - previous.at
    if elapsed <= 0:
        return None
    return delta / elapsed


class SnmpPoller:
    """Polls every configured target; call ``start(sink)`` once, ``stop()`` at the end."""

    name = "snmp"

    def __init__(self, config: SnmpSection, library: Library | None = None,
                 session_factory: Callable[[Any, SnmpTarget], Session] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.library = library or Library.load(config.profiles_dir or None)
        for t in config.targets:  # a named profile must exist: fail at start, naming the target
            if t.profile != "auto":
                self.library.resolve([t.profile])
        self._session_factory = session_factory or _session
        self._clock = clock
        self._devices: dict[str, Device] = {}
        self._sink: Sink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._senders: dict[str, str] = {}
        self._started: threading.Event | None = None
        self._start_error: BaseException | None = None
        self.engine: Any = None
        self.trap_listener: Any = None

    # ------------------------------------------------------------ what the agent asks

    def devices(self) -> list[wire.DeviceInfo]:
        out = []
        for t in self.config.targets:
            d = self._devices.get(t.name)
            # interval_s: the collector judges this device's liveness by its own poll interval
            attrs: dict[str, Any] = {"host": t.host, "port": t.port, "snmp_version": t.version,
                                     "interval_s": t.interval}
            kind, display = "snmp", t.name
            if d is not None:
                attrs.update(d.facts)
                attrs["profiles"] = [p.name for p in d.profiles]
                attrs["state"] = d.state
                attrs["state_detail"] = d.detail
                kind = d.kind
                display = d.facts.get("sys_name") or t.name
                if display in ("", "<private>"):
                    display = t.name
            if t.customer:
                attrs["customer"] = t.customer
            out.append(wire.DeviceInfo(t.name, kind, display, attrs))
        return out

    def metrics(self) -> list[wire.MetricInfo]:
        seen = {m.name: m for m in (UPTIME_METRIC, SNMP_UP_METRIC, RESPONSE_METRIC)}
        for p in self.library.profiles.values():
            for m in p.metrics():
                seen.setdefault(m.name, m)
        return list(seen.values())

    def poll(self, now: float) -> list[wire.Point]:
        return []  # a push source: points arrive through the sink on each device's own schedule

    def poll_now(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        """Poll one target at once on the poller's loop (remote diagnostics); its values are also
        sent as usual. Returns the state, its words and the values read."""
        d = self._devices.get(name)
        if d is None or self._loop is None:
            raise ValueError(f"no SNMP target named {name!r} is being polled")
        captured: list[wire.Point] = []

        async def run() -> None:
            original = self._emit
            self._emit = lambda points: (captured.extend(p for p in points if p.device == name),  # type: ignore[method-assign]
                                         original(points))
            try:
                await self.poll_device(d)
            finally:
                self._emit = original  # type: ignore[method-assign]

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)
        values = {k: v for p in captured for k, v in p.metrics.items()}
        return {"target": name, "state": d.state, "detail": d.detail, "kind": d.kind, "values": values}

    def status(self) -> dict[str, dict[str, Any]]:
        """Per device: state, detail, polls done, late polls (for tests and the bench)."""
        return {d.name: {"state": d.state, "detail": d.detail, "polls": d.polls, "late": d.late,
                         "kind": d.kind} for d in self._devices.values()}

    # ------------------------------------------------------------ lifecycle

    def start(self, sink: Sink) -> None:
        """Run the poller on an asyncio loop of its own thread. Raises OSError at once when the
        trap port cannot be bound, so the agent stops with a clear message instead of running deaf."""
        self._sink = sink
        self._started = threading.Event()
        self._start_error: BaseException | None = None

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.set_exception_handler(_loop_exception)
            self._stop = asyncio.Event()
            try:
                loop.run_until_complete(self.run())
            except BaseException as exc:
                if not self._started.is_set():
                    self._start_error = exc
                else:
                    log.exception("SNMP poller stopped")
            finally:
                self._started.set()
                loop.close()

        self._thread = threading.Thread(target=run, name="snmp-poller", daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self._start_error is not None:
            raise self._start_error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    async def run(self) -> None:
        """Schedule every target: each first poll is spread over its interval, then on cadence."""
        if self._stop is None:
            self._stop = asyncio.Event()
        self.engine = new_engine()
        now = self._clock()
        for t in self.config.targets:
            session = self._session_factory(self.engine, t)
            # first polls spread over the whole interval (by name, so stable across restarts):
            # a thousand devices make a steady trickle, not a burst every interval
            offset = (zlib.crc32(t.name.encode()) % 1000) / 1000 * t.interval
            self._devices[t.name] = Device(t, session, next_due=now + offset)
        listener = None
        if self.config.trap_port:
            from agent.snmp.traps import TrapListener
            await self._resolve_senders()
            listener = TrapListener(self.config, self.library, self._senders.get, self._events, self._clock)
            try:
                listener.open()
            except OSError as exc:
                raise OSError(f"snmp.trap_port {self.config.trap_port}: {exc}") from None
            self.trap_listener = listener
        if self._started is not None:
            self._started.set()
        limit = asyncio.Semaphore(self.config.concurrency)
        running: set[asyncio.Task[None]] = set()
        busy: set[str] = set()
        try:
            while not self._stop.is_set():
                now = self._clock()
                for d in self._devices.values():
                    if d.next_due <= now and d.name not in busy:
                        busy.add(d.name)
                        task = asyncio.create_task(self._guarded(d, limit, busy))
                        running.add(task)
                        task.add_done_callback(running.discard)
                upcoming = min((d.next_due for d in self._devices.values() if d.name not in busy),
                               default=now + 1.0)
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=max(0.01, min(upcoming - now, 1.0)))
                except asyncio.TimeoutError:
                    pass
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
            if listener is not None:
                listener.close()
            await close(self.engine)  # and the engines of v3 users that needed their own

    async def _resolve_senders(self) -> None:
        """Map each target's addresses to its name, so a trap finds its device."""
        loop = asyncio.get_running_loop()
        for t in self.config.targets:
            self._senders.setdefault(t.host, t.name)
            try:
                infos = await loop.getaddrinfo(t.host, None)
            except OSError:
                continue
            for info in infos:
                self._senders.setdefault(str(info[4][0]), t.name)

    async def _guarded(self, d: Device, limit: asyncio.Semaphore, busy: set[str]) -> None:
        scheduled = d.next_due
        try:
            async with limit:
                started = self._clock()
                if started - scheduled > max(1.0, d.target.interval * 0.1):
                    d.late += 1
                budget = max(d.target.timeout * (d.target.retries + 1) * 8, 5.0)
                try:
                    await asyncio.wait_for(self.poll_device(d), timeout=min(budget, d.target.interval))
                except asyncio.TimeoutError:
                    self._set_state(d, "no_response", "poll took longer than its interval allows")
                    d.failures += 1
                except Exception as exc:  # a bug must cost one device one poll, never the poller
                    log.exception("snmp %s: poll failed", d.name)
                    self._set_state(d, "error", f"{type(exc).__name__}: {exc}")
                    d.failures += 1
        finally:
            interval = d.target.interval
            backoff = min(2 ** max(d.failures - 1, 0), MAX_BACKOFF_INTERVALS) if d.failures else 1
            d.next_due = scheduled + interval * backoff
            if d.next_due <= self._clock():  # far behind (suspend, overload): realign, no burst
                d.next_due = self._clock() + interval
            busy.discard(d.name)

    # ------------------------------------------------------------ one poll

    async def poll_device(self, d: Device) -> None:
        """Poll one device (never twice at once: a diagnostic's poll_now waits for the scheduled one)."""
        async with d.lock:
            await self._poll_device(d)

    async def _poll_device(self, d: Device) -> None:
        started = self._clock()
        try:
            if not d.identified:
                await self._identify(d)
            values, partial = await self._read(d)
        except SnmpError as exc:
            d.failures += 1
            self._set_state(d, exc.state, exc.detail)
            self._emit([wire.Point(d.name, started, {"snmp_up": 0.0})])
            return
        d.failures = 0
        d.fresh = False
        d.polls += 1
        d.last_poll = started
        values["snmp_up"] = 1.0
        values["snmp_poll_seconds"] = round(self._clock() - started, 4)
        if partial:
            self._set_state(d, "partial", "; ".join(partial)[:500])
        else:
            self._set_state(d, "reachable", "")
        self._emit([wire.Point(d.name, started, values)])

    async def _identify(self, d: Device) -> None:
        got = await d.session.get(IDENTITY)
        if got.get(SYS_UPTIME) is None and got.get(SYS_OBJECT_ID) is None:
            raise SnmpError("error", "the device answers but serves no SNMPv2-MIB system group")
        facts = {"sys_descr": _text(got.get(SYS_DESCR)), "sys_object_id": _text(got.get(SYS_OBJECT_ID)),
                 "sys_name": _text(got.get(SYS_NAME)), "sys_location": _text(got.get(SYS_LOCATION))}
        target = d.target
        if target.profile == "auto":
            detected = await self._detect(d)
            ident = self.library.identify(facts["sys_object_id"], facts["sys_descr"])
            names = ([ident.name] if ident else []) + [p.name for p in detected]
            profiles = self.library.resolve(names)
            kind = device_kind(ident, profiles)
        else:
            profiles = self.library.resolve([target.profile])
            kind = next((p.kind for p in profiles if p.kind), None) or _guess_kind(profiles)
        d.profiles, d.kind, d.facts, d.identified = profiles, kind, facts, True
        d.unsupported.clear()
        d.skip_columns.clear()
        d.fresh = True
        log.info("snmp %s: %s (%s), profiles %s", d.name, facts["sys_descr"][:60] or "?", kind,
                 ", ".join(p.name for p in profiles))
        if self._sink is not None:
            self._sink.devices_changed()

    async def _detect(self, d: Device) -> list[Profile]:
        candidates = self.library.detectable
        if not candidates:
            return []
        found = await d.session.next([p.detect for p in candidates if p.detect])
        return [p for p in candidates if found.get(p.detect, ("", None))[0].startswith(p.detect + ".")]

    async def _read(self, d: Device) -> tuple[dict[str, float], list[str]]:
        """One poll: a GET of sysUpTime and every scalar, one walk per table."""
        now = self._clock()
        partial: list[str] = []
        scalars = [r for p in d.profiles for r in p.scalars]
        oids = [SYS_UPTIME] + sorted({r.oid for r in scalars} | {r.fallback for r in scalars if r.fallback})
        got = await d.session.get(oids)
        values: dict[str, float] = {}
        ticks_value = got.get(SYS_UPTIME)
        ticks = int(ticks_value.value) if ticks_value is not None and isinstance(ticks_value.value, int) else None
        if ticks is not None:
            values["uptime_seconds"] = ticks / 100.0
            if d.last_ticks is not None and ticks < d.last_ticks and not _uptime_wrapped(d, ticks, now):
                self._reboot(d, d.last_ticks, ticks, now)
            d.last_ticks = ticks
        first = d.fresh
        env: dict[str, float | None] = {}
        for p in d.profiles:
            for r in p.scalars:
                value = got.get(r.oid)
                scale = r.scale
                if value is None and r.fallback:
                    value = got.get(r.fallback)
                    scale = r.fallback_scale if r.fallback_scale is not None else r.scale
                if value is None:
                    if first:
                        d.unsupported.add(r.oid)
                    elif r.oid not in d.unsupported:
                        partial.append(f"{r.name or r.alias} ({r.oid}) no longer answers")
                    continue
                result = self._value(d, r, ("", r.oid), value, scale, ticks, now)
                if r.alias:
                    env[r.alias] = value.number
                if r.name and result is not None:
                    values[r.name] = result
            for c in p.computed:
                result = c.expr(env)
                if result is not None:
                    values[c.name] = round(result, 6)
            for table in p.tables:
                try:
                    values.update(await self._read_table(d, table, ticks, now))
                except SnmpError as exc:
                    if exc.state in ("no_response", "auth_failure"):
                        raise
                    partial.append(f"table {table.name}: {exc.detail}")
        return values, partial

    async def _read_table(self, d: Device, table: Table, ticks: int | None, now: float) -> dict[str, float]:
        columns = [c.oid for c in table.columns] + [c.fallback for c in table.columns if c.fallback]
        columns += list(table.label_oids)
        first = d.fresh
        asked = [c for c in dict.fromkeys(columns) if c not in d.skip_columns]
        walked = await d.session.walk(asked)
        if first:
            # After the first poll, walk only what the device serves: a column it does not have,
            # and a fallback whose primary answered for every row, are left out until a reboot.
            rows = {i for values in walked.values() for i in values}
            d.skip_columns |= {c for c in asked if not walked.get(c)}
            for c in table.columns:
                if c.fallback and rows and set(walked.get(c.oid, {})) >= rows:
                    d.skip_columns.add(c.fallback)
            for i, oid in enumerate(table.label_oids):
                named = {index for index, v in walked.get(oid, {}).items() if str(v.value).strip()}
                if named and named >= rows:  # this label names every row: the others are not needed
                    d.skip_columns.update(table.label_oids[i + 1:])
                    break
        indices: list[str] = []
        seen: set[str] = set()
        for c in table.columns:
            for index in walked.get(c.oid, {}) or walked.get(c.fallback or "", {}):
                if index not in seen:
                    seen.add(index)
                    indices.append(index)
        out: dict[str, float] = {}
        for index in indices:
            label = index
            for oid in table.label_oids:
                v = walked.get(oid, {}).get(index)
                if v is not None and str(v.value).strip():
                    label = str(v.value)
                    break
            suffix = f"{{{table.label}={label_value(label)}}}"
            env: dict[str, float | None] = {}
            for c in table.columns:
                value = walked.get(c.oid, {}).get(index)
                scale = c.scale
                if value is None and c.fallback:
                    value = walked.get(c.fallback, {}).get(index)
                    scale = c.fallback_scale if c.fallback_scale is not None else c.scale
                if value is None:
                    continue
                if c.alias:
                    env[c.alias] = value.number
                if c.name:
                    result = self._value(d, c, (index, c.oid), value, scale, ticks, now)
                    if result is not None:
                        out[c.name + suffix] = result
            for comp in table.computed:
                result = comp.expr(env)
                if result is not None:
                    out[comp.name + suffix] = round(result, 6)
            if table.kind == "entity-sensor":
                sensor = _sensor(table, env)
                if sensor is not None:
                    out[sensor[0] + suffix] = sensor[1]
        return out

    def _value(self, d: Device, r: Reading, key: tuple[str, str], value: Value, scale: float,
               ticks: int | None, now: float) -> float | None:
        number = value.number
        if number is None:
            return None
        if r.type == "counter":
            raw = int(number)
            previous = d.counters.get(key)
            d.counters[key] = Counter(raw, ticks, now)
            per_second = rate(previous, raw, value.counter_bits, ticks, now)
            if per_second is None:
                return None
            number = per_second
        number *= scale
        if r.expr is not None:
            number = r.expr({"value": number})
            if number is None:
                return None
        return round(number, 6)

    # ------------------------------------------------------------ state and events

    def _reboot(self, d: Device, before: int, after: int, now: float) -> None:
        d.counters.clear()  # every counter restarted with the device
        d.identified = False  # new firmware may serve other MIBs: identify and detect again
        log.info("snmp %s: rebooted (uptime %.0f s → %.0f s)", d.name, before / 100, after / 100)
        self._events([wire.Event(d.name, now, "reboot", "warning",
                                 f"{d.name} rebooted: uptime went from {before / 100:.0f} s to {after / 100:.0f} s",
                                 {"uptime_before_s": before / 100, "uptime_after_s": after / 100})])

    def _set_state(self, d: Device, state: str, detail: str) -> None:
        if state == d.state and detail == d.detail:
            return
        previous = d.state
        d.state, d.detail = state, detail
        if state == previous:
            return  # same state, new wording: not worth an event (status() has the wording)
        severity = {"reachable": "info", "partial": "warning"}.get(state, "critical")
        words = {"reachable": "answers SNMP", "partial": f"answers SNMP only in part: {detail}",
                 "no_response": detail, "auth_failure": f"SNMPv3 authentication failed: {detail}",
                 "error": f"SNMP error: {detail}"}[state]
        if state == "reachable":
            log.info("snmp %s: %s (was %s)", d.name, words, previous)
        else:
            log.warning("snmp %s: %s", d.name, words)
        self._events([wire.Event(d.name, self._clock(), "state", severity, f"{d.name} {words}",
                                 {"state": state, "previous": previous, "reason": detail})])
        if self._sink is not None:
            self._sink.devices_changed()

    def _emit(self, points: list[wire.Point]) -> None:
        if self._sink is not None:
            self._sink.emit_points(points)

    def _events(self, events: list[wire.Event]) -> None:
        if self._sink is not None:
            self._sink.emit_events(events)


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """pysnmp's dispatcher raises CarrierError for a datagram on a transport it has just dropped
    (seen under load); the request is retried, so that is worth a debug line, not a traceback."""
    exc = context.get("exception")
    if exc is not None and type(exc).__name__ == "CarrierError":
        log.debug("snmp: %s", exc)
        return
    loop.default_exception_handler(context)


def _session(engine: Any, t: SnmpTarget) -> Session:
    creds = Credentials(t.version, t.community, t.user, t.auth_protocol, t.auth_key, t.priv_protocol,
                        t.priv_key, t.context)
    return Session(engine, t.host, t.port, creds, timeout=t.timeout, retries=t.retries)


def _text(value: Value | None) -> str:
    return "" if value is None else str(value.value)


def device_kind(ident: Profile | None, profiles: list[Profile]) -> str:
    """What an auto-identified device is. A vendor's identification profile says it best; but a
    sysObjectID that only names the SNMP agent software (``generic = true``, e.g. net-snmp on the
    embedded Linux of a UPS card) yields to a detected standard MIB that declares a kind (UPS-MIB,
    Printer-MIB); then any kind a profile declares; then a guess from what was detected."""
    if ident is not None and ident.kind and not ident.generic:
        return ident.kind
    detected = next((p.kind for p in profiles if p.detect and p.kind), None)
    return (detected or (ident.kind if ident and ident.kind else None)
            or next((p.kind for p in profiles if p.kind), None) or _guess_kind(profiles))


def _uptime_wrapped(d: Device, ticks: int, now: float) -> bool:
    """sysUpTime is a 32-bit count of centiseconds: it wraps after 497 days. A drop from near the
    top to about what the time since the last poll explains is that wrap, not a reboot."""
    if d.last_ticks is None or d.last_ticks < 2**32 - 100 * 86_400:
        return False
    expected = (d.last_ticks + (now - d.last_poll) * 100) - 2**32
    return abs(ticks - expected) < 100 * max(60.0, d.target.interval * 2)


def _guess_kind(profiles: list[Profile]) -> str:
    names = {p.name for p in profiles}
    if "ups-mib" in names:
        return "ups"
    if "printer-mib" in names:
        return "printer"
    if "host-resources" in names or "ucd-snmp" in names:
        return "server"
    if "if-mib" in names:
        return "network"
    return "snmp"


def _sensor(table: Table, env: dict[str, float | None]) -> tuple[str, float] | None:
    """RFC 3433: value × 10^scale / 10^precision, named by the sensor type; only working sensors."""
    kind, value = env.get("type"), env.get("value")
    if kind is None or value is None or env.get("status", 1) not in (1, None):
        return None
    spec = table.sensor_types.get(int(kind))
    if spec is None:
        return None
    exponent = SENSOR_EXPONENT.get(int(env.get("scale") or 9), 0)
    precision = int(env.get("precision") or 0)
    result = value * math.pow(10, exponent) / math.pow(10, precision)
    return spec["name"], round(result, 6)
