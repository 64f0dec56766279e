"""Customer isolation, proved route by route: every route of the app (the OpenAPI document's and the
pages') is called with a customer's token and with an engineer's limited to that customer, aimed at
the other customer's things. Things in the path must answer 403 or 404; lists and pages must hold
nothing of the other customer. A new route that forgets the scope fails here (and one whose path
parameter has no owner rule already fails in create_app, api/access.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from alerting.cases import CaseManager
from alerting import case_actions
from alerting.inspections import Inspections
from api.access import PUBLIC, all_routes
from api.app import create_app
from tests.api_support import bearer, make_user
from tests.test_api import fleet  # noqa: F401  (the fixture)

#: What only the other customer's data carries (customer, agent, device keys, a case title).
OTHER = ("globex", "gw3", "ups2", "sw3", "globex-only")


@pytest.fixture
def world(db_url: str, fleet: dict[str, int]) -> dict[str, Any]:  # noqa: F811
    """acme (ours) and globex (the other): contracts, inspections, a case each, an alarm, a callback,
    a maintenance window, a notification and a diagnostic of globex's."""
    mgr = CaseManager()
    with psycopg.connect(db_url, autocommit=True) as conn:
        cust = dict(conn.execute("SELECT key, id FROM customers").fetchall())
        agents = dict(conn.execute("SELECT key, id FROM agents").fetchall())
        contracts = {}
        for key in ("acme", "globex"):
            contracts[key] = conn.execute(
                "INSERT INTO contracts (customer_id, key, name, accepted_on) VALUES (%s, %s, %s, '2026-01-01') "
                "RETURNING id", (cust[key], f"{key}-k", f"{key} contract")).fetchone()[0]
        with conn.transaction():
            Inspections().replan(conn)
        cases = {}
        for key, device in (("acme", "ups1"), ("globex", "ups2")):
            with conn.transaction():
                cases[key] = case_actions.open_case(mgr, conn, "desk", "P3", f"{key}-only problem",
                                                    device_id=fleet[device])
        now = datetime.now(UTC)
        alarm = conn.execute(
            "INSERT INTO alarms (device_id, agent_id, detector, severity, opened_at, updated_at, text) "
            "VALUES (%s, %s, 'threshold', 'warning', %s, %s, 'globex-only alarm') RETURNING id",
            (fleet["ups2"], agents["gw3"], now, now)).fetchone()[0]
        callback = conn.execute(
            "INSERT INTO callbacks (customer_id, case_id, due_at) VALUES (%s, %s, %s) RETURNING id",
            (cust["globex"], cases["globex"], now + timedelta(days=1))).fetchone()[0]
        window = conn.execute(
            "INSERT INTO maintenance_windows (customer_id, starts_at, ends_at, reason, created_by) "
            "VALUES (%s, %s, %s, 'globex-only work', 'desk') RETURNING id",
            (cust["globex"], now, now + timedelta(hours=2))).fetchone()[0]
        notification = conn.execute(
            "INSERT INTO notifications (case_id, event, channel, target, subject, payload, state) "
            "VALUES (%s, 'opened', 'email', 'ops@globex.example', 'globex-only', '{}', 'failed') RETURNING id",
            (cases["globex"],)).fetchone()[0]
        conn.execute("INSERT INTO diagnostics (request_id, agent_id, action, args, requested_by, expires_at) "
                     "VALUES ('00000000-0000-4000-8000-000000000001', %s, 'status', '{}', 'desk', %s)",
                     (agents["gw3"], now + timedelta(minutes=2)))
        inspection = {k: conn.execute("SELECT min(id) FROM inspections WHERE customer_id = %s",
                                      (cust[k],)).fetchone()[0] for k in ("acme", "globex")}
        assert inspection["globex"] is not None, "the fixture needs an inspection of globex's"
    _, _, admin_token = make_user(db_url, "admin", username="root-admin")
    with psycopg.connect(db_url) as conn:
        admin_token_id = conn.execute("SELECT t.id FROM api_tokens t JOIN users u ON u.id = t.user_id "
                                      "WHERE u.username = 'root-admin'").fetchone()[0]
    last_month = (date.today().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    # the other customer's thing for each path parameter
    other = {"device_id": fleet["ups2"], "agent_id": agents["gw3"], "alarm_id": alarm, "case_id": cases["globex"],
             "inspection_id": inspection["globex"], "customer_id": cust["globex"],
             "contract_id": contracts["globex"], "callback_id": callback, "window_id": window,
             "notification_id": notification, "request_id": "00000000-0000-4000-8000-000000000001",
             "token_id": admin_token_id, "action": "comment", "period": last_month}
    return {"db_url": db_url, "fleet": fleet, "cust": cust, "cases": cases, "inspection": inspection,
            "other": other, "admin_token": admin_token, "agents": agents}


@pytest.fixture
def app_client(world: dict[str, Any]) -> Iterator[TestClient]:
    with TestClient(create_app(world["db_url"])) as client:
        yield client


def _routes(client: TestClient) -> list[tuple[str, str]]:
    """Every (method, path) the app answers: the OpenAPI document's operations and the pages."""
    app = client.app
    found = {(m, r.path) for r in all_routes(app) if isinstance(r, APIRoute) for m in r.methods if m != "HEAD"}
    documented = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}  # type: ignore[attr-defined]
    assert documented <= found | {("GET", "/healthz")}, documented - found
    return sorted(found, key=lambda mp: (mp[0] != "GET", mp))  # reads first: the admin's probe changes things


def _leaks(text: str) -> list[str]:
    low = text.lower()
    return [m for m in OTHER if m in low]


def _call(client: TestClient, method: str, template: str, path: str, token: str) -> Any:
    params: dict[str, Any] = {}
    route = next(r for r in all_routes(client.app) if isinstance(r, APIRoute) and r.path == template)
    for p in route.dependant.query_params:
        if p.name == "max_seconds":  # a stream: let it end
            params[p.name] = 1
    return client.request(method, path, headers=bearer(token), params=params, json={} if method != "GET" else None)


def _probe(client: TestClient, world: dict[str, Any], token: str, who: str) -> list[str]:
    problems = []
    for method, template in _routes(client):
        if f"{method} {template}" in PUBLIC:
            continue
        names = re.findall(r"{(\w+)(?::\w+)?}", template)
        unknown = [n for n in names if n not in world["other"]]
        assert not unknown, f"{method} {template}: the test has no thing of the other customer for {unknown}; add it"
        owned = [n for n in names if n not in ("action", "period")]
        # each id as written plainly and as the route's parser also reads it ("4.0" is 4)
        for spelling in ("{}", "{}.0") if owned else ("{}",):
            path = template
            for n in names:
                value = world["other"][n]
                path = path.replace("{" + n + "}", spelling.format(value) if isinstance(value, int) else str(value))
            r = _call(client, method, template, path, token)
            if owned and r.status_code not in (403, 404):
                problems.append(f"{who}: {method} {path} answered {r.status_code}, not 403/404: {r.text[:200]}")
            elif not owned and r.status_code < 400 and (leak := _leaks(r.text)):
                problems.append(f"{who}: {method} {path} shows the other customer's {leak}: {r.text[:300]}")
            elif r.status_code >= 500:
                problems.append(f"{who}: {method} {path} failed with {r.status_code}: {r.text[:200]}")
    return problems


def test_a_customer_reaches_nothing_of_another_customer(app_client: TestClient, world: dict[str, Any]) -> None:
    _, _, token = make_user(world["db_url"], "customer", customer="acme")
    assert _probe(app_client, world, token, "customer of acme") == []


def test_an_engineer_of_one_customer_reaches_nothing_of_another(app_client: TestClient, world: dict[str, Any]) -> None:
    _, _, token = make_user(world["db_url"], "engineer", customers=["acme"])
    assert _probe(app_client, world, token, "engineer for acme") == []


def test_the_probe_sees_what_an_admin_sees(app_client: TestClient, world: dict[str, Any]) -> None:
    """The control: the same probe with an admin's token finds the other customer everywhere, so the
    two tests above pass because of the scope, not because the probe cannot see."""
    problems = _probe(app_client, world, world["admin_token"], "admin")
    shown = {p.split(" ")[1] + " " + p.split(" ")[2] for p in problems if "shows the other" in p}
    for listing in ("GET /api/v1/devices", "GET /api/v1/cases", "GET /api/v1/alarms", "GET /api/v1/inspections",
                    "GET /api/v1/customers", "GET /api/v1/agents", "GET /api/v1/sites", "GET /api/v1/callbacks",
                    "GET /api/v1/contracts", "GET /api/v1/maintenance-windows", "GET /api/v1/notifications"):
        assert listing in shown, f"{listing} shows an admin nothing of globex: the probe would miss a leak there"
    reached = [p for p in problems if "not 403/404" in p]
    assert any("/api/v1/devices/" in p for p in reached) and any("/api/v1/cases/" in p for p in reached)


def test_a_customer_reads_its_own_and_may_only_comment(app_client: TestClient, world: dict[str, Any]) -> None:
    _, _, token = make_user(world["db_url"], "customer", customer="acme")
    h = bearer(token)
    fleet, own_case = world["fleet"], world["cases"]["acme"]
    devices = app_client.get("/api/v1/devices", headers=h).json()
    assert {d["name"] for d in devices["items"]} == {"SW1", "UPS1", "SW2"} and devices["total"] == 3
    assert app_client.get(f"/api/v1/devices/{fleet['ups1']}", headers=h).status_code == 200
    assert app_client.get(f"/api/v1/devices/{fleet['sw1']}/metrics", params={"metric": "cpu_percent"},
                          headers=h).status_code == 200
    assert app_client.get(f"/api/v1/cases/{own_case}", headers=h).json()["customer"] == "acme"
    assert app_client.get(f"/api/v1/inspections/{world['inspection']['acme']}", headers=h).status_code == 200
    r = app_client.post(f"/api/v1/cases/{own_case}/comment", json={"text": "still beeping"}, headers=h)
    assert r.status_code == 200 and r.json()["events"][-1]["text"] == "still beeping"
    r = app_client.post(f"/api/v1/cases/{own_case}/acknowledge", json={}, headers=h)
    assert r.status_code == 403 and "comment" in r.json()["detail"]
    assert app_client.put(f"/api/v1/devices/{fleet['ups1']}/archive", json={}, headers=h).status_code == 403
    assert app_client.post(f"/api/v1/agents/{world['agents']['gw1']}/diagnostics", json={"action": "status"},
                           headers=h).status_code == 403
    assert app_client.get(f"/api/v1/agents/{world['agents']['gw1']}/diagnostics", headers=h).status_code == 403
    # another customer's thing answers exactly as a thing that does not exist
    missing = app_client.get("/api/v1/devices/999999", headers=h)
    theirs = app_client.get(f"/api/v1/devices/{fleet['ups2']}", headers=h)
    assert missing.status_code == theirs.status_code == 404
    # a filter naming the other customer finds nothing rather than their things
    assert app_client.get("/api/v1/devices", params={"customer": "globex"}, headers=h).json()["total"] == 0


def test_every_route_needs_a_login(app_client: TestClient) -> None:
    for method, template in _routes(app_client):
        if f"{method} {template}" in PUBLIC or not template.startswith("/api/"):
            continue
        path = re.sub(r"{\w+}", "1", template)
        r = app_client.request(method, path, json={} if method != "GET" else None)
        assert r.status_code == 401, f"{method} {path} answered {r.status_code} without a token"
        assert r.headers.get("www-authenticate") == "Bearer"


def test_what_people_do_is_in_the_audit_log(app_client: TestClient, world: dict[str, Any]) -> None:
    username, _, token = make_user(world["db_url"], "engineer")
    h = bearer(token)
    case = world["cases"]["acme"]
    assert app_client.post(f"/api/v1/cases/{case}/acknowledge", json={}, headers=h).status_code == 200
    r = app_client.post(f"/api/v1/cases/{case}/comment", json={"text": "on it", "by": "li.wei"}, headers=h)
    assert r.json()["events"][-1]["actor"] == f"li.wei via {username}"
    with psycopg.connect(world["db_url"]) as conn:
        rows = conn.execute("SELECT actor, action, target, detail FROM audit_log WHERE actor = %s ORDER BY id",
                            (username,)).fetchall()
    assert [(r[1], r[2]) for r in rows] == [("case.acknowledge", f"case {case}"), ("case.comment", f"case {case}")]
    assert json.loads(json.dumps(rows[1][3]))["text"] == "on it"


def test_admins_read_the_audit_log_and_nobody_else(app_client: TestClient, world: dict[str, Any]) -> None:
    username, _, token = make_user(world["db_url"], "engineer")
    case = world["cases"]["acme"]
    app_client.post(f"/api/v1/cases/{case}/comment", json={"text": "looked"}, headers=bearer(token))
    admin = bearer(world["admin_token"])
    log = app_client.get("/api/v1/audit", params={"actor": username}, headers=admin).json()
    assert log["total"] == 1 and log["items"][0]["action"] == "case.comment"
    assert log["items"][0]["target"] == f"case {case}" and log["items"][0]["detail"]["text"] == "looked"
    assert app_client.get("/api/v1/audit", params={"action": "case."}, headers=admin).json()["total"] >= 1
    assert app_client.get("/api/v1/audit", params={"action": "user."}, headers=admin).json()["total"] >= 2
    assert app_client.get("/api/v1/audit", headers=bearer(token)).status_code == 403
