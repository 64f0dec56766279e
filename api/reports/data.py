"""What a customer's health report for one month says, gathered from the database as plain data.

The data is language-free (numbers, dates, names, recommendation keys with their parameters): the
renderer words it in English or Chinese, and the stored report keeps this exact data beside the
HTML, so a report can always be traced to the numbers it was built from.

Time is UTC; a period is a calendar month "YYYY-MM". Availability counts the 5-minute rollup
buckets (or the device's own interval, when longer) that hold data, over the part of the period the
device was known; it is computed from samples, so replayed history counts in its own time.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from alerting.case_evidence import warranty_state

PERIOD_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class ReportError(ValueError):
    """The report cannot be made as asked (bad period, unknown customer)."""


def period_bounds(period: str) -> tuple[datetime, datetime]:
    m = PERIOD_RE.match(period)
    if not m:
        raise ReportError(f"period {period!r}: expected YYYY-MM, e.g. 2026-10")
    y, mo = int(m.group(1)), int(m.group(2))
    if not 2000 <= y <= 9998:
        raise ReportError(f"period {period!r}: the year must be between 2000 and 9998")
    start = datetime(y, mo, 1, tzinfo=UTC)
    end = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=UTC)
    return start, end


def previous_period(now: datetime) -> str:
    first = now.astimezone(UTC).replace(day=1)
    last = first - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def customer_row(conn: psycopg.Connection, customer: str | int) -> dict[str, Any]:
    """A customer by id or key."""
    cur = conn.cursor(row_factory=dict_row)
    if isinstance(customer, int) or str(customer).isdigit():
        row = cur.execute("SELECT * FROM customers WHERE id = %s", (int(customer),)).fetchone()
    else:
        row = cur.execute("SELECT * FROM customers WHERE key = %s", (customer,)).fetchone()
    if row is None:
        raise ReportError(f"customer {customer!r} does not exist")
    return row


def _met(done: datetime | None, due: datetime | None, end: datetime) -> bool | None:
    """True met, False missed, None not decided yet at the period's end (or no promise)."""
    if due is None:
        return None
    if done is not None and done <= end:
        return done <= due
    return False if due < end else None


def build(conn: psycopg.Connection, customer: str | int, period: str, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    start, end = period_bounds(period)
    if start > now:
        raise ReportError(f"period {period} has not begun")
    cust = customer_row(conn, customer)
    cid = cust["id"]
    upto = min(end, now)
    cur = conn.cursor(row_factory=dict_row)
    contract = cur.execute(
        "SELECT id, key, name, sla_policy, calendar, inspection_cadence, warranty_months, report_recipients, "
        "report_language FROM contracts WHERE customer_id = %s AND active ORDER BY id LIMIT 1", (cid,)).fetchone()

    devices = cur.execute(
        "SELECT d.id, d.name, d.kind, s.key AS site, s.name AS site_name, v.brand, v.model, v.serial, v.location, "
        "  v.firmware, v.accepted_on, v.warranty_end, v.covered, "
        "  coalesce((d.attrs->>'interval_s')::float8, a.interval_s, 60) AS interval_s "
        "FROM devices d JOIN device_service v ON v.device_id = d.id JOIN agents a ON a.id = d.agent_id "
        "JOIN sites s ON s.id = a.site_id WHERE v.customer_id = %s ORDER BY s.key, d.name, d.id", (cid,)).fetchall()
    ids = [d["id"] for d in devices]

    # availability: buckets with data over buckets the device was known in the period
    # a device counts from its first data ever (before or in the period): one silent all month is 0 %
    steps = {d["id"]: max(300.0, float(d["interval_s"])) for d in devices}
    have_of = dict(conn.execute(
        "SELECT w.device_id, count(DISTINCT floor(extract(epoch FROM r.bucket) / w.step)) "
        "FROM unnest(%s::int4[], %s::float8[]) AS w(device_id, step) "
        "JOIN samples_5m r ON r.device_id = w.device_id AND r.bucket >= %s AND r.bucket < %s "
        "GROUP BY w.device_id", (ids, [steps[i] for i in ids], start, upto)).fetchall())
    avail: dict[int, tuple[int, int]] = {}
    for device_id, first_ever in conn.execute(
            "SELECT w.device_id, (SELECT min(bucket) FROM samples_5m r WHERE r.device_id = w.device_id) "
            "FROM unnest(%s::int4[]) AS w(device_id)", (ids,)).fetchall():
        if first_ever is None or first_ever >= upto:
            continue  # no data before the period's end: not yet in service here
        known_from = max(start, first_ever)
        expected = max(1, int((upto - known_from).total_seconds() // steps[device_id]))
        avail[device_id] = (min(int(have_of.get(device_id, 0)), expected), expected)

    # health: daily worst score across the period, the score at its end, and at its start
    spark: dict[int, list[float]] = defaultdict(list)
    for device_id, _day, worst in conn.execute(
            "SELECT device_id, date_trunc('day', time AT TIME ZONE 'UTC') AS day, min(score) FROM health_scores "
            "WHERE device_id = ANY(%s) AND time >= %s AND time < %s GROUP BY device_id, day ORDER BY device_id, day",
            (ids, start, upto)).fetchall():
        spark[device_id].append(round(float(worst), 1))
    at_end = {r[0]: (r[1], r[2]) for r in conn.execute(
        "SELECT DISTINCT ON (device_id) device_id, score, breakdown FROM health_scores "
        "WHERE device_id = ANY(%s) AND time < %s ORDER BY device_id, time DESC", (ids, upto)).fetchall()}
    at_start = {r[0]: r[1] for r in conn.execute(
        "SELECT DISTINCT ON (device_id) device_id, score FROM health_scores "
        "WHERE device_id = ANY(%s) AND time < %s ORDER BY device_id, time DESC", (ids, start)).fetchall()}

    cases = cur.execute(
        "SELECT k.id, k.severity, k.state, k.title, k.problem, k.source, k.device_id, d.name AS device, s.key AS site, "
        "  k.opened_at, k.acknowledged_at, k.arrived_at, k.recovered_at, k.resolved_at, k.closed_at, "
        "  k.response_due, k.onsite_due, k.resolve_due, k.root_cause, k.parts_used "
        "FROM cases k LEFT JOIN devices d ON d.id = k.device_id LEFT JOIN sites s ON s.id = k.site_id "
        "WHERE k.customer_id = %s AND k.opened_at >= %s AND k.opened_at < %s AND k.state <> 'suppressed' "
        "ORDER BY k.opened_at, k.id", (cid, start, upto)).fetchall()
    case_rows = []
    tally = {"response": [0, 0], "resolve": [0, 0]}
    per_device_cases: dict[int, int] = defaultdict(int)
    parts: dict[str, int] = defaultdict(int)
    by_severity = {s: 0 for s in ("P1", "P2", "P3", "P4")}
    for k in cases:
        # as the case's own clocks count them (alerting/cases.py): a response is a person's
        answered = k["acknowledged_at"] or k["resolved_at"]
        fixed = k["resolved_at"] or k["recovered_at"]
        response_met = _met(answered, k["response_due"], upto)
        resolve_met = _met(fixed, k["resolve_due"], upto)
        for clock, met in (("response", response_met), ("resolve", resolve_met)):
            if met is not None:
                tally[clock][0 if met else 1] += 1
        by_severity[k["severity"]] += 1
        if k["device_id"] is not None:
            per_device_cases[k["device_id"]] += 1
        for p in k["parts_used"] or []:
            parts[str(p.get("name", "?"))] += int(p.get("quantity", 1) or 1)
        case_rows.append({
            "id": k["id"], "severity": k["severity"], "state": k["state"], "title": k["title"],
            "problem": k["problem"], "site": k["site"],
            "device": k["device"], "source": k["source"], "opened_at": k["opened_at"].isoformat(),
            "response_min": round((answered - k["opened_at"]).total_seconds() / 60, 1) if answered else None,
            "fix_h": round((fixed - k["opened_at"]).total_seconds() / 3600, 2) if fixed else None,
            "response_met": response_met, "resolve_met": resolve_met, "root_cause": k["root_cause"]})

    def pct(met: int, missed: int) -> float | None:
        return round(100.0 * met / (met + missed), 1) if met + missed else None

    done = cur.execute(
        "SELECT i.id, i.device_id, d.name AS device, s.key AS site, i.done_at, i.done_by, i.due_on, i.findings, "
        "  i.parts_replaced, i.results FROM inspections i JOIN devices d ON d.id = i.device_id "
        "LEFT JOIN sites s ON s.id = i.site_id WHERE i.customer_id = %s AND i.state = 'done' "
        "AND i.done_at >= %s AND i.done_at < %s ORDER BY i.done_at", (cid, start, upto)).fetchall()
    for i in done:
        for p in i["parts_replaced"] or []:
            parts[str(p.get("name", "?"))] += int(p.get("quantity", 1) or 1)
    # as they stood at the period's end: planned before it and not done by then
    planned = cur.execute(
        "SELECT i.id, i.device_id, d.name AS device, s.key AS site, i.due_on, i.reason FROM inspections i "
        "JOIN devices d ON d.id = i.device_id LEFT JOIN sites s ON s.id = i.site_id "
        "WHERE i.customer_id = %s AND i.created_at < %s "
        "AND (i.state = 'planned' OR (i.state = 'done' AND i.done_at >= %s)) ORDER BY i.due_on, d.name",
        (cid, upto, upto)).fetchall()
    end_day = (upto - timedelta(microseconds=1)).date()  # the period's last day: due before it ends is overdue
    overdue = [p for p in planned if p["due_on"] <= end_day]
    due_next = [p for p in planned if end_day < p["due_on"] <= end_day + timedelta(days=31)]

    callbacks = conn.execute(
        "SELECT count(*) FILTER (WHERE state = 'done'), avg(satisfaction) FILTER (WHERE state = 'done'), "
        "  count(*) FILTER (WHERE state = 'open' AND due_at < %s) "
        "FROM callbacks WHERE customer_id = %s AND due_at >= %s AND due_at < %s",
        (upto, cid, start, upto)).fetchone()

    sites: dict[str, dict[str, Any]] = {}
    device_rows = []
    for d in devices:
        have, expected = avail.get(d["id"], (0, 0))
        site = sites.setdefault(d["site"], {"site": d["site"], "name": d["site_name"], "have": 0, "expected": 0,
                                            "devices": 0})
        site["have"] += have
        site["expected"] += expected
        site["devices"] += 1
        score, breakdown = at_end.get(d["id"], (None, []))
        warranty = d["warranty_end"]
        device_rows.append({
            "id": d["id"], "name": d["name"], "kind": d["kind"], "site": d["site"], "brand": d["brand"],
            "model": d["model"], "serial": d["serial"], "firmware": d["firmware"],
            "availability": round(100.0 * have / expected, 2) if expected else None,
            "health": None if score is None else round(float(score), 1),
            "health_start": None if at_start.get(d["id"]) is None else round(float(at_start[d["id"]]), 1),
            "health_daily": spark.get(d["id"], []), "health_top": [b["text"] for b in (breakdown or [])[:2]],
            "cases": per_device_cases.get(d["id"], 0),
            "warranty_end": warranty.isoformat() if warranty else None,
            "warranty": warranty_state(warranty, end_day)[0], "covered": d["covered"]})
    for s in sites.values():
        s["availability"] = round(100.0 * s["have"] / s["expected"], 2) if s["expected"] else None

    data = {
        "customer": {"id": cid, "key": cust["key"], "name": cust["name"], "address": cust.get("address") or ""},
        "contract": None if contract is None else {k: contract[k] for k in ("key", "name", "sla_policy", "calendar",
                                                                              "inspection_cadence", "warranty_months")},
        "period": period, "start": start.isoformat(), "end": end.isoformat(),
        "provisional": end > now or not _settled(conn, cid, end),
        "generated_at": now.isoformat(),
        "summary": {
            "devices": len(devices), "sites": len(sites),
            "availability": _weighted(sites.values()),
            "cases": len(case_rows), "by_severity": by_severity,
            "sla_response_pct": pct(*tally["response"]), "sla_resolve_pct": pct(*tally["resolve"]),
            "sla_pct": pct(tally["response"][0] + tally["resolve"][0], tally["response"][1] + tally["resolve"][1]),
            "sla_met": tally["response"][0] + tally["resolve"][0],
            "sla_missed": tally["response"][1] + tally["resolve"][1],
            "inspections_done": len(done), "inspections_overdue": len(overdue), "inspections_due_next": len(due_next),
            "callbacks_done": int(callbacks[0] or 0),
            "satisfaction": None if callbacks[1] is None else round(float(callbacks[1]), 2),
            "callbacks_missed": int(callbacks[2] or 0),
            "health_avg": _avg([d["health"] for d in device_rows]),
        },
        "sites": sorted(sites.values(), key=lambda s: s["site"]),
        "devices": device_rows,
        "cases": case_rows,
        "inspections": {
            "done": [{"id": i["id"], "device": i["device"], "site": i["site"], "done_at": i["done_at"].isoformat(),
                      "by": i["done_by"], "findings": [f.get("text", "") for f in i["findings"] or []],
                      "failed": [r["item"] for r in i["results"] or [] if r.get("ok") is False],
                      "parts": [p.get("name", "?") for p in i["parts_replaced"] or []]} for i in done],
            "overdue": [_planned(p) for p in overdue], "due_next": [_planned(p) for p in due_next]},
        "parts": [{"part": k, "qty": v} for k, v in sorted(parts.items(), key=lambda kv: (-kv[1], kv[0]))],
    }
    data["recommendations"] = recommend(conn, data, ids, start, upto)
    return data


def _settled(conn: psycopg.Connection, customer_id: int, end: datetime) -> bool:
    """Has everything of the period arrived and been judged? A device whose data the collector is
    still receiving (an agent draining its spool, a replay of history) but whose detection has not
    passed the period's end yet (its health time, or its newest sample without detection) holds the
    report back; a device silent for a day does not (it may never come back). On plain PostgreSQL
    the 5-minute rollup the availability comes from must have caught up too."""
    if conn.execute("SELECT to_regclass('rollup_dirty') IS NOT NULL AND EXISTS "
                    "(SELECT 1 FROM rollup_dirty WHERE bucket < %s)", (end,)).fetchone()[0]:
        return False
    return not conn.execute(
        "SELECT EXISTS (SELECT 1 FROM devices d JOIN device_service v ON v.device_id = d.id "
        "WHERE v.customer_id = %s AND d.received_at > now() - interval '1 day' "
        "AND coalesce(d.health_at, d.last_seen) < %s)", (customer_id, end)).fetchone()[0]


def _planned(p: dict[str, Any]) -> dict[str, Any]:
    return {"id": p["id"], "device": p["device"], "site": p["site"], "due_on": p["due_on"].isoformat(),
            "reason": p["reason"]}


def _avg(values: list[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return round(sum(vs) / len(vs), 1) if vs else None


def _weighted(sites: Any) -> float | None:
    have = sum(s["have"] for s in sites)
    expected = sum(s["expected"] for s in sites)
    return round(100.0 * have / expected, 2) if expected else None


def _version_key(version: str) -> list[tuple[int, int | str]]:
    """Release numbers compare by their numeric parts: 10.2 after 9.1, R3612 after R3507."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|[A-Za-z]+", version)]


def recommend(conn: psycopg.Connection, data: dict[str, Any], ids: list[int], start: datetime,
              end: datetime) -> list[dict[str, Any]]:
    """Concrete advice as (key, params): worded by the renderer in the report's language."""
    out: list[dict[str, Any]] = []
    by_id = {d["id"]: d for d in data["devices"]}
    # alarms of the period, by what they watched: they name the part that needs work
    seen: set[tuple[str, int]] = set()
    for device_id, series, detector in conn.execute(
            "SELECT DISTINCT device_id, series, detector FROM alarms WHERE device_id = ANY(%s) "
            "AND opened_at >= %s AND opened_at < %s AND detector IN ('trend', 'threshold', 'rate', 'flap')",
            (ids, start, end)).fetchall():
        d = by_id.get(device_id)
        if d is None:
            continue
        for prefix, key in (("battery_", "replace_battery"), ("disk_used", "expand_storage"),
                            ("fan_rpm", "service_fan"), ("temperature", "check_cooling"),
                            ("if_in_errors", "check_cabling"), ("if_oper_up", "check_cabling"),
                            ("mem_used", "memory_leak")):
            if series.startswith(prefix) and (key, device_id) not in seen:
                seen.add((key, device_id))
                out.append({"key": key, "device": d["name"], "site": d["site"]})
    for d in data["devices"]:
        if d["cases"] >= 3:
            out.append({"key": "repeat_cases", "device": d["name"], "site": d["site"], "n": d["cases"]})
        if d["warranty"] == "expiring":
            out.append({"key": "warranty_expiring", "device": d["name"], "site": d["site"], "date": d["warranty_end"]})
        elif d["warranty"] == "expired" and d["health"] is not None and d["health"] < 60:
            out.append({"key": "replace_device", "device": d["name"], "site": d["site"], "health": d["health"]})
    # firmware: devices of one model running different releases
    models: dict[tuple[str, str], set[str]] = defaultdict(set)
    for d in data["devices"]:
        if d["model"] and d["firmware"]:
            models[(d["brand"] or "", d["model"])].add(d["firmware"])
    for (brand, model), versions in sorted(models.items()):
        if len(versions) > 1:
            ordered = sorted(versions, key=_version_key)
            out.append({"key": "firmware_align", "model": f"{brand} {model}".strip(),
                        "versions": ", ".join(ordered), "latest": ordered[-1]})
    sites_overdue = sorted({i["site"] for i in data["inspections"]["overdue"] if i["site"]})
    for site in sites_overdue:
        n = sum(1 for i in data["inspections"]["overdue"] if i["site"] == site)
        out.append({"key": "book_inspection", "site": site, "n": n})
    for p in data["parts"][:5]:
        out.append({"key": "stock_part", "part": p["part"], "qty": p["qty"]})
    return out
