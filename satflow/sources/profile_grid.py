"""The grid profiles land on: `source.profiles.resolution` degrees, or the grid of the gridded reference.

With `resolution: null` the profiles take the latitude/longitude axes that the gridded source gives
`depth_from` (after `source.lon_convention` and `source.crop`), so that a reanalysis and its
profiles fill one store cell for cell. Those axes must be regular; a profile falls in the cell
whose centre is nearest along each axis (half a spacing either side), longitudes wrapping.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from satflow.grid import covers_all_longitudes
from satflow.sources.base import SourceError, get_source
from satflow.sources.binning import cell_index, target_grid
from satflow.sources.options import SourceConfig


@dataclass(frozen=True, eq=False)
class ProfileGrid:
    lat: np.ndarray
    lon: np.ndarray
    _target: object = None  # a binning.TargetGrid when the grid is `resolution` degrees

    def cells(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Flat cell (row * n_lon + col) of each profile; -1 off the grid or without a position."""
        if self._target is not None:
            return cell_index(lat, lon, self._target)
        return _regular_cells(np.asarray(lat, np.float64), np.asarray(lon, np.float64), self.lat, self.lon)


def profile_grid(source: SourceConfig) -> ProfileGrid:
    options = source.profiles
    if options.resolution is not None:
        grid = target_grid(options.resolution, source.lon_convention, source.crop)
        return ProfileGrid(grid.lat, grid.lon, grid)
    crop = None if source.crop is None else tuple(source.crop.model_dump().values())
    return _reference_grid(options.depth_from, source.lon_convention, crop)


@functools.lru_cache(maxsize=8)
def _reference_grid(path: str, lon_convention: str, crop: tuple | None) -> ProfileGrid:
    gridded = SourceConfig(kind="gridded", lon_convention=lon_convention,
                           crop=None if crop is None else dict(zip(("lat_min", "lat_max", "lon_min", "lon_max"), crop)))
    info = get_source("gridded").scan(path, gridded)
    for name, axis in (("latitude", info.lat), ("longitude", info.lon)):
        steps = np.diff(np.asarray(axis, np.float64))
        if axis.size < 2 or not np.allclose(steps, steps[0], rtol=1e-4):
            raise SourceError(path, f"its {name} axis is not regular, so profiles cannot share its grid",
                              "set source.profiles.resolution (degrees) instead of null")
    return ProfileGrid(np.asarray(info.lat, np.float64), np.asarray(info.lon, np.float64))


def _regular_cells(lat: np.ndarray, lon: np.ndarray, axis_lat: np.ndarray, axis_lon: np.ndarray) -> np.ndarray:
    d_lat, d_lon = axis_lat[1] - axis_lat[0], axis_lon[1] - axis_lon[0]
    rows = np.floor((lat - axis_lat[0]) / d_lat + 0.5)
    east = np.mod(lon - axis_lon[0] + 0.5 * d_lon, 360.0)  # wraps: the seam is not special
    cols = np.floor(east / d_lon)
    if covers_all_longitudes(axis_lon):
        cols = np.mod(cols, axis_lon.size)
    at_north_edge = (rows == axis_lat.size) & (lat <= axis_lat[-1] + 0.5 * d_lat)  # 90 N joins the last row
    rows = np.where(at_north_edge, axis_lat.size - 1, rows)
    rows = np.where(np.abs(lat) <= 90, rows, -1)
    inside = (rows >= 0) & (rows < axis_lat.size) & (cols >= 0) & (cols < axis_lon.size) & np.isfinite(lon)
    return np.where(inside, rows * axis_lon.size + np.nan_to_num(cols), -1).astype(np.int64)
