"""jobs/pipeline.py on the local SLURM: submitted with sbatch, scancelled mid-run, SIGKILLed, re-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from satflow.status import format_status, status_of

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
VENV = str(Path(sys.executable).parents[1])
STAGES = ["ingest", "index", "eval", "report"]


def tiny_config(tmp_path: Path, ingest_config, **eval_options) -> Path:
    config = {
        "cluster": {"kind": "slurm", "slurm": {
            "cores": 1, "memory": "1GiB", "walltime": "00:10:00", "jobs": 1, "dashboard_address": "127.0.0.1:0",
            "log_directory": str(tmp_path / "worker-logs"), "job_script_prologue": ["export OMP_NUM_THREADS=1"]}},
        "ingest": ingest_config.model_dump(mode="json"),
        "index": {"patch_size": 6, "stride": 6},
        "eval": {"codecs": ["sz3:tol=0.5", "bitround:keepbits=6"], **eval_options},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_driver(config: Path, out: Path, *args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "jobs" / "pipeline.py"), "--config", str(config),
                             "--out", str(out), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=ROOT)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def ledger_jobs(out: Path) -> list[str]:
    try:
        return [job["id"] for job in json.loads((out / "slurm-jobs.json").read_text())["jobs"]]
    except (OSError, ValueError, KeyError):
        return []


def metrics(out: Path) -> list[tuple]:
    entries = json.loads((out / "eval" / "metrics.json").read_text())
    return [(e["codec"], e["n_bytes"], json.dumps(e["per_feature"], sort_keys=True)) for e in entries]


def test_driver_submitted_with_sbatch_runs_every_stage(local_slurm, amsua_files, ingest_config, tmp_path):
    config, out = tiny_config(tmp_path, ingest_config), tmp_path / "run"
    job = local_slurm.sbatch(ROOT / "jobs" / "pipeline.sbatch", "--output", str(tmp_path / "driver-%j.out"),
                             args=("--out", str(out), str(amsua_files)), cwd=ROOT,
                             extra_env={"SATFLOW_VENV": VENV, "CONFIG": str(config)})
    state = local_slurm.wait_job(job, timeout=240)
    printed = (tmp_path / f"driver-{job}.out").read_text()
    assert state == "COMPLETED", printed[-3000:]
    assert "dashboard http://127.0.0.1:" in printed
    for name in ("store.zarr/zarr.json", "index.parquet", "eval/metrics.json", "eval/report.html",
                 "dask-performance-report.html", "run-manifest.json", "slurm-jobs.json",
                 *(f"logs/{stage}.log" for stage in STAGES)):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "run-manifest.json").read_text())
    assert manifest["status"] == "done" and list(manifest["stages"]) == STAGES
    (worker_job,) = ledger_jobs(out)
    assert worker_job != job
    for stage in ("ingest", "index", "eval"):  # the report is drawn by the driver itself
        ran_on = manifest["stages"][stage]["workers"]
        assert ran_on and {w["slurm_job_id"] for w in ran_on.values()} == {worker_job}, stage
    assert "ingested 4 region(s)" in (out / "logs" / "ingest.log").read_text()
    wait_for(lambda: not local_slurm.queue(), 30, "the worker job to end with the driver")
    status = status_of(out)
    assert status["complete"] and [s["status"] for s in status["stages"]] == ["done"] * 4
    text = format_status(status)
    assert f"SLURM job(s) {worker_job}" in text and "4 of 4 time steps ingested, finalised" in text
    assert "still queued or running: none" in text


def test_scancelled_driver_cancels_its_jobs_and_the_rerun_resumes_identically(
        local_slurm, amsua_files, ingest_config, reference_store, tmp_path):
    """scancel (SIGTERM) mid-eval: the worker job goes too; the re-run encodes only the missing blocks."""
    eval_options = {"block": {"lat": 3, "lon": 6}, "batch_size": 2, "field_metrics": False}
    config, out = tiny_config(tmp_path, ingest_config, **eval_options), tmp_path / "run"
    stages = ("--stages", "ingest,eval")
    job = local_slurm.sbatch(ROOT / "jobs" / "pipeline.sbatch", "--output", str(tmp_path / "driver-%j.out"),
                             args=("--out", str(out), *stages, str(amsua_files)), cwd=ROOT,
                             extra_env={"SATFLOW_VENV": VENV, "CONFIG": str(config)})
    containers = out / "eval"
    wait_for(lambda: len(list(containers.glob("*/compressed.zarr/X/c/*/*/*/*"))) >= 20, 180,
             "the eval to write its first containers")
    workers = ledger_jobs(out)
    local_slurm._run(["scancel", job])
    assert local_slurm.wait_job(job, timeout=60) == "CANCELLED"
    wait_for(lambda: not any(j["id"] in workers for j in local_slurm.queue()), 30, "the worker jobs to be cancelled")
    ledger = json.loads((out / "slurm-jobs.json").read_text())
    assert {c["id"] for c in ledger["cancelled"]} == set(workers)
    assert json.loads((out / "run-manifest.json").read_text())["stages"]["eval"]["status"] == "terminated"
    done_before = len(list(containers.glob("*/compressed.zarr/X/c/*/*/*/*")))

    tic = time.perf_counter()
    rerun = start_driver(config, out, *stages, str(amsua_files), env=local_slurm.env)
    printed, _ = rerun.communicate(timeout=240)
    resumed_seconds = time.perf_counter() - tic
    assert rerun.returncode == 0, printed[-3000:]
    eval_log = (out / "logs" / "eval.log").read_text()
    total = 2 * 4 * 6 * 6  # codecs x steps x blocks per step
    assert f"{total - done_before} block(s) encoded, {done_before} resumed" in eval_log
    assert "ingested 0 region(s)" in (out / "logs" / "ingest.log").read_text()  # nothing left to ingest
    # The same as a clean run on a LocalCluster.
    from satflow.eval.api import run_eval
    from satflow.eval.options import EvalConfig

    clean = tmp_path / "clean"
    run_eval(reference_store, clean / "eval", EvalConfig(codecs=["sz3:tol=0.5", "bitround:keepbits=6"],
                                                           **eval_options), progress=False)
    assert metrics(out) == metrics(clean)
    for name in ("X", "M", "mean", "std"):
        np.testing.assert_array_equal(xr.open_zarr(out / "store.zarr")[name].values,
                                      xr.open_zarr(reference_store)[name].values)
    print(f"\n[slurm] resumed run ({done_before} of {total} blocks kept) took {resumed_seconds:.1f} s")


def test_a_sigkilled_drivers_jobs_are_cancelled_by_the_next_run(local_slurm, amsua_files, ingest_config, tmp_path):
    config, out = tiny_config(tmp_path, ingest_config), tmp_path / "run"
    first = start_driver(config, out, "--stages", "ingest", "--wait-workers", "1", str(amsua_files),
                         env=local_slurm.env)
    wait_for(lambda: ledger_jobs(out), 60, "the first driver to submit its worker job")
    (leftover,) = ledger_jobs(out)
    first.send_signal(signal.SIGKILL)  # no handler runs: the worker job stays behind
    first.wait(timeout=30)
    assert leftover in {j["id"] for j in local_slurm.queue()}
    second = start_driver(config, out, "--stages", "ingest", str(amsua_files), env=local_slurm.env)
    printed, _ = second.communicate(timeout=240)
    assert second.returncode == 0, printed[-3000:]
    assert f"cancelled 1 leftover SLURM job(s) of the earlier run" in printed and leftover in printed
    assert leftover not in {j["id"] for j in local_slurm.queue()}
    manifest = json.loads((out / "run-manifest.json").read_text())
    assert manifest["stages"]["ingest"]["status"] == "done" and len(manifest["earlier_runs"]) == 1
    assert os.path.isdir(out / "store.zarr")
