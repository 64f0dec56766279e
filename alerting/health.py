"""The health score of a device: 0–100 with a breakdown of which signals cost how many points.

The weights are data (alerting/data/health.toml). `compute` is pure: the worker gathers the
signals (open alarms, recent reboots and repeats, archive facts) and stores each score it decides
as a time series, so a score can always be explained by its breakdown.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from alerting.detectors import duration_words

DEFAULT_FILE = Path(__file__).parent / "data" / "health.toml"
DAY = 86_400.0


@dataclass(frozen=True)
class OpenAlarm:
    detector: str
    severity: str
    series: str
    text: str
    hours_left: float | None = None  # a trend's forecast


@dataclass
class Signals:
    """Everything the score is made of, for one device at one moment (event time `now`)."""

    now: float
    alarms: list[OpenAlarm] = field(default_factory=list)
    reboots: int = 0
    raised: int = 0  # alarms raised in the repeats window (reboots excluded), or cases when there are cases
    repeats_are: str = "problems"
    inspection_due: date | None = None
    warranty_end: date | None = None
    in_service_since: date | None = None


def load_weights(path: Path | str = DEFAULT_FILE) -> dict[str, Any]:
    with open(path, "rb") as f:
        weights = tomllib.load(f)
    for section in ("alarms", "reboots", "repeats", "inspection", "warranty", "age"):
        if section not in weights:
            raise ValueError(f"{path}: section [{section}] missing")
    weights["forecast"] = sorted(weights.get("forecast", []), key=lambda b: b["within_h"])
    return weights


_WEIGHTS: dict[str, Any] | None = None


def weights() -> dict[str, Any]:
    global _WEIGHTS
    if _WEIGHTS is None:
        _WEIGHTS = load_weights()
    return _WEIGHTS


def parse_date(value: Any) -> date | None:
    """An archive date as the device attributes carry it (ISO text), or None."""
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def compute(s: Signals, w: dict[str, Any] | None = None) -> tuple[float, list[dict[str, Any]]]:
    """(score, breakdown): each breakdown entry is {signal, points, text}, largest cost first."""
    w = w or weights()
    parts: list[dict[str, Any]] = []
    today = datetime.fromtimestamp(s.now, UTC).date()

    worst: dict[str, OpenAlarm] = {}
    order = {"info": 0, "warning": 1, "critical": 2}
    for a in s.alarms:
        key = a.series or a.detector
        if key not in worst or order[a.severity] > order[worst[key].severity]:
            worst[key] = a
    alarm_points = 0.0
    for a in sorted(worst.values(), key=lambda a: -order[a.severity]):
        pts = float(w["alarms"].get(a.severity, 0))
        room = w["alarms"]["max"] - alarm_points
        pts = max(0.0, min(pts, room))
        alarm_points += pts
        if pts:
            parts.append({"signal": "alarm", "points": pts, "text": f"{a.severity} alarm: {a.text}"})
    for a in s.alarms:
        if a.detector == "trend" and a.hours_left is not None:
            for band in w["forecast"]:
                if a.hours_left <= band["within_h"]:
                    parts.append({"signal": "forecast", "points": float(band["points"]),
                                  "text": f"forecast: {a.series or 'series'} reaches its limit in about "
                                          f"{duration_words(a.hours_left * 3600)}"})
                    break
    r = w["reboots"]
    if s.reboots > r["free"]:
        pts = min(r["max"], (s.reboots - r["free"]) * r["each"])
        parts.append({"signal": "reboots", "points": float(pts),
                      "text": f"{s.reboots} restarts in {r['window_days']} days"})
    r = w["repeats"]
    if s.raised > r["free"]:
        pts = min(r["max"], (s.raised - r["free"]) * r["each"])
        parts.append({"signal": "repeats", "points": float(pts),
                      "text": f"{s.raised} {s.repeats_are} in {r['window_days']} days"})
    if s.inspection_due is not None and s.inspection_due < today:
        late = (today - s.inspection_due).days
        r = w["inspection"]
        pts = min(r["max"], r["points"] + (late // 7) * r["per_week"])
        parts.append({"signal": "inspection", "points": float(pts),
                      "text": f"inspection overdue by {late} days (due {s.inspection_due.isoformat()})"})
    if s.warranty_end is not None and s.warranty_end < today and w["warranty"]["expired"]:
        parts.append({"signal": "warranty", "points": float(w["warranty"]["expired"]),
                      "text": f"out of warranty since {s.warranty_end.isoformat()}"})
    if s.in_service_since is not None:
        years = (today - s.in_service_since).days / 365.25
        r = w["age"]
        if years > r["free_years"]:
            pts = min(r["max"], int(years - r["free_years"]) * r["per_year"])
            if pts:
                parts.append({"signal": "age", "points": float(pts),
                              "text": f"{years:.0f} years in service"})
    parts.sort(key=lambda p: -p["points"])
    score = max(0.0, 100.0 - sum(p["points"] for p in parts))
    return round(score, 1), parts
