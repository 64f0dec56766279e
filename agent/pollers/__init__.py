"""Pollers, registered in one table: each turns a config section into a source of points."""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.config import AgentConfig
from agent.pollers.base import Poller

#: name → factory. A poller whose section is empty or disabled returns None.
REGISTRY: dict[str, Callable[[AgentConfig], Poller | None]] = {}


def _host(config: AgentConfig) -> Poller | None:
    if not config.host.enabled:
        return None
    from agent.pollers.host import HostProbe
    return HostProbe(config.host)


def _simulate(config: AgentConfig) -> Poller | None:
    if not config.simulate.devices:
        return None
    from agent.pollers.simulated import Simulator
    return Simulator(config.simulate.devices, started=time.time())


def _snmp(config: AgentConfig) -> Poller | None:
    if not config.snmp.targets and not config.snmp.trap_port:
        return None
    from agent.snmp.poller import SnmpPoller  # pysnmp is imported only when SNMP is configured
    return SnmpPoller(config.snmp)


REGISTRY.update(host=_host, simulate=_simulate, snmp=_snmp)


def build(config: AgentConfig) -> list[Poller]:
    """Every poller the configuration asks for, each validated now so bad config fails at start."""
    return [p for factory in REGISTRY.values() if (p := factory(config)) is not None]
