"""alerting/nab_score.py on tiny cases computed by hand (shared/nab/README.md's rules)."""

from __future__ import annotations

import math
import random

import pytest

from alerting import nab_score as nab

STANDARD = nab.PROFILES["standard"]

# 1000 rows: probation = min(floor(150), 750) = 150 rows; one window of 100 rows, [400, 499]
N = 1000
WINDOW = [(400, 499)]


def raw(rows: list[int], n: int = N, windows=WINDOW, profile=STANDARD) -> float:
    detections = [False] * n
    for i in rows:
        detections[i] = True
    return nab.score_file(detections, windows, profile).raw


def test_scaled_sigmoid_and_probation():
    assert nab.scaled_sigmoid(0.0) == 0.0
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(3.0) == pytest.approx(-1.0, abs=1e-6) and nab.scaled_sigmoid(3.0001) == -1.0
    assert nab.probation_rows(1000) == 150
    assert nab.probation_rows(4033) == 604
    assert nab.probation_rows(10_000) == 750
    assert nab.probation_rows(6) == 0


def test_detection_at_the_first_row_of_a_window_is_worth_one():
    assert raw([400]) == pytest.approx(1.0)
    # only the best (earliest) detection counts; later ones in the window are free
    assert raw([400, 450, 499]) == pytest.approx(1.0)


def test_detection_inside_a_window_is_worth_less_the_later_it_comes():
    half = raw([450])  # x = -(499 - 450 + 1) / 100 = -0.5
    assert half == pytest.approx((2 / (1 + math.exp(-2.5)) - 1) / nab.scaled_sigmoid(-1.0))
    assert half == pytest.approx(0.86, abs=0.01)
    last = raw([499])  # x = -1/100
    assert 0 < last < 0.03


def test_missed_window_costs_fn_weight():
    assert raw([]) == -1.0
    assert raw([], profile=nab.PROFILES["reward_low_FN_rate"]) == -2.0


def test_false_positive_just_after_a_window_costs_almost_nothing():
    cost = raw([400, 500]) - 1.0  # |500 - 499| / 99 = 0.0101
    assert cost < 0 and abs(cost) < 0.005
    assert cost == pytest.approx(0.11 * nab.scaled_sigmoid(1 / 99))


def test_false_positive_a_width_after_costs_nearly_fp_weight_and_beyond_three_widths_exactly():
    assert raw([400, 499 + 99]) - 1.0 == pytest.approx(0.11 * nab.scaled_sigmoid(1.0))  # ~ -0.1085
    assert raw([400, 499 + 3 * 99 + 1]) - 1.0 == pytest.approx(-0.11)
    assert raw([400, 990]) - 1.0 == pytest.approx(-0.11)


def test_false_positive_before_the_first_window_costs_fp_weight_each():
    assert raw([300, 400]) == pytest.approx(1.0 - 0.11)
    assert raw([200, 300, 400]) == pytest.approx(1.0 - 0.22)
    assert raw([300, 400], profile=nab.PROFILES["reward_low_FP_rate"]) == pytest.approx(1.0 - 0.22)


def test_probation_rows_are_ignored():
    assert raw([0, 10, 149, 400]) == pytest.approx(1.0)
    assert raw([150, 400]) == pytest.approx(1.0 - 0.11)


def test_window_inside_probation_is_not_counted_but_still_the_previous_window():
    windows = [(100, 109), (400, 499)]  # the first lies wholly inside the 150 probation rows
    detections = [False] * N
    detections[100] = True  # in probation: ignored, not a detection of the first window
    detections[151] = True  # 42 rows after the first window (W' = 10): |151 - 109| / 9 > 3
    detections[400] = True
    result = nab.score_file(detections, windows)
    assert (result.windows, result.counted, result.detected, result.missed) == (2, 1, 1, 0)
    assert result.raw == pytest.approx(1.0 - 0.11)
    detections[151], detections[150] = False, False
    detections[111] = True  # in probation
    assert nab.score_file(detections, windows).raw == pytest.approx(1.0)
    # right after a window that ends in probation: |150 - 140| / 39 = 0.256, not the "before any window" cost
    windows = [(101, 140), (400, 499)]
    detections = [False] * N
    detections[150] = detections[400] = True
    assert nab.score_file(detections, windows).raw == pytest.approx(1.0 + 0.11 * nab.scaled_sigmoid(10 / 39))


def test_window_partly_inside_probation_counts_with_x_over_the_full_window():
    windows = [(100, 199)]  # rows 100..149 are in probation
    detections = [False] * N
    detections[150] = True  # x = -(199 - 150 + 1) / 100 = -0.5
    result = nab.score_file(detections, windows)
    assert result.counted == 1 and result.raw == pytest.approx(0.8598, abs=1e-3)
    assert nab.score_file([False] * N, windows).raw == -1.0


def test_normalised_perfect_is_100_never_firing_is_0():
    windows = {"a.csv": [(400, 499)], "b.csv": [(300, 349), (700, 749)], "c.csv": []}
    never = {name: [0] * N for name in windows}
    perfect = {name: [int(any(i == left for left, _ in windows[name])) for i in range(N)] for name in windows}
    assert nab.score_corpus(never, windows).score == 0.0
    assert nab.score_corpus(perfect, windows).score == pytest.approx(100.0)
    # one of three windows found at its first row, one false alarm: S = 1 - 2 - 0.11; S_null = -3, S_perfect = 3
    half = {name: list(v) for name, v in never.items()}
    half["a.csv"][400] = 1
    half["c.csv"][900] = 1
    result = nab.score_corpus(half, windows)
    assert result.raw == pytest.approx(-1.11)
    assert result.score == pytest.approx(100 * (-1.11 + 3) / 6)


def test_window_rows_take_the_first_row_with_the_timestamp():
    ts = ["2014-01-01 00:00:00", "2014-01-01 00:05:00", "2014-01-01 00:05:00", "2014-01-01 00:10:00",
          "2014-01-01 00:15:00"]
    assert nab.window_rows(ts, [["2014-01-01 00:05:00.000000", "2014-01-01 00:15:00.000000"]]) == [(1, 4)]
    with pytest.raises(ValueError):
        nab.window_rows(ts, [["2014-01-01 00:06:00", "2014-01-01 00:15:00"]])


def test_best_threshold_hand_made():
    windows = {"a.csv": [(400, 499)]}
    scores = [0.0] * N
    scores[300] = 0.9  # a false alarm before the window: -0.11
    scores[400] = 0.5  # the window's first row: +1 (and +1 for not missing it)
    result = nab.best_threshold({"a.csv": scores}, windows)
    assert result.threshold == 0.5 and result.raw == pytest.approx(0.89)
    # ties go to the higher threshold: lowering it to 0.2 adds a detection inside the window, no change
    scores[450] = 0.2
    assert nab.best_threshold({"a.csv": scores}, windows).threshold == 0.5
    # "never fire" wins when every detection only costs
    only_false = [0.0] * N
    only_false[300] = only_false[600 + 300] = 0.7
    result = nab.best_threshold({"a.csv": only_false}, {"a.csv": []})
    assert result.threshold == nab.NEVER and result.score == 0.0
    # a lower threshold that fires everywhere is worse than one that finds the window alone
    flat = [0.1] * N
    flat[420] = 0.3
    result = nab.best_threshold({"a.csv": flat}, windows)
    assert result.threshold == 0.3 and result.raw == pytest.approx(nab.score_file(
        [i == 420 for i in range(N)], windows["a.csv"]).raw)


def test_best_threshold_sweep_equals_brute_force():
    rng = random.Random(7)
    for _ in range(20):
        windows, scores = {}, {}
        for f in range(3):
            n = rng.randint(40, 200)
            left = rng.randint(0, n - 12)
            windows[f"f{f}"] = [(left, left + rng.randint(2, 10))] if rng.random() < 0.8 else []
            scores[f"f{f}"] = [rng.choice([0.0, 0.1, 0.2, 0.5, 0.7, 0.9, 1.0]) for _ in range(n)]
        best = nab.best_threshold(scores, windows)
        candidates = sorted({s for v in scores.values() for s in v} | {math.inf}, reverse=True)
        brute = max((nab.score_corpus({k: [s >= t for s in v] for k, v in scores.items()}, windows).score, t)
                    for t in candidates)
        top = brute[0]
        highest = max(t for t in candidates
                      if nab.score_corpus({k: [s >= t for s in v] for k, v in scores.items()},
                                          windows).score >= top - 1e-9)
        assert best.score == pytest.approx(top)
        assert best.threshold == highest
