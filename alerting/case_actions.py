"""What people do to a case: assign, acknowledge, comment, arrive on site, wait on the customer,
resume, change severity, resolve, close, record the callback — and open one by hand.

Each action checks the case's state first and refuses with `ActionRefused` (HTTP 409) naming the
state and what would be allowed, so a double click or a stale page never corrupts a case. Each is
an event with who and when. Times are arguments (`at`), so tests move a controlled clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from alerting.calendar import elapsed
from alerting.case_evidence import Where, gather, where
from alerting.cases import CaseManager
from alerting.sla import SEVERITIES

#: state → actions allowed in it (comment is always allowed)
ALLOWED: dict[str, tuple[str, ...]] = {
    "open": ("assign", "acknowledge", "arrive", "wait", "severity", "resolve"),
    "acknowledged": ("assign", "acknowledge", "arrive", "wait", "severity", "resolve"),
    "on_site": ("assign", "wait", "severity", "resolve"),
    "waiting_customer": ("assign", "resume", "severity", "resolve"),
    "recovered": ("assign", "acknowledge", "severity", "resolve", "close"),
    "resolved": ("assign", "close"),
    "closed": ("callback",),
    "suppressed": ("assign",),
}
ACTIONS = ("assign", "acknowledge", "comment", "arrive", "wait", "resume", "severity", "resolve", "close",
           "callback")


class ActionRefused(Exception):
    """The action does not fit the case's state (409)."""


class CaseNotFound(KeyError):
    pass


def _now(at: datetime | None) -> datetime:
    return at or datetime.now(UTC)


def _case(mgr: CaseManager, conn: psycopg.Connection, case_id: int, action: str) -> dict[str, Any]:
    r = conn.execute("SELECT id FROM cases WHERE id = %s FOR UPDATE", (case_id,)).fetchone()
    if r is None:
        raise CaseNotFound(case_id)
    case = mgr.row(conn, case_id)
    if action != "comment" and action not in ALLOWED[case["state"]]:
        allowed = ", ".join(("comment",) + ALLOWED[case["state"]])
        hint = f" (suppressed under site case #{case['parent_id']}: act on that one)" if case["state"] == "suppressed" \
            else ""
        raise ActionRefused(f"case #{case_id} is {case['state']}: cannot {action}{hint}; allowed now: {allowed}")
    return case


def _resume_state(case: dict[str, Any]) -> str:
    if case["arrived_at"]:
        return "on_site"
    return "acknowledged" if case["acknowledged_at"] else "open"


def _unpaused(mgr: CaseManager, case: dict[str, Any], at: datetime) -> float:
    """Working seconds waited in total, the open pause included (the calendar's time, not the wall's)."""
    if case["paused_at"] is None or at <= case["paused_at"]:
        return case["paused_s"]
    return case["paused_s"] + elapsed(mgr.clocks(case).calendar, case["paused_at"], at)


def assign(mgr: CaseManager, conn: psycopg.Connection, case_id: int, by: str, assignee: str,
           email: str | None = None, at: datetime | None = None) -> None:
    at = _now(at)
    case = _case(mgr, conn, case_id, "assign")
    conn.execute("UPDATE cases SET assignee = %s, assignee_email = %s, updated_at = now() WHERE id = %s",
                 (assignee, email, case_id))
    before = f" (was {case['assignee']})" if case["assignee"] else ""
    mgr.event(conn, case_id, at, "assigned", f"assigned to {assignee}{before}", by,
              {"assignee": assignee, "email": email, "previous": case["assignee"]})


def acknowledge(mgr: CaseManager, conn: psycopg.Connection, case_id: int, by: str, text: str = "",
                at: datetime | None = None) -> None:
    """The response clock is met. Acknowledging again is a no-op, not an error (two engineers, one click)."""
    at = _now(at)
    case = _case(mgr, conn, case_id, "acknowledge")
    if case["acknowledged_at"] is not None:
        return
    state = "acknowledged" if case["state"] == "open" else case["state"]
    conn.execute("UPDATE cases SET state = %s, acknowledged_at = %s, updated_at = now() WHERE id = %s",
                 (state, at, case_id))
    if case["assignee"] is None:
        conn.execute("UPDATE cases SET assignee = %s WHERE id = %s", (by, case_id))
    mgr.event(conn, case_id, at, "acknowledged", text or f"acknowledged by {by}: response clock met", by)


def comment(mgr: CaseManager, conn: psycopg.Connection, case_id: int, by: str, text: str,
            at: datetime | None = None) -> None:
    _case(mgr, conn, case_id, "comment")
    mgr.event(conn, case_id, _now(at), "comment", text, by)


def arrive(mgr: CaseManager, conn: psycopg.Connection, case_id: int, by: str, text: str = "",
           at: datetime | None = None) -> None:
    """On site: the on-site clock is met (and the response clock, if nobody acknowledged first)."""
    at = _now(at)
    _case(mgr, conn, case_id, "arrive")
    conn.execute("UPDATE cases SET state = 'on_site', arrived_at = %s, acknowledged_at = coalesce(acknowledged_at, %s), "
                 "updated_at = now() WHERE id = %s", (at, at, case_id))
    mgr.event(conn, case_id, at, "arrived", text or f"{by} arrived on site", by)


def wait(mgr: CaseManager, conn: psycopg.Connection, case_id: int, by: str, reason: str,
         at: datetime | None = None) -> None:
    """Waiting on the customer (access, a part they supply, their answer): the clocks stop."""
    at = _now(at)
    _case(mgr, conn, case_id, "wait")
    conn.execute("UPDATE cases SET state = 'waiting_customer', paused_at = %s, updated_at = now() WHERE id = %s",
                 (at, case_id))
    mgr.event(conn, case_id, at, "waiting_customer", f"waiting on the customer, clocks stopped: {reason}", by,
              {"reason": reason})


def resume(mgr: CaseManager, conn: psycopg.Connection, case_id: int, by: str, text: str = "",
           at: datetime | None = None) -> None:
    at = _now(at)
    case = _case(mgr, conn, case_id, "resume")
    paused = _unpaused(mgr, case, at)
    conn.execute("UPDATE cases SET state = %s, paused_at = NULL, paused_s = %s, updated_at = now() WHERE id = %s",
                 (_resume_state(case), paused, case_id))
    mgr.set_deadlines(conn, case_id)
    waited = paused - case["paused_s"]
    mgr.event(conn, case_id, at, "resumed", text or f"work resumed; the clocks moved on by {waited / 3600:.2f} "
              "working hours", by, {"waited_s": waited})


def severity(mgr: CaseManager, conn: psycopg.Connection, case_id: int, by: str, new: str, reason: str,
             at: datetime | None = None) -> None:
    if new not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {new!r}")
    case = _case(mgr, conn, case_id, "severity")
    if case["severity"] == new:
        raise ActionRefused(f"case #{case_id} is already {new}")
    mgr.change_severity(conn, case_id, new, reason, _now(at), by)


def resolve(mgr: CaseManager, conn: psycopg.Connection, case_id: int, by: str, root_cause: str,
            resolution: str, parts_used: Sequence[dict[str, Any]] = (), at: datetime | None = None) -> None:
    at = _now(at)
    case = _case(mgr, conn, case_id, "resolve")
    paused = _unpaused(mgr, case, at)
    conn.execute("UPDATE cases SET state = 'resolved', resolved_at = %s, root_cause = %s, resolution = %s, "
                 "parts_used = %s::jsonb, paused_at = NULL, paused_s = %s, updated_at = now() WHERE id = %s",
                 (at, root_cause, resolution, _parts_json(parts_used), paused, case_id))
    parts = ", ".join(f"{p.get('quantity', 1)}× {p['name']}" for p in parts_used) or "no parts"
    mgr.event(conn, case_id, at, "resolved", f"resolved by {by}: {root_cause} — {resolution} ({parts})", by,
              {"root_cause": root_cause, "resolution": resolution, "parts_used": list(parts_used)})
    mgr.notify(conn, case_id, "resolved", f"resolved: {root_cause} — {resolution}", mgr.sla.on_resolved,
               {"root_cause": root_cause, "parts_used": list(parts_used)})


def _parts_json(parts: Sequence[dict[str, Any]]) -> str:
    import json
    return json.dumps(list(parts))


def close(mgr: CaseManager, conn: psycopg.Connection, case_id: int, by: str, text: str = "",
          at: datetime | None = None) -> None:
    """Closing by a person creates the callback task (回访); a recovered case closed by hand is
    confirmed as resolved by the monitoring's recovery."""
    at = _now(at)
    case = _case(mgr, conn, case_id, "close")
    if case["state"] == "recovered" and case["resolved_at"] is None:
        conn.execute("UPDATE cases SET resolved_at = recovered_at WHERE id = %s", (case_id,))
    mgr.close(conn, case_id, at, case["resolution"] or "confirmed", text or f"closed by {by}", by)


def callback(mgr: CaseManager, conn: psycopg.Connection, case_id: int, by: str, resolved: bool,
             satisfaction: int | None, text: str = "", at: datetime | None = None) -> int:
    """The customer's answer to the callback: stored on the callback and as an event of the case.
    "Not resolved" reopens nothing by itself: the engineer decides (a comment says so)."""
    at = _now(at)
    _case(mgr, conn, case_id, "callback")
    if satisfaction is not None and not 1 <= satisfaction <= 5:
        raise ValueError("satisfaction is 1 … 5")
    r = conn.execute("UPDATE callbacks SET state = 'done', resolved = %s, satisfaction = %s, comment = %s, "
                     "done_at = %s, done_by = %s WHERE case_id = %s RETURNING id",
                     (resolved, satisfaction, text, at, by, case_id)).fetchone()
    if r is None:
        customer = conn.execute("SELECT customer_id FROM cases WHERE id = %s", (case_id,)).fetchone()[0]
        r = conn.execute("INSERT INTO callbacks (customer_id, case_id, due_at, state, resolved, satisfaction, comment, "
                         "done_at, done_by) VALUES (%s, %s, %s, 'done', %s, %s, %s, %s, %s) RETURNING id",
                         (customer, case_id, at, resolved, satisfaction, text, at, by)).fetchone()
    stars = f", satisfaction {satisfaction}/5" if satisfaction is not None else ""
    verdict = "problem resolved" if resolved else "problem NOT resolved: consider a new case"
    mgr.event(conn, case_id, at, "callback", f"callback by {by}: {verdict}{stars}" + (f" — {text}" if text else ""),
              by, {"callback_id": r[0], "resolved": resolved, "satisfaction": satisfaction, "comment": text})
    return r[0]


def open_case(mgr: CaseManager, conn: psycopg.Connection, by: str, severity: str, title: str, *,
              customer_id: int | None = None, site_id: int | None = None, device_id: int | None = None,
              description: str = "", problem: str = "manual", at: datetime | None = None,
              source: str = "manual") -> int:
    """A case opened by a person (the customer called, an inspection found something): the same
    clocks and notifications as one the monitoring opened; the device's history as evidence."""
    at = _now(at)
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    w = _where(conn, customer_id, site_id, device_id)
    existing = conn.execute(
        "SELECT id FROM cases WHERE state <> 'closed' AND customer_id = %s AND coalesce(site_id, 0) = coalesce(%s, 0) "
        "AND coalesce(device_id, 0) = coalesce(%s, 0) AND problem = %s",
        (w.customer_id, w.site_id, w.device_id, problem)).fetchone()
    if existing:
        raise ActionRefused(f"case #{existing[0]} is already open for this {'device' if device_id else 'site'} "
                            f"and problem {problem!r}: comment on it, or name another problem")
    evidence = gather(conn, w, "", at, None) if w.device_id else {}
    case_id = mgr.insert(conn, w, problem, severity, title, description, evidence, at, source=source, actor=by)
    mgr.opened(conn, case_id, severity, at)
    return case_id


def _where(conn: psycopg.Connection, customer_id: int | None, site_id: int | None,
           device_id: int | None) -> Where:
    if device_id is not None:
        r = conn.execute("SELECT agent_id FROM devices WHERE id = %s", (device_id,)).fetchone()
        if r is None:
            raise ValueError(f"device {device_id} does not exist")
        w = where(conn, r[0], device_id)
    elif site_id is not None:
        r = conn.execute("SELECT a.id FROM agents a WHERE a.site_id = %s ORDER BY a.id LIMIT 1", (site_id,)).fetchone()
        if r is None:
            s = conn.execute("SELECT s.id, s.key, s.name, c.id, c.key, c.name FROM sites s "
                             "JOIN customers c ON c.id = s.customer_id WHERE s.id = %s", (site_id,)).fetchone()
            if s is None:
                raise ValueError(f"site {site_id} does not exist")
            return Where(s[3], s[4], s[5], s[0], s[1], s[2], None, None, None, None, {})  # type: ignore[arg-type]
        w = where(conn, r[0], None)
    else:
        raise ValueError("name the device_id or the site_id the case is about")
    assert w is not None
    if customer_id is not None and w.customer_id != customer_id:
        raise ValueError(f"customer {customer_id} does not own that {'device' if device_id else 'site'}")
    return w


def perform(mgr: CaseManager, conn: psycopg.Connection, case_id: int, action: str, body: dict[str, Any],
            at: datetime | None = None) -> None:
    """One entry for the API: the action by name with its body's fields."""
    by = body["by"]
    if action == "assign":
        assign(mgr, conn, case_id, by, body["assignee"], body.get("email"), at)
    elif action == "acknowledge":
        acknowledge(mgr, conn, case_id, by, body.get("text") or "", at)
    elif action == "comment":
        comment(mgr, conn, case_id, by, body["text"], at)
    elif action == "arrive":
        arrive(mgr, conn, case_id, by, body.get("text") or "", at)
    elif action == "wait":
        wait(mgr, conn, case_id, by, body["text"], at)
    elif action == "resume":
        resume(mgr, conn, case_id, by, body.get("text") or "", at)
    elif action == "severity":
        severity(mgr, conn, case_id, by, body["severity"], body["text"], at)
    elif action == "resolve":
        resolve(mgr, conn, case_id, by, body["root_cause"], body["resolution"], body.get("parts_used") or [], at)
    elif action == "close":
        close(mgr, conn, case_id, by, body.get("text") or "", at)
    elif action == "callback":
        callback(mgr, conn, case_id, by, body["resolved"], body.get("satisfaction"), body.get("text") or "", at)
    else:
        raise ValueError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
