"""What every NetCDF-reading source shares: opening a file with a clear error, reading attributes."""

from __future__ import annotations

import os

import netCDF4

from satflow.sources.base import SourceError

CORRUPT_HINT = "the file is truncated or not NetCDF: re-download or remove it"


def short_error(err: Exception) -> str:
    """netCDF4's message without the path it repeats after it."""
    return str(err).split(": '")[0]


def open_netcdf(path: str) -> netCDF4.Dataset:
    """Open for reading; a missing or unreadable file is a SourceError naming it and what to do."""
    if not os.path.exists(path):
        raise SourceError(path, "no such file", "check the path or glob")
    try:
        return netCDF4.Dataset(path, "r")
    except (OSError, RuntimeError, ValueError) as err:
        raise SourceError(path, f"cannot open as NetCDF ({short_error(err)})", CORRUPT_HINT) from None


def nc_attr(variable, name: str, default=None):
    """A variable's attribute, or `default` when it has none."""
    return variable.getncattr(name) if name in variable.ncattrs() else default
