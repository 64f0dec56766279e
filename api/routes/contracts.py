"""Contracts: the SLA part (the policy and calendar a customer's cases run on, overrides of single
hours, the contacts escalations reach) and the preventive-maintenance part (coverage, acceptance and
warranty, inspection cadence, callback plan, report recipients and language)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from psycopg.rows import dict_row

from alerting.cases import CaseManager
from alerting.inspections import Inspections
from alerting.policies import PolicyError
from alerting.sla import parse_budgets
from api.case_models import ContractIn, ContractPublic
from api.deps import Scoped, db_sync
from api.errors import Conflict, NotFound, Unprocessable
from api.models import ErrorBody

router = APIRouter(prefix="/api/v1/contracts", tags=["contracts"])

Conn = Annotated[psycopg.Connection, Depends(db_sync)]

_SELECT = "SELECT k.*, c.key AS customer FROM contracts k JOIN customers c ON c.id = k.customer_id"
_ERRORS = {404: {"model": ErrorBody, "description": "No such contract"},
           409: {"model": ErrorBody, "description": "Key taken, or the customer has another active contract"},
           422: {"model": ErrorBody, "description": "Unknown customer, SLA policy or calendar, or bad hours"}}


def _check(mgr: CaseManager, planner: Inspections, body: ContractIn) -> None:
    if body.callback_plan not in planner.policy.callback_plans:
        raise Unprocessable(f"callback_plan {body.callback_plan!r} is not one of "
                            f"{', '.join(planner.policy.callback_plans)}")
    try:
        planner.policy.months(body.inspection_cadence)
        policy = mgr.sla.policy(body.sla_policy)
        mgr.sla.calendar(body.calendar or policy.calendar)
        parse_budgets(body.sla_overrides, "sla_overrides", policy.budgets)
    except (PolicyError, ValueError) as exc:
        raise Unprocessable(str(exc)) from None


def _in_scope(scope: Scoped, body: ContractIn) -> None:
    if not scope.sees(body.customer_id):
        raise Unprocessable("customer_id: no such customer")


def _write(conn: psycopg.Connection, sql: str, params: tuple) -> int:
    try:
        with conn.transaction():
            row = conn.execute(sql, params).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        what = "another active contract for this customer" if "one_active" in str(exc) else "a contract with this key"
        raise Conflict(f"there is already {what}") from None
    except psycopg.errors.ForeignKeyViolation:
        raise Unprocessable("customer_id: no such customer") from None
    if row is None:
        raise NotFound("contract")
    return row[0]


def _one(conn: psycopg.Connection, contract_id: int) -> dict[str, Any]:
    row = conn.cursor(row_factory=dict_row).execute(_SELECT + " WHERE k.id = %s", (contract_id,)).fetchone()
    if row is None:
        raise NotFound(f"contract {contract_id}")
    return row


_COLUMNS = ("customer_id", "key", "name", "sla_policy", "calendar", "sla_overrides", "contacts", "active", "starts_on",
            "ends_on", "sites", "devices", "accepted_on", "warranty_months", "inspection_cadence", "callback_plan",
            "report_recipients", "report_language")


def _params(body: ContractIn) -> tuple:
    return (body.customer_id, body.key, body.name, body.sla_policy, body.calendar, json.dumps(body.sla_overrides),
            json.dumps([c.model_dump(exclude_none=True) for c in body.contacts]), body.active, body.starts_on,
            body.ends_on, json.dumps(body.sites), json.dumps(body.devices), body.accepted_on, body.warranty_months,
            body.inspection_cadence, body.callback_plan, json.dumps(body.report_recipients), body.report_language)


@router.get("", response_model=list[ContractPublic], summary="Contracts, optionally of one customer")
def list_contracts(conn: Conn, scope: Scoped, customer: Annotated[str | None, Query(description="Customer key")] = None,
                   ) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(
        _SELECT + f" WHERE (%(c)s::text IS NULL OR c.key = %(c)s) AND {scope.where('k.customer_id')} "
        "ORDER BY c.key, k.key", {"c": customer}).fetchall()


@router.get("/{contract_id}", response_model=ContractPublic, summary="One contract", responses=_ERRORS)
def get_contract(conn: Conn, contract_id: int) -> dict[str, Any]:
    return _one(conn, contract_id)


@router.post("", response_model=ContractPublic, status_code=201, summary="Create a contract", responses=_ERRORS)
def create_contract(conn: Conn, request: Request, scope: Scoped, body: ContractIn) -> dict[str, Any]:
    _in_scope(scope, body)
    _check(request.app.state.cases, request.app.state.inspections, body)
    cid = _write(conn, f"INSERT INTO contracts ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
                       "RETURNING id", _params(body))
    scope.audit(conn, "contract.create", f"contract {cid}", key=body.key, customer_id=body.customer_id)
    return _one(conn, cid)


@router.put("/{contract_id}", response_model=ContractPublic, summary="Replace a contract; cases already open "
            "keep the hours they opened with", responses=_ERRORS)
def update_contract(conn: Conn, request: Request, scope: Scoped, contract_id: int, body: ContractIn) -> dict[str, Any]:
    _in_scope(scope, body)
    _check(request.app.state.cases, request.app.state.inspections, body)
    _write(conn, f"UPDATE contracts SET {', '.join(c + ' = %s' for c in _COLUMNS)}, updated_at = now() "
                 "WHERE id = %s RETURNING id", _params(body) + (contract_id,))
    scope.audit(conn, "contract.update", f"contract {contract_id}", key=body.key, customer_id=body.customer_id)
    return _one(conn, contract_id)
