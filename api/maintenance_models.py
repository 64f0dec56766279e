"""Request and response bodies of the preventive-maintenance API: device archive and timeline,
warranties, inspections, customers and their reports, scheduled callbacks."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from api.case_models import Part  # one shape for parts, on cases and inspections

Who = Field(None, min_length=1, max_length=200,
            description="Optional: on whose behalf an integration acts. The logged-in user is recorded; a different "
                        "name here is recorded beside it")
Warranty = Literal["in_warranty", "expiring", "expired", "unknown"]


class ArchiveIn(BaseModel):
    """What the service side knows of a device. A field left out (null) falls back to what the device
    reports about itself (SNMP sysDescr, the agent's configuration)."""

    brand: str | None = Field(None, max_length=200)
    model: str | None = Field(None, max_length=200)
    serial: str | None = Field(None, max_length=200, description="Serial number (出厂编号)")
    location: str | None = Field(None, max_length=500)
    firmware: str | None = Field(None, max_length=200)
    installed_on: date | None = None
    accepted_on: date | None = Field(None, description="Acceptance date (验收日期): the warranty starts here; "
                                                       "null: the contract's")
    warranty_months: int | None = Field(None, ge=0, le=240, description="null: the contract's")
    warranty_end: date | None = Field(None, description="Set: wins over acceptance + months")
    notes: str = Field("", max_length=5000)
    by: str | None = Who


class ArchivePublic(BaseModel):
    device_id: int
    device: str
    kind: str
    customer: str
    site: str
    contract_id: int | None
    covered: bool = Field(description="Whether the customer's contract covers this device")
    brand: str | None
    model: str | None
    serial: str | None
    location: str | None
    firmware: str | None
    installed_on: date | None
    accepted_on: date | None
    warranty_end: date | None
    warranty: Warranty
    warranty_days_left: int | None
    next_inspection: date | None
    last_inspection: datetime | None
    notes: str
    recorded: dict[str, Any] = Field(description="The archive fields as recorded (null: falls back)")


class TimelineEntry(BaseModel):
    time: datetime
    kind: str = Field(description="case_opened, case_resolved, case_closed, inspection, parts_replaced, reboot, "
                                  "firmware_changed, state, trap, online, offline, archive_changed, …")
    text: str
    severity: str | None = None
    case_id: int | None = None
    inspection_id: int | None = None
    by: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class ExpiringWarranty(BaseModel):
    device_id: int
    device: str
    kind: str
    customer: str
    customer_name: str
    site: str
    brand: str | None
    model: str | None
    serial: str | None
    accepted_on: date | None
    warranty_end: date
    days_left: int
    contract_id: int | None


class InspectionPublic(BaseModel):
    id: int
    customer: str
    site: str | None
    site_name: str | None
    device_id: int
    device: str
    kind: str
    state: Literal["planned", "done", "cancelled"]
    due_on: date
    latest_on: date = Field(description="The latest date the contract's cadence allows")
    overdue_days: int = Field(description="Days past due (0: not overdue)")
    reason: str = Field(description="Why this date, in words")
    checklist: str
    assignee: str | None
    health: float | None
    warranty: Warranty
    warranty_end: date | None
    done_at: datetime | None
    done_by: str | None


class PlanChange(BaseModel):
    time: datetime
    old_due_on: date | None
    new_due_on: date
    reason: str


class ChecklistItemPublic(BaseModel):
    id: str
    text: str
    metric: str | None
    reading: float | None = Field(None, description="The metric's latest value, to compare on site")


class InspectionDetail(InspectionPublic):
    checklist_title: str
    items: list[ChecklistItemPublic]
    plan_changes: list[PlanChange]
    results: list[dict[str, Any]]
    readings: dict[str, Any]
    findings: list[dict[str, Any]]
    parts_replaced: list[dict[str, Any]]
    notes: str


class ItemResult(BaseModel):
    item: str = Field(description="A checklist item id")
    ok: bool
    value: str | float | None = None
    note: str = Field("", max_length=2000)


class Finding(BaseModel):
    text: str = Field(min_length=1, max_length=2000)
    severity: Literal["P1", "P2", "P3", "P4"] = "P3"
    open_case: bool = Field(False, description="Open a case for it (source: inspection)")


class InspectionComplete(BaseModel):
    by: str | None = Who
    results: list[ItemResult] = Field(description="One result per checklist item")
    readings: dict[str, float | str] = Field(default_factory=dict)
    findings: list[Finding] = Field(default_factory=list)
    parts_replaced: list[Part] = Field(default_factory=list)
    notes: str = Field("", max_length=5000)
    at: datetime | None = Field(None, description="When the visit ended (default: now)")


class InspectionAssign(BaseModel):
    by: str | None = Who
    assignee: str = Field(min_length=1, max_length=200)


class InspectionReschedule(BaseModel):
    by: str | None = Who
    due_on: date
    reason: str = Field(min_length=1, max_length=2000)


class RouteSite(BaseModel):
    customer: str
    site: str
    site_name: str | None
    first_due_on: date
    devices: int
    inspections: list[InspectionPublic]


class CustomerPublic(BaseModel):
    id: int
    key: str
    name: str
    address: str
    sites: int
    devices: int
    contract_id: int | None
    report_language: str | None
    open_cases: int


class ReportEntry(BaseModel):
    period: str
    lang: Literal["en", "zh-CN"]
    stored: bool = Field(description="Issued and kept unchanged")
    final: bool = Field(description="The period has ended")
    report_id: int | None
    created_at: datetime | None
    sha256: str | None
    has_pdf: bool
    html: str = Field(description="Where to read it")
    pdf: str


class CallbackResult(BaseModel):
    by: str | None = Who
    resolved: bool | None = Field(None, description="For a case's callback: is the problem really gone?")
    satisfaction: int = Field(ge=1, le=5)
    comment: str = Field("", max_length=5000)
