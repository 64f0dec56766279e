"""Pollers: the host probe against a fake psutil (and once against the real one), the simulator, the registry."""

from __future__ import annotations

import time
from collections import namedtuple
from typing import Any

import pytest

from agent import wire
from agent.config import AgentConfig, HostSection, SimulatedDevice
from agent.pollers import build
from agent.pollers import host as host_module
from agent.pollers.host import HostProbe
from agent.pollers.simulated import Simulator, load_kinds

Memory = namedtuple("Memory", "total available percent")
Swap = namedtuple("Swap", "total used percent")
Partition = namedtuple("Partition", "device mountpoint fstype opts")
Usage = namedtuple("Usage", "total used free percent")
NetIO = namedtuple("NetIO", "bytes_sent bytes_recv packets_sent packets_recv errin errout dropin dropout")

NOW = 1_700_000_000.0


def nic(sent: int, recv: int, errin: int = 0, errout: int = 0) -> NetIO:
    return NetIO(sent, recv, 0, 0, errin, errout, 0, 0)


class FakePsutil:
    """Just the psutil calls the host probe makes, with readings a test can change between polls."""

    def __init__(self) -> None:
        self.cpu = 37.5
        self.memory = Memory(total=8_000, available=2_000, percent=99.0)  # percent deliberately not used
        self.swap = Swap(total=1_000, used=250, percent=25.0)
        self.booted = NOW - 3_600.0
        self.partitions = [Partition("/dev/sda1", "/", "ext4", "rw")]
        self.usage: dict[str, Usage | Exception] = {"/": Usage(100, 40, 60, 40.0)}
        self.nics: dict[str, NetIO] = {}

    def cpu_percent(self, interval: float | None = None) -> float:
        assert interval is None, "the probe must never block in cpu_percent"
        return self.cpu

    def virtual_memory(self) -> Memory:
        return self.memory

    def swap_memory(self) -> Swap:
        return self.swap

    def boot_time(self) -> float:
        return self.booted

    def pids(self) -> list[int]:
        return [1, 2, 3]

    def disk_partitions(self, all: bool = False) -> list[Partition]:  # noqa: A002 - psutil's name
        return list(self.partitions)

    def disk_usage(self, path: str) -> Usage:
        result = self.usage[path]
        if isinstance(result, Exception):
            raise result
        return result

    def net_io_counters(self, pernic: bool = False) -> dict[str, NetIO]:
        assert pernic
        return dict(self.nics)

    def cpu_count(self) -> int:
        return 4


class Clock:
    """Stands in for the time module inside agent.pollers.host: monotonic time moves only when told."""

    def __init__(self) -> None:
        self.mono = 100.0

    def monotonic(self) -> float:
        return self.mono

    @staticmethod
    def time() -> float:
        return time.time()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(host_module, "time", c)
    return c


@pytest.fixture
def ps() -> FakePsutil:
    return FakePsutil()


def poll_one(probe: HostProbe, now: float) -> dict[str, float]:
    points = probe.poll(now)
    assert len(points) == 1
    (point,) = points
    assert (point.device, point.ts) == ("host", now)
    return point.metrics


# ---------------------------------------------------------------- host probe, fake psutil

def test_system_readings(ps: FakePsutil, clock: Clock) -> None:
    probe = HostProbe(HostSection(), ps=ps)
    clock.mono += 10
    values = poll_one(probe, NOW)

    assert values["cpu_percent"] == 37.5
    assert values["mem_used_percent"] == 75.0  # (total - available) / total, not psutil's percent
    assert values["mem_available_bytes"] == 2_000.0
    assert values["swap_used_percent"] == 25.0
    assert values["uptime_seconds"] == 3_600.0
    assert values["processes"] == 3.0
    assert {"load1", "load5", "load15"} <= values.keys()


def test_cpu_only_after_half_a_second_since_priming(ps: FakePsutil, clock: Clock) -> None:
    probe = HostProbe(HostSection(), ps=ps)

    clock.mono += 0.2
    assert "cpu_percent" not in poll_one(probe, NOW)
    clock.mono += 0.4  # 0.4 s since the last reading, 0.6 s since priming: still too short a window
    assert "cpu_percent" not in poll_one(probe, NOW + 1)
    clock.mono += 0.5
    ps.cpu = 12.0
    assert poll_one(probe, NOW + 2)["cpu_percent"] == 12.0
    clock.mono += 10
    ps.cpu = 80.0
    assert poll_one(probe, NOW + 3)["cpu_percent"] == 80.0


def test_cpu_at_once_when_probe_was_primed_long_ago(ps: FakePsutil, clock: Clock) -> None:
    probe = HostProbe(HostSection(), ps=ps)
    clock.mono += 0.5
    assert poll_one(probe, NOW)["cpu_percent"] == 37.5


def test_disks_per_mount_skipping_ignored_types_and_failing_mounts(ps: FakePsutil, clock: Clock) -> None:
    ps.partitions = [Partition("/dev/sda1", "/", "ext4", "rw"),
                     Partition("tmpfs", "/run", "tmpfs", "rw"),
                     Partition("overlay", "/var/lib/docker/x", "overlay", "rw"),
                     Partition("nas:/export", "/mnt/stale", "nfs4", "rw"),
                     Partition("/dev/sdb1", "/var/lib", "xfs", "rw"),
                     Partition("/dev/sda1", "/", "ext4", "rw"),  # a bind mount listed twice
                     Partition("/dev/sdc1", "/mnt/odd,name", "ext4", "rw")]  # not safe as a label
    ps.usage = {"/": Usage(100, 40, 60, 40.0), "/var/lib": Usage(1000, 900, 100, 90.0),
                "/mnt/stale": OSError(116, "Stale file handle"),
                "/run": Usage(1, 1, 0, 100.0), "/var/lib/docker/x": Usage(1, 1, 0, 100.0),
                "/mnt/odd,name": Usage(1, 1, 0, 100.0)}
    probe = HostProbe(HostSection(), ps=ps)

    values = poll_one(probe, NOW)
    disks = {k: v for k, v in values.items() if k.startswith("disk_")}

    assert disks == {"disk_used_percent{mount=/}": 40.0, "disk_free_bytes{mount=/}": 60.0,
                     "disk_used_percent{mount=/var/lib}": 90.0, "disk_free_bytes{mount=/var/lib}": 100.0}


def test_ignore_fstypes_is_configurable(ps: FakePsutil, clock: Clock) -> None:
    ps.partitions.append(Partition("/dev/sdb1", "/data", "xfs", "rw"))
    ps.usage["/data"] = Usage(10, 5, 5, 50.0)
    probe = HostProbe(HostSection(ignore_fstypes=["xfs"]), ps=ps)

    values = poll_one(probe, NOW)

    assert "disk_used_percent{mount=/}" in values
    assert not any("/data" in k for k in values)


def test_network_rates_from_two_polls(ps: FakePsutil, clock: Clock) -> None:
    ps.nics = {"eth0": nic(sent=500, recv=1_000), "wlan0": nic(sent=0, recv=0)}
    probe = HostProbe(HostSection(), ps=ps)

    first = poll_one(probe, NOW)
    assert not any(k.startswith("net_") for k in first)  # one reading is not a rate

    ps.nics = {"eth0": nic(sent=2_500, recv=21_000, errin=3, errout=2), "wlan0": nic(sent=10, recv=30)}
    second = poll_one(probe, NOW + 10)

    net = {k: v for k, v in second.items() if k.startswith("net_")}
    assert net == {"net_rx_bytes_per_s{if=eth0}": 2_000.0, "net_tx_bytes_per_s{if=eth0}": 200.0,
                   "net_errors_per_s{if=eth0}": 0.5,
                   "net_rx_bytes_per_s{if=wlan0}": 3.0, "net_tx_bytes_per_s{if=wlan0}": 1.0,
                   "net_errors_per_s{if=wlan0}": 0.0}


def test_counter_going_backwards_gives_no_rate_for_that_interface(ps: FakePsutil, clock: Clock) -> None:
    ps.nics = {"eth0": nic(1_000, 1_000), "eth1": nic(1_000_000, 1_000_000)}
    probe = HostProbe(HostSection(), ps=ps)
    poll_one(probe, NOW)
    ps.nics = {"eth0": nic(2_000, 3_000), "eth1": nic(1_500_000, 10)}  # eth1 was reset
    second = poll_one(probe, NOW + 2)

    assert not any("eth1" in k for k in second)
    assert second["net_rx_bytes_per_s{if=eth0}"] == 1_000.0
    assert second["net_tx_bytes_per_s{if=eth0}"] == 500.0

    ps.nics = {"eth0": nic(2_000, 3_000), "eth1": nic(1_500_100, 410)}  # counting again from the reset
    third = poll_one(probe, NOW + 4)
    assert third["net_rx_bytes_per_s{if=eth1}"] == 200.0
    assert third["net_tx_bytes_per_s{if=eth1}"] == 50.0


def test_new_interface_gets_a_rate_from_its_second_reading(ps: FakePsutil, clock: Clock) -> None:
    ps.nics = {"eth0": nic(0, 0)}
    probe = HostProbe(HostSection(), ps=ps)
    poll_one(probe, NOW)
    ps.nics = {"eth0": nic(0, 0), "wg0": nic(100, 100)}
    assert not any("wg0" in k for k in poll_one(probe, NOW + 1))
    ps.nics = {"eth0": nic(0, 0), "wg0": nic(200, 300)}
    assert poll_one(probe, NOW + 2)["net_rx_bytes_per_s{if=wg0}"] == 200.0


def test_ignored_interfaces_are_skipped(ps: FakePsutil, clock: Clock) -> None:
    names = ["lo", "docker0", "veth1a2b", "br-0c1d", "eth0"]
    ps.nics = {n: nic(0, 0) for n in names}
    probe = HostProbe(HostSection(), ps=ps)
    poll_one(probe, NOW)
    ps.nics = {n: nic(100, 100) for n in names}

    values = poll_one(probe, NOW + 1)

    interfaces = {wire.metric_labels(k)["if"] for k in values if k.startswith("net_")}
    assert interfaces == {"eth0"}


def test_ignore_interfaces_is_configurable(ps: FakePsutil, clock: Clock) -> None:
    ps.nics = {"lo": nic(0, 0), "eth0": nic(0, 0), "eth1": nic(0, 0)}
    probe = HostProbe(HostSection(ignore_interfaces=["eth1"]), ps=ps)
    poll_one(probe, NOW)
    ps.nics = {n: nic(10, 10) for n in ps.nics}

    interfaces = {wire.metric_labels(k)["if"] for k in poll_one(probe, NOW + 1) if k.startswith("net_")}

    assert interfaces == {"lo", "eth0"}


def test_failing_network_counters_keep_the_other_readings(ps: FakePsutil, clock: Clock) -> None:
    def broken(pernic: bool = False) -> dict[str, NetIO]:
        raise RuntimeError("no /proc/net/dev")

    ps.net_io_counters = broken  # type: ignore[method-assign]
    probe = HostProbe(HostSection(), ps=ps)

    values = poll_one(probe, NOW)

    assert values["mem_used_percent"] == 75.0
    assert "disk_used_percent{mount=/}" in values


def test_every_key_is_in_the_catalogue_and_valid_on_the_wire(ps: FakePsutil, clock: Clock) -> None:
    ps.partitions.append(Partition("/dev/sdb1", "/var/lib/postgresql", "xfs", "rw"))
    ps.usage["/var/lib/postgresql"] = Usage(10, 5, 5, 50.0)
    ps.nics = {"eth0": nic(0, 0), "ge-0/0/1": nic(0, 0)}
    probe = HostProbe(HostSection(), ps=ps)
    poll_one(probe, NOW)
    ps.nics = {"eth0": nic(10, 10, 1), "ge-0/0/1": nic(5, 5)}
    clock.mono += 5

    points = probe.poll(NOW + 5)
    catalogue = {m.name for m in probe.metrics()}

    keys = points[0].metrics.keys()
    assert {"cpu_percent", "net_rx_bytes_per_s{if=ge-0/0/1}", "disk_free_bytes{mount=/var/lib/postgresql}"} <= keys
    for key in keys:
        assert wire.METRIC_RE.match(key), key
        assert wire.metric_base(key) in catalogue, key
    for info in probe.metrics():
        assert info.type in wire.METRIC_TYPES and info.unit is not None and info.description
    origin = wire.Origin("c", "s", "a")
    parsed = wire.parse_telemetry(origin, wire.encode_telemetry(origin, 1, 1, points), now=NOW)
    assert parsed.points == points


def test_devices_describe_the_host(ps: FakePsutil, clock: Clock) -> None:
    (device,) = HostProbe(HostSection(), ps=ps).devices()
    assert (device.device, device.kind) == ("host", "host")
    assert device.attrs["cpus"] == 4 and device.attrs["memory_bytes"] == 8_000


def test_real_psutil_smoke() -> None:
    probe = HostProbe(HostSection())

    points = probe.poll(time.time())

    assert len(points) == 1
    keys = points[0].metrics.keys()
    assert {"mem_used_percent", "uptime_seconds", "processes"} <= keys
    assert any(k.startswith("disk_used_percent{mount=") for k in keys), sorted(keys)
    assert "cpu_percent" not in keys or 0.0 <= points[0].metrics["cpu_percent"] <= 100.0
    catalogue = {m.name for m in probe.metrics()}
    for key, value in points[0].metrics.items():
        assert wire.METRIC_RE.match(key) and wire.metric_base(key) in catalogue, key
        assert isinstance(value, float | int)
    (device,) = probe.devices()
    assert device.attrs["cpus"] >= 1


# ---------------------------------------------------------------- simulator

def devices(*pairs: tuple[str, str]) -> list[SimulatedDevice]:
    return [SimulatedDevice(name, kind) for name, kind in pairs]


def readings(sim: Simulator, times: list[float]) -> list[dict[str, dict[str, float]]]:
    return [{p.device: p.metrics for p in sim.poll(t)} for t in times]


def test_simulator_is_deterministic_for_the_same_name_and_time() -> None:
    times = [NOW + 10 * i for i in range(20)]
    one = readings(Simulator(devices(("sw-1", "switch")), started=NOW - 60), times)
    two = readings(Simulator(devices(("sw-1", "switch")), started=NOW - 60), times)
    assert one == two


def test_simulated_device_does_not_depend_on_its_neighbours() -> None:
    times = [NOW + 10 * i for i in range(5)]
    alone = readings(Simulator(devices(("ups-1", "ups")), started=NOW), times)
    crowded = readings(Simulator(devices(("sw-1", "switch"), ("ups-1", "ups")), started=NOW), times)
    assert [r["ups-1"] for r in alone] == [r["ups-1"] for r in crowded]


def test_simulated_devices_differ_by_name() -> None:
    sim = Simulator(devices(("sw-1", "switch"), ("sw-2", "switch")), started=NOW)
    (reading,) = readings(sim, [NOW])
    assert reading["sw-1"] != reading["sw-2"]


def test_switch_has_per_port_series() -> None:
    ports = load_kinds()["switch"]["ports"]
    (point,) = Simulator(devices(("sw-1", "switch")), started=NOW - 120).poll(NOW)

    assert point.device == "sw-1" and point.ts == NOW
    for port in ports:
        for base in ("if_in_bps", "if_out_bps", "if_in_errors_per_s", "if_oper_up"):
            assert f"{base}{{if={port}}}" in point.metrics
    assert point.metrics["if_oper_up{if=ge-0/0/1}"] == 1.0
    assert {"cpu_percent", "temperature_celsius"} <= point.metrics.keys()
    assert point.metrics["uptime_seconds"] == 120.0
    assert not any("{if}" in k for k in point.metrics)


def test_ups_has_battery_charge() -> None:
    (point,) = Simulator(devices(("ups-1", "ups")), started=NOW).poll(NOW)
    assert point.metrics["battery_charge_percent"] == 100.0
    assert point.metrics["on_battery"] == 0.0
    assert {"input_voltage_volts", "output_load_percent", "battery_runtime_seconds"} <= point.metrics.keys()


def test_values_are_clipped_to_min_and_max() -> None:
    kinds = load_kinds()
    sim = Simulator(devices(("sw-1", "switch"), ("ups-1", "ups")), started=NOW)
    kind_of = {"sw-1": "switch", "ups-1": "ups"}
    hit_min = set()
    for t in range(0, 86_400, 300):
        for point in sim.poll(NOW + t):
            specs = kinds[kind_of[point.device]]["metrics"]
            for key, value in point.metrics.items():
                spec = specs.get(key) or specs.get(wire.metric_base(key) + "{if}") or {}
                assert spec.get("min", float("-inf")) <= value <= spec.get("max", float("inf")), (key, value)
                if "min" in spec and value == spec["min"]:
                    hit_min.add(wire.metric_base(key))
    assert "if_in_errors_per_s" in hit_min  # noise around 0 is clipped, so 0 must occur


def test_unknown_kind_raises_naming_it() -> None:
    with pytest.raises(ValueError) as info:
        Simulator(devices(("sw-1", "switch"), ("fw-1", "firewall")), started=NOW)
    assert "firewall" in str(info.value) and "fw-1" in str(info.value)


def test_simulator_catalogue_covers_every_produced_base_name() -> None:
    sim = Simulator(devices(("sw-1", "switch"), ("ups-1", "ups")), started=NOW)
    catalogue = {m.name: m for m in sim.metrics()}

    for point in sim.poll(NOW):
        for key in point.metrics:
            assert wire.METRIC_RE.match(key), key
            assert wire.metric_base(key) in catalogue, key
    assert all(m.type in wire.METRIC_TYPES and "{" not in m.name for m in catalogue.values())
    (dev_sw, dev_ups) = sim.devices()
    assert (dev_sw.device, dev_sw.kind, dev_ups.kind) == ("sw-1", "switch", "ups")
    assert dev_sw.attrs["simulated"] is True


# ---------------------------------------------------------------- registry

def config(**sections: Any) -> AgentConfig:
    cfg = AgentConfig()
    cfg.agent.id, cfg.agent.customer, cfg.agent.site = "a", "c", "s"
    for name, value in sections.items():
        section, key = name.split("__")
        setattr(getattr(cfg, section), key, value)
    return cfg


def test_build_host_and_simulator() -> None:
    pollers = build(config(simulate__devices=devices(("sw-1", "switch"))))

    assert [(p.name, type(p)) for p in pollers] == [("host", HostProbe), ("simulate", Simulator)]
    assert [d.device for p in pollers for d in p.devices()] == ["host", "sw-1"]


def test_build_only_what_is_configured() -> None:
    assert build(config(host__enabled=False)) == []
    (only,) = build(config(host__enabled=False, simulate__devices=devices(("ups-1", "ups"))))
    assert isinstance(only, Simulator)
    (only,) = build(config())
    assert isinstance(only, HostProbe)


def test_build_fails_at_start_on_unknown_kind() -> None:
    with pytest.raises(ValueError, match="toaster"):
        build(config(simulate__devices=devices(("t-1", "toaster"))))



def test_failing_memory_reading_keeps_the_other_system_readings(ps: FakePsutil, clock: Clock,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Memory:
        raise RuntimeError("no /proc/meminfo")
    monkeypatch.setattr(ps, "virtual_memory", broken)
    values = poll_one(HostProbe(HostSection(), ps=ps), clock.time())
    assert "mem_used_percent" not in values
    assert {"swap_used_percent", "uptime_seconds", "processes", "load1"} <= set(values)
