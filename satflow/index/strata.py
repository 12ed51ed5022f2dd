"""Strata for balanced sampling: quantile bins of a per-patch statistic, or of labelled area.

`stratify_by_feature` reads one feature of `X` (one (lat, lon) field per time step, never the
whole cube) and computes a statistic over each patch's valid cells, for example the 5th
percentile of a window-channel brightness temperature as a proxy for deep convection.
`stratify_by_labels` matches an external label field (NetCDF or Zarr; time, lat, lon) to each
row by nearest time (within a tolerance) and nearest grid cell, and uses the labelled fraction.
Both add `stratum_value` and `stratum` (0 .. bins-1; -1 where no value could be computed).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import dask
import numpy as np
import pandas as pd

from satflow.index.io import METADATA_KEY, derived_metadata
from satflow.index.reader import PatchReader
from satflow.runtime.executors import as_executor

_REDUCERS = {"min": np.nanmin, "max": np.nanmax, "mean": np.nanmean, "median": np.nanmedian}


def patch_statistic(patches: np.ndarray, statistic: str) -> np.ndarray:
    """A statistic over the finite cells of each (n, height, width) patch; NaN for all-invalid patches."""
    flat = patches.reshape(patches.shape[0], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN patches give NaN, by design
        if statistic in _REDUCERS:
            return _REDUCERS[statistic](flat, axis=1)
        match = re.fullmatch(r"p(\d{1,2}(?:\.\d+)?|100)", statistic)
        if match:
            return np.nanpercentile(flat, float(match.group(1)), axis=1)
    raise ValueError(f"unknown statistic {statistic!r}: use min, max, mean, median or pNN (e.g. p05)")


def gather_patches(field: np.ndarray, y0: np.ndarray, x0: np.ndarray, height: int, width: int) -> np.ndarray:
    """(n, height, width) patches of a 2-D field; columns wrap modulo the field width."""
    rows = np.asarray(y0)[:, None] + np.arange(height)
    cols = (np.asarray(x0)[:, None] + np.arange(width)) % field.shape[1]
    return field[rows[:, :, None], cols[:, None, :]]


def quantile_strata(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratum 0..bins-1 by quantiles of the finite values (-1 where NaN), and the bin edges."""
    finite = np.isfinite(values)
    if not finite.any():
        raise ValueError("no finite statistic in any row: nothing to stratify (is the feature all-NaN?)")
    edges = np.quantile(values[finite], np.linspace(0.0, 1.0, bins + 1))
    return edge_strata(values, edges), edges


def edge_strata(values: np.ndarray, edges) -> np.ndarray:
    """Stratum i for edges[i] <= value < edges[i+1] (the last bin closed); -1 for NaN."""
    edges = np.asarray(edges, dtype=np.float64)
    strata = np.clip(np.searchsorted(edges[1:-1], values, side="right"), 0, len(edges) - 2)
    return np.where(np.isfinite(values), strata, -1).astype(np.int16)


def _statistics_at(reader: PatchReader, feature: str, t: int, rows: pd.DataFrame, statistic: str) -> np.ndarray:
    field = reader.field(t, feature)
    out = np.empty(len(rows))
    for (height, width), part in rows.groupby(["height", "width"]):
        patches = gather_patches(field, part["y0"].to_numpy(), part["x0"].to_numpy(), int(height), int(width))
        out[rows.index.get_indexer(part.index)] = patch_statistic(patches, statistic)
    return out


def _store_of(frame: pd.DataFrame, store) -> str:
    if store is not None:
        return str(store)
    if METADATA_KEY not in frame.attrs:
        raise ValueError("this DataFrame carries no index metadata: pass the store path")
    return frame.attrs[METADATA_KEY]["store"]["path"]


def _finish(frame: pd.DataFrame, values: np.ndarray, strata: np.ndarray, step: str, **parameters) -> pd.DataFrame:
    result = frame.assign(stratum_value=values, stratum=strata)
    if METADATA_KEY in frame.attrs:
        result.attrs[METADATA_KEY] = derived_metadata(frame.attrs[METADATA_KEY], step, parameters)
    return result


def feature_statistic(frame: pd.DataFrame, store: str | Path, feature: str, statistic: str = "p05",
                      client=None) -> np.ndarray:
    """Per-row statistic of one feature over each patch's valid cells; one task per time step."""
    patch_statistic(np.zeros((1, 1, 1)), statistic)  # reject a bad statistic before any read
    reader = PatchReader(store, [feature])
    frame = frame.reset_index(drop=True)
    groups = list(frame.groupby("t"))
    run = dask.delayed(_statistics_at, pure=True)
    tasks = [run(reader, feature, int(t), rows, statistic) for t, rows in groups]
    results = as_executor(client).compute(tasks)
    values = np.empty(len(frame))
    for (_, rows), result in zip(groups, results):
        values[rows.index.to_numpy()] = result
    return values


def stratify_by_feature(frame: pd.DataFrame, feature: str, statistic: str = "p05", bins: int = 4, *,
                        store: str | Path | None = None, client=None) -> pd.DataFrame:
    """Add `stratum_value` (the statistic) and `stratum` (its quantile bin) to every row."""
    values = feature_statistic(frame, _store_of(frame, store), feature, statistic, client)
    strata, edges = quantile_strata(values, bins)
    return _finish(frame, values, strata, "stratify", feature=feature, statistic=statistic, bins=bins,
                   edges=[float(e) for e in edges])


# --- external labels ---------------------------------------------------------------------------
def _open_labels(path: str | Path, variable: str | None):
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: label file not found")
    ds = xr.open_zarr(str(path)) if path.is_dir() else xr.open_dataset(path)
    ds = ds.rename({name: short for name, short in (("latitude", "lat"), ("longitude", "lon")) if name in ds.dims})
    if "X" in ds and "feature" in ds["X"].dims:  # a satflow store: the label is one of its features
        names = [str(f) for f in ds["feature"].values]
        if variable not in names:
            raise ValueError(f"{path}: a satflow store; choose the label feature with label_variable (one of {names})")
        return ds["X"].sel(feature=variable)
    candidates = [name for name, var in ds.data_vars.items() if {"time", "lat", "lon"} <= set(var.dims)]
    if variable is None and len(candidates) != 1:
        raise ValueError(f"{path}: set label_variable to one of the (time, lat, lon) variables {candidates}")
    name = variable or candidates[0]
    if name not in ds:
        raise ValueError(f"{path}: no variable {name!r}; (time, lat, lon) variables: {candidates}")
    return ds[name].squeeze(drop=True).transpose("time", "lat", "lon")


def nearest_cells(source: np.ndarray, target: np.ndarray, period: float | None = None, block: int = 4096):
    """Nearest `source` index for every `target` coordinate (modular if `period`), and whether it
    lies within one source spacing (False outside the label grid's extent). Targets go in blocks, so
    the distance matrix stays `block` x source long (a domain's 2-D coordinates are many targets)."""
    spacing = float(np.median(np.abs(np.diff(source)))) if source.size > 1 else np.inf
    nearest, within = np.empty(target.size, np.intp), np.empty(target.size, bool)
    for start in range(0, target.size, block):
        part = slice(start, start + block)
        diff = np.abs(target[part, None] - source[None, :])
        if period is not None:
            diff = np.minimum(diff % period, period - diff % period)
        nearest[part] = np.argmin(diff, axis=1)
        within[part] = diff[np.arange(diff.shape[0]), nearest[part]] <= spacing
    return nearest, within


def label_cells(label_lat: np.ndarray, label_lon: np.ndarray, reader: PatchReader):
    """(label rows, label columns, inside) of every store cell, shaped like the store's (lat, lon) grid. On a
    local domain each cell is located by its 2-D latitude/longitude, not by the central row and column."""
    if reader.domain is None:
        rows, rows_inside = nearest_cells(label_lat, reader.lat)
        cols, cols_inside = nearest_cells(label_lon, reader.lon, period=360.0)
        return rows[:, None], cols[None, :], rows_inside[:, None] & cols_inside[None, :]
    shape = reader.latitude.shape
    rows, rows_inside = nearest_cells(label_lat, reader.latitude.ravel())
    cols, cols_inside = nearest_cells(label_lon, reader.longitude.ravel(), period=360.0)
    return rows.reshape(shape), cols.reshape(shape), (rows_inside & cols_inside).reshape(shape)


def stratify_by_labels(frame: pd.DataFrame, labels: str | Path, variable: str | None = None,
                       edges: list[float] | None = None, bins: int = 4, time_tolerance: str = "3h", *,
                       store: str | Path | None = None) -> pd.DataFrame:
    """Strata from the labelled fraction (label > 0) of each patch, matched by time and location."""
    label = _open_labels(labels, variable)
    reader = PatchReader(_store_of(frame, store))
    rows, cols, inside = label_cells(label["lat"].values.astype(np.float64), label["lon"].values.astype(np.float64),
                                     reader)
    label_times = label["time"].values.astype("datetime64[ns]")
    tolerance = pd.Timedelta(time_tolerance).to_timedelta64()
    frame = frame.reset_index(drop=True)
    values = np.full(len(frame), np.nan)
    for time, part in frame.groupby("time"):
        gap = np.abs(label_times - np.datetime64(time, "ns"))
        if gap.size == 0 or gap.min() > tolerance:
            continue  # no label near this time: stratum -1
        field = np.asarray(label.isel(time=int(gap.argmin())).values)
        labelled = np.where(np.isfinite(field), field > 0, False)[rows, cols] & inside
        for (height, width), same in part.groupby(["height", "width"]):
            patches = gather_patches(labelled, same["y0"].to_numpy(), same["x0"].to_numpy(), int(height), int(width))
            values[same.index.to_numpy()] = patches.mean(axis=(1, 2))
    if edges is not None:
        strata, used = edge_strata(values, edges), np.asarray(edges, dtype=np.float64)
    else:
        strata, used = quantile_strata(values, bins)
    return _finish(frame, values, strata, "stratify_labels", labels=str(labels), variable=variable,
                   edges=[float(e) for e in used], time_tolerance=time_tolerance)
