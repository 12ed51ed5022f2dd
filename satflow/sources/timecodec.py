"""Decode CF time coordinates (and times in file names) to numpy datetime64[ns].

cftime does the standard cases. Real archives add a few that xarray's default decoding rejects,
handled here:
- `months since 1958-1-1` / `years since ...`: calendar months from the origin's day and time
  (clamped to a shorter month's last day; fractions of a month count in days of that month);
  cftime only allows months for the 360_day calendar, where a month is 30 days and a year 12 months.
- `hour since 0000-01-01`: year 0 does not exist in CF's standard calendar; such files count
  from year 0 of the proleptic Gregorian calendar with year zero (ISO 8601), as MATLAB's datenum.
- non-standard calendars: noleap/365_day/julian dates keep their labels (2001-02-28 stays
  2001-02-28); 360_day/366_day/all_leap dates are mapped by day of year, like xarray's
  `convert_calendar(..., align_on="year")`, so that Feb 30 becomes a real, unique, ordered day.
"""

from __future__ import annotations

import datetime as dt
import re

import cftime
import numpy as np


class TimeDecodeError(ValueError):
    """Time values or units cannot be turned into datetimes; the message says why."""


_STANDARD = {"standard", "gregorian", "proleptic_gregorian", "julian", "noleap", "365_day", "none", ""}
_BY_DAY_OF_YEAR = {"360_day", "366_day", "all_leap"}
_UNITS = re.compile(r"^\s*(?P<unit>[a-zA-Z_]+)\s+since\s+(?P<origin>.+?)\s*$")
_CALENDAR_MONTHS = {"month": 1, "months": 1, "mon": 1, "year": 12, "years": 12, "yr": 12, "common_year": 12}


def decode_times(values, units: str, calendar: str | None = None) -> np.ndarray:
    """Numeric CF times `values` with `units` ('<unit> since <origin>') -> datetime64[ns]."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(values)):
        raise TimeDecodeError("time has missing or non-finite values")
    match = _UNITS.match(units or "")
    if match is None:
        raise TimeDecodeError(f"time units {units!r} are not of the form '<unit> since <date>'")
    calendar = (calendar or "standard").strip().lower()
    unit, origin = match["unit"].lower(), match["origin"]
    if unit in _CALENDAR_MONTHS and calendar == "360_day":
        # A 360_day month is 30 days, which cftime counts; it knows no years, so count 12 months each.
        return to_datetime64(_num2date(values * _CALENDAR_MONTHS[unit], f"months since {origin}", calendar), calendar)
    if unit in _CALENDAR_MONTHS:
        return _add_calendar_months(values * _CALENDAR_MONTHS[unit], origin, calendar)
    return to_datetime64(_num2date(values, f"{unit} since {origin}", calendar), calendar)


def _num2date(values: np.ndarray, units: str, calendar: str):
    try:
        return cftime.num2date(values, units, calendar)
    except (ValueError, OverflowError, TypeError) as err:
        if "zero not allowed as a reference year" not in str(err):
            raise TimeDecodeError(f"cannot decode time units {units!r} with calendar {calendar!r} ({err})") from None
    # Year 0 origin: count in the proleptic Gregorian calendar with a year zero (ISO 8601).
    try:
        return cftime.num2date(values, units, "proleptic_gregorian", has_year_zero=True)
    except (ValueError, OverflowError, TypeError) as err:
        raise TimeDecodeError(f"cannot decode time units {units!r} ({err})") from None


def _add_calendar_months(months: np.ndarray, origin: str, calendar: str) -> np.ndarray:
    """Origin + whole calendar months; the fraction of a month counts in days of that month."""
    try:
        start = cftime.num2date(0, f"days since {origin}", "proleptic_gregorian", has_year_zero=True)
    except (ValueError, OverflowError) as err:
        raise TimeDecodeError(f"cannot decode time origin {origin!r} ({err})") from None
    whole = np.floor(months + 1e-9).astype(np.int64)
    fraction = np.clip(months - whole, 0.0, None)
    out = []
    for step, frac in zip(whole, fraction):
        month_index = start.year * 12 + (start.month - 1) + int(step)
        year, month = divmod(month_index, 12)
        if not 1678 <= year <= 2261:
            raise TimeDecodeError(f"{step} months after {origin} falls outside {_NS_RANGE}")
        first = np.datetime64(f"{year:04d}-{month + 1:02d}-01", "D")
        days_in_month = int(((first.astype("datetime64[M]") + 1).astype("datetime64[D]") - first).astype(np.int64))
        # The origin's day, clamped to the month's last day: a month after Jan 31 is Feb 28, not Mar 3.
        offset = np.timedelta64(min(start.day, days_in_month) - 1, "D") + np.timedelta64(
            int(round(frac * days_in_month * 86400e6)), "us")
        clock = np.timedelta64(((start.hour * 60 + start.minute) * 60 + start.second) * 10**6 + start.microsecond,
                               "us")
        out.append(first.astype("datetime64[ns]") + offset + clock)
    return _checked(np.array(out, dtype="datetime64[ns]"))


def to_datetime64(dates, calendar: str = "standard") -> np.ndarray:
    """cftime (or python) datetimes -> datetime64[ns], mapping non-real calendars as described above."""
    dates = np.atleast_1d(np.asarray(dates, dtype=object))
    calendar = (calendar or "standard").lower()
    if calendar in _BY_DAY_OF_YEAR:
        stamps = [_by_day_of_year(d) for d in dates]
    elif calendar in _STANDARD:
        stamps = [_same_label(d) for d in dates]
    else:
        raise TimeDecodeError(f"unsupported calendar {calendar!r}")
    return _checked(np.array(stamps, dtype="datetime64[ns]"))


_NS_RANGE = "the datetime64[ns] range (years 1678-2261)"


def _same_label(date) -> np.datetime64:
    if not 1678 <= date.year <= 2261:
        raise TimeDecodeError(f"date {date} falls outside {_NS_RANGE}")
    try:
        return np.datetime64(dt.datetime(date.year, date.month, date.day, date.hour, date.minute,
                                         date.second, date.microsecond), "ns")
    except ValueError as err:  # e.g. year 0, or Feb 29 of a Julian-only leap year
        raise TimeDecodeError(f"date {date} has no equivalent in the Gregorian calendar ({err})") from None


def _by_day_of_year(date) -> np.datetime64:
    source_days = 360 if date.calendar == "360_day" else 366
    if not 1678 <= date.year <= 2261:
        raise TimeDecodeError(f"date {date} falls outside {_NS_RANGE}")
    year_start = np.datetime64(f"{date.year:04d}-01-01", "D")
    target_days = int((np.datetime64(f"{date.year + 1:04d}-01-01", "D") - year_start).astype(np.int64))
    day = int((date.dayofyr - 1) * target_days / source_days)
    clock = np.timedelta64(((date.hour * 60 + date.minute) * 60 + date.second) * 10**6 + date.microsecond, "us")
    return year_start.astype("datetime64[ns]") + np.timedelta64(day, "D") + clock


def _checked(stamps: np.ndarray) -> np.ndarray:
    if np.isnat(stamps).any():
        raise TimeDecodeError(f"time values fall outside {_NS_RANGE}")
    return stamps


def time_from_filename(name: str, pattern: str) -> np.datetime64:
    """The time encoded in a file name by a regex with groups year, month, day[, hour[, minute]].

    Missing month/day default to 1, missing hour/minute to 0. Raises TimeDecodeError when the
    pattern does not match or the groups do not form a date.
    """
    match = re.search(pattern, name)
    if match is None:
        raise TimeDecodeError(f"file name {name!r} does not match time_from_filename {pattern!r}")
    groups = match.groupdict()
    if not groups.get("year"):
        raise TimeDecodeError(f"time_from_filename {pattern!r} has no (?P<year>...) group")
    parts = {key: int(groups[key]) if groups.get(key) else default
             for key, default in (("year", 0), ("month", 1), ("day", 1), ("hour", 0), ("minute", 0))}
    try:
        stamp = dt.datetime(parts["year"], parts["month"], parts["day"], parts["hour"], parts["minute"])
    except ValueError as err:
        raise TimeDecodeError(f"file name {name!r}: {match.group(0)!r} is not a valid date ({err})") from None
    return np.datetime64(stamp, "ns")
