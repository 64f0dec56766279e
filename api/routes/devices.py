"""Devices: the fleet's live status, one device, and a device's metric series."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query

from api.deps import Scoped, db
from api.errors import BadRequest, NotFound
from api.models import DeviceHealth, DeviceList, DevicePublic, DeviceStatus, ErrorBody, EventPublic, SeriesPoint, SeriesPublic
from api.timeparams import parse_step, time_range

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])

Conn = Annotated[psycopg.AsyncConnection, Depends(db)]

_SELECT = """
SELECT d.id, d.key, d.name, d.kind, d.status, d.status_detail, d.status_since, d.last_seen, d.attrs,
       c.key AS customer, s.key AS site, a.key AS agent, d.health,
       (SELECT count(*) FROM alarms al WHERE al.device_id = d.id AND al.state = 'active') AS open_alarms,
       (SELECT jsonb_build_object('id', k.id, 'severity', k.severity, 'state', k.state, 'title', k.title)
        FROM cases k WHERE k.device_id = d.id AND k.state NOT IN ('closed', 'suppressed')
        ORDER BY k.severity, k.opened_at LIMIT 1) AS open_case,
       coalesce((SELECT jsonb_object_agg(se.key, jsonb_build_object(
                    'value', lv.value, 'time', lv.time, 'unit', coalesce(mc.unit, '')))
                 FROM latest_values lv JOIN series se ON se.id = lv.series_id
                 LEFT JOIN metric_catalogue mc ON mc.name = se.name
                 WHERE lv.device_id = d.id), '{}'::jsonb) AS metrics
FROM devices d
JOIN agents a ON a.id = d.agent_id
JOIN sites s ON s.id = a.site_id
JOIN customers c ON c.id = coalesce(d.customer_id, s.customer_id)
"""

_FROM = """
FROM devices d JOIN agents a ON a.id = d.agent_id JOIN sites s ON s.id = a.site_id
JOIN customers c ON c.id = coalesce(d.customer_id, s.customer_id)
"""

_FILTER = """
WHERE (%(customer)s::text IS NULL OR c.key = %(customer)s)
  AND (%(site)s::text IS NULL OR s.key = %(site)s)
  AND (%(status)s::text IS NULL OR d.status = %(status)s)
  AND (%(kind)s::text IS NULL OR d.kind = %(kind)s)
  AND (%(health_below)s::float8 IS NULL OR d.health < %(health_below)s)
"""

_NOT_FOUND = {404: {"model": ErrorBody, "description": "No such device"}}


@router.get("", response_model=DeviceList, summary="List devices with their live status")
async def list_devices(
    conn: Conn,
    scope: Scoped,
    customer: Annotated[str | None, Query(description="Customer key")] = None,
    site: Annotated[str | None, Query(description="Site key")] = None,
    status: Annotated[DeviceStatus | None, Query()] = None,
    kind: Annotated[str | None, Query(description="host, switch, ups, …")] = None,
    health_below: Annotated[float | None, Query(ge=0, le=101, description="Only devices with a health score "
                                                                         "below this")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    params = {"customer": customer, "site": site, "status": status, "kind": kind, "health_below": health_below,
              "limit": limit, "offset": offset}
    where = _FILTER + f"  AND {scope.where('c.id')}\n"
    total = await (await conn.execute("SELECT count(*) AS n" + _FROM + where, params)).fetchone()
    # the page's ids first, then their details: an offset deep into 10,000 devices then skips bare
    # rows instead of computing every skipped row's metrics and alarm count
    rows = await (await conn.execute(
        _SELECT + " WHERE d.id IN (SELECT d.id" + _FROM + where + " ORDER BY c.key, s.key, d.name, d.id "
        "LIMIT %(limit)s OFFSET %(offset)s) ORDER BY c.key, s.key, d.name, d.id", params)).fetchall()
    return {"items": rows, "total": total["n"] if total else 0, "limit": limit, "offset": offset}


@router.get("/{device_id}", response_model=DevicePublic, responses=_NOT_FOUND, summary="One device")
async def get_device(conn: Conn, device_id: int) -> dict[str, Any]:
    row = await (await conn.execute(_SELECT + " WHERE d.id = %(id)s", {"id": device_id})).fetchone()
    if row is None:
        raise NotFound(f"device {device_id}")
    return row


@router.get("/{device_id}/metrics", response_model=SeriesPublic,
            responses={**_NOT_FOUND, 400: {"model": ErrorBody, "description": "Bad metric, range or step"}},
            summary="A device's metric over time, downsampled to one point per step")
async def get_series(
    conn: Conn,
    device_id: int,
    metric: Annotated[str, Query(description="Series key, e.g. cpu_percent or disk_used_percent{mount=/}",
                                 min_length=1, max_length=300)],
    start: Annotated[str | None, Query(description="RFC 3339 or epoch seconds; default end − 1 h")] = None,
    end: Annotated[str | None, Query(description="RFC 3339 or epoch seconds; default now")] = None,
    step: Annotated[str | None, Query(description="Seconds or 30s, 5m, 1h; default range/300")] = None,
) -> dict[str, Any]:
    start_t, end_t = time_range(start, end)
    step_s = parse_step(step, start_t, end_t)
    device = await (await conn.execute("SELECT id FROM devices WHERE id = %s", (device_id,))).fetchone()
    if device is None:
        raise NotFound(f"device {device_id}")
    series = await (await conn.execute(
        "SELECT se.id, se.key, coalesce(mc.unit, '') AS unit FROM series se "
        "LEFT JOIN metric_catalogue mc ON mc.name = se.name "
        "WHERE (se.key = %(m)s OR se.name = %(m)s) "
        "AND EXISTS (SELECT 1 FROM latest_values lv WHERE lv.device_id = %(d)s AND lv.series_id = se.id) "
        "ORDER BY se.key", {"m": metric, "d": device_id})).fetchall()
    exact = [s for s in series if s["key"] == metric]
    if exact:
        series = exact
    if not series:
        raise NotFound(f"metric {metric!r} on device {device_id}")
    if len(series) > 1:
        raise BadRequest(f"metric {metric!r} has {len(series)} series on this device; name one: "
                         + ", ".join(s["key"] for s in series[:20]))
    chosen = series[0]
    use_rollup = step_s >= 300 and step_s % 300 == 0 and (end_t - start_t).total_seconds() > 86_400
    params = {"d": device_id, "s": chosen["id"], "start": start_t, "end": end_t, "step": step_s}
    if use_rollup:
        sql = ("SELECT date_bin(make_interval(secs => %(step)s), bucket, 'epoch') AS time, "
               "sum(v_avg * n) / sum(n) AS avg, min(v_min) AS min, max(v_max) AS max, sum(n)::bigint AS count "
               "FROM samples_5m WHERE device_id = %(d)s AND series_id = %(s)s "
               "AND bucket >= %(start)s AND bucket < %(end)s GROUP BY 1 ORDER BY 1")
    else:
        sql = ("SELECT date_bin(make_interval(secs => %(step)s), time, 'epoch') AS time, "
               "avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS count "
               "FROM samples WHERE device_id = %(d)s AND series_id = %(s)s "
               "AND time >= %(start)s AND time < %(end)s GROUP BY 1 ORDER BY 1")
    rows = await (await conn.execute(sql, params)).fetchall()
    return {"device_id": device_id, "metric": chosen["key"], "unit": chosen["unit"], "start": start_t,
            "end": end_t, "step": step_s, "source": "rollup_5m" if use_rollup else "raw",
            "points": [SeriesPoint(**r) for r in rows]}


@router.get("/{device_id}/events", response_model=list[EventPublic], responses=_NOT_FOUND,
            summary="What happened to a device, newest first: state changes, reboots, traps")
async def list_events(
    conn: Conn,
    device_id: int,
    kind: Annotated[str | None, Query(description="state, reboot, trap, online, offline")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    device = await (await conn.execute("SELECT id FROM devices WHERE id = %s", (device_id,))).fetchone()
    if device is None:
        raise NotFound(f"device {device_id}")
    return await (await conn.execute(
        "SELECT id, time, kind, severity, text, detail FROM device_events "
        "WHERE device_id = %(d)s AND (%(k)s::text IS NULL OR kind = %(k)s) ORDER BY time DESC, id DESC "
        "LIMIT %(n)s", {"d": device_id, "k": kind, "n": limit})).fetchall()


@router.get("/{device_id}/health", response_model=DeviceHealth, responses=_NOT_FOUND,
            summary="A device's health score, what it is made of, and its history")
async def get_health(
    conn: Conn,
    device_id: int,
    start: Annotated[str | None, Query(description="RFC 3339 or epoch seconds; default end − 30 days")] = None,
    end: Annotated[str | None, Query(description="RFC 3339 or epoch seconds; default now")] = None,
) -> dict[str, Any]:
    row = await (await conn.execute("SELECT health, health_breakdown, health_at FROM devices WHERE id = %s",
                                    (device_id,))).fetchone()
    if row is None:
        raise NotFound(f"device {device_id}")
    start_t, end_t = time_range(start, end, timedelta(days=30))
    history = await (await conn.execute(
        "SELECT time, score FROM health_scores WHERE device_id = %s AND time >= %s AND time < %s "
        "ORDER BY time LIMIT 20000", (device_id, start_t, end_t))).fetchall()
    return {"device_id": device_id, "score": row["health"], "at": row["health_at"],
            "breakdown": row["health_breakdown"], "history": history}
