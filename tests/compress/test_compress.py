"""`satflow compress` end to end: the CLI and the API, equality with `to_zarr`, the summary against numpy,
resume after SIGKILL, a killed worker, bad inputs, `ingest --codec`, and PatchDataset over the result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask.array
import numpy as np
import pytest
import xarray as xr
import zarr

from satflow.cli import main as cli_main
from satflow.codecs.zarr import zarr_encoding
from satflow.compress import CompressError, run_compress
from satflow.compress.options import CompressConfig
from satflow.config import load_config
from satflow.ingest import run_ingest
from satflow.runtime.executors import scheduler_workers
from satflow.sources.samples import write_amsua_sample
from satflow.store import write_store_from_arrays

SPEC = "sz3:tol=0.5"
TOL = 0.5
KEPT_AS_IS = ("time", "feature", "lat", "lon", "source_file", "units", "count", "mean", "std", "min", "max",
              "step_count", "step_mean", "step_m2", "step_min", "step_max")


@pytest.fixture(scope="module")
def amsua_files(tmp_path_factory) -> list[Path]:
    return write_amsua_sample(tmp_path_factory.mktemp("files"), start="2020-01-01", steps=4, resolution=6.0, seed=3)


def ingest_config(*overrides: str):
    return load_config(None, ["ingest.chunks.lat=16", "ingest.chunks.lon=32", *overrides]).ingest


@pytest.fixture(scope="module")
def store(amsua_files, tmp_path_factory) -> Path:
    """4 steps x 40 features x 30 x 60, chunks (1, 40, 16, 32): partial chunks at both edges."""
    path = tmp_path_factory.mktemp("store") / "amsua.zarr"
    run_ingest([str(p) for p in amsua_files], path, ingest_config(), progress=False)
    return path


@pytest.fixture(scope="module")
def compressed(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compressed") / "c.zarr"
    assert cli_main(["compress", str(store), "--codec", SPEC, "--out", str(out), "--cluster", "never",
                     "--no-progress"]) == 0
    return out


def arrays(path: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return {name: np.asarray(array[:]) for name, array in group.arrays()}


def chunk_files(path: Path, array: str = "X") -> dict[str, bytes]:
    folder = path / array / "c"
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def record(path: Path) -> dict:
    return dict(zarr.open_group(str(path), mode="r").attrs)["satflow_compress"]


# --- the compressed store ----------------------------------------------------------------------------
def test_the_compressed_store_is_the_input_store_with_x_through_the_codec(store, compressed):
    original, opened = xr.open_zarr(store), xr.open_zarr(compressed)
    assert isinstance(opened.X.data, dask.array.Array)  # lazy: decoded when read
    assert opened.X.data.chunks == original.X.data.chunks
    x, x_hat = original.X.values, opened.X.values
    valid = np.isfinite(x)
    assert np.array_equal(np.isfinite(x_hat), valid)  # the mask survives exactly
    assert 0 < np.abs(x_hat - x)[valid].max() <= TOL  # lossy, within the bound
    np.testing.assert_array_equal(opened.M.values, original.M.values)
    source, result = arrays(store), arrays(compressed)
    for name in KEPT_AS_IS:  # coordinates, provenance and the statistics of the ORIGINAL values
        np.testing.assert_array_equal(result[name], source[name], err_msg=name)
    assert result["ingested"].tolist() == [1, 1, 1, 1]
    meta = json.loads((compressed / "X" / "zarr.json").read_text())
    assert meta["codecs"] == [{"name": "satflow.sz3", "configuration": {"fill": "smooth", "tol": 0.5}}]
    assert json.loads((compressed / "M" / "zarr.json").read_text())["codecs"] == \
        json.loads((store / "M" / "zarr.json").read_text())["codecs"]
    attrs, source_attrs = dict(zarr.open_group(str(compressed)).attrs), dict(zarr.open_group(str(store)).attrs)
    assert attrs["satflow_config"] == source_attrs["satflow_config"]
    assert attrs["satflow_source_fingerprint"] == source_attrs["satflow_fingerprint"]
    assert attrs["satflow_fingerprint"] not in ("", source_attrs["satflow_fingerprint"])  # other values, other id
    assert {k: v for k, v in attrs["satflow_compress"].items() if k != "summary"} == {
        "codec": SPEC, "zarr_codec": meta["codecs"][0], "source_store": str(store.resolve()),
        "source_fingerprint": source_attrs["satflow_fingerprint"]}


def test_the_summary_is_what_numpy_finds_on_the_decoded_store(store, compressed):
    summary = record(compressed)["summary"]
    x = xr.open_zarr(store).X.values.astype(np.float64)
    error = xr.open_zarr(compressed).X.values.astype(np.float64) - x
    valid = np.isfinite(x)
    counts = valid.sum(axis=(0, 2, 3))
    assert summary["per_feature"]["count"] == counts.tolist()
    rmse = np.sqrt(np.where(valid, error**2, 0).sum(axis=(0, 2, 3)) / counts)
    worst = np.where(valid, np.abs(error), 0).max(axis=(0, 2, 3))
    np.testing.assert_allclose(summary["per_feature"]["rmse"], rmse, rtol=1e-12)
    np.testing.assert_array_equal(summary["per_feature"]["max_abs_error"], worst)
    x_bytes = sum(len(data) for data in chunk_files(compressed).values())
    assert summary["x_bytes"] == x_bytes and summary["n_cells"] == x.size
    assert summary["m_bytes"] == sum(len(data) for data in chunk_files(compressed, "M").values())
    assert summary["bits_per_value"] == 8 * x_bytes / x.size
    # every chunk holds all 40 features: each feature gets its chunks' rate
    np.testing.assert_allclose(summary["per_feature"]["bits_per_value"], [8 * x_bytes / x.size] * 40, rtol=1e-12)
    assert summary["regions_coded"] == 4 and summary["regions_done_before"] == 0
    assert summary["chunks"] == {"time": 1, "feature": 40, "lat": 16, "lon": 32}


def test_per_feature_bits_come_from_each_features_own_chunks(store, tmp_path):
    out = tmp_path / "f.zarr"
    result = run_compress(store, out, CompressConfig(codec=SPEC, chunks={"feature": 1}), progress=False)
    files = chunk_files(out)
    per_feature = np.zeros(40)
    for key, data in files.items():
        per_feature[int(key.split("/")[1])] += len(data)
    cells = 4 * 30 * 60
    assert result.summary["per_feature"]["bits_per_value"] == (8 * per_feature / cells).tolist()
    assert result.summary["chunks"]["feature"] == 1


def test_the_python_api_on_a_cluster_writes_the_same_chunks(store, compressed, tmp_path, dask_client):
    result = run_compress(store, tmp_path / "api.zarr", CompressConfig(codec=SPEC), client=dask_client, progress=False)
    assert chunk_files(tmp_path / "api.zarr") == chunk_files(compressed)
    assert {k: v for k, v in result.summary.items() if k not in ("store", "seconds")} == \
        {k: v for k, v in record(compressed)["summary"].items() if k not in ("store", "seconds")}
    assert result.summary["fingerprint"] == dict(zarr.open_group(str(compressed)).attrs)["satflow_fingerprint"]


@pytest.mark.parametrize("chunks", [None, {"lat": 10, "lon": 25}])
def test_it_equals_to_zarr_with_the_same_serializer(store, tmp_path, chunks):
    out = tmp_path / "c.zarr"
    run_compress(store, out, CompressConfig(codec=SPEC, chunks=chunks or {}), progress=False)
    dataset = xr.open_zarr(store)[["X"]]
    dataset.X.encoding = {}
    shape = (1, 40, 10, 25) if chunks else (1, 40, 16, 32)
    dataset.chunk(dict(zip(("time", "feature", "lat", "lon"), shape))).to_zarr(
        tmp_path / "ref.zarr", encoding={"X": {**zarr_encoding(SPEC), "chunks": shape}}, zarr_format=3)
    ours, theirs = chunk_files(out), chunk_files(tmp_path / "ref.zarr")
    assert len(ours) == 4 * (-(-30 // shape[2])) * (-(-60 // shape[3]))  # every chunk, edge chunks included
    assert ours == theirs  # same keys, same bytes
    np.testing.assert_array_equal(xr.open_zarr(out).X.values, xr.open_zarr(tmp_path / "ref.zarr").X.values)


# --- resume --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_store(tmp_path_factory) -> Path:
    """48 steps, one time step per chunk: enough regions that a run can be interrupted midway."""
    rng = np.random.default_rng(7)
    values = rng.normal(250.0, 10.0, size=(48, 6, 64, 128)).astype(np.float32)
    values[:, :, 20:30] = np.nan
    path = tmp_path_factory.mktemp("long") / "long.zarr"
    write_store_from_arrays(path, values, times=np.datetime64("2020-01-01") + np.arange(48) * np.timedelta64(1, "h"),
                            features=[f"f-{k}" for k in range(6)], lat=np.linspace(-60, 60, 64),
                            lon=np.linspace(0, 359, 128), chunks={"time": 1, "feature": -1, "lat": 32, "lon": 64})
    return path


@pytest.fixture(scope="module")
def long_clean(long_store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("long-clean") / "clean.zarr"
    run_compress(long_store, out, CompressConfig(codec=SPEC), progress=False)
    return out


def done_steps(out: Path) -> np.ndarray:
    if not (out / "ingested" / "zarr.json").exists():
        return np.zeros(0)
    return np.asarray(zarr.open_group(str(out), mode="r")["ingested"][:])


def wait_for_regions(out: Path, regions: int, timeout: float = 300) -> None:
    # generous: a fresh checkout compiles the codec's kernels first (16 s quiet, minutes at load 5)
    deadline = time.monotonic() + timeout
    while done_steps(out).sum() < regions:
        assert time.monotonic() < deadline, "compress made no progress"
        time.sleep(0.01)


def assert_same_compressed(a: Path, b: Path) -> None:
    assert chunk_files(a) == chunk_files(b) and chunk_files(a, "M") == chunk_files(b, "M")
    left, right = arrays(a), arrays(b)
    assert sorted(left) == sorted(right)
    for name in left:
        np.testing.assert_array_equal(left[name], right[name], err_msg=name)
    summary_a, summary_b = record(a)["summary"], record(b)["summary"]
    for key in ("per_feature", "x_bytes", "m_bytes", "bits_per_value", "n_cells"):
        assert summary_a[key] == summary_b[key], key
    assert dict(zarr.open_group(str(a)).attrs)["satflow_fingerprint"] == \
        dict(zarr.open_group(str(b)).attrs)["satflow_fingerprint"]


def test_a_killed_run_then_the_same_command_gives_the_clean_store(long_store, long_clean, tmp_path):
    out = tmp_path / "killed.zarr"
    command = ["compress", str(long_store), "--codec", SPEC, "--out", str(out), "--cluster", "never", "--no-progress"]
    process = subprocess.Popen([sys.executable, "-m", "satflow", *command], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_regions(out, 2)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    done = done_steps(out)
    assert 2 <= done.sum() < len(done), "the run must have been interrupted midway"
    assert "summary" not in record(out)
    result = run_compress(long_store, out, CompressConfig(codec=SPEC), progress=False)
    assert result.plan.mode == "resume" and len(result.plan.done) == done.sum()
    assert result.summary["regions_coded"] == 48 - done.sum()
    assert result.summary["regions_done_before"] == done.sum()
    assert_same_compressed(out, long_clean)


def test_a_killed_worker_task_is_retried(long_store, long_clean, tmp_path):
    import threading

    from distributed import Client, LocalCluster

    out = tmp_path / "retried.zarr"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        victim = sorted(scheduler_workers(client))[0]

        async def die() -> None:
            os.kill(os.getpid(), signal.SIGKILL)

        def kill_after_first_region() -> None:
            wait_for_regions(out, 1)
            client.run(die, workers=[victim], wait=False)

        killer = threading.Thread(target=kill_after_first_region)
        killer.start()
        run_compress(long_store, out, CompressConfig(codec=SPEC), client=client, progress=False)
        killer.join()
        assert victim not in scheduler_workers(client)
    assert_same_compressed(out, long_clean)


# --- bad inputs: clear errors, nothing written ---------------------------------------------------------
@pytest.mark.parametrize("arguments, message", [
    (["{missing}", "--codec", SPEC],
     r"{missing}: no satflow store here \(no Zarr v3 group\); run `satflow ingest` first"),
    (["{store}", "--codec", "sz3:speed=3"], r"codec spec 'sz3:speed=3': codec 'sz3' has no parameter 'speed'"),
    (["{store}", "--codec", "nope:tol=1"], r"codec spec 'nope:tol=1': unknown codec 'nope'"),
    (["{store}"], r"no codec: give --codec SPEC \(e.g. sz3:tol=0.5\) or set compress.codec"),
    (["{store}", "--codec", SPEC, "--chunks", "lat=0"], r"--chunks 'lat=0': expected KEY=N with KEY in time, "
                                                        r"feature, lat, lon and N a positive cell count"),
])
def test_bad_arguments_are_named(store, tmp_path, capsys, arguments, message):
    out = tmp_path / "c.zarr"
    filled = [a.format(store=store, missing=tmp_path / "missing.zarr") for a in arguments]
    assert cli_main(["compress", *filled, "--out", str(out), "--cluster", "always"]) == 1
    import re

    assert re.search(message.format(missing=re.escape(str((tmp_path / "missing.zarr").resolve()))),
                     capsys.readouterr().err)
    assert not out.exists()


def test_an_existing_out_is_resumed_only_when_it_is_the_same_compression(store, compressed, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(CompressError, match=rf"{other}: exists and is not a store written by `satflow compress`; "
                                            "pass --overwrite to replace it, or choose another --out"):
        run_compress(store, other, CompressConfig(codec=SPEC))
    with pytest.raises(CompressError, match=rf"{compressed}: exists and holds another compression \(codec "
                                            r"sz3:tol=0.5 there, sz3:tol=0.1 now; chunks \[1, 40, 16, 32\] there, "
                                            r"\[1, 40, 8, 32\] now\); pass --overwrite"):
        run_compress(store, compressed, CompressConfig(codec="sz3:tol=0.1", chunks={"lat": 8}))
    with pytest.raises(CompressError, match=r"is \(inside\) the input store"):
        run_compress(store, store, CompressConfig(codec=SPEC), overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    run_compress(store, other, CompressConfig(codec="sz3:tol=0.1"), overwrite=True, progress=False)
    assert record(other)["codec"] == "sz3:tol=0.1" and not (other / "notes.txt").exists()


def test_a_finished_store_rerun_codes_nothing_and_reports_the_same(store, compressed):
    before = chunk_files(compressed)
    again = run_compress(store, compressed, CompressConfig(codec=SPEC), progress=False)
    assert again.summary["regions_coded"] == 0 and again.summary["regions_done_before"] == 4
    assert chunk_files(compressed) == before
    assert again.summary["per_feature"] == record(compressed)["summary"]["per_feature"]


def test_dry_run_prints_the_plan_and_writes_nothing(store, tmp_path, capsys):
    out = tmp_path / "c.zarr"
    assert cli_main(["compress", str(store), "--codec", SPEC, "--out", str(out), "--chunks", "lat=8", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  codec     sz3:tol=0.5 (X through satflow.sz3; M lossless)",
        "  shape     {'time': 4, 'feature': 40, 'lat': 30, 'lon': 60}",
        "  chunks    {'time': 1, 'feature': 40, 'lat': 8, 'lon': 32} (32 chunks of X)",
        "  regions   4 to code, 0 done before (one task each)",
    ]
    assert not out.exists()


# --- ingest --codec --------------------------------------------------------------------------------------
def test_ingest_with_a_codec_equals_ingest_then_compress(amsua_files, compressed, tmp_path):
    out = tmp_path / "direct.zarr"
    assert cli_main(["ingest", *map(str, amsua_files), "--out", str(out), "--codec", SPEC, "--no-progress",
                     "--set", "ingest.chunks.lat=16", "--set", "ingest.chunks.lon=32", "--cluster", "never"]) == 0
    assert chunk_files(out) == chunk_files(compressed)
    assert chunk_files(out, "M") == chunk_files(compressed, "M")
    direct, kept = arrays(out), arrays(compressed)
    for name in (*KEPT_AS_IS, "ingested", "M"):
        np.testing.assert_array_equal(direct[name], kept[name], err_msg=name)
    np.testing.assert_array_equal(xr.open_zarr(out).X.values, xr.open_zarr(compressed).X.values)
    # the same content, so the same fingerprint (the codec is part of it)
    assert dict(zarr.open_group(str(out)).attrs)["satflow_fingerprint"] == \
        dict(zarr.open_group(str(compressed)).attrs)["satflow_fingerprint"]
    assert json.loads(dict(zarr.open_group(str(out)).attrs)["satflow_config"])["codec"] == SPEC


def test_ingest_refuses_to_resume_with_another_codec_and_names_a_bad_one(amsua_files, tmp_path, capsys):
    out = tmp_path / "direct.zarr"
    files = [str(p) for p in amsua_files]
    run_ingest(files, out, ingest_config(f"ingest.codec={SPEC}"), progress=False)
    from satflow.ingest import IngestError

    with pytest.raises(IngestError, match=r"codec: \"sz3:tol=0.5\" in the store, unset now"):
        run_ingest(files, out, ingest_config(), progress=False)
    assert cli_main(["ingest", *files, "--out", str(tmp_path / "bad.zarr"), "--codec", "sz3:speed=1"]) == 1
    assert "codec spec 'sz3:speed=1': codec 'sz3' has no parameter 'speed'" in capsys.readouterr().err
    assert not (tmp_path / "bad.zarr").exists()


# --- the dataset -------------------------------------------------------------------------------------------
def test_patch_dataset_serves_decoded_patches_with_an_index_of_the_original(store, compressed, tmp_path):
    from satflow.dataset import PatchDataset
    from satflow.index.build import build_index
    from satflow.index.io import StaleIndexError
    from satflow.index.options import IndexConfig, SplitConfig

    index = tmp_path / "index.parquet"
    build_index(store, index, IndexConfig(patch_size=8, stride=8, max_nodata_fraction=1.0,
                                          split=SplitConfig(train=1.0, val=0.0, test=0.0)))
    dataset = PatchDataset(compressed, index, normalize=False, fill_value=np.nan)
    decoded = xr.open_zarr(compressed).X.values
    original = PatchDataset(store, index, normalize=False, fill_value=np.nan)
    for i in (0, 7, len(dataset) - 1):
        row = dataset.frame.iloc[i]
        columns = np.arange(row.x0, row.x0 + row.width) % decoded.shape[-1]  # patches wrap at the dateline
        expected = decoded[row.t, :, row.y0:row.y0 + row.height][:, :, columns]
        np.testing.assert_array_equal(dataset[i]["x"].numpy(), expected)
        assert not np.array_equal(dataset[i]["x"].numpy(), original[i]["x"].numpy(), equal_nan=True)
        np.testing.assert_array_equal(dataset[i]["mask"].numpy(), original[i]["mask"].numpy())
    np.testing.assert_array_equal(dataset.mean, original.mean)  # z-scored with the original statistics
    # an index of another store is still refused
    other = tmp_path / "other.zarr"
    run_compress(compressed, other, CompressConfig(codec="sz3:tol=1.0"), progress=False)
    with pytest.raises(StaleIndexError, match="changed since this index was built"):
        PatchDataset(other, index)


def test_json_prints_the_recorded_summary(store, compressed, capsys):
    assert cli_main(["compress", str(store), "--codec", SPEC, "--out", str(compressed), "--json", "--cluster", "never",
                     "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == record(compressed)["summary"]
    assert printed["regions_coded"] == 0 and printed["codec"] == SPEC
    assert sorted(printed["per_feature"]) == ["bias", "bits_per_value", "count", "mae", "max_abs_error", "rmse"]
