"""Callbacks (回访): the calls to make after a case closed, due first; the answer is recorded with
`POST /api/v1/cases/{id}/callback`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Query
from psycopg.rows import dict_row

from api.case_models import CallbackPublic
from api.deps import db_sync

router = APIRouter(prefix="/api/v1/callbacks", tags=["callbacks"])

Conn = Annotated[psycopg.Connection, Depends(db_sync)]


@router.get("", response_model=list[CallbackPublic], summary="Callbacks, the soonest due first")
def list_callbacks(conn: Conn, state: Annotated[Literal["open", "done"] | None, Query()] = "open",
                   customer: Annotated[str | None, Query(description="Customer key")] = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT b.id, c.key AS customer, b.case_id, k.title AS case_title, b.due_at, b.state, b.resolved, "
        "b.satisfaction, b.comment, b.done_at, b.done_by FROM callbacks b JOIN customers c ON c.id = b.customer_id "
        "LEFT JOIN cases k ON k.id = b.case_id WHERE (%(s)s::text IS NULL OR b.state = %(s)s) "
        "AND (%(c)s::text IS NULL OR c.key = %(c)s) ORDER BY b.due_at, b.id LIMIT %(limit)s",
        {"s": state, "c": customer, "limit": limit}).fetchall()
