"""Every NetCDF access takes one process-wide lock, xarray's once xarray is loaded, and an ingest
region task does not import xarray for it."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_fresh(code: str) -> str:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_the_lock_is_xarray_s_once_xarray_is_loaded_and_satflow_s_before():
    printed = run_fresh("""
        from satflow.sources.netcdf import _OWN_HDF5_LOCK, hdf5_lock
        before = hdf5_lock() is _OWN_HDF5_LOCK
        from xarray.backends.locks import HDF5_LOCK
        print(before, hdf5_lock() is HDF5_LOCK)
    """)
    assert printed == "True True"


def test_an_ingest_region_task_imports_neither_xarray_nor_pandas():
    # 0.45-0.6 s of every worker's start went to xarray and pandas, imported only for xarray's lock
    printed = run_fresh("""
        import sys
        import satflow.ingest.tasks, satflow.store.write, satflow.sources.gridded, satflow.sources.swath
        print(sorted(m for m in ("xarray", "pandas", "dask.array") if m in sys.modules))
    """)
    assert printed == "[]"
