"""The agent's settings: ``fleetcare agent --config FILE`` plus FLEETCARE_<SECTION>_<KEY> overrides.

The keys ``[agent] id, customer, site, interval`` and ``[mqtt] url, username, password`` are fixed:
operators and scripts rely on them. deploy/agent.toml is the sample; a test keeps it in step.
"""

from __future__ import annotations

import dataclasses
import re
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
    #: Where the agent keeps its state (spool, diagnostics nonces); created if missing.
    data_dir: str = ""
    #: The per-agent secret that signs remote diagnostics (from `fleetcare enrol`); empty: off.
    diagnostics_secret: str = ""

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


SNMP_VERSIONS = ("1", "2c", "3")
AUTH_PROTOCOLS = ("", "MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
PRIV_PROTOCOLS = ("", "DES", "3DES", "AES", "AES192", "AES256", "AES192C", "AES256C")


def check_usm(where: str, auth_protocol: str, auth_key: str, priv_protocol: str, priv_key: str
              ) -> tuple[str, str]:
    """SNMPv3 user settings as RFC 3414 allows them; returns the protocol names upper-cased."""
    auth, priv = auth_protocol.upper(), priv_protocol.upper()
    if auth not in AUTH_PROTOCOLS:
        raise ValueError(f"{where}: auth_protocol {auth!r} must be one of {', '.join(a for a in AUTH_PROTOCOLS if a)}")
    if priv not in PRIV_PROTOCOLS:
        raise ValueError(f"{where}: priv_protocol {priv!r} must be one of {', '.join(p for p in PRIV_PROTOCOLS if p)}")
    if auth and len(auth_key) < 8:
        raise ValueError(f"{where}: auth_key must be at least 8 characters (RFC 3414)")
    if priv and not auth:
        raise ValueError(f"{where}: privacy without authentication is not a valid SNMPv3 level")
    if priv and len(priv_key) < 8:
        raise ValueError(f"{where}: priv_key must be at least 8 characters (RFC 3414)")
    return auth, priv


@dataclass
class SnmpTarget:
    """One SNMP device. v1/v2c use ``community``; v3 uses ``user`` and the auth/priv fields."""

    name: str = ""
    host: str = ""
    port: int = 161
    version: str = "2c"
    community: str = "public"
    user: str = ""
    auth_protocol: str = ""
    auth_key: str = ""
    priv_protocol: str = ""
    priv_key: str = ""
    context: str = ""
    #: Seconds between polls.
    interval: float = 60.0
    #: "auto" (identify, then detect the standard MIBs) or a profile name.
    profile: str = "auto"
    #: Owner of the device when it is not the agent's customer.
    customer: str = ""
    timeout: float = 2.0
    retries: int = 1

    def validate(self) -> None:
        if not wire.ID_RE.match(self.name):
            raise ValueError(f"name {self.name!r} is not a valid device id (letters, digits, '.', '_', '-')")
        if not self.host:
            raise ValueError(f"{self.name}: host is required")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"{self.name}: port {self.port} is not a UDP port")
        if self.version not in SNMP_VERSIONS:
            raise ValueError(f"{self.name}: version {self.version!r} must be one of {', '.join(SNMP_VERSIONS)}")
        if self.version == "3":
            if not self.user:
                raise ValueError(f"{self.name}: SNMPv3 needs a user")
            if self.auth_key and not self.auth_protocol:
                self.auth_protocol = "SHA"
            if self.priv_key and not self.priv_protocol:
                self.priv_protocol = "AES"
            self.auth_protocol, self.priv_protocol = check_usm(
                self.name, self.auth_protocol, self.auth_key, self.priv_protocol, self.priv_key)
        if not 5 <= self.interval <= 86_400:
            raise ValueError(f"{self.name}: interval {self.interval} must be between 5 and 86400 seconds")
        if self.customer and not wire.ID_RE.match(self.customer):
            raise ValueError(f"{self.name}: customer {self.customer!r} is not a valid id")
        if not 0.1 <= self.timeout <= 60 or not 0 <= self.retries <= 10:
            raise ValueError(f"{self.name}: timeout must be 0.1–60 s and retries 0–10")


@dataclass
class TrapUser:
    """An SNMPv3 user allowed to send traps; ``engine_id`` (hex) is the sender's, for traps
    (informs do not need it)."""

    user: str = ""
    auth_protocol: str = "SHA"
    auth_key: str = ""
    priv_protocol: str = ""
    priv_key: str = ""
    engine_id: str = ""

    def validate(self) -> None:
        if not self.user:
            raise ValueError("trap_users: user is required")
        self.auth_protocol, self.priv_protocol = check_usm(
            f"trap_users {self.user}", self.auth_protocol, self.auth_key, self.priv_protocol, self.priv_key)
        if self.engine_id and not re.fullmatch(r"(0x)?[0-9A-Fa-f]{10,64}", self.engine_id):
            raise ValueError(f"trap_users {self.user}: engine_id must be hex (10–64 digits)")
        self.engine_id = self.engine_id.removeprefix("0x")


@dataclass
class SnmpSection:
    targets: list[SnmpTarget] = field(default_factory=list)
    #: A directory of extra profile files (*.toml); same-named profiles replace shipped ones.
    profiles_dir: str = ""
    #: Devices polled at the same time. Polls mostly wait on the network: with 1,000 devices,
    #: 64 let 7 % of polls start late, 200 none (bench/snmp_poll.py, docs/decisions.md).
    concurrency: int = 200
    #: UDP port for SNMP notifications (traps and informs); 0 disables the listener.
    trap_port: int = 0
    trap_address: str = "0.0.0.0"
    #: v1/v2c communities accepted on incoming notifications.
    trap_communities: list[str] = field(default_factory=lambda: ["public"])
    trap_users: list[TrapUser] = field(default_factory=list)

    def validate(self) -> None:
        names = [t.name for t in self.targets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"snmp.targets: name {duplicates[0]!r} is used twice")
        if not 1 <= self.concurrency <= 1000:
            raise ValueError("snmp.concurrency must be between 1 and 1000")
        if not 0 <= self.trap_port <= 65535:
            raise ValueError("snmp.trap_port must be a UDP port or 0")


@dataclass
class SpoolSection:
    """Where messages wait for the broker. On disk by default: a restart loses nothing."""

    #: false keeps messages in memory only (lost on restart; for tests and throw-away agents).
    disk: bool = True
    #: The SQLite file; default <agent.data_dir>/spool.sqlite.
    path: str = ""
    #: Bounds: past either, the oldest messages are dropped, counted and reported.
    max_mb: float = 256.0
    max_age_hours: float = 168.0
    #: Messages per second the backlog drains at after an outage (fresh data goes first).
    backlog_rate: float = 200.0
    #: Also append every message to this JSON-lines file (acceptance tests, forensics); empty: off.
    audit_path: str = ""

    def validate(self) -> None:
        if self.max_mb <= 0 or self.max_age_hours <= 0 or self.backlog_rate <= 0:
            raise ValueError("spool.max_mb, spool.max_age_hours and spool.backlog_rate must be positive")


@dataclass
class AgentConfig:
    agent: AgentSection = field(default_factory=AgentSection)
    mqtt: MqttSection = field(default_factory=MqttSection)
    host: HostSection = field(default_factory=HostSection)
    simulate: SimulateSection = field(default_factory=SimulateSection)
    snmp: SnmpSection = field(default_factory=SnmpSection)
    spool: SpoolSection = field(default_factory=SpoolSection)

    def validate(self) -> None:
        names = ([d.name for d in self.simulate.devices] + [t.name for t in self.snmp.targets]
                 + (["host"] if self.host.enabled else []))
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"device name {sorted(duplicates)[0]!r} is used twice "
                             "(host, simulate.devices and snmp.targets share one namespace)")

    @property
    def origin(self) -> wire.Origin:
        return wire.Origin(self.agent.customer, self.agent.site, self.agent.id)

    @property
    def data_path(self) -> Path:
        return Path(self.agent.data_dir or f"/var/lib/fleetcare/agent-{self.agent.id}")

    @property
    def spool_path(self) -> Path:
        return Path(self.spool.path) if self.spool.path else self.data_path / "spool.sqlite"


def load(path: str | Path | None = None) -> AgentConfig:
    return load_settings(AgentConfig, path)


def as_dict(config: AgentConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
