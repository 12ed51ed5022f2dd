"""Writing a store: the template, region writes from workers, finalising (statistics, fingerprint)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np
import zarr

from satflow.sources.timecodec import as_time_array, encode_times, time_encoding
from satflow.stats import Moments, merge_all
from satflow.store.layout import DIMS, STAT_NAMES, STEP_NAMES, StoreError, StoreLayout, compressor
from satflow.store.read import compute_fingerprint, open_group, step_moments
from satflow.version import __version__

if TYPE_CHECKING:
    import xarray as xr


def create_template(path: str | Path, layout: StoreLayout, attrs: dict | None = None,
                    grid_coordinates: dict | None = None, *, serializer=None) -> None:
    """Write metadata, coordinates and empty (fill-valued) data variables; no data chunk is written.

    `grid_coordinates` are extra coordinates of a projected grid, {name: (dims, values, attrs)}
    (`satflow.sources.domain.domain_coordinates` of a local domain): see `add_grid_coordinates`.
    `serializer`: X through this Zarr serializer (`satflow.codecs.zarr.zarr_codec(spec)`) with no
    compressor on top, instead of Blosc (`ingest.codec`).

    xarray writes a store of the first time step (its CF encoding of time, strings and attributes),
    which `extend_time` (the append path's too) then grows to every step. The fill-valued
    placeholders are broadcast views that zarr does not store (all chunks equal the fill value).
    This measured no faster than writing lazy dask placeholders of the full shape (0.75-1.1 s either
    way on 40 AMSU steps): xarray imports dask.array whenever it makes a Variable, so only a template
    written with zarr alone would drop that import.
    """
    n_time = len(layout.times)
    first = dataclasses.replace(layout, times=as_time_array(layout.times[:1]) if n_time else _PLACEHOLDER_TIME)
    _write_first_step(path, first, attrs, grid_coordinates, serializer, chunk_shape=layout.chunk_shape,
                      time_chunk=max(n_time, 1))
    if n_time == 0:
        _resize_time(open_group(path, mode="r+"), 0)
    else:
        extend_time(path, layout.times[1:])


_PLACEHOLDER_TIME = np.array(["1970-01-01"], "datetime64[ns]")  # the first step of a store of none


def _write_first_step(path, layout: StoreLayout, attrs, grid_coordinates, serializer, *,
                      chunk_shape: tuple[int, ...], time_chunk: int) -> None:
    """The store of `layout` (one step) with the chunks of the whole store (`chunk_shape`, `time_chunk`)."""
    shape = layout.shape
    n_feature = shape[1]
    step_chunks = (chunk_shape[0], n_feature)
    data_vars = {
        "X": (DIMS, np.broadcast_to(np.float32(np.nan), shape)),
        "M": (DIMS, np.broadcast_to(np.uint8(0), shape)),
        "ingested": (("time",), np.zeros(1, np.uint8)),
        "source_file": (("time",), np.full(1, "", dtype=object)),
        "units": (("feature",), np.asarray(layout.units or ("",) * n_feature, dtype=object)),
    }
    for name in STEP_NAMES:
        # NaN (their fill value) where no region wrote yet, as an unwritten chunk reads; counts 0.
        data_vars[name] = (("time", "feature"), np.zeros((1, n_feature), np.int64) if name == "step_count"
                           else np.full((1, n_feature), np.nan))
    for name in STAT_NAMES:
        data_vars[name] = (("feature",), np.zeros(n_feature, np.int64 if name == "count" else np.float64))
    import xarray as xr  # here: region tasks write with zarr alone (xarray and pandas: 0.45-0.6 s to import)

    ds = xr.Dataset(
        data_vars,
        coords={
            "time": ("time", layout.times),
            "feature": ("feature", np.asarray(layout.features, dtype=object)),
            "lat": ("lat", np.asarray(layout.lat, dtype=np.float64)),
            "lon": ("lon", np.asarray(layout.lon, dtype=np.float64)),
        },
        attrs={"satflow_version": __version__, "Conventions": "CF-1.8", **(attrs or {})},
    )
    annotate(ds)
    add_grid_coordinates(ds, grid_coordinates)
    add_aux_provenance(ds, layout)
    encoding = {
        "X": {"chunks": chunk_shape, "compressors": [compressor(layout.compression_level)]} if serializer is None
        else {"chunks": chunk_shape, "serializer": serializer, "compressors": None},
        # No _FillValue on the mask: xarray would otherwise decode M == 0 to NaN.
        "M": {"chunks": chunk_shape, "compressors": [compressor(layout.compression_level)], "_FillValue": None},
        # Every time-dimensioned array is chunked like X along time: concurrent region tasks
        # then never read-modify-write the same chunk (one shared chunk lost updates).
        "ingested": {"chunks": (chunk_shape[0],), "_FillValue": None},
        "source_file": {"chunks": (chunk_shape[0],)},
        "time": {**time_encoding(layout.times), "chunks": (time_chunk,)},
        **{name: {"chunks": step_chunks} for name in STEP_NAMES},
        "step_count": {"_FillValue": None, "chunks": step_chunks},
        "count": {"_FillValue": None},
    }
    if layout.aux_products:
        encoding["aux_source_file"] = {"chunks": (chunk_shape[0], len(layout.aux_products))}
        encoding["aux_time"] = {"chunks": (chunk_shape[0], len(layout.aux_products))}
    ds.to_zarr(str(path), mode="w", zarr_format=3, encoding=encoding, consolidated=False)


def extend_time(path: str | Path, new_times: np.ndarray) -> None:
    """Grow every time-dimensioned array by `new_times` (their cells read as fill values) and write
    the new time coordinates, encoded with the store's own units and calendar."""
    if not len(new_times):
        return
    group = open_group(path, mode="r+")
    n_old = group["time"].shape[0]
    _resize_time(group, n_old + len(new_times))
    time_array = group["time"]
    units, calendar = time_array.attrs["units"], time_array.attrs.get("calendar", "proleptic_gregorian")
    time_array[n_old:] = np.asarray(encode_times(as_time_array(new_times), units, calendar), dtype=time_array.dtype)


def _resize_time(group: zarr.Group, n_time: int) -> None:
    for _, array in group.arrays():
        dims = array.metadata.dimension_names or ()
        if dims and dims[0] == "time":
            array.resize((n_time, *array.shape[1:]))


def add_grid_coordinates(ds: xr.Dataset, coordinates: dict | None) -> None:
    """A projected grid's extra coordinates (y/x in metres, 2-D latitude/longitude, the CF grid mapping
    `crs`), which X and M then name as their `grid_mapping`. The store and `satflow.open_archive` share it."""
    if not coordinates:
        return
    from satflow.sources.domain import GRID_MAPPING_NAME

    for name, (dims, values, attrs) in coordinates.items():
        ds.coords[name] = (dims, values, attrs)
    if GRID_MAPPING_NAME in coordinates:
        ds["lat"].attrs.update(long_name="latitude along the domain's central column (x = 0)")
        ds["lon"].attrs.update(long_name="longitude along the domain's central row (y = 0)")
        for name in ("X", "M"):
            ds[name].attrs["grid_mapping"] = GRID_MAPPING_NAME


def add_aux_provenance(ds: xr.Dataset, layout: StoreLayout) -> None:
    """Per time step and auxiliary product: the file (`aux_source_file`, "" = none mapped) and the time
    (`aux_time`, NaT = none) of the auxiliary scene that filled the step's `<product>/...` features."""
    if not layout.aux_products:
        return
    shape = (len(layout.times), len(layout.aux_products))
    ds.coords["aux_product"] = ("aux_product", np.asarray(layout.aux_products, dtype=object))
    ds["aux_source_file"] = (("time", "aux_product"), np.full(shape, "", dtype=object),
                             {"long_name": "auxiliary file mapped onto this time step (\"\" = none)"})
    encoding = time_encoding(layout.times)
    # Encoded numbers with CF units, so xarray decodes them like `time` (NaN -> NaT) in any calendar.
    ds["aux_time"] = (("time", "aux_product"), np.full(shape, np.nan),
                      {"long_name": "time of the auxiliary scene mapped onto this time step (NaT = none)",
                       "units": encoding["units"], "calendar": encoding["calendar"]})


def annotate(ds: xr.Dataset) -> None:
    """CF attributes of the store's coordinates and variables (the store and `satflow.open_archive` share them)."""
    ds["lat"].attrs.update(units="degrees_north", standard_name="latitude", long_name="latitude", axis="Y")
    ds["lon"].attrs.update(units="degrees_east", standard_name="longitude", long_name="longitude", axis="X")
    ds["time"].attrs.update(standard_name="time", axis="T")
    ds["X"].attrs.update(long_name="feature values on the target grid; NaN where invalid")
    ds["M"].attrs.update(long_name="validity mask", flag_values=[0, 1], flag_meanings="invalid valid")
    ds["source_file"].attrs.update(long_name="source file that filled this time step")
    if "ingested" in ds:
        ds["ingested"].attrs.update(long_name="1 once this time step has been fully written")


@dataclass(frozen=True)
class StepRecord:
    """What a region write recorded for its steps t0..: the per-step partial statistics (STEP_NAMES
    order, each (step, feature)) and source files. `finalize` folds these without reading them back."""

    t0: int
    partials: tuple[np.ndarray, ...]
    source_files: tuple[str, ...]

    def moments(self) -> Moments:
        steps = [Moments(*(p[i] for p in self.partials)) for i in range(len(self.source_files))]
        return merge_all(steps, self.partials[0].shape[1])


def write_steps(
    group: zarr.Group,
    t0: int,
    values: np.ndarray,
    source_files: Sequence[str],
    aux_sources: Sequence[Sequence[tuple[str, object]]] = (),
) -> StepRecord:
    """Write time steps t0.. of X, M and their per-step partial statistics; mark them ingested.

    `values` is float32 (time, feature, lat, lon) with NaN as the only invalid marker. `aux_sources`
    gives, per step, one (file, time) per auxiliary product ("", None where none was mapped). The
    `ingested` flag is written last, so a task killed midway leaves its steps marked unfinished.
    """
    values = np.asarray(values, dtype=np.float32)
    t1 = t0 + values.shape[0]
    group["X"][t0:t1] = values
    group["M"][t0:t1] = np.isfinite(values).view(np.uint8)  # bool is one byte of 0/1: no second copy
    steps = [Moments.from_block(values[i], feature_axis=0) for i in range(values.shape[0])]
    partials = tuple(np.stack([getattr(m, field) for m in steps]) for field in ("count", "mean", "m2", "min", "max"))
    for name, partial in zip(STEP_NAMES, partials):
        group[name][t0:t1] = partial
    group["source_file"][t0:t1] = np.asarray(list(source_files), dtype=object)
    if "aux_time" in group:
        _write_aux_provenance(group, t0, t1, aux_sources)
    group["ingested"][t0:t1] = 1
    return StepRecord(t0, partials, tuple(source_files))


def write_region(group: zarr.Group, t0: int, values: np.ndarray, source_files: Sequence[str],
                 aux_sources: Sequence[Sequence[tuple[str, object]]] = ()) -> Moments:
    """`write_steps`, returning the merged statistics of the steps it wrote."""
    return write_steps(group, t0, values, source_files, aux_sources).moments()


def _write_aux_provenance(group: zarr.Group, t0: int, t1: int, aux_sources) -> None:
    n_products = group["aux_time"].shape[1]
    aux_sources = list(aux_sources) or [[("", None)] * n_products] * (t1 - t0)
    if len(aux_sources) != t1 - t0 or any(len(step) != n_products for step in aux_sources):
        raise StoreError(f"auxiliary provenance for steps {t0}..{t1 - 1} must give {n_products} (file, time) "
                         "pair(s) per step")
    attrs = group["aux_time"].attrs
    encoded = np.full((t1 - t0, n_products), np.nan)
    for i, step in enumerate(aux_sources):
        for k, (_, time) in enumerate(step):
            if time is not None:
                encoded[i, k] = encode_times(np.array([time]), attrs["units"], attrs["calendar"])[0]
    group["aux_source_file"][t0:t1] = np.asarray([[path for path, _ in step] for step in aux_sources], dtype=object)
    group["aux_time"][t0:t1] = encoded


def finalize(path: str | Path, records: Sequence[StepRecord] = ()) -> Moments:
    """Fold per-step partials of ingested steps into the per-feature statistics and fingerprint.

    `records` are what this run's region tasks wrote: when they cover every time step (a fresh
    store), nothing is read back; otherwise (resume, append) the partials are read from the store.
    """
    group = open_group(path, mode="r+")
    n_time, n_features = group["X"].shape[:2]
    known = _recorded_arrays(records, n_time)
    if known is None:
        done = np.flatnonzero(np.asarray(group["ingested"][:]) == 1)
        total = merge_all(step_moments(group, done), n_features)
    else:  # every step was written (and marked) by this run
        arrays = [known[name] for name in STEP_NAMES]
        total = merge_all([Moments(*(a[i] for a in arrays)) for i in range(n_time)], n_features)
    for name, values in total.as_summary().items():
        group[name][:] = values
    group.attrs["satflow_fingerprint"] = compute_fingerprint(group, known or {})
    consolidate(path)
    return total


def _recorded_arrays(records: Sequence[StepRecord], n_time: int) -> dict[str, np.ndarray] | None:
    """The recorded step partials and source files as whole arrays; None unless they cover every step."""
    ordered = sorted(records, key=lambda r: r.t0)
    starts, ends = [r.t0 for r in ordered], [r.t0 + len(r.source_files) for r in ordered]
    if not ordered or starts[0] != 0 or ends[-1] != n_time or starts[1:] != ends[:-1]:
        return None
    arrays = {name: np.concatenate([r.partials[k] for r in ordered]) for k, name in enumerate(STEP_NAMES)}
    arrays["source_file"] = np.asarray([f for r in ordered for f in r.source_files], dtype=object)
    return arrays


def consolidate(path: str | Path) -> None:
    """Consolidate metadata so `xr.open_zarr(path)` opens the store with one read and no warning.

    Consolidated metadata is a zarr-python extension to Zarr v3 (hence the silenced warning);
    it is rewritten after every finalise, so appends never leave it stale.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        zarr.consolidate_metadata(str(path), zarr_format=3)


def write_store_from_arrays(
    path: str | Path,
    values: np.ndarray,
    *,
    times: np.ndarray,
    features: Sequence[str],
    lat: np.ndarray,
    lon: np.ndarray,
    chunks: dict[str, int] | None = None,
    attrs: dict | None = None,
    source_files: Sequence[str] | None = None,
    units: Sequence[str] = (),
) -> Path:
    """Write an in-memory (time, feature, lat, lon) array as a complete store.

    For small derived cubes and test fixtures; archives go through `satflow.ingest`.
    """
    values = np.asarray(values, dtype=np.float32)
    layout = StoreLayout(
        times=as_time_array(times),
        features=tuple(features),
        lat=np.asarray(lat),
        lon=np.asarray(lon),
        chunks=chunks or {"time": 1, "feature": -1, "lat": 64, "lon": 64},
        units=tuple(units),
    )
    create_template(path, layout, attrs)
    group = open_group(path, mode="r+")
    files = list(source_files) if source_files is not None else ["<memory>"] * values.shape[0]
    write_region(group, 0, values, files)
    finalize(path)
    return Path(path)
