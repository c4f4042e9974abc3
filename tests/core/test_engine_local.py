"""The local engine's process pool: results in partition order, a worker killed mid-partition
(as the OOM killer does) is a clear error instead of a hang, and a failing partition raises in its
turn without waiting for the slow partitions still running after it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from wit_builder.core.engine import map_partitions
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
