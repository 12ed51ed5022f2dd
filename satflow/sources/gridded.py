"""Read regular latitude/longitude CF NetCDF files onto a normalised grid, one file at a time.

Two plain functions, so that the ingest planner and per-file Dask tasks in worker processes can
share them: `scan_file` reads metadata only and returns a picklable `FileInfo` (times, feature
names, the normalised lat/lon axes and a private read plan); `read_file` reads the data of one
file as float32 `(time, feature, lat, lon)` with NaN where a value is not valid.

Features: a variable on (time?, lat, lon) keeps its name; a variable with one more dimension
(channel, band, level, depth) gives one feature per index, `<var>-<k>` (1-based), or `<var>-d<k>`
when that dimension is vertical (depth/lev/level, `positive` attribute, or length units).
Values follow CF (see `cfvalues`), times are decoded robustly (see `timecodec`), longitudes are
wrapped to `source.lon_convention` and sorted ascending, latitudes sorted ascending, then the
optional `source.crop` is applied (see `satflow.grid`).

netCDF4/HDF5 is not thread-safe (two threads reading at once crash the process), so every file
access holds `netcdf.hdf5_lock()` (xarray's process-wide HDF5 lock once xarray is loaded). Process
workers have one thread each, so the lock never waits there; thread workers read one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import os
from dataclasses import dataclass

import netCDF4
import numpy as np

from satflow.sources.base import FileInfo, SingleFileGroups, SourceError, register_source
from satflow.grid import crop_indices, latitude_order, normalize_longitudes, unwrap_longitudes
from satflow.sources.cfvalues import UnitsError, canonical_unit, convert_units, decode_values, invalid_mask
from satflow.sources.netcdf import CORRUPT_HINT, hdf5_lock, nc_attr, open_netcdf, short_error
from satflow.sources.options import SourceConfig
from satflow.sources.timecodec import TimeDecodeError, decode_times, time_from_filename

_LAT_UNITS = {"degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn"}
_LON_UNITS = {"degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese"}
_TIME_DIM_NAMES = {"time", "t", "time_counter", "valid_time", "times"}
_VERTICAL_DIM_NAMES = {"depth", "deptht", "depthu", "depthv", "depthw", "lev", "level", "levels", "olevel", "z"}
_LENGTH_UNITS = {"m", "meter", "meters", "metre", "metres", "km", "dbar", "decibar"}


@dataclass(frozen=True)
class _VariableRead:
    name: str  # path inside the file, e.g. "tmbrs" or "obs/tb"
    features: tuple[str, ...]
    axes: tuple[int | None, int | None, int, int]  # positions of time, extra, lat, lon in its dims
    units: str | None  # as declared by the file
    target_units: str | None  # from source.convert_units


@dataclass(frozen=True, eq=False)
class _ReadPlan:
    variables: tuple[_VariableRead, ...]
    n_times: int
    lat_index: np.ndarray  # indices into the file's latitude axis, in output order
    lon_index: np.ndarray


# --- public API --------------------------------------------------------------------------------
def scan_file(path, source: SourceConfig) -> FileInfo:
    """Metadata of one file (reads coordinates and attributes, no data). Raises SourceError."""
    path = os.fspath(path)
    with hdf5_lock(), open_netcdf(path) as ds:
        try:
            return _Scanner(ds, path, source).scan()
        except (TimeDecodeError, UnitsError) as err:
            raise SourceError(path, str(err), "fix the file's attributes or the source settings") from None
        except (OSError, RuntimeError) as err:  # HDF5 errors while reading coordinates
            raise SourceError(path, f"cannot read metadata ({short_error(err)})", CORRUPT_HINT) from None


def read_file(info: FileInfo, source: SourceConfig, steps: Sequence[int] | None = None,
              out: np.ndarray | None = None) -> np.ndarray:
    """Data of a scanned file: float32 (time, feature, lat, lon) on `info`'s grid, NaN where invalid.

    `steps` selects time indices of the file (all by default), so a task that fills a few time
    steps from a file holding years of them reads only those. `out` (that shape, float32) receives
    the values, so a region task decodes straight into the block it writes, with no copy. Raises
    SourceError when the file cannot be read or the selection holds no valid value at all.
    """
    plan = info.read_plan
    if plan is None:
        raise ValueError("FileInfo has no read plan; get it from scan_file")
    steps = np.arange(plan.n_times) if steps is None else np.asarray(steps, dtype=np.int64)
    shape = (len(steps), len(info.features), plan.lat_index.size, plan.lon_index.size)
    out = np.empty(shape, np.float32) if out is None else out
    with hdf5_lock(), open_netcdf(info.path) as ds:  # only the HDF5 reads hold the lock; decoding runs outside it
        raws = [_read_raw(ds, info.path, variable, plan, steps) for variable in plan.variables]
    start = 0
    for variable, (raw, attrs) in zip(plan.variables, raws):
        stop = start + len(variable.features)
        _decode_into(out[:, start:stop], raw, attrs, variable, source)
        start = stop
    if not _any_finite(out):
        raise SourceError(info.path, "all values are fill",
                          "check its _FillValue/missing_value (or source.sentinel), or remove the file")
    return out


class GriddedSource(SingleFileGroups):
    """Regular lat/lon CF NetCDF: every file is one input."""

    scan = staticmethod(scan_file)
    read = staticmethod(read_file)


register_source("gridded", GriddedSource())


# --- opening -----------------------------------------------------------------------------------




# --- scanning ----------------------------------------------------------------------------------
class _Scanner:
    """Walks one open dataset: finds the grid, the variables, their features and the times."""

    def __init__(self, ds: netCDF4.Dataset, path: str, source: SourceConfig):
        self.ds, self.path, self.source = ds, path, source
        self.notes: list[str] = []
        self.lat_dims, self.lon_dims = _spatial_dims(ds)
        # A dimension carrying both latitude and longitude indexes points or mesh cells, not a grid.
        self.shared_dims = set(self.lat_dims) & set(self.lon_dims)
        for dim in self.shared_dims:
            del self.lat_dims[dim], self.lon_dims[dim]

    def scan(self) -> FileInfo:
        variables = self._select_variables()
        lat_dim, lon_dim = self._common_grid(variables)
        time_dim, times = self._times(variables)
        reads = tuple(self._variable_read(v, lat_dim, lon_dim, time_dim) for v in variables)
        lat, lon, lat_index, lon_index = self._normalised_axes(lat_dim, lon_dim)
        features = tuple(f for r in reads for f in r.features)
        units = tuple(r.target_units or r.units or "" for r in reads for _ in r.features)
        plan = _ReadPlan(reads, len(times), lat_index, lon_index)
        return FileInfo(self.path, times, features, lat, lon, units, tuple(self.notes), read_plan=plan)

    # variables
    def _select_variables(self) -> list[netCDF4.Variable]:
        if self.source.variables:
            return [self._requested(name) for name in dict.fromkeys(self.source.variables)]
        candidates = [v for v in _all_variables(self.ds) if self._is_gridded(v) and not self._is_auxiliary(v)]
        usable = [v for v in candidates if len(self._extra_dims(v)) <= 1]
        for variable in candidates:
            if variable not in usable:
                self.notes.append(f"skipped {_var_path(variable)}: more than one dimension besides "
                                  f"time/lat/lon {self._extra_dims(variable)}")
        if not usable:
            raise SourceError(self.path, *self._why_no_gridded_variable())
        return usable

    def _requested(self, name: str) -> netCDF4.Variable:
        variable = _find_variable(self.ds, name)
        if variable is None:
            available = [_var_path(v) for v in _all_variables(self.ds) if self._is_gridded(v)]
            raise SourceError(self.path, f"variable '{name}' not found",
                              f"gridded variables in this file: {', '.join(available) or 'none'}; "
                              "check source.variables (--var)")
        if not self._is_gridded(variable):
            reason, hint = self._why_no_gridded_variable()
            if self.lat_dims and self.lon_dims and _is_numeric(variable):
                reason, hint = "it lacks a latitude or longitude dimension", "choose a gridded variable"
            raise SourceError(self.path, f"variable '{name}' is not on a lat/lon grid "
                              f"(dimensions {variable.dimensions}): {reason}", hint)
        extra = self._extra_dims(variable)
        if len(extra) > 1:
            raise SourceError(self.path, f"variable '{name}' has {len(extra)} dimensions besides time/lat/lon "
                              f"{extra}; satflow turns at most one into features",
                              "select a slice of the file first (e.g. ncks -d) or choose other variables")
        return variable

    def _is_gridded(self, variable: netCDF4.Variable) -> bool:
        dims = variable.dimensions
        return _is_numeric(variable) and any(d in self.lat_dims for d in dims) and any(d in self.lon_dims for d in dims)

    def _is_auxiliary(self, variable: netCDF4.Variable) -> bool:
        """Coordinates, bounds and variables that other variables list as coordinates."""
        name = variable.name
        if name in variable.dimensions:
            return True
        for other in _all_variables(self.ds):
            attrs = other.ncattrs()
            if "bounds" in attrs and other.getncattr("bounds") == name:
                return True
            if "coordinates" in attrs and name in str(other.getncattr("coordinates")).split():
                return True
        return False

    def _why_no_gridded_variable(self) -> tuple[str, str]:
        """(reason, hint) for a file without a usable regular lat/lon variable."""
        regrid = "regrid it to a regular lat/lon grid first (e.g. CDO remapbil or xESMF)"
        variables = _all_variables(self.ds)
        std = {v.name: str(nc_attr(v, "standard_name", "")) for v in variables}
        two_d = [v for v in variables if v.ndim >= 2 and (std[v.name] in ("latitude", "longitude")
                                                          or v.name.lower() in ("lat", "lon", "nav_lat", "nav_lon"))]
        if two_d:
            names = ", ".join(v.name for v in two_d)
            return f"latitude/longitude are {two_d[0].ndim}-D ({names}): a curvilinear or projected grid", regrid
        if self.shared_dims:
            return (f"latitude and longitude share the dimension {sorted(self.shared_dims)}: "
                    "unstructured mesh or point data, not a grid", regrid)
        if any(s in ("grid_latitude", "grid_longitude") for s in std.values()):
            return "rotated-pole grid (grid_latitude/grid_longitude), not a regular lat/lon grid", regrid
        if any(s.startswith("projection_") for s in std.values()):
            return "projected grid (projection_x/y_coordinate) without latitude/longitude axes", regrid
        if not self.lat_dims or not self.lon_dims:
            return ("no 1-D latitude/longitude coordinates",
                    "give the coordinates standard_name latitude/longitude or units degrees_north/east")
        return ("no numeric variable has both latitude and longitude dimensions",
                "pick variables with source.variables")

    # grid
    def _extra_dims(self, variable: netCDF4.Variable) -> list[str]:
        return [d for d in variable.dimensions if d not in self.lat_dims and d not in self.lon_dims
                and not self._is_time_dim(variable, d)]

    def _common_grid(self, variables: list[netCDF4.Variable]) -> tuple[str, str]:
        grids = {(next(d for d in v.dimensions if d in self.lat_dims),
                  next(d for d in v.dimensions if d in self.lon_dims)) for v in variables}
        if len(grids) > 1:
            raise SourceError(self.path, f"variables lie on different grids {sorted(grids)}",
                              "ingest the variables of one grid together (source.variables)")
        return grids.pop()

    def _normalised_axes(self, lat_dim: str, lon_dim: str):
        lat_raw, _ = _coordinate_values(self.lat_dims[lat_dim])
        lon_raw, _ = _coordinate_values(self.lon_dims[lon_dim])
        lat_order = latitude_order(lat_raw)
        lon_sorted, lon_order = normalize_longitudes(lon_raw, self.source.lon_convention)
        lat_sorted = lat_raw[lat_order]
        lat_crop, lon_crop = crop_indices(lat_sorted, lon_sorted, self.source.crop)
        if lat_crop.size == 0 or lon_crop.size == 0:
            raise SourceError(self.path, f"the crop box {self.source.crop.model_dump()} selects no grid cell "
                              f"(file covers lat {lat_sorted[0]:g}..{lat_sorted[-1]:g}, "
                              f"lon {lon_sorted[0]:g}..{lon_sorted[-1]:g})", "widen source.crop or drop the file")
        if lon_order.size < lon_raw.size:
            self.notes.append(f"dropped {lon_raw.size - lon_order.size} duplicate longitude column(s)")
        lat = lat_sorted[lat_crop]
        lon = unwrap_longitudes(lon_sorted[lon_crop])
        return lat, lon, lat_order[lat_crop], lon_order[lon_crop]

    # time
    def _is_time_dim(self, variable: netCDF4.Variable, dim: str) -> bool:
        return dim.lower() in _TIME_DIM_NAMES or _time_coordinate(variable, dim) is not None

    def _times(self, variables: list[netCDF4.Variable]) -> tuple[str | None, np.ndarray]:
        time_dims = {d for v in variables for d in v.dimensions if self._is_time_dim(v, d)}
        if len(time_dims) > 1:
            raise SourceError(self.path, f"variables use different time dimensions {sorted(time_dims)}",
                              "select variables that share one time axis (source.variables)")
        if time_dims:
            dim = time_dims.pop()
            owner = next(v for v in variables if dim in v.dimensions)
            coordinate = _time_coordinate(owner, dim)
            length = owner.shape[owner.dimensions.index(dim)]
            if length == 0:
                raise SourceError(self.path, f"time dimension '{dim}' is empty", "remove the file")
            if coordinate is not None:
                return dim, self._decode(coordinate, expected=length)
            if length == 1:
                return dim, self._time_from_name()
            raise SourceError(self.path, f"time dimension '{dim}' ({length} steps) has no coordinate with "
                              "'<unit> since <date>' units", "add CF time units to the file")
        scalar = _scalar_time(self.ds, variables)
        if scalar is not None:
            return None, self._decode(scalar, expected=1)
        return None, self._time_from_name()

    def _decode(self, coordinate: netCDF4.Variable, expected: int) -> np.ndarray:
        values, invalid = _coordinate_values(coordinate)
        values = np.where(invalid, np.nan, values).ravel()
        if values.size != expected:
            raise SourceError(self.path, f"time coordinate '{coordinate.name}' has {values.size} values for "
                              f"{expected} steps", "fix the time coordinate")
        calendar = str(nc_attr(coordinate, "calendar", "standard"))
        try:
            times = decode_times(values, str(nc_attr(coordinate, "units", "")), calendar)
        except TimeDecodeError as err:
            raise SourceError(self.path, f"cannot decode time '{coordinate.name}': {err}",
                              "fix its units/calendar attributes, or remove the time variable so that "
                              "source.time_from_filename applies") from None
        if times.dtype == object:
            self.notes.append(f"times kept as cftime dates in the {times[0].calendar} calendar")
        return times

    def _time_from_name(self) -> np.ndarray:
        name = os.path.basename(self.path)
        try:
            stamp = time_from_filename(name, self.source.time_from_filename)
        except TimeDecodeError as err:
            raise SourceError(self.path, f"no time coordinate, and {err}",
                              "set source.time_from_filename to a regex with year/month/day[/hour] groups") from None
        self.notes.append("time taken from the file name")
        return np.array([stamp], dtype="datetime64[ns]")

    # features
    def _variable_read(self, variable, lat_dim: str, lon_dim: str, time_dim: str | None) -> _VariableRead:
        dims = variable.dimensions
        extra = self._extra_dims(variable)
        name = _var_path(variable)
        axes = (dims.index(time_dim) if time_dim in dims else None,
                dims.index(extra[0]) if extra else None, dims.index(lat_dim), dims.index(lon_dim))
        if extra:
            size = variable.shape[axes[1]]
            prefix = "d" if _is_vertical(extra[0], _coordinate(variable, extra[0])) else ""
            features = tuple(f"{name}-{prefix}{k}" for k in range(1, size + 1))
        else:
            features = (name,)
        units = nc_attr(variable, "units", None)
        target = self._target_units(variable, name, units)
        return _VariableRead(name, features, axes, None if units is None else str(units), target)

    def _target_units(self, variable, name: str, units) -> str | None:
        wanted = self.source.convert_units
        target = wanted.get(name, wanted.get(variable.name))
        if target is None:
            return None
        if canonical_unit(str(units) if units is not None else None) is None or canonical_unit(target) is None:
            raise SourceError(self.path, f"cannot convert '{name}' from units {units!r} to {target!r}",
                              "satflow converts temperatures between K, degC and degF: fix "
                              "source.convert_units or the variable's units attribute")
        return target


# --- reading -----------------------------------------------------------------------------------
def _read_raw(ds, path: str, spec: _VariableRead, plan: _ReadPlan, steps: np.ndarray) -> tuple[np.ndarray, dict]:
    """One variable's stored values at the given steps, (step, extra, lat, lon) on the output grid, and its attributes."""
    variable = _find_variable(ds, spec.name)
    if variable is None:
        raise SourceError(path, f"variable '{spec.name}' disappeared since the scan", "re-run the ingest")
    t_ax, e_ax, lat_ax, lon_ax = spec.axes
    lat0, lat1 = int(plan.lat_index.min()), int(plan.lat_index.max()) + 1
    lon0, lon1 = int(plan.lon_index.min()), int(plan.lon_index.max()) + 1
    slab = [slice(None)] * variable.ndim
    slab[lat_ax], slab[lon_ax] = slice(lat0, lat1), slice(lon0, lon1)
    t0 = int(steps.min()) if len(steps) else 0
    if t_ax is not None:
        slab[t_ax] = slice(t0, int(steps.max()) + 1 if len(steps) else 0)
    try:
        variable.set_auto_maskandscale(False)
        raw = np.asarray(variable[tuple(slab)])
    except (OSError, RuntimeError, ValueError, IndexError) as err:
        raise SourceError(path, f"cannot read variable '{spec.name}' ({short_error(err)})", CORRUPT_HINT) from None
    raw = _to_canonical_axes(raw, spec.axes)
    if t_ax is not None and not np.array_equal(steps, np.arange(t0, t0 + len(steps))):
        raw = np.take(raw, steps - t0, axis=0)
    raw = _take(_take(raw, plan.lat_index - lat0, axis=2), plan.lon_index - lon0, axis=3)
    return raw, {key: variable.getncattr(key) for key in variable.ncattrs()}


def _decode_into(out: np.ndarray, raw: np.ndarray, attrs: dict, spec: _VariableRead, source: SourceConfig) -> None:
    """Physical float32 values with NaN where invalid, written into `out` (step, features, lat, lon)."""
    if spec.target_units:
        values = convert_units(decode_values(raw, attrs, sentinel=source.sentinel), spec.units, spec.target_units)
        out[...] = values  # broadcasts a file without a time axis over the steps
    else:
        decode_values(raw, attrs, sentinel=source.sentinel, out=out)


def _any_finite(values: np.ndarray, run: int = 1 << 16) -> bool:
    """Whether any value is finite, stopping at the first run that has one: a valid field answers after
    one run instead of a whole-block pass and temporary (1.5 ms a 0.5-degree AMSU step)."""
    if not values.flags.c_contiguous:  # a view into a block with auxiliary features: no copy
        return bool(np.isfinite(values).any())
    flat = values.reshape(-1)
    return any(np.isfinite(flat[i:i + run]).any() for i in range(0, flat.size, run))


def _take(array: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
    """`np.take`, but a view when the index is a plain ascending or descending run (the usual case)."""
    if len(index) > 1 and np.all(np.diff(index) == index[1] - index[0]) and abs(index[1] - index[0]) == 1:
        step = int(index[1] - index[0])
        stop = int(index[-1]) + step
        selector = [slice(None)] * array.ndim
        selector[axis] = slice(int(index[0]), stop if stop >= 0 else None, step)
        return array[tuple(selector)]
    return np.take(array, index, axis=axis)


def _to_canonical_axes(raw: np.ndarray, axes) -> np.ndarray:
    """Transpose to (time, extra, lat, lon), inserting length-1 axes for absent time/extra dims."""
    t_ax, e_ax, lat_ax, lon_ax = axes
    present = [a for a in (t_ax, e_ax, lat_ax, lon_ax) if a is not None]
    out = np.transpose(raw, present)
    if t_ax is None:
        out = out[np.newaxis]
    if e_ax is None:
        out = out[:, np.newaxis]
    return out


# --- netCDF helpers ----------------------------------------------------------------------------
_PACKING_ATTRS = ("scale_factor", "add_offset", "_Unsigned")


def _coordinate_values(variable: netCDF4.Variable) -> tuple[np.ndarray, np.ndarray]:
    """A coordinate's float64 values and where they are invalid (fill, missing, out of range, NaN).

    Unpacked float coordinates (nearly all) are read raw and masked by `cfvalues.invalid_mask`, which
    follows netCDF4's rules: its own masking doubles the cost of a small read, and three such reads
    were half the scan of a small file. Packed ones keep netCDF4's unpacking.
    """
    attrs = {key: variable.getncattr(key) for key in variable.ncattrs()}
    if np.dtype(variable.dtype).kind == "f" and not any(key in attrs for key in _PACKING_ATTRS):
        variable.set_auto_maskandscale(False)
        raw = np.asarray(variable[...])
        return raw.astype(np.float64), invalid_mask(raw, attrs)
    masked = np.ma.asarray(variable[...], dtype=np.float64)
    return np.ma.getdata(masked), np.ma.getmaskarray(masked)


def _all_variables(group) -> list[netCDF4.Variable]:
    """Variables of a group and of all its sub-groups, depth first."""
    found = list(group.variables.values())
    for child in group.groups.values():
        found += _all_variables(child)
    return found


def _var_path(variable: netCDF4.Variable) -> str:
    group = variable.group().path.strip("/")
    return f"{group}/{variable.name}" if group else variable.name


def _find_variable(ds: netCDF4.Dataset, name: str) -> netCDF4.Variable | None:
    *groups, leaf = name.strip("/").split("/")
    node = ds
    for group in groups:
        node = node.groups.get(group)
        if node is None:
            return None
    return node.variables.get(leaf)




def _coordinate(variable: netCDF4.Variable, dim: str) -> netCDF4.Variable | None:
    """The variable named like `dim` in the variable's group or an enclosing group (CF scoping)."""
    group = variable.group()
    while group is not None:
        candidate = group.variables.get(dim)
        if candidate is not None and candidate.dimensions == (dim,):
            return candidate
        group = group.parent
    return None


def _spatial_dims(ds: netCDF4.Dataset) -> tuple[dict, dict]:
    """dim name -> 1-D latitude variable, dim name -> 1-D longitude variable (whole file)."""
    lat_dims, lon_dims = {}, {}
    for variable in _all_variables(ds):
        if variable.ndim != 1:
            continue
        dim = variable.dimensions[0]
        if _looks_like(variable, "latitude", _LAT_UNITS, ("lat", "latitude")):
            lat_dims.setdefault(dim, variable)
        elif _looks_like(variable, "longitude", _LON_UNITS, ("lon", "long", "longitude")):
            lon_dims.setdefault(dim, variable)
    return lat_dims, lon_dims


def _looks_like(variable, standard_name: str, units: set[str], names: tuple[str, ...]) -> bool:
    std = str(nc_attr(variable, "standard_name", "")).lower()
    if std:
        return std == standard_name
    unit = str(nc_attr(variable, "units", "")).lower().replace(" ", "_")
    if unit in units:
        return True
    return variable.name.lower() in names and (not unit or unit.startswith("degree"))


def _time_coordinate(variable: netCDF4.Variable, dim: str) -> netCDF4.Variable | None:
    """The coordinate of `dim` with '<unit> since <date>' units (the dim's own variable first)."""
    own = _coordinate(variable, dim)
    if own is not None and _has_time_units(own):
        return own
    group = variable.group()
    while group is not None:  # e.g. NEMO's time_centered(time_counter)
        for candidate in group.variables.values():
            if candidate.dimensions == (dim,) and _has_time_units(candidate) and \
                    str(nc_attr(candidate, "standard_name", "time")) == "time":
                return candidate
        group = group.parent
    return None


def _has_time_units(variable: netCDF4.Variable) -> bool:
    return " since " in f" {str(nc_attr(variable, 'units', '')).lower()} "


def _scalar_time(ds: netCDF4.Dataset, variables) -> netCDF4.Variable | None:
    """A 0-d time variable: listed in a variable's `coordinates`, or named 'time' at the root."""
    listed = {name for v in variables for name in str(nc_attr(v, "coordinates", "")).split()}
    for variable in _all_variables(ds):
        if variable.ndim == 0 and _has_time_units(variable) and \
                str(nc_attr(variable, "standard_name", "time")) == "time" and \
                (variable.name in listed or (variable.name == "time" and variable.group().parent is None)):
            return variable
    return None


def _is_numeric(variable: netCDF4.Variable) -> bool:
    try:
        return np.dtype(variable.dtype).kind in "iuf"
    except TypeError:  # variable-length and user-defined types
        return False


def _is_vertical(dim: str, coordinate: netCDF4.Variable | None) -> bool:
    if dim.lower() in _VERTICAL_DIM_NAMES:
        return True
    if coordinate is None:
        return False
    positive = str(nc_attr(coordinate, "positive", "")).lower()
    units = str(nc_attr(coordinate, "units", "")).lower()
    return positive == "down" or "depth" in str(nc_attr(coordinate, "standard_name", "")) or units in _LENGTH_UNITS
