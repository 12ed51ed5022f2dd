"""Sub-commands for the data side: sample, ingest, inspect, export, config (`satflow.cli.demo` adds demo).

Each handler maps flags onto the validated config (flags win over the file) and calls the
stage's Python API; no stage logic lives here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from satflow.cli.cluster_flag import add_cluster_flag
from satflow.config import SatflowConfig, dump_config


def register(subparsers, common: argparse.ArgumentParser) -> None:
    _register_sample(subparsers, common)
    _register_ingest(subparsers, common)
    _register_inspect(subparsers, common)
    _register_export(subparsers, common)
    _register_config(subparsers, common)


# --- sample ------------------------------------------------------------------------------------
def _register_sample(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "sample", parents=[common], help="write realistic sample NetCDF files (AMSU-A or ocean)",
        description="Write seeded, reproducible sample files shaped like real products: gridded AMSU-A "
        "brightness temperatures with swath gaps (1bamua_YYYYMMDD_tHH.nc), raw AMSU-A swaths per satellite and "
        "orbit (ingest them with --set ingest.source.kind=swath), or monthly ocean thetao with depth.",
    )
    parser.add_argument("kind", choices=["amsua", "amsua-swath", "ocean", "profiles"],
                        help="which product to imitate (amsua-swath: raw level-1b swaths, one file per orbit; "
                        "profiles: EN4-like monthly float profiles of the ocean sample's ocean, ingest them with "
                        "--set ingest.source.kind=profiles)")
    parser.add_argument("--out", required=True, type=Path, help="directory for the files")
    parser.add_argument("--start", help="first time (default: sample.start)")
    parser.add_argument("--steps", type=int, help="number of files (default: sample.steps)")
    parser.add_argument("--resolution", type=float, help="grid spacing in degrees; 0.25 = real product")
    parser.add_argument("--seed", type=int, help="random seed (default: sample.seed)")
    parser.set_defaults(handler=run_sample)


def _apply_sample_flags(args, config: SatflowConfig):
    updates = {k: v for k, v in {"kind": args.kind, "start": args.start, "steps": args.steps,
                                  "resolution": args.resolution, "seed": args.seed}.items() if v is not None}
    return config.sample.model_validate({**config.sample.model_dump(), **updates})


def run_sample(args, config: SatflowConfig) -> int:
    from satflow.sources.samples import write_sample

    sample = _apply_sample_flags(args, config)
    files = write_sample(sample, args.out)
    print(f"wrote {len(files)} {sample.kind} file(s) to {args.out} ({files[0].name} .. {files[-1].name})")
    return 0


# --- ingest ------------------------------------------------------------------------------------
def _register_ingest(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "ingest", parents=[common], help="NetCDF files -> Zarr v3 datacube (resumable)",
        description="Plan and write a (time, feature, lat, lon) Zarr v3 store with masks, statistics and "
        "provenance, one Dask task per chunk-aligned region. Re-running the same command resumes.",
    )
    parser.add_argument("inputs", nargs="*", help="NetCDF paths, directories or globs (or ingest.inputs)")
    parser.add_argument("--out", required=True, help="store path (a directory ending in .zarr)")
    parser.add_argument("--var", dest="variables", action="append", help="variable to ingest (repeatable)")
    parser.add_argument("--append", action="store_true", help="add new files after the store's last time")
    parser.add_argument("--overwrite", action="store_true", help="delete an existing store first")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan and the lazy cube it writes (satflow.open_archive) and exit; writes nothing")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any input was skipped")
    parser.add_argument("--codec", metavar="SPEC", help="write X through this codec (e.g. sz3:tol=0.5), as "
                        "`satflow compress` would; statistics stay exact (default: ingest.codec, lossless)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--report", type=Path, help="also write the skipped-file report as JSON here")
    add_cluster_flag(parser)
    parser.set_defaults(handler=run_ingest_command)


def ingest_config_from_args(args, config: SatflowConfig):
    ingest = config.ingest.model_copy(deep=True)
    if args.inputs:
        ingest.inputs = list(args.inputs)
    if args.variables:
        ingest.source.variables = list(args.variables)
    if args.strict:
        ingest.strict = True
    if args.codec is not None:
        ingest.codec = args.codec
    if not ingest.inputs:
        raise ValueError("no inputs: give NetCDF paths/globs or set ingest.inputs in the config")
    return ingest


def run_ingest_command(args, config: SatflowConfig) -> int:
    from satflow.ingest.job import ingest_job

    ingest = ingest_config_from_args(args, config)
    job = ingest_job(ingest.inputs, args.out, ingest, config.cluster, choice=args.cluster, append=args.append,
                     overwrite=args.overwrite, dry_run=args.dry_run, progress=not args.no_progress,
                     on_plan=lambda plan: print(plan.describe()))
    if args.dry_run:
        print(job.plan.describe())
        if job.cube:
            print(job.cube)
        return 0
    print(job.report.describe())
    if args.report:
        args.report.write_text(json.dumps([vars(s) for s in job.report.skipped], indent=2))
    return 1 if ingest.strict and job.report.skipped else 0


# --- inspect / export ------------------------------------------------------------------------
def _register_inspect(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "inspect", parents=[common], help="summarise a store: shape, chunks, statistics, gaps, provenance",
        description="Print a readable summary of a satflow store (or JSON with --json).",
    )
    parser.add_argument("store", help="store path")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run_inspect)


def run_inspect(args, config: SatflowConfig) -> int:
    from satflow.summary import format_summary, summarize_store

    summary = summarize_store(args.store)
    print(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
    return 0


def _register_export(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "export", parents=[common], help="store -> NPZ (users' X/M layout) or CF NetCDF",
        description="Export a time range of a store to the NPZ layout (X, M, feature_names, lat, lon, time, "
        "mean, std) or to CF NetCDF.",
    )
    parser.add_argument("format", choices=["npz", "netcdf"])
    parser.add_argument("store", help="store path")
    parser.add_argument("--out", required=True, type=Path, help="output file")
    parser.add_argument("--time-start", help="first time to export (ISO date), inclusive")
    parser.add_argument("--time-end", help="last time to export (ISO date), inclusive")
    parser.add_argument("--feature", dest="features", action="append", help="feature to export (repeatable)")
    parser.add_argument("--max-gib", type=float, default=2.0, help="npz: refuse selections larger than this")
    parser.add_argument("--complevel", type=int, default=1, help="netcdf: zlib level 0-9 (1 is 2x faster than 4)")
    parser.set_defaults(handler=run_export)


def run_export(args, config: SatflowConfig) -> int:
    from satflow import export

    selection = {"time_start": args.time_start, "time_end": args.time_end, "features": args.features}
    if args.format == "npz":
        export.export_npz(args.store, args.out, max_bytes=int(args.max_gib * 2**30), **selection)
    else:
        export.export_netcdf(args.store, args.out, complevel=args.complevel, **selection)
    print(f"wrote {args.out}")
    return 0


# --- config ------------------------------------------------------------------------------------
def _register_config(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "config", parents=[common], help="validate a config and print it with every default filled in",
        description="Validate --config/--set and print the effective configuration as YAML.",
    )
    parser.set_defaults(handler=run_config)


def run_config(args, config: SatflowConfig) -> int:
    sys.stdout.write(dump_config(config))
    return 0
