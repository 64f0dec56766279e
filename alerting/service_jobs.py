"""The service jobs the scheduler keeps in PostgreSQL: plan inspections (and escalate overdue ones),
schedule callbacks, issue the monthly health reports.

The stored job is only a reference to one of these functions and its trigger; what a run needs (the
connection pool, the notification channels, the case manager) is bound at start by `bind`, so no
configuration or secret is ever pickled into the job table. Each function is idempotent: run twice,
it does the work once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.triggers.interval import IntervalTrigger
from psycopg_pool import ConnectionPool

from alerting import callback_plan
from alerting.inspections import Inspections
from alerting.scheduler import DurableJob

log = logging.getLogger(__name__)


@dataclass
class Context:
    pool: ConnectionPool
    notify: Any                     # alerting.notify.NotifySection
    inspections: Inspections


_CONTEXT: Context | None = None


def bind(context: Context) -> None:
    global _CONTEXT
    _CONTEXT = context


def _ctx() -> Context:
    if _CONTEXT is None:
        raise RuntimeError("service jobs ran before alerting.service_jobs.bind(): the server binds them at start")
    return _CONTEXT


def plan_inspections() -> dict[str, int]:
    ctx = _ctx()
    with ctx.pool.connection() as conn, conn.transaction():
        changed = ctx.inspections.replan(conn)
        escalated = ctx.inspections.escalate_overdue(conn, ctx.notify)
    if changed or escalated:
        log.info("inspections: %d plans changed, %d overdue escalations", changed, escalated)
    return {"changed": changed, "escalated": escalated}


def schedule_callbacks() -> int:
    ctx = _ctx()
    with ctx.pool.connection() as conn, conn.transaction():
        return callback_plan.schedule(conn, policy=ctx.inspections.policy)


def issue_reports() -> list[int]:
    from api.reports.store import produce_due  # the report renderer is the API's; it runs in this process
    import psycopg
    ctx = _ctx()
    # a connection of its own, in autocommit: each report is one transaction (rendering takes seconds;
    # the housekeeping jobs keep the pool's connections)
    with psycopg.connect(ctx.pool.conninfo, autocommit=True) as conn:
        made = produce_due(conn, ctx.notify, now=datetime.now(UTC))
    if made:
        log.info("reports issued: %s", made)
    return made


def jobs() -> list[DurableJob]:
    return [
        DurableJob("plan-inspections", "alerting.service_jobs:plan_inspections", IntervalTrigger(hours=1)),
        DurableJob("schedule-callbacks", "alerting.service_jobs:schedule_callbacks", IntervalTrigger(hours=6)),
        # hourly: a month's reports are issued in the first hour after its end in which its data has
        # settled (a site catching up on its spool delays them, never loses them)
        DurableJob("issue-reports", "alerting.service_jobs:issue_reports", IntervalTrigger(hours=1)),
    ]
