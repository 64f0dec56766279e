"""The demo's service history: the customers' contracts and device archive from demo_fleet.toml, the
inspections an engineer did in the replayed 60 days, the callbacks made, and — once the replay has
passed into today — the plan of the next inspections and last month's health reports.

Everything goes through the same code the server uses (the planner, the callback schedule, the
report store), only with past dates: the demo shows what a fleet looks like after two months of
fleetcare, not a special case of it. Each step is idempotent, so a demo restarted on the same data
directory adds nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

log = logging.getLogger("fleetcare.demo")

DAY = timedelta(days=1)


def contracts(conn: psycopg.Connection, fleet: dict[str, Any], today: datetime) -> None:
    """Customers with their names and addresses, and one active contract each (before any data
    arrives, so the first case already runs on the contract's clocks)."""
    with conn.transaction():
        for c in fleet["customers"]:
            cid = conn.execute("INSERT INTO customers (key, name, address, contacts) VALUES (%s, %s, %s, %s) "
                               "ON CONFLICT (key) DO UPDATE SET name = EXCLUDED.name, address = EXCLUDED.address, "
                               "contacts = EXCLUDED.contacts RETURNING id",
                               (c["key"], c["name"], c["address"], json.dumps(c["contacts"]))).fetchone()[0]
            k = c["contract"]
            accepted = (today + k["accepted_days"] * DAY).date()
            conn.execute(
                "INSERT INTO contracts (customer_id, key, name, sla_policy, contacts, accepted_on, starts_on, "
                "warranty_months, inspection_cadence, callback_plan, report_recipients, report_language) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING",
                (cid, k["key"], k["name"], k["sla_policy"], json.dumps(c["contacts"]), accepted, accepted,
                 k["warranty_months"], k["inspection_cadence"], k["callback_plan"],
                 json.dumps(k["report_recipients"]), k["report_language"]))


def users(conn: psycopg.Connection, fleet: dict[str, Any], path: Any) -> dict[str, Any]:
    """An admin and one customer user per demo customer, with random passwords, written (0600) to
    `path` as {"username", "password", "token", "customers": [{"customer_id", "username", "password"}]}
    so scripts can log in. A restarted demo keeps the file and its users."""
    import secrets
    from pathlib import Path

    from api import auth
    path = Path(path)
    if path.exists():
        try:
            saved = json.loads(path.read_text())
            if conn.execute("SELECT 1 FROM users WHERE username = %s", (saved["username"],)).fetchone():
                return saved
        except (ValueError, KeyError):
            pass
    out: dict[str, Any] = {"username": "admin", "password": secrets.token_urlsafe(12), "customers": []}
    with conn.transaction():
        conn.execute("DELETE FROM api_tokens WHERE user_id IN (SELECT id FROM users WHERE username = 'admin' "
                     "OR username LIKE '%%-portal')")
        conn.execute("DELETE FROM users WHERE username = 'admin' OR username LIKE '%%-portal'")
        uid = auth.add_user(conn, "admin", out["password"], "admin", by="demo")
        _, out["token"] = auth.issue_token(conn, uid, "api", "demo scripts", hours=None, by="demo")
        for c in fleet["customers"]:
            password = secrets.token_urlsafe(12)
            auth.add_user(conn, f"{c['key']}-portal", password, "customer", customer=c["key"], by="demo")
            cid = conn.execute("SELECT id FROM customers WHERE key = %s", (c["key"],)).fetchone()[0]
            out["customers"].append({"customer_id": cid, "customer": c["key"], "username": f"{c['key']}-portal",
                                     "password": password})
    path.write_text(json.dumps(out, indent=1))
    path.chmod(0o600)
    return out


def _simulated(conn: psycopg.Connection) -> list[tuple[int, str, str]]:
    return conn.execute("SELECT id, key, kind FROM devices WHERE attrs->>'simulated' = 'true' ORDER BY key").fetchall()


def archive(conn: psycopg.Connection, fleet: dict[str, Any], today: datetime) -> int:
    """Brand, model, serial, firmware and installation dates for every simulated device; one device
    in four was accepted later than its contract (a replacement), so warranties end on different days."""
    n = 0
    with conn.transaction():
        for i, (device_id, key, kind) in enumerate(_simulated(conn)):
            spec = fleet["archive"].get(kind)
            if spec is None:
                continue
            serial = spec["brand"][:2].upper() + hashlib.sha1(key.encode()).hexdigest()[:10].upper()
            accepted = (today - timedelta(days=300 + 5 * i)).date() if i % 4 == 3 else None
            n += conn.execute(
                "INSERT INTO device_archive (device_id, brand, model, serial, location, firmware, installed_on, "
                "accepted_on, updated_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'demo') "
                "ON CONFLICT (device_id) DO NOTHING",
                (device_id, spec["brand"], spec["model"], serial, f"rack {chr(65 + i % 4)}{1 + i // 4}",
                 spec["firmware"][i % len(spec["firmware"])], (today - timedelta(days=420)).date(),
                 accepted)).rowcount
    return n


def past_inspections(conn: psycopg.Connection, planner: Any, today: datetime) -> int:
    """The visits of the replayed months: each covered device inspected once, 3–5 weeks ago, all
    items checked; a couple of findings and a replaced part, as engineers record them."""
    if conn.execute("SELECT count(*) FROM inspections WHERE state = 'done'").fetchone()[0]:
        return 0
    done = 0
    devices = conn.execute("SELECT id, key, kind FROM devices ORDER BY key").fetchall()  # the host's too
    with conn.transaction():
        planner.replan(conn, [d for d, _, _ in devices], today=(today - 50 * DAY).date())
    for i, (device_id, key, kind) in enumerate(devices):
        row = conn.execute("SELECT id, checklist FROM inspections WHERE device_id = %s AND state = 'planned'",
                           (device_id,)).fetchone()
        if row is None:
            continue
        iid, checklist = row
        items = planner.policy.checklists[checklist].items
        findings = [{"text": "dust build-up on the fan inlet, cleaned", "severity": "P4"}] if i % 5 == 1 else []
        parts = [{"name": "air filter", "quantity": 1}] if kind == "server" and i % 2 == 0 else []
        visit = today - timedelta(days=20 + i % 14, hours=3)
        engineer = "li.wei" if i % 2 == 0 else "zhang.wei"
        with conn.transaction():
            # booked for the day it was made (the plan counts from the devices' registration, which is
            # today in the demo), so that the record's due date is the visit's and not a later one
            planner.reschedule(conn, iid, visit.date(), engineer, "visit booked with the customer",
                               today=visit.date())
            planner.complete(conn, iid, engineer, results=[{"item": it.id, "ok": True} for it in items],
                             findings=findings, parts_replaced=parts, notes="routine visit", at=visit)
        done += 1
    return done


def callbacks(conn: psycopg.Connection, mgr: Any, today: datetime) -> int:
    """The callbacks due in the last weeks, made, with the customer's answer: the contract's schedule
    and those after each closed case (recorded on the case too)."""
    from alerting import callback_plan, case_actions
    with conn.transaction():
        callback_plan.schedule(conn, today.date())
        for n, (case_id, due) in enumerate(conn.execute(
                "SELECT case_id, due_at FROM callbacks WHERE kind = 'case' AND state = 'open' AND due_at < %s "
                "ORDER BY id", (today,)).fetchall()):
            case_actions.callback(mgr, conn, case_id, "desk", True, 5 - n % 3,
                                  "fixed before we noticed anything" if n % 2 == 0 else "", at=due)
        rows = conn.execute("SELECT id FROM callbacks WHERE kind = 'scheduled' AND state = 'open' AND due_at < %s "
                            "ORDER BY id", (today,)).fetchall()
        for n, (cid,) in enumerate(rows):
            conn.execute("UPDATE callbacks SET state = 'done', satisfaction = %s, comment = %s, "
                         "done_at = due_at + interval '2 hours', done_by = 'desk' WHERE id = %s",
                         (5 - n % 2, "no complaints; thanks for the early warning" if n % 2 == 0 else
                          "asked for the next inspection date", cid))
    return len(rows)


#: What the demo's engineer finds, by the problem a case is about (its metric), and the part used.
REPAIRS = {
    "disk_used_percent": ("log files filled the data disk", "rotated and archived the logs", None),
    "mem_used_percent": ("memory leak in the vendor agent", "patched and restarted the service", None),
    "temperature_celsius": ("air inlet blocked by cabling", "re-routed the cabling, cleaned the inlet", None),
    "fan_rpm": ("fan bearing worn", "replaced the fan module", "fan module"),
    "if_in_errors_per_s": ("dirty SFP optic", "cleaned and reseated the optic", "SFP+ transceiver"),
    "if_oper_up": ("damaged patch cable", "replaced the patch cable", "patch cable Cat6A"),
    "battery_runtime_seconds": ("battery string at end of life", "replaced the battery", "battery kit RBC55"),
    "reachability": ("management process hung", "restarted the management plane, updated firmware", None),
}


def engineer(conn: psycopg.Connection, mgr: Any) -> int:
    """The engineer on duty during the replayed months: acknowledges each new case within minutes
    and, once the monitoring sees it recovered, resolves it with the root cause and closes it (which
    creates its callback). Times are the history's own, so the SLA clocks judge them as they would."""
    from alerting import case_actions
    from alerting.case_actions import ActionRefused
    acted = 0
    for case_id, state, opened, acked, recovered, problem, who in conn.execute(
            "SELECT k.id, k.state, k.opened_at, k.acknowledged_at, k.recovered_at, k.problem, "
            "  coalesce((SELECT c->>'name' FROM jsonb_array_elements(t.contacts) c WHERE c->>'role' = 'engineer' "
            "            LIMIT 1), 'engineer') "
            "FROM cases k LEFT JOIN contracts t ON t.id = k.contract_id "
            "WHERE k.state IN ('open', 'recovered') AND k.source = 'monitoring' ORDER BY k.id").fetchall():
        try:
            with conn.transaction():
                if acked is None:
                    case_actions.acknowledge(mgr, conn, case_id, who, "seen on the console; checking remotely",
                                             at=opened + timedelta(minutes=7))
                if state == "recovered":
                    cause, fix, part = REPAIRS.get(problem.split("{")[0], ("transient fault", "verified", None))
                    done = recovered + timedelta(minutes=20)
                    case_actions.resolve(mgr, conn, case_id, who, cause, fix,
                                         [{"name": part, "quantity": 1}] if part else [], at=done)
                    case_actions.close(mgr, conn, case_id, who, "customer informed", at=done + timedelta(hours=1))
            acted += 1
        except (ActionRefused, ValueError):
            continue  # closed meanwhile by the recovery hold, or moved on: nothing to do
    return acted


def replayed(conn: psycopg.Connection, today: datetime) -> bool:
    newest = conn.execute("SELECT max(lv.time) FROM latest_values lv JOIN devices d ON d.id = lv.device_id "
                          "WHERE d.attrs->>'simulated' = 'true'").fetchone()[0]
    return newest is not None and newest >= today - timedelta(minutes=15)


def seed(database_url: str, fleet: dict[str, Any], stop: threading.Event, *, today: datetime | None = None,
         timeout: float = 900.0) -> dict[str, Any]:
    """Run after the server is up and the simulation started: archive and past inspections as soon
    as the simulated devices exist, the rest when the replay has reached today."""
    from alerting.cases import CaseManager
    from alerting.inspections import Inspections
    from alerting.notify import NotifySection
    from api.reports.store import produce_due
    today = today or datetime.now(UTC)
    planner = Inspections()
    mgr = CaseManager(channels=NotifySection())
    deadline = time.monotonic() + timeout
    out: dict[str, Any] = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        while len(_simulated(conn)) < fleet["simulate"]["devices"]:
            if stop.wait(0.5) or time.monotonic() > deadline:
                return out
        out["archived"] = archive(conn, fleet, today)
        out["inspected"] = past_inspections(conn, planner, today)
        while not replayed(conn, today):
            engineer(conn, mgr)
            if stop.wait(0.3) or time.monotonic() > deadline:
                return out
        # the detection worker finishes what the replay sent: wait until health stops moving
        last = -1
        while not stop.is_set():
            n = conn.execute("SELECT count(*) FROM health_scores").fetchone()[0]
            engineer(conn, mgr)
            if n == last:
                break
            last = n
            stop.wait(3.0)
        with conn.transaction():
            out["planned"] = planner.replan(conn)
        out["callbacks"] = callbacks(conn, mgr, today)
        out["reports"] = []
        while not stop.is_set() and time.monotonic() < deadline:  # once the rollup has caught up, too
            out["reports"] += produce_due(conn, NotifySection(), now=today, periods_back=2)
            if conn.execute("SELECT count(*) FROM reports").fetchone()[0] >= len(fleet["customers"]):
                break
            stop.wait(2.0)
        out["cases"] = conn.execute("SELECT count(*) FROM cases WHERE state <> 'suppressed'").fetchone()[0]
    return out
