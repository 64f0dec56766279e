"""Streaming detectors, evaluated in event time: each watches one series and turns its samples into
explained alarms.

Every detector has `update(ts, value) -> list[Alarm]` (ts in epoch seconds, samples in time order; a
sample not newer than the last is ignored) and keeps its own state. `build_detectors(policy, series)`
makes the detectors a policy names; `SeriesMonitor` runs them together. Missing data (a device that
stops reporting) is the server's business, not a detector's: a detector only sees samples that came.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent.wire import metric_labels
from alerting.baseline import BaselineDetector, BaselineParams
from alerting.policies import DEFAULTS, MetricPolicy

RAISED, CLEARED, SEVERITY_CHANGED = "raised", "cleared", "severity_changed"
LEVELS = ("info", "warning", "critical")
HOUR = 3600.0


@dataclass(frozen=True)
class Alarm:
    """A detector's finding: which detector, how bad, on what evidence, in words."""

    detector: str
    severity: str  # info, warning, critical
    state: str  # raised, cleared, severity_changed
    series: str  # the series key, e.g. disk_used_percent{mount=/var}
    ts: float  # event time of the sample that decided it
    text: str
    evidence: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- words


def duration_words(seconds: float) -> str:
    """90 → '1.5 min', 7200 → '2 h', 300000 → '3.5 days': the unit an engineer would say."""
    s = abs(seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{_short(s / 60)} min"
    if s < 48 * HOUR:
        return f"{_short(s / HOUR)} h"
    return f"{_short(s / 86400)} days"


def _short(x: float) -> str:
    return f"{x:.0f}" if x >= 10 or abs(x - round(x)) < 0.05 else f"{x:.1f}"


def _num(x: float) -> str:
    if x == int(x) and abs(x) < 1e9:
        return str(int(x))
    return f"{x:.3g}" if abs(x) < 1 else f"{x:.1f}"


def _with_unit(x: float, unit: str) -> str:
    if not unit:
        return _num(x)
    return f"{_num(x)}{unit}" if unit.startswith("/") else f"{_num(x)} {unit}"


def series_words(title: str, series: str) -> str:
    """'disk' + disk_used_percent{mount=/var} → 'disk /var'."""
    labels = metric_labels(series)
    return " ".join([title, *labels.values()]) if labels else title


class _Base:
    name = "detector"

    def __init__(self, series: str, title: str = "", unit: str = "", value_words: dict[str, str] | None = None):
        self.series = series
        self.title = series_words(title or series.split("{")[0], series)
        self.unit = unit
        self.value_words = {float(k): v for k, v in (value_words or {}).items()}
        self.last_ts: float | None = None

    def _fresh(self, ts: float) -> bool:
        if self.last_ts is not None and ts <= self.last_ts:
            return False  # late or repeated sample: event time only moves forward
        self.last_ts = ts
        return True

    def _value(self, x: float) -> str:
        words = self.value_words.get(float(x))
        return words if words is not None else _with_unit(x, self.unit)

    def _alarm(self, severity: str, state: str, ts: float, text: str, **evidence: Any) -> Alarm:
        return Alarm(self.name, severity, state, self.series, ts, text, evidence)


# ---------------------------------------------------------------- threshold


class ThresholdDetector(_Base):
    """Warning/critical levels with hysteresis and a minimum duration: a level is raised once it has
    held for `min_duration_s`; it is left only when the value is back past the level by `hysteresis`,
    so a value hovering at the line raises once and does not flap."""

    name = "threshold"

    def __init__(self, series: str, *, warning: float | None = None, critical: float | None = None,
                 direction: str = "above", hysteresis: float = 0.0, min_duration_s: float = 0.0,
                 enabled: bool = True, **words: Any) -> None:
        super().__init__(series, **words)
        self.sign = 1.0 if direction == "above" else -1.0
        self.direction = direction
        self.limits = {s: v for s, v in (("warning", warning), ("critical", critical)) if v is not None}
        self.hysteresis = hysteresis
        self.min_duration = min_duration_s
        self.current: str | None = None
        self.since: dict[str, float] = {}  # level → when the value first reached it (continuously)
        self.values: deque[tuple[float, float]] = deque(maxlen=20)

    def _target(self, x: float) -> list[str]:
        """Levels the value is at now: reached, or held (within the hysteresis band of the current one)."""
        s = self.sign
        held = LEVELS.index(self.current) if self.current else -1
        out = []
        for level, limit in self.limits.items():
            if s * x >= s * limit or (LEVELS.index(level) <= held and s * x > s * limit - self.hysteresis):
                out.append(level)
        return out

    def _limits_words(self) -> str:
        if self.value_words:  # a state (on battery, no response): the time it must last is what matters
            return ", ".join(f"{lvl} after {duration_words(self.min_duration)}" for lvl in self.limits)
        return ", ".join(f"{lvl} {'at' if self.direction == 'above' else 'below'} {self._value(v)}"
                         for lvl, v in self.limits.items())

    def update(self, ts: float, value: float) -> list[Alarm]:
        if not self._fresh(ts):
            return []
        x = float(value)
        self.values.append((ts, x))
        at = self._target(x)
        for level in list(self.since):
            if level not in at:
                del self.since[level]
        for level in at:
            self.since.setdefault(level, ts)
        confirmed = [lvl for lvl in at if ts - self.since[lvl] >= self.min_duration]
        # a held (current) level needs no new confirmation; a higher one does
        if self.current in at and self.current not in confirmed:
            confirmed.append(self.current)
        new = max(confirmed, key=LEVELS.index) if confirmed else None
        if new == self.current:
            return []
        old, self.current = self.current, new
        evidence = {"value": x, "limits": dict(self.limits), "hysteresis": self.hysteresis,
                    "min_duration_s": self.min_duration, "recent": list(self.values)}
        if new is None:
            text = f"{self.title} back to {self._value(x)} (was {old}"
            if not self.value_words:
                text += f"; clears past {self._value(self.limits[old] - self.sign * self.hysteresis)}"
            text += ")"
            return [self._alarm(old, CLEARED, ts, text, **evidence)]
        held = ts - self.since[new]
        evidence["since"] = self.since[new]
        text = f"{self.title} {self._value(x)}"
        if held > 0:
            text += f" for {duration_words(held)}"
        text += f" ({self._limits_words()})"
        state = RAISED if old is None else SEVERITY_CHANGED
        return [self._alarm(new, state, ts, text, **evidence)]


# ---------------------------------------------------------------- trend


def theil_sen(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Robust line through (t, v) points: (slope, intercept) = median pairwise slope, median offset."""
    slopes = []
    n = len(points)
    for i in range(n):
        ti, vi = points[i]
        for j in range(i + 1, n):
            tj, vj = points[j]
            if tj != ti:
                slopes.append((vj - vi) / (tj - ti))
    if not slopes:
        return 0.0, points[-1][1] if points else 0.0
    slope = _median(slopes)
    intercept = _median([v - slope * t for t, v in points])
    return slope, intercept


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


class TrendDetector(_Base):
    """Forecast of when the series reaches `limit`, from a Theil–Sen line over the last `window_h`:
    info long before, warning and critical as the time left shrinks (`*_within_h`); lowered or
    cleared only once the forecast has receded by `clear_factor`, so it does not flap."""

    name = "trend"
    MAX_POINTS = 60  # the window is thinned to this many points for the O(n²) slope

    def __init__(self, series: str, *, limit: float, direction: str = "above", limit_words: str | None = None,
                 window_h: float = 12.0, min_samples: int = 10, min_span_h: float = 2.0,
                 info_within_h: float | None = None, warning_within_h: float | None = None,
                 critical_within_h: float | None = None, clear_factor: float = 1.5, noise_ratio: float = 3.0,
                 eval_every_s: float = 0.0, enabled: bool = True, **words: Any) -> None:
        super().__init__(series, **words)
        self.limit = limit
        self.sign = 1.0 if direction == "above" else -1.0
        self.limit_words = limit_words or f"{'at' if direction == 'above' else 'below'} {self._value(limit)}"
        self.window = window_h * HOUR
        self.min_samples = min_samples
        self.min_span = min(min_span_h * HOUR, self.window)
        self.within = {lvl: h * HOUR for lvl, h in (("info", info_within_h), ("warning", warning_within_h),
                                                    ("critical", critical_within_h)) if h is not None}
        self.clear_factor = clear_factor
        self.noise_ratio = noise_ratio
        self.points: deque[tuple[float, float]] = deque()
        self.current: str | None = None
        # the forecast is O(n²): re-forecast at most every `eval_every_s` of event time (the line
        # over hours of data barely moves in a few minutes), so a fleet's worth of series stays cheap
        self.eval_every = eval_every_s
        self.last_eval = -math.inf

    def _thinned(self) -> list[tuple[float, float]]:
        pts = list(self.points)
        if len(pts) <= self.MAX_POINTS:
            return pts
        step = len(pts) / self.MAX_POINTS
        return [pts[int(i * step)] for i in range(self.MAX_POINTS - 1)] + [pts[-1]]

    def forecast(self, ts: float) -> dict[str, float] | None:
        """Slope (per hour), level now and hours to the limit; None when there is no usable trend."""
        if len(self.points) < self.min_samples or self.points[-1][0] - self.points[0][0] < self.min_span:
            return None
        pts = self._thinned()
        t0 = pts[0][0]
        slope, intercept = theil_sen([(t - t0, v) for t, v in pts])
        level = intercept + slope * (ts - t0)
        span = pts[-1][0] - t0
        residuals = [abs(v - (intercept + slope * (t - t0))) for t, v in pts]
        noise = 1.4826 * _median(residuals)
        rising = abs(slope) * span  # how far the line moved over the window
        result = {"slope_per_h": slope * HOUR, "level": level, "noise": noise, "span_h": span / HOUR}
        if self.sign * (self.limit - level) <= 0:
            result["hours_left"] = 0.0
        elif self.sign * slope <= 0 or rising < self.noise_ratio * noise:
            return result  # level, or moving away from the limit, or lost in the noise: no forecast
        else:
            result["hours_left"] = (self.limit - level) / slope / HOUR
        return result

    def _level_for(self, seconds_left: float, factor: float) -> str | None:
        found = None
        for lvl in LEVELS:
            if lvl in self.within and seconds_left <= self.within[lvl] * factor:
                found = lvl
        return found

    def update(self, ts: float, value: float) -> list[Alarm]:
        if not self._fresh(ts):
            return []
        self.points.append((ts, float(value)))
        while self.points and self.points[0][0] < ts - self.window:
            self.points.popleft()
        if ts - self.last_eval < self.eval_every:
            return []
        self.last_eval = ts
        fc = self.forecast(ts)
        if fc is None:
            return []
        left = fc.get("hours_left", math.inf) * HOUR
        target = self._level_for(left, 1.0)
        if self.current is not None:
            # keep the current level (or one above it) until the forecast has receded past its band
            held = self._level_for(left, self.clear_factor)
            if held is not None and LEVELS.index(held) >= LEVELS.index(self.current):
                held = self.current
            if target is None or LEVELS.index(target) < LEVELS.index(self.current):
                target = max((t for t in (target, held) if t), key=LEVELS.index, default=None)
        if target == self.current:
            return []
        old, self.current = self.current, target
        evidence = {"window_h": self.window / HOUR, "samples": len(self.points), "limit": self.limit,
                    "forecast": fc, "within_h": {k: v / HOUR for k, v in self.within.items()}}
        basis = f"Theil–Sen over the last {duration_words(min(fc['span_h'] * HOUR, self.window))}"
        per, slope = ("day", fc["slope_per_h"] * 24) if self.window >= 48 * HOUR else ("h", fc["slope_per_h"])
        rate = f"{slope:+.3g} {self.unit}/{per}" if self.unit else f"{slope:+.3g}/{per}"
        if target is None:
            if math.isinf(left):
                text = f"{self.title} no longer heading {self.limit_words} (now {rate}, {basis})"
            else:
                text = (f"{self.title} {self.limit_words} receded to about {duration_words(left)} "
                        f"at {rate} ({basis})")
            return [self._alarm(old, CLEARED, ts, text, **evidence)]
        if left <= 0:
            text = f"{self.title} already {self.limit_words} ({self._value(fc['level'])}, {basis})"
        else:
            text = f"{self.title} {self.limit_words} in about {duration_words(left)} at {rate} ({basis})"
        return [self._alarm(target, RAISED if old is None else SEVERITY_CHANGED, ts, text, **evidence)]


# ---------------------------------------------------------------- flatline


class FlatlineDetector(_Base):
    """A series that normally varies, stuck at one value (within `tolerance`) for at least
    `min_samples` samples and `min_duration_s` seconds: a frozen sensor or a hung poller."""

    name = "flatline"

    def __init__(self, series: str, *, min_samples: int = 10, min_duration_s: float = 3600.0,
                 tolerance: float = 0.0, severity: str = "warning", enabled: bool = True, **words: Any) -> None:
        super().__init__(series, **words)
        self.min_samples = min_samples
        self.min_duration = min_duration_s
        self.tolerance = tolerance
        self.severity = severity
        self.run_value: float | None = None
        self.run_start = 0.0
        self.run_count = 0
        self.varied = False  # only a series seen moving can be stuck
        self.active = False

    def update(self, ts: float, value: float) -> list[Alarm]:
        if not self._fresh(ts):
            return []
        x = float(value)
        if self.run_value is not None and abs(x - self.run_value) <= self.tolerance:
            self.run_count += 1
        else:
            out = []
            if self.active:
                self.active = False
                out.append(self._alarm(self.severity, CLEARED, ts,
                                       f"{self.title} moving again: {self._value(x)} after "
                                       f"{duration_words(ts - self.run_start)} at {self._value(self.run_value)}",
                                       value=x, stuck_at=self.run_value, since=self.run_start))
            self.varied = self.run_value is not None
            self.run_value, self.run_start, self.run_count = x, ts, 1
            return out
        held = ts - self.run_start
        if (not self.active and self.varied and self.run_count >= self.min_samples
                and held >= self.min_duration):
            self.active = True
            return [self._alarm(self.severity, RAISED, ts,
                                f"{self.title} stuck at {self._value(self.run_value)} for {duration_words(held)} "
                                f"({self.run_count} samples unchanged; it normally varies)",
                                stuck_at=self.run_value, since=self.run_start, samples=self.run_count,
                                tolerance=self.tolerance)]
        return []


# ---------------------------------------------------------------- rate anomaly


CLEAR_BELOW = 0.5  # share of a rate alarm's min_value the rate must fall below before it clears


class RateDetector(_Base):
    """Deviation from the series' own learned normal (alerting.baseline): an error or discard rate that
    jumps is caught without anyone having set a threshold. Cleared after `quiet_s` back in range and,
    with a `min_value`, below it."""

    name = "rate"

    def __init__(self, series: str, *, severity: str = "warning", min_value: float = 0.0, quiet_s: float = 1800.0,
                 enabled: bool = True, learning_rows: int | None = None, history_rows: int | None = None,
                 threshold: float | None = None, suppress_rows: int | None = None, **words: Any) -> None:
        super().__init__(series, **words)
        given = {"learning_rows": learning_rows, "history_rows": history_rows, "threshold": threshold,
                 "suppress_rows": suppress_rows}
        self.params = BaselineParams(**{k: v for k, v in given.items() if v is not None})
        self.baseline = BaselineDetector(self.params)
        self.severity = severity
        self.min_value = min_value
        self.quiet = quiet_s
        self.active = False
        self.last_anomaly = 0.0
        self.recent: deque[tuple[float, float]] = deque(maxlen=12)

    def _expected(self) -> tuple[float, float] | None:
        window = self.baseline.values
        s = window.sorted
        if not s:
            return None
        k = min(window.trim, (len(s) - 1) // 2)
        return s[k], s[len(s) - 1 - k]

    def update(self, ts: float, value: float) -> list[Alarm]:
        if not self._fresh(ts):
            return []
        x = float(value)
        expected = self._expected()
        score, alarm = self.baseline.update(datetime.fromtimestamp(ts, UTC), x)
        self.recent.append((ts, x))
        anomalous = score >= 0.5 and x >= self.min_value
        if anomalous or (self.active and 0 < self.min_value * CLEAR_BELOW <= x):
            # a raised error rate stays raised until it falls well below min_value (hysteresis), even
            # once the baseline has got used to it: errors the device learned to live with are errors
            self.last_anomaly = ts
        # raised on the first anomalous row worth reporting; the baseline's own alarm flag is not
        # waited for: its suppression (one NAB alarm per anomaly) may fall on rows below min_value
        if not self.active and anomalous:
            self.active = True
            lo, hi = expected if expected else (x, x)
            normal = f"normally {self._value(lo)}" if lo == hi else f"normal range {_num(lo)}–{self._value(hi)}"
            text = f"{self.title} {self._value(x)}, {normal} (learned baseline over {self.baseline.rows - 1} samples)"
            return [self._alarm(self.severity, RAISED, ts, text, value=x, score=score, expected_range=expected,
                                recent=list(self.recent))]
        if self.active and not anomalous and ts - self.last_anomaly >= self.quiet:
            self.active = False
            return [self._alarm(self.severity, CLEARED, ts,
                                f"{self.title} back to normal: {self._value(x)} for {duration_words(ts - self.last_anomaly)}",
                                value=x, score=score, expected_range=expected)]
        return []


# ---------------------------------------------------------------- reboot


class RebootDetector(_Base):
    """uptime_seconds going backwards: the device restarted (an event, raised once, nothing to clear)."""

    name = "reboot"

    def __init__(self, series: str, *, severity: str = "info", enabled: bool = True, **words: Any) -> None:
        super().__init__(series, **words)
        self.severity = severity
        self.last: tuple[float, float] | None = None

    def update(self, ts: float, value: float) -> list[Alarm]:
        if not self._fresh(ts):
            return []
        x = float(value)
        previous, self.last = self.last, (ts, x)
        if previous is None:
            return []
        pts, pv = previous
        if x >= pv - 1.0:  # a second of slack for rounding between readings
            return []
        boot = ts - x
        when = datetime.fromtimestamp(boot, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        text = (f"{self.title} rebooted at about {when} (uptime {duration_words(x)}, "
                f"was {duration_words(pv)} {duration_words(ts - pts)} earlier)")
        return [self._alarm(self.severity, RAISED, ts, text, uptime_s=x, previous_uptime_s=pv,
                            previous_ts=pts, boot_ts=boot)]


# ---------------------------------------------------------------- flapping


class FlapDetector(_Base):
    """A two-state series (a port's oper status, a link) changing state `min_changes` times within
    `window_s`: each change alone is news, their repetition is a fault (a bad cable, a failing
    transceiver, a duplex mismatch). Cleared after `quiet_s` without a change."""

    name = "flap"

    def __init__(self, series: str, *, window_s: float = 3600.0, min_changes: int = 4, quiet_s: float = 3600.0,
                 severity: str = "warning", enabled: bool = True, **words: Any) -> None:
        super().__init__(series, **words)
        self.window = window_s
        self.min_changes = min_changes
        self.quiet = quiet_s
        self.severity = severity
        self.last_value: float | None = None
        self.changes: deque[float] = deque()
        self.active = False

    def update(self, ts: float, value: float) -> list[Alarm]:
        if not self._fresh(ts):
            return []
        x = float(value)
        if self.last_value is not None and x != self.last_value:
            self.changes.append(ts)
        self.last_value = x
        while self.changes and self.changes[0] < ts - self.window:
            self.changes.popleft()
        if not self.active and len(self.changes) >= self.min_changes:
            self.active = True
            span = ts - self.changes[0]
            return [self._alarm(self.severity, RAISED, ts,
                                f"{self.title} flapping: {len(self.changes)} state changes in "
                                f"{duration_words(max(span, 1.0))}, now {self._value(x)}",
                                changes=list(self.changes), window_s=self.window, value=x)]
        last_change = self.changes[-1] if self.changes else None
        if self.active and (last_change is None or ts - last_change >= self.quiet):
            self.active = False
            return [self._alarm(self.severity, CLEARED, ts,
                                f"{self.title} stable again: {self._value(x)}, no change for "
                                f"{duration_words(self.quiet)}", value=x)]
        return []


def is_active(detector: _Base) -> bool:
    """Whether a detector holds a raised alarm now (after replaying history, say)."""
    return bool(getattr(detector, "current", None) or getattr(detector, "active", False))


# ---------------------------------------------------------------- from policies

DETECTOR_CLASSES = {cls.name: cls for cls in
                    (ThresholdDetector, TrendDetector, FlatlineDetector, RateDetector, RebootDetector,
                     FlapDetector)}
assert set(DETECTOR_CLASSES) == set(DEFAULTS)


def build_detectors(policy: MetricPolicy, series: str | None = None) -> list[_Base]:
    """The detectors a policy names, for one series (by default the policy's own metric key)."""
    series = series or policy.metric
    words = {"title": policy.title, "unit": policy.unit, "value_words": policy.value_words}
    return [DETECTOR_CLASSES[name](series, **params, **words) for name, params in policy.detectors.items()
            if params.get("enabled", True)]


class SeriesMonitor:
    """All detectors of one series, fed together."""

    def __init__(self, policy: MetricPolicy, series: str | None = None) -> None:
        self.detectors = build_detectors(policy, series)

    def update(self, ts: float, value: float) -> list[Alarm]:
        if not math.isfinite(value):
            return []
        alarms: list[Alarm] = []
        for detector in self.detectors:
            alarms.extend(detector.update(ts, value))
        return alarms
