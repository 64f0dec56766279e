"""Inspections planned from health: each covered device has one planned inspection whose date starts
from the contract's cadence and is brought forward when health falls or a trend forecasts failure.

Planning is idempotent (one planned row per device, a unique index), so the scheduled job, the
detection worker's replanning on a health change and a restart can all call it without doubling
work. A date only ever moves earlier on its own: once a visit is brought forward it stays so until
the inspection is done (an engineer may have booked it); a date a person set is not moved at all;
completing one plans the next from it.
Every move is a row of inspection_plan_changes with the reason in words.
"""

from __future__ import annotations

import calendar
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from alerting.detectors import duration_words
from alerting.inspection_policy import InspectionPolicy, default_policy
from alerting.policies import PolicyError

log = logging.getLogger(__name__)


class InspectionRefused(ValueError):
    """The inspection is not in a state that allows the action (done already, past its limit…)."""


class ChecklistMismatch(InspectionRefused):
    """The results do not match the inspection's checklist (an item missing or unknown)."""


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class DeviceFacts:
    """What planning needs of one device, read in one query (see `_facts`)."""

    device_id: int
    customer_id: int
    site_id: int
    contract_id: int | None
    covered: bool
    kind: str
    cadence: str | None
    since: date                      # the last inspection, else when the device joined
    last_done: date | None
    health: float | None
    breakdown: list[dict[str, Any]]
    forecast_h: float | None         # the nearest trend forecast (hours of event time)
    forecast_what: str


@dataclass(frozen=True)
class Plan:
    due_on: date
    latest_on: date
    reason: str


def plan(f: DeviceFacts, today: date, policy: InspectionPolicy) -> Plan:
    """The date a device should next be inspected, and why. Pure: tested without a database."""
    months = policy.months(f.cadence or "quarterly")
    latest = add_months(f.since, months)
    cadence_name = f.cadence or "quarterly"
    after = f"the last inspection on {f.last_done.isoformat()}" if f.last_done else f"{f.since.isoformat()}"
    candidates: list[tuple[date, str]] = [(latest, f"{cadence_name} cadence: {months} month"
                                                   f"{'s' if months != 1 else ''} after {after}")]
    if f.health is not None:
        for rule in policy.health:
            if f.health < rule.below:
                costs = "; ".join(p["text"] for p in f.breakdown[:2])
                candidates.append((today + timedelta(days=rule.within_days),
                                   f"health fell to {f.health:.0f}" + (f": {costs}" if costs else "")
                                   + f" (below {rule.below:.0f}: within {rule.within_days} days)"))
                break
    if f.forecast_h is not None and f.forecast_h <= policy.forecast_horizon_days * 24:
        at = today + timedelta(hours=f.forecast_h) - timedelta(days=policy.forecast_lead_days)
        candidates.append((max(today, at), f"forecast: {f.forecast_what or 'a trend'} reaches its limit in about "
                                            f"{duration_words(f.forecast_h * 3600)}"))
    due, reason = min(candidates, key=lambda c: c[0])
    others = [r for d, r in candidates if d == due and r != reason]
    return Plan(due, latest, "; ".join([reason, *others]))


_FACTS = """
SELECT d.id, v.customer_id, v.site_id, v.contract_id, v.covered, d.kind, v.inspection_cadence,
       coalesce(last.done_on, greatest(v.accepted_on, (d.created_at AT TIME ZONE 'UTC')::date)) AS since,
       last.done_on, d.health,
       d.health_breakdown,
       (SELECT min((al.evidence->'forecast'->>'hours_left')::float8) FROM alarms al
        WHERE al.device_id = d.id AND al.state = 'active' AND al.detector = 'trend') AS forecast_h,
       (SELECT al.series FROM alarms al WHERE al.device_id = d.id AND al.state = 'active' AND al.detector = 'trend'
        ORDER BY (al.evidence->'forecast'->>'hours_left')::float8 NULLS LAST LIMIT 1) AS forecast_what
FROM devices d JOIN device_service v ON v.device_id = d.id
LEFT JOIN LATERAL (SELECT (max(i.done_at) AT TIME ZONE 'UTC')::date AS done_on FROM inspections i
                   WHERE i.device_id = d.id AND i.state = 'done') last ON true
"""


def _facts(conn: psycopg.Connection, device_ids: Sequence[int] | None) -> list[DeviceFacts]:
    sql = _FACTS + (" WHERE d.id = ANY(%s)" if device_ids is not None else "") + " ORDER BY d.id"
    rows = conn.execute(sql, (list(device_ids),) if device_ids is not None else ()).fetchall()
    return [DeviceFacts(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6], r[7], r[8], r[9], r[10] or [], r[11],
                        r[12] or "") for r in rows]


class Inspections:
    def __init__(self, policy: InspectionPolicy | None = None) -> None:
        self.policy = policy or default_policy()

    # ------------------------------------------------------------ planning

    def replan(self, conn: psycopg.Connection, device_ids: Sequence[int] | None = None,
               today: date | None = None) -> int:
        """Plan (or bring forward) the inspection of these devices (None: all); returns plans changed.
        A device the contract no longer covers has its planned inspection cancelled; one whose plan
        cannot be made (a cadence the rules no longer know) is logged and skipped, never stopping
        the others (the detection worker calls this inside its transaction)."""
        today = today or datetime.now(UTC).date()
        changed = 0
        for f in _facts(conn, device_ids):
            current = conn.execute("SELECT id, due_on, booked FROM inspections WHERE device_id = %s "
                                   "AND state = 'planned' FOR UPDATE", (f.device_id,)).fetchone()
            if not f.covered:
                if current is not None:
                    conn.execute("UPDATE inspections SET state = 'cancelled', reason = %s, updated_at = now() "
                                 "WHERE id = %s", ("cancelled: the device is no longer covered by a contract in "
                                                   "force", current[0]))
                    changed += 1
                continue
            try:
                p = plan(f, today, self.policy)
            except PolicyError as exc:
                log.error("inspection of device %s not planned: %s", f.device_id, exc)
                continue
            if current is None:
                checklist = self.policy.checklist_for(f.kind).name
                row = conn.execute(
                    "INSERT INTO inspections (customer_id, site_id, device_id, contract_id, due_on, latest_on, "
                    "reason, checklist) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (device_id) WHERE state = 'planned' DO NOTHING RETURNING id",
                    (f.customer_id, f.site_id, f.device_id, f.contract_id, p.due_on, p.latest_on, p.reason,
                     checklist)).fetchone()
                if row is None:
                    continue  # planned by someone else meanwhile
                self._changed(conn, row[0], None, p)
            else:
                # the contract may have changed (cadence, a new contract): its limit follows
                conn.execute("UPDATE inspections SET latest_on = %s, contract_id = %s WHERE id = %s "
                             "AND (latest_on, contract_id) IS DISTINCT FROM (%s::date, %s::int)",
                             (p.latest_on, f.contract_id, current[0], p.latest_on, f.contract_id))
                if current[2] or p.due_on >= current[1]:
                    continue  # booked by a person, or no earlier reason: the date stays
                conn.execute("UPDATE inspections SET due_on = %s, reason = %s, updated_at = now() WHERE id = %s",
                             (p.due_on, p.reason, current[0]))
                self._changed(conn, current[0], current[1], p)
            changed += 1
        return changed

    @staticmethod
    def _changed(conn: psycopg.Connection, inspection_id: int, old: date | None, p: Plan) -> None:
        conn.execute("INSERT INTO inspection_plan_changes (inspection_id, old_due_on, new_due_on, reason) "
                     "VALUES (%s, %s, %s, %s)", (inspection_id, old, p.due_on, p.reason))
        log.info("inspection %s: due %s (was %s): %s", inspection_id, p.due_on, old, p.reason)

    # ------------------------------------------------------------ work

    def get(self, conn: psycopg.Connection, inspection_id: int, *, lock: bool = False) -> dict[str, Any]:
        row = conn.cursor(row_factory=dict_row).execute(
            "SELECT * FROM inspections WHERE id = %s" + (" FOR UPDATE" if lock else ""), (inspection_id,)).fetchone()
        if row is None:
            raise LookupError(f"inspection {inspection_id}")
        return row

    def assign(self, conn: psycopg.Connection, inspection_id: int, assignee: str, by: str) -> None:
        i = self.get(conn, inspection_id, lock=True)
        if i["state"] != "planned":
            raise InspectionRefused(f"inspection {inspection_id} is {i['state']}")
        conn.execute("UPDATE inspections SET assignee = %s, updated_at = now() WHERE id = %s", (assignee, inspection_id))

    def reschedule(self, conn: psycopg.Connection, inspection_id: int, due_on: date, by: str, reason: str,
                   today: date | None = None) -> None:
        """A person books the visit: any date from today up to the contract's latest. Planning leaves
        a booked date alone; overdue escalation starts again from it."""
        today = today or datetime.now(UTC).date()
        i = self.get(conn, inspection_id, lock=True)
        if i["state"] != "planned":
            raise InspectionRefused(f"inspection {inspection_id} is {i['state']}")
        if due_on > i["latest_on"]:
            raise InspectionRefused(f"due_on {due_on} is after {i['latest_on']}, the latest the contract allows")
        if due_on < today:
            raise ValueError(f"due_on {due_on} is in the past")
        p = Plan(due_on, i["latest_on"], f"rescheduled by {by}: {reason}")
        conn.execute("UPDATE inspections SET due_on = %s, reason = %s, booked = true, escalated_level = 0, "
                     "updated_at = now() WHERE id = %s", (due_on, p.reason, inspection_id))
        self._changed(conn, inspection_id, i["due_on"], p)

    def complete(self, conn: psycopg.Connection, inspection_id: int, by: str, *,
                 results: Sequence[dict[str, Any]], readings: dict[str, Any] | None = None,
                 findings: Sequence[dict[str, Any]] = (), parts_replaced: Sequence[dict[str, Any]] = (),
                 notes: str = "", at: datetime | None = None, cases: Any = None) -> dict[str, Any]:
        """Record the visit: the checklist's results, readings, findings (each may open a case through
        `cases`, a CaseManager), parts replaced. The record joins the device's archive and the next
        inspection is planned from it. Returns the stored inspection."""
        at = at or datetime.now(UTC)
        i = self.get(conn, inspection_id, lock=True)
        if i["state"] != "planned":
            raise InspectionRefused(f"inspection {inspection_id} is {i['state']} already")
        checklist = self.policy.checklists.get(i["checklist"]) or self.policy.checklists[self.policy.default_checklist]
        known = {item.id for item in checklist.items}
        given = {r.get("item") for r in results}
        unknown = given - known
        if unknown:
            raise ChecklistMismatch(f"not on the {checklist.name} checklist: {', '.join(sorted(map(str, unknown)))}")
        missing = known - given
        if missing:
            raise ChecklistMismatch(f"checklist items without a result: {', '.join(sorted(missing))}")
        stored_findings = []
        for n, finding in enumerate(findings):
            entry = dict(finding)
            if entry.pop("open_case", False):
                if cases is None:
                    raise InspectionRefused("cases are not enabled here: a finding cannot open one")
                from alerting.case_actions import open_case
                entry["case_id"] = open_case(
                    cases, conn, by, entry.get("severity", "P3"), f"Inspection finding: {entry['text']}"[:300],
                    device_id=i["device_id"], description=f"Found during inspection #{inspection_id} by {by}.",
                    problem=f"inspection:{inspection_id}:{n}", at=at, source="inspection")
            stored_findings.append(entry)
        failed = [r["item"] for r in results if r.get("ok") is False]
        conn.execute(
            "UPDATE inspections SET state = 'done', done_at = %s, done_by = %s, results = %s, readings = %s, "
            "findings = %s, parts_replaced = %s, notes = %s, updated_at = now() WHERE id = %s",
            (at, by, json.dumps(list(results)), json.dumps(readings or {}), json.dumps(stored_findings),
             json.dumps(list(parts_replaced)), notes, inspection_id))
        text = (f"inspection #{inspection_id} done by {by}: {len(results) - len(failed)}/{len(results)} items ok"
                + (f", {len(stored_findings)} finding(s)" if stored_findings else "")
                + (f", parts replaced: {', '.join(p.get('name', '?') for p in parts_replaced)}" if parts_replaced else ""))
        conn.execute("INSERT INTO device_events (time, device_id, kind, severity, text, detail) "
                     "VALUES (%s, %s, 'inspection', %s, %s, %s)",
                     (at, i["device_id"], "warning" if failed or stored_findings else "info", text,
                      json.dumps({"inspection_id": inspection_id, "failed": failed, "findings": stored_findings,
                                  "parts_replaced": list(parts_replaced), "by": by})))
        self.replan(conn, [i["device_id"]], today=at.date())
        return self.get(conn, inspection_id)

    # ------------------------------------------------------------ overdue

    def escalate_overdue(self, conn: psycopg.Connection, notify_cfg: Any, today: date | None = None) -> int:
        """Fire each overdue step once per inspection: an e-mail to the roles the step names (the
        assignee, or the contract's contacts), through the notification outbox."""
        from alerting.notify import outbox, recipients
        today = today or datetime.now(UTC).date()
        fired = 0
        rows = conn.execute(
            "SELECT i.id, i.due_on, i.escalated_level, i.assignee, i.checklist, c.key, d.name, s.key, "
            "  coalesce(k.contacts, '[]'::jsonb) FROM inspections i JOIN customers c ON c.id = i.customer_id "
            "JOIN devices d ON d.id = i.device_id LEFT JOIN sites s ON s.id = i.site_id "
            "LEFT JOIN contracts k ON k.id = i.contract_id "
            "WHERE i.state = 'planned' AND i.due_on < %s FOR UPDATE OF i SKIP LOCKED", (today,)).fetchall()
        for iid, due, level, assignee, checklist, customer, device, site, contacts in rows:
            late = (today - due).days
            steps = [n for n, s in enumerate(self.policy.overdue, 1) if late >= s.after_days and n > level]
            if not steps:
                continue
            for n in steps:
                step = self.policy.overdue[n - 1]
                emails = recipients(contacts, step.roles, assignee if assignee and "@" in assignee else None)
                subject = f"[fleetcare] inspection #{iid} overdue by {late} days: {device} at {customer}/{site}"
                payload = {"event": "inspection_overdue", "text": subject,
                           "inspection": {"id": iid, "due_on": due.isoformat(), "days_late": late, "device": device,
                                          "customer": customer, "site": site, "checklist": checklist,
                                          "assignee": assignee, "level": n}, "sent_by": "fleetcare"}
                outbox(conn, notify_cfg, "inspection_overdue", subject, payload, emails, inspection_id=iid)
                fired += 1
            conn.execute("UPDATE inspections SET escalated_level = %s, updated_at = now() WHERE id = %s",
                         (steps[-1], iid))
        return fired


def routes(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group due inspections by site, so one visit covers every device due there; earliest site first."""
    sites: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        key = (r["customer"], r["site"])
        s = sites.setdefault(key, {"customer": r["customer"], "site": r["site"], "site_name": r.get("site_name"),
                                   "first_due_on": r["due_on"], "devices": 0, "inspections": []})
        s["first_due_on"] = min(s["first_due_on"], r["due_on"])
        s["devices"] += 1
        s["inspections"].append(r)
    return sorted(sites.values(), key=lambda s: (s["first_due_on"], s["customer"], s["site"]))
