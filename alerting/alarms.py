"""Alarms in the database: a finding becomes a row (raised), changes it (severity), or closes it (cleared).

Idempotent by construction: at most one active alarm per (agent, device, series, detector) — a
partial unique index — so a finding replayed after a restart or a redelivery changes nothing, and
each real change leaves one row in alarm_events with its words and evidence.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from alerting.detectors import CLEARED
from alerting.engine import Finding

_KEY = "agent_id = %(agent)s AND coalesce(device_id, 0) = coalesce(%(device)s, 0) " \
       "AND series = %(series)s AND detector = %(detector)s"


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _json(value: Any) -> str:
    """Evidence as JSON: non-finite numbers (an infinite forecast) become null, tuples lists."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(value), default=str)


@dataclass(frozen=True)
class AlarmChange:
    """A stored change of an alarm: what the case manager (alerting/cases.py) acts on."""

    alarm_id: int
    agent_id: int
    device_id: int | None
    detector: str
    series: str
    severity: str
    change: str  # raised, severity_changed, cleared
    at: datetime  # event time
    text: str
    evidence: dict[str, Any]
    instant: bool = False


def devices_of(changes: Iterable[AlarmChange]) -> set[int]:
    return {c.device_id for c in changes if c.device_id is not None}


def apply(conn: psycopg.Connection, findings: Iterable[Finding],
          received_at: float | None = None) -> list[AlarmChange]:
    """Store the findings in the caller's transaction; returns the changes that were real."""
    changed: list[AlarmChange] = []
    received = _ts(received_at) if received_at else None
    for f in findings:
        a = f.alarm
        p = {"agent": f.agent_id, "device": f.device_id, "series": a.series, "detector": a.detector,
             "severity": a.severity, "at": _ts(a.ts), "text": a.text[:2000], "evidence": _json(a.evidence),
             "received": received}
        if f.instant:
            row = conn.execute(
                "INSERT INTO alarms (agent_id, device_id, series, detector, severity, state, opened_at, "
                "  updated_at, cleared_at, text, evidence, received_at) "
                "SELECT %(agent)s, %(device)s, %(series)s, %(detector)s, %(severity)s, 'cleared', %(at)s, %(at)s, "
                "  %(at)s, %(text)s, %(evidence)s, %(received)s "
                "WHERE NOT EXISTS (SELECT 1 FROM alarms WHERE " + _KEY + " AND opened_at = %(at)s) RETURNING id",
                p).fetchone()
            change = "raised"
        elif a.state == CLEARED:
            row = conn.execute(
                "UPDATE alarms SET state = 'cleared', cleared_at = %(at)s, updated_at = %(at)s, "
                "  clear_text = %(text)s WHERE state = 'active' AND " + _KEY + " RETURNING id", p).fetchone()
            change = "cleared"
        else:
            row = conn.execute(
                "INSERT INTO alarms (agent_id, device_id, series, detector, severity, opened_at, updated_at, "
                "  text, evidence, received_at) "
                "VALUES (%(agent)s, %(device)s, %(series)s, %(detector)s, %(severity)s, %(at)s, %(at)s, %(text)s, "
                "  %(evidence)s, %(received)s) "
                "ON CONFLICT (agent_id, coalesce(device_id, 0), series, detector) WHERE state = 'active' "
                "DO UPDATE SET severity = EXCLUDED.severity, text = EXCLUDED.text, evidence = EXCLUDED.evidence, "
                "  updated_at = EXCLUDED.updated_at WHERE alarms.severity <> EXCLUDED.severity "
                "RETURNING id, (xmax = 0) AS inserted", p).fetchone()
            change = "raised" if row and row[1] else "severity_changed"
        if row is None:
            continue  # already so: a replay, or a clear of an alarm never stored
        conn.execute("INSERT INTO alarm_events (alarm_id, time, change, severity, text, evidence) "
                     "VALUES (%s, %s, %s, %s, %s, %s)", (row[0], p["at"], change, a.severity, p["text"], p["evidence"]))
        changed.append(AlarmChange(row[0], f.agent_id, f.device_id, a.detector, a.series, a.severity, change,
                                   p["at"], p["text"], a.evidence, f.instant))
    return changed


def active_for_device(conn: psycopg.Connection, device_id: int) -> list[tuple[str, str, float]]:
    """(series, detector, last change as epoch) of the device's active alarms."""
    return [(r[0], r[1], r[2].timestamp()) for r in conn.execute(
        "SELECT series, detector, updated_at FROM alarms WHERE device_id = %s AND state = 'active'", (device_id,))]
