"""The CPU account of a stage (core/cpu.py): its worker processes, which `getrusage` of the
stage's process never sees (a fork server reaps them), are counted."""

from __future__ import annotations

import resource
import time
from support.stage_settings import Settings
from wit_builder.core import cpu
from wit_builder.core.engine import map_partitions, stage_engine

BURN = 0.4   # CPU seconds each partition spends


def burn(_: int) -> float:
    """Spin for BURN CPU seconds of this process."""
    start = time.process_time()
    while time.process_time() - start < BURN:
        pass
    return time.process_time() - start


@stage_engine
def stage(config: Settings, partitions: int) -> tuple[float, float | None]:
    spent = sum(map_partitions(burn, range(partitions), progress=False))
    return spent, cpu.stage_seconds()


def children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_a_stage_counts_the_cpu_of_its_worker_processes():
    own_before, children_before = cpu.own_seconds(), children_seconds()
    spent, counted = stage(Settings(workers=2), 4)
    seen_by_rusage = cpu.own_seconds() - own_before + children_seconds() - children_before
    assert spent >= 4 * BURN
    # The workers' CPU is there (their start-up too: a little more, never less) ...
    assert spent - 0.01 <= counted <= spent + 5.0   # (counted is rounded to 0.01 s)
    # ... where this process's own rusage sees next to none of it.
    assert seen_by_rusage < spent / 2


def test_a_stage_run_in_this_process_counts_its_own_cpu():
    spent, counted = stage(Settings(workers=1), 2)
    assert spent - 0.01 <= counted <= spent + 1.0


def test_outside_a_stage_there_is_no_account():
    assert cpu.stage_seconds() is None
    assert cpu.process_seconds(-1) == 0.0
