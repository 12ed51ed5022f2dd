"""Benchmark the patch index and the PyTorch dataset against their floors, in the same run.

1. Index build time vs a floor of one pass that only reads `M` (same store, same Dask
   scheduler): target build <= 1.5 x floor.
2. DataLoader throughput (2 workers, batches of 32) vs reading the same patches directly from
   Zarr in one process: target >= 0.7 x.

Writes results/index_benchmark.json and two figures. About a minute on 2 cores:
    python benchmarks/index/run.py [--steps 16 --features 8 --lat 360 --lon 720 --repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np

HERE = Path(__file__).resolve().parent


def make_store(path: Path, steps: int, features: int, n_lat: int, n_lon: int, chunk: int) -> None:
    """A global store with swath-like gaps (moving diagonal bands), 1 time step per chunk."""
    from satflow.store import write_store_from_arrays

    rng = np.random.default_rng(0)
    values = rng.normal(250.0, 10.0, (steps, features, n_lat, n_lon)).astype(np.float32)
    band = np.arange(n_lon)[None, :] + 0.4 * np.arange(n_lat)[:, None]
    for t in range(steps):
        values[t][:, (band + 37 * t) % 240 < 90] = np.nan
    step = 360.0 / n_lon
    write_store_from_arrays(
        path, values, times=np.datetime64("2020-01-01") + np.arange(steps) * np.timedelta64(6, "h"),
        features=[f"tmbrs-{i + 1}" for i in range(features)],
        lat=np.linspace(-90 + step / 2, 90 - step / 2, n_lat), lon=-180 + step / 2 + step * np.arange(n_lon),
        chunks={"time": 1, "feature": -1, "lat": chunk, "lon": chunk},
    )


def read_mask_once(store: Path) -> int:
    """The floor: every chunk of M read and reduced once, nothing else."""
    from satflow.store import open_store

    mask = open_store(store)["M"].data
    per_chunk = da.map_blocks(lambda b: np.array([[[[np.count_nonzero(b)]]]]), mask, chunks=(1, 1, 1, 1),
                              dtype=np.int64)
    return int(per_chunk.sum().compute())


def time_build_vs_floor(store: Path, out: Path, config, repeats: int) -> dict:
    from satflow.index.build import build_index

    floors, builds, rows = [], [], 0
    for _ in range(repeats):  # interleaved, so both see the same machine load
        started = time.perf_counter()
        read_mask_once(store)
        floors.append(time.perf_counter() - started)
        started = time.perf_counter()
        rows = build_index(store, out, config).rows
        builds.append(time.perf_counter() - started)
    return {"floor_s": floors, "build_s": builds, "rows": rows,
            "ratio_median": statistics.median(builds) / statistics.median(floors),
            "ratio_best": min(builds) / min(floors)}


def direct_zarr_read(store: Path, rows) -> float:
    """Seconds to read the rows' patches straight from Zarr in one process (wrap handled)."""
    import zarr

    array = zarr.open_group(str(store), mode="r")["X"]
    n_lon = array.shape[-1]
    started = time.perf_counter()
    for row in rows.itertuples():
        end = row.x0 + row.width
        if end <= n_lon:
            array[row.t, :, row.y0:row.y0 + row.height, row.x0:end]
        else:
            np.concatenate([array[row.t, :, row.y0:row.y0 + row.height, row.x0:],
                            array[row.t, :, row.y0:row.y0 + row.height, :end - n_lon]], axis=-1)
    return time.perf_counter() - started


def loader_read(store: Path, index: Path, positions: list[int], workers: int) -> float:
    """Seconds to iterate a DataLoader over the same patches (worker start-up included)."""
    from torch.utils.data import DataLoader, Subset

    from satflow.dataset import PatchDataset

    dataset = PatchDataset(store, index, split=None)
    started = time.perf_counter()
    for _ in DataLoader(Subset(dataset, positions), batch_size=32, num_workers=workers):
        pass
    return time.perf_counter() - started


def time_loader_vs_zarr(store: Path, index: Path, n_patches: int, repeats: int) -> dict:
    from satflow.index.io import read_index

    frame = read_index(index)
    positions = np.sort(np.random.default_rng(0).choice(len(frame), min(n_patches, len(frame)), replace=False))
    rows = frame.iloc[positions]
    direct, loader = [], []
    for _ in range(repeats):
        direct.append(direct_zarr_read(store, rows))
        loader.append(loader_read(store, index, positions.tolist(), workers=2))
    n = len(positions)
    return {"patches": n, "direct_s": direct, "loader_s": loader,
            "direct_patches_per_s": n / statistics.median(direct),
            "loader_patches_per_s": n / statistics.median(loader),
            "ratio_median": statistics.median(direct) / statistics.median(loader)}


def plot(results: dict, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    build = results["build"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(["read M once\n(floor)", "build index"], [statistics.median(build["floor_s"]),
                                                     statistics.median(build["build_s"])], color=["grey", "C0"])
    ax.axhline(1.5 * statistics.median(build["floor_s"]), color="C3", ls="--", label="target 1.5 x floor")
    ax.set_ylabel("seconds (median)")
    ax.set_title(f"index build: {build['ratio_median']:.2f} x floor ({build['rows']} rows)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out_dir / "build_vs_floor.png", dpi=110)
    loader = results["loader"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(["direct Zarr\n(1 process)", "PatchDataset\nDataLoader, 2 workers"],
           [loader["direct_patches_per_s"], loader["loader_patches_per_s"]], color=["grey", "C0"])
    ax.axhline(0.7 * loader["direct_patches_per_s"], color="C3", ls="--", label="target 0.7 x direct")
    ax.set_ylabel("patches / s (median)")
    ax.set_title(f"dataset throughput: {loader['ratio_median']:.2f} x direct")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out_dir / "loader_throughput.png", dpi=110)
    plt.close("all")
    return ["build_vs_floor.png", "loader_throughput.png"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--lat", type=int, default=360)
    parser.add_argument("--lon", type=int, default=720)
    parser.add_argument("--chunk", type=int, default=128, help="lat/lon chunk size of the store")
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--stride", type=int, default=32)
    parser.add_argument("--patches", type=int, default=512, help="patches read in the throughput test")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)

    from satflow.index.options import IndexConfig
    from satflow.version import __version__

    args.out.mkdir(parents=True, exist_ok=True)
    config = IndexConfig(patch_size=args.patch_size, stride=args.stride, max_nodata_fraction=0.9)
    with tempfile.TemporaryDirectory(prefix="satflow-index-bench-") as tmp:
        store, index = Path(tmp) / "bench.zarr", Path(tmp) / "index.parquet"
        make_store(store, args.steps, args.features, args.lat, args.lon, args.chunk)
        results = {
            "setup": {**{k: v for k, v in vars(args).items() if k != "out"}, "satflow": __version__,
                      "python": sys.version.split()[0], "cpus": os.cpu_count(), "machine": platform.machine(),
                      "scheduler": "dask threaded (default)"},
            "build": time_build_vs_floor(store, index, config, args.repeats),
            "loader": time_loader_vs_zarr(store, index, args.patches, args.repeats),
        }
    results["targets"] = {"build_within_1_5x_floor": results["build"]["ratio_median"] <= 1.5,
                          "loader_at_least_0_7x_direct": results["loader"]["ratio_median"] >= 0.7}
    results["figures"] = plot(results, args.out)
    (args.out / "index_benchmark.json").write_text(json.dumps(results, indent=2))
    build, loader = results["build"], results["loader"]
    print(f"index build {statistics.median(build['build_s']):.2f} s vs floor "
          f"{statistics.median(build['floor_s']):.2f} s -> {build['ratio_median']:.2f} x (target <= 1.5)")
    print(f"DataLoader {loader['loader_patches_per_s']:.0f} patches/s vs direct Zarr "
          f"{loader['direct_patches_per_s']:.0f} patches/s -> {loader['ratio_median']:.2f} x (target >= 0.7)")
    print(f"wrote {args.out / 'index_benchmark.json'} and {', '.join(results['figures'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
