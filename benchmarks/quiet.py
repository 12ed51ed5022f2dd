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
