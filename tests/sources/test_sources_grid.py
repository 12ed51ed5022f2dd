"""satflow.grid: longitude conventions, crops across the dateline, dateline-safe centres."""

import numpy as np
import pytest

from satflow.grid import (cell_centres, crop_indices, dateline_safe_center, latitude_order, longitude_span,
                          normalize_longitudes, unwrap_longitudes, wrap_longitude)
from satflow.sources.options import CropBox


def test_wrap_longitude_half_open_intervals():
    np.testing.assert_array_equal(wrap_longitude([180.0, -180.0, 359.5, 360.0, -0.5, 540.0]),
                                  [-180.0, -180.0, -0.5, 0.0, -0.5, -180.0])
    np.testing.assert_array_equal(wrap_longitude([-180.0, -0.5, 360.0, 720.25], "0..360"), [180.0, 359.5, 0.0, 0.25])
    assert wrap_longitude(-1e-14, "0..360") == 0.0  # mod would give exactly 360
    with pytest.raises(ValueError, match="unknown longitude convention"):
        wrap_longitude(0.0, "east")


def test_normalize_0_360_axis_to_minus180_180():
    lon = np.arange(0.0, 360.0, 45.0)  # 0 45 ... 315
    new, order = normalize_longitudes(lon, "-180..180")
    np.testing.assert_array_equal(new, [-180.0, -135.0, -90.0, -45.0, 0.0, 45.0, 90.0, 135.0])
    np.testing.assert_array_equal(order, [4, 5, 6, 7, 0, 1, 2, 3])
    np.testing.assert_array_equal(wrap_longitude(lon[order]), new)


def test_normalize_drops_the_duplicate_seam_column():
    new, order = normalize_longitudes(np.array([0.0, 120.0, 240.0, 360.0]), "0..360")
    np.testing.assert_array_equal(new, [0.0, 120.0, 240.0])
    np.testing.assert_array_equal(order, [0, 1, 2])


def test_latitude_order_sorts_descending_axis():
    np.testing.assert_array_equal(latitude_order([60.0, 0.0, -60.0]), [2, 1, 0])


def test_crop_inside_the_convention():
    lat, lon = cell_centres(-90, 90, 30), cell_centres(-180, 180, 60)  # -75..75, -150..150
    lat_i, lon_i = crop_indices(lat, lon, CropBox(lat_min=-50, lat_max=50, lon_min=-100, lon_max=100))
    np.testing.assert_array_equal(lat[lat_i], [-45.0, -15.0, 15.0, 45.0])
    np.testing.assert_array_equal(lon[lon_i], [-90.0, -30.0, 30.0, 90.0])


def test_crop_across_the_dateline_is_contiguous_and_ascending():
    lon = cell_centres(-180, 180, 10)  # -175 .. 175
    _, lon_i = crop_indices(np.array([0.0]), lon, CropBox(lon_min=150, lon_max=-150))
    np.testing.assert_array_equal(lon[lon_i], [155, 165, 175, -175, -165, -155])
    np.testing.assert_array_equal(unwrap_longitudes(lon[lon_i]), [155, 165, 175, 185, 195, 205])
    # the same box written in 0..360 numbers selects the same columns
    _, same = crop_indices(np.array([0.0]), lon, CropBox(lon_min=150, lon_max=210))
    np.testing.assert_array_equal(same, lon_i)


def test_crop_across_greenwich_on_a_0_360_grid():
    lon = cell_centres(0, 360, 10)  # 5 .. 355
    _, lon_i = crop_indices(np.array([0.0]), lon, CropBox(lon_min=-20, lon_max=20))
    np.testing.assert_array_equal(lon[lon_i], [345, 355, 5, 15])
    np.testing.assert_array_equal(unwrap_longitudes(lon[lon_i]), [345, 355, 365, 375])


def test_full_width_box_keeps_every_column_in_either_convention():
    lon = cell_centres(0, 360, 90)
    _, lon_i = crop_indices(np.array([0.0]), lon, CropBox())  # -180..180
    np.testing.assert_array_equal(lon_i, [0, 1, 2, 3])
    assert crop_indices(np.array([1.0, 2.0]), lon, None)[0].tolist() == [0, 1]


def test_dateline_safe_center():
    assert dateline_safe_center(170.0, -170.0) == -180.0
    assert dateline_safe_center(170.0, 190.0) == -180.0
    assert dateline_safe_center(170.0, -170.0, "0..360") == 180.0
    assert dateline_safe_center(-10.0, 30.0) == 10.0
    np.testing.assert_array_equal(dateline_safe_center(np.array([350.0, 100.0]), np.array([10.0, 120.0])), [0.0, 110.0])
    assert longitude_span(170.0, -170.0) == 20.0


def test_cell_centres():
    np.testing.assert_array_equal(cell_centres(-90, 90, 45), [-67.5, -22.5, 22.5, 67.5])
    assert cell_centres(-90, 90, 0.25)[[0, -1]].tolist() == [-89.875, 89.875]
    with pytest.raises(ValueError, match="does not tile"):
        cell_centres(0, 10, 3)
