"""The settings of a partitioned stage, as far as the engine reads them (for tests of
core/engine.py and core/cpu.py that wrap their own stage function in `stage_engine`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    workers: int = 1
    engine: str = "local"
    ray_address: str = ""
    workdir: str = "."
