"""What every poller is: validated at start, ``poll()`` returns points, its devices and metrics declared."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Protocol

from agent.wire import DeviceInfo, MetricInfo, Point


class Poller(Protocol):
    """One source of samples (the host, a simulated device, later SNMP targets)."""

    #: Short name used in logs: "host", "simulate".
    name: str

    def devices(self) -> list[DeviceInfo]:
        """The devices this poller reports on, announced in the birth message."""

    def metrics(self) -> list[MetricInfo]:
        """The metric catalogue entries this poller produces."""

    def poll(self, now: float) -> list[Point]:
        """Read every device once; a failing device is logged and skipped, never raises."""


def load_catalogue(name: str) -> dict[str, MetricInfo]:
    """Read a metric catalogue shipped in agent/data (name → MetricInfo)."""
    raw = tomllib.loads(resources.files("agent").joinpath("data", name).read_text("utf-8"))
    return {key: MetricInfo(key, v["unit"], v["type"], v["description"]) for key, v in raw.items()}
