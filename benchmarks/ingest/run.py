"""Ingest benchmark: satflow against fair baselines, all in one run on the same machine.

For each archive (default: 40 AMSU-like files at 0.5 degrees, `tmbrs` = 15 features x 360 x 720,
zlib level 4; and 8 files of the 0.25-degree sample product, 40 features x 720 x 1440):

- (a) `xr.open_mfdataset(files).to_zarr(store)`: what users write today, at xarray's and zarr's defaults
- (b) the same with satflow's codec (Blosc zstd, satflow's default level, byte shuffle)
- (c) floor: two processes, each reading half the files with netCDF4 and writing X and M into one
      Zarr store with satflow's codec (the least work that reaches the same bytes: no planning,
      statistics or provenance); the processes are started before the clock starts
- satflow: `run_ingest` (scan, plan, region tasks, statistics, finalise) on a LocalCluster of two
  worker processes (started and warmed before the clock); also with chunks 512, with the cube
  written by `open_archive(...).to_zarr(region=...)` instead of region tasks, and on two thread
  workers (`processes: false`, whose NetCDF reads take turns on the HDF5 lock)

Peak memory is the peak of the summed RSS of the driver and all its children (workers, pool),
sampled every 20 ms; the satflow ingest is repeated on an archive 4x larger to check that it stays
flat. Machines here are shared: compare ratios from one run, not seconds across runs.

    python benchmarks/ingest/run.py                 # full run; writes results/ingest.json and .png
    python benchmarks/ingest/run.py --quick         # 8 small files, a smoke test
    python benchmarks/ingest/run.py --profile       # also py-spy profiles of a satflow ingest's workers
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil

HERE = Path(__file__).parent
WORKERS = 2


class PeakRSS:
    """Peak of the summed resident memory of this process and all its descendants."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _sample(self) -> int:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.peak = self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def timed(results: dict, key: str, store: Path | None = None):
    """Time the block; with an earlier result under `key` (a repeat), keep the faster one.

    The minimum over repeats is the estimate least disturbed by other load on a shared machine.
    """
    with PeakRSS() as memory:
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
    result = {"seconds": round(seconds, 3), "peak_rss_mib": round(memory.peak / 2**20, 1)}
    if store is not None:
        result["store_mib"] = round(du(store) / 2**20, 2)
    print(f"  {key:28s} {seconds:7.2f} s  peak {memory.peak / 2**20:7.0f} MiB"
          + (f"  store {result['store_mib']:8.1f} MiB" if store else ""), flush=True)
    previous = results.get(key)
    if previous is None or seconds < previous["seconds"]:
        runs = (previous or {}).get("runs", []) + [result["seconds"]]
        results[key] = {**result, "runs": runs}
    else:
        previous["runs"].append(result["seconds"])


def du(path: Path) -> int:
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


# --- the contenders ------------------------------------------------------------------------------
def ingest_config(variables, chunk: int):
    from satflow.config import load_config

    overrides = [f"ingest.chunks.lat={chunk}", f"ingest.chunks.lon={chunk}"]
    if variables:
        overrides.append(f"ingest.source.variables={json.dumps(variables)}")
    return load_config(None, overrides).ingest


def run_satflow(files, store, variables, chunk, client) -> None:
    from satflow.ingest import run_ingest

    run_ingest([str(p) for p in files], store, ingest_config(variables, chunk), client=client, progress=False)


def run_satflow_to_zarr_region(files, store, variables, chunk, client) -> None:
    """The same store written from the lazy cube: `open_archive(...).to_zarr(region=...)` (X and M only)."""
    from satflow.ingest import plan_dataset, scan_and_plan
    from satflow.store import create_template

    config = ingest_config(variables, chunk)
    plan = scan_and_plan([str(p) for p in files], store, config, client=client)
    create_template(store, plan.layout)
    cube = plan_dataset(plan, config.source)[["X", "M"]].drop_vars(["time", "feature", "lat", "lon"])
    # Computed on the client's cluster (an active distributed Client is dask's default scheduler).
    cube.to_zarr(str(store), region={dim: slice(None) for dim in cube.dims}, zarr_format=3, consolidated=False)


def run_mfdataset(files, store, variables, codec=None) -> None:
    """(a) with codec=None: xarray's and zarr's defaults; (b) with satflow's codec."""
    import xarray as xr

    ds = xr.open_mfdataset([str(p) for p in files])
    if variables:
        ds = ds[variables]
    encoding = {name: {"compressors": [codec]} for name in ds.data_vars} if codec is not None else None
    ds.to_zarr(str(store), mode="w", zarr_format=3, encoding=encoding, consolidated=False)


def floor_layout(files, variables) -> tuple[list[str], tuple, int]:
    import netCDF4

    with netCDF4.Dataset(files[0]) as first:
        names = variables or [n for n, v in first.variables.items()
                              if {"lat", "lon"} <= set(v.dimensions) and n not in ("lat", "lon")]
        n_lat, n_lon = len(first.dimensions["lat"]), len(first.dimensions["lon"])
        n_feature = sum(int(np.prod(first.variables[n].shape[1:-2])) for n in names)
    return names, (len(files), n_feature, n_lat, n_lon), n_feature


def floor_worker(task) -> None:
    """Read files [first, stop) with netCDF4 (masked -> NaN) and write X and M time steps."""
    import netCDF4
    import zarr

    store, files, first, names, n_lat, n_lon = task
    group = zarr.open_group(store, mode="r+", zarr_format=3)
    for t, path in enumerate(files, start=first):
        with netCDF4.Dataset(path) as ds:
            block = np.concatenate([np.ma.filled(ds.variables[n][0], np.nan).astype(np.float32).reshape(-1, n_lat, n_lon)
                                    for n in names])
        group["X"][t] = block
        group["M"][t] = np.isfinite(block)


def floor_warm(_) -> int:
    import netCDF4  # noqa: F401
    import zarr  # noqa: F401

    return os.getpid()


def run_floor(files, store, variables, chunk, pool) -> None:
    import zarr

    from satflow.store import compressor

    names, shape, n_feature = floor_layout(files, variables)
    group = zarr.open_group(str(store), mode="w", zarr_format=3)
    chunks = (1, n_feature, chunk, chunk)
    group.create_array("X", shape=shape, chunks=chunks, dtype="f4", compressors=[compressor()], fill_value=np.nan)
    group.create_array("M", shape=shape, chunks=chunks, dtype="u1", compressors=[compressor()], fill_value=0)
    half = (len(files) + 1) // 2
    tasks = [(str(store), [str(p) for p in files[i:i + half]], i, names, shape[2], shape[3])
             for i in range(0, len(files), half)]
    pool.map(floor_worker, tasks)


# --- clusters --------------------------------------------------------------------------------------
@contextmanager
def satflow_cluster(processes: bool = True):
    """The cluster `satflow ingest` opens (satflow's worker environment, loopback), warmed up."""
    from satflow.config import load_config
    from satflow.runtime.cluster import open_client

    config = load_config(None, [f"cluster.local.n_workers={WORKERS}", f"cluster.local.processes={str(processes).lower()}",
                                "cluster.local.memory_limit='0'"])
    with open_client(config.cluster, quiet=True) as client:
        client.run(_warm_imports)
        yield client


def _warm_imports() -> None:
    import netCDF4  # noqa: F401
    import xarray  # noqa: F401

    import satflow.ingest  # noqa: F401


# --- one archive -----------------------------------------------------------------------------------
def bench_archive(files, work: Path, variables, chunks: list[int], extras: bool, repeat: int) -> dict:
    """Every contender once per round, rounds repeated: each keeps its fastest run."""
    results: dict = {}
    for _ in range(repeat):
        bench_round(results, files, work, variables, chunks, extras)
    summarize(results, files, variables, chunks, extras)
    return results


def bench_round(results: dict, files, work: Path, variables, chunks: list[int], extras: bool) -> None:
    from satflow.store import compressor

    with satflow_cluster() as client:
        for chunk in chunks:
            with timed(results, f"satflow_chunk{chunk}", work / f"satflow{chunk}.zarr"):
                run_satflow(files, work / f"satflow{chunk}.zarr", variables, chunk, client)
        if extras:
            with timed(results, "satflow_to_zarr_region", work / "region.zarr"):
                run_satflow_to_zarr_region(files, work / "region.zarr", variables, chunks[0], client)
    if extras:
        with satflow_cluster(processes=False) as client:
            with timed(results, "satflow_thread_workers", work / "threads.zarr"):
                run_satflow(files, work / "threads.zarr", variables, chunks[0], client)
    with timed(results, "a_mfdataset_defaults", work / "a.zarr"):
        run_mfdataset(files, work / "a.zarr", variables)
    with timed(results, "b_mfdataset_satflow_codec", work / "b.zarr"):
        run_mfdataset(files, work / "b.zarr", variables, compressor())
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        pool.map(floor_warm, range(WORKERS))
        with timed(results, "c_floor_two_processes", work / "floor.zarr"):
            run_floor(files, work / "floor.zarr", variables, chunks[0], pool)
    for store in work.glob("*.zarr"):
        shutil.rmtree(store)


def summarize(results: dict, files, variables, chunks: list[int], extras: bool) -> None:
    best = min(chunks, key=lambda c: results[f"satflow_chunk{c}"]["seconds"])
    satflow = results[f"satflow_chunk{best}"]
    names, shape, _ = floor_layout(files, variables)
    raw = float(np.prod(shape)) * 4
    results["summary"] = {
        "best_chunk": best,
        "float32_mib": round(raw / 2**20, 1),
        "speedup_vs_a": round(results["a_mfdataset_defaults"]["seconds"] / satflow["seconds"], 2),
        "speedup_vs_b": round(results["b_mfdataset_satflow_codec"]["seconds"] / satflow["seconds"], 2),
        "ratio_to_floor": round(satflow["seconds"] / results["c_floor_two_processes"]["seconds"], 2),
        "store_vs_a": round(satflow["store_mib"] / results["a_mfdataset_defaults"]["store_mib"], 3),
        "mb_per_s_per_core": {key: round(raw / 1e6 / value["seconds"] / WORKERS, 1)
                              for key, value in results.items() if isinstance(value, dict) and "seconds" in value},
    }
    if extras:
        results["summary"]["thread_workers_cost"] = round(
            results["satflow_thread_workers"]["seconds"] / results[f"satflow_chunk{chunks[0]}"]["seconds"], 2)
        results["summary"]["to_zarr_region_vs_region_tasks"] = round(
            results["satflow_to_zarr_region"]["seconds"] / results[f"satflow_chunk{chunks[0]}"]["seconds"], 2)


def memory_growth(files_small, files_large, work: Path, variables, chunk: int) -> dict:
    """Peak memory of a satflow ingest for an archive and one 4x larger, each on a fresh cluster."""
    peaks: dict = {}
    for label, files in (("1x", files_small), ("4x", files_large)):
        with satflow_cluster() as client:
            with timed(peaks, f"satflow_{label}_{len(files)}_files"):
                run_satflow(files, work / f"mem{label}.zarr", variables, chunk, client)
        shutil.rmtree(work / f"mem{label}.zarr")
    small, large = (peaks[f"satflow_{k}_{len(f)}_files"]["peak_rss_mib"] for k, f in (("1x", files_small), ("4x", files_large)))
    peaks["peak_growth"] = round(large / small, 3)
    return peaks


def codec_sweep(files, variables) -> dict:
    """X and M of a few files written with candidate codecs (one thread): seconds and MiB."""
    import zarr
    from zarr.codecs import BloscCodec, BloscShuffle

    from satflow.sources.gridded import read_file, scan_file

    source = ingest_config(variables, 256).source
    x = np.concatenate([read_file(scan_file(str(f), source), source) for f in files])
    m = np.isfinite(x).view(np.uint8)
    candidates = {"zarr default (zstd 0)": None}
    for level in (1, 3, 5):
        candidates[f"zstd {level} shuffle"] = BloscCodec(cname="zstd", clevel=level, shuffle=BloscShuffle.shuffle)
        candidates[f"zstd {level} bitshuffle"] = BloscCodec(cname="zstd", clevel=level, shuffle=BloscShuffle.bitshuffle)
    out = {}
    with zarr.config.set({"threading.max_workers": 1}):
        for name, codec in candidates.items():
            path = tempfile.mkdtemp(prefix="satflow-codec-")
            group = zarr.open_group(path, mode="w", zarr_format=3)
            kw = {} if codec is None else {"compressors": [codec]}
            chunks = (1, x.shape[1], 256, 256)
            arrays = [group.create_array(n, shape=a.shape, chunks=chunks, dtype=a.dtype, fill_value=f, **kw)
                      for n, a, f in (("X", x, np.nan), ("M", m, 0))]
            start = time.perf_counter()
            arrays[0][:], arrays[1][:] = x, m
            out[name] = {"seconds": round(time.perf_counter() - start, 3), "mib": round(du(Path(path)) / 2**20, 2)}
            shutil.rmtree(path)
            print(f"  codec {name:24s} {out[name]['seconds']:6.2f} s {out[name]['mib']:7.2f} MiB", flush=True)
    return out


IDLE_LEAVES = (".select (", ".wait (", ".acquire (", "._recv (", ".poll (", "sleep (", "_worker (concurrent",
               "spawn_main(", "process ")


def is_idle(leaf: str) -> bool:
    """Waiting on a lock, a queue, a socket or a child; a process frame alone means no Python is running."""
    return leaf.startswith("process ") or any(marker in leaf for marker in IDLE_LEAVES)
PROFILED = {  # inclusive share of busy samples, by what the time is spent on
    "scan (metadata)": "scan_file", "netCDF read + zlib": "_read_raw", "CF decode (masks, NaN)": "decode_values",
    "per-step statistics": "Moments.from_block", "zarr compress (Blosc)": "_encode_sync",
    "zarr write (all)": "Array.__setitem__", "region task (all)": "ingest_region", "finalize": "finalize (",
    "template": "create_template", "imports": "_find_and_load",
}


def profile_ingest(files, variables, out: Path) -> dict:
    """py-spy over `satflow ingest` and its worker processes: the share of busy samples per activity."""
    store = out.parent / "profile.zarr"
    raw = Path(tempfile.mkdtemp()) / "profile.collapsed"
    command = [sys.executable, "-m", "satflow", "ingest", *map(str, files), "--out", str(store), "--overwrite",
               "--no-progress", *[a for v in variables or [] for a in ("--var", v)]]
    subprocess.run(["py-spy", "record", "--subprocesses", "--format", "raw", "--rate", "200", "-o", str(raw), "--",
                    *command], check=True, capture_output=True)
    shutil.rmtree(store, ignore_errors=True)
    busy, shares = 0, dict.fromkeys(PROFILED, 0)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if is_idle(frames[-1]):
            continue
        busy += int(count)
        for label, needle in PROFILED.items():
            if any(needle in frame for frame in frames):
                shares[label] += int(count)
    table = {"busy_samples": busy, **{label: round(n / max(busy, 1), 3) for label, n in shares.items()}}
    out.write_text(json.dumps(table, indent=2))
    return table


# --- report ----------------------------------------------------------------------------------------
def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archives = results["archives"]
    fig, axes = plt.subplots(1, len(archives) + 1, figsize=(6 * len(archives) + 4, 4.2))
    for ax, (name, result) in zip(axes, archives.items()):
        keys = [k for k, v in result.items() if isinstance(v, dict) and "seconds" in v]
        colours = ["tab:blue" if k.startswith("satflow") else "tab:grey" for k in keys]
        ax.barh(keys, [result[k]["seconds"] for k in keys], color=colours)
        for i, k in enumerate(keys):
            ax.text(result[k]["seconds"], i, f" {result[k].get('store_mib', 0):.0f} MiB", va="center", fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("seconds (lower is better); labels: store size")
        ax.set_title(f"{name}: {result['files']} files, {WORKERS} workers", fontsize=10)
    mem = results["memory"]
    labels = [k for k in mem if k.startswith("satflow")]
    axes[-1].bar(["1x", "4x"], [mem[k]["peak_rss_mib"] for k in labels], color="tab:orange")
    axes[-1].set_ylabel("peak RSS, driver + workers (MiB)")
    axes[-1].set_title(f"archive x4: peak x{mem['peak_growth']:.2f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def targets(results: dict) -> dict:
    checks = {}
    for name, result in results["archives"].items():
        s = result["summary"]
        checks[f"{name}: >= 1.5x faster than (a)"] = s["speedup_vs_a"] >= 1.5
        checks[f"{name}: store no larger than (a)"] = s["store_vs_a"] <= 1.0
        checks[f"{name}: >= 3x faster than (b)"] = s["speedup_vs_b"] >= 3.0
        checks[f"{name}: <= 1.3x the floor (c)"] = s["ratio_to_floor"] <= 1.3
    checks["peak memory +10% at most for a 4x archive"] = results["memory"]["peak_growth"] < 1.1
    return checks


def archive(work: Path, name: str, steps: int, resolution: float, data: Path | None) -> list[Path]:
    """Sample files (zlib level 4, like the real product), cached under --data when given."""
    from satflow.sources.samples import write_amsua_sample

    folder = (data or work) / f"amsua-{resolution}deg-{steps}"
    existing = sorted(folder.glob("*.nc"))
    if len(existing) >= steps:
        return existing[:steps]
    print(f"writing {steps} sample files at {resolution} degrees into {folder}", flush=True)
    return write_amsua_sample(folder, steps=steps, resolution=resolution, seed=0, complevel=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=40, help="files of the 0.5-degree archive")
    parser.add_argument("--fine-files", type=int, default=8, help="files of the 0.25-degree sample product")
    parser.add_argument("--chunks", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeat", type=int, default=1, help="rounds over all contenders; each keeps its fastest")
    parser.add_argument("--data", type=Path, help="folder that caches the generated archives between runs")
    parser.add_argument("--quick", action="store_true", help="8 files at 2 degrees, no 0.25-degree archive")
    parser.add_argument("--profile", action="store_true", help="py-spy profile of a satflow ingest (needs py-spy)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="satflow-bench-"))
    coarse = ("amsua-2deg", 2.0, args.files if not args.quick else 8) if args.quick else ("amsua-0.5deg", 0.5, args.files)
    try:
        base_all = archive(work, coarse[0], coarse[2] * 4, coarse[1], args.data)
        base = base_all[:coarse[2]]
        results: dict = {
            "machine": {"cpus": psutil.cpu_count(), "platform": platform.platform(), "workers": WORKERS,
                        "note": "shared machine: compare ratios within this run"},
            "command": " ".join(["python", "benchmarks/ingest/run.py", *sys.argv[1:]]),
            "archives": {},
        }
        print(f"{coarse[0]} ({len(base)} files, tmbrs only)", flush=True)
        results["codec_sweep"] = codec_sweep(base[:4], ["tmbrs"])
        results["archives"][coarse[0]] = {"files": len(base), "variables": ["tmbrs"],
                                          **bench_archive(base, work, ["tmbrs"], args.chunks, True, args.repeat)}
        if not args.quick:
            fine = archive(work, "amsua-0.25deg", args.fine_files, 0.25, args.data)
            print(f"amsua-0.25deg ({len(fine)} files, all 40 features)", flush=True)
            results["archives"]["amsua-0.25deg"] = {"files": len(fine), "variables": "all",
                                                    **bench_archive(fine, work, None, args.chunks[:1], False, args.repeat)}
        print("memory: 1x and 4x archive", flush=True)
        results["memory"] = memory_growth(base, base_all, work, ["tmbrs"], args.chunks[0])
        results["targets"] = targets(results)
        if args.profile:
            results["profile"] = profile_ingest(base, ["tmbrs"], args.out / "profile-satflow-ingest.json")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (args.out / "ingest.json").write_text(json.dumps(results, indent=2))
    plot(results, args.out / "ingest.png")
    print(json.dumps({"summaries": {k: v["summary"] for k, v in results["archives"].items()},
                      "memory": results["memory"], "targets": results["targets"]}, indent=2))


if __name__ == "__main__":
    main()
