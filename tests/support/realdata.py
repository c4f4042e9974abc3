"""Real material for the tests and benchmarks, fetched at run time from the package registries
(never committed): PyPI source distributions and Debian packages.

`sdist(name, version)` downloads a package's source distribution once with pip (no dependencies,
no wheels) and unpacks it; `deb(package, version)` downloads a Debian package once with
`apt-get download` and unpacks its files (`dpkg-deb -x`). Tests then read the real files the
packages ship (Protego's robots.txt corpus, Warcat's example WARCs, GIMP's HTML manual). In a
test, a package that cannot be fetched (no network) skips the test with the tool's reason;
`fetch_sdist` / `fetch_deb` raise `Unavailable` instead, for benchmarks and `make realcheck`.
CACHE is `$WIT_REALDATA`, else ~/.cache/witbuilder-realdata (outside the repository).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

CACHE = Path(os.environ.get("WIT_REALDATA",
                            Path.home() / ".cache" / "witbuilder-realdata")).expanduser()


class Unavailable(RuntimeError):
    """A package could not be fetched (no network, no such version): the message says why."""


def find_archive(name: str, version: str) -> Path | None:
    """The downloaded sdist of `name==version` in CACHE, if any (PyPI file names vary in case
    and in `-`/`_`)."""
    wanted = f"{name}-{version}.tar.gz".lower().replace("_", "-")
    if CACHE.is_dir():
        for path in CACHE.iterdir():
            if path.is_file() and path.name.lower().replace("_", "-") == wanted:
                return path
    return None


def run_fetch(command: list[str], what: str, cwd: Path) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise Unavailable(f"cannot fetch {what}: {error}") from None
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no reason given"]
        raise Unavailable(f"cannot fetch {what}: {reason[0]}")


def unpack_once(root: Path, unpack: Callable[[Path], None]) -> Path:
    """`unpack(folder)` into `root`'s temporary sibling, renamed to `root` when complete."""
    marker = root / ".unpacked"
    if not marker.exists():
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        unpack(partial)
        if root.exists():
            shutil.rmtree(root)
        partial.rename(root)
        marker.touch()
    return root


def fetch_sdist(name: str, version: str) -> Path:
    """The unpacked root of `name==version`'s source distribution (downloaded and unpacked
    once)."""
    archive = find_archive(name, version)
    if archive is None:
        CACHE.mkdir(parents=True, exist_ok=True)
        # --no-binary NAME, not :all:: the build requirements pip installs to read the sdist's
        # metadata (numpy for gensim) may come as wheels
        run_fetch([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", name,
                   f"{name}=={version}", "-d", str(CACHE)], f"{name}=={version} from PyPI", CACHE)
        archive = find_archive(name, version)
        if archive is None:
            raise Unavailable(f"cannot fetch {name}=={version} from PyPI: no archive")

    def unpack(folder: Path) -> None:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(folder, filter="data")
        tops = list(folder.iterdir())
        if len(tops) == 1 and tops[0].is_dir():  # the sdist's own top folder becomes the root
            for path in tops[0].iterdir():
                path.rename(folder / path.name)
            tops[0].rmdir()

    return unpack_once(CACHE / "unpacked" / archive.name.removesuffix(".tar.gz"), unpack)


def fetch_deb(package: str, version: str) -> Path:
    """The root of Debian package `package` (`version`, as `apt-cache policy` lists it) unpacked
    (its usr/, etc/ …; downloaded and unpacked once)."""
    debs = CACHE / "debian"
    pattern = f"{package}_{version.replace(':', '%3a')}_*.deb"   # apt spells an epoch so
    archive = next(debs.glob(pattern), None) if debs.is_dir() else None
    if archive is None:
        debs.mkdir(parents=True, exist_ok=True)
        run_fetch(["apt-get", "download", f"{package}={version}"],
                  f"Debian package {package}={version}", debs)
        archive = next(debs.glob(pattern), None)
        if archive is None:
            raise Unavailable(f"cannot fetch Debian package {package}={version}: no .deb")

    def unpack(folder: Path) -> None:
        run_fetch(["dpkg-deb", "-x", str(archive), str(folder)], f"unpack {archive.name}", debs)

    return unpack_once(debs / "unpacked" / archive.stem, unpack)


def fetch_venv(requirement: str, version: str) -> Path:
    """The python of a throwaway virtual environment (cached) that holds `requirement==version`
    from PyPI over this project's own environment (its site-packages and the repository come
    after the venv's own, by a .pth file): how a user's environment with another version of one
    dependency behaves, without installing anything else. Run it with PYTHONPATH set to the
    checkout under test."""
    import hashlib
    import sysconfig

    base = sysconfig.get_paths()["purelib"]   # each environment gets its own (the .pth names it)
    digest = hashlib.sha256(base.encode()).hexdigest()[:10]
    root = CACHE / "venvs" / f"{requirement}-{version}-{digest}"
    python = root / "bin" / "python"

    def build(folder: Path) -> None:
        run_fetch([sys.executable, "-m", "venv", "--without-pip", str(folder)], "a venv", CACHE)
        run_fetch([sys.executable, "-m", "pip", "--python", str(folder / "bin" / "python"),
                   "install", "--quiet", "--no-deps", f"{requirement}=={version}"],
                  f"{requirement}=={version} from PyPI", CACHE)
        purelib = subprocess.run([str(folder / "bin" / "python"), "-c",
                                  "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        (Path(purelib) / "witbuilder-environment.pth").write_text(f"{base}\n")

    unpack_once(root, build)
    return python


def skip_unavailable(fetch: Callable[[str, str], Path]) -> Callable[[str, str], Path]:
    def fetched_or_skipped(name: str, version: str) -> Path:
        import pytest

        try:
            return fetch(name, version)
        except Unavailable as error:
            pytest.skip(str(error))

    fetched_or_skipped.__doc__ = f"In a test: {fetch.__name__}, skipping the test when it fails."
    return fetched_or_skipped


sdist = skip_unavailable(fetch_sdist)
deb = skip_unavailable(fetch_deb)
venv = skip_unavailable(fetch_venv)
