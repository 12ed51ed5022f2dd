"""EN4-like monthly profile files drawn from the ocean of `write_ocean_sample` (same seed, same field).

`write_profiles_sample` writes `EN.4.2.2.f.profiles.g10.YYYYMM.nc`, one file per month: Argo-like
floats drift through the open ocean (about 0.25 degrees between cycles) and profile every 10 days,
so 150 floats give about 450 profiles a month. Each profile samples the ocean sample's potential
temperature at its exact position and levels (eddies interpolated to the point, as the gridded
sample interpolates them to cell centres), plus 0.002 degC of instrument noise:
- levels from 0.5-5 m down, 2 m apart to 100 m, then 5, 25 and 50 m apart, to 2000 m for most
  floats, 1000 or 500 m for some, and never below the sea floor: profiles differ in depth;
- `POTM_CORRECTED`, `PSAL_CORRECTED` with `_FillValue` 99999 past the last level and on a few
  dropped levels; level flags `<VAR>_QC` are '1' except spikes flagged '4'; `PROFILE_POTM_QC`
  '4' marks whole bad profiles, `POSITION_QC` '4' wrong positions, JULD fill with `JULD_QC` '9'
  missing dates; all of these carry wrong values, so only quality control recovers the truth;
- depth `DEPH_CORRECTED`, except for one profile in ten (and every third file, Argo-like,
  altogether) which gives pressure `PRES` in dbar only (UNESCO 1983, inverted exactly).
"""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np

from satflow.sources.rasterise import pressure_to_depth
from satflow.sources.samples import synthetic
from satflow.sources.samples.writers import ocean_eddy_states, ocean_temperature, sea_floor_depth

EN4_FILL = 99999.0
_CYCLE_DAYS = 10.0
_DRIFT_DEG = 0.25  # per cycle, one standard deviation
_INSTRUMENT_NOISE_C = 0.002
_TOP_DEPTHS = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0)  # the first level of a profile, one of these
_LEVEL_STEPS = ((100.0, 2.0), (300.0, 5.0), (1000.0, 25.0), (2000.0, 50.0))  # (down to, spacing) in m
_MAX_DEPTHS = ((2000.0, 0.7), (1000.0, 0.2), (500.0, 0.1))  # (profile depth, share of floats)
_MIN_FLOOR_M = 200.0  # floats stay where the sea is deeper than this
_SPIKE_SHARE, _BAD_PROFILE_SHARE, _BAD_POSITION_SHARE, _NO_DATE_SHARE = 0.02, 0.03, 0.02, 0.01
_DROPPED_LEVEL_SHARE, _PRESSURE_ONLY_SHARE = 0.01, 0.1


def write_profiles_sample(out_dir, *, start="2020-01", steps: int = 6, floats: int = 150, seed: int = 0,
                          complevel: int = 1) -> list[Path]:
    """Write `steps` monthly EN4-like profile files into `out_dir`; returns the paths in time order."""
    if steps <= 0 or floats <= 0:
        raise ValueError(f"steps and floats must be positive (got {steps}, {floats})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 4])
    fleet = _Fleet.launch(floats, rng)
    first_month = np.datetime64(str(start)[:7], "M")
    paths = []
    for step, eddies in enumerate(ocean_eddy_states(seed, steps)):
        month = first_month + step
        profiles = fleet.profile_month(month, rng)
        values = _observe(profiles, month, eddies, rng)
        path = out_dir / f"EN.4.2.2.f.profiles.g10.{str(month).replace('-', '')}.nc"
        _write_file(path, profiles, values, pressure_only=step % 3 == 1, seed=seed, complevel=complevel)
        paths.append(path)
    return paths


# --- floats ------------------------------------------------------------------------------------
def _floor_at(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Sea floor depth at points (the diagonal of the gridded function, a few hundred at a time)."""
    out = np.empty(lat.size, np.float32)
    for start in range(0, lat.size, 256):
        part = slice(start, start + 256)
        out[part] = np.diagonal(sea_floor_depth(lat[part], lon[part]))
    return out


class _Fleet:
    def __init__(self, lat, lon, phase, max_depth, platform):
        self.lat, self.lon, self.phase, self.max_depth, self.platform = lat, lon, phase, max_depth, platform

    @classmethod
    def launch(cls, n: int, rng: np.random.Generator) -> _Fleet:
        lat = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(-65)), np.sin(np.radians(85)), 8 * n)))
        lon = rng.uniform(-180.0, 180.0, 8 * n)
        wet = np.flatnonzero(_floor_at(lat, lon) > _MIN_FLOOR_M)[:n]
        if wet.size < n:
            raise ValueError(f"found open ocean for only {wet.size} of {n} floats")
        depths, shares = zip(*_MAX_DEPTHS)
        return cls(lat[wet], lon[wet], rng.uniform(0.0, _CYCLE_DAYS, n), rng.choice(depths, n, p=shares),
                   np.arange(1_900_000, 1_900_000 + n))

    def drift(self, moving: np.ndarray, rng: np.random.Generator) -> None:
        """One cycle of drift for the `moving` floats; a float that would run aground stays put."""
        lat = np.clip(self.lat + rng.normal(0.0, _DRIFT_DEG, self.lat.size), -78.0, 89.0)
        lon = self.lon + rng.normal(0.0, _DRIFT_DEG, self.lon.size) / np.cos(np.radians(lat))
        lon = np.mod(lon + 180.0, 360.0) - 180.0  # floats cross the dateline
        ok = moving & (_floor_at(lat, lon) > _MIN_FLOOR_M)
        self.lat, self.lon = np.where(ok, lat, self.lat), np.where(ok, lon, self.lon)

    def profile_month(self, month: np.datetime64, rng: np.random.Generator) -> dict:
        """Every profile of the month: float index, JULD (days since 1950), lat, lon (vectorised per cycle)."""
        start = (month.astype("datetime64[D]") - np.datetime64("1950-01-01")).astype(float)
        days = float(((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(int))
        rows = []
        for cycle in range(int(np.ceil(days / _CYCLE_DAYS))):
            day = self.phase + cycle * _CYCLE_DAYS
            profiling = day < days
            self.drift(profiling, rng)
            index = np.flatnonzero(profiling)
            rows.append((index, start + day[index], self.lat[index], self.lon[index]))
        index, juld, lat, lon = (np.concatenate(parts) for parts in zip(*rows))
        return {"float": index, "juld": juld, "lat": lat, "lon": lon, "max_depth": self.max_depth[index],
                "platform": self.platform[index]}


# --- values ------------------------------------------------------------------------------------
def _base_levels() -> np.ndarray:
    levels, top = [], 0.0
    for bottom, spacing in _LEVEL_STEPS:
        levels.append(np.arange(top, bottom, spacing))
        top = bottom
    return np.concatenate(levels + [np.array([top])])


def _at_points(fields: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Bilinear values of (n, 180, 360) 1-degree fields at points: `synthetic.to_grid`'s rule, per point."""
    rows = np.clip(lat - synthetic.WEATHER_LAT[0], 0.0, synthetic.WEATHER_LAT.size - 1.0)
    r0 = np.minimum(rows.astype(int), synthetic.WEATHER_LAT.size - 2)
    wr = rows - r0
    cols = np.mod(lon - synthetic.WEATHER_LON[0], 360.0)
    c0 = cols.astype(int) % synthetic.WEATHER_LON.size
    c1 = (c0 + 1) % synthetic.WEATHER_LON.size
    wc = cols - np.floor(cols)
    north_south = lambda c: fields[:, r0, c] * (1 - wr) + fields[:, r0 + 1, c] * wr  # noqa: E731
    return north_south(c0) * (1 - wc) + north_south(c1) * wc


def _observe(profiles: dict, month: np.datetime64, eddies: np.ndarray, rng: np.random.Generator) -> dict:
    """(profile, level) depth, temperature and salinity with their flags; NaN past a profile's last level."""
    n = profiles["lat"].size
    base = _base_levels()
    top = rng.choice(_TOP_DEPTHS, n)
    depth = top[:, None] + base[None, :]
    bottom = np.minimum(profiles["max_depth"], _floor_at(profiles["lat"], profiles["lon"]) - 5.0)
    depth[depth > bottom[:, None]] = np.nan
    here = _at_points(eddies, profiles["lat"], profiles["lon"])[:, :, None]  # (2, n, 1)
    theta = np.empty(depth.shape)
    for value in _TOP_DEPTHS:  # one call per first level, not per profile
        rows = np.flatnonzero(top == value)
        theta[rows] = ocean_temperature(profiles["lat"][rows], value + base, month, here[:, rows])[:, :, 0].T
    theta += rng.normal(0.0, _INSTRUMENT_NOISE_C, theta.shape)
    salinity = 34.7 + 0.8 * np.cos(np.radians(2 * profiles["lat"]))[:, None] * np.exp(-np.nan_to_num(depth) / 400.0)
    return _corrupt(profiles, depth, theta, salinity, rng)


def _corrupt(profiles: dict, depth, theta, salinity, rng) -> dict:
    """Flag spikes, bad profiles, wrong positions and missing dates, and make their values wrong."""
    n, levels = depth.shape
    exists = np.isfinite(depth)
    spikes = exists & (rng.random(depth.shape) < _SPIKE_SHARE)
    dropped = exists & ~spikes & (rng.random(depth.shape) < _DROPPED_LEVEL_SHARE)
    bad_profile = rng.random(n) < _BAD_PROFILE_SHARE
    bad_position = rng.random(n) < _BAD_POSITION_SHARE
    no_date = rng.random(n) < _NO_DATE_SHARE
    theta = theta + np.where(spikes, rng.uniform(3.0, 8.0, depth.shape), 0.0) + np.where(bad_profile, 5.0, 0.0)[:, None]
    theta[~exists | dropped] = np.nan
    salinity = np.where(exists & ~dropped, salinity, np.nan)
    level_qc = np.where(spikes, b"4", np.where(exists, b"1", b" "))
    lat = np.where(bad_position, np.clip(profiles["lat"] + 30.0, -89.0, 89.0), profiles["lat"])
    return {"depth": depth, "theta": theta, "salinity": salinity, "level_qc": level_qc,
            "salinity_qc": np.where(exists, b"1", b" "), "profile_qc": np.where(bad_profile, b"4", b"1"),
            "position_qc": np.where(bad_position, b"4", b"1"), "juld": np.where(no_date, np.nan, profiles["juld"]),
            "juld_qc": np.where(no_date, b"9", b"1"), "lat": lat, "lon": profiles["lon"],
            "pressure_only": rng.random(n) < _PRESSURE_ONLY_SHARE, "platform": profiles["platform"]}


def _depth_to_pressure(depth: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """The pressure whose UNESCO 1983 depth is `depth` (fixed point: d depth / d p is about 0.99)."""
    pressure = depth / 0.99
    for _ in range(8):
        pressure = pressure + (depth - pressure_to_depth(pressure, lat))
    return pressure


# --- writing -----------------------------------------------------------------------------------
def _write_file(path: Path, profiles: dict, values: dict, *, pressure_only: bool, seed: int, complevel: int) -> None:
    depth = values["depth"]
    n, levels = depth.shape
    lat2 = np.broadcast_to(values["lat"][:, None], depth.shape)
    use_pressure = np.ones(n, bool) if pressure_only else values["pressure_only"]
    pressure = np.where(use_pressure[:, None], _depth_to_pressure(np.nan_to_num(depth), lat2), np.nan)
    pressure[~np.isfinite(depth)] = np.nan
    options = dict(zlib=complevel > 0, complevel=max(complevel, 1))
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.setncatts({"title": "EN4-like in-situ profiles (synthetic sample)", "source": "satflow synthetic sample "
                      "generator", "comment": "Argo-like floats sampling the ocean of `satflow sample ocean`",
                      "satflow_seed": np.int64(seed)})
        ds.createDimension("N_PROF", n)
        ds.createDimension("N_LEVELS", levels)
        ds.createDimension("STRING8", 8)
        _float(ds, "JULD", ("N_PROF",), values["juld"], "f8", units="days since 1950-01-01 00:00:00 utc",
               long_name="Julian day (UTC) of the station relative to REFERENCE_DATE_TIME")
        _float(ds, "LATITUDE", ("N_PROF",), values["lat"], "f8", units="degree_north", long_name="Latitude")
        _float(ds, "LONGITUDE", ("N_PROF",), values["lon"], "f8", units="degree_east", long_name="Longitude")
        for name, flags in (("JULD_QC", values["juld_qc"]), ("POSITION_QC", values["position_qc"]),
                            ("PROFILE_POTM_QC", values["profile_qc"]), ("PROFILE_PSAL_QC", np.full(n, b"1"))):
            _chars(ds, name, ("N_PROF",), flags)
        platform = np.array([list(f"{p:<8d}".encode()) for p in values["platform"]], "u1").view("S1")
        _chars(ds, "PLATFORM_NUMBER", ("N_PROF", "STRING8"), platform)
        if not pressure_only:
            _float(ds, "DEPH_CORRECTED", ("N_PROF", "N_LEVELS"), np.where(use_pressure[:, None], np.nan, depth),
                   "f4", units="metre", long_name="Corrected depth", **options)
        _float(ds, "PRES", ("N_PROF", "N_LEVELS"), pressure, "f4", units="decibar", long_name="Sea pressure",
               **options)
        _float(ds, "POTM_CORRECTED", ("N_PROF", "N_LEVELS"), values["theta"], "f4", units="degree_Celsius",
               long_name="Corrected potential temperature", **options)
        _float(ds, "PSAL_CORRECTED", ("N_PROF", "N_LEVELS"), values["salinity"], "f4", units="psu",
               long_name="Corrected practical salinity", **options)
        _chars(ds, "POTM_CORRECTED_QC", ("N_PROF", "N_LEVELS"), values["level_qc"])
        _chars(ds, "PSAL_CORRECTED_QC", ("N_PROF", "N_LEVELS"), values["salinity_qc"])


def _float(ds, name, dims, values, dtype, **attrs) -> None:
    compression = {k: attrs.pop(k) for k in ("zlib", "complevel") if k in attrs}
    var = ds.createVariable(name, dtype, dims, fill_value=EN4_FILL, **compression)
    var.setncatts(attrs)
    var.set_auto_maskandscale(False)
    var[...] = np.where(np.isfinite(values), values, EN4_FILL).astype(dtype)


def _chars(ds, name, dims, flags) -> None:
    var = ds.createVariable(name, "S1", dims)
    var.set_auto_chartostring(False)
    var[...] = np.asarray(flags, "S1")
