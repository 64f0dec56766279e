"""The server's scheduler (APScheduler 3): every periodic job of the process, each on its own cadence.

Two job stores. Housekeeping (rollups, partitions, the offline sweep) lives in memory: it is
re-created at every start and only its cadence matters. The service jobs (inspection planning,
callbacks, monthly reports: alerting/service_jobs.py) live in PostgreSQL (SQLAlchemyJobStore,
table apscheduler_jobs): one row per job id however often and on however many servers it starts
(replace_existing), each run at start catches up what was due while no server ran, and the trigger
decides after that. The work itself is idempotent too (unique
indexes), which is what makes "neither lost nor doubled" hold even if two processes race.

Housekeeping jobs are plain functions of a database connection. A failing job is logged when it
starts failing and once when it recovers, not at every run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from dataclasses import dataclass

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from psycopg_pool import ConnectionPool

from collector.maintenance import Job

log = logging.getLogger(__name__)


class JobRunner:
    """Wraps a job: borrows a connection, times it, logs state changes rather than every failure."""

    def __init__(self, job: Job, pool: ConnectionPool) -> None:
        self.job = job
        self.pool = pool
        self.failing = False
        self.runs = 0

    def __call__(self) -> None:
        try:
            with self.pool.connection() as conn:
                result = self.job.run(conn)
        except Exception as exc:
            if not self.failing:
                log.error("job %s failing: %s", self.job.name, exc)
                self.failing = True
            return
        self.runs += 1
        if self.failing:
            log.info("job %s recovered", self.job.name)
            self.failing = False
        if result:
            log.debug("job %s: %s", self.job.name, result)


def sqlalchemy_url(database_url: str) -> str:
    """The psycopg 3 dialect's URL for SQLAlchemy (postgresql://… alone would ask for psycopg2)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix):]
    raise ValueError(f"not a PostgreSQL URL: {database_url.split('@')[-1]!r}")


def start(pool: ConnectionPool, jobs: Iterable[Job], *, database_url: str | None = None,
          durable: Iterable[DurableJob] = ()) -> BackgroundScheduler:
    jobstores: dict[str, object] = {"default": MemoryJobStore()}
    if database_url:
        jobstores["durable"] = SQLAlchemyJobStore(url=sqlalchemy_url(database_url), tablename="apscheduler_jobs",
                                                  engine_options={"pool_pre_ping": True})
    scheduler = BackgroundScheduler(timezone="UTC", jobstores=jobstores,
                                    job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60})
    for job in jobs:
        scheduler.add_job(JobRunner(job, pool), "interval", seconds=job.seconds, id=job.name,
                          name=job.name, next_run_time=datetime.now(timezone.utc) + timedelta(seconds=1))
    scheduler.start()
    if database_url:
        add_durable(scheduler, durable)
    return scheduler


def add_durable(scheduler: BackgroundScheduler, durable: Iterable[DurableJob], *, first_run_s: float = 5.0) -> None:
    """Put the service jobs in the PostgreSQL store (one row per id) and run each soon: a run missed
    while no server was up (a month's report) is caught up at start, once, since the work is
    idempotent; after that the stored trigger decides."""
    soon = datetime.now(timezone.utc) + timedelta(seconds=first_run_s)
    for job in durable:
        scheduler.add_job(job.func, job.trigger, id=job.id, name=job.id, jobstore="durable", replace_existing=True,
                          misfire_grace_time=job.misfire_grace_s, coalesce=True, max_instances=1,
                          next_run_time=soon)


@dataclass(frozen=True)
class DurableJob:
    """A job kept in PostgreSQL: `func` is a "module:function" reference (stored as text, so no
    object is pickled but the trigger), called with no arguments."""

    id: str
    func: str
    trigger: BaseTrigger
    misfire_grace_s: int | None = None  # None: run however late, once (coalesced)
