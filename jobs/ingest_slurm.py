#!/usr/bin/env python
"""Driver: ingest a NetCDF archive on a Dask cluster made of SLURM jobs.

Run it on a login node or inside a small batch job (jobs/ingest.sbatch). It opens the cluster
from `cluster` in the config (dask-jobqueue submits the worker jobs), prints the dashboard link,
then runs `satflow ingest` against that cluster's scheduler. The driver owns the cluster's life:
the worker jobs are cancelled when it exits, even on error or Ctrl-C.

    python jobs/ingest_slurm.py --config configs/slurm.yaml --out amsua.zarr '/data/1bamua_2020*.nc'
    python jobs/ingest_slurm.py --config configs/slurm.yaml --job-script   # print a worker job, submit nothing

Flags it does not know (--var, --append, --strict, --report, ...) go to `satflow ingest` as they
are. Re-running the same command resumes an interrupted ingest.
"""

from __future__ import annotations

import argparse
import logging
import sys

from satflow import cli
from satflow.runtime.cluster import open_client, slurm_job_script
from satflow.config import ConfigError, load_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingest_slurm.py",
        allow_abbrev=False,  # never swallow an abbreviated `satflow ingest` flag
        description="Open the configured Dask cluster (SLURM via dask-jobqueue), print its dashboard link and "
        "run `satflow ingest` on it. Unknown flags are passed to `satflow ingest`.",
    )
    parser.add_argument("--config", "-c", default="configs/slurm.yaml", help="YAML config (default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set cluster.slurm.queue=debug (repeatable)")
    parser.add_argument("--job-script", action="store_true",
                        help="print the batch script of one worker job and exit (submits nothing)")
    parser.add_argument("--wait-workers", type=int, default=0, metavar="N",
                        help="wait until N workers have joined before planning (default: start at once)")
    parser.add_argument("--wait-timeout", type=float, default=1800, metavar="SECONDS",
                        help="give up waiting for workers after this long (default: %(default)s)")
    return parser


def ingest_argv(args: argparse.Namespace, passthrough: list[str], scheduler_address: str) -> list[str]:
    """`satflow ingest` arguments that reuse the driver's config but attach to its running cluster."""
    argv = ["ingest", *passthrough, "--config", args.config]
    for override in args.overrides:
        argv += ["--set", override]
    return argv + ["--set", "cluster.kind=address", "--set", f"cluster.address={scheduler_address}"]


def main(argv: list[str] | None = None) -> int:
    args, passthrough = build_parser().parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"ingest_slurm.py: {err}", file=sys.stderr)
        return 2
    if args.job_script:
        if config.cluster.kind != "slurm":
            print(f"ingest_slurm.py: {args.config}: cluster.kind is {config.cluster.kind!r}; "
                  "a job script exists only for kind: slurm", file=sys.stderr)
            return 2
        print(slurm_job_script(config.cluster))
        return 0
    with open_client(config.cluster) as client:
        print(f"dask scheduler {client.scheduler.address}; dashboard {client.dashboard_link}", flush=True)
        if args.wait_workers:
            print(f"waiting for {args.wait_workers} worker(s) (SLURM queue permitting) ...", flush=True)
            client.wait_for_workers(args.wait_workers, timeout=args.wait_timeout)
        return cli.main(ingest_argv(args, passthrough, client.scheduler.address))


if __name__ == "__main__":
    raise SystemExit(main())
