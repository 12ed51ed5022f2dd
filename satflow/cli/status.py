"""`satflow status DIR_OR_STORE`: what is complete, what is pending and where each part ran
(`satflow.status` reads it); `--json` prints the same as one JSON document."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from satflow.config import SatflowConfig
from satflow.status import format_status, status_of


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "status", parents=[common], help="what is complete, pending, and where it ran (store, eval or run dir)",
        description="Show the progress of a store (ingested time steps), an eval directory (blocks per codec) "
        "or a pipeline output directory (stages, SLURM jobs): what is complete, what is pending, where it ran.")
    parser.add_argument("path", type=Path, help="a store, an eval directory or a jobs/pipeline.py --out directory")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=run_status)


def run_status(args, config: SatflowConfig) -> int:
    try:
        report = status_of(args.path)
    except ValueError as err:
        print(f"satflow status: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1, default=str) if args.json else format_status(report))
    return 0
