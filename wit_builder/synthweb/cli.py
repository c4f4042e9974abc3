"""`wit synthweb generate|serve`."""

from __future__ import annotations

import logging
from pathlib import Path

from wit_builder.synthweb.config import SynthwebConfig
from wit_builder.synthweb.generate import generate
from wit_builder.synthweb.server import serve_forever

log = logging.getLogger(__name__)


def run(config: SynthwebConfig) -> int:
    out = generate(config)
    if config.action == "serve":
        serve_forever(Path(out) / "site", host=config.host, port=config.port)
    return 0
