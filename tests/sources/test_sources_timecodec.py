"""Time decoding: the CF cases cftime handles, and the ones real archives need on top."""

import cftime
import numpy as np
import pytest

from satflow.sources.timecodec import (TimeDecodeError, decode_fixed_units, decode_times, encode_times, iso_times,
                                       parse_time_like, time_calendar, time_encoding, time_from_filename)

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


def test_months_a_rounding_error_short_of_whole_decode_to_the_month():
    # 3 - 9e-10 months is 3 months written by a float32/float64 round trip, not 2.4 us before April.
    np.testing.assert_array_equal(decode_times([3 - 9e-10], "months since 2000-01-01"), dt("2000-04-01"))


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


def cf(calendar, *dates):
    return [cftime.datetime(*d, calendar=calendar) for d in dates]


def test_360_day_months_and_years_since_an_origin_with_day_and_hour():
    # 360_day: 30-day months, so 1.5 months after Jan 15 12:00 is Feb 30 12:00; a year is 12 months.
    assert list(decode_times([0, 1, 1.5, 13], "months since 1958-01-15 12:00", "360_day")) == cf(
        "360_day", (1958, 1, 15, 12), (1958, 2, 15, 12), (1958, 2, 30, 12), (1959, 2, 15, 12))
    assert list(decode_times([1, 2], "years since 1958-01-15 12:00", "360_day")) == cf(
        "360_day", (1959, 1, 15, 12), (1960, 1, 15, 12))


def test_noleap_counts_from_an_origin_with_day_and_hour():
    # 14 days after Feb 15 12:00 in 2000 is Mar 1 (no Feb 29 in noleap, where the standard calendar
    # says Feb 29); months and years count calendar months from the 15th at 12:00.
    assert list(decode_times([14], "days since 2000-02-15 12:00", "noleap")) == cf("noleap", (2000, 3, 1, 12))
    assert list(decode_times([0, 1, 12], "months since 2000-02-15 12:00", "noleap")) == cf(
        "noleap", (2000, 2, 15, 12), (2000, 3, 15, 12), (2001, 2, 15, 12))
    assert list(decode_times([1], "years since 2000-02-15 12:00", "noleap")) == cf("noleap", (2001, 2, 15, 12))


def test_hour_since_year_zero_counts_in_proleptic_gregorian():
    # 0000-01-01 is day 1 of MATLAB's datenum; 1970-01-01 is 719528 days later.
    expected = np.datetime64("1970-01-01", "ns") + np.timedelta64(17700000 // 24 - 719528, "D")
    np.testing.assert_array_equal(decode_times([17700000.0], "hour since 0000-01-01"), [expected])
    assert str(expected)[:10] == "2019-03-17"


def test_noleap_keeps_its_calendar():
    times = decode_times([58, 59, 364], "days since 2001-01-01", "noleap")
    assert list(times) == cf("noleap", (2001, 2, 28), (2001, 3, 1), (2001, 12, 31)) and times.dtype == object


def test_360_day_keeps_feb_30_and_stays_ordered():
    times = decode_times(np.arange(0, 360, 1.0), "days since 2001-01-01", "360_day")
    assert times[0] == cf("360_day", (2001, 1, 1))[0] and times[-1] == cf("360_day", (2001, 12, 30))[0]
    assert all(b > a for a, b in zip(times[:-1], times[1:]))
    assert list(decode_times([59], "days since 2001-01-01", "360_day")) == cf("360_day", (2001, 2, 30))


def test_year_zero_climatology_stays_cftime():
    # COADS: TIME in 'hour since 0000-01-01 00:00:00', mid-month values such as 0000-01-16.
    times = decode_times([366.0, 1092.0], "hour since 0000-01-01 00:00:00")
    assert list(times) == cf("proleptic_gregorian", (0, 1, 16, 6), (0, 2, 15, 12))
    assert time_calendar(times) == "proleptic_gregorian"
    assert iso_times(times) == ["0000-01-16T06:00:00", "0000-02-15T12:00:00"]
    units = time_encoding(times)
    assert units == {"units": "minutes since 0001-01-01 00:00:00", "calendar": "proleptic_gregorian", "dtype": "int64"}
    minutes = encode_times(times, units["units"], units["calendar"])
    assert list(minutes) == [-(366 - 15) * 1440 + 360, -(366 - 45) * 1440 + 720]  # year 0 has 366 days
    assert parse_time_like("0000-02", times) == cf("proleptic_gregorian", (0, 2, 1))[0]


@pytest.mark.parametrize("unit, spread", [("seconds", 8e8), ("s", 8e8), ("minutes", 1e7), ("hours", 2e5),
                                          ("days", 9e3), ("milliseconds", 8e11), ("microseconds", 8e14)])
@pytest.mark.parametrize("origin", ["1990-06-01 12:00:00", "2000-01-01T00:00:00Z", "1970-1-1 00:00:00 +02:00"])
def test_fixed_units_decode_to_cftime_dates_to_the_microsecond(unit, spread, origin):
    # Swath times are one per observation, so they are decoded in numpy, not one cftime object each;
    # the dates must still be cftime's to the microsecond (its rounding, snapping near whole seconds).
    rng = np.random.default_rng(len(unit) + len(origin))
    values = np.concatenate([rng.uniform(-spread / 2, spread, 20_000), np.round(rng.uniform(0, spread, 50)),
                             np.round(rng.uniform(0, spread, 50)) + 1e-6 * np.array([1, -1] * 25)])
    units = f"{unit} since {origin}"
    expected = np.array([np.datetime64(d.isoformat(), "ns") for d in
                         cftime.num2date(values, units, "standard", only_use_cftime_datetimes=True)])
    decoded = decode_times(values, units, "standard")
    assert decoded.dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(decoded, expected)
    np.testing.assert_array_equal(decode_fixed_units(values, unit, units, "standard"), expected)  # numpy, not cftime


def test_fixed_units_outside_datetime64_stay_cftime():
    before_switch = decode_times([0, 1], "days since 1500-01-01", "standard")  # Julian dates: cftime's own
    assert before_switch[1] == cftime.DatetimeGregorian(1500, 1, 2)
    far = decode_times([0, 300 * 365], "days since 2000-01-01", "proleptic_gregorian")
    assert far.dtype == object and far[1].year == 2299
    assert decode_fixed_units(np.array([0.0, 300 * 365]), "days", "days since 2000-01-01", "standard") is None


def test_datetime64_range_decides_the_type():
    assert decode_times([0], "days since 2000-01-01").dtype == np.dtype("datetime64[ns]")
    last_year = decode_times([0, 364], "days since 2261-01-01")  # datetime64[ns] ends in April 2262
    assert last_year.dtype == np.dtype("datetime64[ns]") and str(last_year[1])[:10] == "2261-12-31"
    fast = decode_fixed_units(np.array([0.0, 364.0]), "days", "days since 2261-01-01", "standard")
    np.testing.assert_array_equal(fast, last_year)  # the fast path, not cftime, covers the last whole year
    assert decode_times([1e7], "days since 2000-01-01")[0].year == 29379  # past 2261: cftime


@pytest.mark.parametrize("units, calendar, message", [
    ("days since garbage", "standard", "cannot decode time units 'days since garbage'"),
    ("furlongs", "standard", "not of the form '<unit> since <date>'"),
    ("days since 2000-01-01", "martian", "calendar 'martian'"),
])
def test_undecodable_units_raise(units, calendar, message):
    with pytest.raises(TimeDecodeError, match=message):
        decode_times([1.0], units, calendar)


def test_missing_times_raise():
    with pytest.raises(TimeDecodeError, match="missing or non-finite"):
        decode_times([0.0, np.nan], "days since 2000-01-01")


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
