"""The `satflow` command line: argument parsing only, one module per command group.

Each module of this package exposes `register(subparsers, common)`, which adds its sub-command(s)
with `common` (--config/--set/--verbose, the shared flag overlay) as a parent parser and sets
`handler(args, config) -> int`; the handler turns flags into options and calls one function of the
stage's api (no module here imports numpy, xarray, zarr, pandas or dask). Commands with
distributable work share `--cluster auto|always|never` (`satflow.cli.cluster_flag`; the policy is
`satflow.runtime.cluster`). This module only assembles them, loads the config and turns known
errors into clean messages.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from satflow.config import ConfigError, load_config
from satflow.version import __version__

# One module per command group, in the order `satflow --help` lists them. None imports torch or
# another heavy library at module level (their handlers do), so every command starts quickly.
COMMAND_MODULES = (
    "satflow.cli.data",  # sample, ingest, inspect, export, config
    "satflow.cli.demo",  # demo (the pipeline on sample data)
    "satflow.cli.meta",  # from-meta (a convml_tt meta.yaml -> a satflow config)
    "satflow.cli.index",  # index
    "satflow.cli.codecs",  # codecs, encode, decode
    "satflow.cli.train",  # train
    "satflow.cli.evaluate",  # eval
    "satflow.cli.compress",  # compress
    "satflow.cli.report",  # report
    "satflow.cli.status",  # status
)


def _common_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("configuration")
    group.add_argument("--config", "-c", metavar="FILE", help="YAML config (see configs/); flags override it")
    group.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override any config key, e.g. --set ingest.chunks.lat=128 (repeatable)",
    )
    group.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="satflow",
        description="Satellite NetCDF archives to ML-ready Zarr datacubes, patch indexes and codecs.",
    )
    parser.add_argument("--version", action="version", version=f"satflow {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _common_parser()
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # The cluster's own chatter (worker start/stop) is noise to users; bokeh warns that the
        # dashboard accepts any Origin header (it listens on loopback only). distributed itself is
        # imported only by a command that opens a cluster.
        from satflow.runtime.cluster import quiet_cluster_logs

        quiet_cluster_logs()
        # hdf5plugin says at INFO that netCDF4 already loaded its filters: true, and nothing to act on
        logging.getLogger("hdf5plugin").setLevel(logging.WARNING)
    try:
        config = load_config(args.config, args.overrides)
        return int(args.handler(args, config) or 0)
    except ConfigError as err:
        print(f"satflow: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("satflow: interrupted; finished regions are kept, re-run the same command to resume", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError) as err:
        # Our own errors name the file or key and what to do; a traceback adds nothing for users.
        if args.verbose:
            raise
        print(f"satflow {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
