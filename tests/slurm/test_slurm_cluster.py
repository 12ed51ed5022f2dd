"""dask-jobqueue workers as real SLURM jobs on the local node: loopback, identical results, GPUs, adapt, walltimes."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import psutil
import pytest
import xarray as xr

from satflow.config import load_config
from satflow.eval.api import run_eval
from satflow.eval.options import EvalConfig
from satflow.ingest import run_ingest
from satflow.runtime.cluster import open_client
from satflow.runtime.executors import scheduler_workers
from satflow.runtime.slurm import JobLedger

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]

CLASSIC = ["sz3:tol=0.5", "bitround:keepbits=6"]


def _listening(pid: int) -> list[str]:
    return [f"{c.laddr.ip}:{c.laddr.port}" for c in psutil.Process(pid).net_connections("inet")
            if c.status == psutil.CONN_LISTEN]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def assert_same_store(got, want):
    a, b = xr.open_zarr(got), xr.open_zarr(want)
    for name in ("X", "M", "count", "mean", "std", "min", "max", "ingested"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def assert_same_eval(got_dir, want_dir):
    got, want = (json.loads((d / "metrics.json").read_text()) for d in (got_dir, want_dir))
    assert [e["codec"] for e in got] == [e["codec"] for e in want]
    for g, w in zip(got, want):
        assert g["n_bytes"] == w["n_bytes"]
        assert g["per_feature"] == w["per_feature"]  # exact: the tree reduction is fixed, not arrival order
        chunks = got_dir / g["dir"] / "compressed.zarr" / "X" / "c"
        containers = sorted(p for p in chunks.rglob("*") if p.is_file())
        assert containers and all(p.read_bytes() == (want_dir / w["dir"] / "compressed.zarr" / "X" / "c" /
                                                     p.relative_to(chunks)).read_bytes() for p in containers)


def test_workers_start_as_slurm_jobs_and_listen_only_on_loopback(local_slurm, slurm_overrides, tmp_path, capsys):
    config = load_config(None, slurm_overrides(tmp_path / "logs", "cluster.slurm.processes=2", "cluster.slurm.cores=2",
                                               "cluster.slurm.memory=2GiB"))
    ledger = JobLedger(tmp_path / "slurm-jobs.json", "t-loopback")
    tic = time.perf_counter()
    with open_client(config.cluster, ledger=ledger, job_name="satflow-t-loopback", quiet=True) as client:
        client.wait_for_workers(2, timeout=90)
        startup = time.perf_counter() - tic
        (job_id,) = ledger.job_ids
        assert [(j["id"], j["state"]) for j in local_slurm.queue("satflow-t-loopback")] == [(job_id, "RUNNING")]
        assert set(client.run(lambda: os.environ["SLURM_JOB_ID"]).values()) == {job_id}
        workers = scheduler_workers(client)
        assert all(address.startswith("tcp://127.0.0.1:") for address in workers)
        pids = set(client.run(os.getpid).values())
        pids |= {psutil.Process(pid).parent().pid for pid in pids}  # the nanny of each worker
        sockets = {pid: _listening(pid) for pid in pids | {os.getpid()}}
        assert all(sockets.values()), sockets  # every process listens somewhere ...
        assert all(s.startswith("127.0.0.1:") for found in sockets.values() for s in found), sockets  # ... on loopback
        assert client.dashboard_link.startswith("http://127.0.0.1:")
    # Closing the cluster cancels the job.
    _wait(lambda: not local_slurm.queue("satflow-t-loopback"), 30, "the worker job to leave the queue")
    assert json.loads((tmp_path / "slurm-jobs.json").read_text())["jobs"][0]["id"] == job_id
    with capsys.disabled():
        print(f"\n[slurm] SLURM started in {local_slurm.startup_seconds:.2f} s; "
              f"scale(jobs=1) to 2 workers connected in {startup:.2f} s")


def test_ingest_and_eval_on_slurm_workers_equal_local_cluster(local_slurm, slurm_overrides, ingest_config, amsua_files,
                                                               reference_store, dask_client, tmp_path):
    eval_config = EvalConfig(codecs=CLASSIC, block={"lat": 3, "lon": 6}, batch_size=4)
    reference_eval = tmp_path / "local-eval"
    run_eval(reference_store, reference_eval, eval_config, client=dask_client, progress=False)
    config = load_config(None, slurm_overrides(tmp_path / "logs", "cluster.slurm.jobs=2"))
    store, evaluation = tmp_path / "store.zarr", tmp_path / "slurm-eval"
    with open_client(config.cluster, quiet=True) as client:
        client.wait_for_workers(2, timeout=90)
        run_ingest([str(amsua_files)], store, ingest_config, client=client, progress=False)
        result = run_eval(store, evaluation, eval_config, client=client, progress=False)
        job_of = client.run(lambda: os.environ["SLURM_JOB_ID"])
    assert_same_store(store, reference_store)
    assert_same_eval(evaluation, reference_eval)
    ran_on = {task["worker"] for task in result.manifest["tasks"]}
    assert ran_on <= set(job_of) and len(set(job_of.values())) == 2


def test_gpu_jobs_split_their_gpu_among_processes_and_get_the_learned_tasks(local_slurm, slurm_overrides, reference_store,
                                                                           tmp_path):
    """--gres=gpu:1 with 2 processes: one process owns the GPU (CUDA_VISIBLE_DEVICES set by SLURM), the other none."""
    from satflow.data import AMSUA_CHECKPOINT

    config = load_config(None, slurm_overrides(tmp_path / "logs", "cluster.slurm.processes=2", "cluster.slurm.cores=2",
                                               "cluster.slurm.memory=3GiB", "cluster.slurm.gpus_per_job=1"))
    ledger = JobLedger(tmp_path / "slurm-jobs.json", "t-gpu")
    eval_config = EvalConfig(codecs=["vaeformer:qstep=1", "sz3:tol=0.5"], checkpoint=str(AMSUA_CHECKPOINT),
                             batch_size=2, field_metrics=False)
    with open_client(config.cluster, ledger=ledger, quiet=True) as client:
        client.wait_for_workers(2, timeout=90)
        resources = {a: w.get("resources", {}) for a, w in scheduler_workers(client).items()}
        devices = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        result = run_eval(reference_store, tmp_path / "out", eval_config, client=client, progress=False)
    gpu_workers = [a for a, r in resources.items() if r]
    assert len(resources) == 2 and len(gpu_workers) == 1 and resources[gpu_workers[0]] == {"GPU": 1.0}
    assert devices[gpu_workers[0]] == "0" and {d for a, d in devices.items() if a not in gpu_workers} == {""}
    job = local_slurm._run(["scontrol", "show", "job", ledger.job_ids[0]]).stdout
    assert "gres:gpu:1" in job or "gres/gpu=1" in job
    learned = [t for t in result.manifest["tasks"] if t["task"] == "code" and t["codec"].startswith("vaeformer")]
    assert learned and {t["worker"] for t in learned} == set(gpu_workers)
    assert result.manifest["cluster"]["resources"] == {gpu_workers[0]: {"GPU": 1.0}}


def test_adapt_starts_jobs_for_work_and_releases_them_after(local_slurm, slurm_overrides, ingest_config, amsua_files,
                                                           reference_store, tmp_path):
    config = load_config(None, slurm_overrides(tmp_path / "logs", "cluster.slurm.adaptive_minimum=0",
                                               "cluster.slurm.adaptive_maximum=2"))
    ledger = JobLedger(tmp_path / "slurm-jobs.json", "t-adapt")
    with open_client(config.cluster, ledger=ledger, job_name="satflow-t-adapt", quiet=True) as client:
        time.sleep(2)
        assert ledger.job_ids == [] and not local_slurm.queue("satflow-t-adapt")  # no work, no job
        run_ingest([str(amsua_files)], tmp_path / "store.zarr", ingest_config, client=client, progress=False)
        assert 1 <= len(ledger.job_ids) <= 2
        _wait(lambda: not local_slurm.queue("satflow-t-adapt"), 60, "adapt to release the idle jobs")
        assert not scheduler_workers(client)
    assert_same_store(tmp_path / "store.zarr", reference_store)


def test_workers_past_their_lifetime_are_replaced_and_the_run_completes_identically(
        local_slurm, slurm_overrides, ingest_config, amsua_files, reference_store, dask_client, tmp_path):
    """One job at a time (adapt 1..1) whose worker retires after 15-17 s (--lifetime, --lifetime-stagger),
    shorter than the run: every job after the first is a replacement, and the numbers do not change."""
    eval_config = EvalConfig(codecs=CLASSIC, block={"lat": 3, "lon": 6}, batch_size=1, field_metrics=False)
    reference_eval = tmp_path / "local-eval"
    run_eval(reference_store, reference_eval, eval_config, client=dask_client, progress=False)
    config = load_config(None, slurm_overrides(tmp_path / "logs", "cluster.slurm.adaptive_minimum=1",
                                               "cluster.slurm.adaptive_maximum=1", "cluster.slurm.lifetime=15s",
                                               "cluster.slurm.lifetime_stagger=2s"))
    ledger = JobLedger(tmp_path / "slurm-jobs.json", "t-lifetime")
    store, evaluation = tmp_path / "store.zarr", tmp_path / "slurm-eval"
    tic = time.perf_counter()
    with open_client(config.cluster, ledger=ledger, quiet=True) as client:
        run_ingest([str(amsua_files)], store, ingest_config, client=client, progress=False)
        while True:  # until the run has outlived the first worker
            run_eval(store, evaluation, eval_config, client=client, progress=False, overwrite=True)
            if len(ledger.job_ids) > 1 or time.perf_counter() - tic > 150:
                break
    assert len(ledger.job_ids) > 1, f"the worker was never replaced: jobs {ledger.job_ids}"
    assert_same_store(store, reference_store)
    assert_same_eval(evaluation, reference_eval)
