"""What every NetCDF-reading source shares: opening a file with a clear error, reading attributes."""

from __future__ import annotations

import os
import sys
import threading

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


_OWN_HDF5_LOCK = threading.Lock()


def hdf5_lock():
    """The lock every satflow NetCDF access holds: netCDF4/HDF5 is not thread-safe (two threads
    reading at once crash the process).

    xarray's process-wide HDF5 lock (the one its own NetCDF backend takes) once xarray is loaded,
    so satflow's reads and xarray's take turns in one process; before that satflow's own lock.
    Looked up per access, not imported: importing xarray for its lock cost every ingest worker
    0.45-0.6 s of start (xarray and pandas) that its region tasks do not otherwise need.
    """
    locks = sys.modules.get("xarray.backends.locks")
    return locks.HDF5_LOCK if locks is not None else _OWN_HDF5_LOCK


def nc_attr(variable, name: str, default=None):
    """A variable's attribute, or `default` when it has none."""
    return variable.getncattr(name) if name in variable.ncattrs() else default
