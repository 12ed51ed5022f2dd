"""Where work runs: the cluster (config -> Client) and the executors every stage submits through."""

from satflow.runtime.executors import DaskExecutor, Executor, InProcessExecutor, as_executor, current_worker, scheduler_workers

__all__ = ["DaskExecutor", "Executor", "InProcessExecutor", "as_executor", "current_worker", "scheduler_workers"]
