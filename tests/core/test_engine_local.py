"""The local engine's process pool: results in partition order, a worker killed mid-partition
(as the OOM killer does) is a clear error instead of a hang, and a failing partition raises in its
turn without waiting for the slow partitions still running after it. The engine is chosen once
per stage (`stage_engine`, from the stage's settings) and every step below asks for it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from support.stage_settings import Settings

from wit_builder.core import engine
from wit_builder.core.engine import (OUTSIDE_A_STAGE, Engine, map_partitions, run_partitions,
                                     stage_engine)
from wit_builder.core.options import WitError


def square_slowly_when_first(number: int) -> int:
    if number == 0:
        time.sleep(0.3)  # the first partition finishes last
    return number * number


def killed_on_three(number: int) -> int:
    if number == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return number


def fails_while_a_later_one_runs_long(number: int) -> int:
    if number == 1:
        raise ValueError("partition 1 is broken")
    if number == 2:
        time.sleep(60)
    return number


def test_results_come_back_in_partition_order():
    assert map_partitions(square_slowly_when_first, range(6), workers=2,
                          progress=False) == [n * n for n in range(6)]


def test_a_killed_worker_is_a_clear_error_not_a_hang():
    started = time.monotonic()
    with pytest.raises(WitError, match="test step: a worker process died .* rerun the same "
                                       "command"):
        map_partitions(killed_on_three, range(8), workers=2, desc="test step", progress=False)
    assert time.monotonic() - started < 30


def test_a_failing_partition_stops_the_step_without_waiting_for_running_ones():
    started = time.monotonic()
    with pytest.raises(ValueError, match="partition 1 is broken"):
        map_partitions(fails_while_a_later_one_runs_long, range(4), workers=2, progress=False)
    assert time.monotonic() - started < 20


# ---- the engine of a stage ------------------------------------------------------------------

def process_of(number: int) -> int:
    return os.getpid()


@stage_engine
def stage(config: Settings, numbers: range = range(4)) -> tuple[Engine, list[int]]:
    return engine.current(), map_partitions(process_of, numbers, progress=False)


def test_outside_a_stage_partitions_run_in_this_process():
    assert engine.current() == OUTSIDE_A_STAGE == Engine("local", 1)
    assert set(map_partitions(process_of, range(3), progress=False)) == {os.getpid()}


def test_a_stage_chooses_the_engine_once_for_every_step_below_it():
    chosen, processes = stage(Settings(workers=2), range(4))
    assert chosen == Engine("local", 2, "", shared_directory_required=True)
    assert os.getpid() not in processes and len(set(processes)) <= 2
    assert engine.current() == OUTSIDE_A_STAGE  # restored after the stage
    assert stage(Settings(workers=1))[1] == [os.getpid()] * 4


def test_a_workdir_url_needs_no_shared_directory():
    chosen, _ = stage(Settings(workdir="s3://bucket/run"), range(1))
    assert not chosen.shared_directory_required


def test_an_entry_called_inside_a_stage_keeps_the_stages_engine():
    @stage_engine
    def outer(config: Settings) -> Engine:
        return stage(Settings(workers=3), range(1))[0]

    assert outer(Settings(workers=1)).workers == 1


def test_explicit_settings_override_the_current_engine_for_one_call():
    with engine.using(workers=2) as chosen:
        assert engine.current() is chosen and chosen.worker_count == 2
        assert set(map_partitions(process_of, range(3), workers=1, progress=False)) == \
            {os.getpid()}
        results = run_partitions(process_of, range(3), progress=False)  # reads the engine now
    assert os.getpid() not in list(results)


def test_an_unknown_engine_is_a_clear_error():
    with pytest.raises(WitError, match="unknown engine 'spark'; choose local or ray"):
        map_partitions(process_of, range(2), engine="spark")
    with pytest.raises(WitError, match="unknown engine 'spark'"):
        stage(Settings(engine="spark"))
