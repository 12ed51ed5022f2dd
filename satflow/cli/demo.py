"""`satflow demo`: the main job on embedded defaults, end to end on a LocalCluster.

Generates AMSU-like sample files, ingests the 15 brightness-temperature channels, indexes patches,
evaluates classic, error-bounded and learned codecs over the whole cube (the learned ones with the
checkpoint satflow ships) and writes the report: `satflow.pipeline.run_pipeline` with the demo's
sections (`demo_config`); this module prints each stage. It is the first command of the README, so
it must work on a fresh machine in a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

from satflow.config import SatflowConfig


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "demo", parents=[common], help="sample data -> store -> index -> codec evaluation -> report (LocalCluster)",
        description="Run the whole pipeline on generated AMSU-like sample data: sample, ingest, inspect, index, "
        "evaluate classic, error-bounded and learned codecs on the cluster, and write the report.",
    )
    parser.add_argument("--out", type=Path, default=Path("satflow-demo"), help="output directory")
    parser.add_argument("--steps", type=int, help="number of 6-hourly files (default: sample.steps)")
    parser.add_argument("--resolution", type=float, help="grid spacing in degrees (default: sample.resolution)")
    parser.add_argument("--patch-size", type=int, default=16, help="patch side in cells (the demo grid is coarse)")
    parser.add_argument("--codec", dest="codecs", action="append", metavar="SPEC",
                        help="codec spec to evaluate instead of the demo's list (repeatable)")
    parser.set_defaults(handler=run_demo)


@contextlib.contextmanager
def _open_cluster(config: SatflowConfig):
    from satflow.runtime.cluster import open_client

    with open_client(config.cluster) as client:
        print(f"      Dask dashboard: {client.dashboard_link}")
        yield client


def _printer(paths, config):
    """The hook that prints `[k/6]` as each stage starts or ends."""

    @contextlib.contextmanager
    def hook(record):
        if record.name == "eval":
            print(f"[5/6] evaluating {len(config.eval.codecs)} codec settings on the cluster -> {paths.eval}/")
        yield
        if record.name == "sample":
            print(f"[1/6] {record.summary}")
        elif record.name == "ingest":
            print(f"[2/6] {record.summary}")
        elif record.name == "inspect":
            print(f"[3/6] summary of {paths.store}:")
            print(record.summary)
        elif record.name == "index":
            from satflow.index import summarize_index

            print(f"[4/6] patch index {paths.index}:")
            print(summarize_index(paths.index))
        elif record.name == "report":
            print(f"[6/6] report: {record.result['html']} (and {record.result['markdown'].name})")

    return hook


def run_demo(args, config: SatflowConfig) -> int:
    from satflow.pipeline import DEMO_STAGES, demo_config, demo_paths, run_pipeline

    started = time.perf_counter()
    config = demo_config(config, steps=args.steps, resolution=args.resolution, patch_size=args.patch_size,
                         codecs=args.codecs)
    paths = demo_paths(args.out)
    records = run_pipeline(config, paths, DEMO_STAGES, cluster=lambda: _open_cluster(config),
                           hook=_printer(paths, config), overwrite=True, progress=("eval",))
    print(records["eval"].result.describe())
    print(f"\ndone in {time.perf_counter() - started:.0f} s; outputs under {args.out}/:")
    print("  raw/             sample NetCDF files (1bamua_YYYYMMDD_tHH.nc)")
    print(f"  amsua.zarr/      the datacube: xr.open_zarr('{paths.store}')")
    print(f"  patches.parquet  the patch index: satflow.dataset.PatchDataset('{paths.store}', '{paths.index}')")
    print("  eval/            metrics.json, metrics.parquet, manifest.json, report.html, <codec>/compressed.zarr "
          "(xr.open_zarr decodes it)")
    return 0
