"""The notification outbox: what was sent, what is pending, what failed (and why), and a retry."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Query
from psycopg.rows import dict_row

from api.case_models import NotificationList, NotificationPublic
from api.deps import Scoped, db_sync
from api.errors import Conflict, NotFound
from api.models import ErrorBody

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])

Conn = Annotated[psycopg.Connection, Depends(db_sync)]

_COLUMNS = ("SELECT id, case_id, event, channel, target, subject, state, attempts, next_attempt_at, last_error, "
            "created_at, sent_at FROM notifications")


@router.get("", response_model=NotificationList, summary="Notifications, newest first")
def list_notifications(conn: Conn, state: Annotated[Literal["pending", "sent", "failed"] | None, Query()] = None,
                       case_id: Annotated[int | None, Query()] = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                       offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    where = " WHERE (%(s)s::text IS NULL OR state = %(s)s) AND (%(c)s::bigint IS NULL OR case_id = %(c)s)"
    p = {"s": state, "c": case_id, "limit": limit, "offset": offset}
    cur = conn.cursor(row_factory=dict_row)
    total = cur.execute("SELECT count(*) AS n FROM notifications" + where, p).fetchone()["n"]
    items = cur.execute(_COLUMNS + where + " ORDER BY id DESC LIMIT %(limit)s OFFSET %(offset)s", p).fetchall()
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.post("/{notification_id}/retry", response_model=NotificationPublic, summary="Send a failed one again",
             responses={404: {"model": ErrorBody, "description": "No such notification"},
                        409: {"model": ErrorBody, "description": "It was sent already"}})
def retry(conn: Conn, scope: Scoped, notification_id: int) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    row = cur.execute("SELECT state FROM notifications WHERE id = %s", (notification_id,)).fetchone()
    if row is None:
        raise NotFound(f"notification {notification_id}")
    if row["state"] == "sent":
        raise Conflict(f"notification {notification_id} was sent already")
    with conn.transaction():
        cur.execute("UPDATE notifications SET state = 'pending', attempts = 0, next_attempt_at = now() WHERE id = %s",
                    (notification_id,))
        scope.audit(conn, "notification.retry", f"notification {notification_id}")
    return cur.execute(_COLUMNS + " WHERE id = %s", (notification_id,)).fetchone()
