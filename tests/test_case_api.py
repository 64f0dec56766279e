"""The case routes over HTTP, against the real PostgreSQL: the queue and its filters, one case with
events and evidence, actions and their refusals, contracts, maintenance windows, notifications,
callbacks; bad input gets a clear 4xx, a database outage a 503."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from tests.api_support import api_client
from fastapi.testclient import TestClient

from agent import wire
from alerting import alarms
from alerting.cases import CaseManager
from alerting.detectors import RAISED, Alarm
from alerting.engine import Finding
from api.app import create_app
from collector.migrate import backend_of
from collector.store import Batch, Store

DISK = "disk_used_percent{mount=/data}"


@pytest.fixture
def fleet(db_url: str) -> dict[str, int]:
    """Two customers; a disk alarm on acme's server an hour ago opened a P2 case (nobody acknowledged)."""
    conn = psycopg.connect(db_url)
    store = Store(conn, backend_of(conn))
    conn.commit()
    for customer, devs in (("acme", {"srv1": "server", "fw1": "firewall"}), ("globex", {"ups2": "ups"})):
        store.write(Batch(births=[wire.Birth(wire.Origin(customer, "hq", f"gw-{customer}"), 1, "t", 60.0, {},
                                             [wire.DeviceInfo(d, k, d, {"warranty_end": "2020-01-01"})
                                              for d, k in devs.items()], [])]))
    ids = {k: v for k, v in conn.execute("SELECT key, id FROM devices")}
    ids |= {f"agent:{k}": v for k, v in conn.execute("SELECT key, id FROM agents")}
    ids |= {f"customer:{k}": v for k, v in conn.execute("SELECT key, id FROM customers")}
    ids |= {f"site:{c}": v for c, v in conn.execute("SELECT c.key, s.id FROM sites s JOIN customers c "
                                                    "ON c.id = s.customer_id")}
    conn.commit()
    at = datetime.now(UTC) - timedelta(hours=1, minutes=30)
    f = Finding(Alarm("threshold", "critical", RAISED, DISK, at.timestamp(), "srv1: disk /data 97 %", {}),
                ids["agent:gw-acme"], ids["srv1"])
    with conn.transaction():
        CaseManager().on_alarms(conn, alarms.apply(conn, [f], at.timestamp()))
    ids["case"] = conn.execute("SELECT id FROM cases").fetchone()[0]
    conn.close()
    return ids


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with api_client(db_url) as c:
        yield c


def test_case_queue_filters_and_clocks(client: TestClient, fleet: dict[str, int]) -> None:
    body = client.get("/api/v1/cases").json()
    assert body["total"] == 1
    (case,) = body["items"]
    assert (case["customer"], case["site"], case["device"], case["severity"], case["state"]) == \
        ("acme", "hq", "srv1", "P2", "open")
    assert case["warranty"] == "out_of_warranty"
    resp = case["clocks"]["response"]
    assert resp["breached"] and resp["left_s"] < -1700 and case["breached"]  # 1 h response, opened 90 min ago
    assert case["clocks"]["onsite"]["left_s"] > 22 * 3600
    for params, n in (({"customer": "globex"}, 0), ({"customer": "acme"}, 1), ({"severity": "P1"}, 0),
                      ({"device_id": fleet["srv1"]}, 1), ({"breached": "true"}, 1), ({"breached": "false"}, 0),
                      ({"state": "open"}, 1), ({"state": "closed"}, 0), ({"active": "true"}, 1),
                      ({"site": "hq", "sort": "urgency"}, 1)):
        assert client.get("/api/v1/cases", params=params).json()["total"] == n, params
    for bad in ({"severity": "P9"}, {"state": "done"}, {"sort": "random"}, {"limit": 0}, {"breached": "maybe"}):
        r = client.get("/api/v1/cases", params=bad)
        assert r.status_code == 422, bad


def test_case_detail_actions_and_refusals(client: TestClient, fleet: dict[str, int]) -> None:
    cid = fleet["case"]
    detail = client.get(f"/api/v1/cases/{cid}").json()
    assert detail["evidence"]["alarm"]["detector"] == "threshold" and detail["alarms"][0]["series"] == DISK
    assert [e["kind"] for e in detail["events"]][:2] == ["opened", "alarm"]
    assert "Out of warranty since 2020-01-01" in detail["description"]
    assert client.get("/api/v1/cases/999999").status_code == 404

    def act(action: str, **body):
        return client.post(f"/api/v1/cases/{cid}/{action}", json={"by": "li.wei", **body})

    r = act("assign", assignee="li.wei", email="li.wei@svc.example")
    assert r.status_code == 200 and r.json()["assignee"] == "li.wei"
    assert act("acknowledge").json()["state"] == "acknowledged"
    assert act("comment", text="checking logrotate").status_code == 200
    r = act("close")
    assert r.status_code == 409 and "cannot close" in r.json()["detail"] and "allowed now" in r.json()["detail"]
    assert act("assign").status_code == 422 and "assignee" in act("assign").json()["detail"]
    assert act("severity", severity="P1").status_code == 422  # a reason is needed
    assert act("fly").status_code == 422
    r = client.post(f"/api/v1/cases/{cid}/comment", json={"text": "who am I?"})  # the logged-in user
    assert r.status_code == 200 and r.json()["events"][-1]["actor"] == client.username
    assert client.post("/api/v1/cases/999999/comment", json={"by": "x", "text": "y"}).status_code == 404
    r = act("severity", severity="P1", text="production line stopped")
    assert r.json()["severity"] == "P1"
    assert act("wait", text="customer to open the room").json()["clocks"]["resolve"]["paused"] is True
    assert act("resume").json()["state"] == "acknowledged"
    assert act("arrive").json()["state"] == "on_site"
    r = act("resolve", root_cause="logrotate disabled", resolution="re-enabled",
            parts_used=[{"name": "SSD 960 GB", "part_number": "MZ-7L3960", "quantity": 1}])
    assert r.json()["state"] == "resolved" and r.json()["parts_used"][0]["part_number"] == "MZ-7L3960"
    assert act("resolve", root_cause="x", resolution="y").status_code == 409
    r = act("close", text="customer confirmed")
    assert r.json()["state"] == "closed" and r.json()["callback"]["state"] == "open"
    assert client.get("/api/v1/callbacks").json()[0]["case_id"] == cid
    assert act("callback", resolved=True, satisfaction=6).status_code == 422
    r = act("callback", resolved=True, satisfaction=4, text="fine since")
    assert r.json()["callback"]["satisfaction"] == 4 and r.json()["callback"]["state"] == "done"
    assert client.get("/api/v1/callbacks").json() == []
    assert client.get("/api/v1/callbacks", params={"state": "done"}).json()[0]["satisfaction"] == 4


def test_open_a_case_by_hand(client: TestClient, fleet: dict[str, int]) -> None:
    body = {"by": "desk", "severity": "P3", "title": "Customer reports a beeping UPS", "device_id": fleet["ups2"]}
    r = client.post("/api/v1/cases", json=body)
    assert r.status_code == 201, r.text
    case = r.json()
    assert (case["source"], case["customer"], case["severity"], case["problem"]) == ("manual", "globex", "P3", "manual")
    assert case["events"][0]["actor"] == f"desk via {client.username}"  # for whom, and who
    assert client.post("/api/v1/cases", json=body).status_code == 409  # the same device and problem is open
    r = client.post("/api/v1/cases", json={**body, "device_id": 424242})
    assert r.status_code == 422 and "does not exist" in r.json()["detail"]
    r = client.post("/api/v1/cases", json={**body, "customer_id": fleet["customer:acme"], "problem": "other"})
    assert r.status_code == 422 and "does not own" in r.json()["detail"]
    r = client.post("/api/v1/cases", json={"by": "desk", "severity": "P3", "title": "x"})
    assert r.status_code == 422 and "device_id or the site_id" in r.text
    site_case = client.post("/api/v1/cases", json={"by": "desk", "severity": "P2", "title": "Power cut at hq",
                                                   "site_id": fleet["site:globex"]}).json()
    assert site_case["device_id"] is None and site_case["site"] == "hq"


def test_contracts_set_the_clocks_of_new_cases(client: TestClient, fleet: dict[str, int]) -> None:
    contract = {"customer_id": fleet["customer:globex"], "key": "globex-2026", "name": "Globex premium",
                "sla_policy": "premium", "sla_overrides": {"P3": {"response_h": 0.5}},
                "contacts": [{"role": "manager", "name": "Mia", "email": "mia@svc.example"}]}
    r = client.post("/api/v1/contracts", json=contract)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert client.post("/api/v1/contracts", json=contract).status_code == 409
    for bad, word in (({"sla_policy": "gold"}, "gold"), ({"calendar": "lunar"}, "lunar"),
                      ({"sla_overrides": {"P3": {"response_h": -2}}}, "response_h"),
                      ({"sla_overrides": {"P3": {"respond_h": 2}}}, "respond_h")):
        r = client.put(f"/api/v1/contracts/{cid}", json={**contract, **bad})
        assert r.status_code == 422 and word in r.text, bad
    assert client.post("/api/v1/contracts", json={**contract, "contacts": [{"role": "boss", "name": "x"}]}
                       ).status_code == 422
    assert client.post("/api/v1/contracts", json={**contract, "key": "k2", "customer_id": 99999}).status_code == 422
    r = client.put(f"/api/v1/contracts/{cid}", json={**contract, "calendar": "business-cn"})
    assert r.json()["calendar"] == "business-cn"
    assert [c["key"] for c in client.get("/api/v1/contracts", params={"customer": "globex"}).json()] == ["globex-2026"]
    case = client.post("/api/v1/cases", json={"by": "desk", "severity": "P3", "title": "UPS self-test failed",
                                              "device_id": fleet["ups2"]}).json()
    assert case["sla_policy"] == "premium" and case["calendar"] == "business-cn"
    assert client.get("/api/v1/contracts/424242").status_code == 404


def test_maintenance_windows_and_notifications(client: TestClient, fleet: dict[str, int], db_url: str) -> None:
    now = datetime.now(UTC)
    w = {"customer_id": fleet["customer:acme"], "site_id": fleet["site:acme"], "starts_at": now.isoformat(),
         "ends_at": (now + timedelta(hours=2)).isoformat(), "reason": "firmware update", "by": "li.wei"}
    r = client.post("/api/v1/maintenance-windows", json=w)
    assert r.status_code == 201 and r.json()["customer"] == "acme"
    assert [x["reason"] for x in client.get("/api/v1/maintenance-windows").json()] == ["firmware update"]
    assert client.post("/api/v1/maintenance-windows", json={**w, "ends_at": w["starts_at"]}).status_code == 422
    assert client.post("/api/v1/maintenance-windows", json={**w, "starts_at": "2026-11-02T10:00:00"}).status_code == 422
    r = client.post("/api/v1/maintenance-windows", json={**w, "device_id": fleet["ups2"]})
    assert r.status_code == 422 and "no such device of customer" in r.json()["detail"]
    wid = client.get("/api/v1/maintenance-windows").json()[0]["id"]
    assert client.delete(f"/api/v1/maintenance-windows/{wid}").status_code == 204
    assert client.delete(f"/api/v1/maintenance-windows/{wid}").status_code == 404
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO notifications (case_id, event, channel, target, subject, payload, state, attempts, "
                     "last_error) VALUES (%s, 'opened', 'webhook', 'http://127.0.0.1:9/', 's', '{}', 'failed', 10, "
                     "'URLError: Connection refused')", (fleet["case"],))
    failed = client.get("/api/v1/notifications", params={"state": "failed"}).json()
    assert failed["total"] == 1 and failed["items"][0]["last_error"].startswith("URLError")
    r = client.post(f"/api/v1/notifications/{failed['items'][0]['id']}/retry")
    assert r.json()["state"] == "pending" and r.json()["attempts"] == 0
    assert client.post("/api/v1/notifications/999999/retry").status_code == 404


def test_database_outage_is_a_503_not_a_500(fleet: dict[str, int]) -> None:
    with TestClient(create_app("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"),
                    headers={"Authorization": "Bearer any"}) as c:
        for method, path, body in (("get", "/api/v1/cases", None),
                                   ("post", "/api/v1/cases/1/comment", {"by": "x", "text": "y"})):
            r = getattr(c, method)(path, json=body) if body else getattr(c, method)(path)
            assert r.status_code == 503 and "database unavailable" in r.json()["detail"], path
