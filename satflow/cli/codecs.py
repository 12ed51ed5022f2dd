"""Sub-commands `satflow codecs`, `satflow encode` and `satflow decode`: flags onto
`satflow.codecs.api` (`encode_store`, `decode_containers`) and `satflow.eval.api.decode_compressed`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from satflow.cli.cluster_flag import add_cluster_flag
from satflow.config import SatflowConfig


def register(subparsers, common: argparse.ArgumentParser) -> None:
    _register_codecs(subparsers, common)
    _register_encode(subparsers, common)
    _register_decode(subparsers, common)


# --- helpers shared by the handlers ----------------------------------------------------------------
def parse_params(items: list[str]) -> dict[str, Any]:
    """`["tol=0.5", "keepbits=[7,8]"]` -> {"tol": 0.5, "keepbits": [7, 8]} (values parsed as YAML)."""
    params = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--param {item!r}: expected KEY=VALUE, e.g. --param tol=0.5")
        key, raw = item.split("=", 1)
        params[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
    return params


# --- satflow codecs --------------------------------------------------------------------------------
def _register_codecs(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "codecs", parents=[common], help="list the available codecs and their parameters",
        description="List every registered codec (classic, error-bounded and learned) with its parameters.",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run_codecs)


def run_codecs(args, config: SatflowConfig) -> int:
    from satflow.codecs.registry import available_codecs

    codecs = available_codecs()
    if args.json:
        print(json.dumps(codecs, indent=2, default=str))
        return 0
    for name, info in codecs.items():
        print(f"{name}: {info['description']}")
        for param, doc in info["params"].items():
            default = f" (default {doc['default']!r})" if "default" in doc else " (required)"
            print(f"    {param}{default}: {doc['doc']}")
    return 0


# --- satflow encode --------------------------------------------------------------------------------
def _register_encode(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "encode", parents=[common], help="encode time steps of a store into a container file (.sfc)",
        description="Encode X/M of a store, one container per time step, and report bytes, bits per value, "
        "compression ratio and (unless --no-verify) the reconstruction error. Codec defaults come from the "
        "config section `codec:`; --codec/--param override it.",
    )
    parser.add_argument("store", help="satflow store (Zarr v3 directory)")
    parser.add_argument("--out", required=True, type=Path, help="output .sfc file")
    parser.add_argument("--codec", help="registered codec name (default: codec.name); see `satflow codecs`")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="codec parameter, value parsed as YAML, e.g. --param tol=0.5 (repeatable)")
    parser.add_argument("--time", default="0", help="time index I or range A:B (default 0)")
    parser.add_argument("--lat", help="lat index range A:B (default all)")
    parser.add_argument("--lon", help="lon index range A:B (default all)")
    parser.add_argument("--feature", action="append", help="feature name to encode (repeatable; default all)")
    parser.add_argument("--no-verify", action="store_true", help="skip decoding to measure the error")
    parser.set_defaults(handler=run_encode)


def run_encode(args, config: SatflowConfig) -> int:
    from satflow.codecs.api import StoreSelection, encode_store

    name = args.codec or config.codec.name
    params = dict(config.codec.params) if name == config.codec.name else {}  # config params belong to its codec
    params.update(parse_params(args.param))
    selection = StoreSelection(args.time, args.lat, args.lon, tuple(args.feature) if args.feature else None)
    report = encode_store(args.store, args.out, name, params, selection, verify=not args.no_verify)
    print(report.describe())
    return 0


# --- satflow decode --------------------------------------------------------------------------------
def _register_decode(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "decode", parents=[common], help="decode a container file (.sfc) or an eval's compressed.zarr",
        description="Decode every container of an .sfc file into X (time, feature, lat, lon, NaN = invalid) and "
        "M (uint8); coordinates come from the source store when it is still at the recorded path and unchanged. "
        "Or rebuild a reconstruction store (REC.zarr) from DIR/<codec>/compressed.zarr written by `satflow eval`, "
        "bit for bit as the eval wrote it.",
    )
    parser.add_argument("file", type=Path, help=".sfc file written by `satflow encode`, or a compressed.zarr")
    parser.add_argument("--out", required=True, type=Path, help="output: .npz or .nc (for .sfc), .zarr (for compressed.zarr)")
    parser.add_argument("--checkpoint", help="model checkpoint, for containers written by a learned codec")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out store")
    add_cluster_flag(parser)  # decoding a compressed.zarr runs tasks; an .sfc file decodes in this process
    parser.set_defaults(handler=run_decode)


def run_decode(args, config: SatflowConfig) -> int:
    if args.file.is_dir():
        return _decode_compressed_store(args, config)
    from satflow.codecs.api import decode_containers

    print(decode_containers(args.file, args.out, checkpoint=args.checkpoint).describe())
    return 0


def _decode_compressed_store(args, config: SatflowConfig) -> int:
    from satflow.eval.api import decode_compressed_job

    if args.out.suffix != ".zarr":
        raise ValueError(f"--out {args.out}: a compressed store decodes into a store; name it REC.zarr")
    out = decode_compressed_job(args.file, args.out, config.cluster, choice=args.cluster,
                                checkpoint=args.checkpoint, overwrite=args.overwrite)
    print(f"decoded {args.file} -> {out}")
    return 0
