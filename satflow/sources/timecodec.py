"""Decode CF time coordinates (and times in file names) to datetime64[ns] or, where that cannot hold
them, to cftime dates.

Standard-calendar dates inside 1678-2261 become numpy datetime64[ns]. Everything else stays a cftime
date in its own calendar (years 0 and 1 of climatologies, noleap, 360_day, julian ...): the store
keeps such times as CF-encoded numbers with their calendar, and `xr.open_zarr` decodes them back to
cftime, so a 360_day Feb 30 is never moved to another day. cftime does the standard cases. Real archives add a few that xarray's default decoding rejects,
handled here:
- `months since 1958-1-1` / `years since ...`: calendar months from the origin's day and time
  (clamped to a shorter month's last day; fractions of a month count in days of that month);
  cftime only allows months for the 360_day calendar, where a month is 30 days and a year 12 months.
- `hour since 0000-01-01`: year 0 does not exist in CF's standard calendar; such files count
  from year 0 of the proleptic Gregorian calendar with year zero (ISO 8601), as MATLAB's datenum.
"""

from __future__ import annotations

import datetime as dt
import functools
import re

import cftime
import numpy as np


class TimeDecodeError(ValueError):
    """Time values or units cannot be turned into datetimes; the message says why."""


# Calendars whose dates numpy can hold (inside its datetime64[ns] range); others stay cftime.
REAL_WORLD = {"standard", "gregorian", "proleptic_gregorian", "none", ""}
_KNOWN = REAL_WORLD | {"julian", "noleap", "365_day", "360_day", "366_day", "all_leap"}
# 'since' in any case ('Days Since 1970-01-01'), as cftime accepts it.
_UNITS = re.compile(r"^\s*(?P<unit>[a-zA-Z_]+)\s+since\s+(?P<origin>.+?)\s*$", re.IGNORECASE)
_CALENDAR_MONTHS = {"month": 1, "months": 1, "mon": 1, "year": 12, "years": 12, "yr": 12, "common_year": 12}
_NS_YEARS = (1678, 2261)


def decode_times(values, units: str, calendar: str | None = None) -> np.ndarray:
    """Numeric CF times with `units` ('<unit> since <origin>') -> datetime64[ns], or cftime dates
    (object array, one calendar) where datetime64[ns] cannot hold them."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(values)):
        raise TimeDecodeError("time has missing or non-finite values")
    match = _UNITS.match(units or "")
    if match is None:
        raise TimeDecodeError(f"time units {units!r} are not of the form '<unit> since <date>'")
    calendar = (calendar or "standard").strip().lower()
    if calendar not in _KNOWN:
        raise TimeDecodeError(f"unsupported calendar {calendar!r}")
    unit, origin = match["unit"].lower(), match["origin"]
    if unit in _CALENDAR_MONTHS and calendar == "360_day":
        # A 360_day month is 30 days, which cftime counts; it knows no years, so count 12 months each.
        return as_time_array(_num2date(values * _CALENDAR_MONTHS[unit], f"months since {origin}", calendar))
    if unit in _CALENDAR_MONTHS:
        return as_time_array(_add_calendar_months(values * _CALENDAR_MONTHS[unit], origin, calendar))
    fast = decode_fixed_units(values, unit, f"{unit} since {origin}", calendar)
    if fast is not None:
        return fast
    return as_time_array(_num2date(values, f"{unit} since {origin}", calendar))


# Microseconds per fixed-length unit, as cftime spells them. Months and years are calendar units.
_MICROSECONDS = {
    **dict.fromkeys(("microseconds", "microsecond", "microsec", "microsecs"), 1),
    **dict.fromkeys(("milliseconds", "millisecond", "millisec", "millisecs", "msec", "msecs", "ms"), 1_000),
    **dict.fromkeys(("seconds", "second", "sec", "secs", "s"), 1_000_000),
    **dict.fromkeys(("minutes", "minute", "min", "mins"), 60_000_000),
    **dict.fromkeys(("hours", "hour", "hr", "hrs", "h"), 3_600_000_000),
    **dict.fromkeys(("days", "day", "d"), 86_400_000_000),
}
_SUB_MILLISECOND = {unit for unit, factor in _MICROSECONDS.items() if factor <= 1_000}


def decode_fixed_units(values: np.ndarray, unit: str, units: str, calendar: str) -> np.ndarray | None:
    """Real-world times in fixed-length units, decoded in numpy: the same dates as cftime, which
    builds one Python object per value (swath files hold one time per observation: millions).

    The rounding is cftime's (`num2date`: values scaled to microseconds in extended precision, rounded
    to the nearest, and a result 1 us off a whole second snapped to it), so both paths give the same
    microseconds. None where numpy cannot hold the dates (origin or result outside 1678-2261, or
    before the Gregorian switch of the 'standard' calendar): cftime decodes those.
    """
    if calendar not in REAL_WORLD or unit not in _MICROSECONDS:
        return None
    origin = _origin(units, calendar)
    if not _fits_datetime64(origin):
        return None
    scaled = values.astype(np.longdouble) * _MICROSECONDS[unit]
    if np.any(np.abs(scaled) > 2**62):
        return None
    microseconds = np.rint(scaled).astype(np.int64)
    if unit not in _SUB_MILLISECOND:
        microseconds = np.where(microseconds % 1_000_000 == 1, np.floor(scaled).astype(np.int64), microseconds)
        microseconds = np.where(microseconds % 1_000_000 == 999_999, np.ceil(scaled).astype(np.int64), microseconds)
    decoded = _same_label(origin).astype("datetime64[us]") + microseconds.astype("timedelta64[us]")
    inside = np.array([str(y) for y in _NS_YEARS], "datetime64[Y]")  # first day of 1678 .. first of 2261
    if decoded.size and (decoded.min() < inside[0] or decoded.max() >= inside[1] + np.timedelta64(1, "Y")):
        return None
    return decoded.astype("datetime64[ns]")


@functools.lru_cache(maxsize=256)
def _origin(units: str, calendar: str):
    """The date of value 0; an archive repeats one units string in every file, and cftime takes
    a third of a millisecond to parse it (a tenth of a small file's scan)."""
    return _num2date(np.zeros(1), units, calendar)[0]


def _num2date(values: np.ndarray, units: str, calendar: str):
    try:
        return cftime.num2date(values, units, calendar, only_use_cftime_datetimes=True)
    except (ValueError, OverflowError, TypeError) as err:
        if "zero not allowed as a reference year" not in str(err):
            raise TimeDecodeError(f"cannot decode time units {units!r} with calendar {calendar!r} ({err})") from None
    # Year 0 origin: count in the proleptic Gregorian calendar with a year zero (ISO 8601).
    try:
        return cftime.num2date(values, units, "proleptic_gregorian", only_use_cftime_datetimes=True)
    except (ValueError, OverflowError, TypeError) as err:
        raise TimeDecodeError(f"cannot decode time units {units!r} ({err})") from None


def _add_calendar_months(months: np.ndarray, origin: str, calendar: str) -> list:
    """Origin + whole calendar months; the fraction of a month counts in days of that month."""
    if calendar in REAL_WORLD:
        calendar = "proleptic_gregorian"  # months are calendar months; year 0 origins need ISO 8601
    try:
        start = cftime.num2date(0, f"days since {origin}", calendar)
    except (ValueError, OverflowError) as err:
        raise TimeDecodeError(f"cannot decode time origin {origin!r} ({err})") from None
    whole = np.floor(months + 1e-9).astype(np.int64)
    fraction = np.clip(months - whole, 0.0, None)
    out = []
    for step, frac in zip(whole, fraction):
        year, month = divmod(start.year * 12 + (start.month - 1) + int(step), 12)
        first = cftime.datetime(year, month + 1, 1, calendar=calendar)
        following = cftime.datetime(year + (month + 1) // 12, (month + 1) % 12 + 1, 1, calendar=calendar)
        days_in_month = (following - first).days
        # The origin's day, clamped to the month's last day: a month after Jan 31 is Feb 28, not Mar 3.
        out.append(first.replace(day=min(start.day, days_in_month), hour=start.hour, minute=start.minute,
                                 second=start.second, microsecond=start.microsecond)
                   + dt.timedelta(microseconds=round(frac * days_in_month * 86400e6)))
    return out


def as_time_array(dates) -> np.ndarray:
    """Dates -> datetime64[ns] when all are real-world dates inside its range, else cftime objects.

    Standard-calendar dates keep their labels either way; cftime dates keep their calendar.
    """
    if isinstance(dates, np.ndarray) and dates.dtype.kind == "M":
        return dates.astype("datetime64[ns]")
    dates = np.empty(len(dates), dtype=object) if not len(dates) else _object_array(dates)
    if dates.size and all(isinstance(d, np.datetime64) for d in dates):
        return dates.astype("datetime64[ns]")
    if dates.size and all(_fits_datetime64(d) for d in dates):
        return np.array([_same_label(d) for d in dates], dtype="datetime64[ns]")
    calendars = {d.calendar for d in dates}
    if len(calendars) > 1:
        raise TimeDecodeError(f"times mix calendars {sorted(calendars)}")
    return dates


def _object_array(dates) -> np.ndarray:
    out = np.empty(len(dates), dtype=object)
    out[:] = list(dates)  # element by element: numpy would turn datetime64 into integers
    return out


def _fits_datetime64(date) -> bool:
    calendar = getattr(date, "calendar", "standard") or "standard"
    return calendar in REAL_WORLD and _NS_YEARS[0] <= date.year <= _NS_YEARS[1]


def _same_label(date) -> np.datetime64:
    return np.datetime64(dt.datetime(date.year, date.month, date.day, date.hour, date.minute,
                                     date.second, date.microsecond), "ns")


def time_calendar(times: np.ndarray) -> str:
    """'datetime64' for numpy times, else the cftime calendar (what two files must share to join)."""
    times = np.asarray(times)
    if times.dtype.kind == "M" or not times.size:
        return "datetime64"
    return str(times.flat[0].calendar)


def time_encoding(times: np.ndarray) -> dict:
    """CF encoding of a store's time axis: integer minutes, in the dates' own calendar."""
    calendar = time_calendar(times)
    if calendar == "datetime64":
        return {"units": "minutes since 1970-01-01 00:00:00", "calendar": "proleptic_gregorian", "dtype": "int64"}
    # Year 1 exists in every calendar; year-0 dates simply count negative minutes.
    return {"units": "minutes since 0001-01-01 00:00:00", "calendar": calendar, "dtype": "int64"}


def encode_times(times: np.ndarray, units: str, calendar: str) -> np.ndarray:
    """datetime64 or cftime dates -> CF numbers in `units` and `calendar`."""
    times = np.asarray(times)
    if times.dtype.kind == "M":
        times = times.astype("datetime64[us]").astype(object)
    return np.asarray(cftime.date2num(list(times), units, calendar))


def iso_times(times: np.ndarray) -> list[str]:
    """ISO 8601 labels to the second, whatever the calendar (sortable as text for years 0-9999)."""
    times = np.asarray(times)
    if times.dtype.kind == "M":
        return [str(t) for t in np.datetime_as_string(times, unit="s")]
    return [f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}" for d in times]


_ISO = re.compile(r"^\s*(-?\d{1,4})(?:-(\d{1,2})(?:-(\d{1,2})(?:[T ](\d{1,2})(?::(\d{1,2})(?::(\d{1,2}))?)?)?)?)?\s*$")


def parse_time_like(text: str, times: np.ndarray):
    """An ISO date string as a value comparable with `times` (datetime64 or cftime, same calendar)."""
    times = np.asarray(times)
    if time_calendar(times) == "datetime64":
        import pandas as pd

        return np.datetime64(pd.Timestamp(text), "ns")
    match = _ISO.match(str(text))
    if match is None:
        raise TimeDecodeError(f"{text!r} is not an ISO date (YYYY-MM-DD[THH[:MM[:SS]]])")
    parts = [int(g) if g else default for g, default in zip(match.groups(), (0, 1, 1, 0, 0, 0))]
    try:
        return cftime.datetime(*parts, calendar=time_calendar(times))
    except ValueError as err:
        raise TimeDecodeError(f"{text!r} is not a date of the {time_calendar(times)} calendar ({err})") from None


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
