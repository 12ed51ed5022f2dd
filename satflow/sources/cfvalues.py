"""Turn stored NetCDF values into physical float32 values with NaN where invalid (CF rules).

The raw (packed) array is read with netCDF4's automatic masking and scaling switched off, so
that all the rules live in one place and `source.sentinel` can be compared with stored values:
- `_Unsigned = "true"` reinterprets signed integers as unsigned (netCDF-3 style unsigned bytes),
  and its fill and valid attributes, written in the signed type, likewise (-1b is 255);
- invalid: `_FillValue` (or the netCDF default fill of the type when none is declared, as
  netCDF4-python does), every `missing_value`, values outside `valid_min`/`valid_max`/`valid_range`
  (compared with the stored values, as netCDF4-python does), NaN/inf, and `sentinel` when the
  variable declares neither `_FillValue` nor `missing_value`;
- unpacked as `raw * scale_factor + add_offset` in float64, then cast to float32.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from netCDF4 import default_fillvals


class UnitsError(ValueError):
    """A requested unit conversion is not possible; the message names both units."""


def decode_values(raw: np.ndarray, attrs: Mapping, *, sentinel: float | None = None,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Stored values + the variable's attributes -> float32 physical values, NaN where invalid.

    `out` (float32, `raw`'s shape or one it broadcasts to) receives the values: the ingest decodes
    straight into the block it writes instead of allocating a copy per file.
    """
    raw = _as_unsigned(np.asarray(raw), attrs)
    out = np.empty(raw.shape, np.float32) if out is None else out
    invalid = invalid_mask(raw, attrs, sentinel=sentinel)
    scale, offset = _number(attrs.get("scale_factor"), 1.0), _number(attrs.get("add_offset"), 0.0)
    if scale == 1.0 and offset == 0.0 and raw.dtype.kind == "f" and raw.dtype.itemsize <= 4:
        # Unpacked float32 (most gridded products): no float64 round trip, and `invalid`
        # already covers NaN/inf. This halves the time of a read on the ingest hot path.
        np.copyto(out, raw, casting="same_kind")
    else:
        values = raw.astype(np.float64) * scale + offset
        invalid |= ~np.isfinite(values)
        np.copyto(out, values, casting="same_kind")
    np.copyto(out, np.float32(np.nan), where=invalid)
    return out


def invalid_mask(raw: np.ndarray, attrs: Mapping, *, sentinel: float | None = None) -> np.ndarray:
    """True where a stored value is fill, missing, out of the valid range or not finite."""
    invalid = np.zeros(raw.shape, dtype=bool)
    if raw.dtype.kind == "f":
        invalid |= ~np.isfinite(raw)
    for marker in _markers(raw.dtype, attrs, sentinel):
        invalid |= raw == marker
    low, high = _valid_bounds(attrs, raw.dtype)
    if low is not None:
        invalid |= raw < _as_bound(low, raw.dtype)
    if high is not None:
        invalid |= raw > _as_bound(high, raw.dtype)
    return invalid


def _markers(dtype: np.dtype, attrs: Mapping, sentinel: float | None) -> list:
    """Stored values that mean 'no data', cast to the stored type so that comparisons are exact."""
    fill = _unsigned_attribute(_numbers(attrs.get("_FillValue")), dtype, attrs)
    missing = _unsigned_attribute(_numbers(attrs.get("missing_value")), dtype, attrs)
    markers = fill + missing
    if not fill:
        default = _default_fill(dtype)
        if default is not None:
            markers.append(default)
    if not fill and not missing and sentinel is not None:
        markers.append(sentinel)
    return [m for m in (_as_stored(value, dtype) for value in markers) if m is not None and not _is_nan(m)]


def _default_fill(dtype: np.dtype):
    if dtype.kind not in "iuf" or dtype.itemsize == 1:  # netCDF4-python never masks bytes by default
        return None
    return default_fillvals.get(f"{dtype.kind}{dtype.itemsize}")


def _valid_bounds(attrs: Mapping, dtype: np.dtype) -> tuple[float | None, float | None]:
    valid_range = _unsigned_attribute(_numbers(attrs.get("valid_range")), dtype, attrs)
    low, high = (valid_range[0], valid_range[1]) if len(valid_range) == 2 else (None, None)
    low = _first(_unsigned_attribute(_numbers(attrs.get("valid_min")), dtype, attrs), low)
    high = _first(_unsigned_attribute(_numbers(attrs.get("valid_max")), dtype, attrs), high)
    return low, high


def _unsigned_attribute(values: list[float], dtype: np.dtype, attrs: Mapping) -> list[float]:
    """Attribute values of an `_Unsigned` variable are written in its signed stored type (NUG,
    netCDF4-python): on the unsigned view, _FillValue -1s is 65535 and valid_range 0s, -6s is 0..65530."""
    if dtype.kind != "u" or str(attrs.get("_Unsigned", "")).lower() != "true":
        return values
    wrap = 2 ** (8 * dtype.itemsize)
    return [v + wrap if -wrap // 2 <= v < 0 else v for v in values]


def _as_unsigned(raw: np.ndarray, attrs: Mapping) -> np.ndarray:
    if str(attrs.get("_Unsigned", "")).lower() == "true" and raw.dtype.kind == "i":
        return raw.view(raw.dtype.str.replace("i", "u"))
    return raw


def _as_stored(value, dtype: np.dtype):
    """`value` in the stored type; None when it cannot be represented there (e.g. 1e20 as int16)."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if not np.isfinite(value) or value < info.min or value > info.max:
            return None
        return dtype.type(round(value))
    return dtype.type(value)


def _numbers(value) -> list[float]:
    """Numeric attribute values as floats; strings and other junk are ignored."""
    if value is None:
        return []
    array = np.atleast_1d(np.asarray(value))
    if array.dtype.kind not in "iufb":
        return []
    return [float(v) for v in array.ravel()]


def _as_bound(value: float, dtype: np.dtype):
    """A valid_min/valid_max in the stored type; one the type cannot hold (valid_max = 1e20 on int16)
    compares as a float, so it restricts nothing (or everything) instead of failing."""
    stored = _as_stored(value, dtype)
    return value if stored is None else stored


def _number(value, default: float) -> float:
    numbers = _numbers(value)
    return numbers[0] if numbers else default


def _first(values: list[float], default):
    return values[0] if values else default


def _is_nan(value) -> bool:
    return isinstance(value, np.floating) and np.isnan(value)


# --- units -------------------------------------------------------------------------------------
_TEMPERATURE_UNITS = {
    "K": {"k", "kelvin", "kelvins", "degk", "deg_k", "degree_k", "degrees_k", "degreek", "degreesk"},
    "degC": {"degc", "deg_c", "degree_c", "degrees_c", "degreec", "degreesc", "celsius", "degree_celsius",
             "degrees_celsius", "°c", "c"},
    "degF": {"degf", "deg_f", "degree_f", "degrees_f", "degreef", "degreesf", "fahrenheit", "°f", "f"},
}
_TO_KELVIN = {"K": (1.0, 0.0), "degC": (1.0, 273.15), "degF": (5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0)}


def canonical_unit(units: str | None) -> str | None:
    """'degrees_C' -> 'degC', 'kelvin' -> 'K'; None for units satflow cannot convert."""
    key = (units or "").strip().lower().replace(" ", "_")
    return next((name for name, spellings in _TEMPERATURE_UNITS.items() if key in spellings), None)


def convert_units(values: np.ndarray, from_units: str | None, to_units: str) -> np.ndarray:
    """Temperatures between K, degC and degF (any common spelling); float32 in, float32 out."""
    source, target = canonical_unit(from_units), canonical_unit(to_units)
    if source is None or target is None:
        raise UnitsError(f"cannot convert units {from_units!r} to {to_units!r} "
                         "(satflow converts temperatures between K, degC and degF)")
    if source == target:
        return values
    scale_in, offset_in = _TO_KELVIN[source]
    scale_out, offset_out = _TO_KELVIN[target]
    kelvin = values.astype(np.float64) * scale_in + offset_in
    return ((kelvin - offset_out) / scale_out).astype(np.float32)
