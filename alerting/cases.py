"""Cases that open themselves: alarms in, one case per device and problem out, with SLA clocks.

The only writer of cases. Called in the transaction that stores the alarm changes (so an alarm and
its case are committed together), and by `tick` on the wall clock for what time alone decides:
escalations at 75 % and 100 % of each clock, recovered cases closing after their hold.

- **Once**: a raise finds the device's live case for the same problem and appends to it; a problem
  returning soon after recovery reopens its case (flap damping) instead of opening another; another
  problem of a device whose case is being worked joins that case (policy `group_by_device`).
- **Correlation**: a site agent gone, or most of a site's devices unreachable at once, opens one site
  case; the device cases it would cause are `suppressed` under it and follow it.
- **Maintenance**: an alarm raised inside a maintenance window opens no case; if it is still active
  when the window ends (event time), `release` opens the case then.
Case actions by people (assign, acknowledge, …) are in alerting/case_actions.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from alerting import case_evidence, notify
from alerting.alarms import AlarmChange, _json
from alerting.case_policy import CasePolicy, case_policy
from alerting.case_evidence import Where
from alerting.sla import CLOCKS, Budget, ClockState, SlaRules, parse_budgets
from alerting.sla import rules as sla_rules

log = logging.getLogger(__name__)

SYSTEM = "fleetcare"
WORKING = ("open", "acknowledged", "on_site", "waiting_customer")
_KEY = "customer_id = %s AND coalesce(site_id, 0) = coalesce(%s, 0) AND coalesce(device_id, 0) = coalesce(%s, 0) " \
       "AND problem = %s"


def _words(seconds: float) -> str:
    from alerting.detectors import duration_words
    return duration_words(seconds)


@dataclass(frozen=True)
class Contract:
    id: int | None
    policy: str
    calendar: str
    budgets: dict[str, Budget]
    contacts: list[dict[str, Any]]


def budgets_json(budgets: dict[str, Budget]) -> dict[str, dict[str, float | None]]:
    return {s: {f"{c}_h": b.hours(c) for c in CLOCKS} for s, b in budgets.items()}


def budgets_from(data: dict[str, Any]) -> dict[str, Budget]:
    return {s: Budget(t.get("response_h"), t.get("onsite_h"), t.get("resolve_h")) for s, t in data.items()}


class CaseManager:
    def __init__(self, policy: CasePolicy | None = None, sla: SlaRules | None = None,
                 channels: notify.NotifySection | None = None) -> None:
        self.policy = policy or case_policy()
        self.sla = sla or sla_rules()
        self.channels = channels or notify.NotifySection()

    # ------------------------------------------------------------ contracts and clocks

    def contract(self, conn: psycopg.Connection, customer_id: int) -> Contract:
        """The customer's contract in force; without one, the 'standard' policy and no contacts."""
        row = conn.execute("SELECT id, sla_policy, calendar, sla_overrides, contacts FROM contracts "
                           "WHERE customer_id = %s AND active", (customer_id,)).fetchone()
        if row is None:
            p = self.sla.policy("standard")
            return Contract(None, p.name, p.calendar, p.budgets, [])
        cid, pname, cal, overrides, contacts = row
        try:
            p = self.sla.policy(pname)
            budgets = parse_budgets(overrides or {}, f"contract {cid} sla_overrides", p.budgets)
            self.sla.calendar(cal or p.calendar)
        except ValueError as exc:  # checked when written through the API; a hand edit falls back, loudly
            log.error("contract %s: %s; using the standard policy", cid, exc)
            p = self.sla.policy("standard")
            return Contract(cid, p.name, p.calendar, p.budgets, contacts or [])
        return Contract(cid, p.name, cal or p.calendar, budgets, contacts or [])

    def clocks(self, row: dict[str, Any]) -> ClockState:
        """The clock state of a case row (a dict with the cases columns)."""
        met = {"response": row["acknowledged_at"] or row["resolved_at"],
               "onsite": row["arrived_at"] or row["resolved_at"] or row["recovered_at"],
               "resolve": row["resolved_at"] or row["recovered_at"]}
        try:
            cal = self.sla.calendar(row["calendar"])
        except ValueError:
            cal = self.sla.calendar("24x7")
        return ClockState(row["severity"], row["opened_at"], cal, budgets_from(row["sla"]), row["paused_s"],
                          row["paused_at"], met)

    def set_deadlines(self, conn: psycopg.Connection, case_id: int) -> None:
        row = self.row(conn, case_id)
        st = self.clocks(row)
        conn.execute("UPDATE cases SET response_due = %s, onsite_due = %s, resolve_due = %s, updated_at = now() "
                     "WHERE id = %s", (st.due("response"), st.due("onsite"), st.due("resolve"), case_id))

    def row(self, conn: psycopg.Connection, case_id: int) -> dict[str, Any]:
        cur = conn.execute("SELECT * FROM cases WHERE id = %s", (case_id,))
        names = [d.name for d in cur.description]
        r = cur.fetchone()
        if r is None:
            raise KeyError(case_id)
        return dict(zip(names, r))

    # ------------------------------------------------------------ events and notifications

    def event(self, conn: psycopg.Connection, case_id: int, at: datetime, kind: str, text: str,
              actor: str = SYSTEM, data: dict[str, Any] | None = None) -> None:
        conn.execute("INSERT INTO case_events (case_id, time, actor, kind, text, data) VALUES (%s, %s, %s, %s, %s, %s)",
                     (case_id, at, actor, kind, text[:4000], _json(data or {})))

    def brief(self, conn: psycopg.Connection, case_id: int) -> dict[str, Any]:
        """The case as notifications carry it."""
        r = conn.execute(
            "SELECT k.id, k.severity, k.state, k.title, k.description, c.key, s.key, d.name, k.opened_at, "
            "  k.response_due, k.onsite_due, k.resolve_due, k.assignee, k.assignee_email, k.contract_id "
            "FROM cases k JOIN customers c ON c.id = k.customer_id LEFT JOIN sites s ON s.id = k.site_id "
            "LEFT JOIN devices d ON d.id = k.device_id WHERE k.id = %s", (case_id,)).fetchone()
        keys = ("id", "severity", "state", "title", "description", "customer", "site", "device", "opened_at",
                "response_due", "onsite_due", "resolve_due", "assignee", "assignee_email", "contract_id")
        return dict(zip(keys, r))

    def notify(self, conn: psycopg.Connection, case_id: int, event: str, text: str, roles: Iterable[str],
               data: dict[str, Any] | None = None) -> None:
        case = self.brief(conn, case_id)
        contacts: list[dict[str, Any]] = []
        if case["contract_id"] is not None:
            row = conn.execute("SELECT contacts FROM contracts WHERE id = %s", (case["contract_id"],)).fetchone()
            contacts = row[0] if row else []
        emails = notify.recipients(contacts, roles, case["assignee_email"])
        n = notify.enqueue(conn, self.channels, case, event, text, emails, data)
        if n or emails:
            self.event(conn, case_id, datetime.now(UTC), "notified", f"{event}: {n} notification(s) queued",
                       data={"event": event, "roles": list(roles), "emails": emails, "queued": n})

    # ------------------------------------------------------------ alarms in

    def on_alarms(self, conn: psycopg.Connection, changes: Iterable[AlarmChange]) -> None:
        for c in changes:
            if c.instant:
                continue  # something that happened and is over (a reboot): the timeline has it
            if c.change == "raised":
                self._raised(conn, c, c.at)
            elif c.change == "severity_changed":
                self._alarm_severity(conn, c)
            else:
                self._cleared(conn, c)

    def _live(self, conn: psycopg.Connection, w: Where, device_id: int | None, problem: str) -> dict[str, Any] | None:
        r = conn.execute("SELECT id FROM cases WHERE state <> 'closed' AND " + _KEY,
                         (w.customer_id, w.site_id, device_id, problem)).fetchone()
        return self.row(conn, r[0]) if r else None

    def _raised(self, conn: psycopg.Connection, c: AlarmChange, at: datetime) -> int | None:
        if not self.policy.opens(c.detector, c.severity):
            return None
        w = case_evidence.where(conn, c.agent_id, c.device_id)
        if w is None:
            return None
        problem = self.policy.problem(c.detector, c.series)
        if c.device_id is None:
            return self._site_case(conn, w, problem, c.text, at, [c.alarm_id], {"alarm": c.text})
        crit = self.policy.criticality(w.kind or "", w.attrs)
        sev = self.policy.severity(c.severity, crit)
        case = self._live(conn, w, c.device_id, problem)
        if case is None:
            case = self._reopenable(conn, w, c.device_id, problem, at)
            if case is not None:
                self._reopen(conn, case, c, at)
        if case is None and self.policy.group_by_device:
            case = self._device_case(conn, c.device_id)
            if case is not None:
                self.event(conn, case["id"], at, "related", f"another problem of the same device joins this case: "
                           f"{c.text}", data={"problem": problem})
        if case is not None:
            self._link(conn, case["id"], c, at)
            if case["state"] == "recovered":
                back = "acknowledged" if case["acknowledged_at"] else "open"
                conn.execute("UPDATE cases SET state = %s, recovered_at = NULL, updated_at = now() WHERE id = %s",
                             (back, case["id"]))
                self.event(conn, case["id"], at, "recurred", f"the problem is back before the case closed: {c.text}")
            if sev < case["severity"]:
                self.change_severity(conn, case["id"], sev, f"alarm now {c.severity}: {c.text}", at)
            return case["id"]
        window = self._maintenance(conn, w, at)
        if window is not None:
            return None  # planned work; `release` opens the case if it outlasts the window
        parent = self._site_parent(conn, w, problem)
        if parent is None and problem in self.policy.site_correlated:
            parent = self._site_outage_check(conn, w, at)  # this device the one that tips it: no own case
        return self._open(conn, w, problem, sev, crit, c, at, parent)

    def _device_case(self, conn: psycopg.Connection, device_id: int) -> dict[str, Any] | None:
        """The device's case being worked (not a suppressed one: its site case explains only reachability)."""
        r = conn.execute("SELECT id FROM cases WHERE device_id = %s AND source = 'monitoring' AND state IN "
                         "('open', 'acknowledged', 'on_site', 'waiting_customer', 'recovered') ORDER BY id LIMIT 1",
                         (device_id,)).fetchone()
        return self.row(conn, r[0]) if r else None

    def _reopenable(self, conn: psycopg.Connection, w: Where, device_id: int, problem: str,
                    at: datetime) -> dict[str, Any] | None:
        r = conn.execute("SELECT id FROM cases WHERE state = 'closed' AND " + _KEY +
                         " AND coalesce(recovered_at, resolved_at, closed_at) >= %s ORDER BY closed_at DESC LIMIT 1",
                         (w.customer_id, w.site_id, device_id, problem,
                          at - timedelta(seconds=self.policy.reopen_within_s))).fetchone()
        return self.row(conn, r[0]) if r else None

    def _reopen(self, conn: psycopg.Connection, case: dict[str, Any], c: AlarmChange, at: datetime) -> None:
        gone = at - (case["recovered_at"] or case["resolved_at"] or case["closed_at"])
        conn.execute("UPDATE cases SET state = %s, closed_at = NULL, recovered_at = NULL, resolved_at = NULL, "
                     "updated_at = now() WHERE id = %s",
                     ("acknowledged" if case["acknowledged_at"] else "open", case["id"]))
        conn.execute("DELETE FROM callbacks WHERE case_id = %s AND state = 'open'", (case["id"],))
        self.event(conn, case["id"], at, "reopened",
                   f"the same problem came back {_words(gone.total_seconds())} after it cleared: {c.text}")
        case["state"] = "reopened"

    def _link(self, conn: psycopg.Connection, case_id: int, c: AlarmChange, at: datetime) -> None:
        conn.execute("UPDATE alarms SET case_id = %s WHERE id = %s", (case_id, c.alarm_id))
        self.event(conn, case_id, at, "alarm", c.text, data={"alarm_id": c.alarm_id, "detector": c.detector,
                                                              "severity": c.severity, "series": c.series})

    def _maintenance(self, conn: psycopg.Connection, w: Where, at: datetime) -> int | None:
        r = conn.execute(
            "SELECT id FROM maintenance_windows WHERE customer_id = %s AND starts_at <= %s AND ends_at > %s "
            "AND (site_id IS NULL OR site_id = %s) AND (device_id IS NULL OR device_id = %s) LIMIT 1",
            (w.customer_id, at, at, w.site_id, w.device_id)).fetchone()
        return r[0] if r else None

    def _site_parent(self, conn: psycopg.Connection, w: Where, problem: str) -> int | None:
        if problem not in self.policy.site_correlated:
            return None
        r = conn.execute("SELECT id FROM cases WHERE state <> 'closed' AND device_id IS NULL AND site_id = %s "
                         "AND problem IN ('site_offline', 'site_unreachable') ORDER BY id LIMIT 1",
                         (w.site_id,)).fetchone()
        return r[0] if r else None

    def _open(self, conn: psycopg.Connection, w: Where, problem: str, severity: str, criticality: str | None,
              c: AlarmChange, at: datetime, parent: int | None) -> int:
        evidence = case_evidence.gather(conn, w, c.series, at, {
            "id": c.alarm_id, "detector": c.detector, "severity": c.severity, "series": c.series,
            "text": c.text, "evidence": c.evidence, "at": at})
        title = c.text.split(". ")[0][:200]
        description = case_evidence.describe(w, c.text, criticality, evidence)
        case_id = self.insert(conn, w, problem, severity, title, description, evidence, at,
                              "suppressed" if parent else "open", parent)
        self._link(conn, case_id, c, at)
        if parent:
            self.event(conn, case_id, at, "suppressed", f"part of site case #{parent}: no clocks, no notifications")
            self.event(conn, parent, at, "linked", f"device case #{case_id} suppressed: {title}", data={"case_id": case_id})
        else:
            self.opened(conn, case_id, severity, at)
        return case_id

    def insert(self, conn: psycopg.Connection, w: Where, problem: str, severity: str, title: str, description: str,
               evidence: dict[str, Any], at: datetime, state: str = "open", parent: int | None = None,
               source: str = "monitoring", actor: str = SYSTEM) -> int:
        contract = self.contract(conn, w.customer_id)
        case_id = conn.execute(
            "INSERT INTO cases (customer_id, site_id, agent_id, device_id, problem, source, parent_id, severity, "
            "  state, title, description, evidence, contract_id, sla_policy, calendar, sla, opened_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (w.customer_id, w.site_id, w.agent_id, w.device_id, problem, source, parent, severity, state, title,
             description, _json(evidence), contract.id, contract.policy, contract.calendar,
             json.dumps(budgets_json(contract.budgets)), at)).fetchone()[0]
        self.event(conn, case_id, at, "opened", f"{severity} {title}", actor,
                   {"severity": severity, "state": state, "source": source, "sla_policy": contract.policy,
                    "calendar": contract.calendar})
        if state != "suppressed":
            self.set_deadlines(conn, case_id)
        return case_id

    def opened(self, conn: psycopg.Connection, case_id: int, severity: str, at: datetime) -> None:
        roles = self.sla.on_open.get(severity, ())
        self.notify(conn, case_id, "opened", f"{severity} case opened", roles)

    def _alarm_severity(self, conn: psycopg.Connection, c: AlarmChange) -> None:
        r = conn.execute("SELECT k.id, k.severity, d.kind, d.attrs FROM alarms a JOIN cases k ON k.id = a.case_id "
                         "LEFT JOIN devices d ON d.id = k.device_id WHERE a.id = %s AND k.state <> 'closed'",
                         (c.alarm_id,)).fetchone()
        if r is None:
            if self.policy.opens(c.detector, c.severity):  # below min_severity at first, above it now
                self._raised(conn, c, c.at)
            return
        case_id, current, kind, attrs = r
        if kind is None:
            return
        sev = self.policy.severity(c.severity, self.policy.criticality(kind, attrs))
        self.event(conn, case_id, c.at, "alarm", c.text, data={"alarm_id": c.alarm_id, "severity": c.severity})
        if sev < current:
            self.change_severity(conn, case_id, sev, f"alarm now {c.severity}: {c.text}", c.at)

    def change_severity(self, conn: psycopg.Connection, case_id: int, severity: str, reason: str, at: datetime,
                        actor: str = SYSTEM) -> None:
        """Raise or lower a case's severity; the clocks follow (re-counted from the opening)."""
        old, state = conn.execute("SELECT severity, state FROM cases WHERE id = %s", (case_id,)).fetchone()
        if old == severity:
            return
        conn.execute("UPDATE cases SET severity = %s, updated_at = now() WHERE id = %s", (severity, case_id))
        verb = "raised" if severity < old else "lowered"
        self.event(conn, case_id, at, "severity_changed", f"{verb} from {old} to {severity}: {reason}", actor,
                   {"from": old, "to": severity, "reason": reason})
        if state == "suppressed":
            return  # no clocks, no notifications: its site case has them
        self.set_deadlines(conn, case_id)
        self.notify(conn, case_id, "severity_changed", f"severity {verb} from {old} to {severity}: {reason}",
                    self.sla.on_severity_changed, {"from": old, "to": severity, "reason": reason})

    def _cleared(self, conn: psycopg.Connection, c: AlarmChange) -> None:
        r = conn.execute("SELECT case_id FROM alarms WHERE id = %s", (c.alarm_id,)).fetchone()
        if r is None or r[0] is None:
            return
        case_id = r[0]
        still = conn.execute("SELECT count(*) FROM alarms WHERE case_id = %s AND state = 'active'", (case_id,)).fetchone()[0]
        self.event(conn, case_id, c.at, "alarm_cleared", c.text, data={"alarm_id": c.alarm_id, "active_left": still})
        if still:
            return
        case = self.row(conn, case_id)
        if case["state"] == "suppressed":
            self.close(conn, case_id, c.at, "recovered", f"cleared: {c.text}")
            self._site_children_clear(conn, case["parent_id"], c)
        elif case["state"] in WORKING:
            paused = self._unpause(conn, case, c.at)
            conn.execute("UPDATE cases SET state = 'recovered', recovered_at = %s, paused_s = %s, paused_at = NULL, "
                         "updated_at = now() WHERE id = %s", (c.at, paused, case_id))
            hold = self.policy.recovered_hold_s
            what = f"closes by itself after {_words(hold)} clear" if self.policy.auto_close else "an engineer confirms"
            self.event(conn, case_id, c.at, "recovered", f"cause cleared ({c.text}); {what}")
        if case["device_id"] is None:
            self._site_recovered(conn, case_id, c.at)

    def _site_children_clear(self, conn: psycopg.Connection, site_case: int | None, c: AlarmChange) -> None:
        """A site case opened for its devices' reachability (no alarm of its own) recovers when the last
        of them is reachable again."""
        if site_case is None:
            return
        row = conn.execute("SELECT state, (SELECT count(*) FROM alarms WHERE case_id = %s) FROM cases WHERE id = %s",
                           (site_case, site_case)).fetchone()
        if row is None or row[0] not in WORKING or row[1]:
            return  # closed already, or it has alarms of its own (an agent offline) that decide
        if conn.execute("SELECT count(*) FROM cases WHERE parent_id = %s AND state = 'suppressed'",
                        (site_case,)).fetchone()[0]:
            return
        conn.execute("UPDATE cases SET state = 'recovered', recovered_at = %s, paused_at = NULL, updated_at = now() "
                     "WHERE id = %s", (c.at, site_case))
        self.event(conn, site_case, c.at, "recovered", "every device of the site is reachable again")

    def _unpause(self, conn: psycopg.Connection, case: dict[str, Any], at: datetime) -> float:
        st = self.clocks(case)
        return st.paused_total(at)

    # ------------------------------------------------------------ site outages

    def _site_case(self, conn: psycopg.Connection, w: Where, problem: str, text: str, at: datetime,
                   alarm_ids: list[int], alarm: dict[str, Any]) -> int:
        live = self._live(conn, w, None, problem)
        if live is not None:
            for a in alarm_ids:
                conn.execute("UPDATE alarms SET case_id = %s WHERE id = %s AND case_id IS NULL", (live["id"], a))
            return live["id"]
        if self._maintenance(conn, w, at) is not None:
            return 0
        sev = self.policy.site_severity
        evidence = {"alarm": alarm, "site": {"id": w.site_id, "key": w.site, "name": w.site_name},
                    "devices": [dict(zip(("id", "name", "kind", "status"), r)) for r in conn.execute(
                        "SELECT id, name, kind, status FROM devices WHERE agent_id IN "
                        "(SELECT id FROM agents WHERE site_id = %s) ORDER BY name", (w.site_id,))]}
        title = f"Site {w.site_name} ({w.customer_name}) " + ("offline" if problem == "site_offline" else "unreachable")
        description = (f"{text}\n\nOne case for the whole site: the cases its devices would raise for the same "
                       f"cause are suppressed under this one and close with it.")
        case_id = self.insert(conn, w, problem, sev, title, description, evidence, at)
        for a in alarm_ids:
            conn.execute("UPDATE alarms SET case_id = %s WHERE id = %s", (case_id, a))
        # device cases already open for what the site outage explains join it
        for (child,) in conn.execute(
                "SELECT id FROM cases WHERE site_id = %s AND device_id IS NOT NULL AND state IN ('open', 'acknowledged') "
                "AND problem = ANY(%s)", (w.site_id, list(self.policy.site_correlated))).fetchall():
            conn.execute("UPDATE cases SET state = 'suppressed', parent_id = %s, updated_at = now() WHERE id = %s",
                         (case_id, child))
            self.event(conn, child, at, "suppressed", f"part of site case #{case_id}: {title}")
            self.event(conn, case_id, at, "linked", f"device case #{child} suppressed", data={"case_id": child})
        self.opened(conn, case_id, sev, at)
        return case_id

    def _site_outage_check(self, conn: psycopg.Connection, w: Where, at: datetime) -> int | None:
        """Many devices of one site unreachable at once (counting the device about to open a case):
        one site case instead of one per device. Returns the site case, if that is what it is."""
        total, down = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE d.id = %s OR EXISTS (SELECT 1 FROM cases k "
            "  WHERE k.device_id = d.id AND k.state IN ('open', 'acknowledged', 'suppressed') AND k.problem = ANY(%s))) "
            "FROM devices d JOIN agents a ON a.id = d.agent_id WHERE a.site_id = %s",
            (w.device_id, list(self.policy.site_correlated), w.site_id)).fetchone()
        if down < self.policy.site_min_devices or down < self.policy.site_min_share * total:
            return None
        site = Where(w.customer_id, w.customer, w.customer_name, w.site_id, w.site, w.site_name, w.agent_id,
                     None, None, None, {})
        case_id = self._site_case(conn, site, "site_unreachable",
                                  f"{down} of {total} devices at site {w.site_name} unreachable at once: "
                                  f"a site network or uplink problem is likelier than {down} device faults", at, [],
                                  {"devices_down": down, "devices": total})
        return case_id or None

    def _site_recovered(self, conn: psycopg.Connection, site_case: int, at: datetime) -> None:
        """Children of a recovered site case: closed when clear, opened on their own when not."""
        for (child,) in conn.execute("SELECT id FROM cases WHERE parent_id = %s AND state = 'suppressed'",
                                     (site_case,)).fetchall():
            active = conn.execute("SELECT count(*) FROM alarms WHERE case_id = %s AND state = 'active'",
                                  (child,)).fetchone()[0]
            if not active:
                self.close(conn, child, at, "recovered", f"closed with site case #{site_case}")
                continue
            conn.execute("UPDATE cases SET state = 'open', opened_at = %s, updated_at = now() WHERE id = %s", (at, child))
            self.set_deadlines(conn, child)
            self.event(conn, child, at, "unsuppressed", f"site case #{site_case} recovered but this device did not: "
                       "the case is open on its own, clocks from now")
            self.opened(conn, child, self.row(conn, child)["severity"], at)

    # ------------------------------------------------------------ closing

    def close(self, conn: psycopg.Connection, case_id: int, at: datetime, resolution: str, text: str,
              actor: str = SYSTEM) -> None:
        conn.execute("UPDATE cases SET state = 'closed', closed_at = %s, resolution = coalesce(resolution, %s), "
                     "paused_at = NULL, updated_at = now() WHERE id = %s", (at, resolution, case_id))
        self.event(conn, case_id, at, "closed", text, actor, {"resolution": resolution})
        auto = actor == SYSTEM
        if not auto or self.policy.callback_after_auto_close:
            customer = conn.execute("SELECT customer_id FROM cases WHERE id = %s", (case_id,)).fetchone()[0]
            due = at + timedelta(seconds=self.policy.callback_after_s)
            cb = conn.execute("INSERT INTO callbacks (customer_id, case_id, due_at) VALUES (%s, %s, %s) "
                              "ON CONFLICT (case_id) WHERE case_id IS NOT NULL DO UPDATE SET due_at = EXCLUDED.due_at, "
                              "state = 'open' RETURNING id", (customer, case_id, due)).fetchone()[0]
            self.event(conn, case_id, at, "callback_created", f"callback #{cb} due {due:%Y-%m-%d %H:%M} UTC: "
                       "ask the customer whether the problem is really gone", data={"callback_id": cb})

    # ------------------------------------------------------------ time

    def release(self, conn: psycopg.Connection, agent_times: dict[int, datetime]) -> int:
        """Active alarms held back by a maintenance window that has ended (event time): open their cases."""
        opened = 0
        if not agent_times:
            return 0
        rows = conn.execute(
            "SELECT id, agent_id, device_id, detector, series, severity, text, evidence, updated_at FROM alarms "
            "WHERE state = 'active' AND case_id IS NULL AND agent_id = ANY(%s) AND detector <> ALL(%s)",
            (list(agent_times), [d for d, r in self.policy.detectors.items() if not r.open])).fetchall()
        for aid, agent, device, detector, series, severity, text, evidence, updated in rows:
            now = agent_times[agent]
            if now <= updated:
                continue
            c = AlarmChange(aid, agent, device, detector, series, severity, "raised", now, text, evidence)
            if self._raised(conn, c, now):
                opened += 1
        return opened

    def tick(self, conn: psycopg.Connection, now: datetime | None = None,
             event_now: dict[int, datetime] | None = None) -> dict[str, int]:
        """Escalations due at `now` (wall clock: a deadline is a promise in real time), and recovered
        cases whose hold has passed in their agent's event time (`event_now`, agent → newest sample
        time; wall clock for an agent not in it), so that a replayed or accelerated history closes its
        cases when its own time says so."""
        now = now or datetime.now(UTC)
        event_now = event_now or {}
        fired = closed = 0
        hold = timedelta(seconds=self.policy.recovered_hold_s)
        if self.policy.auto_close:
            for case_id, agent, recovered in conn.execute(
                    "SELECT id, agent_id, recovered_at FROM cases WHERE state = 'recovered' ORDER BY id").fetchall():
                if recovered + hold > event_now.get(agent, now):
                    continue
                self.close(conn, case_id, recovered + hold, "recovered",
                           f"clear for {_words(self.policy.recovered_hold_s)}: closed by fleetcare (reopens if the "
                           f"problem returns within {_words(self.policy.reopen_within_s)})")
                closed += 1
        cur = conn.execute("SELECT * FROM cases WHERE state IN ('open', 'acknowledged', 'on_site')")
        names = [d.name for d in cur.description]
        for r in cur.fetchall():
            fired += self._escalate(conn, dict(zip(names, r)), now)
        return {"escalated": fired, "closed": closed}

    def _escalate(self, conn: psycopg.Connection, case: dict[str, Any], now: datetime) -> int:
        st = self.clocks(case)
        fired = 0
        for clock in CLOCKS:
            used = st.used(clock, now)
            if used is None or st.met.get(clock) is not None:
                continue
            for level in self.sla.levels:
                if used < level.at:
                    break
                new = conn.execute(
                    "INSERT INTO case_escalations (case_id, clock, level, severity, fired_at) VALUES (%s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING RETURNING 1", (case["id"], clock, level.at, case["severity"], now)).fetchone()
                if new is None:
                    continue
                left = st.left_s(clock, now) or 0.0
                due = st.due(clock)
                when = f"{_words(left)} left" if left > 0 else f"overdue by {_words(-left)}"
                label = {"response": "Response", "onsite": "On-site", "resolve": "Resolution"}[clock]
                text = (f"{label} clock at {level.at:.0%} of {case['severity']} {st.budget_s(clock) / 3600:g} h: {when} "
                        f"(due {due:%Y-%m-%d %H:%M} UTC); notifying {', '.join(level.notify)}")
                self.event(conn, case["id"], now, "escalated", text,
                           data={"clock": clock, "level": level.at, "roles": list(level.notify)})
                self.notify(conn, case["id"], "escalated", text, level.notify,
                            {"clock": clock, "level": level.at, "left_s": left})
                fired += 1
        return fired
