"""Inspections planned from health, the device archive and timeline, scheduled callbacks, and the
scheduler's PostgreSQL job store — against the real PostgreSQL, with dates as arguments."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from tests.api_support import api_client

from agent import wire
from alerting import callback_plan
from alerting.cases import CaseManager
from alerting.inspection_policy import default_policy, load_inspection_policy
from alerting.inspections import DeviceFacts, InspectionRefused, Inspections, add_months, plan, routes
from alerting.notify import NotifySection
from alerting.policies import PolicyError
from collector.store import Batch, Store

TODAY = date(2026, 11, 2)
CONTACTS = [{"role": "engineer", "name": "Li Wei", "email": "li.wei@svc.example"},
            {"role": "manager", "name": "Mia", "email": "mia@svc.example"}]


def facts(**kw: Any) -> DeviceFacts:
    base = dict(device_id=1, customer_id=1, site_id=1, contract_id=1, covered=True, kind="ups", cadence="quarterly",
                since=date(2026, 9, 15), last_done=date(2026, 9, 15), health=95.0, breakdown=[], forecast_h=None,
                forecast_what="")
    base.update(kw)
    return DeviceFacts(**base)  # type: ignore[arg-type]


def test_plan_starts_from_the_cadence_and_health_brings_it_forward() -> None:
    p = default_policy()
    calm = plan(facts(), TODAY, p)
    assert calm.due_on == date(2026, 12, 15) == calm.latest_on
    assert calm.reason == "quarterly cadence: 3 months after the last inspection on 2026-09-15"
    sick = plan(facts(health=52.0, breakdown=[{"text": "warning alarm: fan speed dropping", "points": 15}]), TODAY, p)
    assert sick.due_on == TODAY + timedelta(days=7) and sick.latest_on == date(2026, 12, 15)
    assert sick.reason.startswith("health fell to 52: warning alarm: fan speed dropping")
    very = plan(facts(health=30.0), TODAY, p)
    assert very.due_on == TODAY + timedelta(days=2)
    # a forecast failure in 9 days: inspect 2 days before it
    fc = plan(facts(forecast_h=9 * 24.0, forecast_what="battery_runtime_seconds"), TODAY, p)
    assert fc.due_on == TODAY + timedelta(days=7) and "battery_runtime_seconds reaches its limit in about 9 d" in fc.reason
    # beyond the horizon the forecast does not move the date; the cadence caps everything
    assert plan(facts(forecast_h=30 * 24.0), TODAY, p).due_on == date(2026, 12, 15)
    soon = plan(facts(since=date(2026, 8, 5), last_done=date(2026, 8, 5), health=70.0), TODAY, p)
    assert soon.due_on == date(2026, 11, 5) and soon.reason.startswith("quarterly cadence")
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)


def test_wrong_policy_files_name_the_file_and_field(tmp_path) -> None:
    bad = tmp_path / "inspection.toml"
    bad.write_text("[cadences]\nmonthly = 0\n")
    with pytest.raises(PolicyError, match="cadences.monthly"):
        load_inspection_policy(bad)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "x.toml").write_text('name = "x"\nkinds = []\ntitle = { en = "X" }\n[[items]]\nid = "a"\n'
                                  'text = { en = "a", zh-CN = "甲" }\n')
    with pytest.raises(PolicyError, match="x.toml: title: needs a text for every language"):
        load_inspection_policy(checklist_dir=lists)


class Fleet:
    def __init__(self, store: Store, db_url: str) -> None:
        self.conn = psycopg.connect(db_url, autocommit=True)
        origin = wire.Origin("acme", "hq", "gw1")
        kinds = {"ups1": "ups", "sw1": "switch", "srv1": "server", "ac1": "hvac"}
        store.write(Batch(births=[wire.Birth(origin, 1, "test", 60.0, {}, [
            wire.DeviceInfo(d, k, d, {"firmware": "1.0"} if d == "sw1" else {}) for d, k in kinds.items()], [])]))
        self.customer = self.one("SELECT id FROM customers")
        self.dev = {k: v for k, v in self.conn.execute("SELECT key, id FROM devices")}
        self.contract = self.one(
            "INSERT INTO contracts (customer_id, key, name, contacts, accepted_on, warranty_months, inspection_cadence, "
            "devices, sites) VALUES (%s, 'acme-1', 'Acme service', %s, '2026-01-15', 12, 'quarterly', %s, '[]') "
            "RETURNING id", self.customer, json.dumps(CONTACTS), json.dumps(["hq/ups1", "hq/sw1", "hq/srv1"]))
        self.planner = Inspections()

    def one(self, sql: str, *params: Any) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def planned(self) -> dict[str, tuple]:
        return {k: (due, reason, checklist) for k, due, reason, checklist in self.conn.execute(
            "SELECT d.key, i.due_on, i.reason, i.checklist FROM inspections i JOIN devices d ON d.id = i.device_id "
            "WHERE i.state = 'planned'")}

    def replan(self, today: date = TODAY, devices: list[int] | None = None) -> int:
        with self.conn.transaction():
            return self.planner.replan(self.conn, devices, today=today)


@pytest.fixture
def fleet(store: Store, db_url: str):
    f = Fleet(store, db_url)
    yield f
    f.conn.close()


def test_planning_covers_the_contract_is_idempotent_and_records_why(fleet: Fleet) -> None:
    fleet.conn.execute("UPDATE devices SET created_at = '2026-10-01'")
    assert fleet.replan() == 3
    planned = fleet.planned()
    assert set(planned) == {"ups1", "sw1", "srv1"}  # ac1 is not covered by the contract
    assert planned["ups1"][2] == "ups" and planned["sw1"][2] == "network" and planned["srv1"][2] == "server"
    # never inspected: the cadence runs from when fleetcare first saw it (later than the acceptance on
    # 2026-01-15: a contract adopted late does not start with every device overdue)
    assert planned["ups1"][0] == date(2027, 1, 1) and "after 2026-10-01" in planned["ups1"][1]
    assert fleet.replan() == 0 and fleet.replan(TODAY + timedelta(days=1)) == 0  # no doubles, no churn
    assert fleet.one("SELECT count(*) FROM inspections") == 3
    # the service side records the UPS's last inspection; the next one moves into the future
    fleet.conn.execute("INSERT INTO inspections (customer_id, device_id, state, due_on, latest_on, reason, checklist, "
                       "done_at, done_by) VALUES (%s, %s, 'done', '2026-10-20', '2026-10-20', 'test', 'ups', "
                       "'2026-10-20T10:00Z', 'li.wei')", (fleet.customer, fleet.dev["ups1"]))
    fleet.conn.execute("DELETE FROM inspection_plan_changes")
    fleet.conn.execute("DELETE FROM inspections WHERE state = 'planned'")
    fleet.replan()
    assert fleet.planned()["ups1"][0] == date(2027, 1, 20)
    # health falls: brought forward, with the reason in words, and the change kept
    fleet.conn.execute("UPDATE devices SET health = 52, health_breakdown = %s WHERE id = %s",
                       (json.dumps([{"signal": "alarm", "points": 35,
                                     "text": "critical alarm: battery runtime 9 min"}]), fleet.dev["ups1"]))
    assert fleet.replan() == 1
    due, reason, _ = fleet.planned()["ups1"]
    assert due == TODAY + timedelta(days=7)
    assert reason == "health fell to 52: critical alarm: battery runtime 9 min (below 60: within 7 days)"
    changes = fleet.conn.execute("SELECT c.old_due_on, c.new_due_on, c.reason FROM inspection_plan_changes c "
                                 "JOIN inspections i ON i.id = c.inspection_id WHERE i.device_id = %s ORDER BY c.id",
                                 (fleet.dev["ups1"],)).fetchall()
    assert [(c[0], c[1]) for c in changes] == [(None, date(2027, 1, 20)), (date(2027, 1, 20), TODAY + timedelta(days=7))]
    # health recovers: the booked date stays (only a visit or a person moves it later)
    fleet.conn.execute("UPDATE devices SET health = 98 WHERE id = %s", (fleet.dev["ups1"],))
    assert fleet.replan() == 0 and fleet.planned()["ups1"][0] == TODAY + timedelta(days=7)


def test_completing_an_inspection_records_it_opens_cases_and_plans_the_next(fleet: Fleet) -> None:
    fleet.replan()
    iid = fleet.one("SELECT id FROM inspections WHERE device_id = %s", fleet.dev["ups1"])
    mgr = CaseManager(channels=NotifySection())
    items = [i.id for i in default_policy().checklists["ups"].items]
    with pytest.raises(InspectionRefused, match="without a result: terminals"):
        fleet.planner.complete(fleet.conn, iid, "li.wei", results=[{"item": i, "ok": True} for i in items[:-1]])
    with pytest.raises(InspectionRefused, match="not on the ups checklist: fans"):
        fleet.planner.complete(fleet.conn, iid, "li.wei", results=[{"item": "fans", "ok": True}])
    at = datetime(2026, 11, 3, 15, 0, tzinfo=UTC)
    with fleet.conn.transaction():
        done = fleet.planner.complete(
            fleet.conn, iid, "li.wei", at=at, cases=mgr,
            results=[{"item": i, "ok": i != "battery_test", "note": "runtime 7 min" if i == "battery_test" else ""}
                     for i in items],
            readings={"input_voltage_volts": 228.0},
            findings=[{"text": "battery string 2 swollen", "severity": "P2", "open_case": True}],
            parts_replaced=[{"name": "fuse 10 A", "quantity": 2}])
    assert done["state"] == "done" and done["done_by"] == "li.wei"
    case_id = done["findings"][0]["case_id"]
    case = mgr.row(fleet.conn, case_id)
    assert case["source"] == "inspection" and case["severity"] == "P2" and case["device_id"] == fleet.dev["ups1"]
    with pytest.raises(InspectionRefused, match="done already"):
        fleet.planner.complete(fleet.conn, iid, "li.wei", results=[])
    # the next one is planned from the visit: a quarter later
    assert fleet.planned()["ups1"][0] == date(2027, 2, 3)
    # and the archive's timeline has both the inspection and the case
    with api_client(fleet.conn.info.dsn, case_manager=mgr) as client:
        tl = client.get(f"/api/v1/devices/{fleet.dev['ups1']}/timeline").json()
        kinds = [e["kind"] for e in tl]
        assert "inspection" in kinds and "case_opened" in kinds
        insp = next(e for e in tl if e["kind"] == "inspection")
        assert insp["inspection_id"] == iid and insp["by"] == "li.wei" and "parts replaced: fuse 10 A" in insp["text"]
        assert client.get("/api/v1/devices/424242/timeline").status_code == 404


def test_overdue_inspections_escalate_once_per_step(fleet: Fleet) -> None:
    fleet.conn.execute("UPDATE devices SET created_at = '2026-01-20'")
    fleet.replan()
    cfg = NotifySection(smtp_host="127.0.0.1")
    with fleet.conn.transaction():  # due 2026-04-20: far overdue; both steps fire at once, once
        fired = fleet.planner.escalate_overdue(fleet.conn, cfg, today=TODAY)
    assert fired == 2 * 3
    mails = {t for (t,) in fleet.conn.execute("SELECT DISTINCT target FROM notifications WHERE event = 'inspection_overdue'")}
    assert mails == {"li.wei@svc.example", "mia@svc.example"}
    with fleet.conn.transaction():
        assert fleet.planner.escalate_overdue(fleet.conn, cfg, today=TODAY + timedelta(days=3)) == 0


def test_routes_group_due_inspections_by_site() -> None:
    rows = [{"customer": "acme", "site": "hq", "due_on": date(2026, 11, 9)},
            {"customer": "acme", "site": "plant", "due_on": date(2026, 11, 5)},
            {"customer": "acme", "site": "hq", "due_on": date(2026, 11, 4)}]
    grouped = routes(rows)
    assert [(g["site"], g["devices"], g["first_due_on"]) for g in grouped] == [
        ("hq", 2, date(2026, 11, 4)), ("plant", 1, date(2026, 11, 5))]


def test_scheduled_callbacks_follow_the_plan_once(fleet: Fleet) -> None:
    # accepted 2026-01-15, standard plan: monthly for the first 12 months, then quarterly
    dates = list(callback_plan.due_dates(date(2026, 1, 15), default_policy().callback_plans["standard"],
                                         date(2027, 8, 1)))
    assert dates[:2] == [date(2026, 2, 15), date(2026, 3, 15)] and dates[11] == date(2027, 1, 15)
    assert dates[12:] == [date(2027, 4, 15), date(2027, 7, 15)]
    with fleet.conn.transaction():
        made = callback_plan.schedule(fleet.conn, TODAY)
    assert made == 2  # 2026-10-15 and 2026-11-15 (31 days either side of today)
    with fleet.conn.transaction():
        assert callback_plan.schedule(fleet.conn, TODAY) == 0
    due = [r[0].date() for r in fleet.conn.execute("SELECT due_at FROM callbacks WHERE kind = 'scheduled' ORDER BY 1")]
    assert due == [date(2026, 10, 15), date(2026, 11, 15)]


def test_archive_falls_back_to_what_the_device_reports_and_drives_warranty(fleet: Fleet) -> None:
    sw1 = fleet.dev["sw1"]
    with api_client(fleet.conn.info.dsn) as client:
        a = client.get(f"/api/v1/devices/{sw1}/archive").json()
        assert a["firmware"] == "1.0" and a["accepted_on"] == "2026-01-15" and a["warranty_end"] == "2027-01-15"
        assert a["covered"] is True and a["recorded"] == {}
        r = client.put(f"/api/v1/devices/{sw1}/archive", json={
            "brand": "H3C", "model": "S5130", "serial": "219801A1", "location": "rack B2",
            "accepted_on": "2025-03-01", "warranty_months": 36, "by": "zhang.san"})
        assert r.status_code == 200, r.text
        a = r.json()
        assert a["serial"] == "219801A1" and a["warranty_end"] == "2028-03-01" and a["warranty"] == "in_warranty"
        assert client.put(f"/api/v1/devices/{sw1}/archive", json={"warranty_months": -1, "by": "x"}).status_code == 422
        ev = client.get(f"/api/v1/devices/{sw1}/timeline", params={"kind": "archive_changed"}).json()
        assert ev[0]["by"] == f"zhang.san via {client.username}" and "serial" in ev[0]["text"]
        # the UPS's warranty (contract: accepted 2026-01-15 + 12 months) ends within 90 days of now?
        exp = client.get("/api/v1/warranties/expiring", params={"days": 3650, "include_expired": True}).json()
        assert {e["device"] for e in exp} == {"ups1", "sw1", "srv1", "ac1"}
        assert [e["warranty_end"] for e in exp] == sorted(e["warranty_end"] for e in exp)
        assert client.get("/api/v1/warranties/expiring", params={"days": -1}).status_code == 422


def test_a_firmware_change_seen_in_a_birth_joins_the_timeline(fleet: Fleet, store: Store) -> None:
    origin = wire.Origin("acme", "hq", "gw1")
    store.write(Batch(births=[wire.Birth(origin, 2, "test", 60.0, {}, [
        wire.DeviceInfo("sw1", "switch", "sw1", {"firmware": "1.1"})], [])]))
    row = fleet.conn.execute("SELECT text, detail FROM device_events WHERE kind = 'firmware_changed'").fetchone()
    assert row[0] == "firmware changed: 1.0 → 1.1" and row[1]["new"] == "1.1"


def test_service_jobs_live_once_in_postgresql_across_restarts(db_url: str) -> None:
    from apscheduler.triggers.interval import IntervalTrigger
    from psycopg_pool import ConnectionPool

    from alerting import scheduler
    from alerting.scheduler import DurableJob
    jobs = [DurableJob("probe", "tests.test_inspections:_probe", IntervalTrigger(hours=1))]
    pool = ConnectionPool(db_url, min_size=1, max_size=2, open=True)
    try:
        for _ in range(2):  # two starts of the server: one job row, run at start each time
            _RUNS.clear()
            s = scheduler.start(pool, [], database_url=db_url, durable=jobs)
            deadline = time.monotonic() + 15
            while not _RUNS and time.monotonic() < deadline:
                time.sleep(0.1)
            s.shutdown(wait=True)
            assert _RUNS == [1]
            with psycopg.connect(db_url) as conn:
                assert conn.execute("SELECT id FROM apscheduler_jobs").fetchall() == [("probe",)]
    finally:
        pool.close()


_RUNS: list[int] = []


def _probe() -> None:
    _RUNS.append(1)


def test_a_booked_date_stays_and_an_uncovered_device_is_not_inspected(fleet: Fleet) -> None:
    fleet.replan()
    iid = fleet.one("SELECT id FROM inspections WHERE device_id = %s", fleet.dev["sw1"])
    with pytest.raises(ValueError, match="in the past"):
        fleet.planner.reschedule(fleet.conn, iid, TODAY - timedelta(days=1), "li.wei", "too late", today=TODAY)
    with fleet.conn.transaction():
        fleet.planner.reschedule(fleet.conn, iid, TODAY + timedelta(days=14), "li.wei", "customer's shutdown window",
                                 today=TODAY)
    fleet.conn.execute("UPDATE devices SET health = 50 WHERE id = %s", (fleet.dev["sw1"],))
    fleet.replan()
    due, reason, _ = fleet.planned()["sw1"]
    assert due == TODAY + timedelta(days=14) and reason == "rescheduled by li.wei: customer's shutdown window"
    # the contract stops covering the switch: its planned inspection is cancelled, not left to escalate
    fleet.conn.execute("UPDATE contracts SET devices = %s", (json.dumps(["hq/ups1", "hq/srv1"]),))
    fleet.replan()
    assert "sw1" not in fleet.planned()
    assert fleet.one("SELECT state FROM inspections WHERE id = %s", iid) == "cancelled"
    # a cadence the rules do not know: that device is skipped and logged, the others planned
    fleet.conn.execute("UPDATE contracts SET inspection_cadence = 'fortnightly'")
    fleet.conn.execute("DELETE FROM inspection_plan_changes")
    fleet.conn.execute("DELETE FROM inspections")
    assert fleet.replan() == 0


def test_timeline_filters_by_kind_before_the_limit(fleet: Fleet) -> None:
    ups = fleet.dev["ups1"]
    fleet.conn.execute("INSERT INTO device_events (time, device_id, kind, text) VALUES ('2026-01-01', %s, 'inspection', "
                       "'old visit')", (ups,))
    fleet.conn.execute("INSERT INTO device_events (time, device_id, kind, text) SELECT '2026-06-01'::timestamptz "
                       "+ g * interval '1 minute', %s, 'state', 'noise' FROM generate_series(1, 30) g", (ups,))
    with api_client(fleet.conn.info.dsn) as client:
        got = client.get(f"/api/v1/devices/{ups}/timeline", params={"kind": "inspection", "limit": 5}).json()
        assert [e["text"] for e in got] == ["old visit"]
