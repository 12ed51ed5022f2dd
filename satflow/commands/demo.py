"""`satflow demo`: the main job on embedded defaults, end to end on a LocalCluster.

Generates AMSU-like sample files, ingests them, indexes patches and prints where everything
went. It is the first command of the README, so it must work on a fresh machine in about a minute.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from satflow.config import SatflowConfig


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "demo", parents=[common], help="sample data -> store -> summary, on a LocalCluster (about a minute)",
        description="Run the main job on generated AMSU-like sample data: sample, ingest, inspect, index.",
    )
    parser.add_argument("--out", type=Path, default=Path("satflow-demo"), help="output directory")
    parser.add_argument("--steps", type=int, help="number of 6-hourly files (default: sample.steps)")
    parser.add_argument("--resolution", type=float, help="grid spacing in degrees (default: sample.resolution)")
    parser.add_argument("--patch-size", type=int, default=16, help="patch side in cells (the demo grid is coarse)")
    parser.set_defaults(handler=run_demo)


def run_demo(args, config: SatflowConfig) -> int:
    from satflow.runtime.cluster import open_client
    from satflow.commands.data import write_sample
    from satflow.index import build_index, summarize_index
    from satflow.ingest import run_ingest
    from satflow.summary import format_summary, summarize_store

    started = time.perf_counter()
    sample = config.sample.model_copy(update={k: v for k, v in {"steps": args.steps,
                                      "resolution": args.resolution}.items() if v is not None})
    raw_dir, store, index = args.out / "raw", args.out / "amsua.zarr", args.out / "patches.parquet"
    index_config = config.index.model_copy(update={"patch_size": args.patch_size, "stride": args.patch_size})
    files = write_sample(sample, raw_dir)
    print(f"[1/4] wrote {len(files)} sample files to {raw_dir}")
    with open_client(config.cluster) as client:
        print(f"      Dask dashboard: {client.dashboard_link}")
        report = run_ingest([str(raw_dir)], store, config.ingest, client=client, overwrite=True, progress=False)
        print(f"[2/4] {report.describe()}")
        print(f"[3/4] summary of {store}:")
        print(format_summary(summarize_store(store)))
        build_index(store, index, index_config, client=client)
    print(f"[4/4] patch index {index}:")
    print(summarize_index(index))
    print(f"\ndone in {time.perf_counter() - started:.0f} s; outputs under {args.out}/:")
    print("  raw/             sample NetCDF files (1bamua_YYYYMMDD_tHH.nc)")
    print(f"  amsua.zarr/      the datacube: xr.open_zarr('{store}')")
    print(f"  patches.parquet  the patch index: satflow.dataset.PatchDataset('{store}', '{index}')")
    return 0
