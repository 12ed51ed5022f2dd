"""Time decoding: the CF cases cftime handles, and the ones real archives need on top."""

import numpy as np
import pytest

from satflow.sources.timecodec import TimeDecodeError, decode_times, time_from_filename

DEFAULT_PATTERN = r"(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})(?:_t(?P<hour>\d{2}))?"


def dt(*stamps):
    return np.array(stamps, dtype="datetime64[ns]")


def test_standard_units():
    np.testing.assert_array_equal(decode_times([0, 36], "hours since 2020-01-01 00:00:00"),
                                  dt("2020-01-01T00", "2020-01-02T12"))
    np.testing.assert_array_equal(decode_times([1.5], "days since 1800-01-01 00:00:0.0", "gregorian"),
                                  dt("1800-01-02T12"))


def test_months_since_counts_calendar_months():
    np.testing.assert_array_equal(decode_times([0, 1, 13, 2.5], "months since 1958-1-1"),
                                  dt("1958-01-01", "1958-02-01", "1959-02-01", "1958-03-16T12"))
    np.testing.assert_array_equal(decode_times([1], "years since 2000-01-01"), dt("2001-01-01"))


def test_months_since_an_origin_with_day_and_hour():
    # By hand: whole months keep the origin's day 15 and 12:00; 2.5 months is Mar 15 12:00 plus half
    # of March's 31 days (15 d 12 h), which is Mar 31 00:00.
    np.testing.assert_array_equal(decode_times([0, 1, 13, 2.5], "months since 1958-01-15 12:00"),
                                  dt("1958-01-15T12", "1958-02-15T12", "1959-02-15T12", "1958-03-31T00"))
    np.testing.assert_array_equal(decode_times([1], "months since 1958-01-15 12:30:15.25"),
                                  dt("1958-02-15T12:30:15.25"))


def test_years_since_an_origin_with_day_and_hour():
    # A year is 12 calendar months: 0.5 years is Sep 10, 2.25 years (27 months) is Jun 10 two years on.
    np.testing.assert_array_equal(decode_times([0, 0.5, 1, 2.25], "years since 2000-03-10 06:00"),
                                  dt("2000-03-10T06", "2000-09-10T06", "2001-03-10T06", "2002-06-10T06"))


def test_months_after_a_day_a_short_month_lacks_end_on_its_last_day():
    # A monthly series from Jan 31 must give one step per month (Mar 3 would put two steps in March).
    np.testing.assert_array_equal(decode_times([0, 1, 2, 3], "months since 1958-01-31"),
                                  dt("1958-01-31", "1958-02-28", "1958-03-31", "1958-04-30"))
    np.testing.assert_array_equal(decode_times([1], "years since 2000-02-29 18:00"), dt("2001-02-28T18"))


def test_360_day_months_and_years_since_an_origin_with_day_and_hour():
    # 360_day: 30-day months, so 1.5 months after Jan 15 12:00 is 360-day Feb 30 12:00 and a year is
    # 360 days. By hand, mapped by day of year (floor((doy - 1) * 365 / 360) days after Jan 1, 1958
    # and 1959 having 365 days): Jan 15 (doy 15) -> 14 -> Jan 15; Feb 15 (doy 45) -> floor(44.61) = 44
    # -> Feb 14; Feb 30 (doy 60) -> floor(59.82) = 59 -> Mar 1.
    np.testing.assert_array_equal(decode_times([0, 1, 1.5, 13], "months since 1958-01-15 12:00", "360_day"),
                                  dt("1958-01-15T12", "1958-02-14T12", "1958-03-01T12", "1959-02-14T12"))
    np.testing.assert_array_equal(decode_times([1, 2], "years since 1958-01-15 12:00", "360_day"),
                                  dt("1959-01-15T12", "1960-01-15T12"))


def test_noleap_counts_from_an_origin_with_day_and_hour():
    # noleap keeps labels: 14 days after Feb 15 12:00 in 2000 is Mar 1 (no Feb 29 in noleap, where the
    # standard calendar says Feb 29); months and years count calendar months from the 15th at 12:00.
    np.testing.assert_array_equal(decode_times([14], "days since 2000-02-15 12:00", "noleap"), dt("2000-03-01T12"))
    np.testing.assert_array_equal(decode_times([0, 1, 12], "months since 2000-02-15 12:00", "noleap"),
                                  dt("2000-02-15T12", "2000-03-15T12", "2001-02-15T12"))
    np.testing.assert_array_equal(decode_times([1], "years since 2000-02-15 12:00", "noleap"), dt("2001-02-15T12"))


def test_hour_since_year_zero_counts_in_proleptic_gregorian():
    # 0000-01-01 is day 1 of MATLAB's datenum; 1970-01-01 is 719528 days later.
    expected = np.datetime64("1970-01-01", "ns") + np.timedelta64(17700000 // 24 - 719528, "D")
    np.testing.assert_array_equal(decode_times([17700000.0], "hour since 0000-01-01"), [expected])
    assert str(expected)[:10] == "2019-03-17"


def test_noleap_keeps_labels():
    np.testing.assert_array_equal(decode_times([58, 59, 364], "days since 2001-01-01", "noleap"),
                                  dt("2001-02-28", "2001-03-01", "2001-12-31"))


def test_360_day_maps_by_day_of_year_and_stays_ordered():
    times = decode_times(np.arange(0, 360, 1.0), "days since 2001-01-01", "360_day")
    assert times[0] == np.datetime64("2001-01-01") and times[-1] == np.datetime64("2001-12-30")
    assert np.all(np.diff(times) > np.timedelta64(0))  # Feb 29/30 became real, unique days
    feb30 = decode_times([59], "days since 2001-01-01", "360_day")  # 360_day 2001-02-30
    np.testing.assert_array_equal(feb30, dt("2001-03-01"))


@pytest.mark.parametrize("units, calendar, message", [
    ("days since garbage", "standard", "cannot decode time units 'days since garbage'"),
    ("furlongs", "standard", "not of the form '<unit> since <date>'"),
    ("days since 2000-01-01", "martian", "calendar 'martian'"),
])
def test_undecodable_units_raise(units, calendar, message):
    with pytest.raises(TimeDecodeError, match=message):
        decode_times([1.0], units, calendar)


def test_missing_and_out_of_range_times_raise():
    with pytest.raises(TimeDecodeError, match="missing or non-finite"):
        decode_times([0.0, np.nan], "days since 2000-01-01")
    with pytest.raises(TimeDecodeError, match="datetime64"):
        decode_times([1e7], "days since 2000-01-01")


def test_time_from_filename():
    assert time_from_filename("1bamua_20200101_t18.nc", DEFAULT_PATTERN) == np.datetime64("2020-01-01T18")
    assert time_from_filename("sst_20200229.nc", DEFAULT_PATTERN) == np.datetime64("2020-02-29")
    assert time_from_filename("thetao_202003.nc", r"(?P<year>\d{4})(?P<month>\d{2})") == np.datetime64("2020-03-01")
    with pytest.raises(TimeDecodeError, match="does not match"):
        time_from_filename("climatology.nc", DEFAULT_PATTERN)
    with pytest.raises(TimeDecodeError, match="not a valid date"):
        time_from_filename("x_20200230.nc", DEFAULT_PATTERN)
    with pytest.raises(TimeDecodeError, match="no \\(\\?P<year>"):
        time_from_filename("x_2020.nc", r"(\d{4})")
