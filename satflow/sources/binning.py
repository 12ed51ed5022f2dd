"""Observations -> regular lat/lon cells: cell indices, mean and count per cell, nearest in time.

Compiled loops (numba) add each observation into per-cell accumulators in place, so memory is
the grid's accumulators plus one block of observations, whatever the number of observations; a
`np.bincount` per block would allocate a grid-sized array per block and channel instead.

Cells: a global grid of `resolution`-degree cells, rows from -90, columns from the lower bound of
the longitude convention. Longitudes are wrapped first (dateline: 180 and -180 are one column),
latitude 90 falls in the last row and -90 in the first (poles), and `row_map`/`col_map` send
global rows and columns to those of a cropped grid (-1 outside it), which also covers crops across
the dateline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from satflow.grid import cell_centres, crop_indices, unwrap_longitudes, wrap_longitude

_LON_LOWER = {"-180..180": -180.0, "0..360": 0.0}


@dataclass(frozen=True, eq=False)
class TargetGrid:
    lat: np.ndarray  # cell centres of the output, ascending
    lon: np.ndarray  # ascending (unwrapped past the seam by a crossing crop)
    resolution: float
    lon_lower: float
    row_map: np.ndarray  # global row -> output row, -1 outside the crop
    col_map: np.ndarray

    @property
    def size(self) -> int:
        return self.lat.size * self.lon.size


def target_grid(resolution: float, lon_convention: str = "-180..180", crop=None) -> TargetGrid:
    lower = _LON_LOWER[lon_convention]
    lat = cell_centres(-90.0, 90.0, resolution)
    lon = cell_centres(lower, lower + 360.0, resolution)
    rows, cols = crop_indices(lat, lon, crop)
    row_map = np.full(lat.size, -1, np.int64)
    col_map = np.full(lon.size, -1, np.int64)
    row_map[rows] = np.arange(rows.size)
    col_map[cols] = np.arange(cols.size)
    return TargetGrid(lat[rows], unwrap_longitudes(lon[cols]), resolution, lower, row_map, col_map)


def cell_index(lat: np.ndarray, lon: np.ndarray, grid: TargetGrid) -> np.ndarray:
    """Flat output cell (row * n_lon + col) of each observation; -1 outside the grid or non-finite."""
    lat = np.asarray(lat, np.float64)
    lon = np.asarray(lon, np.float64)
    finite = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90.0)
    n_rows, n_cols = grid.row_map.size, grid.col_map.size
    rows = np.clip(np.floor((np.where(finite, lat, 0.0) + 90.0) / grid.resolution), 0, n_rows - 1).astype(np.int64)
    wrapped = wrap_longitude(np.where(finite, lon, 0.0), "0..360" if grid.lon_lower == 0.0 else "-180..180")
    cols = np.floor((np.atleast_1d(wrapped) - grid.lon_lower) / grid.resolution).astype(np.int64) % n_cols
    out_rows, out_cols = grid.row_map[rows], grid.col_map[cols.reshape(rows.shape)]
    cells = out_rows * grid.lon.size + out_cols
    return np.where(finite & (out_rows >= 0) & (out_cols >= 0), cells, -1)


@numba.njit(cache=True, nogil=True)
def accumulate_mean(cells, values, sums, counts):
    """sums[cell, c] += values[i, c] and counts[cell, c] += 1 for every finite value (NaN = invalid)."""
    for i in range(cells.size):
        cell = cells[i]
        if cell < 0:
            continue
        for c in range(values.shape[1]):
            value = values[i, c]
            if value == value:
                sums[cell, c] += value
                counts[cell, c] += 1


@numba.njit(cache=True, nogil=True)
def accumulate_nearest(cells, distance, values, best, nearest):
    """Per cell, the values of the observation with the smallest distance (the first one on ties)."""
    for i in range(cells.size):
        cell = cells[i]
        if cell < 0 or not distance[i] < best[cell]:
            continue
        best[cell] = distance[i]
        for k in range(values.shape[1]):
            nearest[cell, k] = values[i, k]


def finish_mean(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(cell, c) float32 means, NaN where no observation fell."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan).astype(np.float32)
