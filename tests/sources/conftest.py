"""Fixtures of the sources tests; the file builders live in sources_helpers.py."""

from __future__ import annotations

import numpy as np
import pytest
from sources_helpers import LAT, LON, lat_lon_variables, time_variable, write_nc


@pytest.fixture
def make_grid_file(tmp_path):
    """Write a (time, lat, lon) file with one variable `x`; returns its path."""

    def make(name="grid.nc", values=None, dtype=np.float32, attrs=None, time=(0.0,), time_units=None,
             calendar="standard", lat=LAT, lon=LON, extra=None):
        shape = (len(time), len(lat), len(lon))
        if values is None:
            values = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
        variables = {**lat_lon_variables(lat, lon),
                     **time_variable(time, time_units or "hours since 2020-01-01 00:00:00", calendar),
                     "x": (("time", "lat", "lon"), np.asarray(values).astype(dtype), attrs or {})}
        variables.update(extra or {})
        return write_nc(tmp_path / name, variables)

    return make
