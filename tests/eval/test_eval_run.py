"""`run_eval` end to end on real stores and real clusters: exact metrics, stores, resume, failures, routing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from satflow.codecs.registry import decode_any
from satflow.eval.api import prepare_eval, run_eval
from satflow.eval.options import EvalConfig
from satflow.runtime.executors import scheduler_workers

SZ3 = "sz3:tol=0.5"
BITROUND = "bitround:keepbits=6"


def _config(*codecs: str, **options) -> EvalConfig:
    return EvalConfig(codecs=list(codecs), **options)


def chunk_file(folder: Path, plan, position: int) -> Path:
    """The file of block `position`'s X chunk in a codec folder's compressed store."""
    from satflow.eval.stores import chunk_coords

    coords = chunk_coords(plan.mode, plan.time_range[0], plan.reconstruction_chunks, plan.blocks[position], position)
    return folder.joinpath("compressed.zarr", "X", "c", *map(str, coords))


def _decode_every_container(folder: Path, plan, shape) -> tuple[np.ndarray, int]:
    """The reconstruction rebuilt by hand from the X chunk files (each one container), and their total size."""
    values = np.full(shape, np.nan, np.float32)
    total = 0
    for position, block in enumerate(plan.blocks):
        data = chunk_file(folder, plan, position).read_bytes()
        total += len(data)
        x, _ = decode_any(data)
        values[block.t - plan.time_range[0], :, block.y0:block.y1, block.x0:block.x1] = x
    return values, total


def _numpy_metrics(x: np.ndarray, y: np.ndarray, bound: float | None) -> dict[str, list]:
    """Per-feature metrics over valid points, the direct way (feature axis 1 of (time, feature, lat, lon))."""
    out: dict[str, list] = {k: [] for k in ("count", "rmse", "mae", "bias", "max_abs_error", "nrmse", "pearson_r",
                                             "max_rel_error", "violations")}
    for f in range(x.shape[1]):
        valid = np.isfinite(x[:, f])
        a, b = x[:, f][valid].astype(np.float64), y[:, f][valid].astype(np.float64)
        error = b - a
        out["count"].append(int(valid.sum()))
        if not valid.any():
            for key in out:
                if key != "count":
                    out[key].append(np.nan if key != "violations" else 0)
            continue
        rmse = np.sqrt(np.mean(error**2))
        out["rmse"].append(rmse)
        out["mae"].append(np.mean(np.abs(error)))
        out["bias"].append(np.mean(error))
        out["max_abs_error"].append(np.max(np.abs(error)))
        out["nrmse"].append(rmse / (a.max() - a.min()))
        out["pearson_r"].append(np.corrcoef(a, b)[0, 1])
        nonzero = a != 0
        out["max_rel_error"].append(np.max(np.abs(error[nonzero]) / np.abs(a[nonzero])))
        out["violations"].append(int(np.sum(np.abs(error) > bound)) if bound is not None else None)
    return out


def _assert_entry_matches(entry: dict, expected: dict[str, list]) -> None:
    for key, values in expected.items():
        got = entry["per_feature"][key]
        if key in ("count", "violations"):
            assert got == values, key
        else:
            np.testing.assert_allclose(got, values, rtol=1e-9, atol=1e-12, err_msg=key)


@pytest.fixture(scope="module")
def one_worker_client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, memory_limit="2GiB",
                      dashboard_address=None, host="127.0.0.1") as cluster, Client(cluster) as client:
        yield client


@pytest.mark.parametrize("where", ["in-process", "1 worker", "2 workers"])
def test_metrics_equal_numpy_on_the_decoded_containers(where, eval_store, tmp_path, request):
    path, values = eval_store
    client = {"in-process": None, "1 worker": "one_worker_client", "2 workers": "dask_client"}[where]
    client = request.getfixturevalue(client) if client else None
    result = run_eval(path, tmp_path / "out", _config(SZ3, BITROUND), client=client, progress=False)
    entries = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert [e["codec"] for e in entries] == [SZ3, BITROUND]
    for entry, bound in zip(entries, (0.5, None)):
        folder = tmp_path / "out" / entry["dir"]
        decoded, n_bytes = _decode_every_container(folder, result.plan, values.shape)
        stored = xr.open_zarr(folder / "compressed.zarr")["X"].values
        np.testing.assert_array_equal(stored, decoded)  # the compressed store decodes to what the containers hold
        assert not (folder / "reconstruction.zarr").exists()  # only on request
        _assert_entry_matches(entry, _numpy_metrics(values, decoded, bound))
        assert entry["n_bytes"] == n_bytes  # bits from the bytes on disk
        assert entry["bits_per_value"] == pytest.approx(8 * n_bytes / values.size, rel=1e-12)
        assert entry["compression_ratio"] == pytest.approx(32 * values.size / (8 * n_bytes), rel=1e-12)
        assert sum(entry["bytes_by_section"].values()) == n_bytes
        assert sum(map(sum, entry["histogram"]["counts"])) == int(np.isfinite(values).sum())
    assert entries[1]["per_feature"]["violations"] == [None, None]  # bit-rounding promises no bound


def test_per_time_step_rows_equal_numpy(eval_store, tmp_path):
    path, values = eval_store
    result = run_eval(path, tmp_path / "out", _config(SZ3), progress=False)
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    decoded, _ = _decode_every_container(tmp_path / "out" / result.entries[0]["dir"], result.plan, values.shape)
    assert len(table) == 2 * (1 + 3)  # per feature, then per feature and time step
    for t in range(3):
        expected = _numpy_metrics(values[t:t + 1], decoded[t:t + 1], 0.5)
        rows = table[table["t"] == t].sort_values("feature")
        np.testing.assert_allclose(rows["rmse"], expected["rmse"], rtol=1e-9)
        np.testing.assert_array_equal(rows["count"], expected["count"])
    assert table[(table["t"] == 1) & (table["feature"] == "tmbrs-2")]["count"].item() == 0


def test_error_metrics_do_not_depend_on_block_shape(eval_store, tmp_path):
    """Bit-rounding works point by point, so any block grid gives the same errors (to rounding)."""
    path, _ = eval_store
    runs = [run_eval(path, tmp_path / f"b{h}x{w}", _config(BITROUND, block={"lat": h, "lon": w}, batch_size=3),
                     progress=False).entries[0]["per_feature"]
            for h, w in ((8, 16), (24, 40), (5, 7))]
    for key in ("count", "rmse", "mae", "bias", "max_abs_error", "pearson_r", "dssim", "error_lag1_autocorr"):
        for other in runs[1:]:
            np.testing.assert_allclose(other[key], runs[0][key], rtol=1e-12, err_msg=key)


def test_decoding_the_compressed_store_in_a_fresh_process_is_bit_identical(eval_store, tmp_path):
    path, _ = eval_store
    result = run_eval(path, tmp_path / "out", _config(SZ3, block={"lat": 8, "lon": 8}, batch_size=2,
                                                      reconstruction=True), progress=False)
    folder = tmp_path / "out" / result.entries[0]["dir"]
    rebuilt = tmp_path / "rebuilt.zarr"
    subprocess.run([sys.executable, "-m", "satflow", "decode", str(folder / "compressed.zarr"), "--out", str(rebuilt)],
                   check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    original, again = xr.open_zarr(folder / "reconstruction.zarr"), xr.open_zarr(rebuilt)
    for name in ("X", "M", "mean", "std", "count", "source_file"):
        np.testing.assert_array_equal(again[name].values, original[name].values, err_msg=name)
    assert again.attrs["satflow_fingerprint"] == original.attrs["satflow_fingerprint"]


def test_decode_refuses_an_unfinished_compressed_store(eval_store, tmp_path):
    from satflow.eval.api import decode_compressed

    path, _ = eval_store
    result = run_eval(path, tmp_path / "out", _config(SZ3), progress=False)
    compressed = tmp_path / "out" / result.entries[0]["dir"] / "compressed.zarr"
    chunk_file(compressed.parent, result.plan, 5).unlink()
    with pytest.raises(FileNotFoundError, match=r"1 block chunk\(s\) of X missing \(t0-y8-x32-h8-w8\).*re-run `satflow eval`"):
        decode_compressed(compressed, tmp_path / "rec.zarr")


def test_rerun_resumes_without_encoding_finished_blocks(eval_store, tmp_path):
    path, _ = eval_store
    first = run_eval(path, tmp_path / "out", _config(SZ3), progress=False)
    folder = tmp_path / "out" / first.entries[0]["dir"]
    chunk_file(folder, first.plan, 4).unlink()  # as if the run died before this block finished
    missing = chunk_file(folder, first.plan, 4)
    leftover = missing.with_name(f"{missing.name}.77fc724148de455da6885d4837a99143.partial")
    leftover.write_bytes(b"half a container")  # what zarr's LocalStore leaves when killed mid-write
    chunks = [chunk_file(folder, first.plan, i) for i in range(len(first.plan.blocks)) if i != 4]
    kept = [p.stat().st_mtime_ns for p in chunks]
    second = run_eval(path, tmp_path / "out", _config(SZ3), progress=False)
    assert (second.entries[0]["blocks_encoded"], second.entries[0]["blocks_resumed"]) == (1, len(first.plan.blocks) - 1)
    assert [p.stat().st_mtime_ns for p in chunks] == kept  # finished blocks are decoded, never rewritten
    assert chunk_file(folder, first.plan, 4).is_file()
    assert not leftover.exists()
    for key in ("rmse", "max_abs_error", "count"):
        assert second.entries[0]["per_feature"][key] == first.entries[0]["per_feature"][key]
    assert second.entries[0]["n_bytes"] == first.entries[0]["n_bytes"]


def test_rerun_with_other_settings_is_refused(eval_store, tmp_path):
    path, _ = eval_store
    run_eval(path, tmp_path / "out", _config(SZ3), progress=False)
    with pytest.raises(ValueError, match=r"other settings \(block_shape: \[8, 16\] there, \[12, 20\] now\).*--overwrite"):
        run_eval(path, tmp_path / "out", _config(SZ3, block={"lat": 12, "lon": 20}), progress=False)
    rerun = run_eval(path, tmp_path / "out", _config(SZ3, block={"lat": 12, "lon": 20}), overwrite=True, progress=False)
    assert rerun.entries[0]["blocks_resumed"] == 0


def _worker_pids(client) -> list[int]:
    return list(client.run(os.getpid).values())


def test_a_worker_killed_mid_eval_still_gives_identical_metrics(eval_store, tmp_path):
    """SIGKILL one worker process while tasks run: Dask retries its tasks, the numbers do not change."""
    from distributed import Client, LocalCluster

    path, _ = eval_store
    config = _config("errorbound:inner=constant,eps=0.05", SZ3, block={"lat": 8, "lon": 8}, batch_size=1)
    reference = run_eval(path, tmp_path / "reference", config, progress=False).entries
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB",
                      dashboard_address=None, host="127.0.0.1") as cluster, Client(cluster) as client:
        outcome: dict = {}
        runner = threading.Thread(target=lambda: outcome.update(result=run_eval(
            path, tmp_path / "killed", config, client=client, progress=False)))
        runner.start()
        chunks = tmp_path / "killed" / reference[0]["dir"] / "compressed.zarr" / "X" / "c"
        deadline = time.monotonic() + 60
        while not (chunks.exists() and any(chunks.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.02)
        victim = _worker_pids(client)[0]
        os.kill(victim, signal.SIGKILL)
        runner.join(timeout=240)
        assert "result" in outcome, "the eval did not finish after a worker was killed"
    for got, want in zip(outcome["result"].entries, reference):
        for key in ("count", "rmse", "mae", "max_abs_error", "pearson_r", "violations", "dssim"):
            assert got["per_feature"][key] == want["per_feature"][key], key
        assert got["n_bytes"] == want["n_bytes"]


def test_learned_tasks_run_only_on_workers_that_advertise_a_gpu(eval_store, learned_checkpoint, tmp_path):
    """A CPU worker advertising GPU=1 stands in for a GPU node; the manifest says where each task ran."""
    from distributed import Client, LocalCluster

    path, _ = eval_store
    config = _config("vaeformer", SZ3, checkpoint=str(learned_checkpoint), batch_size=2)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, memory_limit="2GiB",
                      dashboard_address=None, host="127.0.0.1") as cluster, Client(cluster) as client:
        gpu_worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address, "--nthreads", "1",
             "--resources", "GPU=1", "--no-dashboard", "--host", "127.0.0.1", "--name", "gpu-node"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
        try:
            client.wait_for_workers(2, timeout=60)
            gpu_address = next(a for a, w in scheduler_workers(client).items() if w.get("resources"))
            run_eval(path, tmp_path / "out", config, client=client, progress=False)
        finally:
            gpu_worker.terminate()
            gpu_worker.wait(timeout=30)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    learned = [t for t in manifest["tasks"] if t["task"] == "code" and t["codec"].startswith("vaeformer")]
    assert learned and {t["worker"] for t in learned} == {gpu_address}
    assert {t["device"] for t in learned} == {"cpu"}  # device 'auto' on a worker whose torch sees no CUDA
    assert [t["codec_built"] for t in learned].count(True) == 1  # the model loads once per worker, not per task
    assert manifest["cluster"]["resources"] == {gpu_address: {"GPU": 1.0}}


def test_a_gpu_demand_no_worker_can_meet_is_an_error_not_a_hang(eval_store, learned_checkpoint, dask_client, tmp_path):
    path, _ = eval_store
    config = _config("vaeformer", checkpoint=str(learned_checkpoint), gpu="always")
    with pytest.raises(RuntimeError, match="need GPU=1, but no worker of the cluster advertises it"):
        run_eval(path, tmp_path / "out", config, client=dask_client, progress=False)


@pytest.mark.parametrize("spec, message", [
    ("nosuchcodec:tol=1", r"codec spec 'nosuchcodec:tol=1': unknown codec 'nosuchcodec'; registered codecs: .*sz3"),
    ("sz3:tolerance=1", r"codec spec 'sz3:tolerance=1': codec 'sz3' has no parameter 'tolerance'"),
    ("sz3:tol", r"codec spec 'sz3:tol': 'tol' is not KEY=VALUE"),
    ("sz3:tol=-1", r"codec spec 'sz3:tol=-1': .*tol"),
])
def test_bad_specs_are_refused_before_any_task_naming_the_spec(spec, message, eval_store, tmp_path):
    path, _ = eval_store
    with pytest.raises(ValueError, match=message):
        run_eval(path, tmp_path / "out", _config(spec), progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_names_a_bad_spec_and_exits_1(eval_store, tmp_path, capsys):
    from satflow.cli import main

    path, _ = eval_store
    assert main(["eval", str(path), "--codec", "sz3:tol=[0.5", "--out", str(tmp_path / "out"), "--no-cluster"]) == 1
    assert "codec spec 'sz3:tol=[0.5'" in capsys.readouterr().err


def test_cli_dry_run_prints_the_plan_and_writes_nothing(eval_store, tmp_path, capsys):
    from satflow.cli import main

    path, _ = eval_store
    out = tmp_path / "out"
    assert main(["eval", str(path), "--codec", SZ3, "--codec", "errorbound:inner=constant,eps=[0.5,1.0]",
                 "--block", "lat=12,lon=20", "--time", "1:3", "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "blocks    8 of 12 x 20 cells x 2 features" in printed
    assert "errorbound:eps=[0.5,1.0],inner=constant" in printed
    assert "time      steps 1..2" in printed
    assert not out.exists()


def test_cli_runs_on_a_local_cluster_and_reports(eval_store, tmp_path, capsys):
    from satflow.cli import main

    path, values = eval_store
    out = tmp_path / "out"
    # 3 tasks (one whole field each) would run in this process under --cluster auto
    assert main(["eval", str(path), "--codec", SZ3, "--out", str(out), "--no-progress", "--acceptance",
                 "--cluster", "always", "--performance-report", str(out / "dask-report.html")]) == 0
    assert SZ3 in capsys.readouterr().out
    entry = json.loads((out / "metrics.json").read_text())[0]
    assert set(entry["acceptance"]) >= {"pearson", "dssim", "rel_error", "pass"}
    assert entry["acceptance"]["pass"] == [False, False]  # a 0.5 K bound misses the 1e-4 relative threshold
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["cluster"]["kind"] == "dask" and manifest["cluster"]["workers"] == 2
    assert (out / "dask-report.html").stat().st_size > 1000


def test_index_mode_codes_a_fixed_seed_sample_of_patches(eval_store, tmp_path):
    from satflow.index import build_index
    from satflow.index.options import IndexConfig

    path, values = eval_store
    index = tmp_path / "index.parquet"
    build_index(path, index, IndexConfig(patch_size=8, stride=4, max_nodata_fraction=1.0))
    config = _config(SZ3, index=str(index), split=None, sample=5, seed=7)
    first = run_eval(path, tmp_path / "a", config, progress=False)
    again = prepare_eval(path, config)[1]
    assert first.plan.blocks == again.blocks and len(first.plan.blocks) == 5
    assert all(b.shape == (8, 8) for b in first.plan.blocks)
    _, n_bytes = _decode_every_container(tmp_path / "a" / first.entries[0]["dir"], first.plan, values.shape)
    # Each patch counts on its own (patches of stride 4 overlap): the sum over patches.
    counts = np.sum([np.isfinite(values[b.t, :, b.y0:b.y1, b.x0:b.x1]).sum(axis=(1, 2)) for b in first.plan.blocks],
                    axis=0)
    assert first.entries[0]["per_feature"]["count"] == counts.tolist()
    assert first.entries[0]["n_bytes"] == n_bytes


def test_eval_of_a_real_ostia_store(tmp_path):
    """Real OSTIA SST from iris-sample-data: land masked, a field whose structure we did not design."""
    iris_sample_data = pytest.importorskip("iris_sample_data")
    from satflow.ingest import run_ingest
    from satflow.ingest.options import IngestConfig

    store = tmp_path / "ostia.zarr"
    run_ingest([str(Path(iris_sample_data.path) / "ostia_monthly.nc")], store, IngestConfig(), progress=False)
    result = run_eval(store, tmp_path / "out", _config("sz3:tol=0.1", "lossless", time="0:2"), progress=False)
    sz3, lossless = result.entries
    assert sz3["per_feature"]["violations"] == [0]
    assert 0 < sz3["per_feature"]["max_abs_error"][0] <= 0.1
    assert lossless["per_feature"]["max_abs_error"] == [0.0] and lossless["per_feature"]["dssim"] == [1.0]
    assert sz3["compression_ratio"] > lossless["compression_ratio"] > 1
    assert sz3["compression_ratio_vs_source"] > 0


def test_a_360_day_climatology_evaluates_and_decodes_in_its_calendar(tmp_path):
    """Year-1 dates of a 360_day calendar have no datetime64: they stay cftime end to end."""
    import cftime

    from satflow.eval.api import decode_compressed
    from satflow.store import write_store_from_arrays

    times = np.array([cftime.Datetime360Day(1, month, 16) for month in (1, 2)], dtype=object)
    values = np.random.default_rng(0).normal(280.0, 3.0, (2, 2, 12, 16)).astype(np.float32)
    write_store_from_arrays(tmp_path / "clim.zarr", values, times=times, features=["sst-1", "sst-2"],
                            lat=np.linspace(-5, 5, 12), lon=np.linspace(0, 15, 16))
    result = run_eval(tmp_path / "clim.zarr", tmp_path / "out", _config("sz3:tol=0.1", reconstruction=True),
                      progress=False)
    folder = tmp_path / "out" / result.entries[0]["dir"]
    rebuilt = xr.open_zarr(decode_compressed(folder / "compressed.zarr", tmp_path / "rec.zarr"))
    assert list(rebuilt["time"].values) == list(times)
    np.testing.assert_array_equal(rebuilt["X"].values, xr.open_zarr(folder / "reconstruction.zarr")["X"].values)
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert sorted(table.loc[table["t"] >= 0, "time"].unique()) == ["0001-01-16T00:00:00", "0001-02-16T00:00:00"]


def test_the_compressed_store_decodes_in_a_fresh_process_through_zarr_and_xarray(eval_store, tmp_path):
    """xr.open_zarr / zarr.open_array of DIR/<codec>/compressed.zarr, in a process that never imports
    satflow itself: lazy dask reads, values bit-identical to codec.decode of each chunk, masks restored."""
    path, values = eval_store
    result = run_eval(path, tmp_path / "out", _config(SZ3, BITROUND, time="1:3"), progress=False)
    script = (
        "import sys, numpy as np, xarray as xr, zarr\n"
        "ds = xr.open_zarr(sys.argv[1])\n"
        "assert ds['X'].chunks == ((1, 1), (2,), (8, 8, 8), (16, 16, 8)), ds['X'].chunks\n"
        "direct = zarr.open_array(sys.argv[1] + '/X', mode='r')[:]\n"
        "np.savez(sys.argv[2], X=ds['X'].values, M=ds['M'].values, direct=direct, time=ds['time'].values.astype('int64'),\n"
        "         lat=ds['lat'].values, feature=np.array([str(f) for f in ds['feature'].values]))\n"
        "print(sorted(m for m in sys.modules if m == 'satflow.eval'))\n"
    )
    for entry in result.entries:
        folder = tmp_path / "out" / entry["dir"]
        done = subprocess.run([sys.executable, "-c", script, str(folder / "compressed.zarr"), str(tmp_path / "read.npz")],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "[]"  # the entry point loaded the codec, not the eval
        read = np.load(tmp_path / "read.npz")
        decoded, n_bytes = _decode_every_container(folder, result.plan, (2, *values.shape[1:]))
        np.testing.assert_array_equal(read["X"], decoded)  # bit for bit: NaN in the same places, same bits
        np.testing.assert_array_equal(read["direct"], decoded)
        np.testing.assert_array_equal(read["M"], np.isfinite(values[1:3]).astype(np.uint8))
        assert read["time"].tolist() == (np.datetime64("2021-03-01T06", "ns") + np.arange(2) * np.timedelta64(6, "h")
                                         ).astype("int64").tolist()
        assert read["feature"].tolist() == ["tmbrs-1", "tmbrs-2"] and read["lat"].tolist() == np.linspace(
            -11.5, 11.5, 24).tolist()
        chunk_bytes = sum(chunk_file(folder, result.plan, i).stat().st_size for i in range(len(result.plan.blocks)))
        assert chunk_bytes == n_bytes == entry["n_bytes"]  # the chunk files are the containers, byte for byte


FIELD_KEYS = ("dssim", "dssim_fields", "error_lag1_autocorr", "spectral_ratio", "power_original",
              "power_reconstruction", "spectral_error")


def _recorded(name: str) -> dict:
    return json.loads((Path(__file__).parent / "data" / "pre_fusion_metrics.json").read_text())[name]


@pytest.mark.parametrize("name", ["cube", "cube_blocks_8x8", "index"])
def test_metrics_equal_the_two_pass_implementation_s_recorded_numbers(name, eval_store, tmp_path):
    """The numbers of the eval before field metrics moved into the coding pass (recorded at commit
    8c4108d by tests/eval/data/record_pre_fusion.py on this fixture store), to 1e-12."""
    path, _ = eval_store
    recorded = _recorded(name)
    options = dict(recorded["config"])
    if name == "index":
        from satflow.index import build_index
        from satflow.index.options import IndexConfig

        build_index(path, tmp_path / "index.parquet", IndexConfig(patch_size=8, stride=4, max_nodata_fraction=1.0))
        options["index"] = str(tmp_path / "index.parquet")
    result = run_eval(path, tmp_path / "out", EvalConfig.model_validate(options), progress=False)
    # The two-pass eval measured index-mode patches on the reconstruction cube, where overlapping patches
    # overwrite each other: its field metrics of a patch mixed in its neighbour's decode. The fused pass
    # measures each patch's own decode, so there only the error metrics must be unchanged.
    skipped = set(FIELD_KEYS) if name == "index" else set()
    if name == "index":
        blocks = result.plan.blocks
        assert any(a != b and a.t == b.t and a.y0 < b.y1 and b.y0 < a.y1 and a.x0 < b.x1 and b.x0 < a.x1
                   for a in blocks for b in blocks)
    for entry, want in zip(result.entries, recorded["entries"], strict=True):
        assert entry["codec"] == want["codec"] and entry["n_bytes"] == want["n_bytes"]
        assert entry["histogram"]["counts"] == want["histogram"]
        for key, expected in want["per_feature"].items():
            if key in skipped:
                continue
            np.testing.assert_allclose(np.asarray(entry["per_feature"][key], np.float64),
                                       np.asarray(expected, np.float64), rtol=1e-12, atol=1e-15, err_msg=key)
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    steps = table[table["t"] >= 0].reset_index(drop=True)
    for column, expected in recorded["per_step"].items():
        if column in skipped:
            continue
        if column in ("codec", "feature", "t"):
            assert steps[column].tolist() == expected, column
        else:
            np.testing.assert_allclose(steps[column].to_numpy(np.float64), np.asarray(expected, np.float64),
                                       rtol=1e-12, atol=1e-15, err_msg=column)


def test_index_mode_writes_one_patch_per_chunk_with_its_selectors(eval_store, tmp_path):
    from satflow.eval.api import decode_compressed
    from satflow.index import build_index
    from satflow.index.options import IndexConfig

    path, values = eval_store
    build_index(path, tmp_path / "index.parquet", IndexConfig(patch_size=8, stride=4, max_nodata_fraction=1.0))
    result = run_eval(path, tmp_path / "out", _config(SZ3, index=str(tmp_path / "index.parquet"), split=None,
                                                      sample=5, seed=7), progress=False)
    folder = tmp_path / "out" / result.entries[0]["dir"]
    ds = xr.open_zarr(folder / "compressed.zarr")
    blocks = result.plan.blocks
    assert ds["X"].dims == ("patch", "feature", "y", "x") and ds["X"].chunks == ((1,) * 5, (2,), (8,), (8,))
    assert ds["t"].values.tolist() == [b.t for b in blocks] and ds["y0"].values.tolist() == [b.y0 for b in blocks]
    assert ds["x0"].values.tolist() == [b.x0 for b in blocks]
    np.testing.assert_array_equal(ds["lat"].values[0], np.linspace(-11.5, 11.5, 24)[blocks[0].y0:blocks[0].y1])
    for i, block in enumerate(blocks):
        x, _ = decode_any(chunk_file(folder, result.plan, i).read_bytes())
        np.testing.assert_array_equal(ds["X"].values[i], x)
        np.testing.assert_array_equal(ds["M"].values[i], np.isfinite(values[block.t, :, block.y0:block.y1,
                                                                             block.x0:block.x1]))
    cube = xr.open_zarr(decode_compressed(folder / "compressed.zarr", tmp_path / "rec.zarr"))["X"].values
    last = blocks[-1]
    np.testing.assert_array_equal(cube[last.t, :, last.y0:last.y1, last.x0:last.x1], ds["X"].values[-1])


def test_an_older_eval_directory_is_refused_with_how_to_redo_it(eval_store, tmp_path):
    """Before issue 19, compressed.zarr was a group with container files under containers/."""
    import zarr

    from satflow.eval.api import decode_compressed
    from satflow.status import status_of

    path, _ = eval_store
    result = run_eval(path, tmp_path / "out", _config(SZ3), progress=False)
    compressed = tmp_path / "out" / result.entries[0]["dir"] / "compressed.zarr"
    old = zarr.open_group(str(compressed), mode="w", zarr_format=3)
    old.attrs.update({"satflow_compressed": 1, "codec": SZ3})
    (compressed / "containers").mkdir()
    (compressed / "containers" / f"{result.plan.blocks[0].key}.sfc").write_bytes(b"old")
    message = r"older satflow \(block containers under containers/.*rerun the same `satflow eval` with --overwrite"
    with pytest.raises(ValueError, match=message):
        decode_compressed(compressed, tmp_path / "rec.zarr")
    with pytest.raises(ValueError, match=message):
        run_eval(path, tmp_path / "out", _config(SZ3), progress=False)
    assert status_of(tmp_path / "out")["codecs"][0]["blocks_done"] == 1  # its container files still count
    again = run_eval(path, tmp_path / "out", _config(SZ3), overwrite=True, progress=False)
    assert again.entries[0]["n_bytes"] == result.entries[0]["n_bytes"]
