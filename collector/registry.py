"""The device registry: customers, sites, agents, devices and series, created as the wire names them.

Agents register themselves and their devices through birth messages; a sample from a device the
registry has not met yet still gets a row (kind "unknown") rather than being dropped. Ids are cached
per process; a cache miss costs one upsert.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import datetime, timezone
from typing import Any

import psycopg

from agent import wire

log = logging.getLogger(__name__)

#: An agent's device state (wire.DEVICE_STATES) → the device status the API shows.
STATE_STATUS = {"reachable": "online", "partial": "partial", "no_response": "no_response",
                "auth_failure": "auth_failure", "error": "error"}


def _upsert_id(conn: psycopg.Connection, sql: str, params: tuple[Any, ...]) -> int:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def enrol(conn: psycopg.Connection, origin: wire.Origin, rotate: bool = False) -> str:
    """Register an agent ahead of its first message and give it a diagnostics secret (kept unless
    ``rotate``); returns the secret the agent's configuration must carry."""
    agent = Registry().agent_id(conn, origin)
    row = conn.execute("SELECT diag_secret FROM agents WHERE id = %s", (agent,)).fetchone()
    if row and row[0] and not rotate:
        return str(row[0])
    secret = secrets.token_hex(32)
    conn.execute("UPDATE agents SET diag_secret = %s WHERE id = %s", (secret, agent))
    return secret


class Registry:
    """Id lookups with a per-process cache. Every method runs on the caller's connection."""

    def __init__(self) -> None:
        self._agents: dict[wire.Origin, int] = {}
        self._devices: dict[tuple[int, str], int] = {}
        self._series: dict[str, int] = {}

    def clear(self) -> None:
        """Forget cached ids (after a failed transaction whose inserts were rolled back)."""
        self._agents.clear()
        self._devices.clear()
        self._series.clear()

    def agent_id(self, conn: psycopg.Connection, origin: wire.Origin) -> int:
        cached = self._agents.get(origin)
        if cached is not None:
            return cached
        customer = _upsert_id(conn, "INSERT INTO customers (key, name) VALUES (%s, %s) "
                                    "ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key RETURNING id",
                              (origin.customer, origin.customer))
        site = _upsert_id(conn, "INSERT INTO sites (customer_id, key, name) VALUES (%s, %s, %s) "
                                "ON CONFLICT (customer_id, key) DO UPDATE SET key = EXCLUDED.key RETURNING id",
                          (customer, origin.site, origin.site))
        agent = _upsert_id(conn, "INSERT INTO agents (site_id, key) VALUES (%s, %s) "
                                 "ON CONFLICT (site_id, key) DO UPDATE SET key = EXCLUDED.key RETURNING id",
                           (site, origin.agent))
        self._agents[origin] = agent
        return agent

    def device_id(self, conn: psycopg.Connection, agent_id: int, key: str) -> int:
        cached = self._devices.get((agent_id, key))
        if cached is not None:
            return cached
        device = _upsert_id(conn, "INSERT INTO devices (agent_id, key, name) VALUES (%s, %s, %s) "
                                  "ON CONFLICT (agent_id, key) DO UPDATE SET key = EXCLUDED.key RETURNING id",
                            (agent_id, key, key))
        self._devices[(agent_id, key)] = device
        return device

    def series_id(self, conn: psycopg.Connection, key: str) -> int:
        cached = self._series.get(key)
        if cached is not None:
            return cached
        series = _upsert_id(conn, "INSERT INTO series (key, name, labels) VALUES (%s, %s, %s) "
                                  "ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key RETURNING id",
                            (key, wire.metric_base(key), json.dumps(wire.metric_labels(key))))
        self._series[key] = series
        return series

    # ------------------------------------------------------------ birth and status

    def apply_birth(self, conn: psycopg.Connection, birth: wire.Birth) -> None:
        """Record what the agent says about itself, its devices and its metrics."""
        agent = self.agent_id(conn, birth.origin)
        conn.execute("UPDATE agents SET version = %s, boot = %s, interval_s = %s, host = %s, "
                     "last_seen = greatest(last_seen, now()) WHERE id = %s",
                     (birth.version, birth.boot, birth.interval, json.dumps(birth.host), agent))
        for d in birth.devices:
            device = self.device_id(conn, agent, d.device)
            owner = d.attrs.get("customer")
            customer = None
            if isinstance(owner, str) and wire.ID_RE.match(owner):
                customer = _upsert_id(conn, "INSERT INTO customers (key, name) VALUES (%s, %s) "
                                            "ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key RETURNING id",
                                      (owner, owner))
            before = conn.execute("SELECT attrs FROM devices WHERE id = %s", (device,)).fetchone()
            conn.execute("UPDATE devices SET kind = %s, name = %s, attrs = %s, customer_id = %s WHERE id = %s",
                         (d.kind, d.name, json.dumps(d.attrs), customer, device))
            self._firmware_change(conn, device, agent, (before[0] if before else None) or {}, d.attrs)
            state = d.attrs.get("state")
            if state in STATE_STATUS and state != "reachable":  # the agent's current view after a reconnect
                detail = d.attrs.get("state_detail")  # absent: keep the reason a state event gave
                self._set_status(conn, device, agent, STATE_STATUS[state], None if detail is None else str(detail),
                                 None)
        for m in birth.metrics:
            conn.execute("INSERT INTO metric_catalogue (name, unit, type, description) VALUES (%s, %s, %s, %s) "
                         "ON CONFLICT (name) DO UPDATE SET unit = EXCLUDED.unit, type = EXCLUDED.type, "
                         "description = EXCLUDED.description, updated_at = now()",
                         (m.name, m.unit, m.type, m.description))

    @staticmethod
    def _firmware_change(conn: psycopg.Connection, device: int, agent: int, old: dict[str, Any],
                         new: dict[str, Any]) -> None:
        """A new firmware (or SNMP sysDescr, which carries the release) is an event of the device's
        archive; the first birth only sets the baseline."""
        for key in ("firmware", "sys_descr"):
            was, now = old.get(key), new.get(key)
            if was and now and was != now:
                conn.execute("INSERT INTO device_events (device_id, agent_id, kind, severity, text, detail) "
                             "VALUES (%s, %s, 'firmware_changed', 'info', %s, %s)",
                             (device, agent, f"{'firmware' if key == 'firmware' else 'system description'} changed: "
                                             f"{str(was)[:120]} → {str(now)[:120]}",
                              json.dumps({"field": key, "old": was, "new": now})))
                return

    def apply_events(self, conn: psycopg.Connection, events: wire.Events) -> None:
        """Keep every event on its device's timeline; a state event also sets the device's status."""
        agent = self.agent_id(conn, events.origin)
        for e in events.events:
            device = self.device_id(conn, agent, e.device)
            if e.kind == "state":
                state = e.detail.get("state")
                self._set_status(conn, device, agent, STATE_STATUS[state], str(e.detail.get("reason", "")), e)
            else:
                conn.execute("INSERT INTO device_events (time, device_id, agent_id, kind, severity, text, detail) "
                             "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                             (datetime.fromtimestamp(e.ts, timezone.utc), device, agent, e.kind, e.severity,
                              e.text, json.dumps(e.detail)))

    def _set_status(self, conn: psycopg.Connection, device: int, agent: int, status: str, detail: str | None,
                    event: wire.Event | None) -> None:
        """Set a device's status and why. A change a state ``event`` brings goes on the device's
        timeline, once: the same state said again, or redelivered, records nothing. A birth (no
        event) only restores the status: the agent's state event for that change is the one to keep
        (the birth that follows it would otherwise add a second, wordless one). ``detail`` None
        keeps the current detail when the status stays."""
        changed = conn.execute(
            "UPDATE devices SET status = %(s)s, "
            "  status_detail = coalesce(%(d)s, CASE WHEN status = %(s)s THEN status_detail ELSE '' END), "
            "  status_since = CASE WHEN status <> %(s)s THEN now() ELSE status_since END "
            "WHERE id = %(id)s AND (status <> %(s)s OR status_detail <> coalesce(%(d)s, status_detail)) "
            "RETURNING id",
            {"s": status, "d": detail, "id": device}).fetchone()
        if event is None:
            return
        # The timeline keeps each state change once. The status column alone cannot tell: a
        # birth (sent when the poller's view changes) may have set it before this event arrived,
        # so compare with the last state event recorded instead.
        last = conn.execute("SELECT detail->>'state', time FROM device_events WHERE device_id = %s "
                            "AND kind = 'state' ORDER BY time DESC, id DESC LIMIT 1", (device,)).fetchone()
        at = datetime.fromtimestamp(event.ts, timezone.utc)
        if last is not None and (last[0] == event.detail.get("state") or last[1] >= at) and changed is None:
            return
        conn.execute("INSERT INTO device_events (time, device_id, agent_id, kind, severity, text, detail) "
                     "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                     (at, device, agent, "state", event.severity, event.text, json.dumps(event.detail)))

    def apply_result(self, conn: psycopg.Connection, result: wire.Result) -> None:
        """A diagnostic's answer, stored with its request (only from the agent it was sent to)."""
        agent = self.agent_id(conn, result.origin)
        status = "done" if result.ok else ("refused" if (result.error or "").startswith("refused") else "failed")
        updated = conn.execute(
            "UPDATE diagnostics SET status = %s, error = %s, result = %s, finished_at = %s "
            "WHERE request_id = %s AND agent_id = %s AND status = 'sent' RETURNING id",
            (status, result.error, json.dumps(result.output, default=str),
             datetime.fromtimestamp(result.ts, timezone.utc), result.request_id, agent)).fetchone()
        if updated is None:
            log.warning("diagnostic result %s from %s/%s/%s matches no open request", result.request_id,
                        result.origin.customer, result.origin.site, result.origin.agent)

    def apply_counters(self, conn: psycopg.Connection, status: wire.Status) -> None:
        """What the agent reports of its own delivery (newest report wins)."""
        if not status.counters:
            return
        c = status.counters
        conn.execute("UPDATE agents SET spooled = %s, delivered_messages = %s, dropped_messages = %s, "
                     "dropped_samples = %s, counters_at = %s WHERE id = %s "
                     "AND (counters_at IS NULL OR counters_at <= %s)",
                     (c["spooled"], c["delivered_messages"], c["dropped_messages"], c["dropped_samples"],
                      datetime.fromtimestamp(status.ts, timezone.utc), self.agent_id(conn, status.origin),
                      datetime.fromtimestamp(status.ts, timezone.utc)))

    def apply_status(self, conn: psycopg.Connection, status: wire.Status) -> bool:
        """Move the agent (and, when it goes offline, its devices) to the reported state.

        A status from an older boot than the one on record is ignored: a Last Will published on
        session takeover can arrive after the new process said "online". Returns True on a change.
        """
        agent = self.agent_id(conn, status.origin)
        # A Last Will carries the time the agent connected, not the time it vanished: the moment
        # the collector hears of a change is the honest "since".
        at = datetime.now(timezone.utc)
        row = conn.execute(
            "UPDATE agents SET state = %(state)s, state_since = %(at)s, "
            "  boot = CASE WHEN %(boot)s::bigint IS NULL THEN boot ELSE greatest(boot, %(boot)s) END "
            "WHERE id = %(id)s AND state <> %(state)s "
            "  AND (%(boot)s::bigint IS NULL OR boot IS NULL OR %(boot)s >= boot) RETURNING id",
            {"state": status.state, "at": at, "boot": status.boot, "id": agent}).fetchone()
        if row is None:
            return False
        conn.execute("INSERT INTO device_events (agent_id, kind, detail) VALUES (%s, %s, %s)",
                     (agent, f"agent_{status.state}", json.dumps({"boot": status.boot})))
        if status.state == "offline":
            conn.execute(
                "WITH changed AS (UPDATE devices SET status = 'offline', status_since = now() "
                "  WHERE agent_id = %s AND status <> 'offline' RETURNING id) "
                "INSERT INTO device_events (device_id, agent_id, kind, detail) "
                "SELECT id, %s, 'offline', '{\"reason\": \"agent offline\"}' FROM changed", (agent, agent))
        log.info("agent %s/%s/%s is %s", status.origin.customer, status.origin.site,
                 status.origin.agent, status.state)
        return True
