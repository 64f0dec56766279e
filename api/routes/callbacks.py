"""Callbacks (回访): the calls to make after a case closed and those the contract schedules (monthly
in the first year after acceptance, quarterly after), due first, with the customer's answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from psycopg.rows import dict_row

from alerting import case_actions
from alerting.case_actions import ActionRefused
from api.case_models import CallbackPublic
from api.deps import Scoped, db_sync
from api.errors import Conflict, NotFound, Unprocessable
from api.maintenance_models import CallbackResult
from api.models import ErrorBody

router = APIRouter(prefix="/api/v1/callbacks", tags=["callbacks"])

Conn = Annotated[psycopg.Connection, Depends(db_sync)]

_SELECT = ("SELECT b.id, c.key AS customer, b.kind, b.contract_id, b.case_id, k.title AS case_title, b.due_at, "
           "b.state, b.resolved, b.satisfaction, b.comment, b.done_at, b.done_by FROM callbacks b "
           "JOIN customers c ON c.id = b.customer_id LEFT JOIN cases k ON k.id = b.case_id ")


@router.get("", response_model=list[CallbackPublic], summary="Callbacks, the soonest due first (answered ones: the latest first)")
def list_callbacks(conn: Conn, scope: Scoped, state: Annotated[Literal["open", "done"] | None, Query()] = "open",
                   customer: Annotated[str | None, Query(description="Customer key")] = None,
                   kind: Annotated[Literal["case", "scheduled"] | None, Query()] = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(
        _SELECT + "WHERE (%(s)s::text IS NULL OR b.state = %(s)s) AND (%(c)s::text IS NULL OR c.key = %(c)s) "
        f"AND (%(k)s::text IS NULL OR b.kind = %(k)s) AND {scope.where('b.customer_id')} "
        + ("ORDER BY b.done_at DESC, b.id DESC " if state == "done" else "ORDER BY b.due_at, b.id ")
        + "LIMIT %(limit)s",
        {"s": state, "c": customer, "k": kind, "limit": limit}).fetchall()


@router.post("/{callback_id}", response_model=CallbackPublic, summary="Record the customer's answer",
             responses={404: {"model": ErrorBody, "description": "No such callback"},
                        409: {"model": ErrorBody, "description": "Answered already"},
                        422: {"model": ErrorBody, "description": "A case callback without 'resolved'"}})
def record(conn: Conn, request: Request, scope: Scoped, callback_id: int, body: CallbackResult) -> dict[str, Any]:
    by = scope.actor_for(body.by)
    with conn.transaction():
        row = conn.execute("SELECT case_id, state FROM callbacks WHERE id = %s FOR UPDATE", (callback_id,)).fetchone()
        if row is None:
            raise NotFound(f"callback {callback_id}")
        if row[1] == "done":
            raise Conflict(f"callback {callback_id} was answered already")
        if row[0] is not None:  # a case's callback is also an event of the case
            if body.resolved is None:
                raise Unprocessable("resolved: say whether the case's problem is really gone")
            try:
                case_actions.callback(request.app.state.cases, conn, row[0], by, body.resolved,
                                      body.satisfaction, body.comment)
            except (ActionRefused, ValueError) as exc:
                raise Conflict(str(exc)) from None
        else:
            conn.execute("UPDATE callbacks SET state = 'done', resolved = %s, satisfaction = %s, comment = %s, "
                         "done_at = now(), done_by = %s WHERE id = %s",
                         (body.resolved, body.satisfaction, body.comment, by, callback_id))
        scope.audit(conn, "callback.answer", f"callback {callback_id}", resolved=body.resolved,
                    satisfaction=body.satisfaction)
    return conn.cursor(row_factory=dict_row).execute(_SELECT + "WHERE b.id = %s", (callback_id,)).fetchone()
