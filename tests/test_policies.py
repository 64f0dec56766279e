"""Detector policies as data: the shipped files load, the most specific layer wins field by field,
and a wrong file is refused with its name and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.wire import metric_base
from alerting.detectors import build_detectors
from alerting.policies import DETECTORS, PolicyError, load_policies, policy_for


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


BASE = """
[metrics.disk_used_percent]
title = "disk"
unit = "%"
threshold = { warning = 85, critical = 95, hysteresis = 3, min_duration_s = 120 }
trend = { limit = 100, info_within_h = 72 }
"""


def test_shipped_policies_cover_the_metrics_devices_report():
    policies = load_policies()
    expect = {
        "disk_used_percent{mount=/}": {"threshold", "trend"},
        "mem_used_percent": {"threshold", "trend"},
        "temperature_celsius{sensor=cpu}": {"threshold", "trend", "flatline"},
        "battery_runtime_seconds": {"threshold", "trend"},
        "battery_charge_percent": {"threshold"},
        "on_battery": {"threshold"},
        "if_in_errors_per_s{if=eth0}": {"rate"},
        "snmp_up": {"threshold"},
        "uptime_seconds": {"reboot"},
    }
    for key, detectors in expect.items():
        policy = policies.policy_for(key)
        assert set(policy.detectors) == detectors, key
        assert build_detectors(policy), key
    disk = policies.policy_for("disk_used_percent{mount=/}")
    assert {k: disk.detectors["threshold"][k] for k in ("warning", "critical", "hysteresis", "min_duration_s")} \
        == {"warning": 85, "critical": 95, "hysteresis": 3, "min_duration_s": 120}
    assert disk.detectors["trend"]["info_within_h"] == 72
    battery = policies.policy_for("battery_runtime_seconds", "ups")
    assert battery.detectors["trend"]["limit"] == 600 and battery.detectors["trend"]["direction"] == "below"
    assert battery.detectors["trend"]["info_within_h"] == 72
    assert policies.policy_for("on_battery").detectors["threshold"]["min_duration_s"] == 30
    assert policies.policy_for("no_such_metric").detectors == {}
    assert policy_for("snmp_up").detectors["threshold"]["direction"] == "below"


def test_every_policy_metric_is_one_the_agent_declares():
    """A policy for a metric nobody reports is a typo."""
    import tomllib
    root = Path(__file__).parent.parent / "agent" / "data"
    text = "\n".join(p.read_text(encoding="utf-8") for p in [root / "host_metrics.toml",
                                                             *sorted((root / "snmp").glob("*.toml"))])
    policies = load_policies()
    known = set(tomllib.loads((root / "host_metrics.toml").read_text(encoding="utf-8")))
    for metric in policies.layers["metrics"][""]:
        name = metric_base(metric)
        assert name in known or f'"{name}"' in text or name in ("snmp_up", "temperature_celsius"), name


def test_precedence_device_over_site_over_customer_over_kind_over_default(tmp_path):
    write(tmp_path, "metrics.toml", BASE)
    write(tmp_path, "kinds.toml", """
[kinds.storage.disk_used_percent]
threshold = { warning = 80, critical = 90 }
""")
    write(tmp_path, "overrides.toml", """
[customers.acme.disk_used_percent]
threshold = { warning = 75, hysteresis = 2 }

[sites."acme/hq".disk_used_percent]
threshold = { warning = 70 }

[devices.nas-01.disk_used_percent]
threshold = { warning = 60 }

[devices.nas-01."disk_used_percent{mount=/backup}"]
threshold = { enabled = false }
trend = { info_within_h = 12 }
""")
    p = load_policies(tmp_path)
    th = lambda *args: p.policy_for("disk_used_percent{mount=/}", *args).detectors["threshold"]  # noqa: E731
    assert th()["warning"] == 85
    assert th("storage")["warning"] == 80
    assert th("storage", "acme")["warning"] == 75
    assert th("storage", "acme", "hq")["warning"] == 70
    assert th("storage", "acme", "hq", "nas-01")["warning"] == 60
    # field by field: each value from the most specific layer that sets it
    merged = p.policy_for("disk_used_percent{mount=/}", "storage", "acme", "hq", "nas-01")
    assert merged.detectors["threshold"]["critical"] == 90  # kind
    assert merged.detectors["threshold"]["hysteresis"] == 2  # customer
    assert merged.detectors["threshold"]["min_duration_s"] == 120  # default
    assert merged.sources["threshold.critical"].startswith("kinds.storage.disk_used_percent")
    assert merged.sources["threshold.warning"].startswith("devices.nas-01.disk_used_percent")
    # another customer's site of the same name is not affected
    assert th("storage", "beta", "hq")["warning"] == 80
    # a labelled key beats the bare name; enabled = false switches a detector off
    backup = p.policy_for("disk_used_percent{mount=/backup}", "storage", "acme", "hq", "nas-01")
    assert "threshold" not in backup.detectors
    assert backup.detectors["trend"]["info_within_h"] == 12
    assert [d.name for d in build_detectors(backup)] == ["trend"]


@pytest.mark.parametrize("text, message", [
    ("[metrics.disk_used_percent]\nthreshold = { warnign = 85 }\n",
     "metrics.disk_used_percent.threshold.warnign: unknown parameter"),
    ("[metrics.disk_used_percent]\nthreshold = { warning = \"85\" }\n",
     "metrics.disk_used_percent.threshold.warning: must be a number, got '85'"),
    ("[metrics.disk_used_percent]\nthreshold = { warning = 95, critical = 85 }\n",
     "metrics.disk_used_percent.threshold: warning 95 must come before critical 85"),
    ("[metrics.disk_used_percent]\nthreshold = { hysteresis = 3 }\n",
     "metrics.disk_used_percent.threshold: needs warning or critical"),
    ("[metrics.disk_used_percent]\nthreshold = { warning = 85, hysteresis = -1 }\n",
     "threshold.hysteresis: must be a number ≥ 0, got -1"),
    ("[metrics.disk_used_percent]\nthreshhold = { warning = 85 }\n",
     "metrics.disk_used_percent.threshhold: unknown field"),
    ("[metrics.disk_used_percent]\ntrend = { info_within_h = 72 }\n",
     "metrics.disk_used_percent.trend.limit: missing"),
    ("[metrics.disk_used_percent]\ntrend = { limit = 100, info_within_h = 6, critical_within_h = 24 }\n",
     "critical_within_h ≤ warning_within_h ≤ info_within_h"),
    ("[metrics.x]\nflatline = { severity = \"urgent\" }\n",
     "metrics.x.flatline.severity: must be one of info, warning, critical"),
    ("[metric.x]\n", "metric: unknown section"),
    ("[sites.hq.x]\nreboot = {}\n", "sites.hq: a site is named \"customer/site\""),
    ("[metrics.x\n", "not valid TOML"),
])
def test_validation_names_file_and_field(tmp_path, text, message):
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(PolicyError) as err:
        load_policies(tmp_path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_an_override_that_breaks_the_merged_policy_is_refused_at_load(tmp_path):
    write(tmp_path, "metrics.toml", BASE)
    path = write(tmp_path, "overrides.toml", "[customers.acme.disk_used_percent]\nthreshold = { warning = 99 }\n")
    with pytest.raises(PolicyError) as err:
        load_policies(tmp_path)
    assert str(path) in str(err.value)
    assert "customers.acme.disk_used_percent.threshold: warning 99 must come before critical 95" in str(err.value)


def test_the_same_metric_twice_in_a_layer_is_refused(tmp_path):
    write(tmp_path, "a.toml", BASE)
    write(tmp_path, "b.toml", BASE)
    with pytest.raises(PolicyError, match="also defined in a.toml"):
        load_policies(tmp_path)


def test_empty_folder_is_refused(tmp_path):
    with pytest.raises(PolicyError, match="no policy files"):
        load_policies(tmp_path)


def test_every_detector_parameter_has_a_check():
    for name, params in DETECTORS.items():
        assert "enabled" in params, name
