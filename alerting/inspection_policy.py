"""Inspection rules and checklists as data (alerting/data/inspection.toml, alerting/data/checklists/).

Checked field by field at start, so a wrong file stops the server with the file and field named.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from alerting.policies import PolicyError

DEFAULT_FILE = Path(__file__).parent / "data" / "inspection.toml"
CHECKLIST_DIR = Path(__file__).parent / "data" / "checklists"
LANGS = ("en", "zh-CN")


@dataclass(frozen=True)
class ChecklistItem:
    id: str
    text: dict[str, str]
    metric: str | None = None


@dataclass(frozen=True)
class Checklist:
    name: str
    kinds: tuple[str, ...]
    title: dict[str, str]
    items: tuple[ChecklistItem, ...]

    def public(self, lang: str = "en") -> dict[str, Any]:
        return {"name": self.name, "title": self.title[lang],
                "items": [{"id": i.id, "text": i.text[lang], "metric": i.metric} for i in self.items]}


@dataclass(frozen=True)
class HealthRule:
    below: float
    within_days: int


@dataclass(frozen=True)
class OverdueStep:
    after_days: int
    roles: tuple[str, ...]


@dataclass(frozen=True)
class InspectionPolicy:
    cadences: dict[str, int]                 # name → months
    health: tuple[HealthRule, ...]           # highest `below` last
    forecast_horizon_days: int
    forecast_lead_days: int
    overdue: tuple[OverdueStep, ...]
    default_checklist: str
    callback_plans: dict[str, tuple[tuple[int, int | None], ...]]  # name → ((every_months, until_month), …)
    checklists: dict[str, Checklist]

    def checklist_for(self, kind: str) -> Checklist:
        for c in self.checklists.values():
            if kind in c.kinds:
                return c
        return self.checklists[self.default_checklist]

    def months(self, cadence: str) -> int:
        if cadence not in self.cadences:
            raise PolicyError(f"inspection cadence {cadence!r} is not one of {', '.join(self.cadences)}")
        return self.cadences[cadence]


def _need(d: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise PolicyError(f"{where}: {key} missing")
    value = d[key]
    if not isinstance(value, typ) or isinstance(value, bool) and typ is not bool:
        raise PolicyError(f"{where}: {key} has the wrong type ({type(value).__name__})")
    return value


def _texts(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or any(not isinstance(value.get(lang), str) or not value[lang] for lang in LANGS):
        raise PolicyError(f"{where}: needs a text for every language ({', '.join(LANGS)})")
    return {lang: value[lang] for lang in LANGS}


def load_checklists(folder: Path | str = CHECKLIST_DIR) -> dict[str, Checklist]:
    out: dict[str, Checklist] = {}
    for path in sorted(Path(folder).glob("*.toml")):
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{path}: {exc}") from None
        name = _need(raw, "name", str, str(path))
        items = []
        for i, item in enumerate(_need(raw, "items", list, str(path))):
            where = f"{path}: items[{i}]"
            items.append(ChecklistItem(_need(item, "id", str, where), _texts(item.get("text"), where + ".text"),
                                       item.get("metric")))
        if not items:
            raise PolicyError(f"{path}: a checklist needs at least one item")
        if len({i.id for i in items}) != len(items):
            raise PolicyError(f"{path}: item ids must be unique")
        if name in out:
            raise PolicyError(f"{path}: checklist {name!r} defined twice")
        out[name] = Checklist(name, tuple(_need(raw, "kinds", list, str(path))),
                              _texts(raw.get("title"), f"{path}: title"), tuple(items))
    return out


def load_inspection_policy(path: Path | str = DEFAULT_FILE,
                           checklist_dir: Path | str = CHECKLIST_DIR) -> InspectionPolicy:
    where = str(path)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{where}: {exc}") from None
    cadences = _need(raw, "cadences", dict, where)
    for name, months in cadences.items():
        if not isinstance(months, int) or isinstance(months, bool) or not 1 <= months <= 60:
            raise PolicyError(f"{where}: cadences.{name} must be a whole number of months, 1–60")
    health = []
    for i, rule in enumerate(raw.get("health", [])):
        w = f"{where}: health[{i}]"
        below = _need(rule, "below", (int, float), w)
        days = _need(rule, "within_days", int, w)
        if not 0 < below <= 100 or days < 0:
            raise PolicyError(f"{w}: below in (0, 100], within_days ≥ 0")
        health.append(HealthRule(float(below), days))
    fc = _need(raw, "forecast", dict, where)
    overdue = []
    for i, step in enumerate(raw.get("overdue", [])):
        w = f"{where}: overdue[{i}]"
        overdue.append(OverdueStep(_need(step, "after_days", int, w), tuple(_need(step, "roles", list, w))))
    plans: dict[str, tuple[tuple[int, int | None], ...]] = {}
    for name, plan in _need(raw, "callbacks", dict, where).items():
        steps = []
        for i, step in enumerate(_need(plan, "steps", list, f"{where}: callbacks.{name}")):
            w = f"{where}: callbacks.{name}.steps[{i}]"
            every = _need(step, "every_months", int, w)
            until = step.get("until_month")
            if every < 1 or (until is not None and (not isinstance(until, int) or until < 1)):
                raise PolicyError(f"{w}: every_months ≥ 1, until_month a whole number ≥ 1")
            if until is None and i != len(plan["steps"]) - 1:
                raise PolicyError(f"{w}: only the last step may leave until_month out")
            steps.append((every, until))
        plans[name] = tuple(steps)
    checklists = load_checklists(checklist_dir)
    default = raw.get("defaults", {}).get("checklist", "generic")
    if default not in checklists:
        raise PolicyError(f"{where}: defaults.checklist {default!r} is not a checklist in {checklist_dir}")
    return InspectionPolicy(cadences, tuple(sorted(health, key=lambda r: r.below)),
                            _need(fc, "horizon_days", int, where + " forecast"),
                            _need(fc, "lead_days", int, where + " forecast"),
                            tuple(sorted(overdue, key=lambda s: s.after_days)), default, plans, checklists)


@lru_cache(maxsize=1)
def default_policy() -> InspectionPolicy:
    return load_inspection_policy()
