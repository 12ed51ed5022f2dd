"""Builders of tiny NetCDF files for the sources tests (imported by the tests and conftest)."""

from __future__ import annotations

import numpy as np

from satflow.sources.options import SourceConfig

LAT = np.array([-10.0, 0.0, 10.0])
LON = np.array([0.0, 90.0, 180.0, 270.0])


def write_nc(path, variables: dict, *, dims: dict | None = None, groups: dict | None = None, attrs=None):
    """Write `variables` {name: (dims, values, attrs)} (dtype from values) into a NETCDF4 file.

    Dimension sizes come from `dims` or from the first variable that uses them. A variable's
    `_FillValue` attribute is applied at creation. `groups` maps a group name to its variables.
    """
    import netCDF4

    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.setncatts(attrs or {})
        _define(ds, variables, dict(dims or {}))
        for name, group_variables in (groups or {}).items():
            _define(ds.createGroup(name), group_variables, {})
    return path


def _define(group, variables: dict, sizes: dict) -> None:
    for var_dims, values, _ in variables.values():
        for dim, size in zip(var_dims, np.shape(values)):
            sizes.setdefault(dim, size)
    for dim, size in sizes.items():
        if dim not in group.dimensions and not _inherited(group, dim):
            group.createDimension(dim, size)
    for name, (var_dims, values, var_attrs) in variables.items():
        var_attrs = dict(var_attrs or {})
        values = np.asarray(values)
        fill = var_attrs.pop("_FillValue", None)
        var = group.createVariable(name, values.dtype, var_dims, fill_value=fill)
        var.set_auto_maskandscale(False)  # write the stored values exactly as given
        var.setncatts(var_attrs)
        var[...] = values


def _inherited(group, dim: str) -> bool:
    parent = group.parent
    while parent is not None:
        if dim in parent.dimensions:
            return True
        parent = parent.parent
    return False


def lat_lon_variables(lat=LAT, lon=LON) -> dict:
    return {
        "lat": (("lat",), np.asarray(lat, np.float64), {"standard_name": "latitude", "units": "degrees_north"}),
        "lon": (("lon",), np.asarray(lon, np.float64), {"standard_name": "longitude", "units": "degrees_east"}),
    }


def time_variable(values, units="hours since 2020-01-01 00:00:00", calendar="standard") -> dict:
    return {"time": (("time",), np.asarray(values, np.float64),
                     {"standard_name": "time", "units": units, "calendar": calendar})}


def source(**settings) -> SourceConfig:
    return SourceConfig(**settings)
