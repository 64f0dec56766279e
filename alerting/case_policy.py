"""How alarms become cases, as data (alerting/data/cases.toml): severity, problem, lifecycle, site outages.

Checked field by field at start, so a wrong rule stops the server with the file and field named.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from alerting.policies import SEVERITIES as ALARM_SEVERITIES
from alerting.policies import PolicyError
from alerting.sla import SEVERITIES

DEFAULT_FILE = Path(__file__).parent / "data" / "cases.toml"
CRITICALITIES = ("high", "normal", "low")
SERIES_DETECTORS = ("threshold", "trend", "flatline", "rate", "flap", "baseline")


@dataclass(frozen=True)
class DetectorRule:
    open: bool = True
    min_severity: str = "info"


@dataclass(frozen=True)
class CasePolicy:
    default_criticality: str
    kind_criticality: dict[str, str]
    priority: dict[str, dict[str, str]]
    problems: dict[str, str]
    detectors: dict[str, DetectorRule]
    recovered_hold_s: float
    auto_close: bool
    reopen_within_s: float
    callback_after_s: float
    callback_after_auto_close: bool
    site_severity: str
    site_min_devices: int
    site_min_share: float
    site_correlated: tuple[str, ...]
    group_by_device: bool = True

    def criticality(self, kind: str, attrs: dict[str, Any] | None = None) -> str:
        given = (attrs or {}).get("criticality")
        if given in CRITICALITIES:
            return given
        return self.kind_criticality.get(kind, self.default_criticality)

    def severity(self, alarm_severity: str, criticality: str) -> str:
        return self.priority[criticality][alarm_severity]

    def opens(self, detector: str, alarm_severity: str) -> bool:
        rule = self.detectors.get(detector, DetectorRule())
        return rule.open and ALARM_SEVERITIES.index(alarm_severity) >= ALARM_SEVERITIES.index(rule.min_severity)

    def problem(self, detector: str, series: str) -> str:
        """One case per device and problem: a series for series detectors, else a named problem."""
        if detector in self.problems:
            return self.problems[detector]
        return series or detector


def _num(t: dict[str, Any], key: str, default: float, where: str, lo: float = 0.0) -> float:
    v = t.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < lo:
        raise PolicyError(f"{where}.{key}: expected a number ≥ {lo:g}, got {v!r}")
    return float(v)


def load_case_policy(path: Path | str = DEFAULT_FILE) -> CasePolicy:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{path}: {exc}") from None
    w = path.name
    crit = data.get("criticality", {})
    default = crit.get("default", "normal")
    kinds = crit.get("kinds", {})
    for name, c in [("default", default), *kinds.items()]:
        if c not in CRITICALITIES:
            raise PolicyError(f"{w}: criticality {name} = {c!r}: expected high, normal or low")
    priority = data.get("priority", {})
    for c in CRITICALITIES:
        row = priority.get(c)
        if not isinstance(row, dict):
            raise PolicyError(f"{w}: [priority.{c}] is missing")
        for s in ALARM_SEVERITIES:
            if row.get(s) not in SEVERITIES:
                raise PolicyError(f"{w}: priority.{c}.{s}: expected P1 … P4, got {row.get(s)!r}")
    detectors = {}
    for name, t in data.get("detectors", {}).items():
        ms = t.get("min_severity", "info")
        if ms not in ALARM_SEVERITIES or not isinstance(t.get("open", True), bool):
            raise PolicyError(f"{w}: detectors.{name}: open is true/false, min_severity info/warning/critical")
        detectors[name] = DetectorRule(t.get("open", True), ms)
    lc = data.get("lifecycle", {})
    site = data.get("site_outage", {})
    if site.get("severity", "P1") not in SEVERITIES:
        raise PolicyError(f"{w}: site_outage.severity: expected P1 … P4")
    share = _num(site, "min_share", 0.5, f"{w}: site_outage")
    if share > 1:
        raise PolicyError(f"{w}: site_outage.min_share: a share between 0 and 1")
    return CasePolicy(
        default, dict(kinds), {c: dict(priority[c]) for c in CRITICALITIES}, dict(data.get("problems", {})),
        detectors, _num(lc, "recovered_hold_s", 3600, f"{w}: lifecycle"), bool(lc.get("auto_close", True)),
        _num(lc, "reopen_within_s", 86400, f"{w}: lifecycle"), _num(lc, "callback_after_s", 172800, f"{w}: lifecycle"),
        bool(lc.get("callback_after_auto_close", False)), site.get("severity", "P1"),
        int(_num(site, "min_devices", 3, f"{w}: site_outage", 1)), share, tuple(site.get("correlated", ["reachability"])),
        bool(lc.get("group_by_device", True)))


@lru_cache(maxsize=1)
def case_policy() -> CasePolicy:
    return load_case_policy()
