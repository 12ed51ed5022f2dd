"""The stores an evaluation writes per codec.

`compressed.zarr` (format 2): an ordinary Zarr v3 group, so `xr.open_zarr(DIR/<codec>/compressed.zarr)`
is the reconstruction, decoded lazily by any process with satflow installed:

- cube mode: `X` (time, feature, lat, lon) float32 through the codec's Zarr serializer
  (`satflow.codecs.zarr`, `satflow.<codec>`, no compressor on top), one chunk = one eval block
  (1, feature, H, W) = exactly its satflow container (an edge chunk's container holds only its
  in-bounds cells); `M` uint8 the same shape and chunks, lossless (blosc zstd, bit-shuffled);
  coordinates `time` (CF numbers and units as in the input), `feature`, `lat`, `lon`; `units`
  (feature) and `source_file` (time); the input store's attributes.
- index mode (sampled patches that need not tile the grid): `X` and `M` (patch, feature, y, x),
  one patch per chunk, and the patch selectors as coordinates: `t` (the input's time index),
  `time`, `y0`, `x0` (patch) and `lat` (patch, y), `lon` (patch, x).

The tasks write each block's container bytes as its chunk through zarr's store API (never
encoding twice), after its `M` chunk: zarr writes a chunk atomically, so an `X` chunk marks a
finished block and a re-run resumes from there. The chunk files are the true compressed size.
Decoding the store alone (`satflow decode ... --out REC.zarr`) rebuilds the reconstruction bit for
bit. Format 1 (before issue 19: a `containers/` folder of container files) is refused with how to
redo it.

`reconstruction.zarr` (only with `eval.reconstruction`): a satflow store (the input's variables,
coordinates, statistics and provenance) over the evaluated time steps, chunked by the block grid.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import zarr

from satflow.codecs.spec import CodecSpec
from satflow.eval.plan import Block, EvalFacts, EvalPlan, grid_blocks
from satflow.stats import Moments
from satflow.store import STEP_NAMES, StoreLayout, consolidate, create_template, finalize, open_group

FORMAT = 2  # the `satflow_compressed` attribute; 1 = containers/ folder (before issue 19)
LEGACY_CONTAINERS = "containers"
CUBE_DIMS = ("time", "feature", "lat", "lon")
PATCH_DIMS = ("patch", "feature", "y", "x")
DROPPED_ATTRS = ("satflow_fingerprint",)  # describes the input's values, not these


class EvalStoreError(ValueError):
    """An output folder that does not belong to this evaluation, or a compressed store that is incomplete."""


def chunk_coords(mode: str, t0: int, chunk_yx: tuple[int, int], block: Block, position: int) -> tuple[int, ...]:
    """The chunk of X holding `block` (its `position` among the plan's blocks): cube mode by the grid,
    index mode one patch per chunk."""
    if mode == "index":
        return (position, 0, 0, 0)
    return (block.t - t0, 0, block.y0 // chunk_yx[0], block.x0 // chunk_yx[1])


def mask_compressor():
    """Masks are 0/1 bytes: bit-shuffled they are 1 bit a cell before zstd, and a whole chunk as one
    blosc block lets zstd see the features' repeated masks. Measured on AMSU-like 0.5-degree masks
    (2 steps of 15 x 360 x 720 in 256 x 256 chunks): 4.0 kB and 0.020 s CPU a step, against 11.3 kB
    at blosc's default block size (level 5) and 3.5 kB for 0.044 s at level 9."""
    from zarr.codecs import BloscCodec, BloscShuffle

    return BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.bitshuffle, blocksize=2**20)


def create_compressed_store(path: str | Path, plan: EvalPlan, spec: CodecSpec, facts: EvalFacts) -> None:
    """The group: X (through the codec's serializer) and M without any chunk, coordinates, attributes.

    Written with zarr alone (`satflow.store.template.CFArrayWriter`): the metadata and coordinates
    are what xarray's `to_zarr(compute=False)` wrote for the same Dataset (compared in
    tests/eval/test_eval_compressed_template.py), without importing xarray, pandas and dask.array,
    which took 1.0 s of every eval's start (2.1-2.4 s in a cold process) for a few ms of metadata.
    """
    from satflow.codecs.zarr import zarr_codec
    from satflow.store.template import CFArrayWriter

    n_features = len(plan.features)
    if plan.mode == "index":
        coordinates, dims, block = _patch_coordinates(plan, facts), PATCH_DIMS, plan.block_shape
    else:
        coordinates, dims, block = _cube_coordinates(plan, facts), CUBE_DIMS, plan.reconstruction_chunks
    sizes = {dim: size for dim_names, values, _ in coordinates.values() for dim, size in zip(dim_names, np.shape(values))}
    grid = dict(shape=tuple(sizes.get(dim, n_features) for dim in dims), chunks=(1, n_features, *block),
                data_variable=True)
    group = zarr.open_group(str(path), mode="w", zarr_format=3, attributes=_compressed_store_attrs(plan, spec, facts))
    writer = CFArrayWriter(group, {name: tuple(d) for name, (d, _, _) in coordinates.items() if (name,) != tuple(d)})
    for name, (dim_names, values, attrs) in coordinates.items():
        writer.array(name, dim_names, values, attrs=attrs)
    writer.array("X", dims, dtype=np.float32, attrs={"long_name": f"reconstruction by {spec}; NaN where invalid"},
                 serializer=zarr_codec(spec), compressors=None, **grid)
    writer.array("M", dims, dtype=np.uint8, compressors=[mask_compressor()], **grid,
                 attrs={"long_name": "validity mask", "flag_values": [0, 1], "flag_meanings": "invalid valid"})
    writer.array("units", ("feature",), np.asarray(facts.units or ("",) * n_features, dtype=object),
                 data_variable=True)
    if plan.mode != "index":
        t0, t1 = plan.time_range
        writer.array("source_file", ("time",), np.asarray(facts.source_files[t0:t1] or ("",) * (t1 - t0), dtype=object),
                     data_variable=True)
    consolidate(path)  # xr.open_zarr then reads one document and never lists the chunk files


def _compressed_store_attrs(plan: EvalPlan, spec: CodecSpec, facts: EvalFacts) -> dict:
    """The input store's attributes and what a decoder and a re-run need to know."""
    t0, t1 = plan.time_range
    units = list(facts.units or ("",) * len(plan.features))
    return {**{k: v for k, v in facts.attrs.items() if k not in DROPPED_ATTRS}, **{
        "satflow_compressed": FORMAT, "codec": str(spec), "checkpoint": spec.checkpoint, "source_store": plan.store,
        "source_fingerprint": plan.fingerprint, "time_range": [t0, t1], "mode": plan.mode,
        "block_shape": list(plan.block_shape), "reconstruction_chunks": list(plan.reconstruction_chunks),
        "batch_size": plan.batch_size, "source_files": list(facts.source_files[t0:t1]),
        "features": list(plan.features), "units": units}}


Coordinates = dict  # {name: (dims, values, attrs)}, in the order xarray's Dataset held them


def _time_coordinate(numbers: np.ndarray, facts: EvalFacts, dims: tuple[str, ...]) -> tuple:
    """CF time numbers with the input's units and calendar: xarray decodes them on opening."""
    return dims, np.asarray(numbers), {**facts.time_attrs, "standard_name": "time"}


def _cube_coordinates(plan: EvalPlan, facts: EvalFacts) -> Coordinates:
    t0, t1 = plan.time_range
    return {
        "time": _time_coordinate(facts.time_numbers[t0:t1], facts, ("time",)),
        "feature": (("feature",), np.asarray(plan.features, dtype=object), {}),
        "lat": (("lat",), np.asarray(facts.lat, np.float64), LAT_ATTRS),
        "lon": (("lon",), np.asarray(facts.lon, np.float64), LON_ATTRS),
    }


def _patch_coordinates(plan: EvalPlan, facts: EvalFacts) -> Coordinates:
    shapes = {b.shape for b in plan.blocks}
    if len(shapes) != 1:
        raise EvalStoreError(f"index {plan.store}: sampled patches have {len(shapes)} shapes ({sorted(shapes)}); "
                             "a compressed store of patches needs one patch shape: index with one patch size")
    lat, lon = np.asarray(facts.lat, np.float64), np.asarray(facts.lon, np.float64)
    ts = np.array([b.t for b in plan.blocks], np.int64)
    return {
        "t": (("patch",), ts, {"long_name": "time index of the patch in the source store"}),
        "time": _time_coordinate(np.asarray(facts.time_numbers)[ts], facts, ("patch",)),
        "y0": (("patch",), np.array([b.y0 for b in plan.blocks], np.int64), {"long_name": "first lat index"}),
        "x0": (("patch",), np.array([b.x0 for b in plan.blocks], np.int64), {"long_name": "first lon index"}),
        "feature": (("feature",), np.asarray(plan.features, dtype=object), {}),
        "lat": (("patch", "y"), np.stack([lat[b.y0:b.y1] for b in plan.blocks]), LAT_ATTRS),
        "lon": (("patch", "x"), np.stack([lon[b.x0:b.x1] for b in plan.blocks]), LON_ATTRS),
    }


LAT_ATTRS = {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude"}
LON_ATTRS = {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"}


def _legacy_error(path: str | Path) -> EvalStoreError:
    return EvalStoreError(
        f"{path}: an evaluation written by an older satflow (block containers under {LEGACY_CONTAINERS}/, "
        "not a Zarr array); rerun the same `satflow eval` with --overwrite to rewrite it as a compressed Zarr store")


def _compressed_attrs(path: str | Path) -> dict:
    if not (Path(path) / "zarr.json").exists():
        raise EvalStoreError(f"{path}: no compressed store here (written by `satflow eval`)")
    attrs = dict(zarr.open_group(str(path), mode="r", zarr_format=3).attrs)
    if not attrs.get("satflow_compressed"):
        raise EvalStoreError(f"{path}: a Zarr group, but not a compressed store written by `satflow eval`")
    if attrs["satflow_compressed"] != FORMAT:
        raise _legacy_error(path)
    return attrs


def check_compressed_store(path: str | Path, plan: EvalPlan, spec: str) -> None:
    """A re-run may only resume a store written by the same codec over the same blocks of the same data."""
    attrs = _compressed_attrs(path)
    expected = {"codec": spec, "source_fingerprint": plan.fingerprint, "time_range": list(plan.time_range),
                "mode": plan.mode, "block_shape": list(plan.block_shape)}
    changed = [key for key, value in expected.items() if attrs.get(key) != value]
    if changed:
        raise EvalStoreError(
            f"{path}: holds an earlier evaluation with other settings ({', '.join(changed)}: "
            f"{', '.join(f'{attrs.get(k)!r} there, {expected[k]!r} now' for k in changed)}); "
            "use --overwrite to start again or another --out")


def read_compressed_store(path: str | Path) -> tuple[dict, list[Block], StoreLayout]:
    """attrs, blocks (in chunk order: the position of a patch is its chunk) and the layout of the
    reconstruction it decodes into."""
    attrs = _compressed_attrs(path)
    group = zarr.open_group(str(path), mode="r", zarr_format=3)
    t0, t1 = (int(t) for t in attrs["time_range"])
    height, width = (int(n) for n in attrs["block_shape"])
    if attrs["mode"] == "index":
        blocks = [Block(int(t), int(y0), int(y0) + height, int(x0), int(x0) + width)
                  for t, y0, x0 in zip(group["t"][:], group["y0"][:], group["x0"][:])]
    else:
        blocks = grid_blocks((t0, t1), tuple(group["X"].shape[2:]), (height, width))
    source = open_group(attrs["source_store"]) if attrs["mode"] == "index" and Path(attrs["source_store"]).exists() \
        else None
    chunks = attrs["reconstruction_chunks"]
    layout = StoreLayout(
        times=_decode_times(group["time"]) if attrs["mode"] != "index" else _source_times(attrs, source, path),
        features=tuple(attrs["features"]),
        lat=np.asarray(group["lat"][:]) if attrs["mode"] != "index" else _source_axis(source, "lat", path),
        lon=np.asarray(group["lon"][:]) if attrs["mode"] != "index" else _source_axis(source, "lon", path),
        chunks={"time": 1, "feature": -1, "lat": int(chunks[0]), "lon": int(chunks[1])},
        units=tuple(attrs["units"]),
    )
    return attrs, blocks, layout


def _source_times(attrs: dict, source, path) -> np.ndarray:
    """A patch store's reconstruction is a cube over the source's grid and steps: those come from it."""
    t0, t1 = (int(t) for t in attrs["time_range"])
    return _decode_times(_source_array(source, "time", path))[t0:t1]


def _source_axis(source, name: str, path) -> np.ndarray:
    return np.asarray(_source_array(source, name, path)[:])


def _source_array(source, name: str, path):
    if source is None:
        raise EvalStoreError(f"{path}: a store of sampled patches rebuilds into the source store's grid, "
                             "but that store is not at its recorded path (source_store); decode it where it is, "
                             "or read the patches with xr.open_zarr")
    return source[name]


def _decode_times(array: zarr.Array) -> np.ndarray:
    """CF numbers to datetime64, or to cftime dates where the calendar or years need them."""
    import xarray as xr

    encoded = xr.Dataset(coords={"time": ("time", np.asarray(array[:]), dict(array.attrs))})
    return xr.decode_cf(encoded, use_cftime=None)["time"].values


def create_reconstruction(path: str | Path, layout: StoreLayout, attrs: dict) -> None:
    """An empty satflow store shaped like the evaluated part of the input."""
    create_template(path, layout, attrs)


def write_block(reconstruction: zarr.Group, t_local: int, block: Block, values: np.ndarray, mask: np.ndarray) -> None:
    """A block (or a whole field) of one step into the reconstruction store."""
    region = (t_local, slice(None), slice(block.y0, block.y1), slice(block.x0, block.x1))
    reconstruction["X"][region] = values
    reconstruction["M"][region] = mask


def finish_reconstruction(path: str | Path, moments_by_step: dict[int, Moments], source_files: list[str]) -> None:
    """Write the per-step partial statistics and provenance, flag the steps, fold the statistics."""
    group = open_group(path, mode="r+")
    n_time, n_features = group["X"].shape[:2]
    steps = [moments_by_step.get(t, Moments.empty(n_features)) for t in range(n_time)]
    for name, field in zip(STEP_NAMES, ("count", "mean", "m2", "min", "max")):
        group[name][:] = np.stack([getattr(m, field) for m in steps])
    group["source_file"][:] = np.asarray(source_files, dtype=object)
    group["ingested"][:] = 1
    finalize(path)


def write_json(path: str | Path, value) -> None:
    Path(path).write_text(json.dumps(value, indent=1, default=str, allow_nan=True) + "\n")
