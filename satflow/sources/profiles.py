"""In-situ profile files (EN4 monthly, Argo) rasterised onto a lat/lon grid and a depth axis, one step per file.

A file holds `N_PROF` profiles of up to `N_LEVELS` levels: `JULD` (days since 1950-01-01, with
_FillValue), `LATITUDE`, `LONGITUDE`, depth `DEPH_CORRECTED` (m) and/or pressure `PRES` (dbar,
converted to depth where a level has no valid depth, see `rasterise.pressure_to_depth`), and the
value variables of `source.profiles.variables` (`POTM_CORRECTED`, `TEMP`, `PSAL`, ...).

Quality control, every flag optional (a file without it is taken as is):
- a profile counts if its JULD and position are valid and `JULD_QC`, `POSITION_QC` are in
  `accepted_qc`, and, per variable, `PROFILE_<VAR>_QC` (or that of the name without `_CORRECTED`/
  `_ADJUSTED`, EN4's `PROFILE_POTM_QC`) is in `accepted_profile_qc`;
- a level counts if its value is valid and `<VAR>_QC` is in `accepted_qc`; a level's depth counts
  if `DEPH_CORRECTED_QC` (or `PRES_QC` for a pressure) accepts it, and EN4's `PROFILE_DEPH_QC` the
  profile's (EN4 flags are '1' accept, '4' reject, '0' no data).
Grid: `source.profiles.resolution` degrees, or with `resolution: null` the grid of `depth_from`
(see `profile_grid`). Each variable's profiles are resampled onto the target depths (the depth
coordinate of `depth_from`, or `source.profiles.depths`), then averaged per cell and level over the
profiles of the file, weighted by counts (see `rasterise`). Features: `<name>-d<k>` (k = 1.. over the depths, like the
gridded source's vertical levels) and `<name>-<count_name>`, the profiles with at least one valid
level per cell (NaN where none: the store's mask is `isfinite`).

Time: one store step per file, at the first day of the month that most of its accepted profiles'
JULDs fall in (EN4 files are monthly; the ocean reanalysis they sit next to is stamped so too).
A file without one accepted profile is a SourceError at scan, so ingest skips it and names it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from satflow.sources.base import FileInfo, SingleFileGroups, SourceError, register_source
from satflow.sources.cfvalues import decode_values, invalid_mask
from satflow.sources.netcdf import CORRUPT_HINT, hdf5_lock, nc_attr, open_netcdf, short_error
from satflow.sources.options import SourceConfig
from satflow.sources.profile_grid import profile_grid
from satflow.sources.rasterise import pressure_to_depth, rasterise, resample_profiles

_JULD_EPOCH = np.datetime64("1950-01-01T00:00:00", "ns")
_NS_PER_DAY = 86_400 * 10**9
_HEADER = ("JULD", "LATITUDE", "LONGITUDE")


@dataclass(frozen=True, eq=False)
class _ProfilesPlan:
    variables: tuple[str, ...]
    names: tuple[str, ...]
    depths: np.ndarray  # target axis (m)


class ProfilesSource(SingleFileGroups):
    def scan(self, path, source: SourceConfig) -> FileInfo:
        path = os.fspath(path)
        options = source.profiles
        try:
            with hdf5_lock(), open_netcdf(path) as ds:
                _check_layout(ds, path, options.variables)
                header = _read_header(ds, options)
                accepted = [header.accepted & _profile_flags(ds, name, options) & _any_good_level(ds, name, options)
                            for name in options.variables]
                units = tuple(str(nc_attr(ds.variables[name], "units", "")) for name in options.variables)
        except (OSError, RuntimeError, IndexError) as err:
            raise SourceError(path, f"cannot read the profile headers ({short_error(err)})", CORRUPT_HINT) from None
        used = np.logical_or.reduce(accepted)
        if not used.any():
            raise SourceError(path, f"no profile passes quality control (of {used.size}: JULD, position and "
                              f"{', '.join(options.variables)} flags in {options.accepted_qc})",
                              "check source.profiles.accepted_qc, or remove the file")
        depths = target_depths(options.depth_from, options.listed_depths)
        grid = profile_grid(source)
        names = tuple(options.names.get(v, v) for v in options.variables)
        features = tuple(f for name in names for f in _feature_names(name, depths.size, options.count_name))
        feature_units = tuple(u for unit in units for u in (unit,) * depths.size + ("1",))
        return FileInfo(path, np.array([_month_start(header.juld[used])]), features, grid.lat, grid.lon,
                        feature_units, read_plan=_ProfilesPlan(tuple(options.variables), names, depths))

    def read(self, info: FileInfo, source: SourceConfig, steps: Sequence[int] | None = None,
             out: np.ndarray | None = None) -> np.ndarray:
        plan = info.read_plan
        if not isinstance(plan, _ProfilesPlan):
            raise ValueError("FileInfo has no profiles plan; get it from ProfilesSource.scan")
        if steps is not None and list(steps) != [0]:
            raise ValueError(f"a profile file is one time step (0), not {list(steps)}")
        grid = profile_grid(source)
        try:
            with hdf5_lock(), open_netcdf(info.path) as ds:
                header = _read_header(ds, source.profiles)
                cells = grid.cells(header.lat, header.lon)
                depth = _level_depths(ds, header.lat, ds.variables[plan.variables[0]].shape, source)
                gridded = [_rasterised(ds, name, header, cells, depth, plan, source) for name in plan.variables]
        except (OSError, RuntimeError, IndexError) as err:
            raise SourceError(info.path, f"cannot read the profiles ({short_error(err)})", CORRUPT_HINT) from None
        if out is None:
            out = np.empty((1, len(info.features), grid.lat.size, grid.lon.size), np.float32)
        _write_step(out[0], gridded, plan.depths.size, grid.lon.size)
        if not np.isfinite(out).any():
            raise SourceError(info.path, "no accepted profile level falls on the grid and the depth axis",
                              "check source.crop, source.profiles.depths and max_distance_m")
        return out


register_source("profiles", ProfilesSource())


def _rasterised(ds, name: str, header: _Header, cells: np.ndarray, depth: np.ndarray, plan: _ProfilesPlan,
                source: SourceConfig):
    """One variable: QC applied, resampled onto the target depths, averaged per occupied cell."""
    options = source.profiles
    accepted = header.accepted & _profile_flags(ds, name, options)
    values = _decoded(ds, name, source)
    values[~(accepted[:, None] & _flags_ok(ds, f"{name}_QC", options.accepted_qc, values.shape))] = np.nan
    resampled = resample_profiles(depth, values, plan.depths, options.resample, options.max_distance_m)
    return rasterise(cells, resampled)


# --- layout and header ------------------------------------------------------------------------
def _check_layout(ds, path: str, variables: Sequence[str]) -> None:
    missing = [name for name in _HEADER if name not in ds.variables]
    if missing or not ({"DEPH_CORRECTED", "PRES"} & set(ds.variables)):
        raise SourceError(path, f"not a profile file: no {', '.join(missing) or 'DEPH_CORRECTED or PRES'}",
                          "profiles need JULD, LATITUDE, LONGITUDE and DEPH_CORRECTED or PRES (EN4/Argo layout); "
                          "use another source.kind for other files")
    on_levels = [v for v in ds.variables.values() if v.ndim == 2 and v.dtype != "S1"]
    absent = [name for name in variables if name not in ds.variables or ds.variables[name].ndim != 2]
    if absent:
        raise SourceError(path, f"variable(s) {', '.join(absent)} not found on (N_PROF, N_LEVELS)",
                          f"profile variables in this file: {', '.join(v.name for v in on_levels) or 'none'}; "
                          "check source.profiles.variables")


@dataclass(frozen=True)
class _Header:
    juld: np.ndarray  # datetime64[ns], NaT where missing
    lat: np.ndarray
    lon: np.ndarray
    accepted: np.ndarray  # bool per profile: valid time and position with accepted flags


def _read_header(ds, options) -> _Header:
    days = _decoded_days(ds)
    lat, lon = _decoded(ds, "LATITUDE", None), _decoded(ds, "LONGITUDE", None)
    valid = np.isfinite(days) & (np.abs(lat) <= 90) & np.isfinite(lon)
    for flag in ("JULD_QC", "POSITION_QC"):
        valid &= _flags_ok(ds, flag, options.accepted_qc, days.shape)
    juld = np.where(np.isfinite(days), _JULD_EPOCH + np.round(np.nan_to_num(days) * _NS_PER_DAY).astype(np.int64)
                    .astype("timedelta64[ns]"), np.datetime64("NaT"))
    return _Header(juld, lat, lon, valid)


def _month_start(juld: np.ndarray) -> np.datetime64:
    months, counts = np.unique(juld.astype("datetime64[M]"), return_counts=True)
    return months[np.argmax(counts)].astype("datetime64[ns]")


def _feature_names(name: str, n_depths: int, count_name: str) -> tuple[str, ...]:
    return tuple(f"{name}-d{k}" for k in range(1, n_depths + 1)) + (f"{name}-{count_name}",)


# --- values, flags, depths ---------------------------------------------------------------------
def _decoded(ds, name: str, source: SourceConfig | None) -> np.ndarray:
    variable = ds.variables[name]
    variable.set_auto_maskandscale(False)
    attrs = {k: variable.getncattr(k) for k in variable.ncattrs()}
    return decode_values(variable[...], attrs, sentinel=None if source is None else source.sentinel)


def _decoded_days(ds) -> np.ndarray:
    """JULD in float64 days (float32 would put 1 minute steps 3 minutes apart), NaN where invalid."""
    variable = ds.variables["JULD"]
    variable.set_auto_maskandscale(False)
    raw = np.asarray(variable[...])
    attrs = {k: variable.getncattr(k) for k in variable.ncattrs()}
    days = raw.astype(np.float64) * float(attrs.get("scale_factor", 1.0)) + float(attrs.get("add_offset", 0.0))
    days[invalid_mask(raw, attrs)] = np.nan
    return days


def _flags_ok(ds, name: str, accepted: Sequence[str], shape: tuple[int, ...]) -> np.ndarray:
    """True where the char flags `name` are accepted; all True when the file has no such flags."""
    if name not in ds.variables:
        return np.ones(shape, bool)
    variable = ds.variables[name]
    variable.set_auto_chartostring(False)
    variable.set_auto_maskandscale(False)
    flags = np.asarray(variable[...])
    if flags.dtype.kind in "iu":  # some writers store flags as small integers
        return np.isin(flags, [int(a) for a in accepted if a.isdigit()]).reshape(shape)
    return np.isin(flags.astype("S1"), [a.encode() for a in accepted]).reshape(shape)


def _profile_flag_name(ds, name: str) -> str | None:
    base = name.removesuffix("_CORRECTED").removesuffix("_ADJUSTED")
    return next((f for f in (f"PROFILE_{name}_QC", f"PROFILE_{base}_QC") if f in ds.variables), None)


def _profile_flags(ds, name: str, options) -> np.ndarray:
    flag = _profile_flag_name(ds, name)
    n_prof = ds.variables["LATITUDE"].shape[0]
    return np.ones(n_prof, bool) if flag is None else _flags_ok(ds, flag, options.accepted_profile_qc, (n_prof,))


def _any_good_level(ds, name: str, options) -> np.ndarray:
    """Per profile: some level of `name` has an accepted flag (flags only: scan reads no values)."""
    shape = ds.variables[name].shape
    return _flags_ok(ds, f"{name}_QC", options.accepted_qc, shape).any(axis=1)


def _level_depths(ds, lat: np.ndarray, shape: tuple[int, int], source: SourceConfig) -> np.ndarray:
    """(profile, level) depth in m: DEPH_CORRECTED where valid, else PRES converted at the profile's latitude."""
    accepted = source.profiles.accepted_qc
    depth = np.full(shape, np.nan)
    if "DEPH_CORRECTED" in ds.variables:
        depth = _decoded(ds, "DEPH_CORRECTED", source).astype(np.float64)
        depth[~_flags_ok(ds, "DEPH_CORRECTED_QC", accepted, shape)] = np.nan
        depth[~_flags_ok(ds, "PROFILE_DEPH_QC", source.profiles.accepted_profile_qc, shape[:1])] = np.nan
    if "PRES" in ds.variables:
        pressure = _decoded(ds, "PRES", source).astype(np.float64)
        pressure[~_flags_ok(ds, "PRES_QC", accepted, shape)] = np.nan
        missing = ~np.isfinite(depth) & np.isfinite(pressure)  # convert only the levels that need it
        depth[missing] = pressure_to_depth(pressure[missing], np.broadcast_to(lat[:, None], shape)[missing])
    return depth


@functools.lru_cache(maxsize=8)
def target_depths(depth_from: str | None, depths: tuple[float, ...]) -> np.ndarray:
    """The target axis: `depths`, or the depth coordinate of the gridded file `depth_from`."""
    if depth_from is None:
        return np.asarray(depths, np.float64)
    with hdf5_lock(), open_netcdf(depth_from) as ds:
        found = [v for v in ds.variables.values() if v.ndim == 1 and v.name == v.dimensions[0]
                 and (nc_attr(v, "standard_name") == "depth" or nc_attr(v, "positive") == "down"
                      or v.name in ("depth", "deptht", "DEPTH"))]
        if not found:
            raise SourceError(depth_from, "no depth coordinate (standard_name depth or positive down)",
                              "set source.profiles.depth_from to a gridded file with depth levels, or give depths")
        values = np.asarray(found[0][:], np.float64)
    if values.size == 0 or np.any(np.diff(values) <= 0):
        raise SourceError(depth_from, f"depth coordinate '{found[0].name}' is not strictly ascending",
                          "give source.profiles.depths instead")
    return values


def _write_step(step: np.ndarray, gridded: list, n_depths: int, n_lon: int) -> None:
    """(feature, lat, lon) of one step from each variable's occupied cells; NaN elsewhere."""
    step.fill(np.nan)
    for k, cell_means in enumerate(gridded):
        rows, cols = np.divmod(cell_means.cells, n_lon)
        first = k * (n_depths + 1)
        step[first:first + n_depths, rows, cols] = cell_means.means.T
        step[first + n_depths, rows, cols] = np.where(cell_means.profiles > 0, cell_means.profiles, np.nan)
