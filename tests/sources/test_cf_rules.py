"""Every CF decoding rule of sources/cfvalues.py and sources/timecodec.py, one tiny real file each.

test_sources_gridded_encodings.py pins the common cases (packed int16 with a fill, _FillValue and
missing_value together, valid_range, valid_min, _Unsigned bytes, months/hour since, noleap/360_day,
time from the file name); the tests here pin the rules those leave open, each so that it fails when
that rule alone is dropped from the code. Files are written with auto mask-and-scale off, so the
stored (packed) integers are exactly the ones given, and read through the gridded source's
scan_file/read_file, the path the ingest uses.
"""

import cftime
import numpy as np
import pytest
from sources_helpers import lat_lon_variables, source, time_variable, write_nc

from satflow.sources.gridded import SourceError, read_file, scan_file

NAN = np.float32(np.nan)


def cf_file(tmp_path, stored, dtype=np.float32, attrs=None, name="x.nc", time=(0.0,),
            time_units="hours since 2020-01-01 00:00:00", calendar="standard"):
    """A (time, lat 1, lon n) file whose variable `x` stores `stored` exactly, in `dtype`."""
    stored = np.asarray(stored, dtype=dtype).reshape(len(time), 1, -1)
    lon = np.arange(stored.shape[-1]) * 10.0
    variables = {**lat_lon_variables([0.0], lon), **time_variable(time, time_units, calendar),
                 "x": (("time", "lat", "lon"), stored, attrs or {})}
    return write_nc(tmp_path / name, variables)


def decoded(path, **settings):
    """The values of `x` as read_file returns them, flattened (lon in the file's order)."""
    config = source(lon_convention="0..360", **settings)
    return read_file(scan_file(path, config), config).ravel()


def times_of(path, **settings):
    return scan_file(path, source(**settings)).times


def unpacked(stored, scale=1.0, offset=0.0):
    """CF unpacking by hand: stored * scale_factor + add_offset in float64, then float32."""
    return (np.asarray(stored, np.float64) * scale + offset).astype(np.float32)


# --- valid_min / valid_max / valid_range ------------------------------------------------------
def test_valid_max_alone_masks_values_above_it(tmp_path):
    path = cf_file(tmp_path, [-7, 0, 100, 100.5, 101], attrs={"valid_max": np.float32(100)})
    np.testing.assert_array_equal(decoded(path), [-7, 0, 100, NAN, NAN])


def test_valid_min_and_valid_max_compare_packed_values(tmp_path):
    # CF 8.1: valid_* are of the packed type and compare with stored values. Unpacked, the stored
    # -60..60 are 94..106 and would all be outside [-50, 50]; packed, only -60 and 60 are.
    stored = [-60, -50, 0, 50, 60]
    attrs = {"scale_factor": 0.1, "add_offset": 100.0, "valid_min": np.int16(-50), "valid_max": np.int16(50)}
    expected = unpacked(stored, 0.1, 100.0)
    expected[[0, 4]] = NAN
    np.testing.assert_array_equal(decoded(cf_file(tmp_path, stored, np.int16, attrs)), expected)


def test_valid_bounds_beyond_the_stored_type_restrict_nothing(tmp_path):
    # valid_max = 1e20 on int16 data cannot be stored as int16; it lets every int16 through
    # (netCDF4-python ignores such a bound), and the default fill -32767 is still invalid.
    stored = [-32768, -32767, -1, 0, 32767]
    attrs = {"valid_min": np.float64(-1e20), "valid_max": np.float64(1e20)}
    np.testing.assert_array_equal(decoded(cf_file(tmp_path, stored, np.int16, attrs)), [-32768, NAN, -1, 0, 32767])


# --- _FillValue / missing_value / default fill -------------------------------------------------
def test_every_value_of_a_missing_value_list_is_invalid(tmp_path):
    path = cf_file(tmp_path, [-2, -1, 0, 1], attrs={"missing_value": np.float32([-1, -2])})
    np.testing.assert_array_equal(decoded(path), [NAN, NAN, 0, 1])


def test_declared_fill_value_replaces_the_default_fill(tmp_path):
    # -32767 is netCDF's default int16 fill: only a file that declares no _FillValue masks it.
    stored = [-999, -32767, 0, 5]
    path = cf_file(tmp_path, stored, np.int16, {"_FillValue": np.int16(-999), "scale_factor": 0.5})
    np.testing.assert_array_equal(decoded(path), [NAN, -16383.5, 0, 2.5])
    np.testing.assert_array_equal(decoded(cf_file(tmp_path, stored, np.int16, name="nofill.nc")), [-999, NAN, 0, 5])


def test_signed_bytes_have_no_default_fill(tmp_path):
    # netCDF's default byte fill is -127, but no reader assumes one for bytes (netCDF4-python neither).
    np.testing.assert_array_equal(decoded(cf_file(tmp_path, [-127, -128, 0, 127], np.int8)), [-127, -128, 0, 127])


# --- source.sentinel (undeclared fill) ---------------------------------------------------------
def test_sentinel_is_ignored_when_missing_value_is_declared(tmp_path):
    path = cf_file(tmp_path, [-9999, -1, 0, 3], attrs={"missing_value": np.float32(-1)})
    np.testing.assert_array_equal(decoded(path, sentinel=-9999), [-9999, NAN, 0, 3])


def test_sentinel_compares_stored_values_of_packed_data(tmp_path):
    # Stored -9999 is the sentinel; stored -999900 unpacks to -9999.0 and is a real value.
    stored = [-9999, -999900, 0, 12]
    path = cf_file(tmp_path, stored, np.int32, {"scale_factor": 0.01})
    expected = unpacked(stored, 0.01)
    expected[0] = NAN
    np.testing.assert_array_equal(decoded(path, sentinel=-9999), expected)


# --- NaN / inf ---------------------------------------------------------------------------------
def test_infinite_stored_floats_are_invalid(tmp_path):
    path = cf_file(tmp_path, [np.inf, -np.inf, np.nan, 0])
    np.testing.assert_array_equal(decoded(path), [NAN, NAN, NAN, 0])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_values_that_overflow_when_unpacked_are_invalid(tmp_path):
    path = cf_file(tmp_path, [1e300, -1e300, 0, 2], np.float64, {"scale_factor": 1e10})
    np.testing.assert_array_equal(decoded(path), [NAN, NAN, 0, 2e10])


# --- scale_factor / add_offset -----------------------------------------------------------------
def test_unpacking_is_done_in_float64(tmp_path):
    # int32 counts beyond float32's 24-bit mantissa: unpacking in float32 is off in the last digit.
    stored = [123456789, 987654321, 0, -1]
    expected = unpacked(stored, 0.001, 0.5)
    assert not np.array_equal(expected, np.float32(stored) * np.float32(0.001) + np.float32(0.5))
    path = cf_file(tmp_path, stored, np.int32, {"scale_factor": 0.001, "add_offset": 0.5})
    np.testing.assert_array_equal(decoded(path), expected)


def test_add_offset_alone_and_scale_factor_alone(tmp_path):
    stored = [-3, 0, 7]
    np.testing.assert_array_equal(decoded(cf_file(tmp_path, stored, np.int16, {"add_offset": 273.15})),
                                  unpacked(stored, 1.0, 273.15))
    np.testing.assert_array_equal(decoded(cf_file(tmp_path, stored, np.int16, {"scale_factor": 0.25}, "s.nc")),
                                  [-0.75, 0, 1.75])


# --- _Unsigned ---------------------------------------------------------------------------------
@pytest.mark.parametrize("flag, expected", [("true", [255, 128, 0, 127]), ("True", [255, 128, 0, 127]),
                                            ("false", [-1, -128, 0, 127])])
def test_unsigned_flag_is_case_insensitive_and_false_means_signed(tmp_path, flag, expected):
    path = cf_file(tmp_path, [-1, -128, 0, 127], np.int8, {"_Unsigned": flag})
    np.testing.assert_array_equal(decoded(path), expected)


def test_unsigned_short_reads_its_fill_and_valid_range_as_unsigned(tmp_path):
    # GOES ABI L2 style: short CMI with _Unsigned = "true", _FillValue = -1s (65535) and
    # valid_range = 0s, -6s (0..65530); the attributes are in the signed stored type (NUG,
    # netCDF4-python). Stored -5 is 65531, outside the range; -6 is 65530, inside it.
    stored = [-1, -5, -6, 0, 1000, -32768]
    attrs = {"_FillValue": np.int16(-1), "_Unsigned": "true", "valid_range": np.int16([0, -6]),
             "scale_factor": 0.001}
    path = cf_file(tmp_path, stored, np.int16, attrs)
    expected = unpacked([65535, 65531, 65530, 0, 1000, 32768], 0.001)
    expected[:2] = NAN
    np.testing.assert_array_equal(decoded(path), expected)
    import netCDF4

    with netCDF4.Dataset(path) as ds:  # the reference reader agrees
        np.testing.assert_array_equal(np.ma.filled(ds["x"][:].astype(np.float32), np.nan).ravel(), expected)


def test_unsigned_byte_missing_value_and_valid_max_as_signed_attributes(tmp_path):
    # byte DQF-like flags: missing_value -1b is 255, valid_max -56b is 200.
    stored = [-1, -55, -56, 0, 3]
    attrs = {"_Unsigned": "true", "missing_value": np.int8(-1), "valid_max": np.int8(-56)}
    np.testing.assert_array_equal(decoded(cf_file(tmp_path, stored, np.int8, attrs)), [NAN, NAN, 200, 0, 3])


# --- unit conversion ---------------------------------------------------------------------------
@pytest.mark.parametrize("units, target, stored, expected", [
    ("degF", "degC", [212.0, 32.0, -40.0], [100.0, 0.0, -40.0]),
    ("degrees_F", "K", [32.0, 212.0, -459.67], [273.15, 373.15, 0.0]),
    ("Celsius", "degF", [100.0, 0.0, -40.0], [212.0, 32.0, -40.0]),
])
def test_fahrenheit_conversions(tmp_path, units, target, stored, expected):
    info = scan_file(cf_file(tmp_path, stored, np.float64, {"units": units}), source(convert_units={"x": target}))
    assert info.units == (target,)
    np.testing.assert_allclose(read_file(info, source(convert_units={"x": target})).ravel(), expected,
                               rtol=0, atol=1e-4)


def test_packed_celsius_to_kelvin_keeps_fill_invalid_and_a_real_zero(tmp_path):
    attrs = {"units": "degC", "scale_factor": 0.01, "_FillValue": np.int16(-32768)}
    path = cf_file(tmp_path, [-32768, 0, 150, -271], np.int16, attrs)
    np.testing.assert_allclose(decoded(path, convert_units={"x": "K"}), [NAN, 273.15, 274.65, 270.44],
                               rtol=0, atol=1e-4)


# --- time units --------------------------------------------------------------------------------
def cfdates(calendar, *dates):
    return [cftime.datetime(*d, calendar=calendar) for d in dates]


def file_times(tmp_path, values, units, calendar="standard"):
    return times_of(cf_file(tmp_path, np.ones(len(values)), time=values, time_units=units, calendar=calendar))


@pytest.mark.parametrize("units, values, expected", [
    # years are 12 calendar months; the origin's day and time of day are kept.
    ("years since 2000-03-10 06:00", [0, 1, 0.5], ["2000-03-10T06", "2001-03-10T06", "2000-09-10T06"]),
    # a month after Jan 31 is Feb 28 (the month's last day), not Mar 3.
    ("months since 1958-01-31", [1, 2], ["1958-02-28", "1958-03-31"]),
    # the fraction of a month counts in days of that month: half of March is 15.5 days.
    ("months since 1958-1-1", [2.5], ["1958-03-16T12"]),
])
def test_calendar_months_and_years_since(tmp_path, units, values, expected):
    np.testing.assert_array_equal(file_times(tmp_path, values, units), np.array(expected, "datetime64[ns]"))


def test_months_since_year_zero_count_in_the_iso_calendar(tmp_path):
    # Monthly climatologies count from 0000-01-01, which the standard calendar lacks.
    times = file_times(tmp_path, [0, 1, 13], "months since 0000-01-01")
    assert list(times) == cfdates("proleptic_gregorian", (0, 1, 1), (0, 2, 1), (1, 2, 1))


def test_360_day_months_and_years_are_30_and_360_days(tmp_path):
    times = file_times(tmp_path, [1.5, 13], "months since 1958-01-15 12:00", "360_day")
    assert list(times) == cfdates("360_day", (1958, 2, 30, 12), (1959, 2, 15, 12))
    times = file_times(tmp_path, [2], "years since 1958-01-15", "360_day")
    assert list(times) == cfdates("360_day", (1960, 1, 15))


@pytest.mark.parametrize("calendar, name, expected", [
    ("all_leap", "all_leap", (2001, 2, 29)), ("366_day", "all_leap", (2001, 2, 29)),
    ("365_day", "noleap", (2001, 3, 1)), ("julian", "julian", (2001, 3, 1)),
])
def test_model_calendars_keep_their_dates(tmp_path, calendar, name, expected):
    times = file_times(tmp_path, [59], "days since 2001-01-01", calendar)
    assert times.dtype == object and {d.calendar for d in times} == {name}
    assert tuple(times[0].timetuple())[:3] == expected


def test_all_leap_year_has_366_days(tmp_path):
    assert list(file_times(tmp_path, [365], "days since 2001-01-01", "all_leap")) == cfdates("all_leap", (2001, 12, 31))


@pytest.mark.parametrize("units, values, expected", [
    # a time zone in the origin shifts the dates to UTC
    ("seconds since 2020-01-01 00:00:00 +06:00", [0, 3600.5], ["2019-12-31T18", "2019-12-31T19:00:00.5"]),
    ("hours since 2020-01-01T00:00:00Z", [1.5], ["2020-01-01T01:30"]),
    # fractional seconds, and cftime's snapping of a value a fraction of a microsecond off a whole second
    ("seconds since 2020-01-01 00:00:00.25", [0, 1.0000006, 1.9999994], ["2020-01-01T00:00:00.25",
                                                                          "2020-01-01T00:00:01.25",
                                                                          "2020-01-01T00:00:02.25"]),
    # 'since' in capitals (cftime accepts it)
    ("Hours Since 2020-01-01", [6], ["2020-01-01T06"]),
    ("days SINCE 2020-01-01", [1], ["2020-01-02"]),
])
def test_fixed_units_forms(tmp_path, units, values, expected):
    times = file_times(tmp_path, values, units)
    np.testing.assert_array_equal(times, np.array(expected, "datetime64[ns]"))


def test_standard_calendar_before_the_gregorian_switch_counts_julian_days(tmp_path):
    # The standard calendar is Julian before 1582-10-15: from 1500-01-01, 2000-01-01 is 182612 days
    # on (a proleptic Gregorian count would say 182621).
    times = file_times(tmp_path, [182612.0], "days since 1500-01-01")
    np.testing.assert_array_equal(times, np.array(["2000-01-01"], "datetime64[ns]"))
    assert file_times(tmp_path, [0.0], "days since 1500-01-01")[0] == cftime.DatetimeGregorian(1500, 1, 1)


def test_dates_past_datetime64_stay_cftime(tmp_path):
    times = file_times(tmp_path, [0, 300 * 365], "days since 2000-01-01")
    assert times.dtype == object and (times[0].year, times[1].year) == (2000, 2299)


def test_a_missing_time_value_is_an_error_naming_it(tmp_path):
    variables = {**lat_lon_variables([0.0], [0.0, 10.0]),
                 "time": (("time",), np.array([0.0, -1.0]), {"units": "days since 2000-01-01", "_FillValue": -1.0}),
                 "x": (("time", "lat", "lon"), np.ones((2, 1, 2), np.float32), {})}
    with pytest.raises(SourceError, match="missing or non-finite"):
        scan_file(write_nc(tmp_path / "t.nc", variables), source())


def test_time_from_file_name_with_minutes(tmp_path):
    variables = {**lat_lon_variables([0.0], [0.0, 10.0]), "x": (("lat", "lon"), np.ones((1, 2), np.float32), {})}
    path = write_nc(tmp_path / "scene_20200315T1245.nc", variables)
    pattern = r"(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})T(?P<hour>\d{2})(?P<minute>\d{2})"
    np.testing.assert_array_equal(times_of(path, time_from_filename=pattern),
                                  np.array(["2020-03-15T12:45"], "datetime64[ns]"))


def test_an_unknown_calendar_is_named_even_for_calendar_months(tmp_path):
    # cftime would fail on the origin without naming the calendar.
    path = cf_file(tmp_path, [1.0], time=[1.0], time_units="months since 2000-01-01", calendar="martian")
    with pytest.raises(SourceError, match="unsupported calendar 'martian'"):
        scan_file(path, source())
