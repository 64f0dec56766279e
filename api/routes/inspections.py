"""Inspections (巡检) as work orders: planned from health with the reason for each date, grouped by
site for one visit, completed with the checklist's results (findings may open cases)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from psycopg.rows import dict_row

from alerting.inspections import ChecklistMismatch, InspectionRefused, routes
from alerting.case_actions import ActionRefused
from alerting.case_evidence import warranty_state
from api.access import Scope
from api.deps import Scoped, db_sync
from api.errors import Conflict, NotFound, Unprocessable
from api.maintenance_models import (InspectionAssign, InspectionComplete, InspectionDetail, InspectionPublic,
                                    InspectionReschedule, RouteSite)
from api.models import ErrorBody

router = APIRouter(prefix="/api/v1/inspections", tags=["inspections"])

Conn = Annotated[psycopg.Connection, Depends(db_sync)]
_ERRORS = {404: {"model": ErrorBody, "description": "No such inspection"},
           409: {"model": ErrorBody, "description": "Not planned any more, or a date beyond the contract"},
           422: {"model": ErrorBody, "description": "Results that do not match the checklist"}}

_SELECT = """
SELECT i.id, c.key AS customer, s.key AS site, s.name AS site_name, i.device_id, d.name AS device, d.kind, i.state,
       i.due_on, i.latest_on,
       greatest(0, (now() AT TIME ZONE 'UTC')::date - i.due_on) * (i.state = 'planned')::int AS overdue_days,
       i.reason, i.checklist, i.assignee, d.health, v.warranty_end, i.done_at, i.done_by
FROM inspections i JOIN customers c ON c.id = i.customer_id JOIN devices d ON d.id = i.device_id
LEFT JOIN sites s ON s.id = i.site_id LEFT JOIN device_service v ON v.device_id = i.device_id
"""
_FILTER = """
WHERE (%(state)s::text IS NULL OR i.state = %(state)s)
  AND (%(customer)s::text IS NULL OR c.key = %(customer)s)
  AND (%(site)s::text IS NULL OR s.key = %(site)s)
  AND (%(device_id)s::int IS NULL OR i.device_id = %(device_id)s)
  AND (%(due_before)s::date IS NULL OR i.due_on <= %(due_before)s)
  AND (NOT %(overdue)s OR (i.state = 'planned' AND i.due_on < (now() AT TIME ZONE 'UTC')::date))
"""


def _finish(row: dict[str, Any]) -> dict[str, Any]:
    row["warranty"], _ = warranty_state(row["warranty_end"], datetime.now(UTC).date())
    return row


def _query(conn: psycopg.Connection, scope: Scope, state: str | None, customer: str | None, site: str | None,
           device_id: int | None, due_before: date | None, overdue: bool, limit: int) -> list[dict[str, Any]]:
    rows = conn.cursor(row_factory=dict_row).execute(
        _SELECT + _FILTER + f"  AND {scope.where('i.customer_id')}\n" + " ORDER BY i.due_on, c.key, s.key, d.name LIMIT %(limit)s",
        {"state": state, "customer": customer, "site": site, "device_id": device_id, "due_before": due_before,
         "overdue": overdue, "limit": limit}).fetchall()
    return [_finish(r) for r in rows]


State = Annotated[Literal["planned", "done", "cancelled"] | None, Query()]


@router.get("", response_model=list[InspectionPublic],
            summary="Inspections, soonest due first, each with the reason for its date")
def list_inspections(conn: Conn, scope: Scoped, state: State = "planned",
                     customer: Annotated[str | None, Query(description="Customer key")] = None,
                     site: Annotated[str | None, Query(description="Site key")] = None,
                     device_id: Annotated[int | None, Query()] = None,
                     due_before: Annotated[date | None, Query(description="Due on or before this date")] = None,
                     overdue: Annotated[bool, Query(description="Only those past due")] = False,
                     limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[dict[str, Any]]:
    return _query(conn, scope, state, customer, site, device_id, due_before, overdue, limit)


@router.get("/routes", response_model=list[RouteSite],
            summary="Planned inspections due by a date, grouped by site: one visit covers every device there")
def list_routes(conn: Conn, scope: Scoped, due_before: Annotated[date | None, Query(description="Default: 31 days ahead")] = None,
                customer: Annotated[str | None, Query(description="Customer key")] = None) -> list[dict[str, Any]]:
    until = due_before or date.fromordinal(datetime.now(UTC).date().toordinal() + 31)
    return routes(_query(conn, scope, "planned", customer, None, None, until, False, 5000))


def _detail(conn: psycopg.Connection, request: Request, inspection_id: int,
            lang: str = "en") -> dict[str, Any]:
    rows = conn.cursor(row_factory=dict_row).execute(_SELECT + " WHERE i.id = %(id)s", {"id": inspection_id}).fetchall()
    if not rows:
        raise NotFound(f"inspection {inspection_id}")
    row = _finish(rows[0])
    policy = request.app.state.inspections.policy
    checklist = policy.checklists.get(row["checklist"]) or policy.checklists[policy.default_checklist]
    latest = {}
    for name, value in conn.execute(
            "SELECT se.name, lv.value FROM latest_values lv JOIN series se ON se.id = lv.series_id "
            "WHERE lv.device_id = %s ORDER BY se.key", (row["device_id"],)).fetchall():
        latest.setdefault(name, value)
    row["checklist_title"] = checklist.title[lang]
    row["items"] = [{"id": it.id, "text": it.text[lang], "metric": it.metric,
                     "reading": latest.get(it.metric) if it.metric else None} for it in checklist.items]
    row["plan_changes"] = conn.cursor(row_factory=dict_row).execute(
        "SELECT time, old_due_on, new_due_on, reason FROM inspection_plan_changes WHERE inspection_id = %s "
        "ORDER BY time, id", (inspection_id,)).fetchall()
    extra = conn.execute("SELECT results, readings, findings, parts_replaced, notes FROM inspections WHERE id = %s",
                         (inspection_id,)).fetchone()
    row.update(dict(zip(("results", "readings", "findings", "parts_replaced", "notes"), extra)))
    return row


@router.get("/{inspection_id}", response_model=InspectionDetail, responses=_ERRORS,
            summary="One inspection: its checklist (with the latest readings), plan history and record")
def get_inspection(conn: Conn, request: Request, inspection_id: int,
                   lang: Annotated[Literal["en", "zh-CN"], Query()] = "en") -> dict[str, Any]:
    return _detail(conn, request, inspection_id, lang)


def _act(conn: psycopg.Connection, fn: Any, scope: Scope, action: str, inspection_id: int, **detail: Any) -> None:
    """Do `fn` and write its audit line in one transaction, mapping refusals to HTTP answers."""
    try:
        with conn.transaction():
            fn()
            scope.audit(conn, f"inspection.{action}", f"inspection {inspection_id}", **detail)
    except LookupError as exc:
        raise NotFound(str(exc)) from None
    except ChecklistMismatch as exc:
        raise Unprocessable(str(exc)) from None
    except InspectionRefused as exc:
        raise Conflict(str(exc)) from None
    except (ActionRefused, ValueError) as exc:
        raise Unprocessable(str(exc)) from None


@router.post("/{inspection_id}/complete", response_model=InspectionDetail, responses=_ERRORS,
             summary="Record the visit: checklist results, readings, findings (may open cases), parts; "
                     "the next inspection is planned from it")
def complete(conn: Conn, request: Request, scope: Scoped, inspection_id: int, body: InspectionComplete) -> dict[str, Any]:
    at = body.at or datetime.now(UTC)
    if at.tzinfo is None:
        raise Unprocessable("at needs a time zone (e.g. 2026-11-02T15:00:00Z)")
    _act(conn, lambda: request.app.state.inspections.complete(
        conn, inspection_id, scope.actor_for(body.by), results=[r.model_dump() for r in body.results], readings=body.readings,
        findings=[f.model_dump() for f in body.findings], parts_replaced=[p.model_dump() for p in body.parts_replaced],
        notes=body.notes, at=at, cases=request.app.state.cases), scope, "complete", inspection_id,
         findings=len(body.findings))
    return _detail(conn, request, inspection_id)


@router.post("/{inspection_id}/assign", response_model=InspectionDetail, responses=_ERRORS,
             summary="Assign the engineer who goes")
def assign(conn: Conn, request: Request, scope: Scoped, inspection_id: int, body: InspectionAssign) -> dict[str, Any]:
    _act(conn, lambda: request.app.state.inspections.assign(conn, inspection_id, body.assignee,
                                                            scope.actor_for(body.by)),
         scope, "assign", inspection_id, assignee=body.assignee)
    return _detail(conn, request, inspection_id)


@router.post("/{inspection_id}/reschedule", response_model=InspectionDetail, responses=_ERRORS,
             summary="Book another date, up to the latest the contract allows")
def reschedule(conn: Conn, request: Request, scope: Scoped, inspection_id: int,
               body: InspectionReschedule) -> dict[str, Any]:
    _act(conn, lambda: request.app.state.inspections.reschedule(conn, inspection_id, body.due_on,
                                                                scope.actor_for(body.by), body.reason),
         scope, "reschedule", inspection_id, due_on=body.due_on)
    return _detail(conn, request, inspection_id)
