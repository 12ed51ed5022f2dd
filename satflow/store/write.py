"""Writing a store: region writes from workers, finalising (statistics, fingerprint), and the CF
attributes of the lazy cube (`satflow.open_archive`). The template is `satflow.store.template`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zarr

from satflow.sources.timecodec import as_time_array, encode_times
from satflow.stats import Moments, merge_all
from satflow.store.layout import CF_ATTRIBUTES, STEP_NAMES, StoreError, StoreLayout
from satflow.store.read import compute_fingerprint, open_group, step_moments
from satflow.store.template import create_template

if TYPE_CHECKING:
    import xarray as xr


def add_grid_coordinates(ds: xr.Dataset, coordinates: dict | None) -> None:
    """A projected grid's extra coordinates (y/x in metres, 2-D latitude/longitude, the CF grid mapping
    `crs`), which X and M then name as their `grid_mapping` (the lazy cube; the template writes the same)."""
    if not coordinates:
        return
    from satflow.sources.domain import GRID_MAPPING_NAME

    for name, (dims, values, attrs) in coordinates.items():
        ds.coords[name] = (dims, values, attrs)
    if GRID_MAPPING_NAME in coordinates:
        ds["lat"].attrs.update(CF_ATTRIBUTES["lat_on_domain"])
        ds["lon"].attrs.update(CF_ATTRIBUTES["lon_on_domain"])
        for name in ("X", "M"):
            ds[name].attrs["grid_mapping"] = GRID_MAPPING_NAME


def annotate(ds: xr.Dataset) -> None:
    """CF attributes of the lazy cube's coordinates and variables (`satflow.open_archive`; the template's too)."""
    for name in ("lat", "lon", "time", "X", "M", "source_file", "ingested"):
        if name in ds:
            ds[name].attrs.update(CF_ATTRIBUTES[name])


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


def remove_partial_writes(path: str | Path) -> int:
    """Delete the temporary files a killed writer left in the store (zarr's LocalStore writes each
    chunk to `<key>.<uuid>.partial` and renames it into place); returns how many. A resumed run
    rewrites those chunks whole, so only the leftovers go."""
    leftovers = [p for p in Path(path).rglob("*.partial") if p.is_file()]
    for leftover in leftovers:
        leftover.unlink()
    return len(leftovers)


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
