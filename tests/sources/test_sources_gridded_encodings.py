"""The gridded reader on tiny files, one CF encoding case each, with exact expected values."""

import numpy as np
import pytest
from sources_helpers import LAT, lat_lon_variables, source, time_variable, write_nc

from satflow.sources.gridded import SourceError, read_file, scan_file
from satflow.sources.options import CropBox

NAN = np.nan


def read(path, **settings):
    config = source(**settings)
    info = scan_file(path, config)
    return info, read_file(info, config)


def test_plain_float_file(make_grid_file):
    info, data = read(make_grid_file())
    assert info.features == ("x",)
    assert data.dtype == np.float32 and data.shape == (1, 1, 3, 4)
    np.testing.assert_array_equal(info.lat, LAT)
    np.testing.assert_array_equal(info.lon, [-180.0, -90.0, 0.0, 90.0])  # 0, 90, 180, 270 in the file
    np.testing.assert_array_equal(data[0, 0, 0], [2.0, 3.0, 0.0, 1.0])
    assert info.times.dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(info.times, np.array(["2020-01-01"], dtype="datetime64[ns]"))
    assert info.units == ("",) and info.read_plan is not None


def test_packed_int16_with_fill(make_grid_file):
    raw = np.array([[[100, -32767, 0, 32000], [1, 2, 3, 4], [-5, -6, -7, -8]]], np.int16)
    attrs = {"_FillValue": np.int16(-32767), "scale_factor": 0.01, "add_offset": 20.0}
    _, data = read(make_grid_file(values=raw, dtype=np.int16, attrs=attrs), lon_convention="0..360")
    expected = (raw.astype(np.float64) * 0.01 + 20.0).astype(np.float32)
    expected[0, 0, 1] = NAN
    np.testing.assert_array_equal(data[:, 0], expected)


def test_fill_values_at_the_ends_of_the_stored_type_are_invalid(make_grid_file):
    # Killed mutant (benchmarks/mutation): a fill equal to the type's maximum (int16 32767, a common
    # _FillValue) counted as unrepresentable, so it was kept as a value.
    raw = np.array([[[100, 32767, -32768, 32000], [1, 2, 3, 4], [-5, -6, -7, -8]]], np.int16)
    attrs = {"_FillValue": np.int16(32767), "missing_value": np.int16(-32768), "scale_factor": 0.01}
    _, data = read(make_grid_file(values=raw, dtype=np.int16, attrs=attrs), lon_convention="0..360")
    expected = (raw.astype(np.float64) * 0.01).astype(np.float32)
    expected[0, 0, 1:3] = NAN
    np.testing.assert_array_equal(data[:, 0], expected)


def test_fill_value_and_missing_value_are_both_invalid(make_grid_file):
    raw = np.array([[[1, -999, -888, 4], [5, 6, 7, 8], [9, 10, 11, 12]]], np.float32)
    attrs = {"_FillValue": np.float32(-999), "missing_value": np.float32(-888)}
    _, data = read(make_grid_file(values=raw, attrs=attrs), lon_convention="0..360")
    assert np.isnan(data[0, 0, 0, 1:3]).all()
    assert np.isfinite(data).sum() == 10


def test_missing_value_alone_and_default_netcdf_fill(make_grid_file):
    raw = np.array([[[1, -1, 9.969209968386869e36, 4], [5, 6, 7, 8], [9, 10, 11, 12]]], np.float32)
    _, data = read(make_grid_file(values=raw, attrs={"missing_value": np.float32(-1)}), lon_convention="0..360")
    np.testing.assert_array_equal(data[0, 0, 0], [1, NAN, NAN, 4])


def test_undeclared_sentinel_only_when_configured(make_grid_file):
    raw = np.array([[[-9999, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]], np.float32)
    path = make_grid_file(values=raw)
    _, plain = read(path, lon_convention="0..360")
    assert plain[0, 0, 0, 0] == -9999.0
    _, masked = read(path, lon_convention="0..360", sentinel=-9999)
    assert np.isnan(masked[0, 0, 0, 0]) and np.isfinite(masked).sum() == 11


def test_sentinel_does_not_override_a_declared_fill(make_grid_file):
    raw = np.array([[[-9999, -1, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]], np.float32)
    _, data = read(make_grid_file(values=raw, attrs={"_FillValue": np.float32(-1)}), lon_convention="0..360",
                   sentinel=-9999)
    np.testing.assert_array_equal(data[0, 0, 0, :2], [-9999, NAN])


def test_valid_range_and_valid_min(make_grid_file, tmp_path):
    raw = np.array([[[-5, 0, 50, 101], [5, 6, 7, 8], [9, 10, 11, 12]]], np.float32)
    _, data = read(make_grid_file(values=raw, attrs={"valid_range": np.float32([0, 100])}), lon_convention="0..360")
    np.testing.assert_array_equal(data[0, 0, 0], [NAN, 0, 50, NAN])
    _, data = read(make_grid_file("min.nc", values=raw, attrs={"valid_min": np.float32(6)}), lon_convention="0..360")
    np.testing.assert_array_equal(data[0, 0, :2], [[NAN, NAN, 50, 101], [NAN, 6, 7, 8]])


def test_packed_valid_range_compares_stored_values(make_grid_file):
    raw = np.array([[[-200, 0, 100, 300], [1, 2, 3, 4], [5, 6, 7, 8]]], np.int16)
    attrs = {"scale_factor": 0.5, "valid_range": np.int16([-100, 200])}
    _, data = read(make_grid_file(values=raw, dtype=np.int16, attrs=attrs), lon_convention="0..360")
    np.testing.assert_array_equal(data[0, 0, 0], [NAN, 0, 50, NAN])


def test_unsigned_bytes(make_grid_file):
    raw = np.array([[[-1, 0, 1, -128], [1, 2, 3, 4], [5, 6, 7, 8]]], np.int8)
    _, data = read(make_grid_file(values=raw, dtype=np.int8, attrs={"_Unsigned": "true"}), lon_convention="0..360")
    np.testing.assert_array_equal(data[0, 0, 0], [255, 0, 1, 128])


@pytest.mark.parametrize("units, calendar, values, expected", [
    ("months since 1958-1-1", "standard", [744, 745], ["2020-01-01", "2020-02-01"]),
    ("hour since 0000-01-01", "standard", [17700000.0], ["2019-03-17"]),
])
def test_time_encodings(make_grid_file, units, calendar, values, expected):
    shape = (len(values), 3, 4)
    info, data = read(make_grid_file(values=np.ones(shape), time=values, time_units=units, calendar=calendar))
    np.testing.assert_array_equal(info.times, np.array(expected, dtype="datetime64[ns]"))
    assert data.shape[0] == len(values)


@pytest.mark.parametrize("units, calendar, values, expected", [
    # Model calendars keep their own dates: 360_day Feb 30 stays Feb 30, noleap has no Feb 29.
    ("days since 2001-01-01", "noleap", [58, 59], [(2001, 2, 28), (2001, 3, 1)]),
    ("days since 2001-01-01", "360_day", [59], [(2001, 2, 30)]),
    # A climatology's year 0 (COADS) lies outside datetime64[ns]: it stays a cftime date.
    ("hour since 0000-01-01 00:00:00", "standard", [360.0, 1092.0], [(0, 1, 16), (0, 2, 15, 12)]),
])
def test_time_encodings_outside_datetime64_stay_cftime(make_grid_file, units, calendar, values, expected):
    shape = (len(values), 3, 4)
    info, _ = read(make_grid_file(values=np.ones(shape), time=values, time_units=units, calendar=calendar))
    wanted = "proleptic_gregorian" if calendar == "standard" else calendar
    assert [tuple(d.timetuple())[:len(e)] for d, e in zip(info.times, expected)] == expected
    assert {d.calendar for d in info.times} == {wanted}
    assert info.notes == (f"times kept as cftime dates in the {wanted} calendar",)


def test_time_from_filename_when_the_file_has_none(tmp_path):
    variables = {**lat_lon_variables(), "x": (("lat", "lon"), np.ones((3, 4), np.float32), {})}
    info, data = read(write_nc(tmp_path / "obs_20200315_t12.nc", variables))
    np.testing.assert_array_equal(info.times, np.array(["2020-03-15T12"], dtype="datetime64[ns]"))
    assert data.shape == (1, 1, 3, 4) and "time taken from the file name" in info.notes
    renamed = write_nc(tmp_path / "obs_2020.nc", variables)
    info = scan_file(renamed, source(time_from_filename=r"obs_(?P<year>\d{4})"))
    assert info.times[0] == np.datetime64("2020-01-01")


def test_scalar_time_coordinate(tmp_path):
    variables = {**lat_lon_variables(), "time": ((), np.float64(3.0), {"units": "days since 2020-01-01"}),
                 "x": (("lat", "lon"), np.ones((3, 4), np.float32), {"coordinates": "time"})}
    info = scan_file(write_nc(tmp_path / "noname.nc", variables), source())
    assert info.times[0] == np.datetime64("2020-01-04") and info.features == ("x",)


def test_longitudes_0_360_become_minus180_180_with_data_rolled(make_grid_file):
    lon = np.arange(0.0, 360.0, 30.0)
    values = np.broadcast_to(lon, (1, 3, lon.size))  # each cell holds its own longitude
    info, data = read(make_grid_file(values=values, lon=lon))
    np.testing.assert_array_equal(info.lon, np.arange(-180.0, 180.0, 30.0))
    np.testing.assert_array_equal(data[0, 0, 1], np.mod(info.lon, 360.0))


def test_latitude_descending_is_flipped(make_grid_file):
    lat = np.array([60.0, 20.0, -20.0, -60.0])
    values = np.broadcast_to(lat[:, None], (1, 4, 4))
    info, data = read(make_grid_file(values=values, lat=lat), lon_convention="0..360")
    np.testing.assert_array_equal(info.lat, [-60.0, -20.0, 20.0, 60.0])
    np.testing.assert_array_equal(data[0, 0, :, 2], info.lat)


def test_crop_across_the_dateline(make_grid_file):
    lat, lon = np.arange(-45.0, 50.0, 10.0), np.arange(-175.0, 180.0, 10.0)
    values = (lon[None, :] + 1000.0 * lat[:, None])[None]  # lon + 1000 * lat
    crop = CropBox(lat_min=-10, lat_max=20, lon_min=150, lon_max=-150)
    info, data = read(make_grid_file(values=values, lat=lat, lon=lon), crop=crop)
    np.testing.assert_array_equal(info.lat, [-5.0, 5.0, 15.0])
    np.testing.assert_array_equal(info.lon, [155.0, 165.0, 175.0, 185.0, 195.0, 205.0])
    np.testing.assert_array_equal(data[0, 0, 0], np.array([155, 165, 175, -175, -165, -155]) - 5000.0)


def test_crop_of_a_0_360_file_in_the_other_convention(make_grid_file):
    lon = np.arange(5.0, 360.0, 10.0)
    info, data = read(make_grid_file(values=np.broadcast_to(lon, (1, 3, lon.size)), lon=lon),
                      crop=CropBox(lon_min=-20, lon_max=20))
    np.testing.assert_array_equal(info.lon, [-15.0, -5.0, 5.0, 15.0])
    np.testing.assert_array_equal(data[0, 0, 0], [345.0, 355.0, 5.0, 15.0])


def test_group_variable(tmp_path):
    variables = {**lat_lon_variables(), **time_variable([0.0])}
    group = {"tb": (("time", "lat", "lon"), np.full((1, 3, 4), 7.0, np.float32), {"units": "K"})}
    path = write_nc(tmp_path / "groups.nc", variables, groups={"obs": group})
    info, data = read(path, variables=["obs/tb"])
    assert info.features == ("obs/tb",) and info.units == ("K",)
    assert (data == 7.0).all()
    assert scan_file(path, source()).features == ("obs/tb",)  # found without asking too


def test_extra_dimension_naming(tmp_path):
    variables = {
        **lat_lon_variables(), **time_variable([0.0]),
        "depth": (("depth",), np.array([0.5, 10.0, 50.0]), {"units": "m", "positive": "down"}),
        "height": (("height",), np.array([2.0, 10.0]), {"units": "m", "positive": "up"}),
        "thetao": (("time", "depth", "lat", "lon"), np.zeros((1, 3, 3, 4), np.float32), {}),
        "tb": (("time", "channel", "lat", "lon"), np.zeros((1, 2, 3, 4), np.float32), {}),
        "u": (("time", "height", "lat", "lon"), np.zeros((1, 2, 3, 4), np.float32), {}),
        "q": (("time", "lev", "lat", "lon"), np.zeros((1, 2, 3, 4), np.float32), {}),
        "sst": (("time", "lat", "lon"), np.zeros((1, 3, 4), np.float32), {}),
    }
    info = scan_file(write_nc(tmp_path / "levels.nc", variables), source())
    assert info.features == ("thetao-d1", "thetao-d2", "thetao-d3", "tb-1", "tb-2", "u-d1", "u-d2",
                             "q-d1", "q-d2", "sst")


def test_extra_dimension_values_land_in_order(tmp_path):
    values = np.arange(2 * 3 * 3 * 4, dtype=np.float32).reshape(2, 3, 3, 4)
    variables = {**lat_lon_variables(), **time_variable([0.0, 6.0]),
                 "tb": (("time", "channel", "lat", "lon"), values, {})}
    _, data = read(write_nc(tmp_path / "c.nc", variables), lon_convention="0..360")
    np.testing.assert_array_equal(data, values)


def test_transposed_dimensions_and_static_fields(tmp_path):
    values = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)  # (time, lon, lat)
    variables = {**lat_lon_variables(), **time_variable([0.0, 6.0]),
                 "x": (("time", "lon", "lat"), values, {}),
                 "orography": (("lat", "lon"), np.full((3, 4), 5.0, np.float32), {})}
    info, data = read(write_nc(tmp_path / "t.nc", variables), lon_convention="0..360")
    assert info.features == ("x", "orography")
    np.testing.assert_array_equal(data[:, 0], values.transpose(0, 2, 1))
    assert (data[:, 1] == 5.0).all()  # the static field is repeated at every step


def test_coordinates_bounds_and_strings_are_not_features(tmp_path):
    variables = {
        **lat_lon_variables(), **time_variable([0.0]),
        "lat_bnds": (("lat", "nv"), np.zeros((3, 2)), {}),
        "area": (("lat", "lon"), np.ones((3, 4)), {}),
        "x": (("time", "lat", "lon"), np.ones((1, 3, 4), np.float32), {"coordinates": "area"}),
    }
    path = write_nc(tmp_path / "aux.nc", variables)
    import netCDF4

    with netCDF4.Dataset(path, "a") as ds:
        ds["lat"].bounds = "lat_bnds"
        label = ds.createVariable("label", str, ("lat", "lon"))
        label[0, 0] = "land"
    assert scan_file(path, source()).features == ("x",)


@pytest.mark.parametrize("units, target, stored, expected", [
    ("degC", "K", 10.0, 283.15), ("degrees_C", "K", -1.5, 271.65), ("K", "degC", 300.0, 26.85),
    ("kelvin", "degF", 273.15, 32.0), ("K", "K", 250.0, 250.0),
])
def test_unit_conversion(make_grid_file, units, target, stored, expected):
    path = make_grid_file(values=np.full((1, 3, 4), stored), dtype=np.float64, attrs={"units": units})
    info, data = read(path, convert_units={"x": target})
    assert info.units == (target,)
    np.testing.assert_allclose(data, expected, rtol=0, atol=1e-4)


def test_unit_conversion_impossible(make_grid_file):
    path = make_grid_file(attrs={"units": "psu"})
    with pytest.raises(SourceError, match="cannot convert 'x' from units 'psu' to 'K'"):
        scan_file(path, source(convert_units={"x": "K"}))
