"""``fleetcare agent --config FILE``: load and check the configuration, then run (polling starts at
once; the broker is waited for in the background)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from agent import config as agent_config
from agent.pollers import build
from agent.runner import Agent
from agent.settings import SettingsError

log = logging.getLogger("agent")


def run(config_path: str | Path | None) -> int:
    """Run until SIGINT/SIGTERM; returns the process exit code."""
    try:
        cfg = agent_config.load(config_path)
        pollers = build(cfg)
    except (SettingsError, ValueError) as exc:
        log.error("configuration error: %s", exc)
        return 2
    if not pollers:
        log.error("configuration error: nothing to watch (host.enabled = false and no simulated devices)")
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    agent = Agent(cfg, pollers)
    log.info("agent %s (%s/%s) watching %d device(s) every %.0f s",
             cfg.agent.id, cfg.agent.customer, cfg.agent.site,
             sum(len(p.devices()) for p in pollers), cfg.agent.interval)
    try:
        agent.run(stop)
    except OSError as exc:  # e.g. the trap port is taken or needs privileges
        log.error("cannot run: %s", exc)
        return 2
    return 0
