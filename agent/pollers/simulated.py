"""Simulated devices (switches, UPSes) for the demo and load tests, driven by agent/data/simulated.toml."""

from __future__ import annotations

import math
import random
import tomllib
import zlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from agent.config import SimulatedDevice
from agent.wire import DeviceInfo, MetricInfo, Point

DAY = 86_400.0


@dataclass(frozen=True)
class _Series:
    key: str
    base: float
    amplitude: float
    noise: float
    period: float
    low: float
    high: float


def load_kinds() -> dict[str, dict[str, Any]]:
    text = resources.files("agent").joinpath("data", "simulated.toml").read_text("utf-8")
    return tomllib.loads(text)["kinds"]


class Simulator:
    """Every configured simulated device, each with repeatable readings seeded by its name."""

    name = "simulate"

    def __init__(self, devices: list[SimulatedDevice], started: float) -> None:
        kinds = load_kinds()
        unknown = [d for d in devices if d.kind not in kinds]
        if unknown:
            raise ValueError(f"simulate.devices: {unknown[0].name!r} has unknown kind {unknown[0].kind!r} "
                             f"(known: {', '.join(sorted(kinds))})")
        self._kinds = kinds
        self._devices = devices
        self._started = started
        self._series = {d.name: self._expand(kinds[d.kind]) for d in devices}
        seeds = {d.name: zlib.crc32(d.name.encode()) for d in devices}
        self._rng = {name: random.Random(seed) for name, seed in seeds.items()}
        self._phase = {name: (seed % 1000) / 1000 * 2 * math.pi for name, seed in seeds.items()}

    @staticmethod
    def _expand(kind: dict[str, Any]) -> list[_Series]:
        out = []
        ports = kind.get("ports", [])
        for key, spec in kind["metrics"].items():
            names = [key.replace("{if}", f"{{if={p}}}") for p in ports] if "{if}" in key else [key]
            for name in names:
                out.append(_Series(name, spec.get("base", 0.0), spec.get("amplitude", 0.0),
                                   spec.get("noise", 0.0), spec.get("period", DAY),
                                   spec.get("min", -math.inf), spec.get("max", math.inf)))
        return out

    def devices(self) -> list[DeviceInfo]:
        return [DeviceInfo(d.name, d.kind, d.name,
                           {"simulated": True, "description": self._kinds[d.kind]["description"]})
                for d in self._devices]

    def metrics(self) -> list[MetricInfo]:
        seen: dict[str, MetricInfo] = {}
        for d in self._devices:
            kind = self._kinds[d.kind]
            for key, spec in kind["metrics"].items():
                name = key.split("{", 1)[0]
                seen[name] = MetricInfo(name, spec["unit"], spec["type"], spec["description"])
            if kind.get("uptime"):
                seen["uptime_seconds"] = MetricInfo("uptime_seconds", "s", "gauge",
                                                    "Time since the device started; a drop means a reboot")
        return list(seen.values())

    def poll(self, now: float) -> list[Point]:
        points = []
        for d in self._devices:
            rng, phase = self._rng[d.name], self._phase[d.name]
            values = {}
            for s in self._series[d.name]:
                v = s.base + s.amplitude * math.sin(2 * math.pi * now / s.period + phase)
                if s.noise:
                    v += rng.gauss(0.0, s.noise)
                values[s.key] = round(min(max(v, s.low), s.high), 3)
            if self._kinds[d.kind].get("uptime"):
                values["uptime_seconds"] = round(now - self._started, 1)
            points.append(Point(d.name, now, values))
        return points
