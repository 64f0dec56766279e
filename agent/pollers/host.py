"""The host probe: this machine's CPU, load, memory, disks, network and uptime through psutil."""

from __future__ import annotations

import logging
import os
import platform
import socket
import time
from typing import Any

import psutil

from agent.config import HostSection
from agent.pollers.base import load_catalogue
from agent.wire import DeviceInfo, MetricInfo, Point

log = logging.getLogger(__name__)

DEVICE_ID = "host"


class HostProbe:
    """Samples psutil; counters (network) become per-second rates between two polls."""

    name = "host"

    def __init__(self, config: HostSection, ps: Any = psutil) -> None:
        self._config = config
        self._ps = ps  # the seam: tests pass a fake psutil
        self._catalogue = load_catalogue("host_metrics.toml")
        self._last_net: tuple[float, dict[str, Any]] | None = None
        self._ps.cpu_percent(interval=None)  # prime: psutil measures CPU between two calls
        self._cpu_since = time.monotonic()

    def devices(self) -> list[DeviceInfo]:
        return [DeviceInfo(DEVICE_ID, "host", socket.gethostname(), host_facts(self._ps))]

    def metrics(self) -> list[MetricInfo]:
        return list(self._catalogue.values())

    def poll(self, now: float) -> list[Point]:
        values: dict[str, float] = {}
        for name, read in self._readings(now):
            try:
                values.update(read())
            except Exception as exc:  # one failing reading must not cost the others
                log.warning("host probe: %s failed: %s", name, exc)
        values.update(self._disks())
        values.update(self._network(now))
        return [Point(DEVICE_ID, now, values)] if values else []

    def _readings(self, now: float) -> list[tuple[str, Any]]:
        ps = self._ps
        return [("cpu", self._cpu), ("load", _load),
                ("memory", lambda: _memory(ps.virtual_memory())),
                ("swap", lambda: {"swap_used_percent": float(ps.swap_memory().percent)}),
                ("uptime", lambda: {"uptime_seconds": round(now - ps.boot_time(), 1)}),
                ("processes", lambda: {"processes": float(len(ps.pids()))})]

    def _cpu(self) -> dict[str, float]:
        cpu = float(self._ps.cpu_percent(interval=None))
        fresh = time.monotonic() - self._cpu_since >= 0.5  # shorter windows give noise (0 or 100)
        self._cpu_since = time.monotonic()
        return {"cpu_percent": cpu} if fresh else {}

    def _disks(self) -> dict[str, float]:
        out: dict[str, float] = {}
        ignore = set(self._config.ignore_fstypes)
        seen: set[str] = set()
        for part in self._ps.disk_partitions(all=False):
            if part.fstype in ignore or part.mountpoint in seen or not _label_safe(part.mountpoint):
                continue
            seen.add(part.mountpoint)
            try:
                usage = self._ps.disk_usage(part.mountpoint)
            except OSError as exc:  # a stale NFS mount, a permission problem: skip that mount only
                log.debug("host probe: %s: %s", part.mountpoint, exc)
                continue
            out[f"disk_used_percent{{mount={part.mountpoint}}}"] = float(usage.percent)
            out[f"disk_free_bytes{{mount={part.mountpoint}}}"] = float(usage.free)
        return out

    def _network(self, now: float) -> dict[str, float]:
        try:
            counters = self._ps.net_io_counters(pernic=True)
        except Exception as exc:
            log.warning("host probe: network counters failed: %s", exc)
            return {}
        counters = {nic: c for nic, c in counters.items()
                    if _label_safe(nic) and not nic.startswith(tuple(self._config.ignore_interfaces))}
        previous, self._last_net = self._last_net, (now, counters)
        if previous is None:
            return {}
        then, old = previous
        elapsed = now - then
        if elapsed <= 0:
            return {}
        out: dict[str, float] = {}
        for nic, cur in counters.items():
            before = old.get(nic)
            if before is None or cur.bytes_recv < before.bytes_recv or cur.bytes_sent < before.bytes_sent:
                continue  # new interface or counter reset: no honest rate this time
            out[f"net_rx_bytes_per_s{{if={nic}}}"] = round((cur.bytes_recv - before.bytes_recv) / elapsed, 2)
            out[f"net_tx_bytes_per_s{{if={nic}}}"] = round((cur.bytes_sent - before.bytes_sent) / elapsed, 2)
            errors = (cur.errin + cur.errout) - (before.errin + before.errout)
            out[f"net_errors_per_s{{if={nic}}}"] = round(max(errors, 0) / elapsed, 4)
        return out


def _load() -> dict[str, float]:
    load1, load5, load15 = os.getloadavg()
    return {"load1": load1, "load5": load5, "load15": load15}


def _memory(mem: Any) -> dict[str, float]:
    return {"mem_used_percent": round(100.0 * (mem.total - mem.available) / mem.total, 2),
            "mem_available_bytes": float(mem.available)}


def _label_safe(value: str) -> bool:
    return bool(value) and not any(c in value for c in "{},=") and len(value) <= 128


def host_facts(ps: Any = psutil) -> dict[str, Any]:
    """What an engineer wants to know about a host before touching it."""
    mem = ps.virtual_memory()
    return {
        "hostname": socket.gethostname(),
        "os": platform.system(),
        "os_release": platform.release(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": ps.cpu_count() or 0,
        "memory_bytes": int(mem.total),
        "boot_time": round(ps.boot_time(), 0),
        "python": platform.python_version(),
        "collected_at": round(time.time(), 0),
    }
