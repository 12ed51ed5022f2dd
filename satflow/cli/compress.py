"""Sub-command `satflow compress`: flags onto the `compress:` config section, then
`satflow.compress.api.compress_job` (or `prepare_compress` for `--dry-run`)."""

from __future__ import annotations

import argparse
import json

from satflow.cli.cluster_flag import add_cluster_flag
from satflow.config import SatflowConfig

CHUNK_KEYS = ("time", "feature", "lat", "lon")


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "compress", parents=[common], help="store -> a store compressed with a codec (xr.open_zarr decodes it)",
        description="Write a copy of a satflow store whose X goes through a satflow codec (a Zarr v3 serializer, "
        "one container per chunk and time step) and M stays lossless; coordinates, statistics (of the original "
        "values) and provenance are the input's. Every chunk is coded by a task on the cluster; re-running resumes. "
        "Prints bits per value, RMSE and the worst error per feature.",
    )
    parser.add_argument("store", help="satflow store (Zarr v3 directory)")
    parser.add_argument("--codec", help="NAME or NAME:KEY=VALUE,... e.g. sz3:tol=0.5 (default: compress.codec)")
    parser.add_argument("--out", required=True, help="compressed store path (a directory ending in .zarr)")
    parser.add_argument("--chunks", help="chunk shape time=T,feature=F,lat=H,lon=W, any subset "
                        "(default: the input store's chunks)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out instead of resuming")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit; writes nothing")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_cluster_flag(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_compress_command)


def parse_chunks(text: str) -> dict[str, int]:
    """`lat=64,lon=128` -> {"lat": 64, "lon": 128}."""
    chunks = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key.strip() not in CHUNK_KEYS or not value.strip().isdigit() or int(value) <= 0:
            raise ValueError(f"--chunks {text!r}: expected KEY=N with KEY in {', '.join(CHUNK_KEYS)} and N a "
                             "positive cell count, e.g. lat=128,lon=128")
        chunks[key.strip()] = int(value)
    return chunks


def compress_config_from_args(args, config: SatflowConfig):
    data = config.compress.model_dump()
    if args.codec is not None:
        data["codec"] = args.codec
    if args.chunks:
        data["chunks"] = {**data["chunks"], **parse_chunks(args.chunks)}
    return type(config.compress).model_validate(data)


def run_compress_command(args, config: SatflowConfig) -> int:
    compress = compress_config_from_args(args, config)
    if args.dry_run:
        from satflow.compress.api import prepare_compress

        print(prepare_compress(args.store, args.out, compress, overwrite=args.overwrite).describe())
        return 0
    from satflow.compress.api import compress_job

    result = compress_job(args.store, args.out, compress, config.cluster, choice=args.cluster,
                          overwrite=args.overwrite, progress=not args.no_progress,
                          on_plan=None if args.json else lambda plan: print(plan.describe()))
    print(json.dumps(result.summary, indent=2) if args.json else result.describe())
    return 0
