"""Maintenance windows: planned work during which no new case opens (per device, site or customer).
An alarm still standing when its window ends opens its case then (alerting/cases.py, release)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query, Response
from psycopg.rows import dict_row

from api.case_models import MaintenanceIn, MaintenancePublic
from api.deps import Scoped, db_sync
from api.errors import NotFound, Unprocessable
from api.models import ErrorBody

router = APIRouter(prefix="/api/v1/maintenance-windows", tags=["maintenance windows"])

Conn = Annotated[psycopg.Connection, Depends(db_sync)]

_SELECT = "SELECT w.*, c.key AS customer FROM maintenance_windows w JOIN customers c ON c.id = w.customer_id"


@router.get("", response_model=list[MaintenancePublic], summary="Maintenance windows, current and future by default")
def list_windows(conn: Conn, scope: Scoped, customer: Annotated[str | None, Query(description="Customer key")] = None,
                 past: Annotated[bool, Query(description="Include windows that have ended")] = False,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(
        _SELECT + f" WHERE (%(c)s::text IS NULL OR c.key = %(c)s) AND (%(past)s OR w.ends_at > %(now)s) "
        f"AND {scope.where('w.customer_id')} "
        "ORDER BY w.starts_at LIMIT %(limit)s",
        {"c": customer, "past": past, "now": datetime.now(UTC), "limit": limit}).fetchall()


@router.post("", response_model=MaintenancePublic, status_code=201, summary="Plan a maintenance window",
             responses={422: {"model": ErrorBody, "description": "Unknown customer, site or device, or one that "
                                                                 "does not belong to the customer"}})
def create_window(conn: Conn, scope: Scoped, body: MaintenanceIn) -> dict[str, Any]:
    with conn.transaction():
        if not scope.sees(body.customer_id) or conn.execute(
                "SELECT 1 FROM customers WHERE id = %s", (body.customer_id,)).fetchone() is None:
            raise Unprocessable(f"customer_id {body.customer_id}: no such customer")
        if body.site_id is not None and conn.execute("SELECT 1 FROM sites WHERE id = %s AND customer_id = %s",
                                                     (body.site_id, body.customer_id)).fetchone() is None:
            raise Unprocessable(f"site_id {body.site_id}: no such site of customer {body.customer_id}")
        if body.device_id is not None and conn.execute(
                "SELECT 1 FROM devices d JOIN agents a ON a.id = d.agent_id JOIN sites s ON s.id = a.site_id "
                "WHERE d.id = %s AND coalesce(d.customer_id, s.customer_id) = %s AND (%s::int IS NULL OR s.id = %s)",
                (body.device_id, body.customer_id, body.site_id, body.site_id)).fetchone() is None:
            raise Unprocessable(f"device_id {body.device_id}: no such device of customer {body.customer_id}"
                                + (f" at site {body.site_id}" if body.site_id else ""))
        wid = conn.execute("INSERT INTO maintenance_windows (customer_id, site_id, device_id, starts_at, ends_at, "
                           "reason, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                           (body.customer_id, body.site_id, body.device_id, body.starts_at, body.ends_at, body.reason,
                            scope.actor_for(body.by))).fetchone()[0]
        scope.audit(conn, "maintenance_window.create", f"window {wid}", customer_id=body.customer_id,
                    site_id=body.site_id, device_id=body.device_id)
    return conn.cursor(row_factory=dict_row).execute(_SELECT + " WHERE w.id = %s", (wid,)).fetchone()


@router.delete("/{window_id}", status_code=204, summary="Cancel a maintenance window",
               responses={404: {"model": ErrorBody, "description": "No such window"}})
def delete_window(conn: Conn, scope: Scoped, window_id: int) -> Response:
    with conn.transaction():
        if conn.execute("DELETE FROM maintenance_windows WHERE id = %s RETURNING id", (window_id,)).fetchone() is None:
            raise NotFound(f"maintenance window {window_id}")
        scope.audit(conn, "maintenance_window.delete", f"window {window_id}")
    return Response(status_code=204)
