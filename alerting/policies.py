"""Detector policies as data: which detectors watch a metric, and with what parameters.

The files in alerting/data/policies/*.toml hold layers, from general to specific:

    [metrics.disk_used_percent]                      # default for a metric name
    [kinds.ups.temperature_celsius]                  # per device kind (profile)
    [customers.acme.disk_used_percent]               # per customer
    [sites."acme/hq".disk_used_percent]              # per site ("customer/site")
    [devices.nas-01.disk_used_percent]               # per device id

Inside each, a metric may carry `title` and `unit` (for alarm texts), `value_words` (words for
values such as on_battery = 1), and one table per detector (threshold, trend, flatline, rate,
reboot, flap) with its parameters. A metric may also be named with its labels, quoted:
`"disk_used_percent{mount=/boot}"`; within a layer that beats the bare name. The most specific
layer wins, field by field; `enabled = false` switches a detector off. The loader checks every
field once and names the file and field of anything wrong.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(__file__).parent / "data" / "policies"

SEVERITIES = ("info", "warning", "critical")
LAYERS = ("metrics", "kinds", "customers", "sites", "devices")  # general → specific


class PolicyError(ValueError):
    """A policy file or field is wrong; the message names the file and the field."""


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pos(v: Any) -> bool:
    return _num(v) and v > 0


def _nonneg(v: Any) -> bool:
    return _num(v) and v >= 0


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


_CHECKS = {
    "num": (_num, "a number"),
    "pos": (_pos, "a number > 0"),
    "nonneg": (_nonneg, "a number ≥ 0"),
    "count": (_count, "a whole number ≥ 1"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "direction": (lambda v: v in ("above", "below"), "'above' or 'below'"),
    "severity": (lambda v: v in SEVERITIES, "one of info, warning, critical"),
}

#: Every detector's parameters and what each must be.
DETECTORS: dict[str, dict[str, str]] = {
    "threshold": {"enabled": "bool", "direction": "direction", "warning": "num", "critical": "num",
                  "hysteresis": "nonneg", "min_duration_s": "nonneg"},
    "trend": {"enabled": "bool", "direction": "direction", "limit": "num", "limit_words": "str",
              "window_h": "pos", "min_samples": "count", "min_span_h": "nonneg",
              "info_within_h": "pos", "warning_within_h": "pos", "critical_within_h": "pos",
              "clear_factor": "pos", "noise_ratio": "nonneg", "eval_every_s": "nonneg"},
    "flatline": {"enabled": "bool", "min_samples": "count", "min_duration_s": "nonneg", "tolerance": "nonneg",
                 "severity": "severity"},
    "rate": {"enabled": "bool", "learning_rows": "count", "history_rows": "count", "threshold": "pos",
             "suppress_rows": "count", "min_value": "num", "quiet_s": "nonneg", "severity": "severity"},
    "reboot": {"enabled": "bool", "severity": "severity"},
    "flap": {"enabled": "bool", "window_s": "pos", "min_changes": "count", "quiet_s": "nonneg",
             "severity": "severity"},
}
#: Defaults for parameters a policy leaves out.
DEFAULTS: dict[str, dict[str, Any]] = {
    "threshold": {"enabled": True, "direction": "above", "hysteresis": 0.0, "min_duration_s": 0.0},
    "trend": {"enabled": True, "direction": "above", "window_h": 12.0, "min_samples": 10, "min_span_h": 2.0,
              "clear_factor": 1.5, "noise_ratio": 3.0, "eval_every_s": 300.0},
    "flatline": {"enabled": True, "min_samples": 10, "min_duration_s": 3600.0, "tolerance": 0.0,
                 "severity": "warning"},
    "rate": {"enabled": True, "min_value": 0.0, "quiet_s": 1800.0, "severity": "warning"},
    "reboot": {"enabled": True, "severity": "info"},
    "flap": {"enabled": True, "window_s": 3600.0, "min_changes": 4, "quiet_s": 3600.0, "severity": "warning"},
}
METRIC_FIELDS = {"title": "str", "unit": "str"}


@dataclass(frozen=True)
class MetricPolicy:
    """What watches one series: detector name → parameters, and where each field came from."""

    metric: str
    title: str
    unit: str
    detectors: dict[str, dict[str, Any]]
    value_words: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # "threshold.warning" → "customers.acme (file)"


def _base(key: str) -> str:
    brace = key.find("{")
    return key if brace < 0 else key[:brace]


def _check_metric_table(table: Any, where: str) -> None:
    if not isinstance(table, dict):
        raise PolicyError(f"{where}: must be a table of metric fields and detectors")
    for name, value in table.items():
        at = f"{where}.{name}"
        if name in METRIC_FIELDS:
            ok, what = _CHECKS[METRIC_FIELDS[name]]
            if not ok(value):
                raise PolicyError(f"{at}: must be {what}, got {value!r}")
        elif name == "value_words":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise PolicyError(f"{at}: must be a table of value = \"words\"")
            for k in value:
                try:
                    float(k)
                except ValueError:
                    raise PolicyError(f"{at}.{k}: key must be a number, such as \"1\"") from None
        elif name in DETECTORS:
            if not isinstance(value, dict):
                raise PolicyError(f"{at}: must be a table of parameters")
            for param, v in value.items():
                kind = DETECTORS[name].get(param)
                if kind is None:
                    raise PolicyError(f"{at}.{param}: unknown parameter (known: {', '.join(DETECTORS[name])})")
                ok, what = _CHECKS[kind]
                if not ok(v):
                    raise PolicyError(f"{at}.{param}: must be {what}, got {v!r}")
        else:
            raise PolicyError(f"{at}: unknown field (detectors: {', '.join(DETECTORS)}; "
                              f"fields: title, unit, value_words)")


def _check_merged(detectors: dict[str, dict[str, Any]], where: str) -> None:
    """Checks that need several fields together (after merging the layers)."""
    th = detectors.get("threshold")
    if th and th.get("enabled", True):
        levels = [th[s] for s in ("warning", "critical") if s in th]
        if not levels:
            raise PolicyError(f"{where}.threshold: needs warning or critical (or enabled = false)")
        if len(levels) == 2:
            w, c = th["warning"], th["critical"]
            if (th.get("direction", "above") == "above" and w >= c) or (th.get("direction") == "below" and w <= c):
                raise PolicyError(f"{where}.threshold: warning {w} must come before critical {c} "
                                  f"(direction {th.get('direction', 'above')})")
    tr = detectors.get("trend")
    if tr and tr.get("enabled", True):
        if "limit" not in tr:
            raise PolicyError(f"{where}.trend.limit: missing (the level the forecast runs to)")
        within = [tr[k] for k in ("critical_within_h", "warning_within_h", "info_within_h") if k in tr]
        if not within:
            raise PolicyError(f"{where}.trend: needs info_within_h, warning_within_h or critical_within_h")
        if within != sorted(within):
            raise PolicyError(f"{where}.trend: critical_within_h ≤ warning_within_h ≤ info_within_h, got "
                              + ", ".join(str(w) for w in within))


def _merge(into: dict[str, Any], table: dict[str, Any], source: str, sources: dict[str, str]) -> None:
    for name, value in table.items():
        if isinstance(value, dict):
            target = into.setdefault(name, {})
            for k, v in value.items():
                target[k] = v
                sources[f"{name}.{k}"] = source
        else:
            into[name] = value
            sources[name] = source


class Policies:
    """All loaded layers; `policy_for` answers what watches one series."""

    def __init__(self, layers: dict[str, dict[str, dict[str, tuple[dict[str, Any], str]]]]) -> None:
        # layer → scope ("" for metrics, kind, customer, "customer/site", device) → metric → (table, file)
        self.layers = layers

    def _tables(self, layer: str, scope: str, key: str) -> list[tuple[dict[str, Any], str]]:
        found = self.layers.get(layer, {}).get(scope, {})
        out = []
        base = _base(key)
        for name in ((base, key) if key != base else (base,)):
            if name in found:
                table, path = found[name]
                label = f"{layer}.{scope}.{name}" if scope else f"{layer}.{name}"
                out.append((table, f"{label} ({path})"))
        return out

    def policy_for(self, metric_key: str, device_kind: str | None = None, customer: str | None = None,
                   site: str | None = None, device: str | None = None) -> MetricPolicy:
        """The merged policy for one series: metric default < kind < customer < site < device."""
        chain = self._tables("metrics", "", metric_key)
        if device_kind:
            chain += self._tables("kinds", device_kind, metric_key)
        if customer:
            chain += self._tables("customers", customer, metric_key)
            if site:
                chain += self._tables("sites", f"{customer}/{site}", metric_key)
        if device:
            chain += self._tables("devices", device, metric_key)
        merged: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for table, source in chain:
            _merge(merged, table, source, sources)
        detectors = {name: {**DEFAULTS[name], **merged[name]} for name in DETECTORS if name in merged}
        _check_merged(detectors, f"policy for {metric_key}")
        detectors = {name: params for name, params in detectors.items() if params.get("enabled", True)}
        base = _base(metric_key)
        return MetricPolicy(metric=metric_key, title=merged.get("title", base), unit=merged.get("unit", ""),
                            detectors=detectors, value_words=dict(merged.get("value_words", {})), sources=sources)


def load_policies(folder: Path | str = DEFAULT_DIR) -> Policies:
    """Read every *.toml in `folder`, check each field; a PolicyError names the file and field."""
    folder = Path(folder)
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise PolicyError(f"{folder}: no policy files (*.toml)")
    layers: dict[str, dict[str, dict[str, tuple[dict[str, Any], str]]]] = {name: {} for name in LAYERS}
    for path in files:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{path}: not valid TOML: {exc}") from None
        for layer, content in data.items():
            if layer not in LAYERS:
                raise PolicyError(f"{path}: {layer}: unknown section (known: {', '.join(LAYERS)})")
            if not isinstance(content, dict):
                raise PolicyError(f"{path}: {layer}: must be a table")
            scoped = {"": content} if layer == "metrics" else content
            for scope, metrics in scoped.items():
                if not isinstance(metrics, dict):
                    raise PolicyError(f"{path}: {layer}.{scope}: must be a table of metrics")
                if layer == "sites" and scope.count("/") != 1:
                    raise PolicyError(f"{path}: sites.{scope}: a site is named \"customer/site\"")
                for metric, table in metrics.items():
                    where = f"{path}: {layer}.{scope + '.' if scope else ''}{metric}"
                    _check_metric_table(table, where)
                    slot = layers[layer].setdefault(scope, {})
                    if metric in slot:
                        raise PolicyError(f"{where}: also defined in {slot[metric][1]}")
                    slot[metric] = (table, path.name)
    policies = Policies(layers)
    # every layer must make sense on top of the metric default (and its kind)
    for layer in LAYERS:
        for scope, metrics in layers[layer].items():
            for metric, (table, name) in metrics.items():
                merged: dict[str, Any] = {}
                chain = policies._tables("metrics", "", metric)
                if layer in ("kinds",):
                    chain += policies._tables("kinds", scope, metric)
                else:
                    chain += [(table, name)]
                for t, source in chain:
                    _merge(merged, t, source, {})
                detectors = {d: {**DEFAULTS[d], **merged[d]} for d in DETECTORS if d in merged}
                _check_merged(detectors, f"{folder / name}: {layer}.{scope + '.' if scope else ''}{metric}")
    return policies


_loaded: Policies | None = None


def policy_for(metric_key: str, device_kind: str | None = None, customer: str | None = None,
               site: str | None = None, device: str | None = None) -> MetricPolicy:
    """The policy for one series from the shipped files (loaded once)."""
    global _loaded
    if _loaded is None:
        _loaded = load_policies()
    return _loaded.policy_for(metric_key, device_kind, customer, site, device)
