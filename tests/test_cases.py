"""Cases from alarms, against the real PostgreSQL: once, severity, evidence, recovery and flapping,
maintenance windows, site outages, SLA clocks and escalations, the work on a case, callbacks.

Alarms are stored exactly as the detection worker stores them (alarms.apply, then the case manager
in the same transaction); time is an argument everywhere, so clocks move without sleeping.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from agent import wire
from alerting import alarms, case_actions
from alerting.case_actions import ActionRefused
from alerting.case_policy import case_policy
from alerting.cases import CaseManager
from alerting.detectors import CLEARED, RAISED, Alarm
from alerting.engine import Finding
from alerting.notify import NotifySection
from collector.store import Batch, Store

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday
CONTACTS = [{"role": "service_desk", "name": "Desk", "email": "desk@svc.example"},
            {"role": "manager", "name": "Mia Manager", "email": "mia@svc.example"},
            {"role": "executive", "name": "Eve Exec", "email": "eve@svc.example"},
            {"role": "customer", "name": "Carl Customer", "email": "carl@acme.example"}]


class Desk:
    """A fleet of one site and a way to raise and clear alarms at chosen event times."""

    def __init__(self, store: Store, db_url: str, mgr: CaseManager) -> None:
        self.conn = psycopg.connect(db_url, autocommit=True)
        self.mgr = mgr
        origin = wire.Origin("acme", "hq", "gw1")
        kinds = {"srv1": "server", "fw1": "firewall", "sw1": "switch", "sw2": "switch", "sw3": "switch"}
        store.write(Batch(births=[wire.Birth(origin, 1, "test", 60.0, {}, [
            wire.DeviceInfo(d, k, d, {"warranty_end": "2027-06-30"} if d == "srv1" else {})
            for d, k in kinds.items()], [])]))
        self.agent = self.one("SELECT id FROM agents")
        self.customer = self.one("SELECT id FROM customers")
        self.site = self.one("SELECT id FROM sites")
        self.dev = {k: v for k, v in self.conn.execute("SELECT key, id FROM devices")}

    def one(self, sql: str, *params: Any) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def rows(self, sql: str, *params: Any) -> list[tuple]:
        return self.conn.execute(sql, params).fetchall()

    def alarm(self, device: str | None, detector: str, severity: str, at: datetime, state: str = RAISED,
              series: str = "", text: str | None = None, evidence: dict | None = None) -> None:
        text = text or f"{device} {detector} {series} {severity}"
        f = Finding(Alarm(detector, severity, state, series, at.timestamp(), text, evidence or {}), self.agent,
                    self.dev[device] if device else None)
        with self.conn.transaction():
            self.mgr.on_alarms(self.conn, alarms.apply(self.conn, [f], at.timestamp()))

    def clear(self, device: str | None, detector: str, at: datetime, series: str = "") -> None:
        self.alarm(device, detector, "info", at, CLEARED, series, text=f"{device} {detector} cleared")

    def case(self, case_id: int) -> dict[str, Any]:
        return self.mgr.row(self.conn, case_id)

    def cases(self) -> list[dict[str, Any]]:
        return [self.case(i) for (i,) in self.rows("SELECT id FROM cases ORDER BY id")]

    def events(self, case_id: int) -> list[str]:
        return [k for (k,) in self.rows("SELECT kind FROM case_events WHERE case_id = %s ORDER BY id", case_id)]

    def act(self, fn, case_id: int, *args: Any, **kw: Any) -> Any:
        with self.conn.transaction():
            return fn(self.mgr, self.conn, case_id, *args, **kw)

    def tick(self, now: datetime, event_now: datetime | None = None) -> dict[str, int]:
        with self.conn.transaction():
            return self.mgr.tick(self.conn, now, {self.agent: event_now or now})

    def contract(self, policy: str = "standard", calendar: str | None = None, overrides: dict | None = None) -> int:
        return self.one("INSERT INTO contracts (customer_id, key, name, sla_policy, calendar, sla_overrides, contacts) "
                        "VALUES (%s, 'acme-1', 'Acme service contract', %s, %s, %s, %s) RETURNING id",
                        self.customer, policy, calendar, json.dumps(overrides or {}), json.dumps(CONTACTS))


@pytest.fixture
def desk(store: Store, db_url: str):
    d = Desk(store, db_url, CaseManager(channels=NotifySection(smtp_host="127.0.0.1",
                                                               webhook_urls=["http://127.0.0.1:9/hook"])))
    yield d
    d.conn.close()


DISK = "disk_used_percent{mount=/data}"


def test_an_alarm_opens_one_case_with_severity_evidence_and_deadlines(desk: Desk) -> None:
    desk.contract()
    desk.conn.execute("INSERT INTO samples (time, device_id, series_id, value) SELECT %s, %s, "
                      "(SELECT id FROM series WHERE key = %s), 93.0",
                      (T0 - timedelta(minutes=5), desk.dev["srv1"], DISK)) if desk.one(
        "SELECT id FROM series WHERE key = %s", DISK) else None
    desk.alarm("srv1", "threshold", "warning", T0, series=DISK, text="srv1: disk /data 91 % (warning at 85 %)",
               evidence={"value": 91.0})
    (case,) = desk.cases()
    assert case["severity"] == "P3"  # warning on a normal-criticality server
    assert case["state"] == "open" and case["source"] == "monitoring" and case["problem"] == DISK
    assert case["title"] == "srv1: disk /data 91 % (warning at 85 %)"
    assert "In warranty until 2027-06-30" in case["description"]
    ev = case["evidence"]
    assert ev["alarm"]["detector"] == "threshold" and ev["warranty"]["status"] == "in_warranty"
    assert ev["history"]["previous_cases"] == [] and "snapshot" in ev
    # standard policy, P3: 2 h response, 72 h on site, 108 h resolution, 7×24
    assert case["response_due"] == T0 + timedelta(hours=2)
    assert case["onsite_due"] == T0 + timedelta(hours=72)
    assert case["resolve_due"] == T0 + timedelta(hours=108)
    # the trend on the same disk and the threshold going critical: the same case, raised to P2
    desk.alarm("srv1", "trend", "warning", T0 + timedelta(minutes=10), series=DISK, text="srv1: disk full in 20 h")
    desk.alarm("srv1", "threshold", "critical", T0 + timedelta(minutes=20), series=DISK, text="srv1: disk 96 %")
    (case,) = desk.cases()
    assert case["severity"] == "P2" and case["response_due"] == T0 + timedelta(hours=1)
    assert desk.events(case["id"]).count("alarm") == 3 and "severity_changed" in desk.events(case["id"])
    assert desk.one("SELECT count(*) FROM alarms WHERE case_id = %s", case["id"]) == 2
    # a firewall is critical to the business: its critical alarm is a P1 that reaches the executive
    desk.alarm("fw1", "threshold", "critical", T0, series="cpu_percent", text="fw1: CPU 99 %")
    p1 = desk.cases()[-1]
    assert p1["severity"] == "P1"
    mails = {t for (t,) in desk.rows("SELECT target FROM notifications WHERE case_id = %s AND channel = 'email' "
                                     "AND event = 'opened'", p1["id"])}
    assert mails == {"desk@svc.example", "mia@svc.example", "eve@svc.example"}
    hooks = desk.rows("SELECT payload FROM notifications WHERE case_id = %s AND channel = 'webhook'", p1["id"])
    assert hooks[0][0]["case"]["severity"] == "P1" and hooks[0][0]["event"] == "opened"


def test_recovered_case_closes_after_its_hold_and_a_flap_reopens_it(desk: Desk) -> None:
    desk.alarm("srv1", "threshold", "critical", T0, series=DISK)
    desk.clear("srv1", "threshold", T0 + timedelta(minutes=30), series=DISK)
    (case,) = desk.cases()
    assert case["state"] == "recovered" and case["recovered_at"] == T0 + timedelta(minutes=30)
    hold = timedelta(seconds=case_policy().recovered_hold_s)
    assert desk.tick(T0 + timedelta(minutes=31))["closed"] == 0  # not clear for long enough yet
    # back within the hold: the same case works again
    desk.alarm("srv1", "threshold", "critical", T0 + timedelta(minutes=40), series=DISK)
    assert desk.case(case["id"])["state"] == "open" and "recurred" in desk.events(case["id"])
    desk.clear("srv1", "threshold", T0 + timedelta(minutes=50), series=DISK)
    assert desk.tick(T0 + timedelta(minutes=50) + hold)["closed"] == 1
    closed = desk.case(case["id"])
    assert closed["state"] == "closed" and closed["closed_at"] == T0 + timedelta(minutes=50) + hold
    assert desk.one("SELECT count(*) FROM callbacks") == 0  # recovered by itself: no callback by default
    # flapping: the same problem two hours later reopens the case rather than opening another
    desk.alarm("srv1", "threshold", "critical", T0 + timedelta(hours=3), series=DISK)
    assert [c["id"] for c in desk.cases()] == [case["id"]]
    assert desk.case(case["id"])["state"] == "open" and "reopened" in desk.events(case["id"])
    desk.clear("srv1", "threshold", T0 + timedelta(hours=3, minutes=5), series=DISK)
    desk.tick(T0 + timedelta(hours=5))
    # after the reopen window a return is a new case, whose evidence lists the earlier one
    desk.alarm("srv1", "threshold", "critical", T0 + timedelta(days=3), series=DISK)
    first, second = desk.cases()
    assert second["state"] == "open" and second["evidence"]["history"]["previous_cases"][0]["id"] == first["id"]


def test_engineer_confirms_when_auto_close_is_off(desk: Desk) -> None:
    from dataclasses import replace
    desk.mgr.policy = replace(desk.mgr.policy, auto_close=False)
    desk.alarm("srv1", "threshold", "critical", T0, series=DISK)
    desk.clear("srv1", "threshold", T0 + timedelta(minutes=5), series=DISK)
    desk.tick(T0 + timedelta(days=2))
    (case,) = desk.cases()
    assert case["state"] == "recovered"
    desk.act(case_actions.close, case["id"], "li.wei", "confirmed with the customer", at=T0 + timedelta(days=2))
    case = desk.case(case["id"])
    assert case["state"] == "closed" and case["resolved_at"] == T0 + timedelta(minutes=5)
    assert desk.one("SELECT due_at FROM callbacks WHERE case_id = %s", case["id"]) == T0 + timedelta(days=4)


def test_maintenance_window_suppresses_and_releases_what_outlasts_it(desk: Desk) -> None:
    desk.conn.execute("INSERT INTO maintenance_windows (customer_id, site_id, starts_at, ends_at, reason, created_by) "
                      "VALUES (%s, %s, %s, %s, 'firmware update', 'li.wei')",
                      (desk.customer, desk.site, T0, T0 + timedelta(hours=2)))
    desk.alarm("sw1", "silence", "critical", T0 + timedelta(minutes=10))  # rebooting for the update
    desk.clear("sw1", "silence", T0 + timedelta(minutes=20))
    desk.alarm("srv1", "threshold", "critical", T0 + timedelta(minutes=30), series=DISK)  # still there after
    assert desk.cases() == []
    with desk.conn.transaction():
        assert desk.mgr.release(desk.conn, {desk.agent: T0 + timedelta(hours=1)}) == 0  # window still open
        assert desk.mgr.release(desk.conn, {desk.agent: T0 + timedelta(hours=2, minutes=1)}) == 1
    (case,) = desk.cases()
    assert case["device_id"] == desk.dev["srv1"] and case["opened_at"] == T0 + timedelta(hours=2, minutes=1)
    # outside any window the same kind of alarm opens a case at once
    desk.alarm("sw1", "silence", "critical", T0 + timedelta(hours=3))
    assert len(desk.cases()) == 2


def test_a_site_outage_is_one_case_and_its_device_cases_are_suppressed(desk: Desk) -> None:
    desk.contract()
    for i, d in enumerate(("sw1", "sw2")):
        desk.alarm(d, "silence", "critical", T0 + timedelta(minutes=i))
    assert [c["problem"] for c in desk.cases()] == ["reachability", "reachability"]
    desk.alarm("sw3", "snmp", "critical", T0 + timedelta(minutes=2))  # 3 of 5 devices: the site
    site = [c for c in desk.cases() if c["device_id"] is None]
    assert len(site) == 1 and site[0]["problem"] == "site_unreachable" and site[0]["severity"] == "P1"
    children = [c for c in desk.cases() if c["device_id"] is not None]
    assert {c["state"] for c in children} == {"suppressed"} and {c["parent_id"] for c in children} == {site[0]["id"]}
    # a further device going silent joins the site case at once
    desk.alarm("srv1", "silence", "critical", T0 + timedelta(minutes=3))
    assert desk.cases()[-1]["state"] == "suppressed"
    notified = desk.one("SELECT count(DISTINCT case_id) FROM notifications WHERE event = 'opened'")
    assert notified == 3  # the two device cases before the site was seen, and the site case
    with pytest.raises(ActionRefused, match="site case"):
        desk.act(case_actions.acknowledge, children[0]["id"], "li.wei")
    # everything back: the children close with the site case's recovery
    for d in ("sw1", "sw2", "srv1"):
        desk.clear(d, "silence", T0 + timedelta(minutes=20))
    desk.clear("sw3", "snmp", T0 + timedelta(minutes=20))
    states = {c["id"]: c["state"] for c in desk.cases()}
    assert all(states[c["id"]] == "closed" for c in children)
    assert states[site[0]["id"]] == "recovered"  # and the site case with the last of them
    desk.tick(T0 + timedelta(hours=2))
    assert desk.case(site[0]["id"])["state"] == "closed"


def test_agent_offline_opens_a_site_case(desk: Desk) -> None:
    desk.alarm(None, "agent_offline", "critical", T0, text="site agent gw1 offline since 09:00")
    (case,) = desk.cases()
    assert case["device_id"] is None and case["problem"] == "site_offline" and case["severity"] == "P1"
    assert case["title"].startswith("Site hq")
    desk.alarm("sw1", "silence", "critical", T0 + timedelta(minutes=1))
    assert desk.cases()[-1]["state"] == "suppressed" and desk.cases()[-1]["parent_id"] == case["id"]
    desk.clear(None, "agent_offline", T0 + timedelta(minutes=30))
    assert desk.case(case["id"])["state"] == "recovered"
    # the switch is still silent once the agent is back: its case opens on its own, clocks from now
    child = desk.cases()[-1]
    assert child["state"] == "open" and child["opened_at"] == T0 + timedelta(minutes=30)


def test_escalations_fire_once_at_75_and_100_percent(desk: Desk) -> None:
    desk.contract()
    desk.alarm("srv1", "threshold", "critical", T0, series=DISK)  # P2: response 1 h
    (case,) = desk.cases()
    assert desk.tick(T0 + timedelta(minutes=44))["escalated"] == 0
    assert desk.tick(T0 + timedelta(minutes=45))["escalated"] == 1
    assert desk.tick(T0 + timedelta(minutes=50))["escalated"] == 0  # once
    assert desk.tick(T0 + timedelta(minutes=61))["escalated"] == 1
    rows = desk.rows("SELECT text, data FROM case_events WHERE case_id = %s AND kind = 'escalated' ORDER BY id",
                     case["id"])
    assert "Response clock at 75% of P2 1 h: 15 min left" in rows[0][0]
    assert rows[1][1]["roles"] == ["assignee", "manager"] and "overdue" in rows[1][0]
    mails = desk.rows("SELECT target FROM notifications WHERE event = 'escalated' AND channel = 'email' ORDER BY id")
    # nobody assigned: the service desk stands in for the assignee; at 100 % the manager too
    assert [m for (m,) in mails] == ["desk@svc.example", "desk@svc.example", "mia@svc.example"]
    # acknowledged: the response clock stops; the on-site clock (24 h) escalates on its own
    desk.act(case_actions.assign, case["id"], "lead", "li.wei", "li.wei@svc.example", at=T0 + timedelta(minutes=62))
    desk.act(case_actions.acknowledge, case["id"], "li.wei", at=T0 + timedelta(minutes=63))
    assert desk.tick(T0 + timedelta(hours=18))["escalated"] == 1
    last = desk.rows("SELECT target FROM notifications WHERE event = 'escalated' AND channel = 'email' "
                     "ORDER BY id DESC LIMIT 1")
    assert last == [("li.wei@svc.example",)]
    # raising the severity re-runs the clocks: P1 on site in 4 h is overdue at once
    desk.act(case_actions.severity, case["id"], "lead", "P1", "customer's production line stopped",
             at=T0 + timedelta(hours=18))
    assert desk.case(case["id"])["onsite_due"] == T0 + timedelta(hours=4)
    assert desk.tick(T0 + timedelta(hours=18, minutes=1))["escalated"] == 3  # on site 75 + 100 %, resolve 75 %


def test_the_work_on_a_case_and_its_callback(desk: Desk) -> None:
    desk.contract()
    desk.alarm("srv1", "threshold", "critical", T0, series=DISK)
    (case,) = desk.cases()
    cid = case["id"]
    desk.act(case_actions.assign, cid, "lead", "li.wei", "li.wei@svc.example", at=T0 + timedelta(minutes=5))
    desk.act(case_actions.acknowledge, cid, "li.wei", at=T0 + timedelta(minutes=10))
    desk.act(case_actions.acknowledge, cid, "li.wei", at=T0 + timedelta(minutes=11))  # a double click: no-op
    desk.act(case_actions.comment, cid, "li.wei", "log rotation broken since the update", at=T0 + timedelta(minutes=12))
    desk.act(case_actions.wait, cid, "li.wei", "customer to open the server room", at=T0 + timedelta(hours=1))
    with pytest.raises(ActionRefused, match="waiting_customer: cannot arrive"):
        desk.act(case_actions.arrive, cid, "li.wei")
    desk.act(case_actions.resume, cid, "li.wei", at=T0 + timedelta(hours=4))
    c = desk.case(cid)
    assert c["state"] == "acknowledged" and c["paused_s"] == 3 * 3600
    assert c["onsite_due"] == T0 + timedelta(hours=27) and c["resolve_due"] == T0 + timedelta(hours=75)
    desk.act(case_actions.arrive, cid, "li.wei", at=T0 + timedelta(hours=5))
    desk.act(case_actions.resolve, cid, "li.wei", "log rotation disabled by the firmware update",
             "rotated logs, re-enabled logrotate", [{"name": "SSD 960 GB", "quantity": 1}], at=T0 + timedelta(hours=6))
    c = desk.case(cid)
    assert c["state"] == "resolved" and c["parts_used"] == [{"name": "SSD 960 GB", "quantity": 1}]
    assert ("carl@acme.example",) in desk.rows("SELECT target FROM notifications WHERE event = 'resolved'")
    with pytest.raises(ActionRefused, match="resolved: cannot resolve"):
        desk.act(case_actions.resolve, cid, "li.wei", "x", "y")
    desk.act(case_actions.close, cid, "li.wei", at=T0 + timedelta(hours=7))
    assert desk.case(cid)["state"] == "closed"
    due = desk.one("SELECT due_at FROM callbacks WHERE case_id = %s AND state = 'open'", cid)
    assert due == T0 + timedelta(hours=7, days=2)
    desk.act(case_actions.callback, cid, "desk", True, 5, "all good", at=T0 + timedelta(days=2, hours=7))
    assert desk.rows("SELECT state, resolved, satisfaction, comment, done_by FROM callbacks WHERE case_id = %s",
                     cid) == [("done", True, 5, "all good", "desk")]
    kinds = desk.events(cid)
    for kind in ("opened", "assigned", "acknowledged", "comment", "waiting_customer", "resumed", "arrived",
                 "resolved", "closed", "callback_created", "callback"):
        assert kind in kinds, kind
    actors = {a for (a,) in desk.rows("SELECT actor FROM case_events WHERE case_id = %s", cid)}
    assert {"fleetcare", "lead", "li.wei", "desk"} <= actors
    with pytest.raises(ValueError, match="satisfaction"):
        desk.act(case_actions.callback, cid, "desk", True, 9)


def test_business_hours_contract_and_manual_case(desk: Desk) -> None:
    desk.contract("business", overrides={"P2": {"response_h": 1}})
    friday = datetime(2026, 11, 6, 16, 30, tzinfo=UTC).replace(tzinfo=None)
    from zoneinfo import ZoneInfo
    at = friday.replace(tzinfo=ZoneInfo("Asia/Shanghai"))  # Friday 16:30 in Shanghai
    cid = desk.act(lambda m, c, _id, **kw: case_actions.open_case(m, c, "desk", "P2", "Customer reports noisy fan",
                                                                   device_id=desk.dev["srv1"], at=at), 0)
    c = desk.case(cid)
    assert c["source"] == "manual" and c["calendar"] == "business-cn" and c["sla_policy"] == "business"
    # 30 minutes on Friday, 30 on Monday morning (the contract's override: 1 h instead of 2 h)
    assert c["response_due"] == datetime(2026, 11, 9, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    with pytest.raises(ActionRefused, match="already open"):
        desk.act(lambda m, conn, _id: case_actions.open_case(m, conn, "desk", "P3", "again",
                                                              device_id=desk.dev["srv1"]), 0)
    with pytest.raises(ValueError, match="P1"):
        desk.act(lambda m, conn, _id: case_actions.open_case(m, conn, "desk", "P9", "x", device_id=desk.dev["srv1"]), 0)


def test_another_problem_of_the_same_device_joins_its_case(desk: Desk) -> None:
    desk.alarm("sw1", "threshold", "warning", T0, series="fan_rpm", text="sw1: fan 0 rpm")
    desk.alarm("sw1", "trend", "warning", T0 + timedelta(hours=1), series="temperature_celsius",
               text="sw1: temperature 80 °C in 6 h")
    (case,) = desk.cases()
    assert case["problem"] == "fan_rpm" and "related" in desk.events(case["id"])
    assert desk.one("SELECT count(*) FROM alarms WHERE case_id = %s", case["id"]) == 2
    desk.clear("sw1", "threshold", T0 + timedelta(hours=2), series="fan_rpm")
    assert desk.case(case["id"])["state"] == "open"  # the temperature still stands
    desk.clear("sw1", "trend", T0 + timedelta(hours=3), series="temperature_celsius")
    assert desk.case(case["id"])["state"] == "recovered"
    # grouping off: one case per device and problem
    from dataclasses import replace
    desk.mgr.policy = replace(desk.mgr.policy, group_by_device=False)
    desk.alarm("sw2", "threshold", "warning", T0, series="fan_rpm")
    desk.alarm("sw2", "trend", "warning", T0 + timedelta(hours=1), series="temperature_celsius")
    assert len([c for c in desk.cases() if c["device_id"] == desk.dev["sw2"]]) == 2
