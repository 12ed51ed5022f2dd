"""`satflow from-meta`: a convml_tt meta.yaml -> a satflow config (YAML on stdout or --out)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from satflow.config import SatflowConfig


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "from-meta", parents=[common], help="translate a convml_tt meta.yaml into a satflow config",
        description="Map a convml_tt meta.yaml (source, type, time, domain, sampling, aux_products) onto satflow's "
        "config and print it as YAML; notes on what satflow does differently come first as comments. satflow "
        "reads local files: give them with --input (and --aux-input for aux products), then run "
        "`satflow ingest --config satflow.yaml --out store.zarr`.",
    )
    parser.add_argument("meta", type=Path, help="the meta.yaml")
    parser.add_argument("--input", dest="inputs", action="append", metavar="GLOB",
                        help="local files of the primary source (repeatable); default for source LES: "
                        "source_data/LES/*.nc next to meta.yaml")
    parser.add_argument("--aux-input", dest="aux_inputs", action="append", default=[], metavar="NAME=GLOB",
                        help="local files of aux product NAME (repeatable)")
    parser.add_argument("--out", type=Path, help="write the config here instead of stdout")
    parser.set_defaults(handler=run_from_meta)


def run_from_meta(args, config: SatflowConfig) -> int:
    from satflow.convml_meta import parse_aux_inputs, translate_meta_file

    translation = translate_meta_file(args.meta, inputs=args.inputs, aux_inputs=parse_aux_inputs(args.aux_inputs))
    text = translation.to_yaml(str(args.meta))
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}; next: satflow ingest --config {args.out} --out STORE.zarr", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
