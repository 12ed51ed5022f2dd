"""Raw swath NetCDF binned onto a regular lat/lon grid, one store step per time window.

A swath file holds observations on `(scanline, fov)` with per-observation `lat`/`lon`
(standard_name latitude/longitude) and a time (`<unit> since <date>`, per scanline or per
observation). Observed variables are `(scanline, fov, channel)`, `(scanline, fov)` or
`(scanline,)` (broadcast over the FOVs).

Per window `[centre - w/2, centre + w/2)` (`source.swath`), every observation of every file that
overlaps the window lands in its cell (see `binning`):
- a variable with a channel axis gives the mean per cell and channel, `<var>-<k>`; the first such
  variable also gives the count of its valid observations, `<count_name>-<k>` (`channels-k`, as in
  the gridded AMSU-A product);
- other variables take the value of the observation nearest the window centre in time (satellite
  ids, FOV numbers, angles: a mean of those would be meaningless).
`scan` reads coordinates only; `group` turns files into one input per window (its `path` lists
the files, recorded as the step's provenance); `read` bins one window in blocks of scan lines.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import netCDF4
import numpy as np

from satflow.sources.base import INPUT_SEPARATOR, FileInfo, SourceError, register_source
from satflow.sources.binning import (accumulate_mean, accumulate_nearest, cell_index, finish_mean,
                                     target_grid)
from satflow.sources.cfvalues import decode_values
from satflow.sources.netcdf import CORRUPT_HINT, hdf5_lock, nc_attr, open_netcdf
from satflow.sources.options import SourceConfig
from satflow.sources.timecodec import TimeDecodeError, decode_times, time_calendar

BLOCK_VALUES = 2_000_000  # observation values decoded at once: bounds a read's memory


@dataclass(frozen=True)
class _Layout:
    """Where a swath file keeps its coordinates and which variables it bins how."""

    lat: str
    lon: str
    time: str
    channel_vars: tuple[str, ...]
    n_channels: int
    nearest_vars: tuple[str, ...]


@dataclass(frozen=True)
class _WindowPlan:
    files: tuple[str, ...]
    layout: _Layout
    centre: np.datetime64
    half_width: np.timedelta64


class SwathSource:
    def scan(self, path, source: SourceConfig) -> FileInfo:
        path = os.fspath(path)
        with hdf5_lock(), open_netcdf(path) as ds:
            layout, units = _find_layout(ds, path, source)
            times = _decoded_times(ds, path, layout)
        grid = target_grid(source.swath.resolution, source.lon_convention, source.crop)
        centres = _window_centres(times[~np.isnat(times)], source)
        if not centres.size:
            raise SourceError(path, "no valid observation time", "fix the time variable or remove the file")
        return FileInfo(path, centres, _features(layout, source), grid.lat, grid.lon, units, read_plan=layout)

    def group(self, infos: list[FileInfo], source: SourceConfig):
        """One input per window, from the files overlapping it; files laid out unlike the majority are left out."""
        if not infos:
            return [], []
        common = Counter(info.read_plan for info in infos).most_common(1)[0][0]
        skipped = [(i.path, f"different variables than the other swath files ({_describe(i.read_plan)} vs "
                    f"{_describe(common)}); select common ones with --var") for i in infos if i.read_plan != common]
        files_by_window: dict = defaultdict(list)
        for info in infos:
            if info.read_plan == common:
                for centre in info.times:
                    files_by_window[centre].append(info)
        half = np.timedelta64(int(source.swath.window_hours * 1800e9), "ns")
        inputs = []
        for centre in sorted(files_by_window):
            files = files_by_window[centre]
            plan = _WindowPlan(tuple(f.path for f in files), common, centre, half)
            inputs.append(FileInfo(INPUT_SEPARATOR.join(plan.files), np.array([centre], "datetime64[ns]"),
                                   files[0].features, files[0].lat, files[0].lon, files[0].units, read_plan=plan))
        return inputs, skipped

    def read(self, info: FileInfo, source: SourceConfig, steps: Sequence[int] | None = None,
             out: np.ndarray | None = None) -> np.ndarray:
        plan = info.read_plan
        if not isinstance(plan, _WindowPlan):
            raise ValueError("FileInfo has no swath window plan; get it from SwathSource.group")
        if steps is not None and list(steps) != [0]:
            raise ValueError(f"a swath window has one time step (0), not {list(steps)}")
        grid = target_grid(source.swath.resolution, source.lon_convention, source.crop)
        binned = _WindowBins(plan.layout, grid.size)
        for path in plan.files:
            _bin_file(path, plan, grid, binned, source)
        if out is None:
            out = np.empty((1, len(info.features), grid.lat.size, grid.lon.size), np.float32)
        flat = np.empty((len(info.features), grid.size), np.float32)
        binned.write(flat)
        out[0] = flat.reshape(out.shape[1:])
        if not np.isfinite(out).any():
            raise SourceError(info.path, f"no observation of the window centred at {plan.centre} falls on the grid",
                              "check source.crop and source.swath, or the files' times")
        return out


register_source("swath", SwathSource())


# --- scanning ----------------------------------------------------------------------------------




def _coordinate(ds, standard_name: str, path: str) -> netCDF4.Variable:
    found = [v for v in ds.variables.values() if v.ndim == 2 and nc_attr(v, "standard_name") == standard_name]
    if not found:
        raise SourceError(path, f"no 2-D {standard_name} (scanline, fov): not a raw swath file",
                          "use source.kind: gridded for gridded files")
    return found[0]


def _find_layout(ds, path: str, source: SourceConfig) -> tuple[_Layout, tuple[str, ...]]:
    lat, lon = _coordinate(ds, "latitude", path), _coordinate(ds, "longitude", path)
    scan_dims = lat.dimensions
    time = next((v for v in ds.variables.values() if " since " in f" {nc_attr(v, 'units', '')} "
                 and v.dimensions in (scan_dims, scan_dims[:1])), None)
    if time is None:
        raise SourceError(path, f"no time variable on {scan_dims} or {scan_dims[:1]} with '<unit> since <date>' units",
                          "add CF time units to the swath's time")
    skip = {lat.name, lon.name, time.name}
    candidates = [v for v in ds.variables.values() if v.name not in skip and v.name not in v.dimensions
                  and np.dtype(v.dtype).kind in "iuf" and v.dimensions[:len(scan_dims)] in (scan_dims, scan_dims[:1])]
    if source.variables:
        by_name = {v.name: v for v in candidates}
        missing = [n for n in source.variables if n not in by_name]
        if missing:
            raise SourceError(path, f"variable(s) {', '.join(missing)} not found on the swath's {scan_dims}",
                              f"swath variables in this file: {', '.join(by_name) or 'none'}; check source.variables")
        candidates = [by_name[n] for n in dict.fromkeys(source.variables)]
    channel = [v for v in candidates if v.ndim == 3 and v.dimensions[:2] == scan_dims]
    nearest = [v for v in candidates if v.dimensions in (scan_dims, scan_dims[:1])]
    if not channel and not nearest:
        raise SourceError(path, f"no variable on {scan_dims} to bin", "check source.variables")
    channels = {v.shape[2] for v in channel}
    if len(channels) > 1:
        raise SourceError(path, f"channel variables differ in length {sorted(channels)}", "select one set with --var")
    layout = _Layout(lat.name, lon.name, time.name, tuple(v.name for v in channel), channels.pop() if channels else 0,
                     tuple(v.name for v in nearest))
    unit = {v.name: str(nc_attr(v, "units", "")) for v in candidates}
    units = [unit[name] for name in layout.channel_vars for _ in range(layout.n_channels)]
    if layout.channel_vars:
        units[layout.n_channels:layout.n_channels] = ["1"] * layout.n_channels
    return layout, tuple(units + [unit[name] for name in layout.nearest_vars])


def _features(layout: _Layout, source: SourceConfig) -> tuple[str, ...]:
    ks = range(1, layout.n_channels + 1)
    per_channel = [f"{name}-{k}" for name in layout.channel_vars for k in ks]
    if layout.channel_vars:
        per_channel[layout.n_channels:layout.n_channels] = [f"{source.swath.count_name}-{k}" for k in ks]
    return tuple(per_channel) + layout.nearest_vars


def _describe(layout: _Layout) -> str:
    return ", ".join(layout.channel_vars + layout.nearest_vars)


def _decoded_times(ds, path: str, layout: _Layout, rows: slice = slice(None)) -> np.ndarray:
    """datetime64[ns] on (scanline[, fov]); NaT where the time is fill."""
    variable = ds.variables[layout.time]
    variable.set_auto_maskandscale(True)  # float64 throughout: float32 seconds since 2000 are 64 s apart
    values = np.ma.filled(np.ma.asarray(variable[rows], dtype=np.float64), np.nan)
    finite = np.isfinite(values)
    try:
        decoded = decode_times(np.where(finite, values, 0.0), str(nc_attr(variable, "units")),
                               str(nc_attr(variable, "calendar", "standard")))
    except TimeDecodeError as err:
        raise SourceError(path, f"cannot decode time '{layout.time}': {err}", "fix its units/calendar") from None
    if time_calendar(decoded) != "datetime64":
        raise SourceError(path, "swath times must be in the standard calendar", "fix the time's calendar")
    return np.where(finite.ravel(), decoded, np.datetime64("NaT")).reshape(values.shape)


def _window_centres(times: np.ndarray, source: SourceConfig) -> np.ndarray:
    """Centres of the windows that the times fall in (window k centred at offset + k * width)."""
    if not times.size:
        return np.array([], "datetime64[ns]")
    width = int(source.swath.window_hours * 3600e9)
    offset = int(source.swath.window_offset_hours * 3600e9)
    ns = times.astype("datetime64[ns]").astype(np.int64)
    first, last = ((np.array([ns.min(), ns.max()]) - offset + width // 2) // width)
    return (offset + np.arange(first, last + 1) * width).astype("datetime64[ns]")


# --- binning -----------------------------------------------------------------------------------
class _WindowBins:
    """The accumulators of one window: (cell, channel) sums and counts per channel variable, nearest values."""

    def __init__(self, layout: _Layout, n_cells: int):
        self.layout = layout
        self.sums = [np.zeros((n_cells, layout.n_channels)) for _ in layout.channel_vars]
        self.counts = [np.zeros((n_cells, layout.n_channels), np.int32) for _ in layout.channel_vars]
        self.best = np.full(n_cells, np.inf)
        self.nearest = np.full((n_cells, len(layout.nearest_vars)), np.nan, np.float32)

    def write(self, out: np.ndarray) -> None:
        """(feature, cell) in the order of `_features`."""
        k, n = 0, self.layout.n_channels
        for index, (sums, counts) in enumerate(zip(self.sums, self.counts)):
            out[k:k + n] = finish_mean(sums, counts).T
            k += n
            if index == 0:
                out[k:k + n] = np.where(counts > 0, counts, np.nan).T
                k += n
        out[k:] = self.nearest.T


def _bin_file(path: str, plan: _WindowPlan, grid, binned: _WindowBins, source: SourceConfig) -> None:
    layout = plan.layout
    with hdf5_lock(), open_netcdf(path) as ds:
        n_lines, n_fov = ds.variables[layout.lat].shape
    rows_per_block = max(1, BLOCK_VALUES // max(1, n_fov * max(1, layout.n_channels)))
    for start in range(0, n_lines, rows_per_block):
        rows = slice(start, min(n_lines, start + rows_per_block))
        try:
            with hdf5_lock(), open_netcdf(path) as ds:
                block = _read_block(ds, path, layout, rows, n_fov, source)
        except (OSError, RuntimeError, IndexError) as err:
            raise SourceError(path, f"cannot read swath rows {rows.start}:{rows.stop} ({err})", CORRUPT_HINT) from None
        _bin_block(block, plan, grid, binned)


def _read_block(ds, path: str, layout: _Layout, rows: slice, n_fov: int, source: SourceConfig) -> dict:
    def values(name: str) -> np.ndarray:
        variable = ds.variables[name]
        variable.set_auto_maskandscale(False)
        decoded = decode_values(variable[rows], {k: variable.getncattr(k) for k in variable.ncattrs()},
                                sentinel=source.sentinel)
        return np.broadcast_to(decoded[:, None], (decoded.shape[0], n_fov)) if decoded.ndim == 1 else decoded

    times = _decoded_times(ds, path, layout, rows)
    n_lines = times.shape[0]
    return {"lat": values(layout.lat), "lon": values(layout.lon),
            "time": np.broadcast_to(times.reshape(n_lines, -1), (n_lines, n_fov)),
            "channels": [values(name) for name in layout.channel_vars],
            "nearest": [values(name) for name in layout.nearest_vars]}


def _bin_block(block: dict, plan: _WindowPlan, grid, binned: _WindowBins) -> None:
    offset = (block["time"] - plan.centre).ravel()
    in_window = ~np.isnat(offset) & (offset >= -plan.half_width) & (offset < plan.half_width)
    cells = np.where(in_window, cell_index(block["lat"].ravel(), block["lon"].ravel(), grid), -1)
    n_obs = cells.size
    for values, sums, counts in zip(block["channels"], binned.sums, binned.counts):
        accumulate_mean(cells, np.ascontiguousarray(values.reshape(n_obs, -1)), sums, counts)
    if plan.layout.nearest_vars:
        distance = np.abs(np.where(in_window, offset, np.timedelta64(0, "ns")).astype(np.int64)).astype(np.float64)
        stacked = np.stack([v.reshape(n_obs) for v in block["nearest"]], axis=1).astype(np.float32)
        accumulate_nearest(cells, distance, stacked, binned.best, binned.nearest)
