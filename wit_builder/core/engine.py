"""The one place that knows where partitioned work runs: in this process, local processes, or Ray.

Stages hand `run_partitions` a function and a list of partitions (small, picklable descriptions of
work, such as a file and a byte range); they never start processes themselves. A stage's `run` is
wrapped in `stage_engine`, which chooses the engine once from the stage's settings (`--engine`,
`--workers`, `--ray-address`) and makes it current for the whole run: every partitioned step below
asks `current()` (run_partitions does), so no call passes an engine or a worker count along; with
`--engine ray` one Ray session serves all the steps. Outside a stage, partitions run in this
process (`OUTSIDE_A_STAGE`); `using` changes that for a block (tests, benchmarks).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import functools
import logging
import multiprocessing
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from tqdm import tqdm

from wit_builder.core import cpu, store
from wit_builder.core.options import WitError

log = logging.getLogger(__name__)

Partition = TypeVar("Partition")
Result = TypeVar("Result")

TASK_CPUS = 1          # what one Ray task asks the scheduler for (one partition, one core)
TASK_RETRIES = 3       # reruns of a task whose worker process or node died
TASKS_PER_CPU = 2      # tasks in flight per cluster CPU: keeps every core busy, memory bounded

ENGINES = ("local", "ray")


def worker_count(requested: int) -> int:
    """`requested` workers, or one per available core when 0."""
    if requested > 0:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Engine:
    """Where partitions run: `kind` 'local' (this process for one worker, else a process pool)
    or 'ray' (a task each, on the cluster at `ray_address` or a local Ray); `workers` asked for
    (0: one per core). `shared_directory_required`: whether Ray tasks need the driver's directory
    on their node (yes for a local workdir, whose relative paths resolve there; no for a URL)."""

    kind: str = "local"
    workers: int = 1
    ray_address: str = ""
    shared_directory_required: bool = True

    @property
    def worker_count(self) -> int:
        """The workers this engine runs (`workers`, or one per available core when 0)."""
        return worker_count(self.workers)

    def overridden(self, kind: str | None = None, workers: int | None = None) -> Engine:
        """This engine with the given settings changed (None keeps its own)."""
        return Engine(self.kind if kind is None else kind,
                      self.workers if workers is None else workers,
                      self.ray_address, self.shared_directory_required)


OUTSIDE_A_STAGE = Engine()  # partitions run in this process: easy to debug, no pickling
# The engine of the stage running now: set by `stage_engine` (or `using`) for the duration of a
# call, scoped to it; a thread started inside it starts without it (contextvars), processes and
# Ray tasks never need it.
CURRENT: contextvars.ContextVar[Engine | None] = contextvars.ContextVar("CURRENT", default=None)


def current() -> Engine:
    """The engine of the stage running now (OUTSIDE_A_STAGE when none is)."""
    return CURRENT.get() or OUTSIDE_A_STAGE


@contextlib.contextmanager
def using(engine: Engine | None = None, *, kind: str | None = None,
          workers: int | None = None) -> Iterator[Engine]:
    """`engine` (by default the current one, with `kind` and `workers` changed where given) is
    the current engine for the block."""
    chosen = (engine or current()).overridden(kind, workers)
    if chosen.kind not in ENGINES:
        raise WitError(f"unknown engine '{chosen.kind}'; choose local or ray")
    token = CURRENT.set(chosen)
    try:
        yield chosen
    finally:
        CURRENT.reset(token)


def stage_engine_of(config: Any) -> Engine:
    """The engine a stage's settings (`--engine`, `--workers`, `--ray-address`, `--workdir`)
    choose."""
    return Engine(config.engine, config.workers, config.ray_address,
                  not store.is_url(config.workdir))


def run_partitions(function: Callable[[Partition], Result], partitions: Iterable[Partition], *,
                   desc: str = "partitions", progress: bool = True, workers: int | None = None,
                   engine: str | None = None) -> Iterator[Result]:
    """Yield `function(partition)` for every partition, in the partitions' order, on the current
    engine (`current()`, read now: at the call, not when the results are first read).

    One worker runs in this process (easy to debug, no pickling); more use a forkserver pool, which
    is safe to start from a process that already has threads (aiohttp, tqdm). With engine 'ray'
    every partition is a Ray task. `workers` and `engine` override the current engine's for this
    call alone (tests); stages never pass them.
    """
    chosen = current().overridden(engine, workers)
    if chosen.kind not in ENGINES:
        raise WitError(f"unknown engine '{chosen.kind}'; choose local or ray")
    return run_on_engine(chosen, function, partitions, desc, progress)


def run_on_engine(engine: Engine, function: Callable[[Partition], Result],
                  partitions: Iterable[Partition], desc: str, progress: bool
                  ) -> Iterator[Result]:
    """The body of `run_partitions`, on the engine it chose."""
    if engine.kind == "ray":
        yield from run_on_ray(function, list(partitions), engine=engine, desc=desc,
                              progress=progress)
        return
    items = list(partitions)
    count = min(engine.worker_count, max(1, len(items)))
    bar = tqdm(total=len(items), desc=desc, unit="part", disable=not progress, leave=False)
    try:
        if count == 1:
            for item in items:
                yield function(item)
                bar.update()
            return
        yield from run_in_processes(function, items, count, bar, desc)
    finally:
        bar.close()


def run_in_processes(function: Callable[[Partition], Result], items: list[Partition], count: int,
                     bar: tqdm, desc: str) -> Iterator[Result]:
    """`function` over `items` in `count` forkserver processes, results in order.

    A process pool from concurrent.futures, not multiprocessing.Pool: when a worker is killed (the
    kernel's OOM killer, a segfault in a C library), multiprocessing.Pool loses its task and waits
    for it forever; this pool reports it, and the stage stops with a clear error."""
    context = multiprocessing.get_context("forkserver")
    # The fork server imports the stage's module once (numpy, pyarrow, ...); every worker
    # forked from it then starts in milliseconds instead of re-importing everything.
    context.set_forkserver_preload([module_of(function)])
    executor = concurrent.futures.ProcessPoolExecutor(count, mp_context=context)
    ledger = cpu.current()
    finished = False
    try:
        for index, (result, pid, seconds) in enumerate(executor.map(cpu.Measured(function),
                                                                     items)):
            if ledger is not None:
                if index == 0:
                    ledger.fork_server(fork_server_pid())
                ledger.worker(pid, seconds)
            yield result
            bar.update()
        finished = True
    except concurrent.futures.process.BrokenProcessPool:
        raise WitError(f"{desc}: a worker process died while running a partition (killed by "
                       f"the system, most often for lack of memory); rerun the same command to "
                       f"resume, with fewer --workers if memory is short") from None
    finally:
        if not finished:  # an error or an interrupt: running partitions are abandoned, not awaited
            stop_workers(executor)
        executor.shutdown(wait=True, cancel_futures=True)


def fork_server_pid() -> int | None:
    """The pid of multiprocessing's fork server, once started (no public handle: None if the
    attribute moves)."""
    from multiprocessing import forkserver

    return getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)


def stop_workers(executor: concurrent.futures.ProcessPoolExecutor) -> None:
    """Terminate the pool's processes now (Python 3.14 has a method for it; before, the pool's
    process table is the only handle)."""
    terminate = getattr(executor, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        process.terminate()


def module_of(function: Callable) -> str:
    """The module defining `function` (seen through functools.partial)."""
    while hasattr(function, "func"):
        function = function.func
    return function.__module__


def map_partitions(function: Callable[[Partition], Result], partitions: Iterable[Partition],
                   **options: Any) -> list[Result]:
    """All results of `run_partitions` as a list."""
    return list(run_partitions(function, partitions, **options))


# ---- Ray ------------------------------------------------------------------------------------

def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise WitError("--engine ray needs Ray: pip install 'witbuilder[ray]'") from None
    return ray


def stage_engine(run: Callable[..., Result]) -> Callable[..., Result]:
    """Wrap a stage's entry `run(config, ...)`: the engine its settings choose is the current one
    while it runs (an entry called inside another keeps the engine the outer one chose); with
    `--engine ray`, one Ray session (the cluster at `--ray-address`, or a local Ray) serves every
    partitioned step and is closed after the stage."""

    @functools.wraps(run)
    def run_with_engine(config: Any, *args: Any, **kwargs: Any) -> Result:
        if CURRENT.get() is not None:
            return run(config, *args, **kwargs)
        with using(stage_engine_of(config)) as engine, cpu.account():
            if engine.kind != "ray":
                return run(config, *args, **kwargs)
            with ray_session(engine.ray_address, engine.workers):
                return run(config, *args, **kwargs)

    return run_with_engine


@contextlib.contextmanager
def ray_session(address: str = "", workers: int = 0) -> Iterator[None]:
    """Ray for the duration of the block: the cluster at `address`, else a local Ray on 127.0.0.1
    with `workers` CPUs. A Ray this process already joined is used as it is and left running."""
    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    # Ray reports usage statistics over the network unless told not to; a data stage must not.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    temp_dir = "" if address else tempfile.mkdtemp(prefix="wit-ray-")
    try:
        if address:
            join_cluster(ray, address)
        else:
            start_local_ray(ray, worker_count(workers), temp_dir)
        yield
    finally:
        ray.shutdown()
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)


def start_local_ray(ray: Any, cpus: int, temp_dir: str) -> None:
    """A one-machine Ray on the loopback address, its logs and sockets in `temp_dir`."""
    log.info("engine: starting a local Ray with %d CPUs (logs in %s)", cpus, temp_dir)
    ray.init(address=None, num_cpus=cpus, include_dashboard=False, _temp_dir=temp_dir,
             _node_ip_address="127.0.0.1", logging_level=logging.WARNING)


def join_cluster(ray: Any, address: str) -> None:
    log.info("engine: joining the Ray cluster at %s", address)
    check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as error:
        message = f"cannot join the Ray cluster at '{address}': {first_line(error)}"
        raise WitError(message) from None
    log.info("engine: Ray cluster of %s CPUs", ray.cluster_resources().get("CPU", 0))


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A WitError now if nothing listens at a host:port address (Ray itself retries for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise WitError(f"cannot join the Ray cluster at '{address}': {error.strerror or error}; "
                       f"is `ray start --head` running there?") from None


def run_on_ray(function: Callable[[Partition], Result], items: list[Partition], *,
               engine: Engine, desc: str, progress: bool) -> Iterator[Result]:
    """Every partition a Ray task (TASK_CPUS each, rerun when its worker dies); results in order."""
    ray = import_ray()
    with ray_session(engine.ray_address, engine.workers):
        task = ray.remote(call_partition).options(num_cpus=TASK_CPUS, max_retries=TASK_RETRIES)
        # The function (its settings may be large) goes to the object store once, not per task.
        shared, driver_dir = ray.put(cpu.Measured(function, per_call=True)), os.getcwd()
        ledger = cpu.current()
        required = engine.shared_directory_required

        def submit(index: int) -> Any:
            return task.remote(shared, items[index], driver_dir, required)

        bar = tqdm(total=len(items), desc=desc, unit="part", disable=not progress, leave=False)
        try:
            for result, _, seconds in results_in_order(ray, submit, len(items), desc,
                                                       bar.update):
                if ledger is not None:
                    ledger.task(seconds)
                yield result
        finally:
            bar.close()


def results_in_order(ray: Any, submit: Callable[[int], Any], count: int, desc: str,
                     on_finished: Callable[[], Any]) -> Iterator[Any]:
    """The results of tasks 0 .. count-1, in that order; `on_finished()` as each one finishes.

    At most TASKS_PER_CPU x cluster CPUs tasks are past the last one yielded, so results that
    finish out of order wait in a bounded buffer, as the local pool's do.
    """
    window = TASKS_PER_CPU * max(1, int(ray.cluster_resources().get("CPU", 1)))
    pending: dict[Any, int] = {}
    finished: dict[int, Any] = {}
    submitted = next_index = 0
    try:
        while next_index < count:
            while submitted < count and submitted - next_index < window:
                pending[submit(submitted)] = submitted
                submitted += 1
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                finished[index] = task_outcome(ray, ref, index, desc)
                on_finished()
            while next_index in finished:
                outcome = finished.pop(next_index)
                if isinstance(outcome, TaskFailure):
                    # In its turn, after the results before it, as the local pool raises it.
                    raise outcome.error from outcome.origin
                yield outcome
                next_index += 1
    finally:
        for ref in pending:  # an error, or a caller that stopped reading: stop the rest
            ray.cancel(ref)


@dataclass(frozen=True)
class TaskFailure:
    """How a task failed: the error to raise for it, and the Ray error it came from (if shown)."""

    error: BaseException
    origin: BaseException | None = None


def call_partition(function: Callable[[Partition], Result], item: Partition,
                   driver_dir: str, shared_directory_required: bool = True) -> Result:
    """The body of every Ray task: `function(item)`, run from the driver's working directory
    when the node has it."""
    # Stages pass paths relative to the driver's directory (the default --workdir is "."); on a
    # cluster that directory must be on the filesystem every node shares, at the same path,
    # unless the workdir is an fsspec URL (s3://...), which every node reaches by itself.
    if os.getcwd() != driver_dir:
        try:
            os.chdir(driver_dir)
        except OSError:
            if not shared_directory_required:
                return function(item)
            raise WitError(f"directory '{driver_dir}' does not exist on Ray node "
                           f"{socket.gethostname()}; the workdir must be on a filesystem shared "
                           f"by every node, at the same path, or an fsspec URL "
                           f"(--workdir s3://bucket/run)") from None
    return function(item)


def task_outcome(ray: Any, ref: Any, index: int, desc: str) -> Any:
    """A finished task's result, or the TaskFailure the local engine would raise for it."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        cause = getattr(error, "cause", None)
        if isinstance(cause, WitError):
            return TaskFailure(cause)  # one line for the CLI, as from a local worker
        if isinstance(cause, BaseException):
            return TaskFailure(cause, origin=error)  # a bug: keep the remote traceback
        return TaskFailure(error)
    except ray.exceptions.RayError as error:
        return TaskFailure(WitError(f"{desc}: partition {index} failed on Ray after "
                                    f"{TASK_RETRIES} retries: {first_line(error)}"))


def first_line(error: BaseException) -> str:
    """The first line of an error's message (Ray's run to pages), or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def split_evenly(items: list, parts: int) -> list[tuple]:
    """`items` in at most `parts` consecutive runs of near-equal length (none empty)."""
    size, extra = divmod(len(items), max(1, min(parts, len(items))))
    runs, start = [], 0
    while start < len(items):
        end = start + size + (len(runs) < extra)
        runs.append(tuple(items[start:end]))
        start = end
    return runs
