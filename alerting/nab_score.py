"""The Numenta Anomaly Benchmark's scoring, as shared/nab/README.md describes it, stdlib only.

A detector's output for one file is a list of detections (rows whose alarm is 1, or whose anomaly
score is at or above a threshold). Each file is scored against its labelled windows (row ranges):

- rows before the probation limit min(floor(0.15 N), 750) are ignored;
- a window is worth tpWeight * A(x) / A(-1) for its earliest detection, x = -(R - i + 1) / W,
  or -fnWeight if it has none;
- every detection outside windows costs fpWeight * A(|i - R'| / (W' - 1)) after a window (R', W'),
  or -fpWeight before the first window;

with the scaled sigmoid A(x) = 2 / (1 + e^(5x)) - 1 (-1 beyond x = 3). The corpus's raw score S is
normalised to 100 * (S - S_null) / (S_perfect - S_null). `best_threshold` picks the threshold over
the anomaly scores that maximises the corpus score (every distinct score plus "never fire"; ties go
to the higher threshold), as NAB's scoreboard does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

NEVER = math.inf  # the "never fire" threshold: no score reaches it


@dataclass(frozen=True)
class Profile:
    """NAB's application profile: how much a window found, a window missed and a false alarm weigh."""

    tp: float
    fn: float
    fp: float


PROFILES = {
    "standard": Profile(1.0, 1.0, 0.11),
    "reward_low_FP_rate": Profile(1.0, 1.0, 0.22),
    "reward_low_FN_rate": Profile(1.0, 2.0, 0.11),
}


def scaled_sigmoid(x: float) -> float:
    """A(x) = 2 / (1 + e^(5x)) - 1, and -1 for x > 3: A(-1) ~ 0.9866, A(0) = 0, A(1) ~ -0.9866."""
    if x > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def probation_rows(n: int) -> int:
    """How many leading rows of an N-row file NAB ignores: min(floor(0.15 N), 750)."""
    return min(math.floor(0.15 * n), 750)


def window_rows(timestamps: Sequence[str], windows: Iterable[Sequence[str]]) -> list[tuple[int, int]]:
    """Windows given as (start, end) timestamps turned into inclusive row ranges [L, R].

    Each edge is the first row with that timestamp; windows.json writes microseconds
    ("2014-02-19 10:50:00.000000") where the CSVs do not, so both are compared as whole seconds.
    """
    first: dict[str, int] = {}
    for i, ts in enumerate(timestamps):
        first.setdefault(_second(ts), i)
    rows = []
    for start, end in windows:
        try:
            rows.append((first[_second(start)], first[_second(end)]))
        except KeyError as exc:
            raise ValueError(f"window edge {exc.args[0]} is no row's timestamp") from None
    return sorted(rows)


def _second(ts: str) -> str:
    ts = ts.strip()
    if "." in ts:
        head, frac = ts.split(".", 1)
        if frac.strip("0"):
            raise ValueError(f"timestamp {ts!r} is not a whole second")
        return head
    return ts


def row_values(n: int, windows: Sequence[tuple[int, int]], profile: Profile) -> list[tuple[int, float]]:
    """What a detection at each row is worth: (window index, value) inside a window, where the
    window takes the best of its detections, or (-1, penalty) outside windows, where every
    detection counts; (-1, 0.0) in probation."""
    probation = probation_rows(n)
    values: list[tuple[int, float]] = [(-1, 0.0)] * n
    a_first = scaled_sigmoid(-1.0)
    previous: tuple[int, int] | None = None  # (R', W') of the window before the row
    k = 0
    i = 0
    while i < n:
        if k < len(windows) and i >= windows[k][0]:
            left, right = windows[k]
            width = right - left + 1
            for j in range(max(left, i), min(right, n - 1) + 1):
                if j >= probation:
                    x = -(right - j + 1) / width
                    values[j] = (k, profile.tp * scaled_sigmoid(x) / a_first)
            previous = (right, width)
            k += 1
            i = max(i, right + 1)
            continue
        if i >= probation:
            if previous is None:
                values[i] = (-1, -profile.fp)
            else:
                r_prev, w_prev = previous
                x = abs(i - r_prev) / (w_prev - 1) if w_prev > 1 else math.inf  # NAB has no 1-row window
                values[i] = (-1, profile.fp * scaled_sigmoid(x))
        i += 1
    return values


@dataclass
class FileScore:
    """One file's outcome: raw score, windows found and missed, false-alarm count and cost."""

    raw: float = 0.0
    windows: int = 0  # all windows (S_perfect counts them)
    counted: int = 0  # windows not wholly inside probation (S_null counts them)
    detected: int = 0
    missed: int = 0
    false_alarms: int = 0
    fp_cost: float = 0.0
    tp_value: float = 0.0


def counted_windows(n: int, windows: Sequence[tuple[int, int]]) -> int:
    """Windows that do not lie wholly inside the probation period."""
    probation = probation_rows(n)
    return sum(1 for _, right in windows if right >= probation)


def score_file(detections: Sequence[bool | int], windows: Sequence[tuple[int, int]],
               profile: Profile = PROFILES["standard"]) -> FileScore:
    """Score one file: detections[i] is true when row i is a detection; windows as row ranges."""
    n = len(detections)
    values = row_values(n, windows, profile)
    probation = probation_rows(n)
    out = FileScore(windows=len(windows), counted=counted_windows(n, windows))
    best: dict[int, float] = {}
    for i in range(probation, n):
        if not detections[i]:
            continue
        k, value = values[i]
        if k >= 0:
            if k not in best or value > best[k]:
                best[k] = value
        else:
            out.false_alarms += 1
            out.fp_cost += value
    for k, (_, right) in enumerate(windows):
        if right < probation:
            continue
        if k in best:
            out.detected += 1
            out.tp_value += best[k]
        else:
            out.missed += 1
    out.raw = out.tp_value + out.fp_cost - profile.fn * out.missed
    return out


def normalise(raw: float, windows: int, counted: int, profile: Profile = PROFILES["standard"]) -> float:
    """100 * (S - S_null) / (S_perfect - S_null); S_perfect = windows * tp, S_null = -fn * counted."""
    perfect = windows * profile.tp
    null = -profile.fn * counted
    if perfect == null:
        return 0.0
    return 100.0 * (raw - null) / (perfect - null)


@dataclass
class CorpusScore:
    """A corpus's outcome: the normalised score, its raw parts, and each file's score."""

    score: float
    raw: float
    windows: int
    counted: int
    files: dict[str, FileScore] = field(default_factory=dict)
    threshold: float | None = None


def score_corpus(detections: dict[str, Sequence[bool | int]], windows: dict[str, Sequence[tuple[int, int]]],
                 profile: Profile = PROFILES["standard"]) -> CorpusScore:
    """Score several files at once: both dicts keyed by file name."""
    files = {name: score_file(detections[name], windows[name], profile) for name in detections}
    raw = sum(f.raw for f in files.values())
    total = sum(f.windows for f in files.values())
    counted = sum(f.counted for f in files.values())
    return CorpusScore(normalise(raw, total, counted, profile), raw, total, counted, files)


def best_threshold(scores: dict[str, Sequence[float]], windows: dict[str, Sequence[tuple[int, int]]],
                   profile: Profile = PROFILES["standard"]) -> CorpusScore:
    """The threshold over the anomaly scores that maximises the corpus score, and that score.

    Candidates are every distinct score plus "never fire" (threshold = inf); a row is a detection
    when its score is >= the threshold; ties go to the higher threshold. One sweep from the highest
    score down: a false alarm adds its own cost, a window keeps the best value found so far.
    """
    events: list[tuple[float, str, int, float]] = []  # (score, file, window or -1, value)
    total = counted = 0
    null = 0.0
    for name, file_scores in scores.items():
        n = len(file_scores)
        total += len(windows[name])
        c = counted_windows(n, windows[name])
        counted += c
        null -= profile.fn * c
        probation = probation_rows(n)
        for i, (k, value) in enumerate(row_values(n, windows[name], profile)):
            if i >= probation:
                events.append((float(file_scores[i]), name, k, value))
    events.sort(key=lambda e: -e[0])
    raw = null
    best_raw, best_at = raw, NEVER
    window_best: dict[tuple[str, int], float] = {}
    i = 0
    while i < len(events):
        level = events[i][0]
        while i < len(events) and events[i][0] == level:
            _, name, k, value = events[i]
            if k < 0:
                raw += value
            else:
                key = (name, k)
                before = window_best.get(key)
                if before is None:
                    raw += value + profile.fn
                    window_best[key] = value
                elif value > before:
                    raw += value - before
                    window_best[key] = value
            i += 1
        if raw > best_raw + 1e-9:  # strictly better (beyond rounding): ties keep the higher threshold
            best_raw, best_at = raw, level
    # the reported score is computed directly at the chosen threshold, not from the running sum
    result = score_corpus({name: [s >= best_at for s in file_scores] for name, file_scores in scores.items()},
                          windows, profile)
    result.threshold = best_at
    return result


