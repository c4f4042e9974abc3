"""CPU seconds of a stage's whole process tree, for its stats file (`cpu_seconds`).

`/usr/bin/time` and `getrusage(RUSAGE_CHILDREN)` miss most of a stage's CPU: its worker processes
are forked by a fork server, which reaps them itself, and Ray's workers belong to Ray. So the
account is kept where the work runs:
- this process (every thread) and the children it waited for (subprocesses: lbzip2, img2dataset),
  from the start of the stage;
- every local worker process: each partition's result comes back with the worker's own CPU since
  it was forked (imports included), the latest figure per process counts;
- the fork server that preloads the workers' modules (its own CPU, read from /proc);
- Ray tasks: the CPU each task used (Ray's workers are shared between tasks and stages).

`stage_engine` opens one `Ledger` per stage run (`account`); `stage_seconds()` reads it.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import resource
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


def own_seconds() -> float:
    """CPU seconds of this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def waited_children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_seconds(pid: int) -> float:
    """CPU seconds of process `pid` itself (not its children), from /proc; 0 where unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass
class Ledger:
    """The CPU of one stage run so far (see the module's docstring)."""

    own_start: float = field(default_factory=own_seconds)
    children_start: float = field(default_factory=waited_children_seconds)
    workers: dict[int, float] = field(default_factory=dict)   # pid -> its CPU since forked
    fork_servers: dict[int, float] = field(default_factory=dict)  # pid -> its CPU at first sight
    tasks: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def worker(self, pid: int, seconds: float) -> None:
        with self.lock:
            self.workers[pid] = max(seconds, self.workers.get(pid, 0.0))

    def fork_server(self, pid: int | None) -> None:
        """Count fork server `pid` from now on (it outlives stages: only its CPU from here)."""
        if pid is not None and pid != os.getpid():
            with self.lock:
                self.fork_servers.setdefault(pid, process_seconds(pid))

    def task(self, seconds: float) -> None:
        with self.lock:
            self.tasks += seconds

    def seconds(self) -> float:
        with self.lock:
            servers = sum(max(0.0, process_seconds(pid) - start)
                          for pid, start in self.fork_servers.items())
            return (own_seconds() - self.own_start
                    + waited_children_seconds() - self.children_start
                    + sum(self.workers.values()) + servers + self.tasks)


LEDGER: contextvars.ContextVar[Ledger | None] = contextvars.ContextVar("cpu_ledger", default=None)


@contextlib.contextmanager
def account() -> Iterator[Ledger]:
    """A ledger for the block (a stage run): current until it ends."""
    ledger = Ledger()
    token = LEDGER.set(ledger)
    try:
        yield ledger
    finally:
        LEDGER.reset(token)


def current() -> Ledger | None:
    return LEDGER.get()


def stage_seconds() -> float | None:
    """CPU seconds of the current stage's process tree so far (None outside a stage)."""
    ledger = LEDGER.get()
    return None if ledger is None else round(ledger.seconds(), 2)


@dataclass(frozen=True)
class Measured:
    """`function(item)` in a worker, returned with the worker's pid and its CPU since it started
    (a local worker process) or the CPU the call used (`per_call`: a Ray task)."""

    function: Callable[[Any], Any]
    per_call: bool = False

    def __call__(self, item: Any) -> tuple[Any, int, float]:
        before = own_seconds() if self.per_call else 0.0
        result = self.function(item)
        return result, os.getpid(), own_seconds() - before
