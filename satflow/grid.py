"""Pure helpers for regular latitude/longitude grids: longitude conventions, crops, centres.

Longitude conventions are "-180..180" (values in [-180, 180)) and "0..360" (values in [0, 360)).
A crop box whose `lon_min` is east of its `lon_max` crosses the seam of the convention (e.g.
170..-170 crosses the dateline); the selected columns are then returned in eastward order and
`unwrap_longitudes` turns their values into one ascending, continuous axis (170..190), so that a
crop is always a contiguous block of cells.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

LonConvention = Literal["-180..180", "0..360"]
_LOWER_BOUND = {"-180..180": -180.0, "0..360": 0.0}


def wrap_longitude(lon, convention: LonConvention = "-180..180"):
    """Longitudes (scalar or array, degrees) wrapped into [-180, 180) or [0, 360)."""
    if convention not in _LOWER_BOUND:
        raise ValueError(f"unknown longitude convention {convention!r}; use '-180..180' or '0..360'")
    lower = _LOWER_BOUND[convention]
    wrapped = np.mod(np.asarray(lon, dtype=np.float64) - lower, 360.0) + lower
    # np.mod can return exactly 360 for tiny negative inputs; keep the half-open interval.
    wrapped = np.where(wrapped >= lower + 360.0, lower, wrapped)
    return wrapped if wrapped.ndim else float(wrapped)


def normalize_longitudes(lon, convention: LonConvention = "-180..180") -> tuple[np.ndarray, np.ndarray]:
    """Wrap a 1-D longitude axis into `convention` and sort it ascending.

    Returns `(new_lon, order)` with `new_lon == wrap_longitude(lon)[order]`: index data along the
    longitude axis with `order` to roll it onto the new axis. A column that duplicates another
    after wrapping (0 and 360 both present) is dropped, so `order` may be shorter than `lon`.
    """
    wrapped = np.atleast_1d(wrap_longitude(lon, convention))
    order = np.argsort(wrapped, kind="stable")
    keep = np.ones(order.size, dtype=bool)
    keep[1:] = ~np.isclose(np.diff(wrapped[order]), 0.0, rtol=0.0, atol=1e-9)
    order = order[keep]
    return wrapped[order], order


def latitude_order(lat) -> np.ndarray:
    """Indices that sort a latitude axis ascending (south to north)."""
    return np.argsort(np.asarray(lat, dtype=np.float64), kind="stable")


def crop_indices(lat, lon, box) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the cells of an ascending lat/lon grid that lie inside `box` (bounds inclusive).

    `box` has `lat_min, lat_max, lon_min, lon_max` (a `satflow.config.CropBox`) or is None (no
    crop). The box longitudes may be in either convention; the grid's longitudes are expected in
    [-180, 180) or [0, 360). When the box crosses the grid's seam, the longitude indices run
    eastward from `lon_min` across the seam: pass `lon[lon_index]` to `unwrap_longitudes`.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    if box is None:
        return np.arange(lat.size), np.arange(lon.size)
    lat_index = np.flatnonzero((lat >= box.lat_min) & (lat <= box.lat_max))
    return lat_index, _lon_crop_indices(lon, box.lon_min, box.lon_max)


def _lon_crop_indices(lon: np.ndarray, lon_min: float, lon_max: float) -> np.ndarray:
    if lon_max - lon_min >= 360.0:
        return np.arange(lon.size)
    # A column is inside when it lies on the eastward arc from lon_min to lon_max; ordering by
    # the distance along that arc puts the columns east of a seam first, whatever the convention.
    along = longitude_span(lon_min, lon)
    inside = np.flatnonzero(along <= longitude_span(lon_min, lon_max) + 1e-9)
    return inside[np.argsort(along[inside], kind="stable")]


def unwrap_longitudes(lon) -> np.ndarray:
    """Add 360 after every eastward wrap so that a sequence of longitudes becomes ascending."""
    lon = np.asarray(lon, dtype=np.float64)
    if lon.size < 2:
        return lon.copy()
    wraps = np.concatenate([[0.0], np.cumsum(np.diff(lon) < 0) * 360.0])
    return lon + wraps


def longitude_span(lon0, lon1):
    """Eastward angular distance in [0, 360) from lon0 to lon1 (degrees)."""
    return np.mod(np.asarray(lon1, dtype=np.float64) - np.asarray(lon0, dtype=np.float64), 360.0)


def dateline_safe_center(lon0, lon1, convention: LonConvention = "-180..180"):
    """Centre of the eastward arc from lon0 to lon1, wrapped into `convention`.

    Works for boxes that cross the dateline (lon0=170, lon1=-170 -> -180) and for unwrapped
    values (lon0=170, lon1=190 -> -180); scalars or arrays.
    """
    return wrap_longitude(np.asarray(lon0, dtype=np.float64) + longitude_span(lon0, lon1) / 2.0, convention)


def cell_centres(start: float, stop: float, step: float) -> np.ndarray:
    """Centres of the cells of width `step` that tile [start, stop]: -90, 90, 0.25 -> -89.875 .. 89.875."""
    count = int(round((stop - start) / step))
    if count <= 0 or not np.isclose(count * step, stop - start):
        raise ValueError(f"step {step} does not tile [{start}, {stop}] into whole cells")
    return start + step * (np.arange(count) + 0.5)


def covers_all_longitudes(lon) -> bool:
    """Whether evenly spaced longitudes go once round the globe (the column after the last is the first)."""
    lon = np.asarray(lon, np.float64)
    if lon.size < 2:
        return False
    step = float(np.median(np.diff(lon)))
    return abs(lon[-1] - lon[0] + step - 360.0) < 1e-3 * abs(step)
