"""The executor seam: the same results in process and on a real Dask cluster."""

from __future__ import annotations

import pytest

from satflow.runtime.executors import DaskExecutor, InProcessExecutor, as_executor, current_worker, scheduler_workers, tree_combine


def _square(x: int, offset: int = 0) -> int:
    return x * x + offset


def _total(values: list[int]) -> int:
    return sum(values)


def _where(_: int) -> str:
    return current_worker()


@pytest.fixture(params=["in-process", "dask"])
def executor(request):
    return InProcessExecutor() if request.param == "in-process" else DaskExecutor(request.getfixturevalue("dask_client"))


def test_map_yields_every_position_once(executor):
    results = dict(executor.map(_square, list(range(11)), 1, name="square"))
    assert results == {i: i * i + 1 for i in range(11)}
    assert executor.gather_map(_square, [3, 1, 2], name="square") == [9, 1, 4]


def test_map_reduce_folds_every_result(executor):
    assert executor.map_reduce(_square, list(range(20)), combine=_total, name="sum") == sum(i * i for i in range(20))
    assert executor.map_reduce(_square, [5], combine=_total, name="one") == 25


def test_tree_combine_groups_are_fixed_by_position():
    calls = []

    def record(values):
        calls.append(list(values))
        return sum(values)

    assert tree_combine(record, list(range(10)), fan_in=4) == 45
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [6, 22, 17]]
    with pytest.raises(ValueError, match="nothing to reduce"):
        tree_combine(record, [])


def test_compute_runs_delayed_tasks_in_order(executor):
    import dask

    tasks = [dask.delayed(_square)(i) for i in range(4)]
    assert executor.compute(tasks) == [0, 1, 4, 9]


def test_as_executor_makes_the_only_choice():
    inside = InProcessExecutor()
    assert as_executor(inside) is inside
    assert isinstance(as_executor(None), InProcessExecutor)


def test_tasks_run_on_workers_and_say_where(dask_client):
    executor = DaskExecutor(dask_client)
    workers = set(executor.gather_map(_where, list(range(6)), name="where"))
    assert workers <= set(scheduler_workers(dask_client))
    assert InProcessExecutor().gather_map(_where, [0], name="where") == ["in-process"]
    described = executor.describe()
    assert described["kind"] == "dask" and described["workers"] == 2 and described["threads"] == 2


def test_a_resource_no_worker_has_is_refused(dask_client):
    with pytest.raises(RuntimeError, match=r"square: tasks need GPU=1, but no worker of the cluster advertises it"):
        list(DaskExecutor(dask_client).map(_square, [1], name="square", resources={"GPU": 1}))
    with pytest.raises(ValueError, match="2 resource entries for 1 tasks"):
        list(DaskExecutor(dask_client).map(_square, [1], name="square", resources=[None, None]))


def test_worker_lists_survive_the_clients_own_refreshes():
    """The client's periodic refresh stores cluster totals without workers; asked 300 times while it
    refreshes every millisecond, `client.scheduler_info()` came back empty about a third of the time
    (a CI failure), and a resource check reading it would skip or misjudge its cluster."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.client.scheduler-info-interval": "1ms"}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        executor = DaskExecutor(client)
        for _ in range(200):
            assert len(scheduler_workers(client)) == 2
            assert executor.describe()["workers"] == 2
