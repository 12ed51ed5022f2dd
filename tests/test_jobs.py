"""The SLURM driver side: configs/slurm.yaml, the worker job script it yields, jobs/ drivers.

No real SLURM here: dask-jobqueue renders the job script without submitting it. Workers bind to
loopback (`interface: lo`) and log into a temporary directory (dask-jobqueue creates it).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from satflow.runtime.cluster import slurm_cluster_kwargs, slurm_job_script
from satflow.config import load_config
from satflow.store import open_group

ROOT = Path(__file__).resolve().parents[1]
SLURM_CONFIG = ROOT / "configs" / "slurm.yaml"


def load_driver():
    """jobs/ is scripts, not a package: load the driver module from its file."""
    spec = importlib.util.spec_from_file_location("ingest_slurm", ROOT / "jobs" / "ingest_slurm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_slurm_config_validates_and_maps_to_jobqueue_kwargs():
    config = load_config(SLURM_CONFIG)
    assert config.cluster.kind == "slurm"
    assert (config.cluster.slurm.adaptive_minimum, config.cluster.slurm.adaptive_maximum) == (1, 16)
    assert slurm_cluster_kwargs(config.cluster.slurm) == {
        "queue": "compute",
        "account": "my-project",
        "cores": 8,
        "memory": "32GiB",
        "processes": 4,
        "job_name": "satflow-worker",
        "walltime": "02:00:00",
        "job_extra_directives": ["--qos=normal", "--hint=nomultithread"],
        "job_script_prologue": ["export OMP_NUM_THREADS=1"],
        "worker_extra_args": ["--lifetime", "115m", "--lifetime-stagger", "4m"],
        "interface": "ib0",
        "scheduler_options": {"dashboard_address": "127.0.0.1:8787"},
        "log_directory": "logs/dask-workers",
        "local_directory": "/tmp",
    }


def test_job_script_from_slurm_config(tmp_path):
    logs = tmp_path / "worker-logs"
    config = load_config(SLURM_CONFIG, ["cluster.slurm.interface=lo", f"cluster.slurm.log_directory={logs}"])
    script = slurm_job_script(config.cluster)
    header = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert header == [
        "#SBATCH -J satflow-worker",
        f"#SBATCH -e {logs}/satflow-worker-%J.err",
        f"#SBATCH -o {logs}/satflow-worker-%J.out",
        "#SBATCH -p compute",
        "#SBATCH -A my-project",
        "#SBATCH -n 1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32G",
        "#SBATCH -t 02:00:00",
        "#SBATCH --qos=normal",
        "#SBATCH --hint=nomultithread",
    ]
    assert "\nexport OMP_NUM_THREADS=1\n" in script
    worker = next(line for line in script.splitlines() if "distributed.cli.dask_worker" in line)
    # 4 processes share 8 cores and 32 GiB: 2 threads and 8 GiB each.
    for flag in ("--nworkers 4", "--nthreads 2", "--memory-limit 8.00GiB", "--local-directory /tmp",
                 "--lifetime 115m --lifetime-stagger 4m", "--interface lo"):
        assert flag in worker
    assert logs.is_dir()


def test_gpu_jobs_ask_for_gres_and_advertise_the_resource(tmp_path):
    config = load_config(SLURM_CONFIG, ["cluster.slurm.interface=lo", f"cluster.slurm.log_directory={tmp_path}",
                                        "cluster.slurm.gpus_per_job=2"])
    script = slurm_job_script(config.cluster)
    assert "#SBATCH --gres=gpu:2" in script.splitlines()
    assert "--resources GPU=2" in script


def test_driver_job_script_mode_prints_the_worker_script(tmp_path, capsys):
    driver = load_driver()
    rc = driver.main(["--config", str(SLURM_CONFIG), "--set", "cluster.slurm.interface=lo",
                      "--set", f"cluster.slurm.log_directory={tmp_path}", "--job-script"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "#SBATCH -p compute" in out and "#SBATCH -A my-project" in out and "--interface lo" in out


def test_driver_job_script_mode_refuses_a_local_cluster(capsys):
    driver = load_driver()
    rc = driver.main(["--config", str(SLURM_CONFIG), "--set", "cluster.kind=local", "--job-script"])
    assert rc == 2
    assert "cluster.kind is 'local'; a job script exists only for kind: slurm" in capsys.readouterr().err


def test_driver_reports_config_errors_with_the_key(capsys):
    driver = load_driver()
    rc = driver.main(["--config", str(SLURM_CONFIG), "--set", "cluster.slurm.cores=0", "--job-script"])
    assert rc == 2
    assert "cluster.slurm.cores" in capsys.readouterr().err


def test_ingest_argv_attaches_to_the_drivers_scheduler():
    driver = load_driver()
    args, passthrough = driver.build_parser().parse_known_args(
        ["--config", "c.yaml", "--set", "ingest.chunks.lat=64", "in/*.nc", "--out", "s.zarr", "--var", "tmbrs"])
    assert driver.ingest_argv(args, passthrough, "tcp://10.0.0.1:8786") == [
        "ingest", "in/*.nc", "--out", "s.zarr", "--var", "tmbrs", "--config", "c.yaml",
        "--set", "ingest.chunks.lat=64",
        "--set", "cluster.kind=address", "--set", "cluster.address=tcp://10.0.0.1:8786",
    ]


def test_sbatch_script_header_and_driver_wiring(tmp_path):
    text = (ROOT / "jobs" / "ingest.sbatch").read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    directives = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --job-name=satflow-ingest" in directives and "#SBATCH --time=12:00:00" in directives
    # Run it as sbatch would (bash, the repository as submit dir), in its print-only mode.
    env = {**os.environ, "SATFLOW_VENV": str(Path(sys.executable).parents[1]), "SLURM_SUBMIT_DIR": str(ROOT)}
    result = subprocess.run(
        ["bash", str(ROOT / "jobs" / "ingest.sbatch"), "--set", "cluster.slurm.interface=lo",
         "--set", f"cluster.slurm.log_directory={tmp_path}", "--job-script"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "#SBATCH -p compute" in result.stdout and "--lifetime 115m" in result.stdout


def write_gridded_files(directory: Path, steps: int = 2) -> list[Path]:
    """Tiny CF files: one variable (time, lat, lon) with a NaN gap."""
    paths = []
    lat, lon = np.linspace(-7.5, 7.5, 4), np.linspace(0.0, 35.0, 8)
    for step in range(steps):
        values = np.full((1, 4, 8), 250.0 + step, dtype=np.float32)
        values[0, 0, :3] = np.nan
        ds = xr.Dataset(
            {"tb": (("time", "lat", "lon"), values, {"units": "K"})},
            coords={"time": [np.datetime64("2020-01-01T00") + np.timedelta64(6 * step, "h")],
                    "lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon, {"units": "degrees_east"})},
        )
        paths.append(directory / f"tb_{step}.nc")
        ds.to_netcdf(paths[-1])
    return paths


@pytest.mark.timeout(120)
def test_driver_ingests_on_the_cluster_it_opens(tmp_path, capsys):
    files = write_gridded_files(tmp_path)
    store = tmp_path / "tb.zarr"
    driver = load_driver()
    rc = driver.main([
        "--config", str(SLURM_CONFIG),
        "--set", "cluster.kind=local", "--set", "cluster.local.n_workers=1",
        "--set", "cluster.local.memory_limit=1GiB",
        "--set", "ingest.source.variables=[tb]",
        *map(str, files), "--out", str(store), "--no-progress", "--strict",
    ])
    out = capsys.readouterr().out
    assert rc == 0
    assert "dashboard http://127.0.0.1:" in out
    group = open_group(store)
    assert group["ingested"][:].tolist() == [1, 1]
    assert group["step_count"][:].tolist() == [[29], [29]]
    np.testing.assert_array_equal(group["max"][:], [251.0])


def load_pipeline_driver():
    spec = importlib.util.spec_from_file_location("pipeline_driver", ROOT / "jobs" / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(180)
def test_pipeline_driver_runs_the_shared_pipeline_with_its_manifest_and_stage_logs(tmp_path, capsys, caplog):
    """jobs/pipeline.py on a LocalCluster: satflow.pipeline's stages, each in the manifest and its own log."""
    import json
    import logging

    caplog.set_level(logging.INFO)  # what the driver's logging.basicConfig sets outside pytest

    files = write_gridded_files(tmp_path)
    out = tmp_path / "run"
    rc = load_pipeline_driver().main([
        "--config", str(SLURM_CONFIG), "--set", "cluster.kind=local", "--set", "cluster.local.n_workers=1",
        "--set", "cluster.local.memory_limit=1GiB", "--set", "ingest.source.variables=[tb]",
        "--set", "index.patch_size=2", "--set", "index.stride=2",
        "--stages", "index,ingest", *map(str, files), "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "[ingest] done in " in printed and "[index] done in " in printed
    manifest = json.loads((out / "run-manifest.json").read_text())
    assert manifest["status"] == "done" and list(manifest["stages"]) == ["ingest", "index"]
    ingest = manifest["stages"]["ingest"]
    assert ingest["status"] == "done"
    assert ingest["summary"] == f"ingested 2 region(s) into {out / 'store.zarr'} (2 time steps)"
    assert ingest["tasks"] > 0 and len(ingest["workers"]) == 1
    assert "stage ingest: done in" in (out / "logs" / "ingest.log").read_text()
    assert "stage index: starting" in (out / "logs" / "index.log").read_text()
    assert open_group(out / "store.zarr")["ingested"][:].tolist() == [1, 1]
    assert (out / "index.parquet").is_file() and (out / "dask-performance-report.html").is_file()
