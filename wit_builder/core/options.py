"""The pieces every settings dataclass is made of (shared by `wit_builder` and `trainer`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class WitError(Exception):
    """A problem with the user's input: the CLI prints its one-line message, not a traceback."""


class ConfigError(WitError):
    """A configuration file or option that cannot be used; the message says which and why."""


def option(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field carrying its help text and, optionally: `choices`; `min` / `max` (the
    allowed range of a number, bounds included), `above` / `below` (bounds excluded), checked
    when the settings are read, before any work; `aliases` (other spellings of the option on
    the command line, such as img2dataset's); `metavar`, `positional`."""
    metadata = {"help": help, **extra}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class StageConfig:
    workdir: str = option(".", "directory or fsspec URL (s3://bucket/run) holding queries/, "
                                "data/, manifests/ and runs/")
    seed: int = option(0, "seed of every random choice; same seed and inputs, same outputs")

    def path(self, relative: str | Path) -> Path | str:
        """`relative` resolved against the workdir (a directory or an fsspec URL such as
        s3://bucket/run); absolute paths and URLs come back as they are."""
        from wit_builder.core import store  # store imports this module

        text = str(relative)
        if store.is_url(text):
            return text
        workdir = str(self.workdir)
        if store.is_url(workdir) and not Path(text).is_absolute():
            return f"{workdir.rstrip('/')}/{text.removeprefix('./')}"
        return Path(workdir) / text

    def replace(self, **changes: Any) -> Any:
        """A copy with `changes`, keeping what the loader recorded beside the fields (which
        options were set explicitly, the config file read)."""
        copy = dataclasses.replace(self, **changes)
        for name in ("explicit", "config_file"):
            if hasattr(self, name):
                setattr(copy, name, getattr(self, name))
        return copy
