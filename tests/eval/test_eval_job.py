"""`eval_job`, the entry point behind `satflow eval`: the cluster policy counts coded fields, not tasks,
and at most one per 16 MiB of data."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from satflow.config import load_config
from satflow.eval.api import eval_job
from satflow.eval.options import EvalConfig


@pytest.fixture(scope="module")
def whole_field_store(tmp_path_factory):
    """8 steps stored one whole field a chunk: at batch 4, 2 tasks of 4 fields each."""
    from satflow.store import write_store_from_arrays

    rng = np.random.default_rng(0)
    values = (250.0 + rng.normal(0.0, 2.0, (8, 2, 12, 20))).astype(np.float32)
    path = tmp_path_factory.mktemp("eval-job") / "cube.zarr"
    write_store_from_arrays(path, values, times=np.datetime64("2021-03-01") + np.arange(8) * np.timedelta64(6, "h"),
                            features=["a", "b"], lat=np.linspace(-5.5, 5.5, 12), lon=np.linspace(0.5, 19.5, 20),
                            chunks={"time": 1, "feature": -1, "lat": 12, "lon": 20}, units=["K", "K"])
    return path


def run(store, out, time: str) -> dict:
    config = EvalConfig(codecs=["lossless"], batch_size=4, field_metrics=False, time=time)
    eval_job(store, out, config, load_config(None, []).cluster, choice="auto", progress=False)
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture
def field_sized_data_tasks(monkeypatch):
    """Every field of the small test store weighs a whole data task (as a 16 MiB field would)."""
    import satflow.runtime.cluster

    monkeypatch.setattr(satflow.runtime.cluster, "DATA_TASK_BYTES", 2 * 12 * 20 * 4)


def test_eight_fields_in_two_batched_tasks_open_the_cluster(whole_field_store, tmp_path, field_sized_data_tasks):
    manifest = run(whole_field_store, tmp_path / "all", "0:8")
    assert len([t for t in manifest["tasks"] if t["task"] == "code"]) == 2
    assert manifest["cluster"]["kind"] == "dask"


def test_fewer_fields_than_the_policy_threshold_run_in_this_process(whole_field_store, tmp_path,
                                                                   field_sized_data_tasks):
    manifest = run(whole_field_store, tmp_path / "some", "0:7")
    assert manifest["cluster"]["kind"] == "in-process"


def test_many_fields_of_little_data_run_in_this_process(whole_field_store, tmp_path):
    # 8 fields of 1.9 kB: a cluster's start would cost far more than coding them
    assert run(whole_field_store, tmp_path / "small", "0:8")["cluster"]["kind"] == "in-process"


def test_data_tasks_count_one_task_per_16_mib_at_most():
    from satflow.runtime.cluster import DATA_TASK_BYTES, data_tasks

    assert DATA_TASK_BYTES == 16 * 2**20
    assert data_tasks(54, 54 * 18 * 432 * 4) == 1  # OSTIA: 54 one-feature fields, 1.7 MB
    assert data_tasks(24, 24 * 15 * 360 * 720 * 4) == 23  # AMSU: 24 fields of 15.6 MB, 373 MB
    assert data_tasks(8, 8 * DATA_TASK_BYTES) == 8 and data_tasks(8, 8 * DATA_TASK_BYTES - 1) == 8
    assert data_tasks(100, 7 * DATA_TASK_BYTES) == 7


def test_the_eval_command_s_process_loads_neither_pandas_nor_numba_before_its_tasks():
    """pandas (the metrics table) and numba (the field kernels) load where they are used: 0.6 s of
    every `satflow eval`'s start before the cluster opens, measured."""
    code = ("import sys, satflow.cli.evaluate, satflow.eval.api\n"
            "print(sorted(m for m in ('pandas', 'numba', 'xarray', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"
