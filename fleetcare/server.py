"""`fleetcare server` / `collector` / `api`: the server parts, together or alone.

Start-up is strict about configuration and patient with services: the schema is migrated (waiting
for PostgreSQL with back-off), the broker is waited for, then everything runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

import psycopg

from agent import mqtt
from collector.config import ServerConfig
from collector.migrate import migrate

log = logging.getLogger("fleetcare.server")


class StartupError(RuntimeError):
    pass


def wait_and_migrate(cfg: ServerConfig, stop: threading.Event, timeout: float = 120.0) -> dict[str, object]:
    """Migrate once PostgreSQL answers; a database still starting is normal at boot."""
    if not cfg.database.url:
        raise StartupError("database.url is not set: set FLEETCARE_DATABASE_URL (or [database] url), "
                           "or run `fleetcare demo`, which starts an embedded PostgreSQL")
    deadline = time.monotonic() + timeout
    delay = 0.5
    while True:
        try:
            return migrate(cfg.database.url, cfg.database)
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline or stop.is_set():
                raise StartupError(f"database unreachable: {str(exc).strip()}") from None
            log.warning("database not reachable yet (%s); retrying in %.0f s",
                        str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer", delay)
            stop.wait(delay)
            delay = min(delay * 2, 10.0)


def negotiate(cfg: ServerConfig, stop: threading.Event) -> int:
    if not cfg.mqtt.url:
        raise StartupError("mqtt.url is not set: set FLEETCARE_MQTT_URL (or [mqtt] url), "
                           "or run `fleetcare demo`, which starts a broker of its own")
    try:
        return mqtt.negotiate_protocol(cfg.mqtt.url, username=cfg.mqtt.username, password=cfg.mqtt.password,
                                       ca_file=cfg.mqtt.ca_file, timeout=120.0, stop=stop)
    except mqtt.BrokerUnavailable as exc:
        raise StartupError(str(exc)) from None


def _install_stop(stop: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


def case_manager(cfg: ServerConfig):  # -> alerting.cases.CaseManager
    """The case policy, SLA rules and notification channels of this configuration; a wrong file stops
    start-up with the file and field named (StartupError)."""
    from alerting import case_policy, sla
    from alerting.cases import CaseManager
    from alerting.policies import PolicyError
    try:
        cfg.notify.validate()
        return CaseManager(case_policy.load_case_policy(cfg.alerting.case_policy_file or case_policy.DEFAULT_FILE),
                           sla.load_rules(cfg.alerting.sla_file or sla.DEFAULT_FILE), cfg.notify)
    except (PolicyError, ValueError) as exc:
        raise StartupError(str(exc)) from None


def inspections(cfg: ServerConfig):  # -> alerting.inspections.Inspections
    """The inspection rules and checklists; a wrong file stops start-up with the file and field named."""
    from alerting.inspection_policy import CHECKLIST_DIR, DEFAULT_FILE, load_inspection_policy
    from alerting.inspections import Inspections
    from alerting.policies import PolicyError
    try:
        return Inspections(load_inspection_policy(cfg.alerting.inspection_file or DEFAULT_FILE,
                                                  cfg.alerting.checklists_dir or CHECKLIST_DIR))
    except PolicyError as exc:
        raise StartupError(str(exc)) from None


def run(cfg: ServerConfig, *, collector: bool = True, api: bool = True, jobs: bool = True) -> int:
    """Run the chosen parts in this process until a signal; returns the exit code."""
    stop = threading.Event()
    _install_stop(stop)
    policies = None
    cases = None
    planner = None
    try:
        if collector and cfg.alerting.enabled:  # a wrong policy file stops start-up, naming file and field
            from alerting.event_rules import load_event_rules
            from alerting.policies import DEFAULT_DIR, PolicyError, load_policies
            try:
                policies = (load_policies(cfg.alerting.policies_dir or DEFAULT_DIR), load_event_rules())
            except PolicyError as exc:
                raise StartupError(str(exc)) from None
        if collector or api or jobs:
            cases = case_manager(cfg)
            planner = inspections(cfg)
        info = wait_and_migrate(cfg, stop)
        log.info("schema at version %s on %s", info["to"], info["backend"])
        protocol = negotiate(cfg, stop) if collector else None
    except StartupError as exc:
        log.error("%s", exc)
        return 2
    threads: list[threading.Thread] = []
    if collector:
        from collector.ingest import Collector
        listeners = []
        if policies is not None:
            from alerting.worker import DetectionWorker
            worker = DetectionWorker(cfg.database.url, warmup_h=cfg.alerting.warmup_h, policies=policies[0],
                                     rules=policies[1], cases=cases if cfg.alerting.cases else None,
                                     inspections=planner)
            listeners.append(worker.submit)
            w = threading.Thread(target=worker.run, args=(stop,), name="detection", daemon=True)
            w.start()
            threads.append(w)
        col = Collector(cfg, protocol=protocol, listeners=listeners)
        t = threading.Thread(target=col.run, args=(stop,), name="collector", daemon=True)
        t.start()
        threads.append(t)
    scheduler = None
    pool = None
    if jobs:
        from psycopg_pool import ConnectionPool
        from alerting import scheduler as sched
        from collector import maintenance
        pool = ConnectionPool(cfg.database.url, min_size=1, max_size=3, kwargs={"autocommit": False},
                              open=True)
        with pool.connection() as conn:
            applicable = maintenance.applicable(conn, maintenance.jobs(cfg.database.retention_days,
                                                                       cfg.collector.stale_intervals))
        from alerting import service_jobs
        service_jobs.bind(service_jobs.Context(pool, cfg.notify, planner))
        scheduler = sched.start(pool, applicable, database_url=cfg.database.url, durable=service_jobs.jobs())
        from alerting.notify import Deliverer
        deliverer = Deliverer(cfg.database.url, cfg.notify)
        d = threading.Thread(target=deliverer.run, args=(stop,), name="notifications", daemon=True)
        d.start()
        threads.append(d)
    try:
        if api:
            import uvicorn
            from api.app import create_app
            app = create_app(cfg.database.url, pool_max=cfg.database.pool_max, mqtt=cfg.mqtt, case_manager=cases,
                             inspections=planner)
            server = uvicorn.Server(uvicorn.Config(app, host=cfg.api.host, port=cfg.api.port,
                                                   log_level="warning", access_log=False))
            log.info("API listening on http://%s:%d", cfg.api.host, cfg.api.port)
            watcher = threading.Thread(target=lambda: (stop.wait(), setattr(server, "should_exit", True)),
                                       daemon=True)
            watcher.start()
            server.run()  # installs its own SIGINT/SIGTERM handlers and returns on either
            stop.set()
        else:
            stop.wait()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        if pool is not None:
            pool.close()
    log.info("stopped")
    return 0
