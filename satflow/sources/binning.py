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

from satflow.grid import cell_centres, crop_indices, unwrap_longitudes

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
    lat, lon = np.asarray(lat), np.asarray(lon)
    if lat.shape != lon.shape:
        raise ValueError(f"latitudes {lat.shape} and longitudes {lon.shape} differ in shape")
    cells = np.empty(lat.size, np.int64)
    _cell_index(np.ravel(lat), np.ravel(lon), float(grid.resolution), float(grid.lon_lower), grid.row_map,
                grid.col_map, grid.lon.size, cells)
    return cells.reshape(lat.shape)


@numba.njit(cache=True, nogil=True)
def _cell_index(lat, lon, resolution, lon_lower, row_map, col_map, n_lon_out, cells):
    """One compiled pass, no temporaries: numpy's version made five observation-sized arrays and ran at a
    quarter of this speed (10 vs 42 million observations per second on AMSU-A swaths)."""
    n_rows, n_cols = row_map.size, col_map.size
    for i in range(lat.size):
        y, x = np.float64(lat[i]), np.float64(lon[i])
        if not (abs(y) <= 90.0 and np.isfinite(x)):
            cells[i] = -1
            continue
        row = min(max(int(np.floor((y + 90.0) / resolution)), 0), n_rows - 1)  # 90 N joins the last row
        east = x - lon_lower
        if not 0.0 <= east < 360.0:  # wrap: 180 and -180 are one column
            east = np.mod(east, 360.0)
        col = int(np.floor(east / resolution)) % n_cols
        out_row, out_col = row_map[row], col_map[col]
        cells[i] = out_row * n_lon_out + out_col if out_row >= 0 and out_col >= 0 else -1


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
    means = np.empty(sums.shape, np.float32)
    _finish_mean(sums.reshape(-1), counts.reshape(-1), means.reshape(-1))
    return means


@numba.njit(cache=True, nogil=True)
def _finish_mean(sums, counts, means):
    """One pass straight into float32: numpy's where/divide/astype made three grid-sized float64 temporaries
    (0.5-0.7 s for a 0.25-degree grid of 15 channels; 0.07-0.09 s here)."""
    for k in range(sums.size):
        means[k] = sums[k] / counts[k] if counts[k] > 0 else np.nan
