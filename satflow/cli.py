"""The `satflow` command line: one sub-command per stage.

Each stage module exposes `register(subparsers, common)`, which adds its sub-command(s) with
`common` as a parent parser (it carries --config/--set) and sets `handler(args, config) -> int`.
This module only assembles them, loads the config and turns known errors into clean messages.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from satflow import __version__
from satflow.config import ConfigError, load_config

# Stage modules that contribute sub-commands, in the order `satflow --help` lists them.
COMMAND_MODULES = (
    "satflow.commands.data",  # sample, ingest, inspect, export, demo, config
    "satflow.commands.meta",  # from-meta (a convml_tt meta.yaml -> a satflow config)
    "satflow.index.commands",  # index
    "satflow.codecs.commands",  # codecs, encode, decode
    "satflow.train",  # train
    "satflow.commands.evaluate",  # eval
    "satflow.commands.report",  # report
    "satflow.commands.status",  # status
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


# Stage modules that import torch at module level (about a second): their sub-command is listed from
# this table and the module is imported only when that command runs, so `satflow --help`,
# `satflow ingest` and the other data commands start without torch.
LAZY_COMMANDS = {
    "satflow.train": ("train", "train the learned codec (VAEformerLite + hyperprior, causal context)"),
}


def _invoked_command(argv: list[str]) -> str | None:
    """The sub-command named on the command line (the first argument that is not an option)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The full parser; heavy modules (LAZY_COMMANDS) are imported only if `argv` invokes them."""
    invoked = _invoked_command(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="satflow",
        description="Satellite NetCDF archives to ML-ready Zarr datacubes, patch indexes and codecs.",
    )
    parser.add_argument("--version", action="version", version=f"satflow {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _common_parser()
    for name in COMMAND_MODULES:
        if name in LAZY_COMMANDS and LAZY_COMMANDS[name][0] != invoked:
            command, help_text = LAZY_COMMANDS[name]
            subparsers.add_parser(command, help=help_text, add_help=False)
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:  # a real missing dependency, not a stage that is not built yet
                raise
            continue
        module.register(subparsers, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # The cluster's own chatter (worker start/stop) is noise to users. distributed sets its
        # logger levels when first imported, so import it before quieting it.
        import distributed  # noqa: F401

        for noisy in ("distributed", "tornado"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # bokeh warns that the dashboard accepts any Origin header; it listens on loopback only.
        logging.getLogger("bokeh").setLevel(logging.ERROR)
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
