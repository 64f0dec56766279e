"""Alarms: what the detectors found, filterable by device, customer, site, state, severity and time."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query

from api.deps import Scoped, db
from api.errors import NotFound
from api.models import AlarmDetail, AlarmList, AlarmSeverity, AlarmState, ErrorBody
from api.timeparams import time_range

router = APIRouter(prefix="/api/v1/alarms", tags=["alarms"])

Conn = Annotated[psycopg.AsyncConnection, Depends(db)]

_SELECT = """
SELECT al.id, al.device_id, d.name AS device, al.agent_id, c.key AS customer, s.key AS site, a.key AS agent,
       al.series, al.detector, al.severity, al.state, al.opened_at, al.updated_at, al.cleared_at, al.text,
       al.clear_text, al.evidence, al.received_at, al.decided_at
FROM alarms al
JOIN agents a ON a.id = al.agent_id
JOIN sites s ON s.id = a.site_id
LEFT JOIN devices d ON d.id = al.device_id
JOIN customers c ON c.id = coalesce(d.customer_id, s.customer_id)
"""

_FILTER = """
WHERE (%(device)s::int IS NULL OR al.device_id = %(device)s)
  AND (%(customer)s::text IS NULL OR c.key = %(customer)s)
  AND (%(site)s::text IS NULL OR s.key = %(site)s)
  AND (%(state)s::text IS NULL OR al.state = %(state)s)
  AND (%(severity)s::text IS NULL OR al.severity = %(severity)s)
  AND (%(detector)s::text IS NULL OR al.detector = %(detector)s)
  AND al.opened_at < %(end)s AND (al.state = 'active' OR al.cleared_at >= %(start)s)
"""


@router.get("", response_model=AlarmList, summary="Alarms open at any moment of a time range, newest first")
async def list_alarms(
    conn: Conn,
    scope: Scoped,
    device_id: Annotated[int | None, Query(description="Only this device's alarms")] = None,
    customer: Annotated[str | None, Query(description="Customer key")] = None,
    site: Annotated[str | None, Query(description="Site key")] = None,
    state: Annotated[AlarmState | None, Query()] = None,
    severity: Annotated[AlarmSeverity | None, Query()] = None,
    detector: Annotated[str | None, Query(max_length=40, description="threshold, trend, rate, silence, …")] = None,
    start: Annotated[str | None, Query(description="RFC 3339 or epoch seconds; default end − 90 days")] = None,
    end: Annotated[str | None, Query(description="RFC 3339 or epoch seconds; default now + 1 day")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    # event time may run ahead of the wall clock a little (agents' clocks): the default end allows it
    start_t, end_t = time_range(start, end or str(time.time() + 86_400), timedelta(days=91))
    params = {"device": device_id, "customer": customer, "site": site, "state": state, "severity": severity,
              "detector": detector, "start": start_t, "end": end_t, "limit": limit, "offset": offset}
    where = _FILTER + f"  AND {scope.where('c.id')}\n"
    total = await (await conn.execute(
        "SELECT count(*) AS n FROM alarms al JOIN agents a ON a.id = al.agent_id JOIN sites s ON s.id = a.site_id "
        "LEFT JOIN devices d ON d.id = al.device_id JOIN customers c ON c.id = coalesce(d.customer_id, s.customer_id)"
        + where, params)).fetchone()
    rows = await (await conn.execute(
        _SELECT + where + " ORDER BY al.opened_at DESC, al.id DESC LIMIT %(limit)s OFFSET %(offset)s",
        params)).fetchall()
    return {"items": rows, "total": total["n"] if total else 0, "limit": limit, "offset": offset}


@router.get("/{alarm_id}", response_model=AlarmDetail,
            responses={404: {"model": ErrorBody, "description": "No such alarm"}},
            summary="One alarm with every change it went through")
async def get_alarm(conn: Conn, alarm_id: int) -> dict[str, Any]:
    row = await (await conn.execute(_SELECT + " WHERE al.id = %s", (alarm_id,))).fetchone()
    if row is None:
        raise NotFound(f"alarm {alarm_id}")
    row["history"] = await (await conn.execute(
        "SELECT time, change, severity, text, evidence FROM alarm_events WHERE alarm_id = %s ORDER BY time, id",
        (alarm_id,))).fetchall()
    return row
