"""The `--cluster auto|always|never` flag every command with distributable work shares.

The policy behind it is `satflow.runtime.cluster.cluster_wanted` (see that module's docstring);
this module only declares the flag and its aliases.
"""

from __future__ import annotations

import argparse

from satflow.runtime.cluster import CLUSTER_CHOICES


def add_cluster_flag(parser: argparse.ArgumentParser, *, no_cluster_alias: bool = False) -> None:
    """`--cluster [auto|always|never]` (a bare `--cluster` means always); `--no-cluster` = never if asked."""
    parser.add_argument(
        "--cluster", nargs="?", const="always", default="auto", choices=CLUSTER_CHOICES,
        help="open the configured Dask cluster: auto (default: for large work, or when cluster.kind is slurm or "
        "address), always (a bare --cluster), or never (run in this process)")
    if no_cluster_alias:
        parser.add_argument("--no-cluster", dest="cluster", action="store_const", const="never",
                            help="same as --cluster never: run in this process (small jobs, debugging)")
