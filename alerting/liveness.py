"""Alarms from wall-clock states the database holds: a site agent gone, an SNMP device in a bad state.

The collector keeps these states (an agent's Last Will or the liveness job marks it offline; the
agent's poller reports an SNMP device as not answering or refusing its credentials). A sweep every
few seconds compares them with the open alarms and raises or clears the difference, so the alarm
follows the state whoever set it, and a restart neither loses nor repeats one.
"""

from __future__ import annotations

import time

import psycopg

from alerting.detectors import CLEARED, RAISED, Alarm, duration_words
from alerting.engine import Finding
from alerting.event_rules import EventRules


def _hhmm(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def sweep(conn: psycopg.Connection, rules: EventRules, now: float | None = None) -> list[Finding]:
    """The findings that bring agent_offline and snmp alarms in line with the states (not stored here)."""
    now = time.time() if now is None else now
    out: list[Finding] = []
    for agent, name, since, seen, devices in conn.execute(
            "SELECT a.id, c.key || '/' || s.key || '/' || a.key, extract(epoch FROM a.state_since), "
            "  extract(epoch FROM a.last_seen), (SELECT count(*) FROM devices d WHERE d.agent_id = a.id) "
            "FROM agents a JOIN sites s ON s.id = a.site_id JOIN customers c ON c.id = s.customer_id "
            "WHERE a.state = 'offline' AND NOT EXISTS (SELECT 1 FROM alarms al WHERE al.agent_id = a.id "
            "  AND al.device_id IS NULL AND al.detector = 'agent_offline' AND al.state = 'active')"):
        at = float(since or now)
        last = f"last message {_hhmm(float(seen))}" if seen else "never heard from"
        out.append(Finding(Alarm("agent_offline", rules.agent_offline_severity, RAISED, "", at,
                                 f"site agent {name} offline since {_hhmm(at)} ({last}): its {devices} "
                                 f"devices are not watched", {"last_seen": seen, "devices": devices}), agent, None))
    for agent, name, since in conn.execute(
            "SELECT a.id, a.key, extract(epoch FROM a.state_since) FROM agents a WHERE a.state = 'online' "
            "AND EXISTS (SELECT 1 FROM alarms al WHERE al.agent_id = a.id AND al.device_id IS NULL "
            "  AND al.detector = 'agent_offline' AND al.state = 'active')"):
        out.append(Finding(Alarm("agent_offline", rules.agent_offline_severity, CLEARED, "", float(since or now),
                                 f"site agent {name} back online"), agent, None))
    for device, agent, name, status, detail, since, held in conn.execute(
            "SELECT d.id, d.agent_id, d.name, d.status, d.status_detail, extract(epoch FROM d.status_since), "
            "  al.severity FROM devices d LEFT JOIN alarms al ON al.device_id = d.id AND al.detector = 'snmp' "
            "  AND al.series = '' AND al.state = 'active' "
            "WHERE d.status IN ('no_response', 'auth_failure', 'error')"):
        rule = rules.snmp_states.get(status)
        at = float(since or now)
        if rule is None or held == rule.severity or now - at < rule.after_s:
            continue
        why = f": {detail}" if detail else ""
        out.append(Finding(Alarm("snmp", rule.severity, RAISED, "", max(at, now if held else at),
                                 f"{rule.title}: {name} for {duration_words(now - at)}{why}",
                                 {"status": status, "detail": detail, "since": at}), agent, device))
    for device, agent, name, status in conn.execute(
            "SELECT d.id, d.agent_id, d.name, d.status FROM devices d JOIN alarms al ON al.device_id = d.id "
            "AND al.detector = 'snmp' AND al.series = '' AND al.state = 'active' "
            "WHERE d.status IN ('online', 'partial')"):
        out.append(Finding(Alarm("snmp", "info", CLEARED, "", now, f"{name} answering SNMP again ({status})"),
                           agent, device))
    return out
