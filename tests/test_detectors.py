"""Streaming detectors driven by event time: synthetic series in, alarms (and their words) out."""

from __future__ import annotations

import math
import random

import pytest

from alerting.detectors import (CLEARED, RAISED, SEVERITY_CHANGED, FlatlineDetector, RateDetector,
                                RebootDetector, SeriesMonitor, ThresholdDetector, TrendDetector, theil_sen)
from alerting.policies import load_policies

MIN, HOUR = 60.0, 3600.0


def feed(detector, samples):
    out = []
    for ts, value in samples:
        out.extend(detector.update(ts, value))
    return out


def disk_threshold(**kw):
    params = dict(warning=85, critical=95, hysteresis=3, min_duration_s=120, title="disk", unit="%")
    params.update(kw)
    return ThresholdDetector("disk_used_percent{mount=/var}", **params)


# ---------------------------------------------------------------- threshold


def test_threshold_hysteresis_prevents_flapping_on_a_value_hovering_at_the_line():
    det = disk_threshold()
    rng = random.Random(1)
    # an hour around 85 % (±1.5, inside the 3-point band): one alarm, never cleared
    samples = [(i * MIN, 85 + rng.uniform(-1.5, 1.5)) for i in range(60)]
    samples[0] = (0.0, 86.0)
    samples[1] = (MIN, 86.0)
    samples[2] = (2 * MIN, 86.0)
    alarms = feed(det, samples)
    assert [(a.state, a.severity) for a in alarms] == [(RAISED, "warning")]
    assert alarms[0].text == "disk /var 86 % for 2 min (warning at 85 %, critical at 95 %)"
    # clears only once back past the band (below 82 %)
    assert feed(det, [(61 * MIN, 82.5)]) == []
    cleared = feed(det, [(62 * MIN, 81.9)])
    assert [(a.state, a.severity) for a in cleared] == [(CLEARED, "warning")]
    assert "82 %" in cleared[0].text


def test_threshold_without_hysteresis_would_flap_which_is_why_the_band_exists():
    det = disk_threshold(hysteresis=0, min_duration_s=0)
    alarms = feed(det, [(i * MIN, 86 if i % 2 else 84) for i in range(10)])
    assert len(alarms) == 9  # raised, cleared, raised, ... : what hysteresis prevents
    det = disk_threshold(hysteresis=3, min_duration_s=0)
    alarms = feed(det, [(i * MIN, 86 if i % 2 else 84) for i in range(10)])
    assert [a.state for a in alarms] == [RAISED]


def test_threshold_minimum_duration():
    det = disk_threshold()
    # a spike shorter than 2 min raises nothing
    assert feed(det, [(0, 50), (MIN, 97), (1.5 * MIN, 97), (2.5 * MIN, 50)]) == []
    # held for 2 min: raised once, at the moment the duration is reached
    alarms = feed(det, [(10 * MIN, 90), (11 * MIN, 90), (12 * MIN, 90), (13 * MIN, 90)])
    assert [(a.state, a.severity, a.ts) for a in alarms] == [(RAISED, "warning", 12 * MIN)]
    assert alarms[0].evidence["since"] == 10 * MIN


def test_threshold_escalates_and_lowers_severity():
    det = disk_threshold()
    alarms = feed(det, [(i * MIN, v) for i, v in enumerate([90, 90, 90, 96, 96, 96, 93, 91, 80])])
    assert [(a.state, a.severity) for a in alarms] == [
        (RAISED, "warning"), (SEVERITY_CHANGED, "critical"), (SEVERITY_CHANGED, "warning"), (CLEARED, "warning")]
    # 93 is inside critical's band (95 - 3 = 92): still critical; 91 is past it
    assert alarms[2].ts == 7 * MIN


def test_threshold_below_direction_and_value_words():
    det = ThresholdDetector("on_battery", critical=0.5, min_duration_s=30, title="UPS",
                            value_words={"0": "on mains", "1": "on battery"})
    alarms = feed(det, [(0, 0), (10, 1), (20, 1), (40, 1), (50, 0)])
    assert [(a.state, a.severity) for a in alarms] == [(RAISED, "critical"), (CLEARED, "critical")]
    assert alarms[0].text == "UPS on battery for 30 s (critical after 30 s)"
    runtime = ThresholdDetector("battery_runtime_seconds", direction="below", warning=900, critical=300,
                                hysteresis=60, title="UPS battery runtime", unit="s")
    alarms = feed(runtime, [(0, 1200), (60, 800), (120, 250), (180, 340), (240, 400)])
    assert [(a.state, a.severity) for a in alarms] == [
        (RAISED, "warning"), (SEVERITY_CHANGED, "critical"), (SEVERITY_CHANGED, "warning")]


def test_late_samples_are_ignored():
    det = disk_threshold(min_duration_s=0)
    assert feed(det, [(100, 90)])
    assert feed(det, [(50, 10), (100, 10)]) == []  # older or repeated: event time only moves forward


# ---------------------------------------------------------------- trend


def test_theil_sen_ignores_outliers():
    pts = [(float(t), 2.0 * t + 1) for t in range(20)]
    pts[5] = (5.0, 1000.0)
    pts[12] = (12.0, -50.0)
    slope, intercept = theil_sen(pts)
    assert slope == pytest.approx(2.0)
    assert intercept == pytest.approx(1.0)


def disk_trend():
    return TrendDetector("disk_used_percent{mount=/data}", limit=100, limit_words="full", window_h=12,
                         info_within_h=72, warning_within_h=24, critical_within_h=6, title="disk", unit="%")


def linear_fill(start=40.0, per_hour=1.9, hours=30.0, noise=0.3, seed=2, step=5 * MIN):
    rng = random.Random(seed)
    return [(i * step, start + per_hour * i * step / HOUR + rng.gauss(0, noise))
            for i in range(int(hours * HOUR / step))]


def test_trend_forecasts_time_to_full_within_ten_percent():
    det = disk_trend()
    samples = linear_fill(hours=14)
    feed(det, samples)
    ts, _ = samples[-1]
    true_left = (100 - (40 + 1.9 * ts / HOUR)) / 1.9
    fc = det.forecast(ts)
    assert fc["hours_left"] == pytest.approx(true_left, rel=0.10)
    assert fc["slope_per_h"] == pytest.approx(1.9, rel=0.10)


def test_trend_raises_low_severity_early_and_escalates_as_time_shrinks():
    det = disk_trend()
    alarms = feed(det, linear_fill(hours=31))
    assert [(a.state, a.severity) for a in alarms] == [
        (RAISED, "info"), (SEVERITY_CHANGED, "warning"), (SEVERITY_CHANGED, "critical")]
    info, warning, critical = alarms
    # 40 % at +1.9 %/h is full at t ≈ 31.6 h: info as soon as a forecast exists (2 h of data, ~30 h
    # left), warning at ~24 h left, critical at ~6 h left
    assert info.ts == pytest.approx(2 * HOUR, abs=0.5 * HOUR)
    assert warning.evidence["forecast"]["hours_left"] <= 24
    assert warning.ts / HOUR == pytest.approx(31.6 - 24, abs=1.0)
    assert critical.ts / HOUR == pytest.approx(31.6 - 6, abs=1.0)
    assert "disk /data full in about" in warning.text and "%/h" in warning.text
    assert "Theil–Sen over the last 12 h" in critical.text
    assert warning.evidence["forecast"]["slope_per_h"] == pytest.approx(1.9, rel=0.1)


def test_trend_no_alarm_on_a_flat_noisy_series():
    rng = random.Random(7)
    det = disk_trend()
    samples = [(i * 5 * MIN, 60 + rng.gauss(0, 3)) for i in range(int(7 * 24 * 12))]
    assert feed(det, samples) == []


def test_trend_clears_when_the_forecast_recedes():
    det = disk_trend()
    alarms = feed(det, linear_fill(hours=12))
    assert alarms and alarms[-1].severity in ("info", "warning")
    # the fill stops (files cleaned up): the level goes flat and the forecast recedes to never
    last_ts = 12 * HOUR
    flat = [(last_ts + i * 5 * MIN, 50.0 + 0.2 * math.sin(i)) for i in range(1, 13 * 12)]
    alarms = feed(det, flat)
    assert alarms[-1].state == CLEARED
    assert det.current is None


def test_battery_runtime_trend_below_600_s_within_3_days():
    policies = load_policies()
    monitor = SeriesMonitor(policies.policy_for("battery_runtime_seconds", "ups"))
    # runtime falling 40 s a day from 1000 s: 600 s in 10 days, then within 3 days at day 7
    samples = [(i * HOUR, 1000 - 40 * i / 24) for i in range(9 * 24)]
    alarms = [a for a in feed(monitor, samples) if a.detector == "trend"]
    assert alarms[0].severity == "info"
    assert alarms[0].ts / 86400 == pytest.approx(7, abs=0.1)
    assert "below 600 s in about 3 days at -40 s/day" in alarms[0].text


# ---------------------------------------------------------------- flatline


def test_flatline_raises_on_a_stuck_sensor_and_clears_when_it_moves():
    det = FlatlineDetector("temperature_celsius{sensor=cpu}", min_samples=10, min_duration_s=1800,
                           title="temperature", unit="°C")
    moving = [(i * MIN, 40 + math.sin(i / 5)) for i in range(60)]
    assert feed(det, moving) == []
    stuck = [(60 * MIN + i * MIN, 41.5) for i in range(40)]
    alarms = feed(det, stuck)
    assert [(a.state, a.ts) for a in alarms] == [(RAISED, 90 * MIN)]
    assert alarms[0].text == "temperature cpu stuck at 41.5 °C for 30 min (31 samples unchanged; it normally varies)"
    alarms = feed(det, [(100 * MIN, 42.0)])
    assert [a.state for a in alarms] == [CLEARED]


def test_flatline_ignores_a_series_never_seen_moving():
    det = FlatlineDetector("temperature_celsius{sensor=x}", min_samples=5, min_duration_s=60)
    assert feed(det, [(i * MIN, 20.0) for i in range(100)]) == []


# ---------------------------------------------------------------- rate anomaly


def test_rate_anomaly_catches_errors_jumping_from_zero_without_a_threshold():
    det = RateDetector("if_in_errors_per_s{if=ge-0/0/1}", min_value=0.1, quiet_s=1800,
                       title="interface input errors", unit="/s")
    quiet = [(i * MIN, 0.0) for i in range(400)]
    assert feed(det, quiet) == []
    alarms = feed(det, [(400 * MIN + i * MIN, 0.83) for i in range(5)])
    assert [(a.state, a.severity) for a in alarms] == [(RAISED, "warning")]
    assert alarms[0].evidence["expected_range"] == (0.0, 0.0)
    assert alarms[0].text.startswith("interface input errors ge-0/0/1 0.83/s, normally 0/s (learned baseline")
    back = feed(det, [(405 * MIN + i * MIN, 0.0) for i in range(60)])
    assert [a.state for a in back] == [CLEARED]


def test_rate_ignores_tiny_absolute_values():
    det = RateDetector("if_in_errors_per_s{if=eth0}", min_value=0.1)
    feed(det, [(i * MIN, 0.0) for i in range(400)])
    assert feed(det, [(400 * MIN, 0.01)]) == []


# ---------------------------------------------------------------- reboot


def test_reboot_when_uptime_goes_backwards():
    det = RebootDetector("uptime_seconds", title="device", unit="s")
    samples = [(1_700_000_000 + i * MIN, 86_400 + i * MIN) for i in range(10)]
    assert feed(det, samples) == []
    alarms = feed(det, [(1_700_000_000 + 10 * MIN, 45.0), (1_700_000_000 + 11 * MIN, 105.0)])
    assert len(alarms) == 1
    a = alarms[0]
    assert (a.detector, a.state, a.severity) == ("reboot", RAISED, "info")
    assert a.evidence["boot_ts"] == 1_700_000_000 + 10 * MIN - 45
    assert a.text.startswith("device rebooted at about 2023-11-14 ")
    assert "uptime 45 s" in a.text


# ---------------------------------------------------------------- from policies


def test_monitor_from_the_shipped_policies():
    policies = load_policies()
    monitor = SeriesMonitor(policies.policy_for("disk_used_percent{mount=/var}", "server", "acme", "hq", "nas-01"))
    names = [d.name for d in monitor.detectors]
    assert names == ["threshold", "trend"]
    alarms = feed(monitor, [(i * MIN, 91.2) for i in range(4)])
    assert [a.detector for a in alarms] == ["threshold"]
    assert alarms[0].text == "disk /var 91.2 % for 2 min (warning at 85 %, critical at 95 %)"
    assert monitor.update(10 * MIN, float("nan")) == []
