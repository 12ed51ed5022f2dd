"""What every whole-command benchmark does before a route: wait for the machine to quiet down.

Shared by `benchmarks/eval/run.py` and `benchmarks/ingest/run.py` (each puts this folder on
`sys.path`); the rounds whose recorded load is above the benchmark's `--max-load` are dropped there.
"""

from __future__ import annotations

import os
import time


def settled_load(target: float = 2.0, timeout: float = 90.0) -> tuple[float, float, float]:
    """The load average once the previous route's own load has decayed to `target` (at most `timeout` s).

    A route keeps both cores busy, so right after it the 1-minute load reads about 2 whatever else
    runs; waiting lets the next route start on a machine as quiet as the other jobs leave it."""
    deadline = time.monotonic() + timeout
    while os.getloadavg()[0] > target and time.monotonic() < deadline:
        time.sleep(2.0)
    return os.getloadavg()


def cpu_probe() -> float:
    """Seconds of a fixed pure-Python loop in this process, now: the machine's speed at this moment.

    The load average misses a host that slows every core at once (seen here: the same route 1.6-2x
    slower from one quarter of an hour to the next at the same load), so every timed route records
    this beside its load; a ratio of routes within one round is the figure to trust."""
    started = time.perf_counter()
    sum(i * i for i in range(2_000_000))
    return time.perf_counter() - started
