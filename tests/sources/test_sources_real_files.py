"""Real NetCDF files from iris-sample-data: what the reader reads, and what it rejects and why."""

import os

import netCDF4
import datetime as dt

import cftime
import numpy as np
import pytest

from satflow.sources.gridded import SourceError, read_file, scan_file
from satflow.sources.options import CropBox, SourceConfig

iris_sample_data = pytest.importorskip("iris_sample_data")


def sample(name: str) -> str:
    return os.path.join(iris_sample_data.path, name)


def test_ostia_monthly_sst():
    config = SourceConfig()
    info = scan_file(sample("ostia_monthly.nc"), config)
    data = read_file(info, config)
    assert info.features == ("surface_temperature",) and info.units == ("K",)
    assert data.shape == (54, 1, 18, 432)
    assert info.times[0] == np.datetime64("2006-04-16") and info.times[-1] == np.datetime64("2010-09-16")
    assert int(np.isnan(data).sum()) == 110970  # 26.4% missing (land and sea ice)
    # 0..360 in the file: column 216 (lon 180) moves to the front as -180.
    assert info.lon[0] == -180.0 and info.lon[216] == 0.0 and np.all(np.diff(info.lon) > 0)
    with netCDF4.Dataset(sample("ostia_monthly.nc")) as ds:
        raw = ds["surface_temperature"][:].filled(np.nan)
    np.testing.assert_array_equal(data[:, 0], np.roll(raw, 216, axis=2))
    assert int(np.isnan(raw).sum()) == 110970  # the pinned count is what netCDF4 itself masks


def test_ostia_in_kelvin_to_celsius_with_a_crop():
    config = SourceConfig(convert_units={"surface_temperature": "degC"},
                          crop=CropBox(lat_min=-2, lat_max=2, lon_min=170, lon_max=-170))
    info = scan_file(sample("ostia_monthly.nc"), config)
    data = read_file(info, config)
    assert data.shape == (54, 1, 7, 25) and info.units == ("degC",)  # 7 rows in +-2, 170..190 inclusive
    assert info.lon[0] == pytest.approx(170.0) and info.lon[-1] == pytest.approx(190.0)
    assert np.all(np.diff(info.lon) > 0)
    assert 15.0 < np.nanmin(data) and np.nanmax(data) < 32.0


def test_climate_model_file_with_360_day_calendar():
    info = scan_file(sample("A1B_north_america.nc"), SourceConfig())
    assert info.features == ("air_temperature",) and len(info.times) == 240
    # 360_day dates stay in their calendar (the store encodes them with it); ordered and unique.
    assert info.times[0] == cftime.Datetime360Day(1860, 6, 1) and all(np.diff(info.times) > dt.timedelta(0))
    np.testing.assert_array_equal(info.lon[[0, -1]], [-135.0, -45.0])  # 225..315 east


def test_ocean_profiles_with_depth_and_scalar_time():
    config = SourceConfig(variables=["theta"], convert_units={"theta": "degC"})
    info = scan_file(sample("atlantic_profiles.nc"), config)
    data = read_file(info, config)
    assert info.features == tuple(f"theta-d{k}" for k in range(1, 41))
    assert info.times.tolist() == [np.datetime64("1984-12-01", "ns").item()]
    assert data.shape == (1, 40, 6, 8) and int(np.isnan(data).sum()) == 33
    with netCDF4.Dataset(sample("atlantic_profiles.nc")) as ds:
        assert np.ma.count_masked(ds["theta"][:]) == 33  # the pinned count is what netCDF4 itself masks
    assert np.nanmean(data[0, 0]) > np.nanmean(data[0, -1]) + 15.0  # warm surface, cold abyss


def test_single_point_time_series_with_a_string_variable():
    info = scan_file(sample("vlstr_type.nc"), SourceConfig())
    assert info.features == ("wind",) and len(info.times) == 150
    assert read_file(info, SourceConfig()).shape == (150, 1, 1, 1)


@pytest.mark.parametrize("name, reason", [
    ("orca2_votemper.nc", "latitude/longitude are 2-D (nav_lat, nav_lon)"),
    ("NEMO/nemo_1m_20150101-20150201_grid-T.nc", "latitude/longitude are 2-D"),
    ("toa_brightness_stereographic.nc", "latitude/longitude are 2-D (lat, lon)"),
    ("space_weather.nc", "latitude/longitude are 2-D"),
    ("rotated_pole.nc", "rotated-pole grid"),
    ("hybrid_height.nc", "rotated-pole grid"),
    ("mesh_C4_synthetic_float.nc", "unstructured mesh or point data"),
    ("SOI_Darwin.nc", "no 1-D latitude/longitude coordinates"),
])
def test_files_that_are_not_regular_grids_are_rejected_with_a_reason(name, reason):
    with pytest.raises(SourceError) as caught:
        scan_file(sample(name), SourceConfig())
    assert reason in caught.value.reason and caught.value.path == sample(name)


def test_reading_selected_steps_equals_slicing_all():
    """A task that fills a few steps of a multi-year file reads just those steps, identically."""
    from pathlib import Path

    info = scan_file(Path(iris_sample_data.path) / "ostia_monthly.nc", SourceConfig())
    everything = read_file(info, SourceConfig())
    chosen = read_file(info, SourceConfig(), steps=[3, 4, 40])
    np.testing.assert_array_equal(chosen, everything[[3, 4, 40]])
