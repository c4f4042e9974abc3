"""Input file specifications shared by the sources: a file, a directory or a glob."""

from __future__ import annotations

import glob
from collections.abc import Callable
from pathlib import Path

from wit_builder.core.options import WitError


def expand_input_paths(spec: str, wanted: Callable[[str], bool], what: str) -> list[str]:
    """A file, a directory (its files whose name is `wanted`) or a glob, as a sorted list of
    existing files; a WitError naming `what` and the spec when nothing usable is found."""
    if any(char in spec for char in "*?["):
        paths = sorted(glob.glob(spec))
    elif Path(spec).is_dir():
        paths = sorted(str(p) for p in Path(spec).iterdir()
                       if p.is_file() and not p.name.startswith(".") and wanted(p.name))
    else:
        paths = [spec]
    if not paths:
        raise WitError(f"{what}: '{spec}' matches no file")
    for path in paths:
        if not Path(path).is_file():
            raise WitError(f"{what}: '{path}' does not exist")
    return paths
