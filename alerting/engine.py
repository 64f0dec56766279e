"""The detection engine: every device's samples and events in, explained alarm changes out.

Pure and in memory (no database): the worker (alerting/worker.py) feeds it what the collector
stored and persists what it finds. Everything runs in event time — the timestamps the agents put on
their samples — so a fleet replayed faster than real time is judged exactly as a live one.

What it watches:
- each series with the detectors its policy names (alerting/policies.py), built on first sight;
- silence: a device whose agent still reports but which itself has sent nothing for a while;
- events the agent forwards: traps (by rule, alerting/event_rules.py) and reboots.
Agent loss and SNMP states are wall-clock facts kept in the database; alerting/liveness.py turns
those into alarms.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent import wire
from alerting.detectors import CLEARED, RAISED, Alarm, SeriesMonitor, duration_words, is_active
from alerting.event_rules import EventRules, TrapRule
from alerting.policies import Policies

REBOOT_DEDUP_S = 900.0  # a reboot event and the uptime drop that shows the same reboot are one finding


@dataclass(frozen=True)
class DeviceContext:
    """What the engine needs to know of a device to choose its policies and word its alarms."""

    device_id: int
    agent_id: int
    key: str
    name: str
    kind: str
    customer: str
    site: str
    interval: float  # seconds between the device's samples


@dataclass(frozen=True)
class Finding:
    """An alarm change for a device (or, device_id None, for a whole agent)."""

    alarm: Alarm
    agent_id: int
    device_id: int | None
    instant: bool = False  # something that happened (a reboot): stored raised and cleared at once


@dataclass
class _DeviceState:
    ctx: DeviceContext
    monitors: dict[str, SeriesMonitor] = field(default_factory=dict)
    last_ts: float | None = None
    silent: bool = False
    last_reboot: float = -1e18
    traps: dict[str, tuple[TrapRule, float]] = field(default_factory=dict)  # alarm series → rule, last seen


class DetectionEngine:
    """Per-device state and the rules that turn observations into findings."""

    def __init__(self, policies: Policies, rules: EventRules) -> None:
        self.policies = policies
        self.rules = rules
        self.devices: dict[int, _DeviceState] = {}
        self.agent_ts: dict[int, float] = {}  # agent → newest sample time it sent

    # ------------------------------------------------------------ devices

    def knows(self, device_id: int) -> bool:
        return device_id in self.devices

    def add_device(self, ctx: DeviceContext) -> None:
        """Meet a device (or learn its new kind or interval: its monitors are rebuilt on change)."""
        held = self.devices.get(ctx.device_id)
        if held is not None and held.ctx == ctx:
            return
        state = _DeviceState(ctx)
        if held is not None and (held.ctx.kind, held.ctx.customer, held.ctx.site) == (ctx.kind, ctx.customer,
                                                                                       ctx.site):
            state.monitors = held.monitors  # only the interval or the name changed: keep what was learned
        if held is not None:
            state.last_ts, state.silent, state.last_reboot, state.traps = (held.last_ts, held.silent,
                                                                           held.last_reboot, held.traps)
        self.devices[ctx.device_id] = state

    def _monitor(self, state: _DeviceState, series: str) -> SeriesMonitor:
        monitor = state.monitors.get(series)
        if monitor is None:
            c = state.ctx
            policy = self.policies.policy_for(series, c.kind, c.customer, c.site, c.key)
            monitor = state.monitors[series] = SeriesMonitor(policy, series)
        return monitor

    def active_series_alarms(self, device_id: int) -> set[tuple[str, str]]:
        """(series, detector) of every series detector holding a raised alarm on the device now."""
        state = self.devices.get(device_id)
        if state is None:
            return set()
        return {(series, d.name) for series, m in state.monitors.items() for d in m.detectors if is_active(d)}

    # ------------------------------------------------------------ samples

    def samples(self, device_id: int, points: Iterable[tuple[float, str, float]]) -> list[Finding]:
        """One device's samples (ts, series key, value), in any order: they are judged in time order;
        a sample not newer than its series' last is ignored (a redelivery)."""
        state = self.devices[device_id]
        ctx = state.ctx
        out: list[Finding] = []
        newest = state.last_ts
        for ts, series, value in sorted(points):
            for alarm in self._monitor(state, series).update(ts, value):
                if alarm.detector == "reboot":
                    if ts - state.last_reboot < REBOOT_DEDUP_S:
                        state.last_reboot = ts
                        continue
                    state.last_reboot = ts
                    out.append(Finding(alarm, ctx.agent_id, device_id, instant=True))
                else:
                    out.append(Finding(alarm, ctx.agent_id, device_id))
            if newest is None or ts > newest:
                newest = ts
        if newest is not None and (state.last_ts is None or newest > state.last_ts):
            state.last_ts = newest
            if newest > self.agent_ts.get(ctx.agent_id, -1e18):
                self.agent_ts[ctx.agent_id] = newest
        if state.silent and newest is not None:
            state.silent = False
            out.append(Finding(Alarm("silence", self.rules.silence_severity, CLEARED, "", state.last_ts,
                                     f"{ctx.name} reporting again"), ctx.agent_id, device_id))
        return out

    def silence_check(self, agent_id: int) -> list[Finding]:
        """Devices of this agent that have sent nothing for a while although the agent reports."""
        now = self.agent_ts.get(agent_id)
        if now is None:
            return []
        out = []
        r = self.rules
        for device_id, state in self.devices.items():
            c = state.ctx
            if c.agent_id != agent_id or state.silent or state.last_ts is None:
                continue
            gap = now - state.last_ts
            if gap >= max(r.silence_after_s, r.silence_intervals * c.interval):
                state.silent = True
                last = datetime.fromtimestamp(state.last_ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
                out.append(Finding(Alarm(
                    "silence", r.silence_severity, RAISED, "", now,
                    f"{c.name} silent: no data for {duration_words(gap)} (last sample {last}) while its "
                    f"agent still reports", {"last_sample": state.last_ts, "agent_newest": now,
                                             "interval_s": c.interval, "gap_s": gap}), agent_id, device_id))
        return out

    # ------------------------------------------------------------ events

    def event(self, device_id: int, event: wire.Event) -> list[Finding]:
        """A device event the agent forwarded: traps by rule, reboots as instant findings."""
        state = self.devices[device_id]
        ctx = state.ctx
        if event.kind == "reboot":
            return self._reboot(state, event.ts, event.text, dict(event.detail))
        if event.kind != "trap":
            return []  # state changes: alerting/liveness.py reads the device's status instead
        name = event.detail.get("trap")
        rule = self.rules.trap(name if isinstance(name, str) else None)
        out: list[Finding] = []
        for cleared in self.rules.clears(str(name)):
            key = self._trap_series(cleared, event.detail)
            if key in state.traps:
                del state.traps[key]
                out.append(Finding(Alarm("trap", cleared.severity or "warning", CLEARED, key, event.ts,
                                         f"{ctx.name}: {event.text}", dict(event.detail)), ctx.agent_id, device_id))
        if rule.reboot:
            return out + self._reboot(state, event.ts, event.text, dict(event.detail))
        severity = rule.severity or event.severity
        if not rule.alarm or (rule.severity is None and severity == "info"):
            return out
        key = self._trap_series(rule, event.detail)
        state.traps[key] = (rule, event.ts)
        evidence = {"trap": name, **{k: v for k, v in event.detail.items() if k != "trap"}}
        out.append(Finding(Alarm("trap", severity, RAISED, key, event.ts, f"{ctx.name}: {event.text}", evidence),
                           ctx.agent_id, device_id))
        return out

    @staticmethod
    def _trap_series(rule: TrapRule, detail: dict[str, Any]) -> str:
        name = str(detail.get("trap") or detail.get("trap_oid") or "trap") if rule.name == "default" else rule.name
        if rule.per and detail.get(rule.per) is not None:
            return f"{name}{{{rule.per}={detail[rule.per]}}}"
        return name

    def _reboot(self, state: _DeviceState, ts: float, text: str, detail: dict[str, Any]) -> list[Finding]:
        if ts - state.last_reboot < REBOOT_DEDUP_S:
            return []
        state.last_reboot = ts
        c = state.ctx
        return [Finding(Alarm("reboot", "info", RAISED, "", ts, text or f"{c.name} restarted", detail),
                        c.agent_id, c.device_id, instant=True)]

    def expire_traps(self, device_id: int, now: float) -> list[Finding]:
        """Trap alarms nothing cleared, past their hold without a repeat."""
        state = self.devices.get(device_id)
        if state is None:
            return []
        out = []
        for key, (rule, seen) in list(state.traps.items()):
            if now - seen >= rule.hold_s:
                del state.traps[key]
                out.append(Finding(Alarm("trap", rule.severity or "warning", CLEARED, key, now,
                                         f"{state.ctx.name}: no repeat of {key} for {duration_words(now - seen)}"),
                                   state.ctx.agent_id, device_id))
        return out

    def restore_trap(self, device_id: int, series: str, seen: float) -> None:
        """After a restart: an open trap alarm from the database, so its hold and clearing still apply."""
        state = self.devices.get(device_id)
        if state is None:
            return
        base = series.split("{")[0]
        state.traps[series] = (self.rules.traps.get(base) or self.rules.trap(None), seen)
