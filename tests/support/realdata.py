"""Real material for the tests, fetched at test time from PyPI (never committed).

`sdist(name, version)` downloads a package's source distribution once with pip (no
dependencies, no wheels) into CACHE and unpacks it there; the tests then read the real files the
package ships (Protego's robots.txt corpus, Warcat's example WARCs). Without network the test is
skipped, with pip's reason. CACHE is `$WIT_REALDATA`, else ~/.cache/witbuilder-realdata (outside
the repository).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("WIT_REALDATA",
                            Path.home() / ".cache" / "witbuilder-realdata")).expanduser()


def find_archive(name: str, version: str) -> Path | None:
    """The downloaded sdist of `name==version` in CACHE, if any (PyPI file names vary in case
    and in `-`/`_`)."""
    wanted = f"{name}-{version}.tar.gz".lower().replace("_", "-")
    if CACHE.is_dir():
        for path in CACHE.iterdir():
            if path.is_file() and path.name.lower().replace("_", "-") == wanted:
                return path
    return None


def sdist(name: str, version: str) -> Path:
    """The unpacked root of `name==version`'s source distribution (downloaded and unpacked
    once); skips the test when pip cannot fetch it."""
    archive = find_archive(name, version)
    if archive is None:
        CACHE.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   f"{name}=={version}", "-d", str(CACHE)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as error:
            pytest.skip(f"cannot fetch {name}=={version} from PyPI: {error}")
        archive = find_archive(name, version)
        if done.returncode != 0 or archive is None:
            reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no archive"]
            pytest.skip(f"cannot fetch {name}=={version} from PyPI: {reason[0]}")
    root = CACHE / "unpacked" / archive.name.removesuffix(".tar.gz")
    marker = root / ".unpacked"
    if not marker.exists():
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(partial, filter="data")
        tops = list(partial.iterdir())
        source = tops[0] if len(tops) == 1 and tops[0].is_dir() else partial
        if root.exists():
            shutil.rmtree(root)
        source.rename(root)
        if partial.exists():
            shutil.rmtree(partial)
        marker.touch()
    return root
