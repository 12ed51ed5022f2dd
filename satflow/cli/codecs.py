"""Sub-commands `satflow codecs`, `satflow encode` and `satflow decode`.

An `.sfc` file is one or more containers back to back, one per time step; each container's
`attrs` record where its block came from (store, fingerprint, time, features, lat/lon ranges), so
`decode` can restore coordinates when the store is still there.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

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


def parse_range(text: str | None, size: int, what: str) -> slice:
    """`"3"` -> 3:4, `"2:5"` -> 2:5, None -> everything; checked against the dimension size."""
    if text is None:
        return slice(0, size)
    try:
        parts = [int(p) if p else None for p in text.split(":")]
    except ValueError:
        raise ValueError(f"--{what} {text!r}: expected an index I or a range A:B") from None
    if len(parts) == 1:
        start, stop = parts[0], parts[0] + 1
    elif len(parts) == 2:
        start, stop = parts[0] or 0, size if parts[1] is None else parts[1]
    else:
        raise ValueError(f"--{what} {text!r}: expected an index I or a range A:B")
    if not 0 <= start < stop <= size:
        raise ValueError(f"--{what} {text!r} is outside 0..{size} (the store's {what} dimension)")
    return slice(start, stop)


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


def _select(ds, args) -> tuple[dict[str, slice], list[str]]:
    selection = {
        "time": parse_range(args.time, ds.sizes["time"], "time"),
        "lat": parse_range(args.lat, ds.sizes["lat"], "lat"),
        "lon": parse_range(args.lon, ds.sizes["lon"], "lon"),
    }
    names = [str(f) for f in ds["feature"].values]
    features = args.feature or names
    unknown = [f for f in features if f not in names]
    if unknown:
        raise ValueError(f"{args.store}: no feature {', '.join(unknown)}; the store has {', '.join(names)}")
    return selection, features


def run_encode(args, config: SatflowConfig) -> int:
    from satflow.codecs.registry import get_codec
    from satflow.metrics import ErrorSums, merge_all
    from satflow.store import fingerprint, open_store

    name = args.codec or config.codec.name
    params = dict(config.codec.params) if name == config.codec.name else {}  # config params belong to its codec
    params.update(parse_params(args.param))
    codec = get_codec(name, **params)
    ds = open_store(args.store)
    selection, features = _select(ds, args)
    sub = ds[["X", "M"]].isel(selection).sel(feature=features)
    x, m = sub["X"].values, sub["M"].values
    base_attrs = {
        "store": str(Path(args.store).resolve()), "store_fingerprint": fingerprint(args.store), "features": features,
        "lat_index": [selection["lat"].start, selection["lat"].stop],
        "lon_index": [selection["lon"].start, selection["lon"].stop],
    }
    times = [str(t) for t in np.asarray(sub["time"].values).astype("datetime64[s]")]
    start = time.perf_counter()
    containers = [
        codec.encode(x[i], m[i], attrs={**base_attrs, "time": times[i], "time_index": selection["time"].start + i})
        for i in range(x.shape[0])
    ]
    seconds = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(b"".join(containers))
    n_bytes = sum(map(len, containers))
    print(f"{codec.describe()}: {len(containers)} block(s) {x.shape[1:]} -> {args.out} "
          f"({n_bytes} bytes, encoded at {x.nbytes / 1e6 / max(seconds, 1e-9):.3g} MB/s)")
    parts = []
    for i, data in enumerate(containers):
        x_hat = x[i] if args.no_verify else codec.decode(data)[0]
        parts.append(ErrorSums.from_block(x[i], x_hat, m[i], n_bytes=len(data)))
    report = merge_all(parts).finalize(features)
    print(f"bits/value {report['bits_per_value']:.3f} (valid cells: {report['bits_per_valid_value']:.3f}), "
          f"ratio vs float32 {report['compression_ratio']:.2f}")
    if not args.no_verify:
        for name, rmse, max_error in zip(features, report["per_feature"]["rmse"], report["per_feature"]["max_abs_error"]):
            print(f"  {name}: rmse {rmse:.4g}, max abs error {max_error:.4g}")
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
    parser.set_defaults(handler=run_decode)


def run_decode(args, config: SatflowConfig) -> int:
    from satflow.codecs.container import split_containers, unpack_container
    from satflow.codecs.registry import codec_from_container

    if args.file.is_dir():
        return _decode_compressed_store(args)
    if args.out.suffix not in (".npz", ".nc"):
        raise ValueError(f"--out {args.out}: the extension must be .npz or .nc")
    if not args.file.exists():
        raise FileNotFoundError(f"{args.file}: no such container file")
    containers = split_containers(args.file.read_bytes())
    context = {"checkpoint": args.checkpoint} if args.checkpoint else {}
    decoded = [codec_from_container(data, **context).decode(data) for data in containers]
    shapes = {x.shape for x, _ in decoded}
    if len(shapes) != 1:
        raise ValueError(f"{args.file}: blocks have different shapes {sorted(shapes)}; cannot stack them")
    x = np.stack([d[0] for d in decoded])
    m = np.stack([d[1] for d in decoded])
    attrs = [unpack_container(data).attrs for data in containers]
    dataset = _as_dataset(x, m, attrs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix == ".npz":
        np.savez_compressed(args.out, X=x, M=m, **{k: dataset[k].values for k in ("time", "feature", "lat", "lon")})
    else:
        dataset.to_netcdf(args.out)
    print(f"decoded {len(containers)} block(s) {x.shape[1:]} from {args.file} -> {args.out}")
    return 0


def _decode_compressed_store(args) -> int:
    from satflow.eval.api import decode_compressed

    if args.out.suffix != ".zarr":
        raise ValueError(f"--out {args.out}: a compressed store decodes into a store; name it REC.zarr")
    out = decode_compressed(args.file, args.out, checkpoint=args.checkpoint, overwrite=args.overwrite)
    print(f"decoded {args.file} -> {out}")
    return 0


def _as_dataset(x: np.ndarray, m: np.ndarray, attrs: list[dict]):
    """X/M with coordinates from the recorded attrs and, when reachable and unchanged, the source store."""
    import xarray as xr

    first = attrs[0] if attrs else {}
    n_time, n_feature, n_lat, n_lon = x.shape
    coords: dict[str, Any] = {
        "time": np.array([a.get("time", "NaT") for a in attrs], dtype="datetime64[ns]") if first.get("time")
        else np.arange(n_time),
        "feature": first.get("features", [str(i) for i in range(n_feature)]),
        "lat": np.arange(n_lat),
        "lon": np.arange(n_lon),
    }
    coords.update(_store_latlon(first))
    return xr.Dataset(
        {"X": (("time", "feature", "lat", "lon"), x), "M": (("time", "feature", "lat", "lon"), m)},
        coords=coords,
        attrs={"source_store": first.get("store", ""), "source_fingerprint": first.get("store_fingerprint", "")},
    )


def _store_latlon(attrs: dict) -> dict[str, np.ndarray]:
    from satflow.store import StoreError, fingerprint, open_store

    path = attrs.get("store")
    if not path or not Path(path).exists():
        return {}
    try:
        if fingerprint(path) != attrs.get("store_fingerprint"):
            return {}
        ds = open_store(path)
    except StoreError:
        return {}
    lat0, lat1 = attrs["lat_index"]
    lon0, lon1 = attrs["lon_index"]
    return {"lat": ds["lat"].values[lat0:lat1], "lon": ds["lon"].values[lon0:lon1]}
