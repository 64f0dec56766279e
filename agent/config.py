"""The agent's settings: ``fleetcare agent --config FILE`` plus FLEETCARE_<SECTION>_<KEY> overrides.

The keys ``[agent] id, customer, site, interval`` and ``[mqtt] url, username, password`` are fixed:
operators and scripts rely on them. deploy/agent.toml is the sample; a test keeps it in step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent import wire
from agent.settings import load_settings


@dataclass
class AgentSection:
    id: str = ""
    customer: str = ""
    site: str = ""
    interval: float = 10.0
    #: Where the agent keeps its state (spool, sequence numbers); created if missing.
    data_dir: str = ""

    def validate(self) -> None:
        for name in ("id", "customer", "site"):
            value = getattr(self, name)
            if not value:
                raise ValueError(f"agent.{name} is required")
            if not wire.ID_RE.match(value):
                raise ValueError(f"agent.{name} {value!r}: use letters, digits, '.', '_' or '-' "
                                 "(at most 64, starting with a letter or digit)")
        if not 1 <= self.interval <= 3600:
            raise ValueError(f"agent.interval {self.interval}: must be between 1 and 3600 seconds")


@dataclass
class MqttSection:
    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = None
    #: First topic level; lets several fleets (or test runs) share one broker.
    topic_prefix: str = wire.DEFAULT_PREFIX
    #: CA bundle for mqtts:// when the broker's certificate is not signed by a system CA.
    ca_file: str | None = None
    keepalive: int = 30
    #: QoS 1 messages handed to the broker and not yet acknowledged (paho caps this at 65,535).
    max_inflight: int = 1000

    def validate(self) -> None:
        parsed = urlsplit(self.url)
        if parsed.scheme not in ("mqtt", "mqtts") or not parsed.hostname:
            raise ValueError(f"mqtt.url {self.url!r}: expected mqtt://host:port or mqtts://host:port")
        try:
            parsed.port
        except ValueError:
            raise ValueError(f"mqtt.url {self.url!r}: the port is not a number") from None
        if not 1 <= self.max_inflight <= 65_535:
            raise ValueError("mqtt.max_inflight must be between 1 and 65535")
        if not self.topic_prefix or any(c in self.topic_prefix for c in "+#") or self.topic_prefix.startswith("$"):
            raise ValueError(f"mqtt.topic_prefix {self.topic_prefix!r} must be a plain topic (no +, #, $)")


@dataclass
class HostSection:
    #: Watch the machine the agent runs on (psutil).
    enabled: bool = True
    #: File system types not worth watching (pseudo and read-only image file systems).
    ignore_fstypes: list[str] = field(default_factory=lambda: [
        "tmpfs", "devtmpfs", "overlay", "squashfs", "proc", "sysfs", "cgroup", "cgroup2", "nsfs",
        "autofs", "devpts", "mqueue", "tracefs", "debugfs", "fuse.lxcfs", "ramfs"])
    #: Network interfaces to skip, by prefix.
    ignore_interfaces: list[str] = field(default_factory=lambda: ["lo", "veth", "docker", "br-"])


@dataclass
class SimulatedDevice:
    name: str = ""
    #: A kind from agent/data/simulated.toml: switch or ups.
    kind: str = ""

    def validate(self) -> None:
        if not wire.ID_RE.match(self.name):
            raise ValueError(f"name {self.name!r} is not a valid device id")
        if not self.kind:
            raise ValueError("kind is required")


@dataclass
class SimulateSection:
    devices: list[SimulatedDevice] = field(default_factory=list)


@dataclass
class SnmpSection:
    #: Reserved for SNMP targets (``[[snmp.targets]]``); see docs/configuration.md.
    targets: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class AgentConfig:
    agent: AgentSection = field(default_factory=AgentSection)
    mqtt: MqttSection = field(default_factory=MqttSection)
    host: HostSection = field(default_factory=HostSection)
    simulate: SimulateSection = field(default_factory=SimulateSection)
    snmp: SnmpSection = field(default_factory=SnmpSection)

    def validate(self) -> None:
        names = [d.name for d in self.simulate.devices] + (["host"] if self.host.enabled else [])
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"simulate.devices: device name {sorted(duplicates)[0]!r} is used twice")

    @property
    def origin(self) -> wire.Origin:
        return wire.Origin(self.agent.customer, self.agent.site, self.agent.id)

    @property
    def data_path(self) -> Path:
        return Path(self.agent.data_dir or f"/var/lib/fleetcare/agent-{self.agent.id}")


def load(path: str | Path | None = None) -> AgentConfig:
    return load_settings(AgentConfig, path)


def as_dict(config: AgentConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
