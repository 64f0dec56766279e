"""SLA policies and the clocks they run on a case (alerting/data/sla.toml).

A case has three clocks — response, on site, resolution — each a budget of working time of the
contract's calendar, counted from the case's opening, stopped while the case waits on the customer.
Everything here is a pure function of datetimes, so tests move a controlled clock.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from alerting.calendar import ALWAYS, Calendar, advance, elapsed, parse_calendar
from alerting.policies import PolicyError

DEFAULT_FILE = Path(__file__).parent / "data" / "sla.toml"
SEVERITIES = ("P1", "P2", "P3", "P4")
CLOCKS = ("response", "onsite", "resolve")
ROLES = ("assignee", "service_desk", "manager", "executive", "customer", "engineer")


@dataclass(frozen=True)
class Budget:
    """Working hours per clock for one severity; None: as agreed (no clock)."""

    response_h: float | None
    onsite_h: float | None = None
    resolve_h: float | None = None

    def hours(self, clock: str) -> float | None:
        return getattr(self, f"{clock}_h")


@dataclass(frozen=True)
class Policy:
    name: str
    calendar: str
    budgets: dict[str, Budget]


@dataclass(frozen=True)
class EscalationLevel:
    at: float  # share of the clock's budget
    notify: tuple[str, ...]


@dataclass(frozen=True)
class SlaRules:
    calendars: dict[str, Calendar]
    policies: dict[str, Policy]
    levels: tuple[EscalationLevel, ...]
    on_open: dict[str, tuple[str, ...]]
    on_severity_changed: tuple[str, ...]
    on_resolved: tuple[str, ...]

    def policy(self, name: str) -> Policy:
        try:
            return self.policies[name]
        except KeyError:
            raise PolicyError(f"unknown SLA policy {name!r} (known: {', '.join(sorted(self.policies))})") from None

    def calendar(self, name: str) -> Calendar:
        try:
            return self.calendars[name]
        except KeyError:
            raise PolicyError(f"unknown support calendar {name!r} (known: {', '.join(sorted(self.calendars))})") from None


def _roles(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or any(r not in ROLES for r in value):
        raise PolicyError(f"{where}: expected a list of roles from {', '.join(ROLES)}, got {value!r}")
    return tuple(value)


def _hours(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise PolicyError(f"{where}: expected a positive number of hours, got {value!r}")
    return float(value)


def parse_budgets(table: dict[str, Any], where: str, base: dict[str, Budget] | None = None) -> dict[str, Budget]:
    """Budgets per severity; with `base`, a partial override of it (a contract's sla_overrides)."""
    out = dict(base or {})
    for sev, t in table.items():
        if sev not in SEVERITIES or not isinstance(t, dict):
            raise PolicyError(f"{where}.{sev}: expected a table under P1 … P4")
        unknown = set(t) - {f"{c}_h" for c in CLOCKS}
        if unknown:
            raise PolicyError(f"{where}.{sev}: unknown field {sorted(unknown)[0]!r} (response_h, onsite_h, resolve_h)")
        held = out.get(sev, Budget(None))
        merged = {c: (_hours(t[f"{c}_h"], f"{where}.{sev}.{c}_h") if f"{c}_h" in t else held.hours(c)) for c in CLOCKS}
        out[sev] = Budget(merged["response"], merged["onsite"], merged["resolve"])
    return out


def load_rules(path: Path | str = DEFAULT_FILE) -> SlaRules:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{path}: {exc}") from None
    calendars = {"24x7": ALWAYS}
    for name, t in data.get("calendars", {}).items():
        where = f"{path.name}: calendars.{name}"
        try:
            calendars[name] = Calendar(name, always=True) if t.get("always") else parse_calendar(name, t, where)
        except ValueError as exc:
            raise PolicyError(str(exc)) from None
    policies = {}
    for name, t in data.get("policies", {}).items():
        where = f"{path.name}: policies.{name}"
        cal = t.get("calendar", "24x7")
        if cal not in calendars:
            raise PolicyError(f"{where}.calendar: unknown calendar {cal!r}")
        budgets = parse_budgets({k: v for k, v in t.items() if k != "calendar"}, where)
        missing = [s for s in SEVERITIES if s not in budgets]
        if missing:
            raise PolicyError(f"{where}: no times for {missing[0]}")
        policies[name] = Policy(name, cal, budgets)
    if "standard" not in policies:
        raise PolicyError(f"{path.name}: a policy named 'standard' is needed (customers without a contract)")
    esc = data.get("escalation", {})
    levels = []
    for i, lv in enumerate(esc.get("levels", [])):
        at = lv.get("at")
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not 0 < at <= 2:
            raise PolicyError(f"{path.name}: escalation.levels[{i}].at: expected a share in (0, 2], got {at!r}")
        levels.append(EscalationLevel(float(at), _roles(lv.get("notify", []), f"escalation.levels[{i}].notify")))
    on_open = {s: _roles(v, f"escalation.on_open.{s}") for s, v in esc.get("on_open", {}).items()}
    return SlaRules(calendars, policies, tuple(sorted(levels, key=lambda lv: lv.at)), on_open,
                    _roles(esc.get("on_severity_changed", []), "escalation.on_severity_changed"),
                    _roles(esc.get("on_resolved", []), "escalation.on_resolved"))


@lru_cache(maxsize=1)
def rules() -> SlaRules:
    return load_rules()


# ---------------------------------------------------------------- the clocks of one case


@dataclass
class ClockState:
    """What the clocks need to know of a case."""

    severity: str
    opened_at: datetime
    calendar: Calendar
    budgets: dict[str, Budget]
    paused_s: float = 0.0                 # working seconds spent waiting, closed pauses
    paused_at: datetime | None = None     # waiting on the customer since
    met: dict[str, datetime | None] = field(default_factory=dict)  # clock → when it was met

    def budget_s(self, clock: str) -> float | None:
        h = self.budgets[self.severity].hours(clock)
        return None if h is None else h * 3600.0

    def paused_total(self, now: datetime) -> float:
        held = elapsed(self.calendar, self.paused_at, now) if self.paused_at is not None and now > self.paused_at else 0.0
        return self.paused_s + held

    def due(self, clock: str) -> datetime | None:
        """When the clock runs out, counting closed pauses (an open pause moves it on resume)."""
        b = self.budget_s(clock)
        return None if b is None else advance(self.calendar, self.opened_at, b + self.paused_s)

    def used(self, clock: str, now: datetime) -> float | None:
        """Share of the budget used at `now` (or when met): 1.0 is the deadline."""
        b = self.budget_s(clock)
        if b is None:
            return None
        until = self.met.get(clock) or now
        work = elapsed(self.calendar, self.opened_at, until) - self.paused_total(until)
        return max(0.0, work) / b

    def left_s(self, clock: str, now: datetime) -> float | None:
        """Working seconds left (negative: overdue by that much); None without a clock or when met."""
        b = self.budget_s(clock)
        if b is None or self.met.get(clock) is not None:
            return None
        work = elapsed(self.calendar, self.opened_at, now) - self.paused_total(now)
        return b - max(0.0, work)

    def breached(self, clock: str, now: datetime) -> bool:
        u = self.used(clock, now)
        return u is not None and u > 1.0


def clock_summary(state: ClockState, now: datetime) -> dict[str, dict[str, Any]]:
    """Per clock: due, met_at, seconds left, share used, breached: what the API shows."""
    out = {}
    for clock in CLOCKS:
        if state.budget_s(clock) is None:
            out[clock] = {"due": None, "met_at": None, "left_s": None, "used": None, "breached": False,
                          "paused": False}
            continue
        used = state.used(clock, now)
        out[clock] = {"due": state.due(clock), "met_at": state.met.get(clock), "left_s": state.left_s(clock, now),
                      "used": round(used, 4) if used is not None else None, "breached": state.breached(clock, now),
                      "paused": state.paused_at is not None and state.met.get(clock) is None}
    return out
