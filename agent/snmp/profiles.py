"""SNMP device profiles: data files (TOML) that say what to poll, read by one generic poller.

A profile file holds one profile (top-level keys) or several (``[[profiles]]``). Profiles shipped in
agent/data/snmp are read first; a directory named by ``snmp.profiles_dir`` adds to them or replaces
one of the same name. docs/snmp.md explains how to write one.

Two sorts of profile, combined by ``auto``:
- standard MIB profiles (``detect = OID``): polled on every device that answers under that OID;
- identification profiles (``sysobjectid`` prefixes, ``sysdescr`` patterns): the best match names
  the device's kind and may add vendor readings.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from agent import wire
from agent.snmp.expr import Expression, ExpressionError

METRIC_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,79}$")
OID = re.compile(r"^\d+(\.\d+)+$")
SEVERITIES = ("info", "warning", "critical")


class ProfileError(ValueError):
    """A profile file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Reading:
    """One value read from the device: a scalar, or a column of a table."""

    oid: str
    name: str | None = None          # the metric it becomes; None for an alias-only input
    alias: str | None = None         # the name expressions use
    type: str = "gauge"              # gauge or counter (counters become per-second rates)
    scale: float = 1.0
    unit: str = ""
    description: str = ""
    expr: Expression | None = None   # applied to ``value`` after scaling
    fallback: str | None = None      # an OID used when ``oid`` has no value (e.g. 32-bit counters)
    fallback_scale: float | None = None


@dataclass(frozen=True)
class Computed:
    name: str
    expr: Expression
    unit: str = ""
    description: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    label: str                        # the label key of its series: if_in_bps{if=ge-0/0/1}
    columns: tuple[Reading, ...]
    label_oids: tuple[str, ...] = ()  # first one with a value names the row; else the index
    computed: tuple[Computed, ...] = ()
    kind: str = "plain"               # or "entity-sensor" (type, scale and precision columns)
    sensor_types: dict[int, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Trap:
    oid: str
    name: str
    severity: str
    text: str


@dataclass(frozen=True)
class Profile:
    name: str
    description: str = ""
    source: str = ""
    always: bool = False
    detect: str | None = None
    sysobjectid: tuple[str, ...] = ()
    sysdescr: tuple[re.Pattern[str], ...] = ()
    kind: str | None = None
    #: The sysObjectID names the SNMP agent software, not the device (net-snmp's): a detected
    #: standard MIB's kind wins over this profile's.
    generic: bool = False
    include: tuple[str, ...] = ()
    scalars: tuple[Reading, ...] = ()
    computed: tuple[Computed, ...] = ()
    tables: tuple[Table, ...] = ()
    traps: tuple[Trap, ...] = ()

    @property
    def identifies(self) -> bool:
        return bool(self.sysobjectid or self.sysdescr)

    def match_score(self, sys_object_id: str, sys_descr: str) -> int:
        """How well this profile fits a device: the longest matching sysObjectID prefix, or 1 for a
        sysDescr pattern; 0 for no match."""
        best = 0
        for prefix in self.sysobjectid:
            if sys_object_id == prefix.rstrip(".") or sys_object_id.startswith(prefix):
                best = max(best, 10 + len(prefix))
        if not best and any(p.search(sys_descr) for p in self.sysdescr):
            best = 1
        return best

    def metrics(self) -> list[wire.MetricInfo]:
        """The catalogue entries this profile produces."""
        out: list[wire.MetricInfo] = []
        for r in self.scalars:
            if r.name:
                out.append(wire.MetricInfo(r.name, r.unit, "gauge", r.description))
        out.extend(wire.MetricInfo(c.name, c.unit, "gauge", c.description) for c in self.computed)
        for t in self.tables:
            out.extend(wire.MetricInfo(r.name, r.unit, "gauge", r.description) for r in t.columns if r.name)
            out.extend(wire.MetricInfo(c.name, c.unit, "gauge", c.description) for c in t.computed)
            out.extend(wire.MetricInfo(s["name"], s.get("unit", ""), "gauge", s.get("description", ""))
                       for s in t.sensor_types.values())
        return out


# ---------------------------------------------------------------- parsing

def _check_keys(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ProfileError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _oid(value: Any, where: str) -> str:
    if not isinstance(value, str) or not OID.match(value):
        raise ProfileError(f"{where}: {value!r} is not a numeric OID (e.g. 1.3.6.1.2.1.1.3.0)")
    return value


def _expr(value: Any, where: str, names: set[str]) -> Expression:
    try:
        return Expression(value, names)
    except ExpressionError as exc:
        raise ProfileError(f"{where}: {exc}") from None


_READING_KEYS = {"oid", "name", "alias", "type", "scale", "unit", "description", "expr", "fallback",
                 "fallback_scale"}


def _reading(raw: dict[str, Any], where: str) -> Reading:
    _check_keys(raw, _READING_KEYS, where)
    name, alias = raw.get("name"), raw.get("alias")
    if name is None and alias is None:
        raise ProfileError(f"{where}: needs a name (a metric) or an alias (an input for expressions)")
    if name is not None and not METRIC_NAME.match(name):
        raise ProfileError(f"{where}: metric name {name!r} must be snake_case")
    kind = raw.get("type", "gauge")
    if kind not in ("gauge", "counter"):
        raise ProfileError(f"{where}: type {kind!r} must be gauge or counter")
    if name and not raw.get("description"):
        raise ProfileError(f"{where}: metric {name!r} needs a description")
    return Reading(
        oid=_oid(raw.get("oid"), f"{where}.oid"), name=name, alias=alias, type=kind,
        scale=float(raw.get("scale", 1.0)), unit=str(raw.get("unit", "")),
        description=str(raw.get("description", "")),
        expr=_expr(raw["expr"], f"{where}.expr", {"value"}) if "expr" in raw else None,
        fallback=_oid(raw["fallback"], f"{where}.fallback") if "fallback" in raw else None,
        fallback_scale=float(raw["fallback_scale"]) if "fallback_scale" in raw else None)


def _computed(raw: dict[str, Any], where: str, names: set[str]) -> Computed:
    _check_keys(raw, {"name", "expr", "unit", "description"}, where)
    name = raw.get("name")
    if not isinstance(name, str) or not METRIC_NAME.match(name):
        raise ProfileError(f"{where}: metric name {name!r} must be snake_case")
    if not raw.get("description"):
        raise ProfileError(f"{where}: metric {name!r} needs a description")
    return Computed(name, _expr(raw.get("expr"), f"{where}.expr", names), str(raw.get("unit", "")),
                    str(raw["description"]))


def _table(raw: dict[str, Any], where: str) -> Table:
    _check_keys(raw, {"name", "label", "label_oids", "columns", "computed", "kind", "sensor_types"}, where)
    if not raw.get("columns"):
        raise ProfileError(f"{where}: a table needs columns")
    columns = tuple(_reading(c, f"{where}.columns[{i}]") for i, c in enumerate(raw["columns"]))
    aliases = {c.alias for c in columns if c.alias}
    kind = raw.get("kind", "plain")
    if kind not in ("plain", "entity-sensor"):
        raise ProfileError(f"{where}: kind {kind!r} must be plain or entity-sensor")
    sensor_types = {int(k): dict(v) for k, v in raw.get("sensor_types", {}).items()}
    if kind == "entity-sensor":
        missing = {"type", "scale", "precision", "value"} - aliases
        if missing or not sensor_types:
            raise ProfileError(f"{where}: an entity-sensor table needs columns aliased type, scale, "
                               f"precision and value, and sensor_types")
    label = raw.get("label", "index")
    if not isinstance(label, str) or not re.match(r"^[a-z_][a-z0-9_]*$", label):
        raise ProfileError(f"{where}: label {label!r} must be a snake_case word")
    return Table(
        name=str(raw.get("name", "table")), label=label, columns=columns,
        label_oids=tuple(_oid(o, f"{where}.label_oids") for o in raw.get("label_oids", [])),
        computed=tuple(_computed(c, f"{where}.computed[{i}]", aliases) for i, c in enumerate(raw.get("computed", []))),
        kind=kind, sensor_types=sensor_types)


_PROFILE_KEYS = {"name", "description", "always", "detect", "sysobjectid", "sysdescr", "kind", "generic",
                 "include", "scalars", "computed", "tables", "traps"}


def parse_profile(raw: dict[str, Any], source: str) -> Profile:
    name = raw.get("name")
    where = f"{source}: profile {name!r}"
    if not isinstance(name, str) or not re.match(r"^[a-z0-9][a-z0-9_.-]*$", name):
        raise ProfileError(f"{source}: profile name {name!r} must be lower-case letters, digits, '-', '_' or '.'")
    _check_keys(raw, _PROFILE_KEYS, where)
    scalars = tuple(_reading(s, f"{where} scalars[{i}]") for i, s in enumerate(raw.get("scalars", [])))
    aliases = {s.alias for s in scalars if s.alias}
    patterns = []
    for p in raw.get("sysdescr", []):
        try:
            patterns.append(re.compile(p))
        except re.error as exc:
            raise ProfileError(f"{where}: sysdescr pattern {p!r}: {exc}") from None
    traps = []
    for i, t in enumerate(raw.get("traps", [])):
        _check_keys(t, {"oid", "name", "severity", "text"}, f"{where} traps[{i}]")
        if t.get("severity", "info") not in SEVERITIES:
            raise ProfileError(f"{where} traps[{i}]: severity must be one of {SEVERITIES}")
        traps.append(Trap(_oid(t.get("oid"), f"{where} traps[{i}].oid"), str(t.get("name", "")),
                          t.get("severity", "info"), str(t.get("text", ""))))
    return Profile(
        name=name, description=str(raw.get("description", "")), source=source,
        always=bool(raw.get("always", False)),
        detect=_oid(raw["detect"], f"{where}.detect") if "detect" in raw else None,
        sysobjectid=tuple(raw.get("sysobjectid", [])), sysdescr=tuple(patterns),
        kind=raw.get("kind"), generic=bool(raw.get("generic", False)), include=tuple(raw.get("include", [])),
        scalars=scalars,
        computed=tuple(_computed(c, f"{where} computed[{i}]", aliases) for i, c in enumerate(raw.get("computed", []))),
        tables=tuple(_table(t, f"{where} tables[{i}]") for i, t in enumerate(raw.get("tables", []))),
        traps=tuple(traps))


def _parse_file(text: str, source: str) -> list[Profile]:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}") from None
    if "profiles" in raw:
        return [parse_profile(p, source) for p in raw["profiles"]]
    return [parse_profile(raw, source)]


# ---------------------------------------------------------------- the library

class Library:
    """Every known profile by name, and the choice of profiles for one device."""

    def __init__(self, profiles: list[Profile]) -> None:
        self.profiles = {p.name: p for p in profiles}
        for p in profiles:
            for inc in p.include:
                if inc not in self.profiles:
                    raise ProfileError(f"{p.source}: profile {p.name!r} includes unknown profile {inc!r}")

    @classmethod
    def load(cls, extra_dir: str | Path | None = None) -> "Library":
        """The shipped profiles, then those of ``extra_dir`` (same name replaces)."""
        found: dict[str, Profile] = {}
        shipped = resources.files("agent").joinpath("data", "snmp")
        for entry in sorted(shipped.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".toml"):
                for p in _parse_file(entry.read_text("utf-8"), f"agent/data/snmp/{entry.name}"):
                    found[p.name] = p
        if extra_dir:
            directory = Path(extra_dir)
            if not directory.is_dir():
                raise ProfileError(f"snmp.profiles_dir {str(directory)!r} is not a directory")
            for path in sorted(directory.glob("*.toml")):
                for p in _parse_file(path.read_text("utf-8"), str(path)):
                    found[p.name] = p
        return cls(list(found.values()))

    @property
    def detectable(self) -> list[Profile]:
        return [p for p in self.profiles.values() if p.detect]

    def identify(self, sys_object_id: str, sys_descr: str) -> Profile | None:
        """The identification profile that fits best, if any."""
        scored = [(p.match_score(sys_object_id, sys_descr), p.name, p)
                  for p in self.profiles.values() if p.identifies]
        scored = [s for s in scored if s[0] > 0]
        return max(scored)[2] if scored else None

    def resolve(self, names: list[str]) -> list[Profile]:
        """The named profiles with their includes and the always-on ones, each once, in order."""
        out: list[Profile] = [p for p in self.profiles.values() if p.always]
        seen = {p.name for p in out}

        def add(name: str) -> None:
            if name in seen:
                return
            if name not in self.profiles:
                raise ProfileError(f"unknown SNMP profile {name!r} (known: {', '.join(sorted(self.profiles))})")
            seen.add(name)
            profile = self.profiles[name]
            out.append(profile)
            for inc in profile.include:
                add(inc)

        for name in names:
            add(name)
        return out

    def traps(self) -> dict[str, tuple[Profile, Trap]]:
        return {t.oid: (p, t) for p in self.profiles.values() for t in p.traps}
