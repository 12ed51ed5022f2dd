"""Which time steps enter the store: intervals, hours of day, hours from local solar noon.

All filters given must pass. Local solar time is mean solar time, UTC + longitude / 15 h (the
equation of time, at most ~16 min, is ignored: convml_tt's `N_hours_from_zenith` works on whole
scenes hours apart). Works on datetime64 and on cftime times (model calendars).
"""

from __future__ import annotations

import numpy as np

from satflow.grid import dateline_safe_center
from satflow.sources.options import TimeSelection
from satflow.sources.timecodec import parse_time_like, time_calendar


def is_active(selection: TimeSelection) -> bool:
    return bool(selection.intervals or selection.hours or selection.N_hours_from_zenith is not None)


def select_steps(times: np.ndarray, selection: TimeSelection, lon: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask over `times`: True where every configured filter passes.

    `lon` is the grid's longitude axis; its centre is the solar longitude unless one is configured.
    """
    times = np.asarray(times)
    keep = np.ones(times.shape, bool)
    if not times.size:
        return keep
    if selection.intervals:
        keep &= in_intervals(times, [(i.start, i.end) for i in selection.intervals])
    hours = hours_of_day(times)
    if selection.hours:
        keep &= np.isin(np.floor(hours).astype(int), selection.hours)
    if selection.N_hours_from_zenith is not None:
        longitude = selection.solar_longitude
        if longitude is None:
            longitude = 0.0 if lon is None or not len(lon) else float(dateline_safe_center(lon[0], lon[-1]))
        keep &= hours_from_solar_noon(hours, longitude) <= selection.N_hours_from_zenith + 1e-9
    return keep


def in_intervals(times: np.ndarray, intervals: list[tuple[str, str]]) -> np.ndarray:
    """True where a time lies in any [start, end)."""
    inside = np.zeros(times.shape, bool)
    for start, end in intervals:
        lo, hi = parse_time_like(start, times), parse_time_like(end, times)
        inside |= np.array([lo <= t < hi for t in times], bool)
    return inside


def hours_of_day(times: np.ndarray) -> np.ndarray:
    """UTC hour of day as a float (6.5 = 06:30)."""
    if time_calendar(times) == "datetime64":
        since_midnight = times.astype("datetime64[ns]") - times.astype("datetime64[D]")
        return since_midnight / np.timedelta64(1, "h")
    return np.array([t.hour + t.minute / 60.0 + t.second / 3600.0 for t in times])


def hours_from_solar_noon(hours_utc: np.ndarray, longitude: float) -> np.ndarray:
    """|local mean solar time - 12 h|, in 0..12."""
    local = np.mod(np.asarray(hours_utc, np.float64) + longitude / 15.0, 24.0)
    return np.abs(local - 12.0)
