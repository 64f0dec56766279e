"""What is not a sample, as data: silence, agent loss, SNMP states and traps (alerting/data/events.toml).

Loaded once and checked field by field, so a wrong rule stops start-up with the file and field named.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerting.policies import SEVERITIES, PolicyError

DEFAULT_FILE = Path(__file__).parent / "data" / "events.toml"


@dataclass(frozen=True)
class TrapRule:
    name: str
    alarm: bool = True
    severity: str | None = None  # None: the severity the agent gave the trap
    per: str | None = None
    cleared_by: str | None = None
    hold_s: float = 3600.0
    reboot: bool = False


@dataclass(frozen=True)
class SnmpStateRule:
    severity: str
    after_s: float
    title: str


@dataclass(frozen=True)
class EventRules:
    silence_intervals: float = 5.0
    silence_after_s: float = 600.0
    silence_severity: str = "critical"
    agent_offline_severity: str = "critical"
    snmp_states: dict[str, SnmpStateRule] = field(default_factory=dict)
    traps: dict[str, TrapRule] = field(default_factory=dict)

    def trap(self, name: str | None) -> TrapRule:
        """The rule for a trap by name; unnamed or unknown traps follow `traps.default`."""
        if name and name in self.traps:
            return self.traps[name]
        return self.traps.get("default", TrapRule("default"))

    def clears(self, name: str) -> list[TrapRule]:
        """The rules whose alarms a trap of this name clears (link_up clears link_down)."""
        return [r for r in self.traps.values() if r.cleared_by == name]


_TRAP_FIELDS = {"alarm": bool, "severity": str, "per": str, "cleared_by": str, "hold_s": (int, float),
                "reboot": bool}


def _get(table: dict[str, Any], key: str, kind: Any, where: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise PolicyError(f"{where}.{key}: wrong type {type(value).__name__}")
    if key == "severity" and value not in SEVERITIES:
        raise PolicyError(f"{where}.severity: must be one of {', '.join(SEVERITIES)}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise PolicyError(f"{where}.{key}: must be ≥ 0, got {value}")
    return value


def load_event_rules(path: Path | str = DEFAULT_FILE) -> EventRules:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{path}: {exc}") from None
    known = {"silence", "agent_offline", "snmp_state", "traps"}
    for section in data:
        if section not in known:
            raise PolicyError(f"{path}: {section}: unknown section (known: {', '.join(sorted(known))})")
    silence = data.get("silence", {})
    offline = data.get("agent_offline", {})
    states = {}
    for state, table in data.get("snmp_state", {}).items():
        where = f"{path}: snmp_state.{state}"
        if state not in ("no_response", "auth_failure", "error"):
            raise PolicyError(f"{where}: unknown state (known: no_response, auth_failure, error)")
        states[state] = SnmpStateRule(_get(table, "severity", str, where, "warning"),
                                      float(_get(table, "after_s", (int, float), where, 0)),
                                      _get(table, "title", str, where, f"SNMP {state}"))
    traps = {}
    for name, table in data.get("traps", {}).items():
        where = f"{path}: traps.{name}"
        for key in table:
            if key not in _TRAP_FIELDS:
                raise PolicyError(f"{where}.{key}: unknown field (known: {', '.join(_TRAP_FIELDS)})")
        traps[name] = TrapRule(name, **{k: (float(_get(table, k, t, where, None)) if k == "hold_s"
                                            else _get(table, k, t, where, None))
                                        for k, t in _TRAP_FIELDS.items() if k in table})
    for rule in traps.values():
        if rule.cleared_by and rule.cleared_by not in traps:
            raise PolicyError(f"{path}: traps.{rule.name}.cleared_by: no rule named {rule.cleared_by!r}")
    return EventRules(
        silence_intervals=float(_get(silence, "intervals", (int, float), f"{path}: silence", 5)),
        silence_after_s=float(_get(silence, "after_s", (int, float), f"{path}: silence", 600)),
        silence_severity=_get(silence, "severity", str, f"{path}: silence", "critical"),
        agent_offline_severity=_get(offline, "severity", str, f"{path}: agent_offline", "critical"),
        snmp_states=states, traps=traps)
