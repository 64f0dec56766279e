"""Request and response bodies of the case routes: cases, contracts, maintenance windows,
notifications, callbacks. Validation here gives a 422 that names the field; state rules (what may
happen to a case now) are alerting/case_actions.py's and give a 409."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from api.models import Page

Severity = Literal["P1", "P2", "P3", "P4"]
CaseState = Literal["open", "acknowledged", "on_site", "waiting_customer", "recovered", "resolved", "closed",
                    "suppressed"]
Action = Literal["assign", "acknowledge", "comment", "arrive", "wait", "resume", "severity", "resolve", "close",
                 "callback"]
Who = Field(None, min_length=1, max_length=200,
            description="Optional: on whose behalf an integration acts. The logged-in user is recorded; a different "
                        "name here is recorded beside it")


class Clock(BaseModel):
    due: datetime | None = Field(description="When it runs out (moves on when a wait on the customer ends)")
    met_at: datetime | None = Field(description="When it was met (acknowledged, on site, resolved or recovered)")
    left_s: float | None = Field(description="Working seconds left; negative: overdue by that much; None when met "
                                             "or without a clock")
    used: float | None = Field(description="Share of the budget used (1.0 is the deadline)")
    breached: bool
    paused: bool = Field(description="Stopped: the case waits on the customer")


class CasePublic(BaseModel):
    id: int
    customer: str
    customer_name: str
    site: str | None
    device_id: int | None = Field(description="None for a site case")
    device: str | None
    problem: str = Field(description="What the case is about: a series key, reachability, site_offline, manual, …")
    source: Literal["monitoring", "manual", "inspection"]
    parent_id: int | None = Field(description="The site case a suppressed device case belongs to")
    severity: Severity
    state: CaseState
    title: str
    assignee: str | None
    sla_policy: str
    calendar: str
    opened_at: datetime = Field(description="Starts the clocks: event time of the deciding alarm, or the opening")
    acknowledged_at: datetime | None
    arrived_at: datetime | None
    recovered_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    response_due: datetime | None
    onsite_due: datetime | None
    resolve_due: datetime | None
    clocks: dict[str, Clock] = Field(description="response, onsite, resolve")
    breached: bool = Field(description="Any clock missed")
    warranty: str | None = Field(None, description="in_warranty, out_of_warranty or unknown (device cases)")


class CaseList(Page):
    items: list[CasePublic]


class CaseEvent(BaseModel):
    time: datetime
    actor: str
    kind: str
    text: str
    data: dict[str, Any]


class CaseAlarm(BaseModel):
    id: int
    detector: str
    series: str
    severity: str
    state: str
    opened_at: datetime
    cleared_at: datetime | None
    text: str


class CallbackPublic(BaseModel):
    id: int
    customer: str
    kind: Literal["case", "scheduled"] = "case"
    contract_id: int | None = None
    case_id: int | None
    case_title: str | None = None
    due_at: datetime
    state: Literal["open", "done"]
    resolved: bool | None
    satisfaction: int | None
    comment: str | None
    done_at: datetime | None
    done_by: str | None


class CaseDetail(CasePublic):
    description: str
    evidence: dict[str, Any] = Field(description="alarm, metric snapshot, device history, warranty, device")
    root_cause: str | None
    parts_used: list[dict[str, Any]]
    resolution: str | None
    assignee_email: str | None
    paused_at: datetime | None
    paused_s: float
    events: list[CaseEvent]
    alarms: list[CaseAlarm]
    children: list[int] = Field(description="Device cases suppressed under this site case")
    callback: CallbackPublic | None


class CaseCreate(BaseModel):
    by: str | None = Who
    severity: Severity
    title: str = Field(min_length=1, max_length=300)
    description: str = Field("", max_length=20_000)
    device_id: int | None = Field(None, description="The device it is about; or site_id for a site case")
    site_id: int | None = None
    customer_id: int | None = Field(None, description="Checked against the device's or site's customer when given")
    problem: str = Field("manual", min_length=1, max_length=200,
                         description="One open case per device and problem: name another to open a second")

    @model_validator(mode="after")
    def _about_something(self) -> CaseCreate:
        if self.device_id is None and self.site_id is None:
            raise ValueError("name the device_id or the site_id the case is about")
        return self


class Part(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    part_number: str | None = Field(None, max_length=100)
    quantity: int = Field(1, ge=1, le=10_000)


#: fields each action needs beside `by`
NEEDS: dict[str, tuple[str, ...]] = {
    "assign": ("assignee",), "comment": ("text",), "wait": ("text",), "severity": ("severity", "text"),
    "resolve": ("root_cause", "resolution"), "callback": ("resolved",),
}


class CaseAction(BaseModel):
    """One body for every action; which fields each needs is listed in docs/cases.md."""

    by: str | None = Who
    text: str | None = Field(None, max_length=20_000, description="Comment, reason of a wait or severity change, …")
    assignee: str | None = Field(None, min_length=1, max_length=200)
    email: str | None = Field(None, max_length=300, pattern=r"^[^@\s]+@[^@\s]+$")
    severity: Severity | None = None
    root_cause: str | None = Field(None, min_length=1, max_length=5000)
    resolution: str | None = Field(None, min_length=1, max_length=5000)
    parts_used: list[Part] = Field(default_factory=list)
    resolved: bool | None = Field(None, description="Callback: does the customer say the problem is gone?")
    satisfaction: int | None = Field(None, ge=1, le=5, description="Callback: 1 … 5")


class Contact(BaseModel):
    role: Literal["service_desk", "manager", "executive", "customer", "engineer"]
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(None, max_length=300, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(None, max_length=50)


class ContractIn(BaseModel):
    customer_id: int
    key: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    name: str = Field(min_length=1, max_length=300)
    sla_policy: str = Field("standard", description="A policy of alerting/data/sla.toml: standard, premium, business")
    calendar: str | None = Field(None, description="Support calendar (24x7, business-cn, …); None: the policy's")
    sla_overrides: dict[str, dict[str, float | None]] = Field(
        default_factory=dict, description='Hours per severity replacing the policy\'s: {"P1": {"response_h": 0.5}}')
    contacts: list[Contact] = Field(default_factory=list, description="Who escalations and notifications reach")
    active: bool = True
    starts_on: date | None = None
    ends_on: date | None = None
    sites: list[str] = Field(default_factory=list, description="Site keys covered; with devices both empty: "
                                                               "every device of the customer")
    devices: list[str] = Field(default_factory=list, description='Devices covered, as "site/device" keys')
    accepted_on: date | None = Field(None, description="Acceptance date (验收日期) of the covered devices that "
                                                       "have none of their own: starts warranty and callbacks")
    warranty_months: int = Field(12, ge=0, le=240)
    inspection_cadence: str = Field("quarterly", description="monthly, bimonthly, seasonal, quarterly, semiannual, "
                                                             "annual (alerting/data/inspection.toml)")
    callback_plan: str = Field("standard", description="A plan of alerting/data/inspection.toml [callbacks.*]")
    report_recipients: list[str] = Field(default_factory=list, description="E-mail addresses the monthly "
                                                                           "health report goes to")
    report_language: Literal["en", "zh-CN"] = "en"

    @model_validator(mode="after")
    def _dates(self) -> ContractIn:
        if self.starts_on and self.ends_on and self.ends_on <= self.starts_on:
            raise ValueError("ends_on must come after starts_on")
        for addr in self.report_recipients:
            if "@" not in addr or len(addr) > 320:
                raise ValueError(f"report_recipients: {addr!r} is not an e-mail address")
        return self


class ContractPublic(ContractIn):
    id: int
    customer: str
    created_at: datetime
    updated_at: datetime


class MaintenanceIn(BaseModel):
    customer_id: int
    site_id: int | None = Field(None, description="None: all the customer's sites")
    device_id: int | None = Field(None, description="None: every device in scope")
    starts_at: datetime
    ends_at: datetime
    reason: str = Field(min_length=1, max_length=2000)
    by: str | None = Who

    @model_validator(mode="after")
    def _order(self) -> MaintenanceIn:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("starts_at and ends_at need a time zone (e.g. 2026-11-02T22:00:00Z)")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must come after starts_at")
        return self


class MaintenancePublic(BaseModel):
    id: int
    customer_id: int
    customer: str
    site_id: int | None
    device_id: int | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime


class NotificationPublic(BaseModel):
    id: int
    case_id: int | None
    event: str
    channel: Literal["webhook", "email"]
    target: str
    subject: str
    state: Literal["pending", "sent", "failed"]
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class NotificationList(Page):
    items: list[NotificationPublic]
