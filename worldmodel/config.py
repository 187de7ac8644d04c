"""Typed configs: dataclasses filled from YAML files and ``dotted.key=value`` overrides.

Each component declares its own dataclass next to its code (``PlannerConfig`` in
``worldmodel/planning``, ``EnsembleConfig`` in ``worldmodel/models`` ...); an agent composes
them into one experiment config. This module only knows how to turn plain data into those
dataclasses strictly: an unknown key, a wrong type or a value out of range is a
``ConfigError`` whose message names the key and what is valid.

    cfg = load_config(StateAgentConfig, "configs/state_smoke.yaml", ["planner.horizon=1"])
    save_config(cfg, logdir / "config.yaml")
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar, Union

import yaml

from worldmodel.errors import ConfigError

T = TypeVar("T")


def check(condition: bool, message: str) -> None:
    """Raise ``ConfigError(message)`` unless ``condition``; for ``__post_init__`` validation."""
    if not condition:
        raise ConfigError(message)


def load_config(
    cls: type[T], path: str | Path | Mapping[str, Any] | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> T:
    """Defaults of ``cls``, updated by the YAML file at ``path`` (or a mapping of the same data, e.g. a
    policy file's config), then by ``key.sub=value`` overrides.

    A file value tied to another key (a dataclass's ``TIED`` map, e.g. ``env.action_repeat`` to
    ``env.id``) is dropped, back to its default, when an override changes that key to a different
    value, unless the same overrides set the tied value too. A key that moved (the config class's
    ``MOVED`` map, old dotted key -> new one) is read under its new name, in files (run folders of
    older versions) and overrides alike.
    """
    data: dict[str, Any] = {}
    if isinstance(path, Mapping):
        data = copy.deepcopy(dict(path))
    elif path is not None:
        data = read_yaml(path)
    moved = getattr(cls, "MOVED", {})
    move_keys(data, moved)
    parsed = [(moved.get(key, key), value) for key, value in map(parse_override, overrides)]
    drop_tied_values(cls, data, dict(parsed))
    for key, value in parsed:
        set_dotted(data, key, value)
    return from_dict(cls, data)


def move_keys(data: dict[str, Any], moved: Mapping[str, str]) -> None:
    """Put each value found under an old dotted key of ``moved`` under its new key (in place)."""
    missing = object()
    for old, new in moved.items():
        value = get_dotted(data, old, missing)
        if value is missing:
            continue
        parent = get_dotted(data, old.rpartition(".")[0], None) if "." in old else data
        del parent[old.rpartition(".")[2]]
        if get_dotted(data, new, missing) not in (missing, value):
            raise ConfigError(f"{old} (the older name of {new}) and {new} are both given, with different values")
        set_dotted(data, new, value)


def tied_keys(cls: type, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, dotted key it belongs to) for every ``TIED`` entry of ``cls`` and its nested dataclasses."""
    pairs = [(prefix + key, prefix + source) for key, source in getattr(cls, "TIED", {}).items()]
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            pairs += tied_keys(hints[f.name], f"{prefix}{f.name}.")
    return pairs


def drop_tied_values(cls: type, data: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Remove from ``data`` (the file's values) each tied value whose key ``overrides`` changes and leaves it alone."""
    missing = object()
    for key, source in tied_keys(cls):
        changed = source in overrides and overrides[source] != get_dotted(data, source, missing)
        if changed and key not in overrides:
            parent = get_dotted(data, key.rpartition(".")[0], None) if "." in key else data
            if isinstance(parent, dict):
                parent.pop(key.rpartition(".")[2], None)


def get_dotted(data: dict[str, Any], key: str, default: Any) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``"planner.horizon=1"`` -> ``("planner.horizon", 1)``; the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like key.sub=value, e.g. planner.horizon=1")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {key}: {part} is a value, not a section")
        node = child
    node[parts[-1]] = value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; missing keys keep their defaults, unknown keys are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise ConfigError(unknown_key_message(prefix + str(key), key, list(fields)))
    kwargs = {
        key: coerce(hints[key], with_section_defaults(fields[key], value), prefix + key) for key, value in data.items()
    }
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {err}") from None


def with_section_defaults(f: dataclasses.Field, value: Any) -> Any:
    """A partial section (``planner: {elites: 5}``) keeps the other values of the field's own default,
    e.g. the agent's default planner, not the bare class defaults of ``PlannerConfig``."""
    if not isinstance(value, dict) or f.default_factory is dataclasses.MISSING:
        return value
    default = f.default_factory()
    if not dataclasses.is_dataclass(default):
        return value
    return deep_merge(to_dict(default), value)


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def unknown_key_message(dotted: str, key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(str(key), valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown config key {dotted!r}{hint}; valid keys here: {', '.join(valid)}"


def coerce(tp: Any, value: Any, name: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (converting where lossless, e.g. 1 -> 1.0)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, name + ".")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(arg, value, name)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{name}: {value!r} fits none of {tp}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{name} must be one of {', '.join(map(repr, args))}; got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        item_type = args[0] if args else Any
        items = [coerce(item_type, v, f"{name}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 2e-4 (no dot) as a string; Python reads it as the number
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name} must be a string, got {value!r}")
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping, got {value!r}")
        return dict(value)
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) ready for YAML or wandb."""

    def plain(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x

    return plain(dataclasses.asdict(cfg))


def save_config(cfg: Any, path: str | Path) -> None:
    """Write ``cfg`` as YAML, atomically: a kill leaves the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    os.replace(tmp, path)
