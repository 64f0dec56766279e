"""`fleetcare simulate`: a simulated fleet, faster than real time, with injected faults and ground truth.

Two halves, kept apart:

* :func:`plan` and :func:`generate` are pure: for a seed and parameters they decide the fleet, the
  faults and the benign episodes (the ground truth), and yield ``(ts, device, metrics)`` in time order.
  Same seed, same everything.
* :func:`publish` sends that series through a real MQTT broker in the agent's wire format (birth,
  status online, telemetry with event timestamps in simulated time, QoS 1 with a bounded in-flight
  window, status offline at the end), paced at ``speed`` simulated seconds per real second.

Fault levels (what a customer would notice) are in :data:`FAULT_LEVELS`; benign episodes never reach them.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent.wire import Birth, DeviceInfo, MetricInfo, Origin, Point

log = logging.getLogger(__name__)

DAY = 86_400.0
WEEK = 7 * DAY
HOUR = 3_600.0
KINDS = ("server", "switch", "ups")
PORTS = ("ge-0/0/1", "ge-0/0/2")
DISK = "disk_used_percent{mount=/data}"

FAULT_KINDS = ("disk_filling", "temperature_creep", "fan_failure", "interface_errors", "memory_leak",
               "battery_ageing", "link_flapping", "device_silent")
BENIGN_KINDS = ("nightly_backup", "maintenance", "single_spike", "firmware_reboot")
#: Which device kinds a fault can hit.
FAULT_TARGETS = {"disk_filling": ("server",), "temperature_creep": ("server", "switch"),
                 "fan_failure": ("server", "switch"), "interface_errors": ("switch",),
                 "memory_leak": ("server",), "battery_ageing": ("ups",), "link_flapping": ("switch",),
                 "device_silent": KINDS}

#: Levels a customer notices: (metric base name, comparison, value). Benign behaviour stays short of them.
FAULT_LEVELS: dict[str, tuple[str, str, float]] = {
    "disk_filling": ("disk_used_percent", ">=", 100.0),
    "memory_leak": ("mem_used_percent", ">=", 98.0),
    "temperature_creep": ("temperature_celsius", ">=", 80.0),
    "fan_failure": ("temperature_celsius", ">=", 80.0),
    "interface_errors": ("if_in_errors_per_s", ">=", 10.0),
    "battery_ageing": ("battery_runtime_seconds", "<=", 600.0),
}

METRICS = {
    "cpu_percent": ("%", "gauge", "CPU utilisation"),
    "mem_used_percent": ("%", "gauge", "Memory in use"),
    "disk_used_percent": ("%", "gauge", "Share of a file system in use, label mount"),
    "disk_write_bps": ("B/s", "gauge", "Bytes written to disk per second"),
    "temperature_celsius": ("°C", "gauge", "Chassis temperature"),
    "fan_rpm": ("rpm", "gauge", "Speed of the chassis fan"),
    "uptime_seconds": ("s", "gauge", "Time since the device started; a drop means a reboot"),
    "if_in_bps": ("bit/s", "gauge", "Inbound traffic on a port, label if"),
    "if_in_errors_per_s": ("1/s", "gauge", "Inbound errors per second on a port, label if"),
    "if_oper_up": ("", "gauge", "1 when the port is operationally up, label if"),
    "input_voltage_volts": ("V", "gauge", "Mains input voltage"),
    "output_load_percent": ("%", "gauge", "Load as a share of the UPS rating"),
    "battery_charge_percent": ("%", "gauge", "Remaining battery charge"),
    "battery_runtime_seconds": ("s", "gauge", "Estimated run time on battery at the present load"),
    "battery_temperature_celsius": ("°C", "gauge", "Battery temperature"),
}
KIND_METRICS = {
    "server": ("cpu_percent", "mem_used_percent", "disk_used_percent", "disk_write_bps",
               "temperature_celsius", "fan_rpm", "uptime_seconds"),
    "switch": ("cpu_percent", "temperature_celsius", "fan_rpm", "if_in_bps", "if_in_errors_per_s",
               "if_oper_up", "uptime_seconds"),
    "ups": ("input_voltage_volts", "output_load_percent", "battery_charge_percent",
            "battery_runtime_seconds", "battery_temperature_celsius", "uptime_seconds"),
}
DESCRIPTIONS = {"server": "Simulated server with a data disk", "switch": "Simulated access switch, two ports",
                "ups": "Simulated online UPS"}


@dataclass(frozen=True)
class Params:
    devices: int = 12
    days: float = 7.0
    seed: int = 1
    interval: float = 60.0
    customers: int = 0  # 0: one per 12 devices
    sites: int = 0      # sites per customer; 0: one per 4 devices of a customer
    start: float = 0.0  # epoch seconds of simulated start
    fault_rate: float = 0.3
    names: tuple[str, ...] = ()  # customer keys (default cust-01, cust-02, …)
    follow_days: float = 0.0  # readings go on this long after `end`, free of faults (the demo's live part)
    history_interval: float = 0.0  # seconds between readings before `end`; 0: `interval` (live uses `interval`)
    repair_h: float = 0.0  # a fault is repaired this long after it becomes visible (negative: before); 0: never

    @property
    def step_before_end(self) -> float:
        return self.history_interval or self.interval

    @property
    def end(self) -> float:
        return self.start + self.days * DAY


@dataclass(frozen=True)
class SimDevice:
    customer: str
    site: str
    agent: str
    device: str
    kind: str
    base: dict[str, float]  # per-device constants

    @property
    def origin(self) -> Origin:
        return Origin(self.customer, self.site, self.agent)

    @property
    def key(self) -> dict[str, str]:
        return {"customer": self.customer, "site": self.site, "agent": self.agent, "device": self.device}


@dataclass
class Episode:
    kind: str
    device: dict[str, str]
    onset: float
    end: float
    visible: float | None = None  # faults only: when the customer would notice
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    params: Params
    devices: list[SimDevice]
    faults: list[Episode]
    benign: list[Episode]

    def truth(self, **extra: Any) -> dict[str, Any]:
        """The ground truth as JSON-ready data."""
        def ep(e: Episode) -> dict[str, Any]:
            d = asdict(e)
            if e.visible is None:
                d.pop("visible")
            return d
        return {"parameters": asdict(self.params) | {"end": self.params.end},
                "fault_levels": {k: list(v) for k, v in FAULT_LEVELS.items()},
                "devices": [d.key | {"kind": d.kind} for d in self.devices],
                "faults": [ep(e) for e in self.faults], "benign": [ep(e) for e in self.benign], **extra}


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random(":".join(map(str, (seed, *parts))))


def plan(params: Params) -> Plan:
    """The fleet, its faults and its benign episodes, decided from the seed alone."""
    if params.devices < 1 or params.days <= 0 or params.interval <= 0 or params.history_interval < 0:
        raise ValueError("devices, days and interval must be positive")
    from agent.wire import ID_RE
    for name in params.names:
        if not ID_RE.match(name):
            raise ValueError(f"customer name {name!r}: letters, digits, '.', '_' or '-', at most 64")
    rng = _rng(params.seed, "plan")
    n = params.devices
    customers = params.customers or max(1, math.ceil(n / 12))
    devices: list[SimDevice] = []
    per_customer = [n // customers + (1 if i < n % customers else 0) for i in range(customers)]
    index = 0
    for c, count in enumerate(per_customer):
        sites = params.sites or max(1, math.ceil(count / 4))
        for j in range(count):
            s = j % sites
            kind = KINDS[index % len(KINDS)]
            name = f"{kind}-{index + 1:03d}"
            r = _rng(params.seed, "device", name)
            base = {"phase": r.uniform(-1.5, 1.5) * HOUR, "cpu": r.uniform(10, 30),
                    "mem": r.uniform(35, 60), "disk": r.uniform(30, 65), "temp": r.uniform(36, 48),
                    "fan": r.uniform(4000, 6000), "bps": r.uniform(5e7, 3e8),
                    "runtime": r.uniform(2000, 3000), "load": r.uniform(25, 45),
                    "uptime": r.uniform(5, 200) * DAY}
            if c < len(params.names):
                who = params.names[c]
                devices.append(SimDevice(who, f"site-{s + 1}", f"{who}-agent-{s + 1}", name, kind, base))
            else:
                devices.append(SimDevice(f"cust-{c + 1:02d}", f"site-{c + 1:02d}-{s + 1}",
                                         f"agent-{c + 1:02d}-{s + 1}", name, kind, base))
            index += 1

    start, end = params.start, params.end
    span = end - start
    faults: list[Episode] = []
    n_faults = round(n * params.fault_rate)
    order = list(FAULT_KINDS)
    rng.shuffle(order)
    free = list(range(n))
    rng.shuffle(free)
    for i in range(n_faults):
        fkind = order[i % len(order)]
        choices = [d for d in free if devices[d].kind in FAULT_TARGETS[fkind]]
        if not choices:
            continue
        d = choices[0]
        free.remove(d)
        dev = devices[d]
        onset = float(round(start + rng.uniform(0.15, 0.5) * span))
        visible = float(round(onset + rng.uniform(0.3, 0.7) * (end - onset)))
        detail: dict[str, Any] = {}
        if fkind in ("interface_errors", "link_flapping"):
            detail["port"] = rng.choice(PORTS)
        if fkind == "link_flapping":
            # a degrading transceiver or cable: CRC errors creep up and the link drops for one poll at
            # a time, rarely at first, then ever more often; the customer notices when it is down
            # every few minutes (the old model: flapping from the first minute, noticed at once)
            detail["toggle_s"] = 3 * params.step_before_end
            detail["first_gap_s"] = 4 * HOUR
        if fkind == "device_silent":
            # the management plane hangs first (no SNMP, no telemetry) while the device still
            # forwards; forwarding fails hours later, which is when the customer notices
            visible = float(round(onset + rng.uniform(2, 6) * HOUR))
        if fkind == "fan_failure":
            detail["fan_stops_by"] = onset + min(HOUR, (visible - onset) / 4)
        level = FAULT_LEVELS.get(fkind)
        if level:
            detail["level"] = {"metric": level[0], "op": level[1], "value": level[2]}
        # repaired relative to the visible moment (negative: before the customer would have noticed),
        # never before the fault is halfway there
        fixed = (min(end, max(visible + params.repair_h * HOUR, onset + 0.5 * (visible - onset)))
                 if params.repair_h else end)
        if params.repair_h:
            detail["repaired_at"] = fixed
        faults.append(Episode(fkind, dev.key, onset, fixed, visible, detail))

    faulty = {f.device["device"] for f in faults}
    benign: list[Episode] = []
    # nightly backups: every server, 02:00 to 02:45 (simulated UTC) each night
    first_midnight = math.floor(start / DAY) * DAY
    for dev in devices:
        if dev.kind != "server":
            continue
        night = first_midnight
        while night < end:
            b0, b1 = night + 2 * HOUR, night + 2.75 * HOUR
            if b0 >= start and b1 <= end:
                benign.append(Episode("nightly_backup", dev.key, b0, b1))
            night += DAY
    healthy = [d for d in devices if d.device not in faulty]
    rng.shuffle(healthy)
    k = max(1, len(healthy) // 6) if healthy else 0
    for i, kind in enumerate(("maintenance", "single_spike", "firmware_reboot")):
        for dev in healthy[i * k:(i + 1) * k] if len(healthy) >= 3 * k else healthy[i:i + 1]:
            at = start + rng.uniform(0.1, 0.85) * span
            at = start + round((at - start) / params.step_before_end) * params.step_before_end
            if kind == "maintenance":
                benign.append(Episode(kind, dev.key, at, min(end, at + rng.uniform(0.5, 1.5) * HOUR),
                                      detail={"planned": True, "reboots": True}))
            elif kind == "single_spike":
                metric = {"server": "cpu_percent", "switch": "cpu_percent", "ups": "output_load_percent"}[dev.kind]
                benign.append(Episode(kind, dev.key, at, at + params.step_before_end, detail={"metric": metric}))
            else:
                benign.append(Episode(kind, dev.key, at, min(end, at + 5 * 60.0),
                                      detail={"firmware": f"{rng.randint(2, 9)}.{rng.randint(0, 20)}"}))
    benign.sort(key=lambda e: (e.onset, e.device["device"]))
    faults.sort(key=lambda e: (e.onset, e.device["device"]))
    return Plan(params, devices, faults, benign)


# ---------------------------------------------------------------- the series

def _load(ts: float, phase: float) -> float:
    """0..1: a daily cycle peaking mid-afternoon, lower at weekends."""
    t = ts + phase
    daily = 0.5 - 0.5 * math.cos(2 * math.pi * ((t % DAY) - 3 * HOUR) / DAY)
    weekday = int((t // DAY + 3) % 7)  # 1970-01-01 was a Thursday: 0 = Monday
    return daily * (0.45 if weekday >= 5 else 1.0)


def _progress(ts: float, e: Episode, target: float | None = None) -> float:
    """0 at onset, 1 at the visible moment (or ``target``), growing linearly past it."""
    top = (e.visible if target is None else target) or e.end
    return max(0.0, (ts - e.onset) / max(top - e.onset, 1.0))


def _link_up(ts: float, e: Episode) -> float:
    """A degrading link: one poll down after gaps shrinking from `first_gap_s` at onset to
    `toggle_s` at the visible moment; from then on down, up, down... every `toggle_s`."""
    toggle = e.detail["toggle_s"]
    if e.visible is None or ts >= e.visible:
        return 0.0 if int((ts - (e.visible or e.onset)) // toggle) % 2 == 0 else 1.0
    first = e.detail.get("first_gap_s", toggle)
    span = max(e.visible - e.onset, 1.0)
    # next drop after the gap at the time of the previous one: walk the drops from onset
    t = e.onset + first
    while t < ts:
        p = (t - e.onset) / span
        gap = max(toggle, first * (1 - p) + toggle * p)
        if ts < t + toggle / 3:  # down for one poll (a third of the toggle period)
            return 0.0
        t += gap
    return 1.0 if ts < t or ts >= t + toggle / 3 else 0.0


def _metrics(dev: SimDevice, ts: float, rng: random.Random, active: list[Episode],
             uptime_from: float) -> dict[str, float]:
    b = dev.base
    load = _load(ts, b["phase"])
    g = rng.gauss
    by_kind = {e.kind: e for e in active}
    m: dict[str, float] = {}
    backup = "nightly_backup" in by_kind
    if dev.kind in ("server", "switch"):
        cpu = b["cpu"] + 35 * load + g(0, 2)
        if backup:
            cpu += 30
        temp = b["temp"] + 6 * load + g(0, 0.3)
        fan = b["fan"] + 800 * load + g(0, 40)
        if (e := by_kind.get("temperature_creep")):
            temp += (FAULT_LEVELS["temperature_creep"][2] + 2 - b["temp"]) * _progress(ts, e)
        if (e := by_kind.get("fan_failure")):
            stop = e.detail["fan_stops_by"]
            fan *= max(0.0, 1 - (ts - e.onset) / max(stop - e.onset, 1.0))
            if ts > stop:  # no airflow: the chassis heats up until the customer notices
                heat = max(0.0, (ts - stop) / max(e.visible - stop, 1.0))
                temp += (FAULT_LEVELS["fan_failure"][2] + 2 - b["temp"]) * heat
        if "single_spike" in by_kind:
            cpu = 97.0
        m["cpu_percent"] = min(max(cpu, 0.0), 100.0)
        m["temperature_celsius"] = min(temp, 95.0)  # thermal shutdown level
        m["fan_rpm"] = max(fan, 0.0)
    if dev.kind == "server":
        mem = b["mem"] + 8 * load + g(0, 0.8)
        if (e := by_kind.get("memory_leak")):
            mem += (100 - b["mem"]) * _progress(ts, e)
        disk = b["disk"] + 2 * (ts % DAY) / DAY + g(0, 0.02)
        if (e := by_kind.get("disk_filling")):
            disk += (100 - b["disk"]) * _progress(ts, e)
        m["mem_used_percent"] = min(max(mem, 0.0), 100.0)
        m[DISK] = min(max(disk, 0.0), 100.0)
        m["disk_write_bps"] = max(0.0, 2e6 + 8e6 * load + g(0, 3e5) + (1.5e8 if backup else 0.0))
    if dev.kind == "switch":
        for port in PORTS:
            up = 1.0
            errors = max(0.0, g(0, 0.05))
            if (e := by_kind.get("interface_errors")) and e.detail["port"] == port:
                p = _progress(ts, e)
                errors += 12 * (math.expm1(3 * p) / math.expm1(3))
            if (e := by_kind.get("link_flapping")) and e.detail["port"] == port:
                up = _link_up(ts, e)
                errors += 2.0 * min(1.0, _progress(ts, e))  # CRC errors, well short of the customer's level
            m[f"if_in_bps{{if={port}}}"] = max(0.0, (b["bps"] * (0.3 + load) + g(0, 1e7)) * up)
            m[f"if_in_errors_per_s{{if={port}}}"] = errors
            m[f"if_oper_up{{if={port}}}"] = up
    if dev.kind == "ups":
        out_load = b["load"] + 20 * load + g(0, 1.5)
        if "single_spike" in by_kind:
            out_load = 95.0
        runtime = b["runtime"] * (1 - 0.3 * load) + g(0, 15)
        if (e := by_kind.get("battery_ageing")):
            low = FAULT_LEVELS["battery_ageing"][2] - 100
            runtime = max(60.0, runtime - (b["runtime"] - low) * _progress(ts, e))
        m["input_voltage_volts"] = 229 + g(0, 0.8)
        m["output_load_percent"] = min(max(out_load, 0.0), 100.0)
        m["battery_charge_percent"] = 100.0
        m["battery_runtime_seconds"] = max(runtime, 0.0)
        m["battery_temperature_celsius"] = 25 + 2 * load + g(0, 0.2)
    m["uptime_seconds"] = ts - uptime_from
    return {k: round(v, 3) for k, v in m.items()}


def generate(p: Plan) -> Iterator[tuple[float, SimDevice, dict[str, float]]]:
    """Every sample of the fleet, in time order (then device order): ``(ts, device, metrics)``."""
    params = p.params
    episodes: dict[str, list[Episode]] = {d.device: [] for d in p.devices}
    for e in [*p.faults, *p.benign]:
        episodes[e.device["device"]].append(e)
    rngs = {d.device: _rng(params.seed, "series", d.device) for d in p.devices}
    boot_at = {d.device: params.start - d.base["uptime"] for d in p.devices}
    for ts in timestamps(params):
        for dev in p.devices:
            active = [e for e in episodes[dev.device] if e.onset <= ts < e.end]
            silent = False
            for e in active:
                if e.kind == "device_silent" or e.kind == "maintenance":
                    silent = True
                elif e.kind == "firmware_reboot":
                    silent = True  # rebooting: no answer for a few minutes
            for e in episodes[dev.device]:
                if e.kind in ("maintenance", "firmware_reboot") and e.end <= ts and boot_at[dev.device] < e.end:
                    boot_at[dev.device] = e.end
            if silent:
                continue
            yield ts, dev, _metrics(dev, ts, rngs[dev.device], active, boot_at[dev.device])


def timestamps(params: Params) -> Iterator[float]:
    """The reading times: every `history_interval` up to `end`, then every `interval` (the live part)."""
    step = params.step_before_end
    n = int(round(params.days * DAY / step))
    for k in range(n):
        yield params.start + k * step
    follow = int(round(params.follow_days * DAY / params.interval))
    for k in range(follow):
        yield params.end + k * params.interval


# ---------------------------------------------------------------- publishing

def _birth(origin: Origin, devices: list[SimDevice], boot: int, interval: float) -> Birth:
    names = sorted({m for d in devices for m in KIND_METRICS[d.kind]})
    return Birth(origin, boot, "simulate", interval, {"hostname": f"sim-{origin.agent}", "simulated": True},
                 [DeviceInfo(d.device, d.kind, d.device, {"simulated": True, "description": DESCRIPTIONS[d.kind],
                                                          "interval_s": interval}) for d in devices],
                 [MetricInfo(n, *METRICS[n]) for n in names])


def publish(p: Plan, url: str, prefix: str, *, speed: float | None = None, window: int = 100,
            max_points: int = 200, truth: Path | None = None, username: str | None = None,
            password: str | None = None, ca_file: str | None = None, follow: bool = False,
            stop: Any = None) -> dict[str, int]:
    """Send the plan's series through the broker; ``speed`` None means as fast as possible.

    ``follow``: readings up to now go at once (history), later ones when the wall clock reaches
    their time, as a live fleet's would, until ``stop`` (a threading.Event) is set."""
    from agent import mqtt, wire

    protocol = mqtt.negotiate_protocol(url, username=username, password=password, ca_file=ca_file, timeout=30)
    address = mqtt.BrokerAddress.parse(url)
    client = mqtt.new_client(f"fleetcare-simulate-{p.params.seed}-{time.time_ns() % 10**9}", protocol,
                             username=username, password=password, tls=address.tls, ca_file=ca_file)
    client.max_inflight_messages_set(window)
    client.connect(address.host, address.port, keepalive=30)
    client.loop_start()
    pending: deque = deque()
    counts = {"messages": 0, "points": 0, "samples": 0, "events": 0}

    def send(topic_name: str, payload: bytes, retain: bool = False) -> None:
        pending.append(client.publish(topic_name, payload, qos=wire.QOS, retain=retain))
        counts["messages"] += 1
        while len(pending) > window:
            info = pending.popleft()
            info.wait_for_publish(timeout=60)
            if not info.is_published():
                raise ConnectionError("the broker did not acknowledge a message within 60 s")

    boot = int(time.time())
    agents: dict[Origin, list[SimDevice]] = {}
    for d in p.devices:
        agents.setdefault(d.origin, []).append(d)
    seq = {o: 0 for o in agents}
    buffers: dict[Origin, list[Point]] = {o: [] for o in agents}
    start = p.params.start
    live_step = p.params.step_before_end != p.params.interval

    def births(interval: float) -> None:
        for origin, devs in agents.items():
            send(wire.topic(prefix, origin, wire.BIRTH), wire.encode_birth(_birth(origin, devs, boot, interval)),
                 retain=True)

    births(p.params.step_before_end)
    for origin in agents:
        send(wire.topic(prefix, origin, wire.STATUS), wire.encode_status(origin, "online", boot, start), retain=True)

    def flush(origin: Origin) -> None:
        points = buffers[origin]
        if points:
            seq[origin] += 1
            send(wire.topic(prefix, origin, wire.TELEMETRY), wire.encode_telemetry(origin, boot, seq[origin], points))
            buffers[origin] = []

    began = time.monotonic()
    last_ts = None
    last_uptime: dict[str, float] = {}
    try:
        for ts, dev, metrics in generate(p):
            if ts != last_ts:
                if live_step and ts >= p.params.end and (last_ts is None or last_ts < p.params.end):
                    for o in agents:
                        flush(o)
                    births(p.params.interval)  # from here readings come at the live interval
                last_ts = ts
                if follow and ts > time.time():
                    for o in agents:
                        flush(o)
                    wait = ts - time.time()
                    if stop is not None and stop.wait(max(wait, 0)):
                        break
                    if stop is None:
                        time.sleep(max(wait, 0))
                elif speed and not follow:
                    due = began + (ts - start) / speed
                    wait = due - time.monotonic()
                    if wait > 0:
                        for o in agents:
                            flush(o)
                        time.sleep(wait)
            uptime = metrics.get("uptime_seconds")
            before = last_uptime.get(dev.device)
            if uptime is not None and before is not None and uptime < before:
                # as the agent's SNMP poller does: a drop in uptime is reported as a reboot event
                flush(dev.origin)
                seq[dev.origin] += 1
                send(wire.topic(prefix, dev.origin, wire.EVENTS), wire.encode_events(dev.origin, boot, seq[dev.origin], [
                    wire.Event(dev.device, ts, "reboot", "warning",
                               f"{dev.device} rebooted: uptime went from {before:.0f} s to {uptime:.0f} s",
                               {"uptime_before_s": before, "uptime_after_s": uptime})]))
                counts["events"] += 1
            if uptime is not None:
                last_uptime[dev.device] = uptime
            buffers[dev.origin].append(Point(dev.device, ts, metrics))
            counts["points"] += 1
            counts["samples"] += len(metrics)
            if len(buffers[dev.origin]) >= max_points:
                flush(dev.origin)
        for o in agents:
            flush(o)
        for origin in agents:
            send(wire.topic(prefix, origin, wire.STATUS),
                 wire.encode_status(origin, "offline", boot, last_ts or p.params.end), retain=True)
        while pending:
            info = pending.popleft()
            info.wait_for_publish(timeout=60)
            if not info.is_published():
                raise ConnectionError("the broker did not acknowledge a message within 60 s")
    finally:
        client.disconnect()
        client.loop_stop()
        if truth is not None:
            write_truth(p, truth, counts)
    log.info("simulate: %d messages, %d points, %d samples in %.1f s", counts["messages"], counts["points"],
             counts["samples"], time.monotonic() - began)
    return counts


def write_truth(p: Plan, path: Path, counts: dict[str, int] | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(p.truth(counts=counts or {}), indent=1))


def run(args: Any) -> int:
    """The `fleetcare simulate` command."""
    import os
    start = args.start if args.start is not None else time.time() - args.days * DAY
    names = tuple(n for n in (args.customer_names or "").split(",") if n)
    params = Params(devices=args.devices, days=args.days, seed=args.seed, interval=args.interval,
                    customers=args.customers or len(names), sites=args.sites, start=float(round(start)),
                    fault_rate=args.fault_rate, names=names, follow_days=3650.0 if args.follow else 0.0,
                    history_interval=args.history_interval or 0.0, repair_h=args.repair_h or 0.0)
    try:
        the_plan = plan(params)
    except ValueError as exc:
        import sys
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    url = args.mqtt_url or os.environ.get("FLEETCARE_MQTT_URL") or "mqtt://127.0.0.1:1883"
    speed = None if args.as_fast_as_possible else args.speed
    stop = None
    if args.follow:
        import signal
        import threading
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        if args.truth:
            write_truth(the_plan, args.truth)  # a followed run has no end: the truth is known at once
        print(f"simulating {params.devices} devices: {params.days:g} days of history, then live", flush=True)
    counts = publish(the_plan, url, args.topic_prefix, speed=speed, truth=args.truth, follow=args.follow,
                     stop=stop)
    print(f"simulated {params.devices} devices over {params.days:g} days: {len(the_plan.faults)} faults, "
          f"{len(the_plan.benign)} benign episodes, {counts['samples']} samples in {counts['messages']} messages"
          + (f"; truth in {args.truth}" if args.truth else ""))
    return 0
