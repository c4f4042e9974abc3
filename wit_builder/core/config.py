"""Settings read from a TOML file and overridden by the command line: one dataclass per stage,
built and checked here; each stage's dataclass lives in its own package and the registry of
stages in `wit_builder.cli`.

A field's `metadata["help"]` is its documentation: `wit STAGE --help` is generated from it, so a
field added to a stage's settings is at once a TOML key (`[stage] name = ...`) and a command-line
option (`--name`). Paths are relative to `workdir` unless absolute.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wit_builder.core.options import ConfigError, StageConfig, option


@dataclass
class PartitionedStageConfig(StageConfig):
    """A stage whose work is split into partitions that engine.py runs."""

    workers: int = option(0, "worker processes (0: one per core)", min=0)
    engine: str = option("local", "where partitions run", choices=["local", "ray"])
    ray_address: str = option("", "with --engine ray: the Ray cluster to join (host:port, "
                                  "ray://host:port or auto); default: a local Ray")


def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML file as a dict; a missing or malformed file is a ConfigError naming it."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config: file '{path}' does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config: '{path}' is not valid TOML: {error}") from None


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type annotations of a config dataclass's fields."""
    return typing.get_type_hints(cls)


def check_value(stage: str, name: str, value: Any, expected: Any, source: str) -> Any:
    """`value` converted to the field's type, or a ConfigError saying what was expected."""
    origin = typing.get_origin(expected)
    if origin is list:
        if not isinstance(value, list):
            value = [value]
        return [check_value(stage, name, item, typing.get_args(expected)[0], source) for item in value]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected in (int, float, str, bool) and not isinstance(value, expected) \
            or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"config: [{stage}] {name} = {value!r} in {source} "
                          f"should be of type {expected.__name__}")
    return value


def build_config(stage: str, cls: type, file_values: dict[str, Any], overrides: dict[str, Any],
                 source: str = "the config file") -> Any:
    """The stage's dataclass `cls` from the file's top-level keys, its [stage] section, then
    overrides."""
    types = field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in file_values.items():
        if not isinstance(value, dict) and key in names:
            values[key] = value
    section = file_values.get(stage, {})
    if not isinstance(section, dict):
        raise ConfigError(f"config: '{stage}' in {source} must be a [{stage}] table")
    for key, value in section.items():
        if key not in names:
            raise ConfigError(f"config: unknown key '{key}' in [{stage}] of {source}; "
                              f"known keys: {', '.join(sorted(names))}")
        values[key] = value
    values.update(overrides)
    checked = {key: check_value(stage, key, value, types[key], source)
               for key, value in values.items()}
    config = cls(**checked)
    validate_choices(stage, config)
    validate_ranges(stage, config)
    # Which options the file or the command line set, so that lower-priority defaults (a model
    # preset's [train] table) apply only to the others.
    config.explicit = frozenset(checked)
    return config


def validate_choices(stage: str, config: Any) -> None:
    for item in dataclasses.fields(config):
        choices = item.metadata.get("choices")
        value = getattr(config, item.name)
        if choices and value not in choices:
            raise ConfigError(f"config: [{stage}] {item.name} = {value!r} is not one of "
                              f"{', '.join(choices)}")


def validate_ranges(stage: str, config: Any) -> None:
    """Every number inside its field's declared range (`min`, `max`, `above`, `below`), or one
    line naming the option and the range: checked before the stage writes anything."""
    for item in dataclasses.fields(config):
        meta, value = item.metadata, getattr(config, item.name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        low, high = meta.get("min"), meta.get("max")
        above, below = meta.get("above"), meta.get("below")
        wrong = (low is not None and value < low) or (high is not None and value > high) \
            or (above is not None and value <= above) or (below is not None and value >= below)
        if wrong:
            allowed = " and ".join(part for part in (
                f"more than {above}" if above is not None else "",
                f"at least {low}" if low is not None else "",
                f"at most {high}" if high is not None else "",
                f"less than {below}" if below is not None else "") if part)
            raise ConfigError(f"config: --{item.name.replace('_', '-')} ([{stage}] {item.name}) "
                              f"must be {allowed}, not {value!r}")
