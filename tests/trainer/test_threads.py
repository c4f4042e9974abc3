"""Training on a shared machine: the intra-op thread count follows the cores other processes
leave idle (`--threads 0`), or stays where `--threads N` puts it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from trainer import threads as threads_module
from trainer.threads import ThreadGovernor, threads_for

BUSY_LOOP = "while True: pass"


def test_threads_are_the_idle_cores_shared_out_at_least_one():
    assert threads_for(2, others=0.0) == 2
    assert threads_for(2, others=0.4) == 2      # a light neighbour: keep both cores
    assert threads_for(2, others=1.0) == 1      # one CPU-bound competitor
    assert threads_for(2, others=11.0) == 1     # a crowded machine: never zero
    assert threads_for(16, others=4.0, processes=2) == 6
    assert threads_for(16, others=0.0, processes=3) == 5


class FakeMachine:
    """/proc/stat and our own CPU time as the governor reads them, advanced by hand."""

    def __init__(self, monkeypatch):
        self.wall = self.busy = self.own = 0.0
        monkeypatch.setattr(threads_module, "usable_cores", lambda: [0, 1])
        monkeypatch.setattr(threads_module, "busy_seconds", lambda cores: self.busy)
        monkeypatch.setattr(threads_module, "own_seconds", lambda: self.own)
        monkeypatch.setattr(threads_module.time, "monotonic", lambda: self.wall)
        monkeypatch.setattr(threads_module.time, "sleep", lambda seconds: self.run(seconds, 0, 0))

    def run(self, seconds: float, own: float, others: float) -> None:
        """`seconds` pass with this process on `own` cores and everything else on `others`."""
        self.wall += seconds
        self.own += own * seconds
        self.busy += (own + others) * seconds


def test_governor_drops_to_one_thread_while_a_competitor_runs_and_returns(monkeypatch):
    machine = FakeMachine(monkeypatch)
    original = torch.get_num_threads()
    try:
        governor = ThreadGovernor(interval=5.0)
        assert governor.threads == 2 and torch.get_num_threads() == 2   # quiet at start
        machine.run(3.0, own=1.8, others=0.9)
        assert governor.update() == 2             # not re-measured before the interval
        machine.run(3.0, own=1.0, others=1.0)
        assert governor.update() == 1 and torch.get_num_threads() == 1
        machine.run(6.0, own=1.0, others=0.1)     # the competitor ended
        assert governor.update() == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(original)


def test_fixed_threads_are_set_once_and_never_measured(monkeypatch):
    monkeypatch.setattr(threads_module, "busy_seconds", lambda cores: pytest.fail("measured"))
    original = torch.get_num_threads()
    try:
        governor = ThreadGovernor(fixed=3)
        assert torch.get_num_threads() == 3 and governor.update(force=True) == 3
    finally:
        torch.set_num_threads(original)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs to pin to")
def test_real_competitors_on_our_cores_leave_one_thread():
    """Two busy processes pinned to the two cores the governor runs on: one thread."""
    cores = sorted(os.sched_getaffinity(0))[:2]
    code = ("import os, sys; os.sched_setaffinity(0, %r)\n"
            "from trainer.threads import ThreadGovernor\n"
            "print('ready', flush=True); sys.stdin.readline()\n"
            "print(ThreadGovernor(first_look=1.0).threads, flush=True)" % (set(cores),))
    governed = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    loops = []
    try:
        assert governed.stdout.readline().strip() == "ready"  # torch imported: measure now
        loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in cores]
        for loop, core in zip(loops, cores):
            os.sched_setaffinity(loop.pid, {core})
        governed.stdin.write("go\n")
        governed.stdin.flush()
        assert governed.stdout.readline().strip() == "1"
    finally:
        for process in [*loops, governed]:
            process.kill()
            process.wait()
