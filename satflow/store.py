"""The satflow datacube: one Zarr v3 group that `xr.open_zarr` opens.

Layout (the contract in DESIGN.md):
- `X` float32 (time, feature, lat, lon), NaN where there is no valid observation
- `M` uint8, same shape and chunks, 1 = valid; `M == isfinite(X)` always
- coords `time` (CF-encoded integer minutes; dates outside datetime64[ns] such as year-0
  climatologies, noleap or 360_day keep their calendar, so `xr.open_zarr` decodes them to cftime),
  `feature` (strings), `lat`, `lon` (degrees, CF attributes)
- `count`, `mean`, `std`, `min`, `max` (feature): statistics over valid points
- `step_count`, `step_mean`, `step_m2`, `step_min`, `step_max` (time, feature): the mergeable
  per-time-step partials those statistics are folded from; they make an interrupted ingest
  resumable (a finished region keeps its partials) and give inspect its missing-data table
- `units` (feature): physical units of each feature as read (after any conversion)
- `source_file` (time): provenance, the file that filled each time step ("" = not yet written)
- `ingested` (time) uint8: 1 once a time step's region is fully written (the resume marker)
- with auxiliary products: `aux_source_file` and `aux_time` (time, aux_product), the auxiliary scene
  mapped onto each step ("" / NaT where none was)
- on a local domain: `y`, `x` (metres), 2-D `latitude`/`longitude` and the CF grid mapping `crs`
- attributes: `satflow_version`, `satflow_config` (JSON), `satflow_fingerprint` after finalise

Region writes go straight through zarr (no xarray round trip) because they run once per chunk on
workers; the template and coordinates go through xarray so that CF encoding stays standard.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, BloscShuffle

from satflow import __version__
from satflow.sources.timecodec import as_time_array, encode_times, time_encoding
from satflow.stats import Moments, merge_all

DIMS = ("time", "feature", "lat", "lon")
STAT_NAMES = ("count", "mean", "std", "min", "max")
STEP_NAMES = ("step_count", "step_mean", "step_m2", "step_min", "step_max")
TIME_UNITS = "minutes since 1970-01-01 00:00:00"  # datetime64 stores; cftime stores: see timecodec.time_encoding
TIME_CALENDAR = "proleptic_gregorian"
DEFAULT_COMPRESSION_LEVEL = 1


class StoreError(ValueError):
    """The path is not a satflow store, or it is inconsistent with what was asked."""


@dataclass(frozen=True)
class StoreLayout:
    """Everything needed to create an empty store; plain data, printable in a plan."""

    times: np.ndarray  # datetime64[ns], or cftime dates of one calendar
    features: tuple[str, ...]
    lat: np.ndarray
    lon: np.ndarray
    chunks: dict[str, int]  # keys: time, feature, lat, lon; -1 means the whole dimension
    compression_level: int = DEFAULT_COMPRESSION_LEVEL
    units: tuple[str, ...] = ()  # per feature, "" where the source declares none
    aux_products: tuple[str, ...] = ()  # names of the auxiliary products whose features X holds (provenance)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.times), len(self.features), len(self.lat), len(self.lon))

    @property
    def chunk_shape(self) -> tuple[int, int, int, int]:
        return tuple(  # type: ignore[return-value]
            size if self.chunks.get(dim, -1) in (-1, None) else min(self.chunks[dim], size) or 1
            for dim, size in zip(DIMS, self.shape)
        )


def compressor(level: int = DEFAULT_COMPRESSION_LEVEL) -> BloscCodec:
    """Blosc zstd with byte shuffle. Measured on AMSU-like 0.5-degree blocks (benchmarks/ingest):
    level 1 writes about 3x faster than level 5 with bit-shuffle for a store within 1% of its size,
    and smaller than zarr's default zstd (no shuffle); bit-shuffle cost time and saved nothing."""
    return BloscCodec(cname="zstd", clevel=level, shuffle=BloscShuffle.shuffle)


def create_template(path: str | Path, layout: StoreLayout, attrs: dict | None = None,
                    grid_coordinates: dict | None = None) -> None:
    """Write metadata, coordinates and empty (fill-valued) data variables; no chunk is written.

    `grid_coordinates` are extra coordinates of a projected grid, {name: (dims, values, attrs)}
    (`satflow.sources.domain.domain_coordinates` of a local domain): see `add_grid_coordinates`.
    """
    import dask.array as da

    shape, chunk_shape = layout.shape, layout.chunk_shape
    n_time, n_feature = shape[0], shape[1]
    step_chunks = (chunk_shape[0], n_feature)
    data_vars = {
        "X": (DIMS, da.full(shape, np.nan, dtype=np.float32, chunks=chunk_shape)),
        "M": (DIMS, da.zeros(shape, dtype=np.uint8, chunks=chunk_shape)),
        "ingested": (("time",), da.zeros(n_time, dtype=np.uint8, chunks=chunk_shape[0])),
        "source_file": (("time",), np.full(n_time, "", dtype=object)),
        "units": (("feature",), np.asarray(layout.units or ("",) * n_feature, dtype=object)),
    }
    for name in STEP_NAMES:
        dtype = np.int64 if name == "step_count" else np.float64
        data_vars[name] = (("time", "feature"), da.zeros((n_time, n_feature), dtype=dtype, chunks=step_chunks))
    for name in STAT_NAMES:
        data_vars[name] = (("feature",), np.zeros(n_feature, np.int64 if name == "count" else np.float64))
    ds = xr.Dataset(
        data_vars,
        coords={
            "time": ("time", as_time_array(layout.times) if len(layout.times) else np.array([], "datetime64[ns]")),
            "feature": ("feature", np.asarray(layout.features, dtype=object)),
            "lat": ("lat", np.asarray(layout.lat, dtype=np.float64)),
            "lon": ("lon", np.asarray(layout.lon, dtype=np.float64)),
        },
        attrs={"satflow_version": __version__, "Conventions": "CF-1.8", **(attrs or {})},
    )
    annotate(ds)
    add_grid_coordinates(ds, grid_coordinates)
    add_aux_provenance(ds, layout, chunk_shape[0])
    encoding = {
        "X": {"chunks": chunk_shape, "compressors": [compressor(layout.compression_level)]},
        # No _FillValue on the mask: xarray would otherwise decode M == 0 to NaN.
        "M": {"chunks": chunk_shape, "compressors": [compressor(layout.compression_level)], "_FillValue": None},
        # Every time-dimensioned array is chunked like X along time: concurrent region tasks
        # then never read-modify-write the same chunk (one shared chunk lost updates).
        "ingested": {"chunks": (chunk_shape[0],), "_FillValue": None},
        "source_file": {"chunks": (chunk_shape[0],)},
        "time": time_encoding(layout.times),
        "step_count": {"_FillValue": None, "chunks": step_chunks},
        "count": {"_FillValue": None},
    }
    if layout.aux_products:
        encoding["aux_source_file"] = {"chunks": (chunk_shape[0], len(layout.aux_products))}
        encoding["aux_time"] = {"chunks": (chunk_shape[0], len(layout.aux_products))}
    ds.to_zarr(str(path), mode="w", compute=False, zarr_format=3, encoding=encoding, consolidated=False)


def add_grid_coordinates(ds: xr.Dataset, coordinates: dict | None) -> None:
    """A projected grid's extra coordinates (y/x in metres, 2-D latitude/longitude, the CF grid mapping
    `crs`), which X and M then name as their `grid_mapping`. The store and `satflow.open_archive` share it."""
    if not coordinates:
        return
    from satflow.sources.domain import GRID_MAPPING_NAME

    for name, (dims, values, attrs) in coordinates.items():
        ds.coords[name] = xr.Variable(dims, values, attrs)
    if GRID_MAPPING_NAME in coordinates:
        ds["lat"].attrs.update(long_name="latitude along the domain's central column (x = 0)")
        ds["lon"].attrs.update(long_name="longitude along the domain's central row (y = 0)")
        for name in ("X", "M"):
            ds[name].attrs["grid_mapping"] = GRID_MAPPING_NAME


def add_aux_provenance(ds: xr.Dataset, layout: StoreLayout, time_chunk: int) -> None:
    """Per time step and auxiliary product: the file (`aux_source_file`, "" = none mapped) and the time
    (`aux_time`, NaT = none) of the auxiliary scene that filled the step's `<product>/...` features."""
    if not layout.aux_products:
        return
    import dask.array as da

    shape, chunks = (len(layout.times), len(layout.aux_products)), (time_chunk, len(layout.aux_products))
    ds.coords["aux_product"] = ("aux_product", np.asarray(layout.aux_products, dtype=object))
    ds["aux_source_file"] = (("time", "aux_product"), np.full(shape, "", dtype=object),
                             {"long_name": "auxiliary file mapped onto this time step (\"\" = none)"})
    encoding = time_encoding(layout.times)
    # Encoded numbers with CF units, so xarray decodes them like `time` (NaN -> NaT) in any calendar.
    ds["aux_time"] = (("time", "aux_product"), da.full(shape, np.nan, dtype=np.float64, chunks=chunks),
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


def open_group(path: str | Path, mode: str = "r", *, consolidated: bool = False) -> zarr.Group:
    """The store's Zarr group. `consolidated=True` reads all metadata in one request: only for
    region tasks, which run after `_prepare_store` consolidated the final layout (saves a
    metadata read per array per task)."""
    try:
        # By default never trust consolidated metadata: writers resize arrays (append) before re-consolidating.
        group = zarr.open_group(str(path), mode=mode, zarr_format=3, use_consolidated=consolidated)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:  # type: ignore[attr-defined]
        raise StoreError(f"{path}: no satflow store here (no Zarr v3 group); run `satflow ingest` first") from err
    if "X" not in group or "M" not in group:
        raise StoreError(f"{path}: a Zarr group, but not a satflow store (arrays X and M are missing)")
    return group


def open_store(path: str | Path, *, consolidated: bool | None = None) -> xr.Dataset:
    """Open a store lazily with xarray (dask arrays aligned with the Zarr chunks).

    `consolidated=False` reads the arrays' own metadata (writers resize before re-consolidating).
    """
    import warnings

    open_group(path)  # clear error first
    with warnings.catch_warnings():  # cftime times (climatologies, model calendars) are expected, not news
        warnings.filterwarnings("ignore", message="Unable to decode time axis into full numpy.datetime64")
        return xr.open_zarr(str(path), zarr_format=3, consolidated=consolidated)


def write_region(
    group: zarr.Group,
    t0: int,
    values: np.ndarray,
    source_files: Sequence[str],
    aux_sources: Sequence[Sequence[tuple[str, object]]] = (),
) -> Moments:
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
    for name, field in zip(STEP_NAMES, ("count", "mean", "m2", "min", "max")):
        group[name][t0:t1] = np.stack([getattr(m, field) for m in steps])
    group["source_file"][t0:t1] = np.asarray(list(source_files), dtype=object)
    if "aux_time" in group:
        _write_aux_provenance(group, t0, t1, aux_sources)
    group["ingested"][t0:t1] = 1
    return merge_all(steps, values.shape[1])


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


def step_moments(group: zarr.Group, steps: np.ndarray | None = None) -> list[Moments]:
    """The stored per-time-step partials (optionally only for the given step indices)."""
    arrays = [np.asarray(group[name][:]) for name in STEP_NAMES]
    index = np.arange(arrays[0].shape[0]) if steps is None else np.asarray(steps)
    return [Moments(*(a[i] for a in arrays)) for i in index]


def finalize(path: str | Path) -> Moments:
    """Fold per-step partials of ingested steps into the per-feature statistics and fingerprint."""
    group = open_group(path, mode="r+")
    done = np.flatnonzero(np.asarray(group["ingested"][:]) == 1)
    total = merge_all(step_moments(group, done), group["X"].shape[1])
    for name, values in total.as_summary().items():
        group[name][:] = values
    group.attrs["satflow_fingerprint"] = compute_fingerprint(group)
    consolidate(path)
    return total


def consolidate(path: str | Path) -> None:
    """Consolidate metadata so `xr.open_zarr(path)` opens the store with one read and no warning.

    Consolidated metadata is a zarr-python extension to Zarr v3 (hence the silenced warning);
    it is rewritten after every finalise, so appends never leave it stale.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        zarr.consolidate_metadata(str(path), zarr_format=3)


def compute_fingerprint(group: zarr.Group) -> str:
    """A content fingerprint: shape, coordinates, provenance and the exact statistics.

    Any change to the data changes the per-step partial sums, so hashing them (rather than
    every chunk of X) detects a changed store in milliseconds.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(list(group["X"].shape)).encode())
    aux = [name for name in ("aux_source_file", "aux_time") if name in group]
    for name in ("time", "feature", "lat", "lon", "source_file", *STEP_NAMES, *aux):
        digest.update(name.encode())
        values = np.asarray(group[name][:])
        if name in ("feature", "source_file", "aux_source_file"):
            digest.update("\x1f".join(map(str, values.tolist())).encode())
        else:
            digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()[:16]


def fingerprint(path: str | Path) -> str:
    """The fingerprint recorded when the store was last finalised (raises if never finalised)."""
    group = open_group(path)
    value = group.attrs.get("satflow_fingerprint")
    if not value:
        raise StoreError(f"{path}: store was never finalised (an ingest is unfinished); re-run `satflow ingest`")
    return str(value)


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
