"""The streaming baseline anomaly detector: one metric's rows in time order in, for each row an anomaly
score in [0, 1] and an alarm decision (0/1), decided from that row and the rows before it only.

Pure Python (stdlib only) and cheap: a few sorted sliding windows per metric, about 20 µs a row.

How it decides, and why each piece is there:

- **Robust range over a sliding window.** For each signal it watches, the detector keeps the last
  `history_rows` values (a week of 5-minute rows) in a sorted list and asks how far the new value lies
  outside their range, in units of that range: excess = (x - hi) / (hi - lo) above, (lo - x) / (hi - lo)
  below, 0 inside. hi and lo are order statistics with the `trim` most extreme values on each side left
  out, so one past outlier does not blind the detector for a week (a median/MAD scale would not do
  here: on spiky server metrics — disk writes, network in — the MAD is zero and every routine spike
  would look infinite; "beyond what this metric did all week" is what an operator calls abnormal).
  Order statistics are scale-free, so one set of parameters serves CPU percentages and byte counts.
- **Seasonality, where the data has it.** The expected value of a row is the median of the rows at the
  same time of day (and, with enough history, the same time of week), one slot either side, over the
  last `season_cycles` cycles; the residual (value - expectation) is watched like the value itself. A
  cycle is used only once the seasonal prediction has been clearly better than the plain level
  (`season_gate`: its running mean absolute error below that fraction of the level's), so
  non-seasonal metrics are not judged against a pattern that is not there. This is what finds a
  missing daily peak or a flat day, whose values are all inside the week's range.
- **Short term against long term.** Rolling means over the last few rows (`smooth_rows`: half an hour,
  three hours, half a day) are watched against the week of earlier rolling means: a level shift that
  stays inside the old range, a slow bump, or spikes arriving more often than before (each spike
  ordinary, their density not) push the short-term mean outside its long-term range.
- **Learning period.** The first `learning_rows` rows only build the windows: score 0, no alarm.
- **Alarm suppression.** After an alarm no other is raised for `suppress_rows` rows: one anomaly is one
  alarm (one case), and NAB, like an operator, credits the earliest detection of an anomaly and
  charges every repeat outside it. A row `rearm` times stronger than the alarm that started the
  silence still raises one: a marginal alarm must not hide a gross anomaly that follows it.

The strength of a row is the largest excess among these signals; score = strength / (strength +
threshold), so the score rises monotonically with the strength, stays below 1, and an alarm is due
exactly when the score reaches 0.5.
"""

from __future__ import annotations

import bisect
import csv
import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

DAY = 86_400
WEEK = 7 * DAY


@dataclass(frozen=True)
class BaselineParams:
    """The detector's parameters (rows are counted at the metric's own interval: 5 minutes in NAB)."""

    learning_rows: int = 200  # rows that only build the windows
    history_rows: int = 2016  # the sliding window (a week of 5-minute rows)
    trim: int = 3  # extreme values left out on each side of a window's range
    smooth_rows: tuple[int, ...] = (6, 36, 144)  # short-term rolling means watched against the long term
    season_cycles: int = 7  # past days (weeks) whose same time of day (week) gives the expectation
    season_gate: float = 0.5  # seasonal error below this fraction of the level's: the cycle is used
    threshold: float = 0.15  # strength (excess in units of the window's range) that raises an alarm
    suppress_rows: int = 150  # rows after an alarm during which no other is raised...
    rearm: float = 5.0  # ...unless this many times stronger than the alarm that started the silence


class RangeWindow:
    """The last `size` values of a signal, sorted; how far a new value lies outside their range."""

    def __init__(self, size: int, trim: int) -> None:
        self.size = size
        self.trim = trim
        self.window: deque[float] = deque()
        self.sorted: list[float] = []

    def excess(self, x: float) -> float:
        """0 inside the trimmed range [lo, hi], else the distance beyond it in units of hi - lo."""
        s = self.sorted
        m = len(s)
        if m == 0:
            return 0.0
        k = min(self.trim, (m - 1) // 2)
        lo, hi = s[k], s[m - 1 - k]
        out = max(x - hi, lo - x)
        tolerance = 1e-9 * max(abs(hi), abs(lo), 1e-12)  # rounding noise is no excess
        if out <= tolerance:
            return 0.0
        span = hi - lo
        if span <= tolerance:
            return 10.0  # a signal that never moved has moved
        return out / span

    def median(self) -> float:
        return self.sorted[len(self.sorted) // 2]

    def add(self, x: float) -> None:
        self.window.append(x)
        bisect.insort(self.sorted, x)
        if len(self.window) > self.size:
            old = self.window.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]


class Season:
    """One cycle (a day or a week): the expectation of a row from the same slot in past cycles, the
    running error of that expectation, and the window of its residuals."""

    def __init__(self, period: int, step: int, p: BaselineParams) -> None:
        self.period = period
        self.step = step
        self.slots_per_cycle = max(1, period // step)
        self.slots: dict[int, deque[float]] = {}
        self.cycles = p.season_cycles
        self.gate = p.season_gate
        self.residuals = RangeWindow(p.history_rows, p.trim)
        self.error = 0.0  # running mean |residual|
        self.level_error = 0.0  # running mean |value - median| over the same rows
        self.rows = 0

    def slot(self, epoch: int) -> int:
        return (epoch % self.period) // self.step

    def expectation(self, slot: int) -> float | None:
        near: list[float] = []
        for d in (-1, 0, 1):
            past = self.slots.get((slot + d) % self.slots_per_cycle)
            if past:
                near.extend(past)
        if len(near) < 6:  # two past cycles at least
            return None
        near.sort()
        return near[len(near) // 2]

    def observe(self, slot: int, x: float, level: float, alpha: float) -> float:
        """Excess of this row's residual (0 while the cycle has not proven itself); then learn it."""
        strength = 0.0
        expected = self.expectation(slot)
        if expected is not None:
            residual = x - expected
            self.rows += 1
            self.error += alpha * (abs(residual) - self.error)
            self.level_error += alpha * (abs(x - level) - self.level_error)
            if self.rows * self.step >= self.period and self.error < self.gate * self.level_error:
                strength = self.residuals.excess(residual)
            self.residuals.add(residual)
        past = self.slots.get(slot)
        if past is None:
            past = self.slots[slot] = deque(maxlen=self.cycles)
        past.append(x)
        return strength


class BaselineDetector:
    """One metric's detector: feed rows in time order with `update`, get (score, alarm) for each."""

    def __init__(self, params: BaselineParams | None = None) -> None:
        self.p = p = params or BaselineParams()
        self.rows = 0
        self.values = RangeWindow(p.history_rows, p.trim)
        self.recent = [deque(maxlen=k) for k in p.smooth_rows]
        self.means = [RangeWindow(p.history_rows, p.trim) for _ in p.smooth_rows]
        self.seasons: list[Season] = []
        self.first_epochs: list[int] | None = []  # the first rows' times, until the interval is known
        self.step = 0
        self.last_alarm: int | None = None
        self.last_strength = 0.0

    def _start_seasons(self) -> None:
        """Once the sampling interval is known (median of the first gaps), set up the cycles it allows."""
        gaps = sorted(b - a for a, b in zip(self.first_epochs, self.first_epochs[1:]) if b > a)
        step = gaps[len(gaps) // 2] if gaps else 0
        if step <= 0 or step > DAY // 12:  # too coarse to see a day's shape
            self.first_epochs = None
            return
        self.step = step
        self.seasons = [Season(period, step, self.p) for period in (DAY, WEEK)]
        self.first_epochs = None

    def update(self, timestamp: str | datetime, value: float) -> tuple[float, int]:
        """The next row: its anomaly score in [0, 1) and alarm (0/1), from it and earlier rows only."""
        p = self.p
        x = float(value)
        t = timestamp if isinstance(timestamp, datetime) else datetime.fromisoformat(timestamp)
        epoch = int((t.replace(tzinfo=None) - _EPOCH).total_seconds())  # wall-clock time as written
        strength = self.values.excess(x) if self.rows else 0.0
        for recent, means in zip(self.recent, self.means):
            recent.append(x)
            if len(recent) == recent.maxlen:
                mean = sum(recent) / len(recent)
                strength = max(strength, means.excess(mean))
                means.add(mean)
        if self.first_epochs is not None:
            self.first_epochs.append(epoch)
            if len(self.first_epochs) >= 25:
                self._start_seasons()
        if self.seasons:
            level = self.values.median()
            alpha = self.step / DAY  # the running errors remember about a day
            for season in self.seasons:
                strength = max(strength, season.observe(season.slot(epoch), x, level, alpha))
        self.values.add(x)
        self.rows += 1
        if self.rows <= p.learning_rows:
            return 0.0, 0
        score = strength / (strength + p.threshold)
        alarm = 0
        if strength >= p.threshold and (self.last_alarm is None or self.rows - self.last_alarm > p.suppress_rows
                                        or (p.rearm > 0 and strength >= p.rearm * self.last_strength)):
            alarm = 1
            self.last_alarm = self.rows
            self.last_strength = strength
        return score, alarm


_EPOCH = datetime(1970, 1, 1)


def detect(rows: Iterable[tuple[str | datetime, float]],
           params: BaselineParams | None = None) -> Iterator[tuple[float, int]]:
    """(score, alarm) for each (timestamp, value) of one metric, in order."""
    detector = BaselineDetector(params)
    for timestamp, value in rows:
        yield detector.update(timestamp, value)


class SeriesError(ValueError):
    """A CSV that is not `timestamp,value` rows: the message names the file and the line."""


def read_series(path: Path | str) -> list[tuple[str, str, datetime, float]]:
    """A NAB-format CSV (header `timestamp,value`) as (timestamp text, value text, time, value) rows."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise SeriesError(f"{path}: no such file") from None
    except OSError as exc:
        raise SeriesError(f"{path}: cannot read: {exc.strerror or exc}") from None
    rows = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise SeriesError(f"{path}: empty file, expected the header 'timestamp,value'")
            if [h.strip().lower() for h in header] != ["timestamp", "value"]:
                raise SeriesError(f"{path}: line 1: header must be 'timestamp,value', got {','.join(header)!r}")
            for record in reader:
                if not record or (len(record) == 1 and not record[0].strip()):
                    continue  # blank line
                line = reader.line_num
                if len(record) != 2:
                    raise SeriesError(f"{path}: line {line}: expected 2 fields (timestamp,value), "
                                      f"got {len(record)}")
                ts_text, value_text = record[0].strip(), record[1].strip()
                try:
                    t = datetime.fromisoformat(ts_text)
                except ValueError:
                    raise SeriesError(f"{path}: line {line}: bad timestamp {ts_text!r} "
                                      f"(expected YYYY-MM-DD HH:MM:SS)") from None
                try:
                    value = float(value_text)
                except ValueError:
                    raise SeriesError(f"{path}: line {line}: bad value {value_text!r}") from None
                if not math.isfinite(value):
                    raise SeriesError(f"{path}: line {line}: value {value_text!r} is not a finite number")
                rows.append((ts_text, value_text, t, value))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SeriesError(f"{path}: line {reader.line_num}: {exc}") from None
    return rows


def detect_file(source: Path | str, target: Path | str, params: BaselineParams | None = None) -> int:
    """Read `source` (timestamp,value), write `target` (timestamp,value,anomaly_score,alarm), one row per
    input row; the input is checked whole before anything is written. Returns the number of rows."""
    rows = read_series(source)
    target = Path(target)
    try:
        with target.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["timestamp", "value", "anomaly_score", "alarm"])
            results = detect(((t, value) for _, _, t, value in rows), params)
            for (ts_text, value_text, _, _), (score, alarm) in zip(rows, results):
                writer.writerow([ts_text, value_text, repr(score), alarm])
    except OSError as exc:
        raise SeriesError(f"{target}: cannot write: {exc.strerror or exc}") from None
    return len(rows)
