"""Sub-command `satflow eval`: flags onto the `eval:` config section, then `satflow.eval.api.eval_job`
(or `plan_eval` for `--dry-run`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from satflow.cli.cluster_flag import add_cluster_flag
from satflow.config import SatflowConfig


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "eval", parents=[common], help="code a store with codecs on the cluster; exact metrics, stores, report data",
        description="Encode and decode every block of a store (or a fixed-seed sample of indexed patches) with each "
        "codec spec, on the configured Dask cluster; write DIR/metrics.json, DIR/metrics.parquet, DIR/manifest.json "
        "and per codec DIR/<codec>/compressed.zarr (a Zarr store that xr.open_zarr decodes to the reconstruction; "
        "--reconstruction also writes reconstruction.zarr). Re-running resumes.",
    )
    parser.add_argument("store", help="satflow store (Zarr v3 directory)")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--codec", dest="codecs", action="append", metavar="SPEC",
                        help="NAME or NAME:KEY=VALUE,... e.g. sz3:tol=0.5 or errorbound:inner=constant,eps=[0.5,1.0] "
                        "(repeatable; default: eval.codecs)")
    parser.add_argument("--checkpoint", help="checkpoint for learned codecs whose spec names none")
    parser.add_argument("--time", help="time index range A:B (default all)")
    parser.add_argument("--block", help="block shape lat=H,lon=W in cells (default: the store's chunk)")
    parser.add_argument("--batch-size", type=int, help="blocks per task (default eval.batch_size)")
    parser.add_argument("--index", help="patch index: evaluate a fixed-seed sample of its patches")
    parser.add_argument("--split", help="with --index: split to sample from (default test; 'all' for every split)")
    parser.add_argument("--sample", type=int, help="with --index: number of patches (default eval.sample)")
    parser.add_argument("--seed", type=int, help="with --index: sampling seed (default eval.seed)")
    parser.add_argument("--acceptance", action="store_true", help="report the community acceptance tests")
    parser.add_argument("--reconstruction", action="store_true",
                        help="also write DIR/<codec>/reconstruction.zarr (default eval.reconstruction: false)")
    parser.add_argument("--gpu", choices=["auto", "always", "never"], help="route learned codecs to GPU workers")
    parser.add_argument("--performance-report", help="write a Dask performance report (HTML) here")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit; writes nothing")
    parser.add_argument("--overwrite", action="store_true", help="delete DIR first instead of resuming")
    add_cluster_flag(parser, no_cluster_alias=True)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run_eval_command)


def parse_block(text: str) -> dict[str, int]:
    """`lat=64,lon=128` -> {"lat": 64, "lon": 128}."""
    block = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key.strip() not in ("lat", "lon") or not value.strip().isdigit() or int(value) <= 0:
            raise ValueError(f"--block {text!r}: expected lat=H,lon=W with positive cell counts, e.g. lat=64,lon=64")
        block[key.strip()] = int(value)
    return block


def eval_config_from_args(args, config: SatflowConfig):
    data = config.eval.model_dump()
    flags = {"codecs": args.codecs, "checkpoint": args.checkpoint, "time": args.time, "batch_size": args.batch_size,
             "index": args.index, "sample": args.sample, "seed": args.seed, "gpu": args.gpu,
             "performance_report": args.performance_report}
    data.update({key: value for key, value in flags.items() if value is not None})
    if args.split is not None:
        data["split"] = None if args.split == "all" else args.split
    if args.block:
        data["block"] = {**data["block"], **parse_block(args.block)}
    if args.acceptance:
        data["acceptance"]["enabled"] = True
    if args.reconstruction:
        data["reconstruction"] = True
    return type(config.eval).model_validate(data)


def run_eval_command(args, config: SatflowConfig) -> int:
    eval_config = eval_config_from_args(args, config)
    if args.dry_run:
        from satflow.eval.api import prepare_eval

        print(prepare_eval(args.store, eval_config)[1].describe())
        return 0
    from satflow.eval.api import eval_job

    result = eval_job(args.store, args.out, eval_config, config.cluster, choice=args.cluster,
                      overwrite=args.overwrite, progress=not args.no_progress,
                      full_config=config.model_dump(mode="json"))
    print(result.describe())
    print(f"outputs in {args.out}/: metrics.json, metrics.parquet, manifest.json, "
          f"{', '.join(e['dir'] + '/' for e in result.entries)}; `satflow report {args.out}` draws them")
    return 0
