"""The one seam through which every stage runs its tasks.

A stage builds a plan of plain data, turns it into calls of one small task function, and hands
them to an `Executor`. It never asks whether a cluster exists: `as_executor(client)` makes that
decision once. Two executors implement the same four operations:

- `map(func, items, ...)`: one task per item, results yielded as they finish, with retries
  (a killed worker's task runs again) and resources (`{"GPU": 1}` sends a task only to workers
  that advertise a GPU; passed at submit time because graph optimisation drops annotations;
  one dict for every task or one per task);
- `map_reduce(func, items, combine, ...)`: the same, with the results folded by a tree of
  `combine` calls; on Dask the tree runs on the workers, so partials never gather on the client;
- `compute(delayed)`: a list of dask.delayed objects;
- `describe()`: where the work runs, for run manifests.

`InProcessExecutor` runs everything in this process, in order (tests, small jobs, debugging);
`DaskExecutor` wraps a `distributed.Client` (LocalCluster, SLURM, or any scheduler).
"""

from __future__ import annotations

import importlib
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any

REDUCE_FAN_IN = 8  # partials per combine task: few round trips, small combine tasks


class Executor(ABC):
    """Runs tasks of a stage; see the module docstring."""

    @abstractmethod
    def map(self, func: Callable, items: Sequence, *args: Any, name: str, retries: int = 2,
            resources: dict | None = None, progress: bool = False) -> Iterator[tuple[int, Any]]:
        """Call `func(item, *args)` for every item; yield `(position, result)` as tasks finish."""

    @abstractmethod
    def map_reduce(self, func: Callable, items: Sequence, *args: Any, combine: Callable, name: str,
                   retries: int = 2, resources: dict | None = None, progress: bool = False) -> Any:
        """`combine` folded over `func(item, *args)` for every item, by a tree of combine calls."""

    @abstractmethod
    def compute(self, tasks: Sequence) -> list:
        """Results of a list of dask.delayed objects, in order."""

    @abstractmethod
    def describe(self) -> dict:
        """Where the work runs: kind, workers, threads, resources (JSON-able)."""

    def prepare_workers(self, plugins: Iterable[str]) -> None:
        """Ready every worker with these plugins ("module:Class" of a distributed WorkerPlugin), once.

        In-process there is no worker to ready: the first task pays what a plugin would have.
        """

    def gather_map(self, func: Callable, items: Sequence, *args: Any, **options: Any) -> list:
        """`map`, with the results in item order."""
        results: list = [None] * len(items)
        for position, result in self.map(func, items, *args, **options):
            results[position] = result
        return results


def tree_combine(combine: Callable, values: Sequence, fan_in: int = REDUCE_FAN_IN) -> Any:
    """Fold `values` (non-empty) with `combine(list) -> value`, `fan_in` at a time, level by level.

    A tree keeps rounding error at O(log n) merges deep, the same on any executor.
    """
    level = list(values)
    if not level:
        raise ValueError("nothing to reduce: the stage produced no task results")
    while len(level) > 1:
        level = [combine(level[i:i + fan_in]) if len(level[i:i + fan_in]) > 1 else level[i]
                 for i in range(0, len(level), fan_in)]
    return level[0]


class InProcessExecutor(Executor):
    """Runs each task in this process, in order; retries and resources do not apply here."""

    def map(self, func, items, *args, name, retries=2, resources=None, progress=False):
        for position, item in enumerate(_progress(items, progress, name, len(items))):
            yield position, func(item, *args)

    def map_reduce(self, func, items, *args, combine, name, retries=2, resources=None, progress=False):
        results = [result for _, result in self.map(func, items, *args, name=name, progress=progress)]
        return tree_combine(combine, results)

    def compute(self, tasks):
        import dask

        return list(dask.compute(*tasks))

    def describe(self):
        return {"kind": "in-process", "workers": 1}


class DaskExecutor(Executor):
    """Submits tasks to a `distributed.Client`; task keys are unique per run and readable on the dashboard."""

    def __init__(self, client) -> None:
        self.client = client

    def prepare_workers(self, plugins: Iterable[str]) -> None:
        # A registered plugin also runs on workers that join later (adaptive SLURM scaling).
        for path in sorted(set(plugins)):
            module, _, name = path.partition(":")
            self.client.register_plugin(getattr(importlib.import_module(module), name)())

    def _submit_all(self, func, items, args, name, retries, resources) -> list:
        per_item = _per_item(resources, len(items))
        for needed in {repr(r): r for r in per_item if r}.values():
            self._check_resources(needed, name)
        run_id = uuid.uuid4().hex[:8]  # a re-run on a long-lived cluster never reuses a stale result
        return [self.client.submit(func, item, *args, retries=retries, resources=per_item[position] or None,
                                   pure=False, key=f"{name}-{position}-{run_id}")
                for position, item in enumerate(items)]

    def map(self, func, items, *args, name, retries=2, resources=None, progress=False):
        from distributed import as_completed

        futures = self._submit_all(func, items, args, name, retries, resources)
        position_of = {future.key: position for position, future in enumerate(futures)}
        for future in _progress(as_completed(futures), progress, name, len(futures)):
            yield position_of[future.key], future.result()

    def map_reduce(self, func, items, *args, combine, name, retries=2, resources=None, progress=False):
        futures = self._submit_all(func, items, args, name, retries, resources)
        # The combine tree is submitted up front over fixed groups of positions: it runs on the
        # workers as soon as a group's inputs exist (the client only holds futures), and the
        # fixed grouping makes the rounding identical from run to run, whoever finishes first.
        combine_remote = partial(_combine_on_worker, combine, self.client, name, retries)
        root = tree_combine(combine_remote, futures)
        if progress:
            from distributed import as_completed

            for _ in _progress(as_completed(futures), True, name, len(futures)):
                pass
        return root.result()

    def compute(self, tasks):
        return list(self.client.gather(self.client.compute(list(tasks))))

    def describe(self):
        workers = scheduler_workers(self.client)
        return {
            "kind": "dask",
            "scheduler": self.client.scheduler.address,
            "dashboard": self.client.dashboard_link,
            "workers": len(workers),
            "threads": sum(w.get("nthreads", 0) for w in workers.values()),
            "resources": {address: w.get("resources", {}) for address, w in workers.items() if w.get("resources")},
        }

    def _check_resources(self, resources: dict | None, name: str) -> None:
        """A resource no worker advertises would leave tasks queued forever: say so instead."""
        if not resources:
            return
        workers = scheduler_workers(self.client)
        if not workers:  # an adaptive cluster that has not started its workers yet
            return
        for resource, amount in resources.items():
            if not any(w.get("resources", {}).get(resource, 0) >= amount for w in workers.values()):
                raise RuntimeError(
                    f"{name}: tasks need {resource}={amount}, but no worker of the cluster advertises it; "
                    f"start workers with --resources '{resource}={amount}' (cluster.slurm.gpus_per_job for SLURM) "
                    "or run these tasks without it")


def scheduler_workers(client) -> dict[str, dict]:
    """The scheduler's workers now, by address, asked of the scheduler itself.

    Not `client.scheduler_info()["workers"]`: the client refreshes that cache every few seconds
    with cluster totals only (no workers), and a refresh landing between its fetch and its return
    hands back an empty worker list (seen in CI as a spurious failure).
    """
    return dict(client.sync(client.scheduler.identity, n_workers=-1).get("workers", {}))


def _per_item(resources: dict | Sequence | None, n_items: int) -> list:
    """`resources` for every item: one dict for all, or one dict (or None) per item."""
    if resources is None or isinstance(resources, dict):
        return [resources] * n_items
    if len(resources) != n_items:
        raise ValueError(f"{len(resources)} resource entries for {n_items} tasks")
    return list(resources)


def _combine_list(combine: Callable, values: list) -> Any:
    return combine(values)


def _combine_on_worker(combine: Callable, client, name: str, retries: int, futures: list):
    return client.submit(_combine_list, combine, futures, retries=retries, pure=False,
                         key=f"{name}-combine-{uuid.uuid4().hex[:12]}")


def as_executor(client_or_executor=None) -> Executor:
    """The executor for a stage: an Executor as is, a `distributed.Client` wrapped, None in-process."""
    if isinstance(client_or_executor, Executor):
        return client_or_executor
    if client_or_executor is None:
        return InProcessExecutor()
    return DaskExecutor(client_or_executor)


def current_worker() -> str:
    """The address of the Dask worker running the calling task, or "in-process"."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "in-process"


def _progress(iterable, enabled: bool, name: str, total: int):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=name, unit="task")
