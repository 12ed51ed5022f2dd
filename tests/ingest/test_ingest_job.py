"""`ingest_job`, the entry point behind `satflow ingest`: rerun, overwrite and dry run as a user gives them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from satflow.config import load_config
from satflow.ingest import run_ingest
from satflow.ingest.job import ingest_job
from satflow.sources.samples import write_amsua_sample


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[str]:
    out = tmp_path_factory.mktemp("job-files")
    return [str(p) for p in write_amsua_sample(out, start="2020-01-01", steps=4, resolution=12.0, seed=5)]


@pytest.fixture
def config():
    return load_config(None, ["ingest.chunks.lat=8", "ingest.chunks.lon=16"])


def source_files(store: Path) -> list[str]:
    return [Path(name).name for name in zarr.open_group(str(store), mode="r")["source_file"][:].tolist()]


def test_a_plain_rerun_resumes_and_writes_nothing(files, config, tmp_path):
    store = tmp_path / "s.zarr"
    first = ingest_job(files, store, config.ingest, config.cluster, choice="never", progress=False)
    assert first.plan.mode == "create" and first.report.time_steps == 4
    again = ingest_job(files, store, config.ingest, config.cluster, choice="never", progress=False)
    assert again.plan.mode == "resume" and again.plan.regions == []
    assert again.report.time_steps == 4


def test_overwrite_rebuilds_the_store_from_the_new_inputs_only(files, config, tmp_path):
    store = tmp_path / "s.zarr"
    ingest_job(files, store, config.ingest, config.cluster, choice="never", progress=False)
    (store / "stale-file").write_text("left by the previous store")
    job = ingest_job(files[2:], store, config.ingest, config.cluster, choice="never", overwrite=True, progress=False)
    assert job.plan.mode == "create" and job.report.time_steps == 2
    assert source_files(store) == [Path(f).name for f in files[2:]]
    assert not (store / "stale-file").exists()


def test_run_ingest_overwrite_rebuilds_the_store(files, config, tmp_path):
    store = tmp_path / "s.zarr"
    run_ingest(files[:3], store, config.ingest, progress=False)
    (store / "stale-file").write_text("left by the previous store")
    report = run_ingest(files[3:], store, config.ingest, overwrite=True, progress=False)
    assert report.time_steps == 1 and source_files(store) == [Path(files[3]).name]
    assert not (store / "stale-file").exists()


def test_dry_run_describes_the_cube_and_writes_nothing(files, config, tmp_path):
    store = tmp_path / "s.zarr"
    job = ingest_job(files, store, config.ingest, config.cluster, choice="never", dry_run=True)
    assert job.report is None and job.plan.mode == "create" and len(job.plan.regions) > 0
    assert "X" in job.cube and "(time: 4" in job.cube.replace("\n", " ")
    assert not store.exists()


def test_store_mask_flags_follow_cf(files, config, tmp_path):
    store = tmp_path / "s.zarr"
    ingest_job(files[:1], store, config.ingest, config.cluster, choice="never", progress=False)
    attrs = dict(zarr.open_group(str(store), mode="r")["M"].attrs)
    assert np.asarray(attrs["flag_values"]).tolist() == [0, 1]
    assert attrs["flag_meanings"] == "invalid valid"
