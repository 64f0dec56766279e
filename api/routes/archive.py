"""The device archive (客户档案): what the service side knows of a device, its whole timeline, and the
warranties about to end (for the sales follow-up a contract renewal needs)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query
from psycopg.rows import dict_row

from alerting.case_evidence import warranty_state
from api.deps import Scoped, db_sync
from api.errors import NotFound
from api.maintenance_models import ArchiveIn, ArchivePublic, ExpiringWarranty, TimelineEntry
from api.models import ErrorBody
from api.timeparams import time_range

router = APIRouter(tags=["archive"])

Conn = Annotated[psycopg.Connection, Depends(db_sync)]
_NOT_FOUND = {404: {"model": ErrorBody, "description": "No such device"}}
def _archive(conn: psycopg.Connection, device_id: int) -> dict[str, Any]:
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT d.id AS device_id, d.name AS device, d.kind, c.key AS customer, s.key AS site, v.contract_id, "
        "  coalesce(v.covered, false) AS covered, v.brand, v.model, v.serial, v.location, v.firmware, "
        "  v.installed_on, v.accepted_on, v.warranty_end, coalesce(ar.notes, '') AS notes, "
        "  (SELECT due_on FROM inspections WHERE device_id = d.id AND state = 'planned') AS next_inspection, "
        "  (SELECT max(done_at) FROM inspections WHERE device_id = d.id AND state = 'done') AS last_inspection, "
        "  to_jsonb(ar) - 'device_id' AS recorded "
        "FROM devices d JOIN device_service v ON v.device_id = d.id JOIN customers c ON c.id = v.customer_id "
        "JOIN sites s ON s.id = v.site_id LEFT JOIN device_archive ar ON ar.device_id = d.id WHERE d.id = %s",
        (device_id,)).fetchone()
    if row is None:
        raise NotFound(f"device {device_id}")
    row["warranty"], row["warranty_days_left"] = warranty_state(row["warranty_end"], datetime.now(UTC).date())
    row["recorded"] = row["recorded"] or {}
    return row


@router.get("/api/v1/devices/{device_id}/archive", response_model=ArchivePublic, responses=_NOT_FOUND,
            summary="A device's archive: brand, model, serial, location, acceptance and warranty")
def get_archive(conn: Conn, device_id: int) -> dict[str, Any]:
    return _archive(conn, device_id)


_FIELDS = ("brand", "model", "serial", "location", "firmware", "installed_on", "accepted_on", "warranty_months",
           "warranty_end", "notes")


@router.put("/api/v1/devices/{device_id}/archive", response_model=ArchivePublic, responses=_NOT_FOUND,
            summary="Record a device's archive; every change is an event of its timeline")
def put_archive(conn: Conn, scope: Scoped, device_id: int, body: ArchiveIn) -> dict[str, Any]:
    before = _archive(conn, device_id)["recorded"]
    by = scope.actor_for(body.by)
    values = body.model_dump(include=set(_FIELDS))
    with conn.transaction():
        conn.execute(
            "INSERT INTO device_archive (device_id, " + ", ".join(_FIELDS) + ", updated_by) VALUES (%s, "
            + ", ".join(["%s"] * len(_FIELDS)) + ", %s) ON CONFLICT (device_id) DO UPDATE SET "
            + ", ".join(f"{f} = EXCLUDED.{f}" for f in _FIELDS) + ", updated_by = EXCLUDED.updated_by, updated_at = now()",
            (device_id, *values.values(), by))
        changed = {k: {"old": before.get(k), "new": v if not isinstance(v, date) else v.isoformat()}
                   for k, v in values.items()
                   if str(before.get(k) if before.get(k) is not None else "") != str(v if v is not None else "")}
        if changed:
            conn.execute("INSERT INTO device_events (device_id, kind, severity, text, detail) "
                         "VALUES (%s, 'archive_changed', 'info', %s, %s)",
                         (device_id, f"archive updated by {by}: {', '.join(changed)}",
                          json.dumps({"by": by, "changed": changed})))
            scope.audit(conn, "archive.update", f"device {device_id}", changed=sorted(changed))
    return _archive(conn, device_id)


_TIMELINE = """
SELECT * FROM (
SELECT time, kind, text, severity, NULL::bigint AS case_id, (detail->>'inspection_id')::bigint AS inspection_id,
       detail->>'by' AS by, detail
FROM device_events WHERE device_id = %(d)s AND time >= %(since)s AND time < %(until)s
UNION ALL
SELECT opened_at, 'case_opened', '#' || id || ' ' || severity || ' ' || title, severity, id, NULL, NULL,
       jsonb_build_object('source', source, 'problem', problem)
FROM cases WHERE device_id = %(d)s AND state <> 'suppressed' AND opened_at >= %(since)s AND opened_at < %(until)s
UNION ALL
SELECT resolved_at, 'case_resolved', '#' || id || ' resolved: ' || coalesce(root_cause, resolution, ''), severity, id,
       NULL, NULL, jsonb_build_object('root_cause', root_cause, 'resolution', resolution, 'parts_used', parts_used)
FROM cases WHERE device_id = %(d)s AND resolved_at >= %(since)s AND resolved_at < %(until)s
UNION ALL
SELECT closed_at, 'case_closed', '#' || id || ' closed', severity, id, NULL, NULL, '{}'::jsonb
FROM cases WHERE device_id = %(d)s AND closed_at >= %(since)s AND closed_at < %(until)s
UNION ALL
SELECT opened_at, 'reboot', text, severity, NULL, NULL, NULL, evidence
FROM alarms WHERE device_id = %(d)s AND detector = 'reboot' AND opened_at >= %(since)s AND opened_at < %(until)s
) t WHERE %(kinds)s::text[] IS NULL OR t.kind = ANY(%(kinds)s)
ORDER BY 1 DESC, 2 LIMIT %(limit)s
"""


@router.get("/api/v1/devices/{device_id}/timeline", response_model=list[TimelineEntry], responses=_NOT_FOUND,
            summary="Everything that happened to a device: cases, inspections, parts, reboots, firmware, "
                    "state changes — newest first")
def timeline(conn: Conn, device_id: int,
             since: Annotated[str | None, Query(description="ISO time; default: the beginning")] = None,
             until: Annotated[str | None, Query(description="ISO time; default: now")] = None,
             kind: Annotated[list[str] | None, Query(description="Only these kinds")] = None,
             limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[dict[str, Any]]:
    if conn.execute("SELECT 1 FROM devices WHERE id = %s", (device_id,)).fetchone() is None:
        raise NotFound(f"device {device_id}")
    start, end = time_range(since or "1970-01-01T00:00:00Z", until)
    rows = conn.cursor(row_factory=dict_row).execute(
        _TIMELINE, {"d": device_id, "since": start, "until": end, "limit": limit, "kinds": kind or None}).fetchall()
    return rows


@router.get("/api/v1/warranties/expiring", response_model=list[ExpiringWarranty],
            summary="Devices whose warranty ends within N days (soonest first), for the sales follow-up")
def expiring(conn: Conn, scope: Scoped, days: Annotated[int, Query(ge=0, le=3650)] = 90,
             customer: Annotated[str | None, Query(description="Customer key")] = None,
             include_expired: Annotated[bool, Query(description="Also those already ended")] = False,
             ) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT d.id AS device_id, d.name AS device, d.kind, c.key AS customer, c.name AS customer_name, "
        "  s.key AS site, v.brand, v.model, v.serial, v.accepted_on, v.warranty_end, "
        "  (v.warranty_end - (now() AT TIME ZONE 'UTC')::date) AS days_left, v.contract_id "
        "FROM device_service v JOIN devices d ON d.id = v.device_id JOIN customers c ON c.id = v.customer_id "
        "JOIN sites s ON s.id = v.site_id WHERE v.warranty_end IS NOT NULL "
        "AND v.warranty_end <= (now() AT TIME ZONE 'UTC')::date + %(days)s "
        "AND (%(expired)s OR v.warranty_end >= (now() AT TIME ZONE 'UTC')::date) "
        f"AND (%(c)s::text IS NULL OR c.key = %(c)s) AND {scope.where('v.customer_id')} "
        "ORDER BY v.warranty_end, d.name",
        {"days": days, "expired": include_expired, "c": customer}).fetchall()
