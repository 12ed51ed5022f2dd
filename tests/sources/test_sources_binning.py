"""The compiled binning kernels against plain numpy formulations: cells (dateline, poles, crops, non-finite), means."""

from __future__ import annotations

import numpy as np
import pytest

from satflow.sources.binning import accumulate_mean, cell_index, finish_mean, target_grid
from satflow.sources.options import CropBox

EDGES_LAT = [90.0, -90.0, 89.999, -89.999, 0.0, np.nan, 0.0, 0.0, 0.0, 91.0, 0.0, 45.0]
EDGES_LON = [0.0, 0.0, 0.0, 0.0, 180.0, 0.0, -180.0, np.inf, -1e-30, 0.0, 540.0, 359.999]


def numpy_cells(lat, lon, resolution: float, lon_lower: float) -> np.ndarray:
    """Global cells (-1 where invalid) written with numpy, the way the grid is defined: rows from -90 (90 N in the
    last row), columns from the convention's lower bound after wrapping longitudes into [lower, lower + 360)."""
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    n_rows, n_cols = round(180 / resolution), round(360 / resolution)
    valid = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90)
    with np.errstate(invalid="ignore"):
        rows = np.clip(np.floor((lat + 90) / resolution), 0, n_rows - 1)
        cols = np.floor(np.mod(lon - lon_lower, 360.0) / resolution) % n_cols
    return np.where(valid, rows * n_cols + cols, -1).astype(np.int64)


def observations(n: int = 20_000, seed: int = 0):
    rng = np.random.default_rng(seed)
    lat = np.concatenate([rng.uniform(-92, 92, n), EDGES_LAT]).astype(np.float32)
    lon = np.concatenate([rng.uniform(-540, 540, n), EDGES_LON]).astype(np.float32)
    return lat, lon


@pytest.mark.parametrize("convention, lower", [("-180..180", -180.0), ("0..360", 0.0)])
@pytest.mark.parametrize("resolution", [0.25, 1.0, 30.0])
def test_cells_of_the_global_grid(resolution, convention, lower):
    lat, lon = observations()
    grid = target_grid(resolution, convention)
    np.testing.assert_array_equal(cell_index(lat, lon, grid), numpy_cells(lat, lon, resolution, lower))


def test_cells_at_poles_dateline_and_invalid_positions():
    grid = target_grid(1.0)
    cells = cell_index(np.array(EDGES_LAT), np.array(EDGES_LON), grid)
    rows, cols = np.divmod(cells, 360)
    assert (rows[0], rows[1], rows[2], rows[3]) == (179, 0, 179, 0)  # both poles inside the grid
    assert cols[4] == cols[6] == 0  # 180 and -180 are one column
    assert cols[8] == 180 and cols[10] == 0 and cols[11] == 179  # -1e-30 is 0 E; 540 is the seam; 359.999 is W of 0
    np.testing.assert_array_equal(cells[[5, 7, 9]], -1)  # NaN latitude, infinite longitude, beyond a pole


def test_cells_of_a_crop_across_the_dateline():
    lat, lon = observations(seed=1)
    crop = CropBox(lat_min=-10, lat_max=20, lon_min=170, lon_max=-170)
    grid = target_grid(1.0, crop=crop)
    assert grid.lat.size == 30 and np.array_equal(grid.lon, np.arange(170.5, 190.0, 1.0))
    cells = cell_index(lat, lon, grid)
    rows, cols = np.divmod(numpy_cells(lat, lon, 1.0, -180.0), 360)
    inside = (rows >= 80) & (rows < 110) & ((cols >= 350) | (cols < 10)) & (rows >= 0)
    expected = np.where(inside, (rows - 80) * 20 + (cols - 350) % 360, -1)
    np.testing.assert_array_equal(cells, expected)
    assert (cells >= 0).sum() > 100


def test_cells_keep_the_shape_of_their_inputs():
    lat, lon = observations(n=600)
    assert cell_index(lat[:600].reshape(20, 30), lon[:600].reshape(20, 30), target_grid(1.0)).shape == (20, 30)
    with pytest.raises(ValueError, match=r"latitudes \(600,\) and longitudes \(599,\) differ in shape"):
        cell_index(lat[:600], lon[:599], target_grid(1.0))


def test_means_and_counts_equal_a_numpy_group_by():
    rng = np.random.default_rng(2)
    cells = rng.integers(-1, 45, 5000)  # cells 45..49 see no observation
    values = rng.normal(250, 10, (5000, 3)).astype(np.float32)
    values[rng.random(values.shape) < 0.3] = np.nan
    sums, counts = np.zeros((50, 3)), np.zeros((50, 3), np.int32)
    accumulate_mean(cells, values, sums, counts)
    means = finish_mean(sums, counts)
    assert means.dtype == np.float32 and means.shape == (50, 3)
    for c in range(3):
        keep = (cells >= 0) & np.isfinite(values[:, c])
        expected_counts = np.bincount(cells[keep], minlength=50)
        expected_sums = np.bincount(cells[keep], values[keep, c].astype(np.float64), minlength=50)
        np.testing.assert_array_equal(counts[:, c], expected_counts)
        with np.errstate(invalid="ignore"):
            expected = (expected_sums / expected_counts).astype(np.float32)
        np.testing.assert_array_equal(means[:, c], expected)  # NaN where no observation fell
    assert np.isnan(means).any() and (counts == 0).any()
