"""What a case carries when it opens: the metric snapshot, the device's history, its warranty — the
things an engineer reviews before touching the device (DOMAIN.md: "the case should carry them")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from alerting.health import parse_date

SNAPSHOT_BEFORE = timedelta(hours=6)
SNAPSHOT_POINTS = 120
HISTORY_DAYS = 90


@dataclass(frozen=True)
class Where:
    """The device (or site) a case is about, as the case manager reads it once per alarm."""

    customer_id: int
    customer: str
    customer_name: str
    site_id: int
    site: str
    site_name: str
    agent_id: int
    device_id: int | None
    device: str | None
    kind: str | None
    attrs: dict[str, Any]

    @property
    def label(self) -> str:
        place = f"{self.customer_name} / {self.site_name}"
        return f"{self.device} at {place}" if self.device else f"site {place}"


def where(conn: psycopg.Connection, agent_id: int, device_id: int | None) -> Where | None:
    row = conn.execute(
        "SELECT c.id, c.key, c.name, s.id, s.key, s.name, a.id, d.id, d.name, d.kind, coalesce(d.attrs, '{}') "
        "FROM agents a JOIN sites s ON s.id = a.site_id LEFT JOIN devices d ON d.id = %s AND d.agent_id = a.id "
        "JOIN customers c ON c.id = coalesce(d.customer_id, s.customer_id) WHERE a.id = %s",
        (device_id, agent_id)).fetchone()
    return Where(*row) if row else None


EXPIRING_DAYS = 90  # a warranty ending this soon is "expiring": time for the sales follow-up


def warranty_state(end: date | None, today: date) -> tuple[str, int | None]:
    """The one rule for every list that shows a warranty: (in_warranty | expiring | expired | unknown,
    days left)."""
    if end is None:
        return "unknown", None
    days = (end - today).days
    return ("expired" if days < 0 else "expiring" if days <= EXPIRING_DAYS else "in_warranty"), days


def warranty(attrs: dict[str, Any], today: date) -> dict[str, Any]:
    end = parse_date(attrs.get("warranty_end"))
    if end is None:
        return {"status": "unknown", "warranty_end": None, "days_left": None}
    days = (end - today).days
    return {"status": "in_warranty" if days >= 0 else "out_of_warranty", "warranty_end": end.isoformat(),
            "days_left": days}


def snapshot(conn: psycopg.Connection, device_id: int, series: str, at: datetime) -> dict[str, Any]:
    """The alarm's series over the hours before it; for device-level problems, each series' last value."""
    if series:
        rows = conn.execute(
            "SELECT extract(epoch FROM s.time)::float8, s.value FROM samples s JOIN series se ON se.id = s.series_id "
            "WHERE s.device_id = %s AND se.key = %s AND s.time > %s AND s.time <= %s ORDER BY s.time DESC LIMIT %s",
            (device_id, series, at - SNAPSHOT_BEFORE, at, SNAPSHOT_POINTS)).fetchall()
        if rows:
            return {"series": series, "points": [[t, v] for t, v in reversed(rows)]}
    rows = conn.execute(
        "SELECT se.key, extract(epoch FROM l.time)::float8, l.value FROM series se CROSS JOIN LATERAL ("
        "  SELECT time, value FROM samples s WHERE s.device_id = %s AND s.series_id = se.id AND s.time <= %s "
        "  AND s.time > %s ORDER BY time DESC LIMIT 1) l "
        "WHERE se.id IN (SELECT DISTINCT series_id FROM samples WHERE device_id = %s AND time > %s AND time <= %s)",
        (device_id, at, at - SNAPSHOT_BEFORE, device_id, at - SNAPSHOT_BEFORE, at)).fetchall()
    return {"last_values": {k: {"time": t, "value": v} for k, t, v in rows}}


def history(conn: psycopg.Connection, device_id: int, at: datetime) -> dict[str, Any]:
    since = at - timedelta(days=HISTORY_DAYS)
    cases = conn.execute(
        "SELECT id, severity, state, title, opened_at, closed_at, root_cause FROM cases "
        "WHERE device_id = %s AND opened_at >= %s AND opened_at <= %s ORDER BY opened_at DESC LIMIT 10",
        (device_id, since, at)).fetchall()
    reboots = conn.execute(
        "SELECT count(*), max(opened_at) FROM alarms WHERE device_id = %s AND detector = 'reboot' "
        "AND opened_at >= %s AND opened_at <= %s", (device_id, at - timedelta(days=30), at)).fetchone()
    return {
        "previous_cases": [{"id": c[0], "severity": c[1], "state": c[2], "title": c[3], "opened_at": c[4],
                            "closed_at": c[5], "root_cause": c[6]} for c in cases],
        "reboots_30d": int(reboots[0]), "last_reboot": reboots[1],
    }


def archive(conn: psycopg.Connection, device_id: int) -> dict[str, Any]:
    """The device archive's facts (device_service: archive, else what the device reports) and its
    inspections: what an engineer reads before going on site."""
    row = conn.execute(
        "SELECT v.brand, v.model, v.serial, v.location, v.firmware, v.accepted_on, v.warranty_end, v.covered, "
        "  (SELECT due_on FROM inspections WHERE device_id = v.device_id AND state = 'planned'), "
        "  (SELECT max(done_at) FROM inspections WHERE device_id = v.device_id AND state = 'done') "
        "FROM device_service v WHERE v.device_id = %s", (device_id,)).fetchone()
    if row is None:
        return {}
    keys = ("brand", "model", "serial", "location", "firmware", "accepted_on", "warranty_end", "covered",
            "inspection_due", "last_inspection")
    return {k: (v.isoformat() if isinstance(v, (date, datetime)) else v) for k, v in zip(keys, row) if v is not None}


def gather(conn: psycopg.Connection, w: Where, series: str, at: datetime, alarm: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"alarm": alarm}
    if w.device_id is not None:
        out["snapshot"] = snapshot(conn, w.device_id, series, at)
        out["history"] = history(conn, w.device_id, at)
        facts = archive(conn, w.device_id)
        out["warranty"] = warranty({"warranty_end": facts.get("warranty_end") or w.attrs.get("warranty_end")},
                                   at.date())
        out["device"] = {"id": w.device_id, "name": w.device, "kind": w.kind,
                         **{k: w.attrs[k] for k in ("brand", "model", "serial", "location", "firmware",
                                                    "inspection_due", "last_inspection") if k in w.attrs},
                         **{k: v for k, v in facts.items() if k not in ("warranty_end", "covered")}}
    return out


def describe(w: Where, alarm_text: str, criticality: str | None, ev: dict[str, Any]) -> str:
    """The case's description: what an engineer reads first, in sentences."""
    lines = [alarm_text, ""]
    if w.device_id is not None:
        lines.append(f"Device: {w.device} ({w.kind}, criticality {criticality}) at site {w.site_name} of "
                     f"{w.customer_name}.")
        wr = ev.get("warranty", {})
        if wr.get("status") == "in_warranty":
            lines.append(f"In warranty until {wr['warranty_end']} ({wr['days_left']} days left): parts and repair free.")
        elif wr.get("status") == "out_of_warranty":
            lines.append(f"Out of warranty since {wr['warranty_end']}: repairs are chargeable unless a contract covers it.")
        else:
            lines.append("Warranty: not recorded for this device.")
        h = ev.get("history", {})
        prev = h.get("previous_cases", [])
        if prev:
            lines.append(f"{len(prev)} earlier case(s) in {HISTORY_DAYS} days, latest: #{prev[0]['id']} "
                         f"{prev[0]['title']} ({prev[0]['state']}).")
        else:
            lines.append(f"No earlier case in {HISTORY_DAYS} days.")
        if h.get("reboots_30d"):
            lines.append(f"Rebooted {h['reboots_30d']} time(s) in 30 days.")
    return "\n".join(lines)
