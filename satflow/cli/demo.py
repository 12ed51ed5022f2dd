"""`satflow demo`: the main job on embedded defaults, end to end on a LocalCluster.

Generates AMSU-like sample files, ingests the 15 brightness-temperature channels, indexes patches,
evaluates classic, error-bounded and learned codecs over the whole cube (the learned ones with the
checkpoint satflow ships) and writes the report. It is the first command of the README, so it must
work on a fresh machine in a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from satflow.config import SatflowConfig

# Settings across codec families, so the rate-distortion plots have lines, not points. The learned
# ones use the shipped AMSU checkpoint: its transform codec (vaeformer) and the context network of
# errorbound(context="learned").
DEMO_CODECS = (
    "sz3:tol=0.25", "sz3:tol=0.5", "sz3:tol=1.0",
    "zfp:tol=0.5",
    "bitround:keepbits=6", "bitround:keepbits=8",
    "errorbound:inner=constant,eps=0.5",
    "errorbound:inner=constant,eps=0.5,context=learned", "errorbound:inner=constant,eps=1.0,context=learned",
    "vaeformer:qstep=0.5", "vaeformer:qstep=1",
)
DEMO_VARIABLE = "tmbrs"  # the 15 AMSU-A channels the shipped checkpoint was trained on


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


def run_demo(args, config: SatflowConfig) -> int:
    from satflow.cli.data import write_sample
    from satflow.data import AMSUA_CHECKPOINT
    from satflow.eval.api import run_eval
    from satflow.eval.report import write_report
    from satflow.index import build_index, summarize_index
    from satflow.ingest import run_ingest
    from satflow.runtime.cluster import open_client
    from satflow.summary import format_summary, summarize_store

    started = time.perf_counter()
    sample = config.sample.model_copy(update={k: v for k, v in {"steps": args.steps,
                                      "resolution": args.resolution}.items() if v is not None})
    raw_dir, store, index = args.out / "raw", args.out / "amsua.zarr", args.out / "patches.parquet"
    evaluation = args.out / "eval"
    ingest = config.ingest.model_copy(deep=True)
    ingest.source.variables = ingest.source.variables or [DEMO_VARIABLE]
    index_config = config.index.model_copy(update={"patch_size": args.patch_size, "stride": args.patch_size})
    eval_config = config.eval.model_copy(update={"codecs": args.codecs or list(DEMO_CODECS),
                                                 "checkpoint": config.eval.checkpoint or str(AMSUA_CHECKPOINT)})
    files = write_sample(sample, raw_dir)
    print(f"[1/6] wrote {len(files)} sample files to {raw_dir}")
    with open_client(config.cluster) as client:
        print(f"      Dask dashboard: {client.dashboard_link}")
        report = run_ingest([str(raw_dir)], store, ingest, client=client, overwrite=True, progress=False)
        print(f"[2/6] {report.describe()}")
        print(f"[3/6] summary of {store}:")
        print(format_summary(summarize_store(store)))
        build_index(store, index, index_config, client=client)
        print(f"[4/6] patch index {index}:")
        print(summarize_index(index))
        print(f"[5/6] evaluating {len(eval_config.codecs)} codec settings on the cluster -> {evaluation}/")
        result = run_eval(store, evaluation, eval_config, client=client, overwrite=True, progress=True,
                          full_config=config.model_dump(mode="json"))
    written = write_report(evaluation)
    print(f"[6/6] report: {written['html']} (and {written['markdown'].name})")
    print(result.describe())
    print(f"\ndone in {time.perf_counter() - started:.0f} s; outputs under {args.out}/:")
    print("  raw/             sample NetCDF files (1bamua_YYYYMMDD_tHH.nc)")
    print(f"  amsua.zarr/      the datacube: xr.open_zarr('{store}')")
    print(f"  patches.parquet  the patch index: satflow.dataset.PatchDataset('{store}', '{index}')")
    print("  eval/            metrics.json, metrics.parquet, manifest.json, <codec>/compressed.zarr and "
          "reconstruction.zarr, report.html")
    return 0
