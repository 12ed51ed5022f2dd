"""The planned cube as a lazy xarray Dataset (`satflow.open_archive`): one read task per run of
consecutive steps of a file, through the same tasks as the ingest."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from satflow.ingest.plan import IngestError, IngestPlan, Slot, grid_coordinates, plan_ingest
from satflow.ingest.scan import scan_ingest
from satflow.ingest.tasks import Readers, aux_infos_for, fill_block, readers_for
from satflow.sources.auxiliary import AuxSlot
from satflow.sources.base import FileInfo
from satflow.sources.options import SourceConfig
from satflow.store import DIMS, add_grid_coordinates, annotate
from satflow.version import __version__


def _file_runs(slots: Sequence[Slot]) -> list[tuple[Slot, ...]]:
    """Consecutive time steps filled by the same file: one read task each."""
    runs: list[list[Slot]] = []
    for slot in slots:
        if runs and runs[-1][-1].path == slot.path and runs[-1][-1].t + 1 == slot.t:
            runs[-1].append(slot)
        else:
            runs.append([slot])
    return [tuple(run) for run in runs]


def _read_run(run: tuple[Slot, ...], aux_slots: tuple[AuxSlot, ...], info: FileInfo,
              aux_infos: dict[str, dict[str, FileInfo]], readers: Readers) -> np.ndarray:
    block = np.empty((len(run), readers.n_features, *readers.shape_yx), dtype=np.float32)
    fill_block(block, run[0].t, run, aux_slots, {info.path: info}, aux_infos, readers)
    return block


def plan_dataset(plan: IngestPlan, source: SourceConfig):
    """The planned cube as a lazy xr.Dataset: `X`, `M`, coords, `units`, `source_file` (and with auxiliary
    products `aux_source_file`/`aux_time`; on a local domain y/x, 2-D latitude/longitude and `crs`).

    One task reads each file (through the source, exactly as the ingest does) and the result is
    chunked like the store, so `to_zarr` or any reduction streams it chunk by chunk. A file that
    fails to read gives NaN steps (the store then records "" as its source file).
    """
    import dask
    import dask.array as da
    import xarray as xr

    layout = plan.layout
    if plan.mode != "create":
        raise IngestError(f"{plan.store}: the lazy cube describes a new store; this plan {plan.mode}s an existing one")
    slots = [slot for region in plan.regions for slot in region.slots]
    aux_slots = [slot for region in plan.regions for slot in region.aux]
    readers = readers_for(plan, source)
    n_features, shape_yx = readers.n_features, readers.shape_yx
    read = dask.delayed(_read_run, pure=False)
    pieces = []
    for run in _file_runs(slots):
        run_aux = tuple(s for s in aux_slots if run[0].t <= s.t <= run[-1].t)
        pieces.append(da.from_delayed(read(run, run_aux, plan.infos[run[0].path], aux_infos_for(plan, run_aux),
                                           readers), (len(run), n_features, *shape_yx), dtype=np.float32))
    x = da.concatenate(pieces, axis=0).rechunk(layout.chunk_shape) if pieces else \
        da.empty((0, n_features, *shape_yx), dtype=np.float32, chunks=layout.chunk_shape)
    ds = xr.Dataset(
        {"X": (DIMS, x), "M": (DIMS, da.isfinite(x).astype(np.uint8)),
         "source_file": (("time",), np.array([slot.path for slot in slots], dtype=object)),
         "units": (("feature",), np.array(layout.units or ("",) * n_features, dtype=object))},
        coords={"time": ("time", layout.times), "feature": ("feature", np.array(layout.features, dtype=object)),
                "lat": ("lat", np.asarray(layout.lat, np.float64)), "lon": ("lon", np.asarray(layout.lon, np.float64))},
        attrs={"satflow_version": __version__, "Conventions": "CF-1.8"},
    )
    annotate(ds)
    add_grid_coordinates(ds, grid_coordinates(source))
    if plan.aux:
        _add_planned_aux_provenance(ds, plan)
    return ds


def _add_planned_aux_provenance(ds, plan: IngestPlan) -> None:
    """`aux_source_file` and `aux_time` as planned (a file that fails to read is still named here)."""
    n_time, names = len(plan.layout.times), [a.reader.name for a in plan.aux]
    files = np.full((n_time, len(names)), "", dtype=object)
    times = np.full((n_time, len(names)), None, dtype=object)
    for k, aux in enumerate(plan.aux):
        for slot in aux.slots:
            files[slot.t, k], times[slot.t, k] = slot.scene.path, slot.scene.time
    ds.coords["aux_product"] = ("aux_product", np.asarray(names, dtype=object))
    ds["aux_source_file"] = (("time", "aux_product"), files)
    if times.size and all(t is None or isinstance(t, np.datetime64) for t in times.flat):
        times = np.array([[np.datetime64("NaT") if t is None else t for t in row] for row in times], "datetime64[ns]")
    ds["aux_time"] = (("time", "aux_product"), times)


def describe_cube(ds) -> str:
    """A few lines on the lazy cube: variables, shape, size, chunks and tasks (nothing is computed)."""
    x = ds["X"].data
    sizes = ", ".join(f"{dim}: {n}" for dim, n in ds["X"].sizes.items())
    chunk = ", ".join(f"{dim}: {n}" for dim, n in zip(DIMS, x.chunksize))
    return "\n".join([
        f"lazy cube (satflow.open_archive): X float32 ({sizes}) {x.nbytes / 2**30:.2f} GiB, "
        f"M uint8, source_file, units" + (", aux_source_file, aux_time" if "aux_time" in ds else ""),
        f"  dask      {x.npartitions} chunks of ({chunk}), {len(x.dask)} tasks; computed on demand",
    ])


def open_archive(inputs: str | Sequence[str], config=None, *, client=None):
    """NetCDF files, directories or globs -> the cube `satflow ingest` would write, lazily (writes nothing).

    `config` is a SatflowConfig, its `ingest` section, or None for the defaults. Scanning (metadata
    only) runs on `client` when given; the values are read when computed, one task per file.
    """
    from satflow.config import SatflowConfig, load_config

    if config is None:
        config = load_config().ingest
    elif isinstance(config, SatflowConfig):
        config = config.ingest
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    plan = plan_ingest(scan_ingest([str(i) for i in inputs], None, config, client=client), config)
    return plan_dataset(plan, config.source)
