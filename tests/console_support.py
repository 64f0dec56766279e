"""A small fleet for the console and portal tests: two customers, their devices, a case each, an
hour of metric history for one device, a planned inspection; and a cookie login like a browser's."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from agent import wire
from alerting import case_actions
from alerting.cases import CaseManager
from collector.migrate import backend_of
from collector.store import Store
from tests.api_support import layout_batch

LAYOUT = [("acme", "hq", "gw1", [("sw1", "switch"), ("ups1", "ups")]),
          ("globex", "dc", "gw3", [("ups2", "ups")])]


def build_fleet(db_url: str, history_s: int = 3 * 3600) -> dict[str, Any]:
    """Devices (by key → id), the open case of sw1 and ups2, sw1's planned inspection; sw1 has
    `history_s` of cpu_percent at one sample a minute, ending now."""
    conn = psycopg.connect(db_url)
    store = Store(conn, backend_of(conn))
    conn.commit()
    now = time.time()
    batch = layout_batch(LAYOUT, now, interval_s=60.0)
    hq = wire.Origin("acme", "hq", "gw1")
    batch.telemetry.append(wire.Telemetry(hq, 1, 2, [
        wire.Point("sw1", now - history_s + i * 60, {"cpu_percent": 20.0 + (i % 30)}) for i in range(history_s // 60)]))
    store.write(batch)
    conn.commit()
    conn.autocommit = True
    ids = dict(conn.execute("SELECT key, id FROM devices").fetchall())
    customers = dict(conn.execute("SELECT key, id FROM customers").fetchall())
    mgr = CaseManager()
    cases = {}
    for key, title in (("sw1", "Uplink errors rising"), ("ups2", "Battery runtime low")):
        with conn.transaction():
            cases[key] = case_actions.open_case(mgr, conn, "test", "P2", title, device_id=ids[key])
    site = conn.execute("SELECT s.id FROM sites s JOIN devices d ON true JOIN agents a ON a.id = d.agent_id "
                        "AND a.site_id = s.id WHERE d.id = %s", (ids["sw1"],)).fetchone()[0]
    today = datetime.now(UTC).date()
    # a contract covers acme's devices: planning (the detection worker's) keeps their inspections
    contract = conn.execute("INSERT INTO contracts (customer_id, key, name, accepted_on) "
                            "VALUES (%s, 'acme-1', 'Acme service', %s) RETURNING id",
                            (customers["acme"], today - timedelta(days=200))).fetchone()[0]
    inspection = conn.execute(
        "INSERT INTO inspections (customer_id, site_id, device_id, contract_id, state, due_on, latest_on, reason, "
        "checklist) VALUES (%s, %s, %s, %s, 'planned', %s, %s, 'quarterly cadence (test)', 'network') RETURNING id",
        (customers["acme"], site, ids["sw1"], contract, today - timedelta(days=2),
         today + timedelta(days=20))).fetchone()[0]
    conn.close()
    return {"devices": ids, "customers": customers, "cases": cases, "inspection": inspection}
