"""Independent tasks run in this process, in worker processes or on a Dask cluster; results come
back as each finishes, with the tasks in flight bounded by number and by estimated memory.

Tasks are started in the order given. At most ``jobs`` are in flight (Dask: the cluster's worker
threads unless ``jobs`` is given), and a task is not started while the memory estimates of those in
flight plus its own exceed ``max_memory_bytes`` (one task always runs, however large, so that the
run finishes). Peak memory is therefore about the sum of the estimates of the tasks in flight, plus
what each worker process needs to exist (about 100 MB with numpy and pydicom loaded).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Execution:
    """Where the series of a conversion are converted; none of it changes what is written.

    ``jobs``: worker processes (1: in this process; ``None``: the CPU count). ``scheduler``: the
    address of a Dask distributed scheduler whose workers see the same file system (then ``jobs``
    bounds the tasks in flight). ``max_memory_bytes``: the memory the tasks in flight may take by
    their estimates.
    """

    jobs: int | None = 1
    scheduler: str | None = None
    max_memory_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.jobs is not None and (not isinstance(self.jobs, int) or self.jobs < 1):
            raise ValueError(f"jobs must be a positive number of processes; got {self.jobs!r}")
        if self.max_memory_bytes is not None and self.max_memory_bytes <= 0:
            raise ValueError(f"max_memory_bytes must be positive; got {self.max_memory_bytes!r}")

    @property
    def processes(self) -> int:
        return self.jobs or os.cpu_count() or 1


def run_all(
    function: Callable[..., Any],
    tasks: Sequence[Any],
    costs_bytes: Sequence[int],
    execution: Execution,
    *args: Any,
) -> Iterator[tuple[int, Any]]:
    """``(i, function(tasks[i], *args))`` for every task, in the order they finish.

    ``function`` must be importable by name (a module-level function) and its arguments picklable,
    so that a worker started with the *spawn* method can run it. An exception raised by a task
    propagates after the tasks not yet started are cancelled.
    """
    if execution.scheduler:
        yield from _run_dask(function, tasks, costs_bytes, execution, args)
    elif execution.processes <= 1 or len(tasks) <= 1:
        for i, task in enumerate(tasks):
            yield i, function(task, *args)
    else:
        yield from _run_processes(function, tasks, costs_bytes, execution, args)


class _Window:
    """The next task to start, under the limits on tasks and memory in flight."""

    def __init__(self, costs_bytes: Sequence[int], limit: int, max_memory_bytes: int | None):
        self.costs = costs_bytes
        self.limit = limit
        self.budget = max_memory_bytes
        self.next = 0
        self.flight: dict[int, int] = {}

    def startable(self) -> Iterator[int]:
        while self.next < len(self.costs) and len(self.flight) < self.limit:
            cost = self.costs[self.next]
            if self.flight and self.budget is not None and sum(self.flight.values()) + cost > self.budget:
                return
            self.flight[self.next] = cost
            self.next += 1
            yield self.next - 1

    def done(self, i: int) -> None:
        del self.flight[i]


def ignore_interrupts() -> None:
    """In a worker: leave Ctrl-C to the main process, which stops the workers (one message, not a
    traceback from each)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_processes(function: Callable[..., Any], tasks: Sequence[Any], costs_bytes: Sequence[int], execution: Execution,
                   args: tuple[Any, ...]) -> Iterator[tuple[int, Any]]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    workers = min(execution.processes, len(tasks))
    window = _Window(costs_bytes, workers, execution.max_memory_bytes)
    # spawn: workers start clean (no copy of the parent's threads or locks), the same on every platform.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=ignore_interrupts) as pool:
        futures = {}

        def start() -> None:
            for i in window.startable():
                futures[pool.submit(function, tasks[i], *args)] = i

        try:
            start()
            while futures:
                finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                done = [(futures.pop(future), future) for future in finished]
                for i, _ in done:
                    window.done(i)
                # The next tasks start before the caller gets these results: a worker must not wait
                # while the caller records them (a log line and its fsync per series).
                start()
                for i, future in done:
                    yield i, future.result()
        finally:
            for future in futures:
                future.cancel()


def _run_dask(function: Callable[..., Any], tasks: Sequence[Any], costs_bytes: Sequence[int], execution: Execution,
             args: tuple[Any, ...]) -> Iterator[tuple[int, Any]]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise RuntimeError(
            "a Dask scheduler was given but dask.distributed is not installed: "
            "pip install 'irregular-series[distributed]'") from None
    with Client(execution.scheduler, set_as_default=False) as client:
        threads = sum(client.nthreads().values()) or 1
        window = _Window(costs_bytes, execution.jobs or threads, execution.max_memory_bytes)
        pending: dict[Any, int] = {}

        def start() -> list[Any]:
            started = [client.submit(function, tasks[i], *args, pure=False) for i in window.startable()]
            pending.update(zip(started, range(window.next - len(started), window.next)))
            return started

        running = as_completed(start(), loop=client.loop)
        try:
            for future in running:
                i = pending.pop(future)
                window.done(i)
                result = future.result()
                for started in start():
                    running.add(started)
                yield i, result
        finally:
            if pending:
                client.cancel(list(pending))
