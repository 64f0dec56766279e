"""The server's settings (collector, alerting, API): one typed object per process.

Read from a TOML file (``--config``) and FLEETCARE_<SECTION>_<KEY> variables; the two that name real
services have short names everyone uses: FLEETCARE_DATABASE_URL and FLEETCARE_MQTT_URL.
deploy/server.toml is the sample; tests/test_config.py keeps it in step with these defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from agent import mqtt, wire
from agent.settings import load_settings
from alerting.notify import NotifySection


@dataclass
class DatabaseSection:
    #: PostgreSQL connection URL. Empty: `fleetcare demo` starts an embedded PostgreSQL.
    url: str = ""
    #: "auto" uses TimescaleDB when the extension is available, "on" requires it, "off" never uses it.
    timescaledb: str = "auto"
    #: Raw samples older than this are dropped (days).
    retention_days: int = 90
    #: TimescaleDB only: chunks older than this are compressed (days).
    compress_after_days: int = 7
    pool_max: int = 10

    def validate(self) -> None:
        if self.url and urlsplit(self.url).scheme not in ("postgresql", "postgres"):
            raise ValueError(f"database.url {self.url!r}: expected postgresql://…")
        if self.timescaledb not in ("auto", "on", "off"):
            raise ValueError(f"database.timescaledb {self.timescaledb!r}: expected auto, on or off")
        if self.retention_days < 1:
            raise ValueError("database.retention_days must be at least 1")


@dataclass
class MqttSection:
    #: Broker URL. Empty: `fleetcare demo` starts a broker of its own.
    url: str = ""
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    topic_prefix: str = wire.DEFAULT_PREFIX
    #: Shared-subscription group: collectors with the same group split the stream between them.
    share_group: str = "fleetcare-collectors"
    #: Client id; a persistent session keeps unacknowledged messages across collector restarts.
    client_id: str = "fleetcare-collector"
    #: How long the broker keeps the session (and its queued messages) while the collector is away.
    session_expiry_s: int = 86_400

    def validate(self) -> None:
        if self.url:
            try:
                mqtt.BrokerAddress.parse(self.url)
            except ValueError as exc:
                raise ValueError(f"mqtt.url: {exc}") from None
        if not self.topic_prefix or any(c in self.topic_prefix for c in "+#") or self.topic_prefix.startswith("$"):
            raise ValueError(f"mqtt.topic_prefix {self.topic_prefix!r} must be a plain topic (no +, #, $)")
        if not wire.ID_RE.match(self.share_group):
            raise ValueError(f"mqtt.share_group {self.share_group!r}: letters, digits, '.', '_' or '-'")


@dataclass
class CollectorSection:
    #: A batch is written when it holds this many samples …
    batch_samples: int = 20_000
    #: … or when its oldest message has waited this long (milliseconds).
    batch_ms: int = 250
    #: Payloads larger than this are rejected unread (bytes).
    max_payload_bytes: int = wire.MAX_PAYLOAD_BYTES
    #: Messages received and not yet acknowledged (MQTT 5 Receive Maximum).
    receive_maximum: int = 10_000
    #: A device without telemetry for this many of its agent's intervals is marked offline.
    stale_intervals: float = 3.0

    def validate(self) -> None:
        if self.batch_samples < 1 or self.batch_ms < 1:
            raise ValueError("collector.batch_samples and collector.batch_ms must be positive")
        if not 1 <= self.receive_maximum <= 65_535:
            raise ValueError("collector.receive_maximum must be between 1 and 65535")


@dataclass
class AlertingSection:
    #: Run the detectors on what the collector stores (in the collector's process).
    enabled: bool = True
    #: Hours of stored samples replayed into a device's detectors when the process first meets it.
    warmup_h: float = 24.0
    #: Folder of detector policy files (*.toml); empty: the shipped alerting/data/policies.
    policies_dir: str = ""
    #: Open cases from alarms (alerting/cases.py); false: alarms only.
    cases: bool = True
    #: Case policy file (severity matrix, lifecycle, site outages); empty: the shipped alerting/data/cases.toml.
    case_policy_file: str = ""
    #: SLA policies, calendars and escalation file; empty: the shipped alerting/data/sla.toml.
    sla_file: str = ""
    #: Inspection cadences, health rules, overdue steps and callback plans; empty: alerting/data/inspection.toml.
    inspection_file: str = ""
    #: Folder of inspection checklists (*.toml); empty: the shipped alerting/data/checklists.
    checklists_dir: str = ""

    def validate(self) -> None:
        if self.warmup_h < 0:
            raise ValueError("alerting.warmup_h must be ≥ 0")


@dataclass
class ApiSection:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass
class ServerConfig:
    database: DatabaseSection = field(default_factory=DatabaseSection)
    mqtt: MqttSection = field(default_factory=MqttSection)
    collector: CollectorSection = field(default_factory=CollectorSection)
    alerting: AlertingSection = field(default_factory=AlertingSection)
    api: ApiSection = field(default_factory=ApiSection)
    notify: NotifySection = field(default_factory=NotifySection)


def load(path: str | Path | None = None) -> ServerConfig:
    return load_settings(ServerConfig, path)
