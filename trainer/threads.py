"""How many intra-op threads training uses on the CPU: the cores other processes leave idle.

torch's CPU kernels split each operation over a pool of threads that meet at a barrier when it
ends. On a machine whose cores are all taken, one of those threads is often off its core for a
whole scheduler slice while the others spin or wait at the barrier, and a model made of many small
operations then runs many times slower than its share of the CPU would allow (8-10 s per step
instead of 0.5 s, with two other CPU-bound processes on 2 cores). So with `--threads 0` (the
default) the trainer measures, every few seconds, how much CPU everything else on its cores uses
(other processes, and its own data workers: they preempt the pool's threads just the same) and
trains on the cores left: all of them on a quiet machine, one when the rest is taken.
`--threads N` fixes N.

The data workers (`--workers`, 2 by default) are not adapted: each is one process on one thread,
which the scheduler shares out fairly, and their number fixes the order of the data stream that
a resumed run must reproduce.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import psutil
import torch

logger = logging.getLogger(__name__)

BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal")


def usable_cores() -> list[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def busy_seconds(cores: list[int]) -> float:
    """CPU seconds the `cores` have spent busy since boot, all processes together."""
    per_cpu = psutil.cpu_times(percpu=True)
    return sum(getattr(per_cpu[core], name, 0.0) for core in cores if core < len(per_cpu)
               for name in BUSY_FIELDS)


def own_seconds() -> float:
    """CPU seconds of this process, all its threads (not its data-loader workers)."""
    times = psutil.Process().cpu_times()
    return times.user + times.system


def threads_for(cores: int, others: float, processes: int = 1) -> int:
    """Intra-op threads for each of `processes` training processes on `cores`, when everything
    else keeps `others` cores busy: the idle cores, shared out, at least one."""
    idle = max(0.0, cores - others)
    return max(1, min(cores // processes, int(idle / processes + 0.5)))


@dataclass
class Sample:
    wall: float
    busy: float
    own: float


class ThreadGovernor:
    """Sets torch's intra-op threads from the measured load of other processes, at most once
    every `interval` seconds (`update` is called at every step); fixed when `fixed` > 0."""

    def __init__(self, fixed: int = 0, processes: int = 1, interval: float = 5.0,
                 first_look: float = 0.25):
        self.fixed, self.processes, self.interval = fixed, processes, interval
        self.cores = usable_cores()
        self.threads = fixed or max(1, len(self.cores) // processes)
        if fixed:
            torch.set_num_threads(fixed)
            return
        self.last = self.sample()
        time.sleep(first_look)  # a first reading before the first step
        self.update(force=True)

    def sample(self) -> Sample:
        return Sample(time.monotonic(), busy_seconds(self.cores), own_seconds())

    def update(self, force: bool = False) -> int:
        """Re-measure (when `interval` has passed) and set the thread count; returns it."""
        if self.fixed:
            return self.threads
        now = time.monotonic()
        if not force and now - self.last.wall < self.interval:
            return self.threads
        current = self.sample()
        elapsed = max(current.wall - self.last.wall, 1e-6)
        others = max(0.0, (current.busy - self.last.busy) - (current.own - self.last.own)) / elapsed
        self.last = current
        threads = threads_for(len(self.cores), others, self.processes)
        if threads != self.threads or force:
            logger.info("other work keeps %.1f of %d cores busy: training on %d thread(s)%s",
                        others, len(self.cores), threads,
                        "" if threads == self.threads else f" (was {self.threads})")
        self.threads = threads
        torch.set_num_threads(threads)
        return threads
