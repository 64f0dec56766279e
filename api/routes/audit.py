"""The audit log: who did what (logins that failed, users and tokens, case actions, diagnostics,
inspections, archive edits, contracts, windows, callbacks), newest first. For admins only: it
names every customer's things and every user."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query
from psycopg.rows import dict_row
from pydantic import BaseModel

from api.deps import db_sync

router = APIRouter(prefix="/api/v1/audit", tags=["auth"])

Conn = Annotated[psycopg.Connection, Depends(db_sync)]


class AuditEntry(BaseModel):
    id: int
    time: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


class AuditList(BaseModel):
    items: list[AuditEntry]
    total: int
    limit: int
    offset: int


@router.get("", response_model=AuditList, summary="The audit log, newest first (admins only)")
def audit_log(conn: Conn,
              actor: Annotated[str | None, Query(max_length=200, description="Only this user's")] = None,
              action: Annotated[str | None, Query(max_length=100, description="An action, or its prefix "
                                                                              "ending in '.' (case.)")] = None,
              target: Annotated[str | None, Query(max_length=200, description="e.g. 'case 12'")] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100,
              offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    where = ("WHERE (%(actor)s::text IS NULL OR actor = %(actor)s) AND (%(target)s::text IS NULL OR target = %(target)s) "
             "AND (%(action)s::text IS NULL OR action = %(action)s "
             "     OR (right(%(action)s, 1) = '.' AND starts_with(action, %(action)s)))")
    params = {"actor": actor, "action": action, "target": target, "limit": limit, "offset": offset}
    cur = conn.cursor(row_factory=dict_row)
    total = cur.execute("SELECT count(*) AS n FROM audit_log " + where, params).fetchone()["n"]
    items = cur.execute("SELECT id, time, actor, action, target, detail FROM audit_log " + where
                        + " ORDER BY id DESC LIMIT %(limit)s OFFSET %(offset)s", params).fetchall()
    return {"items": items, "total": total, "limit": limit, "offset": offset}
