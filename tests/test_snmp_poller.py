"""The SNMP poller (agent/snmp/poller.py).

Three layers: the logic with a fake session (Session's three async methods over a dict, a frozen
clock, no network); the real net-snmp daemon (v2c, every v3 user, the failure states, the
schedule); and snmpsim serving every recording of shared/snmp/devices.
"""

from __future__ import annotations

import asyncio
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from agent import wire
from agent.config import SnmpSection, SnmpTarget
from agent.snmp.poller import (
    SYS_DESCR,
    SYS_NAME,
    SYS_OBJECT_ID,
    SYS_UPTIME,
    Counter,
    Device,
    SnmpPoller,
    label_value,
    rate,
)
from agent.snmp.profiles import Library, parse_profile
from agent.snmp.session import SnmpError, Value
from tests.snmp_services import (
    RECORDINGS,
    USER_SPECS,
    SnmpdAgent,
    Snmpsim,
    V3User,
    free_udp_port,
    start_snmpd,
)

LIBRARY = Library.load()

# OIDs the fakes serve
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_SPEED = "1.3.6.1.2.1.2.2.1.5"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"
IF_IN_OCTETS = "1.3.6.1.2.1.2.2.1.10"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
IF_HIGH_SPEED = "1.3.6.1.2.1.31.1.1.1.15"
ENT_NAME = "1.3.6.1.2.1.47.1.1.1.1.7"
ENT_DESCR = "1.3.6.1.2.1.47.1.1.1.1.2"
SENSOR = "1.3.6.1.2.1.99.1.1.1"  # entPhySensorEntry: .1 type .2 scale .3 precision .4 value .5 status
HR_MEMORY = "1.3.6.1.2.1.25.2.2.0"
HR_STORAGE = "1.3.6.1.2.1.25.2.3.1"  # .3 descr .4 units .5 size .6 used
UCD = "1.3.6.1.4.1.2021"
NET_SNMP_LINUX = "1.3.6.1.4.1.8072.3.2.10"
MIKROTIK = "1.3.6.1.4.1.14988.1"


# ---------------------------------------------------------------- fakes

def ticks(n: int) -> Value:
    return Value("TimeTicks", n)


def c32(n: int) -> Value:
    return Value("Counter32", n)


def c64(n: int) -> Value:
    return Value("Counter64", n)


def num(n: int) -> Value:
    return Value("Integer", n)


def text(s: str) -> Value:
    return Value("OctetString", s)


def _key(oid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in oid.split("."))


class FakeSession:
    """What Session offers the poller (get, next, walk) over plain dicts the test changes between
    polls: ``scalars`` {oid: Value}, ``columns`` {column oid: {index: Value}}."""

    def __init__(self, sys_object_id: str = NET_SNMP_LINUX, uptime: int = 100_000,
                 sys_descr: str = "Linux fake 6.1.0") -> None:
        self.scalars: dict[str, Value] = {
            SYS_DESCR: text(sys_descr), SYS_OBJECT_ID: Value("ObjectIdentifier", sys_object_id),
            SYS_NAME: text("fake"), SYS_UPTIME: ticks(uptime)}
        self.columns: dict[str, dict[str, Value]] = {}
        self.error: SnmpError | None = None           # raised by every request
        self.failing: dict[str, SnmpError] = {}       # column oid -> raised by a walk that asks it
        self.requests: list[tuple[str, tuple[str, ...]]] = []

    def tick(self, seconds: float) -> None:
        """Let the device's clock (sysUpTime, hundredths of a second) advance."""
        self.scalars[SYS_UPTIME] = ticks(int(self.scalars[SYS_UPTIME].value) + int(seconds * 100))

    def _check(self, kind: str, oids: list[str]) -> None:
        self.requests.append((kind, tuple(oids)))
        if self.error is not None:
            raise self.error

    async def get(self, oids: list[str]) -> dict[str, Value | None]:
        self._check("get", oids)
        return {oid: self.scalars.get(oid) for oid in oids}

    async def next(self, oids: list[str]) -> dict[str, tuple[str, Value | None]]:
        self._check("next", oids)
        everything = dict(self.scalars)
        for column, rows in self.columns.items():
            everything.update({f"{column}.{index}": value for index, value in rows.items()})
        ordered = sorted(everything, key=_key)
        out: dict[str, tuple[str, Value | None]] = {}
        for oid in oids:
            following = next((o for o in ordered if _key(o) > _key(oid)), None)
            out[oid] = (following, everything[following]) if following else ("", None)
        return out

    async def walk(self, columns: list[str]) -> dict[str, dict[str, Value]]:
        self._check("walk", columns)
        for column in columns:
            if column in self.failing:
                raise self.failing[column]
        return {column: dict(self.columns.get(column, {})) for column in columns}


class Clock:
    """The poller's wall clock, frozen: tests move it."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class RecordingSink:
    """The agent's side of the poller: keeps what it is given (thread-safe)."""

    def __init__(self) -> None:
        self.points: list[wire.Point] = []
        self.events: list[wire.Event] = []
        self.changes = 0
        self._lock = threading.Lock()

    def emit_points(self, points: list[wire.Point]) -> None:
        with self._lock:
            self.points.extend(points)

    def emit_events(self, events: list[wire.Event]) -> None:
        with self._lock:
            self.events.extend(events)

    def devices_changed(self) -> None:
        with self._lock:
            self.changes += 1

    def points_of(self, device: str) -> list[wire.Point]:
        with self._lock:
            return [p for p in self.points if p.device == device]

    def events_of(self, device: str, kind: str | None = None) -> list[wire.Event]:
        with self._lock:
            return [e for e in self.events if e.device == device and (kind is None or e.kind == kind)]


class Rig:
    """One SnmpPoller with one target whose session is a fake, polled by hand."""

    def __init__(self, session: FakeSession, profile: str = "auto", library: Library = LIBRARY) -> None:
        self.session = session
        self.clock = Clock()
        self.target = SnmpTarget(name="dev1", host="192.0.2.10", profile=profile, interval=60)
        self.target.validate()
        self.poller = SnmpPoller(SnmpSection(targets=[self.target]), library=library,
                                 session_factory=lambda engine, target: session, clock=self.clock)
        self.sink = RecordingSink()
        self.poller._sink = self.sink  # what start() does, without its thread and schedule
        self.device = Device(self.target, session)  # type: ignore[arg-type]

    def poll(self, seconds: float = 0.0, device_seconds: float | None = None) -> dict[str, float]:
        """Move both clocks (the device's by ``device_seconds``, default the same), poll once and
        return the metrics of the point it delivered."""
        self.clock.now += seconds
        self.session.tick(seconds if device_seconds is None else device_seconds)
        before = len(self.sink.points)
        asyncio.run(self.poller.poll_device(self.device))
        assert len(self.sink.points) == before + 1, "every poll delivers exactly one point"
        point = self.sink.points[-1]
        assert point.device == "dev1" and point.ts == self.clock.now
        return point.metrics

    @property
    def state_events(self) -> list[wire.Event]:
        return self.sink.events_of("dev1", "state")


def with_profile(toml: str) -> Library:
    """The shipped library plus one profile written for a test."""
    return Library([*LIBRARY.profiles.values(), parse_profile(tomllib.loads(toml), "test.toml")])


ACME = """
name = "acme"
sysobjectid = ["1.3.6.1.4.1.99999."]
kind = "sensor"

[[scalars]]
name = "temperature_celsius"
oid = "1.3.6.1.4.1.99999.1.1.0"
description = "Temperature"

[[scalars]]
name = "humidity_percent"
oid = "1.3.6.1.4.1.99999.1.2.0"
description = "Humidity"

[[scalars]]
name = "door_open"
oid = "1.3.6.1.4.1.99999.1.3.0"
expr = "value == 1"
description = "Door"

[[tables]]
name = "probes"
label = "probe"
[[tables.columns]]
name = "probe_celsius"
oid = "1.3.6.1.4.1.99999.2.1.1"
scale = 0.1
description = "Probe temperature"

[[tables]]
name = "outlets"
label = "outlet"
[[tables.columns]]
name = "outlet_amperes"
oid = "1.3.6.1.4.1.99999.3.1.1"
description = "Outlet current"
"""
ACME_TEMP, ACME_HUMIDITY, ACME_DOOR = "1.3.6.1.4.1.99999.1.1.0", "1.3.6.1.4.1.99999.1.2.0", "1.3.6.1.4.1.99999.1.3.0"
ACME_PROBE, ACME_OUTLET = "1.3.6.1.4.1.99999.2.1.1", "1.3.6.1.4.1.99999.3.1.1"


def acme_rig() -> Rig:
    session = FakeSession(sys_object_id="1.3.6.1.4.1.99999.7")
    session.scalars[ACME_TEMP] = num(21)
    session.scalars[ACME_DOOR] = num(2)  # humidity: never served
    session.columns[ACME_PROBE] = {"1": num(215), "2": num(198)}
    session.columns[ACME_OUTLET] = {"1": num(3)}
    return Rig(session, profile="acme", library=with_profile(ACME))


# ---------------------------------------------------------------- counters and rates

def test_rate_arithmetic() -> None:
    first = Counter(raw=1_000, ticks=10_000, at=100.0)
    assert rate(None, 5_000, 64, 11_000, 110.0) is None                     # first reading
    assert rate(first, 6_000, 64, 11_000, 107.0) == 500.0                   # device clock: 10 s
    assert rate(first, 6_000, 64, None, 110.0) == 500.0                     # no ticks: wall clock
    assert rate(first, 6_000, 64, 10_000, 110.0) == 500.0                   # ticks stood still: wall clock
    assert rate(first, 6_000, 64, None, 100.0) is None                      # no time elapsed
    assert rate(Counter(2**32 - 1_000, 0, 0.0), 3_000, 32, 1_000, 10.0) == 400.0  # 32-bit wrap
    assert rate(Counter(2**32 - 1_000, 0, 0.0), 3_000, 64, 1_000, 10.0) is None   # 64-bit: reset
    assert rate(Counter(1_000_000_000, 0, 0.0), 5, 32, 1_000, 10.0) is None       # not a wrap: reset


def test_counter_rate_over_two_polls_uses_sysuptime_ticks() -> None:
    session = FakeSession()
    session.columns.update({IF_NAME: {"1": text("eth0")}, IF_HC_IN_OCTETS: {"1": c64(1_000_000)}})
    rig = Rig(session, profile="if-mib")
    first = rig.poll()
    assert "if_in_bps{if=eth0}" not in first  # a rate needs two readings
    session.columns[IF_HC_IN_OCTETS]["1"] = c64(1_000_000 + 12_500)
    # the poll ran late (13 s on the agent's clock) but the device says 10 s passed
    second = rig.poll(seconds=13, device_seconds=10)
    assert second["if_in_bps{if=eth0}"] == 12_500 / 10 * 8
    assert second["uptime_seconds"] == 1_000 + 10


def test_32_bit_counter_wrap_gives_the_right_rate() -> None:
    session = FakeSession()
    session.columns.update({IF_DESCR: {"2": text("eth1")}, IF_IN_OCTETS: {"2": c32(2**32 - 1_000)}})
    rig = Rig(session, profile="if-mib")
    rig.poll()
    session.columns[IF_IN_OCTETS]["2"] = c32(3_000)
    assert rig.poll(seconds=10)["if_in_bps{if=eth1}"] == 4_000 / 10 * 8


def test_64_bit_counter_going_backwards_gives_no_rate() -> None:
    session = FakeSession()
    session.columns.update({IF_NAME: {"1": text("eth0")}, IF_HC_IN_OCTETS: {"1": c64(5 * 10**12)}})
    rig = Rig(session, profile="if-mib")
    rig.poll()
    session.columns[IF_HC_IN_OCTETS]["1"] = c64(10**6)  # cleared counters, no reboot
    assert "if_in_bps{if=eth0}" not in rig.poll(seconds=10)
    session.columns[IF_HC_IN_OCTETS]["1"] = c64(10**6 + 1_000)
    assert rig.poll(seconds=10)["if_in_bps{if=eth0}"] == 800.0  # counted again from the new value
    assert not rig.sink.events_of("dev1", "reboot")


def test_sysuptime_going_backwards_is_one_reboot_that_resets_counters_and_reidentifies() -> None:
    session = FakeSession(uptime=500_000)
    session.columns.update({IF_DESCR: {"1": text("ether1")}, IF_IN_OCTETS: {"1": c32(4_000_000_000)}})
    rig = Rig(session)
    first = rig.poll()
    assert rig.device.kind == "server" and "if-mib" in [p.name for p in rig.device.profiles]
    identity_reads = [r for r in session.requests if r[0] == "get" and SYS_DESCR in r[1]]
    assert len(identity_reads) == 1
    assert first["uptime_seconds"] == 5_000.0

    # the device restarts with new firmware: uptime 2 s, counters from zero, another sysObjectID
    session.scalars[SYS_UPTIME] = ticks(200)
    session.scalars[SYS_OBJECT_ID] = Value("ObjectIdentifier", MIKROTIK)
    session.columns[IF_IN_OCTETS]["1"] = c32(1_000)
    rig.clock.now += 60
    asyncio.run(rig.poller.poll_device(rig.device))
    second = rig.sink.points[-1].metrics
    assert second["uptime_seconds"] == 2.0
    # without the reset, 4,000,000,000 -> 1,000 would pass for a 32-bit wrap: a bogus rate
    assert "if_in_bps{if=ether1}" not in second
    reboots = rig.sink.events_of("dev1", "reboot")
    assert len(reboots) == 1
    assert reboots[0].severity == "warning" and "rebooted" in reboots[0].text
    assert reboots[0].detail == {"uptime_before_s": 5_000.0, "uptime_after_s": 2.0}

    session.columns[IF_IN_OCTETS]["1"] = c32(6_000)
    third = rig.poll(seconds=10)
    assert third["if_in_bps{if=ether1}"] == 5_000 / 10 * 8
    assert len(rig.sink.events_of("dev1", "reboot")) == 1
    identity_reads = [r for r in session.requests if r[0] == "get" and SYS_DESCR in r[1]]
    assert len(identity_reads) == 2  # identified again after the reboot
    assert rig.device.kind == "router"
    assert "mikrotik-routeros" in [p.name for p in rig.device.profiles]


# ---------------------------------------------------------------- states

def test_a_scalar_that_disappears_makes_the_device_partial_naming_it() -> None:
    rig = acme_rig()
    first = rig.poll()
    assert first["temperature_celsius"] == 21.0 and first["door_open"] == 0.0
    assert "humidity_percent" not in first
    assert rig.device.state == "reachable"  # humidity never answered: not a fault

    del rig.session.scalars[ACME_TEMP]
    second = rig.poll(seconds=60)
    assert "temperature_celsius" not in second and second["snmp_up"] == 1.0
    assert rig.device.state == "partial"
    assert "temperature_celsius" in rig.device.detail and ACME_TEMP in rig.device.detail
    assert "humidity" not in rig.device.detail and ACME_HUMIDITY not in rig.device.detail
    event = rig.state_events[-1]
    assert event.severity == "warning" and event.detail["state"] == "partial"
    assert "temperature_celsius" in event.text and event.detail["reason"] == rig.device.detail

    rig.session.scalars[ACME_TEMP] = num(22)
    assert rig.poll(seconds=60)["temperature_celsius"] == 22.0
    assert rig.device.state == "reachable" and rig.device.detail == ""


def test_a_table_walk_failure_is_partial_and_the_rest_is_still_reported() -> None:
    rig = acme_rig()
    rig.poll()
    rig.session.failing[ACME_OUTLET] = SnmpError("error", "agent answered genErr at varbind 1")
    metrics = rig.poll(seconds=60)
    assert rig.device.state == "partial"
    assert rig.device.detail == "table outlets: agent answered genErr at varbind 1"
    assert metrics["temperature_celsius"] == 21.0
    assert metrics["probe_celsius{probe=1}"] == 21.5 and metrics["probe_celsius{probe=2}"] == 19.8
    assert not any(name.startswith("outlet_amperes") for name in metrics)
    assert metrics["snmp_up"] == 1.0


def test_a_device_that_stops_answering_during_a_walk_is_no_response() -> None:
    rig = acme_rig()
    rig.poll()
    rig.session.failing[ACME_PROBE] = SnmpError("no_response", "no response — unreachable or wrong community")
    assert rig.poll(seconds=60) == {"snmp_up": 0.0}
    assert rig.device.state == "no_response"


def test_state_changes_emit_one_event_each() -> None:
    rig = acme_rig()
    session = rig.session
    rig.poll()                                    # unknown -> reachable
    rig.poll(seconds=60)                          # unchanged
    del session.scalars[ACME_TEMP]
    rig.poll(seconds=60)                          # -> partial
    del session.scalars[ACME_DOOR]
    rig.poll(seconds=60)                          # partial, other words: no event
    assert "door_open" in rig.device.detail
    session.scalars[ACME_TEMP] = num(20)
    session.scalars[ACME_DOOR] = num(2)
    rig.poll(seconds=60)                          # -> reachable
    session.error = SnmpError("no_response", "no response — unreachable or wrong community")
    rig.poll(seconds=60)                          # -> no_response
    rig.poll(seconds=60)                          # unchanged
    session.error = SnmpError("no_response", "cannot reach 192.0.2.10:161: network unreachable")
    rig.poll(seconds=60)                          # no_response, other words: no event
    assert rig.device.detail.startswith("cannot reach")
    session.error = SnmpError("auth_failure", "wrong digest (usmStatsWrongDigests): check auth_key")
    rig.poll(seconds=60)                          # -> auth_failure
    session.error = None
    rig.poll(seconds=60)                          # -> reachable

    changes = [(e.detail["previous"], e.detail["state"], e.severity) for e in rig.state_events]
    assert changes == [
        ("unknown", "reachable", "info"),
        ("reachable", "partial", "warning"),
        ("partial", "reachable", "info"),
        ("reachable", "no_response", "critical"),
        ("no_response", "auth_failure", "critical"),
        ("auth_failure", "reachable", "info"),
    ]
    assert all(e.device == "dev1" and e.kind == "state" for e in rig.state_events)
    assert [p.metrics["snmp_up"] for p in rig.sink.points] == [1, 1, 1, 1, 1, 0, 0, 0, 0, 1]


def test_an_auth_failure_is_a_state_and_snmp_up_zero() -> None:
    session = FakeSession()
    session.error = SnmpError("auth_failure", "wrong digest (usmStatsWrongDigests): check auth_key and "
                                              "auth_protocol")
    rig = Rig(session)
    assert rig.poll() == {"snmp_up": 0.0}
    assert rig.device.state == "auth_failure" and "wrong digest" in rig.device.detail
    (event,) = rig.state_events
    assert event.severity == "critical"
    assert event.text == ("dev1 SNMPv3 authentication failed: wrong digest (usmStatsWrongDigests): "
                          "check auth_key and auth_protocol")
    assert event.detail["state"] == "auth_failure" and event.detail["previous"] == "unknown"
    assert rig.device.failures == 1


# ---------------------------------------------------------------- what becomes a metric

def test_entity_sensors_are_scaled_and_only_working_ones_reported() -> None:
    session = FakeSession()
    rows = {  # index: (type, scale, precision, value, status, entPhysicalName, entPhysicalDescr)
        "1": (8, 9, 1, 235, 1, "CPU temp", ""),             # celsius, units, 1 decimal
        "2": (3, 8, 0, 230_500, 1, "PSU 1 input", ""),      # volts AC, milli
        "3": (6, 10, 2, 150, 1, "", "Power {A}, total=sum"),  # watts, kilo, 2 decimals
        "4": (6, 14, 0, 2, 1, "exa", ""),                   # RFC 3433: 14 is exa (10^18)
        "5": (6, 15, 0, 2, 1, "peta", ""),                  # ... and 15 peta (10^15)
        "6": (10, 9, 0, 3_000, 2, "Fan 1", ""),             # unavailable
        "7": (8, 9, 0, 40, 3, "Inlet", ""),                 # nonoperational
        "8": (1, 9, 0, 7, 1, "Other", ""),                  # type other: no metric
        "9": (9, 9, -1, 5, 1, "Humidity", ""),              # negative precision: 5 x 10
        "10": (8, 7, 0, 42_000_000, 1, "Board", ""),        # micro
    }
    for i, column in enumerate(("1", "2", "3", "4", "5")):
        session.columns[f"{SENSOR}.{column}"] = {index: num(row[i]) for index, row in rows.items()}
    session.columns[ENT_NAME] = {index: text(row[5]) for index, row in rows.items()}
    session.columns[ENT_DESCR] = {index: text(row[6]) for index, row in rows.items()}
    metrics = Rig(session, profile="entity-sensor").poll()
    sensors = {k: v for k, v in metrics.items() if k not in ("uptime_seconds", "snmp_up", "snmp_poll_seconds")}
    assert sensors == {
        "temperature_celsius{sensor=CPU temp}": 23.5,
        "voltage_volts{sensor=PSU 1 input}": 230.5,
        "power_watts{sensor=Power (A); total:sum}": 1500.0,
        "power_watts{sensor=exa}": 2e18,
        "power_watts{sensor=peta}": 2e15,
        "humidity_percent{sensor=Humidity}": 50.0,
        "temperature_celsius{sensor=Board}": 42.0,
    }


def test_if_mib_labels_from_ifname_then_ifdescr_then_index() -> None:
    session = FakeSession()
    session.columns.update({
        IF_NAME: {"1": text("ge-0/0/1"), "4": text("")},
        IF_DESCR: {"1": text("GigabitEthernet0/0/1"), "2": text("eth1"), "4": text("Port 4 {uplink}, vlan=10")},
        IF_OPER: {"1": num(1), "2": num(2), "3": num(1), "4": num(7)},
        IF_HIGH_SPEED: {"1": Value("Gauge32", 1_000)},
        IF_SPEED: {"2": Value("Gauge32", 100_000_000), "3": Value("Gauge32", 10_000_000)},
    })
    metrics = Rig(session, profile="if-mib").poll()
    assert {k: v for k, v in metrics.items() if k.startswith("if_oper_up")} == {
        "if_oper_up{if=ge-0/0/1}": 1.0,
        "if_oper_up{if=eth1}": 0.0,
        "if_oper_up{if=3}": 1.0,
        "if_oper_up{if=Port 4 (uplink); vlan:10}": 0.0,
    }
    assert metrics["if_speed_bps{if=ge-0/0/1}"] == 1e9      # ifHighSpeed, Mbit/s
    assert metrics["if_speed_bps{if=eth1}"] == 1e8          # ifSpeed fallback, bit/s
    for name in metrics:
        labels = wire.metric_labels(name)
        assert all(not set(v) & set("{},=") for v in labels.values()), name


def test_label_values_are_made_safe() -> None:
    assert label_value("Gi0/1 {uplink}, vlan=10") == "Gi0/1 (uplink); vlan:10"
    assert label_value("  eth0  ") == "eth0"
    assert label_value("") == "-" and label_value("   ") == "-"
    assert label_value("x" * 300) == "x" * 128
    assert label_value(3) == "3"


def test_computed_metrics_storage_and_memory() -> None:
    session = FakeSession()
    session.scalars[HR_MEMORY] = num(8_192)
    session.columns.update({
        f"{HR_STORAGE}.3": {"1": text("/"), "3": text("Swap space"), "4": text("Physical memory")},
        f"{HR_STORAGE}.4": {"1": num(4_096), "3": num(1_024), "4": num(1_024)},
        f"{HR_STORAGE}.5": {"1": num(1_000), "3": num(0), "4": num(8)},
        f"{HR_STORAGE}.6": {"1": num(250), "3": num(0), "4": num(2)},
    })
    session.scalars.update({
        f"{UCD}.4.5.0": num(1_000), f"{UCD}.4.6.0": num(200), f"{UCD}.4.14.0": num(100),
        f"{UCD}.4.15.0": num(100), f"{UCD}.10.1.5.1": num(150), f"{UCD}.11.11.0": num(97)})
    rig = Rig(session)
    metrics = rig.poll()
    assert {"host-resources", "ucd-snmp"} <= {p.name for p in rig.device.profiles}
    assert metrics["storage_used_percent{storage=/}"] == 25.0
    assert metrics["storage_size_bytes{storage=/}"] == 4_096_000.0
    assert metrics["storage_used_percent{storage=Physical memory}"] == 25.0
    assert "storage_used_percent{storage=Swap space}" not in metrics   # 0 / 0: no value, no error
    assert metrics["storage_size_bytes{storage=Swap space}"] == 0.0
    assert metrics["memory_total_bytes"] == 8_192 * 1024
    assert metrics["mem_used_percent"] == 60.0            # 100 x (1000 - 200 - 100 - 100) / 1000
    assert metrics["mem_available_bytes"] == 400 * 1024.0
    assert metrics["load1"] == 1.5 and metrics["cpu_percent"] == 3.0
    assert "load5" not in metrics and rig.device.state == "reachable"
    catalogue = {m.name: m for m in rig.poller.metrics()}
    assert {"snmp_up", "uptime_seconds", "storage_used_percent", "mem_used_percent"} <= set(catalogue)
    assert catalogue["storage_used_percent"].unit == "%"


# ---------------------------------------------------------------- real snmpd

# The harness names protocols as the config accepts them, except that the config's AES192/AES256
# are net-snmp's (Blumenthal) and AES192C/AES256C the Cisco (Reeder) key extension.
CONFIG_AUTH = {"SHA": "SHA", "SHA256": "SHA256", "SHA512": "SHA512", "MD5": "MD5", None: ""}
CONFIG_PRIV = {"AES": "AES", "AES256": "AES256", "DES": "DES", None: ""}
RUN_SECONDS = 11.0
INTERVAL = 5.0


def v3_settings(v3: V3User, **changes: str) -> dict[str, str]:
    """``v3`` as SnmpTarget settings, with ``changes``."""
    user = v3
    settings = {"version": "3", "user": user.user, "auth_protocol": CONFIG_AUTH[user.auth_protocol],
                "auth_key": user.auth_key or "", "priv_protocol": CONFIG_PRIV[user.priv_protocol],
                "priv_key": user.priv_key or ""}
    return {**settings, **changes}


@dataclass
class Run:
    """What one SnmpPoller delivered while it ran against real daemons."""

    sink: RecordingSink
    status: dict[str, dict]
    devices: dict[str, wire.DeviceInfo]
    targets: dict[str, SnmpTarget]
    started: float
    stop_seconds: float = 0.0
    names: dict[str, str] = field(default_factory=dict)  # v3 user -> target name


@pytest.fixture(scope="module")
def live(snmpd: SnmpdAgent, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One poller for ~11 s: v2c and every v3 user of ``snmpd``, the failure cases, a second snmpd
    (same v3 user names, other keys; a watched disk) and slow dead targets."""
    second, process = start_snmpd(tmp_path_factory.mktemp("snmpd-second"), "127.0.0.2",
                                  extra_config="disk / 1")
    try:
        targets: dict[str, SnmpTarget] = {}

        def add(name: str, agent: SnmpdAgent = snmpd, **settings) -> None:
            options = {"host": agent.host, "port": agent.port, "interval": INTERVAL, "timeout": 0.5,
                       "retries": 0, **settings}
            targets[name] = SnmpTarget(name=name, **options)
            targets[name].validate()

        add("v2c", community=snmpd.community)
        names = {}
        for user in snmpd.users.values():
            names[user.user] = f"v3-{user.user}"
            add(names[user.user], **v3_settings(user))
        sha_aes, sha_auth = snmpd.users["sha_aes"], snmpd.users["sha_auth"]
        add("wrong-community", community="not-the-community")
        add("wrong-auth-key", **v3_settings(sha_aes, auth_key="not-the-auth-key"))
        add("unknown-user", **v3_settings(sha_aes, user="nobody"))
        add("priv-to-auth-only", **v3_settings(sha_auth, priv_protocol="AES", priv_key="some-priv-key"))
        if "sha_aes256" in snmpd.users:
            add("aes256-cisco-variant", **v3_settings(snmpd.users["sha_aes256"], priv_protocol="AES256C"))
        add("closed-port", port=free_udp_port())
        for i in (1, 2, 3):  # every poll waits 2 x 2 s for nothing
            add(f"dead-{i}", port=free_udp_port(), timeout=2.0, retries=1)
        add("second-v2c", second, community=second.community)
        add("second-v3", second, **v3_settings(second.users["sha_aes"]))

        poller = SnmpPoller(SnmpSection(targets=list(targets.values())))
        sink = RecordingSink()
        started = time.time()
        poller.start(sink)
        time.sleep(max(0.0, started + RUN_SECONDS - time.time()))
        stopping = time.monotonic()
        poller.stop()
        stop_seconds = time.monotonic() - stopping
        yield Run(sink, poller.status(), {d.device: d for d in poller.devices()}, targets, started,
                  stop_seconds, names)
    finally:
        process.stop()


def only_state(run: Run, name: str) -> wire.Event:
    """The one state event of a target that never changed state after its first poll."""
    events = run.sink.events_of(name, "state")
    assert len(events) == 1, [e.text for e in events]
    return events[0]


def test_v2c_poll_reports_uptime_interfaces_and_host_metrics(live: Run) -> None:
    points = live.sink.points_of("v2c")
    assert len(points) >= 2
    first, second = points[0].metrics, points[1].metrics
    assert first["snmp_up"] == 1.0 and 0 <= first["snmp_poll_seconds"] < 2
    assert first["uptime_seconds"] > 0
    assert first["if_oper_up{if=lo}"] == 1.0 and first["if_admin_up{if=lo}"] == 1.0
    assert any(k.startswith("if_speed_bps{") for k in first)
    assert "if_in_bps{if=lo}" not in first and second["if_in_bps{if=lo}"] >= 0  # rates from the second poll
    assert second["if_in_errors_per_s{if=lo}"] == 0.0
    assert 0 <= first["load1"] < 1000 and 0 < first["mem_used_percent"] < 100
    assert first["mem_available_bytes"] > 0 and first["memory_total_bytes"] > 0
    assert any(k.startswith("storage_used_percent{") for k in first)
    device = live.devices["v2c"]
    assert device.kind == "server" and device.attrs["state"] == "reachable"
    assert {"system", "net-snmp-linux", "if-mib", "host-resources", "ucd-snmp"} <= set(device.attrs["profiles"])
    assert device.attrs["sys_descr"] == "fleetcare test snmpd on 127.0.0.1"
    assert device.name == device.attrs["sys_name"]
    assert live.status["v2c"]["state"] == "reachable" and live.status["v2c"]["late"] == 0


def test_a_watched_disk_is_reported(live: Run) -> None:
    first = live.sink.points_of("second-v2c")[0].metrics
    assert 0 <= first["disk_used_percent{mount=/}"] <= 100


@pytest.mark.parametrize("spec", [spec.name for spec in USER_SPECS])
def test_every_v3_user_polls_reachable(live: Run, snmpd: SnmpdAgent, spec: str) -> None:
    fallback = next(s.fallback_name for s in USER_SPECS if s.name == spec)
    user = snmpd.users.get(spec) or snmpd.users.get(fallback or "")
    if user is None:
        pytest.skip(f"{spec}: {snmpd.unsupported.get(spec, 'not served')}")
    name = live.names[user.user]
    target = live.targets[name]
    assert (target.auth_protocol, target.priv_protocol) == (CONFIG_AUTH[user.auth_protocol],
                                                            CONFIG_PRIV[user.priv_protocol])
    points = live.sink.points_of(name)
    assert len(points) >= 2 and all(p.metrics["snmp_up"] == 1.0 for p in points)
    assert points[0].metrics["if_oper_up{if=lo}"] == 1.0 and "load1" in points[0].metrics
    event = only_state(live, name)
    assert event.detail["state"] == "reachable"
    assert live.devices[name].attrs["snmp_version"] == "3"


def test_the_same_v3_user_name_with_other_keys_on_another_device(live: Run) -> None:
    # Both agents know a user sha_aes, each with its own keys; both targets share the poller's
    # SNMP engine. Neither may be sent the other's keys, on any poll.
    for name in ("v3-sha_aes", "second-v3"):
        points = live.sink.points_of(name)
        assert len(points) >= 2 and all(p.metrics["snmp_up"] == 1.0 for p in points), name
        assert only_state(live, name).detail["state"] == "reachable"
    assert live.devices["second-v3"].attrs["sys_descr"] == "fleetcare test snmpd on 127.0.0.2"


def test_wrong_community_is_no_response_within_the_timeout(live: Run) -> None:
    event = only_state(live, "wrong-community")
    assert event.detail["state"] == "no_response" and event.severity == "critical"
    assert "unreachable or wrong community" in event.detail["reason"]
    point = live.sink.points_of("wrong-community")[0]
    assert point.metrics == {"snmp_up": 0.0}
    assert event.ts - point.ts < 0.5 + 0.5  # the poll gave up after its timeout (0.5 s, no retry)


@pytest.mark.parametrize("name, words", [
    ("wrong-auth-key", "wrong digest"),
    ("unknown-user", "unknown user"),
    ("priv-to-auth-only", "unsupported security level"),
])
def test_v3_refusals_are_auth_failures(live: Run, name: str, words: str) -> None:
    event = only_state(live, name)  # never reachable, though the right keys poll the same agent
    assert event.detail["state"] == "auth_failure" and words in event.detail["reason"]
    assert event.text.startswith(f"{name} SNMPv3 authentication failed: ")
    points = live.sink.points_of(name)
    assert points and all(p.metrics == {"snmp_up": 0.0} for p in points)
    assert event.ts - points[0].ts < 0.5  # a REPORT comes back at once: no timeout involved
    assert live.status[name]["state"] == "auth_failure" and live.status[name]["polls"] == 0


def test_aes256_is_the_blumenthal_variant_as_net_snmp_uses(live: Run, snmpd: SnmpdAgent) -> None:
    if "sha_aes256" not in snmpd.users:
        pytest.skip("this snmpd serves no SHA/AES-256 user")
    assert only_state(live, "v3-sha_aes256").detail["state"] == "reachable"
    # the Cisco key extension derives another key: snmpd cannot decrypt and stays silent
    assert only_state(live, "aes256-cisco-variant").detail["state"] == "no_response"


def test_a_closed_port_is_no_response_quickly(live: Run) -> None:
    event = only_state(live, "closed-port")
    assert event.detail["state"] == "no_response"
    point = live.sink.points_of("closed-port")[0]
    assert point.metrics == {"snmp_up": 0.0} and event.ts - point.ts < 1.0


def test_schedule_keeps_live_targets_on_time_whatever_the_dead_ones_do(live: Run) -> None:
    for name in ("v2c", "v3-sha_aes", "second-v2c", "second-v3"):
        stamps = [p.ts for p in live.sink.points_of(name)]
        assert len(stamps) >= 2, name
        assert stamps[0] - live.started < INTERVAL + 1  # first polls spread over one interval
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        assert all(abs(gap - INTERVAL) < 0.5 for gap in gaps), (name, gaps)
        assert live.status[name]["late"] == 0
    for i in (1, 2, 3):
        name = f"dead-{i}"
        assert live.status[name]["state"] == "no_response", live.status[name]
        assert 1 <= len(live.sink.points_of(name)) <= 2  # backing off
    assert live.stop_seconds < 3  # stop() does not wait for the dead targets' timeouts


# ---------------------------------------------------------------- snmpsim recordings

def readme_table() -> dict[str, dict[str, str]]:
    """The recordings' table of shared/snmp/README.md: community -> vendor, kind, std MIBs."""
    readme = RECORDINGS.parent / "README.md"
    rows: dict[str, dict[str, str]] = {}
    if not readme.exists():
        return rows
    for line in readme.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].endswith(".snmprec"):
            rows[cells[0].removesuffix(".snmprec")] = {"vendor": cells[2], "kind": cells[3],
                                                       "mibs": cells[5]}
    return rows


README_TABLE = readme_table()
RECORDED = sorted(p.name.removesuffix(".snmprec") for p in RECORDINGS.glob("*.snmprec"))


def accepted_kinds(readme_kind: str) -> set[str]:
    """The device kinds that fit the README's words for a recording."""
    words = readme_kind.lower()
    for keys, kinds in (
            (("ups",), {"ups", "power"}),
            (("ats", "pdu", "power"), {"power", "ups", "pdu"}),
            (("printer", "mfp"), {"printer"}),
            (("firewall",), {"firewall"}),
            (("switch", "router", "wireless"), {"switch", "router", "network", "wireless"}),
            (("storage", "nas"), {"storage"}),
            (("bmc",), {"bmc", "server"}),
            (("server",), {"server"}),
            (("env",), {"sensor", "environment"})):
        if any(key in words for key in keys):
            return kinds
    raise AssertionError(f"no kind known for {readme_kind!r}")


# Known gaps: recording -> (why, which test fails). Strict: a fix makes the test pass, and then
# the entry must go.
GAPS = {
    "powerwalker_nmc_ups": ("no profile for PowerWalker (enterprise 935): the recording serves only its "
                            "vendor MIB, so the device stays 'snmp' with no readings", {"kind", "readings"}),
    "abb_cms700_power_meter": ("no profile for ABB CMS-700: its sysObjectID is net-snmp's generic Linux "
                               "one, so the power meter is taken for a server", {"kind"}),
}


def gap(name: str, test: str) -> object:
    """``name`` as a parameter, expected to fail (strictly) in ``test`` because of a known gap."""
    reason, fails = GAPS.get(name, ("", set()))
    if test in fails:
        return pytest.param(name, marks=pytest.mark.xfail(reason=reason, strict=True))
    return name


@pytest.fixture(scope="module")
def recordings(snmpsim: Snmpsim) -> Run:
    """One poller over every recording (community = file name), until each was polled once."""
    targets = {c: SnmpTarget(name=c, host=snmpsim.host, port=snmpsim.port, community=c,
                             interval=INTERVAL, timeout=1.0, retries=1) for c in snmpsim.communities}
    poller = SnmpPoller(SnmpSection(targets=list(targets.values())))
    sink = RecordingSink()
    started = time.time()
    poller.start(sink)
    try:
        deadline = time.monotonic() + INTERVAL + 15
        while time.monotonic() < deadline:
            if {p.device for p in sink.points} >= set(targets):
                break
            time.sleep(0.2)
    finally:
        poller.stop()
    return Run(sink, poller.status(), {d.device: d for d in poller.devices()}, targets, started)


def test_the_readme_table_lists_every_recording() -> None:
    if not README_TABLE:
        pytest.skip("no shared/snmp/README.md")
    assert set(README_TABLE) == set(RECORDED)


@pytest.mark.parametrize("name", RECORDED)
def test_recording_polls_reachable(recordings: Run, name: str) -> None:
    # fortigate1500d: snmpsim ends its walks early (README, Quirks): what it serves is enough
    assert recordings.status[name]["state"] in ("reachable", "partial"), recordings.status[name]
    points = recordings.sink.points_of(name)
    assert points and points[0].metrics["snmp_up"] == 1.0


@pytest.mark.parametrize("name", [gap(n, "kind") for n in RECORDED])
def test_recording_is_identified_as_a_sensible_kind(recordings: Run, name: str) -> None:
    if name not in README_TABLE:
        pytest.skip("not in the README table")
    assert recordings.devices[name].kind in accepted_kinds(README_TABLE[name]["kind"]), \
        (README_TABLE[name]["kind"], recordings.devices[name].attrs.get("profiles"))


@pytest.mark.parametrize("name", [gap(n, "readings") for n in RECORDED])
def test_recording_produces_readings(recordings: Run, name: str) -> None:
    metrics = recordings.sink.points_of(name)[0].metrics
    assert set(metrics) - {"snmp_up", "snmp_poll_seconds"}, metrics


UPS_MIB_RECORDINGS = sorted(n for n, row in README_TABLE.items() if "UPS" in row["mibs"].split())
UPS_READINGS = {"input_voltage_volts", "output_voltage_volts", "battery_charge_percent", "battery_status",
                "battery_voltage_volts", "battery_runtime_seconds"}


@pytest.mark.parametrize("name", UPS_MIB_RECORDINGS)
def test_ups_mib_recordings_report_power_readings(recordings: Run, name: str) -> None:
    device = recordings.devices[name]
    assert "ups-mib" in device.attrs["profiles"]
    metrics = recordings.sink.points_of(name)[0].metrics
    assert {wire.metric_base(k) for k in metrics} & UPS_READINGS, sorted(metrics)


def test_hp_printer_reports_supply_levels(recordings: Run) -> None:
    metrics = recordings.sink.points_of("hp_color_laserjet_m452nw_printer")[0].metrics
    supplies = {k: v for k, v in metrics.items() if wire.metric_base(k) == "supply_level_percent"}
    assert supplies["supply_level_percent{supply=Black Cartridge HP CF410A}"] == 54.0
    assert len(supplies) == 4 and all(0 <= v <= 100 for v in supplies.values())


def test_nul_padded_interface_names_read_as_text(recordings: Run) -> None:
    # the Delta UPS pads ifDescr with NULs ("eth0\0\0…"): a label, not hex
    metrics = recordings.sink.points_of("delta_minuteman_e1500rtxl2u_ups")[0].metrics
    labels = {wire.metric_labels(k).get("if") for k in metrics if k.startswith("if_oper_up")}
    assert {"lo", "eth0"} <= labels, labels
