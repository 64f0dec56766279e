"""Sites, agents, the metric catalogue and what ingest refused."""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query

from api.deps import Scoped, db
from api.errors import NotFound
from api.models import AgentPublic, ErrorBody, MetricInfoPublic, RejectedSummary, SitePublic

router = APIRouter(prefix="/api/v1", tags=["fleet"])

Conn = Annotated[psycopg.AsyncConnection, Depends(db)]

_AGENTS = """
SELECT a.id, a.key, c.key AS customer, s.key AS site, a.version, a.state, a.state_since, a.last_seen,
       a.interval_s, a.last_seq, a.messages, a.samples, a.host,
       a.spooled, a.delivered_messages, a.dropped_messages, a.dropped_samples, a.counters_at,
       (SELECT coalesce(sum(span - n), 0) FROM (
           SELECT max(q.seq) - min(q.seq) + 1 AS span, count(*) AS n
           FROM agent_sequences q WHERE q.agent_id = a.id GROUP BY q.boot) per_boot) AS gaps
FROM agents a JOIN sites s ON s.id = a.site_id JOIN customers c ON c.id = s.customer_id
"""


@router.get("/sites", response_model=list[SitePublic], summary="Sites, optionally of one customer")
async def list_sites(conn: Conn, scope: Scoped, customer: Annotated[str | None, Query()] = None) -> list[dict[str, Any]]:
    return await (await conn.execute(
        "SELECT s.id, s.key, s.name, c.key AS customer, "
        "  (SELECT count(*) FROM devices d JOIN agents a ON a.id = d.agent_id WHERE a.site_id = s.id) AS devices "
        "FROM sites s JOIN customers c ON c.id = s.customer_id "
        f"WHERE (%(c)s::text IS NULL OR c.key = %(c)s) AND {scope.where('c.id')} ORDER BY c.key, s.key",
        {"c": customer})).fetchall()


@router.get("/agents", response_model=list[AgentPublic], summary="Site agents, their state and counters")
async def list_agents(conn: Conn, scope: Scoped, customer: Annotated[str | None, Query()] = None) -> list[dict[str, Any]]:
    return await (await conn.execute(
        _AGENTS + f" WHERE (%(c)s::text IS NULL OR c.key = %(c)s) AND {scope.where('c.id')} ORDER BY c.key, s.key, a.key",
        {"c": customer})).fetchall()


@router.get("/agents/{agent_id}", response_model=AgentPublic,
            responses={404: {"model": ErrorBody, "description": "No such agent"}}, summary="One agent")
async def get_agent(conn: Conn, agent_id: int) -> dict[str, Any]:
    row = await (await conn.execute(_AGENTS + " WHERE a.id = %s", (agent_id,))).fetchone()
    if row is None:
        raise NotFound(f"agent {agent_id}")
    return row


@router.get("/metrics", response_model=list[MetricInfoPublic], summary="The metric catalogue")
async def list_metrics(conn: Conn) -> list[dict[str, Any]]:
    return await (await conn.execute(
        "SELECT name, unit, type, description FROM metric_catalogue ORDER BY name")).fetchall()


@router.get("/ingest/rejected", response_model=list[RejectedSummary],
            summary="Messages the collector refused, by reason (kept 30 days)")
async def rejected(conn: Conn) -> list[dict[str, Any]]:
    return await (await conn.execute(
        "SELECT DISTINCT ON (reason) reason, count(*) OVER (PARTITION BY reason) AS count, "
        "received_at AS last_at, topic AS last_topic, detail AS last_detail "
        "FROM rejected_messages ORDER BY reason, received_at DESC")).fetchall()
