"""The API's resource models: one family per resource (``…Public`` is what the API returns)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

DeviceStatus = Literal["unknown", "online", "offline", "partial", "no_response", "auth_failure", "error"]


class Page(BaseModel):
    total: int = Field(description="Items matching the filters, across all pages")
    limit: int
    offset: int


class LatestValue(BaseModel):
    value: float
    time: datetime
    unit: str = ""


class OpenCase(BaseModel):
    id: int
    severity: str
    state: str
    title: str


class DevicePublic(BaseModel):
    id: int
    key: str = Field(description="The device's id within its agent (``host`` for the agent's own host)")
    name: str
    kind: str = Field(description="host, switch, ups, … as the agent declared it")
    customer: str
    site: str
    agent: str
    status: DeviceStatus = Field(description="online: data flowing; offline: no data (agent gone or silent); "
                                             "partial: some SNMP OIDs failing; no_response: the SNMP device "
                                             "does not answer; auth_failure: SNMPv3 credentials refused; "
                                             "error: the device answers with errors")
    status_detail: str = Field(description="Why, in words: e.g. 'wrong digest: check auth_key'")
    status_since: datetime | None
    last_seen: datetime | None
    attrs: dict[str, Any]
    metrics: dict[str, LatestValue] = Field(description="Latest value of every series, by series key")
    health: float | None = Field(None, description="Health score 0–100 (None until first computed); "
                                                   "see /devices/{id}/health for why")
    open_alarms: int = Field(0, description="Active alarms on the device")
    open_case: OpenCase | None = Field(None, description="The most severe case still being worked on the device")


class EventPublic(BaseModel):
    id: int
    time: datetime
    kind: str = Field(description="state, reboot, trap, online, offline, agent_online, agent_offline")
    severity: str
    text: str
    detail: dict[str, Any]


class DeviceList(Page):
    items: list[DevicePublic]


class SeriesPoint(BaseModel):
    time: datetime = Field(description="Start of the step")
    avg: float
    min: float
    max: float
    count: int


class SeriesPublic(BaseModel):
    device_id: int
    metric: str
    unit: str
    start: datetime
    end: datetime
    step: float = Field(description="Seconds per point")
    source: Literal["raw", "rollup_5m"] = Field(description="Raw samples, or the 5-minute rollup for long ranges")
    points: list[SeriesPoint]


class SitePublic(BaseModel):
    id: int
    key: str
    name: str
    customer: str
    devices: int


class AgentPublic(BaseModel):
    id: int
    key: str
    customer: str
    site: str
    version: str | None
    state: Literal["unknown", "online", "offline"]
    state_since: datetime | None
    last_seen: datetime | None
    interval_s: float | None
    last_seq: int | None
    messages: int = Field(description="Messages received from the agent, redeliveries included")
    samples: int
    host: dict[str, Any]
    spooled: int | None = Field(description="Messages waiting in the agent's spool at its last report")
    delivered_messages: int | None = Field(description="Messages the broker acknowledged to the agent")
    dropped_messages: int | None = Field(description="Messages the agent dropped from a full spool")
    dropped_samples: int | None
    counters_at: datetime | None = Field(description="When the agent last reported its counters")
    gaps: int = Field(description="Sequence numbers never received (kept 30 days); a gap the agent did not "
                                  "drop was lost on the way")


class MetricInfoPublic(BaseModel):
    name: str
    unit: str
    type: Literal["gauge", "counter"]
    description: str


class RejectedSummary(BaseModel):
    reason: str
    count: int
    last_at: datetime
    last_topic: str
    last_detail: str


class DiagnosticCreate(BaseModel):
    action: str = Field(description="status, ping, snmp_get, snmp_walk, poll_now or log_tail")
    args: dict[str, Any] = Field(default_factory=dict, description="The action's arguments (docs/diagnostics.md)")
    requested_by: str | None = Field(default=None, min_length=1, max_length=200,
                                     description="Optional: on whose behalf an integration asks; the logged-in "
                                                 "user is recorded")
    ttl_s: int = Field(default=120, ge=10, le=600, description="Seconds the agent may still act on it")


class DiagnosticPublic(BaseModel):
    request_id: str
    action: str
    args: dict[str, Any]
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    status: Literal["sent", "done", "failed", "refused", "expired"]
    error: str | None
    result: Any
    finished_at: datetime | None


AlarmSeverity = Literal["info", "warning", "critical"]
AlarmState = Literal["active", "cleared"]


class AlarmChange(BaseModel):
    time: datetime = Field(description="Event time of the change")
    change: Literal["raised", "severity_changed", "cleared"]
    severity: AlarmSeverity
    text: str
    evidence: dict[str, Any]


class AlarmPublic(BaseModel):
    id: int
    device_id: int | None = Field(description="None for an alarm on a whole site agent")
    device: str | None = Field(description="Device name")
    agent_id: int
    customer: str
    site: str
    agent: str
    series: str = Field(description="Series key watched ('' for device-level findings)")
    detector: str = Field(description="threshold, trend, rate, flatline, flap, reboot, silence, trap, snmp, "
                                      "agent_offline")
    severity: AlarmSeverity
    state: AlarmState
    opened_at: datetime = Field(description="Event time of the sample or event that raised it")
    updated_at: datetime
    cleared_at: datetime | None
    text: str = Field(description="What was found, on what evidence, in words")
    clear_text: str | None
    evidence: dict[str, Any] = Field(description="Values, window, expected range or forecast behind the text")
    received_at: datetime | None = Field(description="When the collector received the deciding message")
    decided_at: datetime = Field(description="When the server decided")


class AlarmDetail(AlarmPublic):
    history: list[AlarmChange]


class AlarmList(Page):
    items: list[AlarmPublic]


class HealthPart(BaseModel):
    signal: str = Field(description="alarm, forecast, reboots, repeats, inspection, warranty, age")
    points: float = Field(description="Points this signal costs")
    text: str


class HealthPoint(BaseModel):
    time: datetime
    score: float


class DeviceHealth(BaseModel):
    device_id: int
    score: float | None = Field(description="0–100; None before the first computation")
    at: datetime | None = Field(description="Event time the score was computed for")
    breakdown: list[HealthPart]
    history: list[HealthPoint] = Field(description="Stored scores in the range, oldest first")


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]
    version: str


class ErrorBody(BaseModel):
    detail: str
