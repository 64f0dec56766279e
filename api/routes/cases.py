"""Cases: the queue with its SLA clocks, one case with events and evidence, the actions on it, and a
case opened by hand. Plain (sync) routes on the sync pool: the case manager is the one used by the
detection worker, so a case opened by a person and one opened by monitoring follow the same code."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Path, Query, Request
from psycopg.rows import dict_row

from alerting import case_actions
from alerting.case_actions import ActionRefused, CaseNotFound
from alerting.cases import CaseManager
from alerting.sla import clock_summary
from api.case_models import (NEEDS, Action, CaseAction, CaseCreate, CaseDetail, CaseList, CaseState, Severity)
from api.deps import Scoped, db_sync
from api.errors import BadRequest, Conflict, NotFound, Unprocessable
from api.models import ErrorBody

router = APIRouter(prefix="/api/v1/cases", tags=["cases"])

Conn = Annotated[psycopg.Connection, Depends(db_sync)]

_SELECT = """
SELECT k.*, c.key AS customer, c.name AS customer_name, s.key AS site, d.name AS device,
       d.attrs->>'warranty_end' AS warranty_end
FROM cases k
JOIN customers c ON c.id = k.customer_id
LEFT JOIN sites s ON s.id = k.site_id
LEFT JOIN devices d ON d.id = k.device_id
"""

# A clock is missed when it was met after its due time, or is unmet, running and past due.
_BREACHED = """(
  (k.response_due IS NOT NULL AND coalesce(k.acknowledged_at, k.resolved_at) > k.response_due)
  OR (k.onsite_due IS NOT NULL AND coalesce(k.arrived_at, k.resolved_at, k.recovered_at) > k.onsite_due)
  OR (k.resolve_due IS NOT NULL AND coalesce(k.resolved_at, k.recovered_at) > k.resolve_due)
  OR (k.state IN ('open', 'acknowledged', 'on_site') AND (
        (k.response_due < %(now)s AND k.acknowledged_at IS NULL)
     OR (k.onsite_due < %(now)s AND k.arrived_at IS NULL)
     OR (k.resolve_due < %(now)s)))
  OR (k.state = 'waiting_customer' AND k.paused_at > least(
        CASE WHEN k.acknowledged_at IS NULL THEN k.response_due END,
        CASE WHEN k.arrived_at IS NULL THEN k.onsite_due END, k.resolve_due))
)"""

_FILTER = f"""
WHERE (%(customer)s::text IS NULL OR c.key = %(customer)s)
  AND (%(site)s::text IS NULL OR s.key = %(site)s)
  AND (%(device)s::int IS NULL OR k.device_id = %(device)s)
  AND (%(severity)s::text IS NULL OR k.severity = %(severity)s)
  AND (%(state)s::text IS NULL OR k.state = %(state)s
       OR (%(state)s = 'active' AND k.state NOT IN ('closed', 'suppressed')))
  AND (%(breached)s::boolean IS NULL OR {_BREACHED} = %(breached)s)
"""

_ORDER = {
    "opened": "k.opened_at DESC, k.id DESC",
    # the queue: soonest deadline first, whatever clock it is
    "urgency": "least(CASE WHEN k.acknowledged_at IS NULL THEN k.response_due END, "
               "CASE WHEN k.arrived_at IS NULL THEN k.onsite_due END, k.resolve_due) ASC NULLS LAST, k.id",
    "severity": "k.severity, k.opened_at",
}


def manager(request: Request) -> CaseManager:
    return request.app.state.cases


Manager = Annotated[CaseManager, Depends(manager)]


def _public(mgr: CaseManager, row: dict[str, Any], now: datetime) -> dict[str, Any]:
    clocks = clock_summary(mgr.clocks(row), now) if row["state"] != "suppressed" else {}
    row["clocks"] = clocks
    row["breached"] = any(c["breached"] for c in clocks.values())
    if row["device_id"] is not None:
        row["warranty"] = (("in_warranty" if row["warranty_end"] >= now.date().isoformat() else "out_of_warranty")
                           if row.get("warranty_end") else "unknown")
    return row


def _detail(mgr: CaseManager, conn: psycopg.Connection, case_id: int) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    row = cur.execute(_SELECT + " WHERE k.id = %s", (case_id,)).fetchone()
    if row is None:
        raise NotFound(f"case {case_id}")
    out = _public(mgr, row, datetime.now(UTC))
    out["events"] = cur.execute("SELECT time, actor, kind, text, data FROM case_events WHERE case_id = %s "
                                "ORDER BY time, id", (case_id,)).fetchall()
    out["alarms"] = cur.execute("SELECT id, detector, series, severity, state, opened_at, cleared_at, text "
                                "FROM alarms WHERE case_id = %s ORDER BY opened_at", (case_id,)).fetchall()
    out["children"] = [r["id"] for r in cur.execute("SELECT id FROM cases WHERE parent_id = %s ORDER BY id",
                                                    (case_id,)).fetchall()]
    out["callback"] = cur.execute(
        "SELECT b.id, c.key AS customer, b.case_id, b.due_at, b.state, b.resolved, b.satisfaction, b.comment, "
        "b.done_at, b.done_by FROM callbacks b JOIN customers c ON c.id = b.customer_id WHERE b.case_id = %s",
        (case_id,)).fetchone()
    return out


@router.get("", response_model=CaseList, summary="Cases with their SLA clocks; the queue with sort=urgency")
def list_cases(
    conn: Conn, mgr: Manager, scope: Scoped,
    customer: Annotated[str | None, Query(description="Customer key")] = None,
    site: Annotated[str | None, Query(description="Site key")] = None,
    device_id: Annotated[int | None, Query()] = None,
    severity: Annotated[Severity | None, Query()] = None,
    state: Annotated[CaseState | None, Query(description="A state; or use active=true for every open one")] = None,
    active: Annotated[bool, Query(description="Only cases still being worked (not closed, not suppressed)")] = False,
    breached: Annotated[bool | None, Query(description="true: a clock was missed; false: none was")] = None,
    sort: Annotated[str, Query(pattern="^(opened|urgency|severity)$")] = "opened",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    now = datetime.now(UTC)
    params = {"customer": customer, "site": site, "device": device_id, "severity": severity,
              "state": state or ("active" if active else None), "breached": breached, "now": now,
              "limit": limit, "offset": offset}
    cur = conn.cursor(row_factory=dict_row)
    where = _FILTER + f"  AND {scope.where('k.customer_id')}\n"
    total = cur.execute("SELECT count(*) AS n FROM cases k JOIN customers c ON c.id = k.customer_id "
                        "LEFT JOIN sites s ON s.id = k.site_id" + where, params).fetchone()["n"]
    rows = cur.execute(_SELECT + where + f" ORDER BY {_ORDER[sort]} LIMIT %(limit)s OFFSET %(offset)s",
                       params).fetchall()
    return {"items": [_public(mgr, r, now) for r in rows], "total": total, "limit": limit, "offset": offset}


@router.post("", response_model=CaseDetail, status_code=201, summary="Open a case by hand",
             responses={409: {"model": ErrorBody, "description": "A case for this device and problem is open"},
                        422: {"model": ErrorBody, "description": "Unknown device or site, or a customer mismatch"}})
def create_case(conn: Conn, mgr: Manager, scope: Scoped, body: CaseCreate) -> dict[str, Any]:
    _check_scope(conn, scope, body)
    try:
        with conn.transaction():
            case_id = case_actions.open_case(mgr, conn, scope.actor_for(body.by), body.severity, body.title,
                                             customer_id=body.customer_id, site_id=body.site_id,
                                             device_id=body.device_id, description=body.description,
                                             problem=body.problem)
            scope.audit(conn, "case.open", f"case {case_id}", severity=body.severity, title=body.title)
    except ActionRefused as exc:
        raise Conflict(str(exc)) from None
    except ValueError as exc:
        raise Unprocessable(str(exc)) from None
    return _detail(mgr, conn, case_id)


def _check_scope(conn: psycopg.Connection, scope: Scoped, body: CaseCreate) -> None:
    """A case is opened only about things the user sees; others' answer as unknown ones do."""
    from api.access import OWNERS
    for name, value in (("customer_id", body.customer_id), ("site_id", body.site_id), ("device_id", body.device_id)):
        if value is None or scope.customers is None:
            continue
        row = conn.execute(OWNERS[name], (value,)).fetchone()
        if row is not None and not scope.sees(row[0]):
            raise Unprocessable(f"unknown {name.removesuffix('_id')} {value}")


@router.get("/{case_id}", response_model=CaseDetail, summary="One case with its events, alarms and evidence",
            responses={404: {"model": ErrorBody, "description": "No such case"}})
def get_case(conn: Conn, mgr: Manager, case_id: int) -> dict[str, Any]:
    return _detail(mgr, conn, case_id)


@router.post("/{case_id}/{action}", response_model=CaseDetail, summary="Work on a case",
             responses={404: {"model": ErrorBody, "description": "No such case"},
                        409: {"model": ErrorBody, "description": "The action does not fit the case's state"},
                        422: {"model": ErrorBody, "description": "A field the action needs is missing"}})
def act(conn: Conn, mgr: Manager, scope: Scoped, case_id: int, body: CaseAction,
        action: Annotated[Action, Path(description="assign, acknowledge, comment, arrive, wait, resume, severity, "
                                                    "resolve, close, callback")]) -> dict[str, Any]:
    data = body.model_dump()
    data["by"] = scope.actor_for(body.by)
    missing = [f for f in NEEDS.get(action, ()) if data.get(f) in (None, "")]
    if missing:
        raise Unprocessable(f"{action} needs {' and '.join(repr(f) for f in missing)} in the body")
    try:
        with conn.transaction():
            case_actions.perform(mgr, conn, case_id, action, data)
            scope.audit(conn, f"case.{action}", f"case {case_id}",
                        **{k: v for k, v in data.items() if v is not None and k != "by"})
    except CaseNotFound:
        raise NotFound(f"case {case_id}") from None
    except ActionRefused as exc:
        raise Conflict(str(exc)) from None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return _detail(mgr, conn, case_id)
