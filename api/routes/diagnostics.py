"""Remote diagnostics: ask a site agent to run a whitelisted check, then read its result."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Request
from psycopg.types.json import Jsonb

from agent import wire
from api.commands import BrokerUnavailable
from api import auth
from api.deps import Scoped, db
from api.errors import BadRequest, NotFound
from api.models import DiagnosticCreate, DiagnosticPublic, ErrorBody

router = APIRouter(prefix="/api/v1/agents", tags=["diagnostics"])

Conn = Annotated[psycopg.AsyncConnection, Depends(db)]

_SELECT = ("SELECT d.request_id, d.action, d.args, d.requested_by, d.requested_at, d.expires_at, "
           "CASE WHEN d.status = 'sent' AND d.expires_at < now() THEN 'expired' ELSE d.status END AS status, "
           "d.error, d.result, d.finished_at FROM diagnostics d ")


class NotEnrolled(Exception):
    pass


@router.post("/{agent_id}/diagnostics", response_model=DiagnosticPublic, status_code=202,
             responses={400: {"model": ErrorBody, "description": "Unknown action or bad arguments"},
                        404: {"model": ErrorBody, "description": "No such agent"},
                        409: {"model": ErrorBody, "description": "The agent is not enrolled for diagnostics"},
                        503: {"model": ErrorBody, "description": "The broker cannot take the command"}},
             summary="Ask a site agent to run a diagnostic (ping, SNMP get/walk, poll now, status, log tail)")
async def request_diagnostic(conn: Conn, request: Request, scope: Scoped, agent_id: int,
                             body: DiagnosticCreate) -> dict[str, Any]:
    try:
        wire.check_diagnostic(body.action, body.args)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    agent = await (await conn.execute(
        "SELECT a.key AS agent, s.key AS site, c.key AS customer, a.diag_secret "
        "FROM agents a JOIN sites s ON s.id = a.site_id JOIN customers c ON c.id = s.customer_id "
        "WHERE a.id = %s", (agent_id,))).fetchone()
    if agent is None:
        raise NotFound(f"agent {agent_id}")
    if not agent["diag_secret"]:
        raise NotEnrolled(f"agent {agent_id} has no diagnostics secret: run `fleetcare enrol --customer "
                          f"{agent['customer']} --site {agent['site']} --agent {agent['agent']}` and put the "
                          "secret in the agent's configuration")
    commander = request.app.state.commander
    if commander is None:
        raise BrokerUnavailable("this API process has no broker configured (mqtt.url)")
    request_id = str(uuid.uuid4())
    expires = time.time() + body.ttl_s
    origin = wire.Origin(agent["customer"], agent["site"], agent["agent"])
    payload = wire.encode_command(origin, agent["diag_secret"], request_id, body.action, body.args, expires,
                                  secrets.token_hex(16))
    await conn.execute(
        "INSERT INTO diagnostics (request_id, agent_id, action, args, requested_by, expires_at) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (request_id, agent_id, body.action, Jsonb(body.args), scope.actor_for(body.requested_by),
         datetime.fromtimestamp(expires, timezone.utc)))
    await conn.execute(auth.AUDIT_SQL, (scope.actor, "diagnostic.request", f"agent {agent_id}",
                                        json.dumps({"request_id": request_id, "action": body.action,
                                                    "args": body.args}, default=str)))
    try:
        await commander.publish(wire.topic(request.app.state.topic_prefix, origin, wire.CMD), payload)
    except BrokerUnavailable:
        await conn.execute("UPDATE diagnostics SET status = 'failed', error = 'broker unavailable' "
                           "WHERE request_id = %s", (request_id,))
        raise
    row = await (await conn.execute(_SELECT + "WHERE d.request_id = %s", (request_id,))).fetchone()
    return row


@router.get("/{agent_id}/diagnostics", response_model=list[DiagnosticPublic],
            responses={404: {"model": ErrorBody, "description": "No such agent"}},
            summary="An agent's diagnostics, newest first")
async def list_diagnostics(conn: Conn, agent_id: int) -> list[dict[str, Any]]:
    if await (await conn.execute("SELECT 1 FROM agents WHERE id = %s", (agent_id,))).fetchone() is None:
        raise NotFound(f"agent {agent_id}")
    return await (await conn.execute(
        _SELECT + "WHERE d.agent_id = %s ORDER BY d.requested_at DESC LIMIT 100", (agent_id,))).fetchall()


@router.get("/{agent_id}/diagnostics/{request_id}", response_model=DiagnosticPublic,
            responses={404: {"model": ErrorBody, "description": "No such agent or request"}},
            summary="One diagnostic: sent, done, failed, refused (and why) or expired")
async def get_diagnostic(conn: Conn, agent_id: int, request_id: str) -> dict[str, Any]:
    row = await (await conn.execute(_SELECT + "WHERE d.agent_id = %s AND d.request_id = %s",
                                    (agent_id, request_id))).fetchone()
    if row is None:
        raise NotFound(f"diagnostic {request_id} of agent {agent_id}")
    return row
