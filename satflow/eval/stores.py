"""The two stores an evaluation writes per codec.

`compressed.zarr`: a Zarr v3 group holding the coordinates of the evaluated cube, the block
table (`blocks`: t, y0, y1, x0, x1 per block) and, under `containers/`, one file per block with
exactly the bytes of its satflow container: the folder's size on disk is the true compressed size
(plus the small coordinate arrays). A container file is written last and atomically (temporary
name, then rename), so its presence marks a finished block and a re-run resumes from there.
Decoding this store alone (`satflow decode DIR/<codec>/compressed.zarr --out REC.zarr`) rebuilds
the reconstruction bit for bit.

`reconstruction.zarr`: a satflow store (the input's variables, coordinates, statistics and
provenance; `xr.open_zarr` opens it) over the evaluated time steps, chunked by the eval's block
grid (one time step per chunk), so every block task writes its own chunks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import zarr

from satflow.codecs.spec import CodecSpec
from satflow.eval.plan import Block, EvalPlan
from satflow.stats import Moments
from satflow.store import STEP_NAMES, StoreLayout, consolidate, create_template, finalize, open_group

CONTAINERS = "containers"
BLOCK_COLUMNS = ("t", "y0", "y1", "x0", "x1")


class EvalStoreError(ValueError):
    """An output folder that does not belong to this evaluation, or a compressed store that is incomplete."""


def container_path(compressed: str | Path, block: Block) -> Path:
    return Path(compressed) / CONTAINERS / f"{block.key}.sfc"


def read_container(compressed: str | Path, block: Block) -> bytes | None:
    """The container of a finished block, or None if the block was never finished."""
    path = container_path(compressed, block)
    return path.read_bytes() if path.exists() else None


def write_container(compressed: str | Path, block: Block, data: bytes) -> None:
    """Atomically: a killed task leaves either no file or the whole container."""
    path = container_path(compressed, block)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def create_compressed_store(path: str | Path, plan: EvalPlan, spec: CodecSpec, layout: StoreLayout,
                            cf_time: tuple[np.ndarray, dict], source_files: list[str]) -> None:
    """The group, its coordinates and block table; containers are added by the tasks."""
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.attrs.update({
        "satflow_compressed": 1, "codec": str(spec), "checkpoint": spec.checkpoint, "source_store": plan.store,
        "source_fingerprint": plan.fingerprint, "time_range": list(plan.time_range), "mode": plan.mode,
        "block_shape": list(plan.block_shape), "reconstruction_chunks": list(plan.reconstruction_chunks),
        "batch_size": plan.batch_size, "source_files": list(source_files),
        # Names live in attributes: Zarr v3 has no stable string data type yet.
        "features": list(layout.features), "units": list(layout.units or ("",) * len(layout.features)),
        "shape": [len(layout.times), len(layout.features), len(layout.lat), len(layout.lon)],
    })
    table = np.array([[getattr(b, c) for c in BLOCK_COLUMNS] for b in plan.blocks], dtype=np.int64)
    blocks = group.create_array("blocks", data=table, chunks=table.shape, dimension_names=("block", "column"))
    blocks.attrs["columns"] = list(BLOCK_COLUMNS)
    numbers, time_attrs = cf_time
    times = group.create_array("time", data=numbers, dimension_names=("time",))
    times.attrs.update(time_attrs)
    group.create_array("lat", data=np.asarray(layout.lat, np.float64), dimension_names=("lat",))
    group.create_array("lon", data=np.asarray(layout.lon, np.float64), dimension_names=("lon",))
    (Path(path) / CONTAINERS).mkdir(exist_ok=True)
    consolidate(path)  # xr.open_zarr then reads one document and never lists the container files


def check_compressed_store(path: str | Path, plan: EvalPlan, spec: str) -> None:
    """A re-run may only resume a store written by the same codec over the same blocks of the same data."""
    attrs = dict(zarr.open_group(str(path), mode="r", zarr_format=3).attrs)
    expected = {"codec": spec, "source_fingerprint": plan.fingerprint, "time_range": list(plan.time_range),
                "mode": plan.mode, "block_shape": list(plan.block_shape)}
    changed = [key for key, value in expected.items() if attrs.get(key) != value]
    if changed:
        raise EvalStoreError(
            f"{path}: holds an earlier evaluation with other settings ({', '.join(changed)}: "
            f"{', '.join(f'{attrs.get(k)!r} there, {expected[k]!r} now' for k in changed)}); "
            "use --overwrite to start again or another --out")


def read_compressed_store(path: str | Path) -> tuple[dict, list[Block], StoreLayout]:
    """attrs, blocks and the layout of the reconstruction it decodes into."""
    if not (Path(path) / "zarr.json").exists():
        raise EvalStoreError(f"{path}: no compressed store here (written by `satflow eval`)")
    group = zarr.open_group(str(path), mode="r", zarr_format=3)
    attrs = dict(group.attrs)
    if not attrs.get("satflow_compressed"):
        raise EvalStoreError(f"{path}: a Zarr group, but not a compressed store written by `satflow eval`")
    blocks = [Block(*(int(v) for v in row)) for row in np.asarray(group["blocks"][:])]
    chunks = attrs["reconstruction_chunks"]
    layout = StoreLayout(
        times=_decode_times(group["time"]),
        features=tuple(attrs["features"]),
        lat=np.asarray(group["lat"][:]), lon=np.asarray(group["lon"][:]),
        chunks={"time": 1, "feature": -1, "lat": int(chunks[0]), "lon": int(chunks[1])},
        units=tuple(attrs["units"]),
    )
    return attrs, blocks, layout


def _decode_times(array: zarr.Array) -> np.ndarray:
    """CF numbers to datetime64, or to cftime dates where the calendar or years need them."""
    import xarray as xr

    encoded = xr.Dataset(coords={"time": ("time", np.asarray(array[:]), dict(array.attrs))})
    return xr.decode_cf(encoded, use_cftime=None)["time"].values


def create_reconstruction(path: str | Path, layout: StoreLayout, attrs: dict) -> None:
    """An empty satflow store shaped like the evaluated part of the input."""
    create_template(path, layout, attrs)


def write_block(reconstruction: zarr.Group, t_local: int, block: Block, values: np.ndarray, mask: np.ndarray) -> None:
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
