"""The one place that knows where partitioned work runs: in this process, local processes, or Ray.

Stages hand `run_partitions` a function and a list of partitions (small, picklable descriptions of
work, such as a file and a byte range); they never start processes themselves.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

from wit_builder.options import WitError

log = logging.getLogger(__name__)

Partition = TypeVar("Partition")
Result = TypeVar("Result")


def worker_count(requested: int) -> int:
    """`requested` workers, or one per available core when 0."""
    if requested > 0:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def run_partitions(function: Callable[[Partition], Result], partitions: Iterable[Partition], *,
                   workers: int = 0, engine: str = "local", desc: str = "partitions",
                   progress: bool = True) -> Iterator[Result]:
    """Yield `function(partition)` for every partition, in the partitions' order.

    One worker runs in this process (easy to debug, no pickling); more use a forkserver pool, which
    is safe to start from a process that already has threads (aiohttp, tqdm).
    """
    if engine == "ray":
        raise WitError("engine 'ray' is not implemented yet (issue 9); use --engine local")
    if engine != "local":
        raise WitError(f"unknown engine '{engine}'; choose local or ray")
    items = list(partitions)
    count = min(worker_count(workers), max(1, len(items)))
    bar = tqdm(total=len(items), desc=desc, unit="part", disable=not progress, leave=False)
    try:
        if count == 1:
            for item in items:
                yield function(item)
                bar.update()
            return
        context = multiprocessing.get_context("forkserver")
        # The fork server imports the stage's module once (numpy, pyarrow, ...); every worker
        # forked from it then starts in milliseconds instead of re-importing everything.
        context.set_forkserver_preload([module_of(function)])
        with context.Pool(count) as pool:
            for result in pool.imap(function, items, chunksize=1):
                yield result
                bar.update()
    finally:
        bar.close()


def module_of(function: Callable) -> str:
    """The module defining `function` (seen through functools.partial)."""
    while hasattr(function, "func"):
        function = function.func
    return function.__module__


def map_partitions(function: Callable[[Partition], Result], partitions: Iterable[Partition],
                   **options: Any) -> list[Result]:
    """All results of `run_partitions` as a list."""
    return list(run_partitions(function, partitions, **options))
