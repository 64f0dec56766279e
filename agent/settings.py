"""Typed settings from a TOML file plus ``FLEETCARE_<SECTION>_<KEY>`` environment variables.

One small loader serves every process (agent, collector, server) so that configuration errors read
the same everywhere: a bad value stops start-up with a message naming the file, the field and what
was expected. It lives in the agent package because the agent may import nothing from the server.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

T = TypeVar("T")

ENV_PREFIX = "FLEETCARE_"


class SettingsError(ValueError):
    """A configuration value is missing, unknown or of the wrong type; the message names the field."""


def load_settings(cls: type[T], path: str | Path | None = None, *,
                  environ: Mapping[str, str] | None = None) -> T:
    """Build ``cls`` (a dataclass of section dataclasses) from defaults, then TOML, then environment."""
    data: dict[str, Any] = {}
    source = "configuration (defaults and environment)"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise SettingsError(f"{path}: configuration file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    env = os.environ if environ is None else environ
    _apply_env(cls, data, env)
    return _build(cls, data, source, prefix="")


def _apply_env(cls: type, data: dict[str, Any], env: Mapping[str, str]) -> None:
    """Overlay FLEETCARE_<SECTION>_<KEY> on the parsed TOML (scalars only; lists stay in the file)."""
    for section in dataclasses.fields(cls):
        section_cls = _section_type(cls, section.name)
        if section_cls is None:
            continue
        for field in dataclasses.fields(section_cls):
            name = f"{ENV_PREFIX}{section.name}_{field.name}".upper()
            if name in env:
                data.setdefault(section.name, {})[field.name] = _EnvString(env[name], name)


class _EnvString(str):
    """A raw environment value, converted to the field's type when the settings are built."""

    def __new__(cls, value: str, var: str) -> "_EnvString":
        obj = super().__new__(cls, value)
        obj.var = var  # type: ignore[attr-defined]
        return obj


def _section_type(cls: type, name: str) -> type | None:
    hint = typing.get_type_hints(cls)[name]
    return hint if dataclasses.is_dataclass(hint) else None


def _build(cls: type[T], data: Any, source: str, prefix: str) -> T:
    where = prefix.rstrip(".") or "top level"
    if not isinstance(data, dict):
        raise SettingsError(f"{source}: [{where}] must be a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"{source}: unknown setting {prefix}{unknown[0]} "
                            f"(known in [{where}]: {', '.join(sorted(known))})")
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name in data:
            kwargs[field.name] = _convert(hints[field.name], data[field.name], source,
                                          f"{prefix}{field.name}")
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{source}: [{where}] {exc}") from None
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as exc:
            message = str(exc)  # sections name their own fields ("agent.id ..."); list items do not
            raise SettingsError(f"{source}: {message if message.startswith(prefix) else prefix + message}") from None
    return obj


def _convert(hint: Any, value: Any, source: str, name: str) -> Any:
    origin = typing.get_origin(hint)
    from_env = isinstance(value, _EnvString)
    label = f"{value.var} (environment)" if from_env else f"{source}: {name}"  # type: ignore[attr-defined]
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (from_env and value == ""):
            return None
        return _convert(args[0], value, source, name)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, f"{name}.")
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise SettingsError(f"{label}: expected a list, got {value!r}")
        return [_convert(item, v, source, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SettingsError(f"{label}: expected a table, got {value!r}")
        return dict(value)
    if hint is bool:
        if from_env:
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        elif isinstance(value, bool):
            return value
        raise SettingsError(f"{label}: expected true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise SettingsError(f"{label}: expected a number, got {value!r}")
        try:
            converted = hint(value) if (from_env or isinstance(value, (int, float))) else None
        except ValueError:
            converted = None
        if converted is None or (hint is int and isinstance(value, float) and value != int(value)):
            raise SettingsError(f"{label}: expected {'an integer' if hint is int else 'a number'}, "
                                f"got {value!r}")
        return converted
    if hint is str:
        if not isinstance(value, str):
            raise SettingsError(f"{label}: expected a string, got {value!r}")
        return str(value)
    return value


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, Any]]:
    """(dotted name, type, default) for every setting: the table docs and the sample-config test use."""
    rows: list[tuple[str, str, Any]] = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            rows.extend(describe(hint, f"{prefix}{field.name}."))
            continue
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = field.default_factory()  # type: ignore[misc]
        else:
            default = None
        rows.append((f"{prefix}{field.name}", getattr(hint, "__name__", str(hint)), default))
    return rows
