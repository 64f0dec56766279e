"""``fleetcare agent --config FILE``: load and check the configuration, then run (polling starts at
once; the broker is waited for in the background)."""

from __future__ import annotations

import logging
import signal
import sqlite3
import sys
import threading
from pathlib import Path

from agent import config as agent_config
from agent.pollers import build
from agent.runner import Agent
from agent.config import AgentConfig
from agent.settings import SettingsError
from agent.spool import DiskSpool, MemorySpool

log = logging.getLogger("agent")


def open_spool(cfg: AgentConfig) -> DiskSpool | MemorySpool:
    if not cfg.spool.disk:
        return MemorySpool()
    return DiskSpool(cfg.spool_path, max_bytes=int(cfg.spool.max_mb * 2**20),
                     max_age_s=cfg.spool.max_age_hours * 3600, backlog_rate=cfg.spool.backlog_rate)


def run(config_path: str | Path | None) -> int:
    """Run until SIGINT/SIGTERM; returns the process exit code."""
    # pysnmp imports the MIB compiler pysmi whenever it is installed (test tools bring it) and with
    # it some 230 modules, ~10 MB; the agent reads numeric OIDs only and never compiles a MIB.
    sys.modules.setdefault("pysmi", None)  # type: ignore[arg-type]
    try:
        cfg = agent_config.load(config_path)
        pollers = build(cfg)
    except (SettingsError, ValueError) as exc:
        log.error("configuration error: %s", exc)
        return 2
    if not pollers:
        log.error("configuration error: nothing to watch (host.enabled = false and no simulated devices)")
        return 2
    from agent.diagnostics import LOG_RING
    logging.getLogger().addHandler(LOG_RING)  # the log_tail diagnostic reads it
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        spool = open_spool(cfg)
    except (OSError, sqlite3.Error) as exc:
        log.error("configuration error: spool %s: %s (set agent.data_dir or spool.path to a writable place)",
                  cfg.spool_path, exc)
        return 2
    agent = Agent(cfg, pollers, spool=spool)
    log.info("agent %s (%s/%s) watching %d device(s) every %.0f s",
             cfg.agent.id, cfg.agent.customer, cfg.agent.site,
             sum(len(p.devices()) for p in pollers), cfg.agent.interval)
    try:
        agent.run(stop)
    except OSError as exc:  # e.g. the trap port is taken or needs privileges
        log.error("cannot run: %s", exc)
        return 2
    return 0
