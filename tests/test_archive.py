"""satflow.open_archive (the planned cube, lazily) and one store whatever codec, chunks and workers write it."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

import satflow
from satflow.config import load_config
from satflow.ingest import IngestError, plan_dataset, run_ingest, scan_and_plan
from satflow.runtime.cluster import open_client
from satflow.sources.samples import write_amsua_sample
from satflow.store import STAT_NAMES, STEP_NAMES, fingerprint

CHUNKS = ["ingest.chunks.lat=16", "ingest.chunks.lon=32"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    return write_amsua_sample(tmp_path_factory.mktemp("amsua"), steps=5, resolution=6.0, seed=11)


@pytest.fixture(scope="module")
def reference(files, tmp_path_factory, dask_client) -> Path:
    """The default settings on the shared two-process cluster."""
    store = tmp_path_factory.mktemp("reference") / "amsua.zarr"
    run_ingest([str(f) for f in files], store, load_config(None, CHUNKS).ingest, client=dask_client, progress=False)
    return store


def ingest_config(*overrides: str):
    return load_config(None, [*CHUNKS, *overrides]).ingest


def test_open_archive_is_lazy_and_chunked_like_the_store(files, tmp_path):
    cube = satflow.open_archive([str(f) for f in files], ingest_config())
    assert isinstance(cube["X"].data, da.Array) and isinstance(cube["M"].data, da.Array)
    assert cube["X"].dims == ("time", "feature", "lat", "lon") and cube["X"].dtype == np.float32
    assert cube["X"].data.chunksize == (1, 40, 16, 32)
    assert cube.sizes == {"time": 5, "feature": 40, "lat": 30, "lon": 60}
    assert [Path(p).name for p in cube["source_file"].values] == [f.name for f in files]
    assert cube["lat"].attrs["units"] == "degrees_north" and cube["units"].values[0] == "K"
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_open_archive_equals_the_ingested_store(files, reference):
    cube = satflow.open_archive(str(files[0].parent), load_config(None, CHUNKS))  # a directory, a SatflowConfig
    ds = xr.open_zarr(reference)
    np.testing.assert_array_equal(cube["X"].values, ds["X"].values)
    np.testing.assert_array_equal(cube["M"].values, ds["M"].values)
    np.testing.assert_array_equal(cube["M"].values, np.isfinite(ds["X"].values))
    for name in ("time", "feature", "lat", "lon", "source_file", "units"):
        np.testing.assert_array_equal(cube[name].values, ds[name].values, err_msg=name)
    # A reduction on the lazy cube equals the store's statistics (computed by the ingest's pass).
    np.testing.assert_allclose(cube["X"].mean(dim=("time", "lat", "lon")).values, ds["mean"].values, rtol=1e-6)


def test_dataset_of_a_resume_plan_is_refused(files, reference):
    plan = scan_and_plan([str(f) for f in files], reference, ingest_config())
    with pytest.raises(IngestError, match="describes a new store; this plan resumes an existing one"):
        plan_dataset(plan, ingest_config().source)


def store_content(store: Path) -> dict[str, np.ndarray]:
    """Everything but the layout: values, mask, statistics, per-step partials, provenance, coordinates."""
    ds = xr.open_zarr(store)
    names = ("X", "M", "time", "feature", "lat", "lon", "source_file", "units", "ingested", *STAT_NAMES, *STEP_NAMES)
    return {name: ds[name].values for name in names}


@pytest.mark.parametrize("overrides", [
    ["ingest.compression_level=0"],
    ["ingest.compression_level=9"],
    ["ingest.chunks.lat=8", "ingest.chunks.lon=64", "ingest.chunks.time=2"],
    ["ingest.chunks.lat=32", "ingest.chunks.lon=32", "ingest.chunks.feature=7"],
], ids=["level0", "level9", "chunks-8x64-time2", "chunks-32x32-feature7"])
def test_store_is_the_same_whatever_codec_level_and_chunks(files, reference, tmp_path, overrides, dask_client):
    store = tmp_path / "other.zarr"
    run_ingest([str(f) for f in files], store, ingest_config(*overrides), client=dask_client, progress=False)
    expected, got = store_content(reference), store_content(store)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    assert fingerprint(store) == fingerprint(reference)  # hashes coordinates, provenance and exact partials


def test_store_is_the_same_in_process(files, reference, tmp_path):
    store = tmp_path / "in-process.zarr"
    run_ingest([str(f) for f in files], store, ingest_config(), client=None, progress=False)
    assert fingerprint(store) == fingerprint(reference)
    np.testing.assert_array_equal(xr.open_zarr(store)["X"].values, xr.open_zarr(reference)["X"].values)


@pytest.mark.parametrize("workers, threads", [(1, 1), (2, 2)])
def test_thread_workers_neither_crash_nor_corrupt(files, reference, tmp_path, workers, threads):
    """`processes: false`: netCDF4/HDF5 is not thread-safe (two workers used to SIGSEGV); reads take turns."""
    config = load_config(None, ["cluster.local.processes=false", f"cluster.local.n_workers={workers}",
                                f"cluster.local.threads_per_worker={threads}", *CHUNKS])
    store = tmp_path / "threads.zarr"
    with open_client(config.cluster, quiet=True) as client:
        for _ in range(2):  # a second pass over the same files, to give a race a second chance
            run_ingest([str(f) for f in files], store, config.ingest, client=client, progress=False, overwrite=True)
    assert fingerprint(store) == fingerprint(reference)
    np.testing.assert_array_equal(zarr.open_array(str(store / "X"))[:], zarr.open_array(str(reference / "X"))[:])
