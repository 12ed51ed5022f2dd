"""Encode a selection of a store into an `.sfc` file, decode an `.sfc` file into NPZ or NetCDF.

An `.sfc` file is one or more containers back to back, one per time step; each container's
`attrs` record where its block came from (store, fingerprint, time, features, lat/lon ranges), so
`decode_containers` restores coordinates when the store is still there and unchanged. These are
the functions behind `satflow encode` and `satflow decode FILE.sfc`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from satflow.selection import parse_index_range


@dataclass(frozen=True)
class StoreSelection:
    """Which part of a store to encode: index ranges (None = all; time default the first step) and features."""

    time: str | None = "0"
    lat: str | None = None
    lon: str | None = None
    features: tuple[str, ...] | None = None  # None = every feature of the store


@dataclass
class EncodeReport:
    codec: str  # the codec's describe()
    out: Path
    block_shape: tuple[int, ...]  # (feature, lat, lon)
    sizes: list[int]  # bytes per container
    megabytes_per_second: float
    errors: dict  # ErrorSums.finalize(features)
    features: list[str]
    verified: bool

    def describe(self) -> str:
        """What `satflow encode` prints: the file, bytes and speed, bits per value, per-feature errors."""
        report = self.errors
        lines = [f"{self.codec}: {len(self.sizes)} block(s) {self.block_shape} -> {self.out} "
                 f"({sum(self.sizes)} bytes, encoded at {self.megabytes_per_second:.3g} MB/s)",
                 f"bits/value {report['bits_per_value']:.3f} (valid cells: {report['bits_per_valid_value']:.3f}), "
                 f"ratio vs float32 {report['compression_ratio']:.2f}"]
        if self.verified:
            per_feature = report["per_feature"]
            lines += [f"  {name}: rmse {rmse:.4g}, max abs error {max_error:.4g}" for name, rmse, max_error
                      in zip(self.features, per_feature["rmse"], per_feature["max_abs_error"])]
        return "\n".join(lines)


def select_region(sizes: dict[str, int], names: list[str], selection: StoreSelection, store: str
                  ) -> tuple[dict[str, slice], list[str]]:
    """Index slices per dimension and the features, checked against the store's sizes and features."""
    ranges = {"time": ("--time", "time steps"), "lat": ("--lat", "lat cells"), "lon": ("--lon", "lon cells")}
    region = {dim: slice(*parse_index_range(getattr(selection, dim), sizes[dim], name=name, unit=unit))
              for dim, (name, unit) in ranges.items()}
    features = list(selection.features or names)
    unknown = [f for f in features if f not in names]
    if unknown:
        raise ValueError(f"{store}: no feature {', '.join(unknown)}; the store has {', '.join(names)}")
    return region, features


def encode_store(store: str | Path, out: str | Path, codec_name: str, params: dict[str, Any],
                 selection: StoreSelection = StoreSelection(), *, verify: bool = True) -> EncodeReport:
    """Encode `selection` of `store` with one codec, one container per time step, into the file `out`.

    With `verify`, every container is decoded again to measure the error the codec made.
    """
    from satflow.codecs.registry import get_codec
    from satflow.metrics import ErrorSums, merge_all
    from satflow.store import fingerprint, open_store

    codec = get_codec(codec_name, **params)  # a bad name or parameter fails before any read
    ds = open_store(store)
    region, features = select_region(dict(ds.sizes), [str(f) for f in ds["feature"].values], selection, str(store))
    sub = ds[["X", "M"]].isel(region).sel(feature=features)
    x, m = sub["X"].values, sub["M"].values
    base_attrs = {
        "store": str(Path(store).resolve()), "store_fingerprint": fingerprint(store), "features": features,
        "lat_index": [region["lat"].start, region["lat"].stop],
        "lon_index": [region["lon"].start, region["lon"].stop],
    }
    times = [str(t) for t in np.asarray(sub["time"].values).astype("datetime64[s]")]
    start = time.perf_counter()
    containers = [
        codec.encode(x[i], m[i], attrs={**base_attrs, "time": times[i], "time_index": region["time"].start + i})
        for i in range(x.shape[0])
    ]
    seconds = time.perf_counter() - start
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"".join(containers))
    parts = [ErrorSums.from_block(x[i], codec.decode(data)[0] if verify else x[i], m[i], n_bytes=len(data))
             for i, data in enumerate(containers)]
    return EncodeReport(codec.describe(), out, x.shape[1:], [len(c) for c in containers],
                        x.nbytes / 1e6 / max(seconds, 1e-9), merge_all(parts).finalize(features), features, verify)


@dataclass
class DecodeReport:
    source: Path
    out: Path
    blocks: int
    block_shape: tuple[int, ...]

    def describe(self) -> str:
        return f"decoded {self.blocks} block(s) {self.block_shape} from {self.source} -> {self.out}"


def decode_containers(file: str | Path, out: str | Path, *, checkpoint: str | None = None) -> DecodeReport:
    """Decode every container of an `.sfc` file into `out` (.npz or .nc): X, M and coordinates."""
    from satflow.codecs.container import split_containers, unpack_container
    from satflow.codecs.registry import codec_from_container

    file, out = Path(file), Path(out)
    if out.suffix not in (".npz", ".nc"):
        raise ValueError(f"--out {out}: the extension must be .npz or .nc")
    if not file.exists():
        raise FileNotFoundError(f"{file}: no such container file")
    containers = split_containers(file.read_bytes())
    context = {"checkpoint": checkpoint} if checkpoint else {}
    decoded = [codec_from_container(data, **context).decode(data) for data in containers]
    shapes = {x.shape for x, _ in decoded}
    if len(shapes) != 1:
        raise ValueError(f"{file}: blocks have different shapes {sorted(shapes)}; cannot stack them")
    x = np.stack([d[0] for d in decoded])
    m = np.stack([d[1] for d in decoded])
    dataset = decoded_dataset(x, m, [unpack_container(data).attrs for data in containers])
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npz":
        np.savez_compressed(out, X=x, M=m, **{k: dataset[k].values for k in ("time", "feature", "lat", "lon")})
    else:
        dataset.to_netcdf(out)
    return DecodeReport(file, out, len(containers), x.shape[1:])


def decoded_dataset(x: np.ndarray, m: np.ndarray, attrs: list[dict]):
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
    coords.update(source_latlon(first))
    return xr.Dataset(
        {"X": (("time", "feature", "lat", "lon"), x), "M": (("time", "feature", "lat", "lon"), m)},
        coords=coords,
        attrs={"source_store": first.get("store", ""), "source_fingerprint": first.get("store_fingerprint", "")},
    )


def source_latlon(attrs: dict) -> dict[str, np.ndarray]:
    """The block's lat/lon from its source store, if that store is at the recorded path and unchanged."""
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
