"""Shared fixtures: a real Dask LocalCluster, small stores built through the public API."""

from __future__ import annotations

import os

# Before torch is imported anywhere: on 2 shared cores, intra-op threads fight each other and
# made small CPU models up to 40x slower than one thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def dask_client():
    """A real two-process LocalCluster, shared by the session (starting one costs about a second)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB",
                      dashboard_address=None, host="127.0.0.1") as cluster, Client(cluster) as client:
        yield client


@pytest.fixture
def tiny_store(tmp_path):
    """A 4-step, 3-feature store with NaN gaps, written through satflow.store."""
    from satflow.store import write_store_from_arrays

    rng = np.random.default_rng(42)
    values = rng.normal(250.0, 10.0, size=(4, 3, 20, 30)).astype(np.float32)
    values[values < 245.0] = np.nan
    path = tmp_path / "tiny.zarr"
    write_store_from_arrays(
        path, values,
        times=np.datetime64("2020-01-01") + np.arange(4) * np.timedelta64(6, "h"),
        features=["a-1", "a-2", "b"], lat=np.linspace(-9.5, 9.5, 20), lon=np.linspace(0.5, 29.5, 30),
        chunks={"time": 1, "feature": -1, "lat": 8, "lon": 16},
    )
    return path, values
