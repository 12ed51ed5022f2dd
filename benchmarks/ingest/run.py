"""Ingest benchmark: satflow vs `open_mfdataset().to_zarr()` vs a hand-written floor, in one run.

All three turn the same generated AMSU-like archive into Zarr with the same codec on the same
machine at the same time, so only ratios are reported as targets (machines here are shared):

- satflow:  `run_ingest` on a LocalCluster of N worker processes (one task per region)
- mfdataset: the users' usual one-liner, `xr.open_mfdataset(files).to_zarr(...)`, on the same cluster
- floor:    one process on one core (zarr's thread pool limited to one thread), netCDF4 read +
            mask + zarr write per file, wall time divided by N workers; the same loop with zarr's
            default thread pool is reported beside it

Peak memory is the peak of the summed RSS of the driver and all its child processes (workers),
sampled every 20 ms. The archive is then quadrupled to check that peak memory does not grow with it.

    python benchmarks/ingest/run.py              # full run (a few minutes on 2 cores)
    python benchmarks/ingest/run.py --quick      # smaller archive, for a smoke test
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil

HERE = Path(__file__).parent


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
def timed(results: dict, key: str):
    with PeakRSS() as memory:
        start = time.perf_counter()
        yield
        results[key] = {"seconds": time.perf_counter() - start}
    results[key]["peak_rss_mib"] = memory.peak / 2**20


def run_satflow(files, store, chunk, client) -> None:
    from satflow.config import load_config
    from satflow.ingest import run_ingest

    config = load_config(None, [f"ingest.chunks.lat={chunk}", f"ingest.chunks.lon={chunk}"]).ingest
    run_ingest([str(p) for p in files], store, config, client=client, overwrite=True, progress=False)


def run_mfdataset(files, store, chunk) -> None:
    """What users write today: the default open_mfdataset, then to_zarr with the same codec."""
    import xarray as xr

    from satflow.store import _compressor

    ds = xr.open_mfdataset([str(p) for p in files], parallel=True)
    encoding = {name: {"compressors": [_compressor(5)]} for name in ds.data_vars}
    ds.chunk({"lat": chunk, "lon": chunk}).to_zarr(str(store), mode="w", zarr_format=3, encoding=encoding,
                                                   consolidated=False)


def run_floor(files, store, chunk) -> None:
    """The least work that reaches the same bytes: read, mask, write; no planning, no statistics."""
    import netCDF4
    import zarr

    from satflow.store import _compressor

    with netCDF4.Dataset(files[0]) as first:
        n_lat, n_lon = len(first.dimensions["lat"]), len(first.dimensions["lon"])
        names = [n for n, v in first.variables.items() if {"lat", "lon"} <= set(v.dimensions) and n not in ("lat", "lon")]
        n_feature = sum(int(np.prod(first.variables[n].shape[1:-2])) for n in names)
    group = zarr.open_group(str(store), mode="w", zarr_format=3)
    shape, chunks = (len(files), n_feature, n_lat, n_lon), (1, n_feature, chunk, chunk)
    x = group.create_array("X", shape=shape, chunks=chunks, dtype="f4", compressors=[_compressor(5)], fill_value=np.nan)
    m = group.create_array("M", shape=shape, chunks=chunks, dtype="u1", compressors=[_compressor(5)], fill_value=0)
    for t, path in enumerate(files):
        with netCDF4.Dataset(path) as ds:
            block = np.concatenate([np.ma.filled(ds.variables[n][0].astype(np.float32), np.nan).reshape(-1, n_lat, n_lon)
                                    for n in names])
        x[t] = block
        m[t] = np.isfinite(block)


def warm_up(client) -> None:
    """Import the readers in every worker first: one-off start-up is not throughput."""

    def imports() -> None:
        import netCDF4  # noqa: F401
        import xarray  # noqa: F401

        import satflow.ingest  # noqa: F401

    client.run(imports)


def bench_archive(files, work: Path, chunks: list[int], workers: int) -> dict:
    from distributed import Client, LocalCluster

    results: dict = {}
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        warm_up(client)
        for chunk in chunks:
            with timed(results, f"satflow_chunk{chunk}"):
                run_satflow(files, work / f"satflow{chunk}.zarr", chunk, client)
        best = min(chunks, key=lambda c: results[f"satflow_chunk{c}"]["seconds"])
        with timed(results, "mfdataset"):
            run_mfdataset(files, work / "mf.zarr", best)
    import zarr

    # zarr compresses chunks on a thread pool, so a plain loop already uses every core while it
    # writes; dividing that by the worker count would count the cores twice. The floor is
    # one process on one core, divided by the workers: zarr's pool limited to one thread.
    with zarr.config.set({"threading.max_workers": 1, "async.concurrency": 1}):
        with timed(results, "floor_single_process"):
            run_floor(files, work / "floor.zarr", best)
    with timed(results, "floor_single_process_zarr_threads"):
        run_floor(files, work / "floor-threads.zarr", best)
    results["floor"] = {"seconds": results["floor_single_process"]["seconds"] / workers}
    results["best_chunk"] = best
    satflow = results[f"satflow_chunk{best}"]["seconds"]
    results["speedup_vs_mfdataset"] = results["mfdataset"]["seconds"] / satflow
    results["ratio_to_floor"] = satflow / results["floor"]["seconds"]
    results["ratio_to_threaded_floor"] = satflow / (results["floor_single_process_zarr_threads"]["seconds"] / workers)
    return results


def memory_growth(files_small, files_large, work: Path, chunk: int, workers: int) -> dict:
    """Peak memory of satflow ingest for an archive and for one 4x larger, each on a fresh cluster."""
    from distributed import Client, LocalCluster

    peaks = {}
    for label, files in (("1x", files_small), ("4x", files_large)):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                          host="127.0.0.1") as cluster, Client(cluster) as client:
            warm_up(client)
            result: dict = {}
            with timed(result, "run"):
                run_satflow(files, work / f"mem{label}.zarr", chunk, client)
            peaks[label] = result["run"]
    peaks["peak_growth"] = peaks["4x"]["peak_rss_mib"] / peaks["1x"]["peak_rss_mib"]
    return peaks


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    keys = [k for k in results["archive"] if isinstance(results["archive"][k], dict) and "seconds" in results["archive"][k]]
    left.barh(keys, [results["archive"][k]["seconds"] for k in keys], color="tab:blue")
    left.set_xlabel("seconds (lower is better)")
    left.set_title(f"{results['files']} files, {results['workers']} workers")
    mem = results["memory"]
    right.bar(["1x archive", "4x archive"], [mem["1x"]["peak_rss_mib"], mem["4x"]["peak_rss_mib"]], color="tab:orange")
    right.set_ylabel("peak RSS, driver + workers (MiB)")
    right.set_title(f"peak growth x{mem['peak_growth']:.2f}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=24, help="files in the base archive")
    parser.add_argument("--resolution", type=float, default=1.0, help="grid spacing of the sample files")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunks", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--quick", action="store_true", help="8 files at 2 degrees, one chunk size")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.quick:
        args.files, args.resolution, args.chunks = 8, 2.0, [128]

    from satflow.sources.sample import write_amsua_sample

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="satflow-bench-"))
    try:
        files = write_amsua_sample(work / "raw", steps=args.files * 4, resolution=args.resolution, seed=0)
        base = files[: args.files]
        results = {
            "machine": {"cpus": psutil.cpu_count(), "platform": platform.platform()},
            "files": len(base), "resolution": args.resolution, "workers": args.workers,
            "bytes_per_file": base[0].stat().st_size,
            "archive": bench_archive(base, work, args.chunks, args.workers),
        }
        results["memory"] = memory_growth(base, files, work, results["archive"]["best_chunk"], args.workers)
        results["targets"] = {
            "speedup_vs_mfdataset >= 3": results["archive"]["speedup_vs_mfdataset"] >= 3,
            "ratio_to_floor <= 1.3": results["archive"]["ratio_to_floor"] <= 1.3,
            "peak_growth < 1.1": results["memory"]["peak_growth"] < 1.1,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (args.out / "ingest.json").write_text(json.dumps(results, indent=2))
    plot(results, args.out / "ingest.png")
    print(json.dumps({k: results[k] for k in ("archive", "memory", "targets")}, indent=2))


if __name__ == "__main__":
    main()
