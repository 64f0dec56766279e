"""The server's scheduler (APScheduler 3): every periodic job of the process, each on its own cadence.

Jobs are plain functions of a database connection. A failing job is logged when it starts failing
and once when it recovers, not at every run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers.background import BackgroundScheduler
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


def start(pool: ConnectionPool, jobs: Iterable[Job]) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1,
                                                                  "misfire_grace_time": 60})
    for job in jobs:
        scheduler.add_job(JobRunner(job, pool), "interval", seconds=job.seconds, id=job.name,
                          name=job.name, next_run_time=datetime.now(timezone.utc) + timedelta(seconds=1))
    scheduler.start()
    return scheduler
