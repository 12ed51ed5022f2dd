"""Seeded, reproducible sample NetCDF files shaped like real products (for demos and tests).

`write_amsua_sample` imitates the gridded AMSU-A product `1bamua_YYYYMMDD_tHH.nc`: one file per
6-hourly analysis time holding the passes of a few sun-synchronous satellites within +-3 h
(fill between the swaths), with variables named after the BUFR mnemonics of NCEP's 1bamua dump:
- `tmbrs(time, channel, lat, lon)`: brightness temperature (TMBR, K) of the 15 channels, the
  average of the fields of view (FOVs) that overlap the cell;
- `channels(time, channel, lat, lon)`: the number of FOVs averaged into that cell for that channel
  (quality control can reject a channel, e.g. window channels in heavy rain or a failed channel);
- (time, lat, lon) fields of the pass nearest the analysis time: `said` satellite (WMO id, BUFR
  001007), `siid` instrument (570 = AMSU-A), `fovn` FOV number 1..30, `lsql` land/sea qualifier
  (0 land, 1 sea, 2 coast), `saza`/`soza` satellite/solar zenith angle, `hols` height of the land
  surface (m), `hmsl` satellite height above sea level (m), `solazi` solar azimuth and `bearaz`
  bearing from the cell to the satellite's sub-point (degrees from north, clockwise).
Brightness temperatures follow a simple climatology: window channels 1-3 and 15 see the surface
(warm land, radiometrically cold sea), tropospheric sounding channels 4-8 get colder with height,
stratospheric channels 9-14 warmer with height; plus correlated weather, limb effects and noise.

`write_ocean_sample` imitates a monthly ocean reanalysis (`thetao_YYYYMM.nc`): potential
temperature on depth levels, int16-packed like CMEMS products, land and sea floor masked.

A seed fixes every value; land and weather are drawn on a 1-degree grid and interpolated, so the
same seed shows the same weather at every resolution (instrument noise and FOV counts differ).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import netCDF4
import numpy as np

from satflow.grid import cell_centres
from satflow.sources.samples import orbits, synthetic

AMSUA_FREQUENCIES_GHZ = (23.8, 31.4, 50.3, 52.8, 53.596, 54.4, 54.94, 55.5, 57.29, 57.29, 57.29, 57.29, 57.29,
                         57.29, 89.0)
AMSUA_FILL = np.float32(-9999.0)
AMSUA_INSTRUMENT_ID = 570  # WMO common code table C-8
DEFAULT_SATELLITES = ("NOAA-18", "MetOp-B", "MetOp-C")  # about 25% of the globe unobserved per 6 h
HALF_WINDOW_S = 3 * 3600.0

# Sounding channels 4..14: equator and pole values (K), summer-hemisphere warming (K), limb
# effect (K per unit of sec(zenith) - 1), response to tropospheric / stratospheric weather.
_SOUNDING = np.array([
    # equator pole  summer limb  trop  strat
    [258.0, 232.0, 6.0, -9.0, 2.0, 0.0],
    [251.0, 226.0, 5.0, -8.0, 1.8, 0.0],
    [240.0, 216.0, 4.0, -7.0, 1.5, 0.0],
    [229.0, 211.0, 4.0, -5.0, 1.2, 0.2],
    [218.0, 208.0, 4.0, -3.0, 1.0, 0.5],
    [206.0, 212.0, 10.0, -1.0, -0.8, 1.2],
    [211.0, 216.0, 14.0, 1.0, 0.0, 1.6],
    [217.0, 220.0, 18.0, 2.0, 0.0, 2.0],
    [225.0, 226.0, 22.0, 3.0, 0.0, 2.5],
    [235.0, 234.0, 26.0, 4.0, 0.0, 3.0],
    [247.0, 244.0, 30.0, 5.0, 0.0, 3.5],
])
# Noise-equivalent temperature of one FOV (K), channels 1..15.
_NEDT = np.array([0.3, 0.3, 0.4, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.4, 0.4, 0.6, 0.8, 1.2, 0.5], np.float32)
_WINDOW = (0, 1, 2, 14)  # channel indices seeing the surface
_RAIN_FLAGGED = (0, 1, 2, 3, 14)  # rejected over sea in heavy rain


# --- AMSU-A ------------------------------------------------------------------------------------
def write_amsua_sample(out_dir, *, start="2020-01-01", steps: int = 8, resolution: float = 2.0, seed: int = 0,
                       satellites: Sequence[str] = DEFAULT_SATELLITES, complevel: int = 1) -> list[Path]:
    """Write `steps` six-hourly gridded AMSU-A files `1bamua_YYYYMMDD_tHH.nc` into `out_dir`.

    `resolution` is the grid spacing in degrees (0.25 like the real product); `satellites` are
    names from `orbits.AMSUA_CONSTELLATION` (all five leave only ~1% unobserved per 6 h).
    Returns the paths in time order.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    constellation = _constellation(satellites)
    grid = _AmsuaGrid(resolution)
    weather_rng = np.random.default_rng([seed, 1])
    weather = synthetic.correlated_noise(weather_rng, 3, 8.0)
    paths = []
    for step, time in enumerate(_times(start, steps, np.timedelta64(6, "h"))):
        if step:
            weather = synthetic.evolve(weather, weather_rng, 8.0)
        fields = _amsua_fields(grid, time, synthetic.to_grid(weather, grid.lat, grid.lon), constellation,
                               np.random.default_rng([seed, 2, step]))
        path = out_dir / f"1bamua_{_stamp(time, '%Y%m%d')}_t{_stamp(time, '%H')}.nc"
        _write_amsua_file(path, grid, time, fields, seed, complevel)
        paths.append(path)
    return paths


def _constellation(names: Sequence[str]) -> tuple[orbits.PolarOrbiter, ...]:
    by_name = {s.name: s for s in orbits.AMSUA_CONSTELLATION}
    unknown = [n for n in names if n not in by_name]
    if unknown or not names:
        raise ValueError(f"unknown satellite(s) {unknown or names}; choose from {sorted(by_name)}")
    return tuple(by_name[n] for n in names)


class _AmsuaGrid:
    """Cell centres (lat ascending from -90, lon from -180) and the static surface description."""

    def __init__(self, resolution: float):
        self.resolution = resolution
        self.lat = cell_centres(-90.0, 90.0, resolution)
        self.lon = cell_centres(-180.0, 180.0, resolution)
        self.land = synthetic.land_mask(self.lat, self.lon)
        self.height = synthetic.surface_height(self.lat, self.lon, self.land)
        self.lsql = np.where(synthetic.coast_mask(self.land), 2, np.where(self.land, 0, 1)).astype(np.float32)


def _amsua_fields(grid: _AmsuaGrid, time: np.datetime64, weather: np.ndarray, constellation,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every variable of one file, fill already applied; (channel, lat, lon) or (lat, lon)."""
    centre = orbits.seconds_since_epoch(time)
    seen = orbits.observe(grid.lat, grid.lon, centre, HALF_WINDOW_S, constellation)
    sat = np.maximum(seen.satellite, 0)
    lat2 = np.broadcast_to(grid.lat[:, None], seen.observed.shape)
    lon2 = np.broadcast_to(grid.lon[None, :], seen.observed.shape)
    solar_zenith, solar_azimuth = orbits.solar_angles(lat2, lon2, np.where(seen.observed, seen.time_s, centre))
    surface = _surface_temperature(grid, solar_zenith, weather, orbits.season(centre))
    counts = _fov_counts(grid, seen, sat, constellation, rng)
    valid = _channel_validity(grid, seen, weather, constellation)
    tb = _brightness_temperatures(grid, surface, weather, seen.zenith_deg, orbits.season(centre))
    noise = rng.standard_normal(tb.shape, dtype=np.float32)
    noise *= _NEDT[:, None, None] / np.sqrt(np.maximum(counts, 1.0))  # averaging FOVs lowers the noise
    tb += noise
    per_sat = {key: np.array([getattr(s, key) for s in constellation]) for key in ("wmo_id", "altitude_km")}
    aux = {
        "said": per_sat["wmo_id"][sat], "siid": np.full(sat.shape, AMSUA_INSTRUMENT_ID),
        "fovn": orbits.fov_number(seen.scan_angle_deg), "lsql": grid.lsql, "saza": seen.zenith_deg,
        "soza": solar_zenith, "hols": grid.height, "hmsl": 1000.0 * per_sat["altitude_km"][sat],
        "solazi": solar_azimuth, "bearaz": seen.bearing_deg,
    }
    fields = {"tmbrs": np.where(valid, tb, AMSUA_FILL), "channels": np.where(valid, counts, AMSUA_FILL)}
    fields.update({name: np.where(seen.observed, value, AMSUA_FILL) for name, value in aux.items()})
    return {name: value.astype(np.float32, copy=False) for name, value in fields.items()}


def _surface_temperature(grid: _AmsuaGrid, solar_zenith, weather, season: float) -> np.ndarray:
    """Skin temperature (K): sea from a latitude/season profile, land warmer by day, colder up high."""
    lat = grid.lat[:, None].astype(np.float32)
    thermal = np.cos(np.radians(lat - 6.0 * season)) ** 2
    sea = np.maximum(-1.8, 29.0 * thermal - 1.5) + 0.8 * weather[0]
    polar = np.clip((np.abs(lat) - 55.0) / 25.0, 0.0, 1.0)
    daylight = np.cos(np.radians(np.minimum(solar_zenith, 90.0))).astype(np.float32)
    land = (28.0 * thermal - 4.0 + 10.0 * season * np.sin(np.radians(lat)) - 22.0 * polar + 10.0 * daylight
            - 6.5e-3 * grid.height + 2.0 * weather[0])
    return (np.where(grid.land, land, sea) + 273.15).astype(np.float32)


def _brightness_temperatures(grid: _AmsuaGrid, surface, weather, zenith_deg, season: float) -> np.ndarray:
    """(15, lat, lon) brightness temperatures before instrument noise."""
    phi = np.radians(grid.lat[:, None].astype(np.float32))
    cos2, sin_phi = np.cos(phi) ** 2, np.sin(phi)
    trop, wet, strat = weather
    limb = (1.0 / np.cos(np.radians(np.nan_to_num(zenith_deg, nan=0.0))) - 1.0).astype(np.float32)
    warm = surface - np.float32(273.15)
    vapour = np.clip((5.0 + 50.0 * cos2**2) * (1.0 + 0.25 * wet), 1.0, None) * np.where(grid.land, 0.6, 1.0)
    cloud = np.maximum(wet - 1.0, 0.0)
    tb = np.empty((15, *surface.shape), np.float32)
    # Window channels: sea has a low emissivity (cold, vapour and cloud make it warmer),
    # land a high one (snow and ice lower it), rain scatters at 89 GHz over land.
    sea = (150 + 0.5 * warm + 0.9 * vapour + 25 * cloud, 145 + 0.5 * warm + 0.4 * vapour + 25 * cloud,
           205 + 0.6 * warm + 0.2 * vapour + 5 * cloud, 200 + 0.8 * warm + 0.8 * vapour + 15 * cloud)
    frozen = surface < 263.0
    emissivity = ((0.95, 0.90), (0.94, 0.87), (0.93, 0.84), (0.92, 0.78))  # (bare, snow/ice)
    for k, channel in enumerate(_WINDOW):
        land = np.where(frozen, emissivity[k][1], emissivity[k][0]) * surface
        if channel == 14:
            land -= 35.0 * np.maximum(wet - 1.6, 0.0)
        tb[channel] = np.where(grid.land, land, sea[k] + 12.0 * limb)
    # Sounding channels: latitude profile, summer hemisphere, weather, limb, a little surface.
    for k, (equator, pole, summer, limb_k, w_trop, w_strat) in enumerate(_SOUNDING):
        tb[3 + k] = (pole + (equator - pole) * cos2 + summer * season * sin_phi
                     + w_trop * trop + w_strat * strat + limb_k * limb)
    tb[3] += 0.2 * (warm - 15.0) - 4.0e-3 * grid.height
    tb[4] += 0.05 * (warm - 15.0) - 1.5e-3 * grid.height
    return tb


def _fov_counts(grid: _AmsuaGrid, seen, sat, constellation, rng) -> np.ndarray:
    """(lat, lon) FOVs overlapping each cell: (cell + spacing)^2 / spacing^2 on average, Poisson, >= 1."""
    ratio = np.array([s.height_ratio for s in constellation])[sat]
    period = np.array([s.period_s for s in constellation])[sat]
    along_km, cross_km = orbits.footprint_spacing_km(np.nan_to_num(seen.scan_angle_deg), ratio, period)
    cell_km = orbits.EARTH_RADIUS_KM * np.radians(grid.resolution)
    width_km = cell_km * np.cos(np.radians(grid.lat))[:, None]
    expected = (cell_km + along_km) * (width_km + cross_km) / (along_km * cross_km)
    counts = np.maximum(rng.poisson(expected), 1).astype(np.float32)
    return np.where(seen.observed, counts, np.float32(0.0))


def _channel_validity(grid: _AmsuaGrid, seen, weather, constellation) -> np.ndarray:
    """(15, lat, lon): observed, the satellite's channel works, window channels not in heavy rain."""
    valid = np.repeat(seen.observed[None], 15, axis=0)
    for index, satellite in enumerate(constellation):
        for channel in satellite.failed_channels:
            valid[channel - 1] &= seen.satellite != index
    heavy_rain = (~grid.land) & (weather[1] > 2.2)
    for channel in _RAIN_FLAGGED:
        valid[channel] &= ~heavy_rain
    return valid


_AMSUA_AUX = {
    "said": ("satellite identifier (WMO, BUFR 001007)", "1"),
    "siid": ("satellite instrument identifier (WMO common code table C-8)", "1"),
    "fovn": ("field of view number", "1"),
    "lsql": ("land/sea qualifier (0 land, 1 sea, 2 coast)", "1"),
    "saza": ("satellite zenith angle", "degree"),
    "soza": ("solar zenith angle", "degree"),
    "hols": ("height of land surface", "m"),
    "hmsl": ("satellite height above mean sea level", "m"),
    "solazi": ("solar azimuth", "degree"),
    "bearaz": ("bearing or azimuth (cell to sub-satellite point)", "degree"),
}


def _write_amsua_file(path: Path, grid: _AmsuaGrid, time, fields, seed: int, complevel: int) -> None:
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        _global_attributes(ds, "Gridded AMSU-A level 1b brightness temperatures (synthetic sample)", seed)
        ds.createDimension("time", 1)
        ds.createDimension("channel", 15)
        _write_time(ds, time, "seconds since 1970-01-01 00:00:00")
        channel = ds.createVariable("channel", "i4", ("channel",))
        channel.long_name = "AMSU-A channel number"
        channel[:] = np.arange(1, 16)
        _write_lat_lon(ds, grid.lat, grid.lon)
        options = dict(zlib=complevel > 0, complevel=max(complevel, 1), shuffle=True, fill_value=AMSUA_FILL)
        ny, nx = grid.lat.size, grid.lon.size
        for name, long_name, units in (("tmbrs", "brightness temperature", "K"),
                                       ("channels", "number of fields of view averaged in the cell", "1")):
            var = ds.createVariable(name, "f4", ("time", "channel", "lat", "lon"), chunksizes=(1, 1, ny, nx), **options)
            var.setncatts({"long_name": long_name, "units": units,
                           "channel_frequency_GHz": np.array(AMSUA_FREQUENCIES_GHZ, np.float32)})
            var[0] = fields[name]
        for name, (long_name, units) in _AMSUA_AUX.items():
            var = ds.createVariable(name, "f4", ("time", "lat", "lon"), chunksizes=(1, ny, nx), **options)
            var.setncatts({"long_name": long_name, "units": units})
            var[0] = fields[name]


# --- ocean -------------------------------------------------------------------------------------
THETAO_SCALE = 0.000732444226741791  # int16 packing of CMEMS reanalysis products
THETAO_OFFSET = 21.0
THETAO_FILL = np.int16(-32767)


def write_ocean_sample(out_dir, *, start="2020-01", steps: int = 6, resolution: float = 2.0,
                       depths: Sequence[float] = (0.5, 10, 50, 100, 200), seed: int = 0,
                       complevel: int = 1) -> list[Path]:
    """Write `steps` monthly files `thetao_YYYYMM.nc`: thetao(time, depth, lat, lon) in degC.

    Grid: latitude ascending, longitude 0..360 like many ocean models; land and sea floor are
    `_FillValue`; values are int16 with scale_factor/add_offset. Returns the paths in time order.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lat, lon = cell_centres(-90.0, 90.0, resolution), cell_centres(0.0, 360.0, resolution)
    depths = np.asarray(depths, np.float32)
    floor = sea_floor_depth(lat, lon)
    paths = []
    first_month = np.datetime64(str(start)[:7], "M")
    for step, eddies in enumerate(ocean_eddy_states(seed, steps)):
        month = first_month + step
        theta = ocean_temperature(lat, depths, month, synthetic.to_grid(eddies, lat, lon))
        theta[depths[:, None, None] > floor[None]] = np.nan
        path = out_dir / f"thetao_{_stamp(month, '%Y%m')}.nc"
        _write_ocean_file(path, lat, lon, depths, month.astype("datetime64[ns]"), theta, seed, complevel)
        paths.append(path)
    return paths


def ocean_eddy_states(seed: int, steps: int):
    """The (2, 180, 360) eddy fields of each month in turn: the ocean sample and its profiles share them."""
    rng = np.random.default_rng([seed, 3])
    eddies = synthetic.correlated_noise(rng, 2, 3.0)
    for step in range(steps):
        if step:
            eddies = synthetic.evolve(eddies, rng, 3.0, memory=0.5, shift_deg=-1)
        yield eddies


def sea_floor_depth(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Ocean depth (m; 0 on land): shelves near coasts, abyssal plains far from them."""
    ocean = (~synthetic.land_mask(synthetic.WEATHER_LAT, synthetic.WEATHER_LON)).astype(np.float64)
    openness = synthetic.to_grid(synthetic.smooth(ocean, 2.5)[None], lat, lon)[0]
    depth = 20.0 + 5000.0 * np.clip((openness - 0.6) / 0.35, 0.0, 1.0) ** 2
    return np.where(synthetic.land_mask(lat, lon), 0.0, depth).astype(np.float32)


def ocean_temperature(lat: np.ndarray, depths: np.ndarray, month: np.datetime64, eddies: np.ndarray) -> np.ndarray:
    """(depth, lat, lon) degC: seasonal SST over a mixed layer and an exponential thermocline."""
    month_of_year = int(str(month)[5:7])
    season = np.cos(2.0 * np.pi * (month_of_year - 8) / 12.0)  # +1 in the northern late summer
    lat2 = lat[:, None]
    phi = np.radians(lat2)
    sst = np.maximum(-1.8, 29.0 * np.cos(np.radians(lat2 - 4.0 * season)) ** 2 - 1.5 + 4.0 * season * np.sin(2 * phi))
    sst = sst + 0.8 * eddies[0]
    winter = np.clip(-season * np.sign(lat2), 0.0, 1.0) * np.abs(np.sin(phi))
    mixed_layer = 30.0 + 120.0 * winter + 10.0 * eddies[1]
    deep = 2.0 + 3.0 * np.cos(phi) ** 2
    scale = 150.0 + 120.0 * np.cos(phi) ** 2
    z = depths[:, None, None]
    below = np.maximum(z - mixed_layer[None], 0.0)
    theta = deep[None] + (sst[None] - deep[None]) * np.exp(-below / scale[None])
    theta += 0.4 * eddies[1][None] * np.exp(-z / 300.0)  # eddies heave the thermocline
    return np.maximum(theta, -1.9).astype(np.float32)


def _write_ocean_file(path: Path, lat, lon, depths, time, theta, seed: int, complevel: int) -> None:
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        _global_attributes(ds, "Monthly ocean potential temperature (synthetic sample)", seed)
        ds.createDimension("time", 1)
        ds.createDimension("depth", depths.size)
        _write_time(ds, time, "hours since 1950-01-01 00:00:00")
        depth = ds.createVariable("depth", "f4", ("depth",))
        depth.setncatts({"standard_name": "depth", "long_name": "Depth", "units": "m", "positive": "down", "axis": "Z"})
        depth[:] = depths
        _write_lat_lon(ds, lat, lon)
        var = ds.createVariable("thetao", "i2", ("time", "depth", "lat", "lon"), zlib=complevel > 0,
                                complevel=max(complevel, 1), shuffle=True, fill_value=THETAO_FILL,
                                chunksizes=(1, 1, lat.size, lon.size))
        var.setncatts({"standard_name": "sea_water_potential_temperature", "long_name": "Temperature",
                       "units": "degrees_C", "scale_factor": THETAO_SCALE, "add_offset": THETAO_OFFSET})
        packed = np.where(np.isfinite(theta), np.round((np.nan_to_num(theta) - THETAO_OFFSET) / THETAO_SCALE),
                          THETAO_FILL).astype(np.int16)
        var.set_auto_maskandscale(False)
        var[0] = packed


# --- shared ------------------------------------------------------------------------------------
def _times(start, steps: int, interval: np.timedelta64) -> np.ndarray:
    if steps <= 0:
        raise ValueError(f"steps must be positive (got {steps})")
    try:
        first = np.datetime64(str(start), "ns")
    except ValueError:
        raise ValueError(f"start {start!r} is not a date like 2020-01-01 or 2020-01-01T06") from None
    return first + np.arange(steps) * interval.astype("timedelta64[ns]")


def _stamp(time: np.datetime64, fmt: str) -> str:
    return time.astype("datetime64[s]").item().strftime(fmt)


def _global_attributes(ds, title: str, seed: int) -> None:
    ds.setncatts({"Conventions": "CF-1.8", "title": title, "source": "satflow synthetic sample generator",
                  "comment": "analytic climatology + seeded random weather; not real observations",
                  "satflow_seed": np.int64(seed)})


def _write_time(ds, time: np.datetime64, units: str) -> None:
    var = ds.createVariable("time", "f8", ("time",))
    var.setncatts({"standard_name": "time", "units": units, "calendar": "standard", "axis": "T"})
    var[:] = netCDF4.date2num([time.astype("datetime64[s]").item()], units, "standard")


def _write_lat_lon(ds, lat: np.ndarray, lon: np.ndarray) -> None:
    ds.createDimension("lat", lat.size)
    ds.createDimension("lon", lon.size)
    for name, values, std, units, axis in (("lat", lat, "latitude", "degrees_north", "Y"),
                                           ("lon", lon, "longitude", "degrees_east", "X")):
        var = ds.createVariable(name, "f4", (name,))
        var.setncatts({"standard_name": std, "long_name": std, "units": units, "axis": axis})
        var[:] = values


# --- AMSU-A raw swaths -------------------------------------------------------------------------
_SWATH_GRID_DEG = 0.25  # land, coast and terrain are looked up on this grid
_FOV_DWELL_S = 0.2  # time between neighbouring beam positions of one scan


def write_amsua_swath_sample(out_dir, *, start="2020-01-01", steps: int = 4, seed: int = 0,
                             satellites: Sequence[str] = DEFAULT_SATELLITES, complevel: int = 1) -> list[Path]:
    """Write raw AMSU-A level-1b swaths, one file per satellite and orbit, `amsua_<sat>_<YYYYMMDDTHHMM>.nc`.

    They cover the 6-hourly windows centred at `start` + 6 h k (k < `steps`), i.e. from 3 h before
    `start`: `tmbrs(scanline, fov, channel)` (30 FOVs, 15 channels, fill -9999 for failed channels,
    rain-flagged window channels and random bad observations), per-observation `lat`, `lon`, `time`,
    and the same auxiliary variables as the gridded product, per observation or per scan line. Some
    orbits miss a run of scan lines (a data gap). Binned with `source.kind: swath` they give the
    gridded product's 40 features. Returns the paths sorted by name.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    constellation = _constellation(satellites)
    first = _times(start, 1, np.timedelta64(6, "h"))[0] - np.timedelta64(3, "h")
    t0, t1 = orbits.seconds_since_epoch(first), orbits.seconds_since_epoch(first) + steps * 6 * 3600.0
    surface = _AmsuaGrid(_SWATH_GRID_DEG)
    weather = _weather_states(seed, steps)
    paths = []
    for index, sat in enumerate(constellation):
        rng = np.random.default_rng([seed, 3, index])
        for orbit_start in np.arange(t0, t1, sat.period_s):
            end = min(orbit_start + sat.period_s, t1 - orbits.FOV_COUNT * _FOV_DWELL_S)  # last scan ends inside
            lines = np.arange(orbit_start, end, orbits.SCAN_LINE_S)
            lines = _drop_gap(lines, rng)
            fields = _swath_fields(sat, lines, surface, weather, t0, rng)
            stamp = _stamp(orbits.EPOCH + np.timedelta64(int(orbit_start), "s"), "%Y%m%dT%H%M")
            path = out_dir / f"amsua_{sat.name.lower()}_{stamp}.nc"
            _write_swath_file(path, fields, seed, complevel)
            paths.append(path)
    return sorted(paths)


def _weather_states(seed: int, steps: int) -> np.ndarray:
    """(steps, 3, 180, 360) weather of each 6-hourly window, evolving like the gridded sample's."""
    rng = np.random.default_rng([seed, 1])
    states = [synthetic.correlated_noise(rng, 3, 8.0)]
    for _ in range(steps - 1):
        states.append(synthetic.evolve(states[-1], rng, 8.0))
    return np.stack(states)


def _drop_gap(lines: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if lines.size > 200 and rng.random() < 0.3:
        gap = int(rng.integers(20, 80))
        at = int(rng.integers(0, lines.size - gap))
        return np.delete(lines, np.arange(at, at + gap))
    return lines


class _SwathPoints:
    """Observation points shaped (n, 1), so that the gridded product's field models apply unchanged."""

    def __init__(self, lat: np.ndarray, lon: np.ndarray, surface: _AmsuaGrid):
        rows = np.clip(((lat + 90.0) / surface.resolution).astype(int), 0, surface.lat.size - 1)
        cols = ((lon + 180.0) / surface.resolution).astype(int) % surface.lon.size
        self.lat = lat
        self.land = surface.land[rows, cols][:, None]
        self.height = surface.height[rows, cols][:, None]
        self.lsql = surface.lsql[rows, cols]


def _swath_fields(sat: orbits.PolarOrbiter, lines: np.ndarray, surface: _AmsuaGrid, weather: np.ndarray,
                  t0: float, rng: np.random.Generator) -> dict:
    geometry = orbits.swath_geometry(sat, lines)
    time_s = lines[:, None] + _FOV_DWELL_S * np.arange(orbits.FOV_COUNT)[None, :]
    lat, lon = geometry.lat.ravel(), geometry.lon.ravel()
    points = _SwathPoints(lat, lon, surface)
    window = np.clip(((time_s.ravel() - t0) // (6 * 3600.0)).astype(int), 0, len(weather) - 1)
    rows = np.clip(np.rint(lat - synthetic.WEATHER_LAT[0]).astype(int), 0, synthetic.WEATHER_LAT.size - 1)
    cols = np.rint(np.mod(lon - synthetic.WEATHER_LON[0], 360.0)).astype(int) % synthetic.WEATHER_LON.size
    here = weather[window, :, rows, cols].T[:, :, None].astype(np.float32)  # (3, n, 1)
    solar_zenith, solar_azimuth = orbits.solar_angles(lat, lon, time_s.ravel())
    season = orbits.season(float(lines.mean()))
    skin = _surface_temperature(points, solar_zenith[:, None], here, season)
    tb = _brightness_temperatures(points, skin, here, geometry.zenith_deg.reshape(-1, 1), season)[:, :, 0]
    tb += rng.standard_normal(tb.shape, dtype=np.float32) * _NEDT[:, None]
    valid = np.ones(tb.shape, bool)
    valid[[c - 1 for c in sat.failed_channels]] = False
    heavy_rain = ~points.land[:, 0] & (here[1, :, 0] > 2.2)
    valid[list(_RAIN_FLAGGED)] &= ~heavy_rain
    valid &= rng.random(tb.shape[1]) > 0.003  # bad observations
    n_lines, shape = lines.size, geometry.lat.shape
    per_obs = {"fovn": np.broadcast_to(np.arange(1, orbits.FOV_COUNT + 1), shape), "lsql": points.lsql.reshape(shape),
               "saza": geometry.zenith_deg, "soza": solar_zenith.reshape(shape),
               "hols": points.height.reshape(shape), "solazi": solar_azimuth.reshape(shape),
               "bearaz": geometry.bearing_deg}
    per_line = {"said": np.full(n_lines, sat.wmo_id), "siid": np.full(n_lines, AMSUA_INSTRUMENT_ID),
                "hmsl": np.full(n_lines, 1000.0 * sat.altitude_km)}
    return {"lat": geometry.lat, "lon": geometry.lon, "time": time_s, "per_obs": per_obs, "per_line": per_line,
            "tmbrs": np.where(valid, tb, AMSUA_FILL).T.reshape(*shape, 15).astype(np.float32)}


def _write_swath_file(path: Path, fields: dict, seed: int, complevel: int) -> None:
    n_lines, n_fov = fields["lat"].shape
    options = dict(zlib=complevel > 0, complevel=max(complevel, 1), shuffle=True)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        _global_attributes(ds, "AMSU-A level 1b brightness temperatures, raw swath (synthetic sample)", seed)
        ds.createDimension("scanline", n_lines)
        ds.createDimension("fov", n_fov)
        ds.createDimension("channel", 15)
        for name, std, units in (("lat", "latitude", "degrees_north"), ("lon", "longitude", "degrees_east")):
            var = ds.createVariable(name, "f4", ("scanline", "fov"), **options)
            var.setncatts({"standard_name": std, "units": units})
            var[:] = fields[name]
        time = ds.createVariable("time", "f8", ("scanline", "fov"), **options)
        time.setncatts({"standard_name": "time", "units": "seconds since 2000-01-01 00:00:00", "calendar": "standard"})
        time[:] = fields["time"]
        tmbrs = ds.createVariable("tmbrs", "f4", ("scanline", "fov", "channel"), fill_value=AMSUA_FILL, **options)
        tmbrs.setncatts({"long_name": "brightness temperature", "units": "K",
                         "channel_frequency_GHz": np.array(AMSUA_FREQUENCIES_GHZ, np.float32)})
        tmbrs.set_auto_maskandscale(False)
        tmbrs[:] = fields["tmbrs"]
        for name, (long_name, units) in _AMSUA_AUX.items():
            per_line = name in fields["per_line"]
            var = ds.createVariable(name, "f4", ("scanline",) if per_line else ("scanline", "fov"), **options)
            var.setncatts({"long_name": long_name, "units": units})
            var[:] = fields["per_line" if per_line else "per_obs"][name]
