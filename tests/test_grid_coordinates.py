"""A local domain's coordinates (y/x, 2-D latitude/longitude, the CF `crs`): passed to the store explicitly,
and returned by `satflow.open_archive` like the written store holds them."""

from __future__ import annotations

import json

import netCDF4
import numpy as np
import xarray as xr

from satflow.config import load_config
from satflow.ingest import open_archive, run_ingest
from satflow.sources.domain import domain_coordinates
from satflow.sources.options import DomainConfig
from satflow.store import StoreLayout, create_template

DOMAIN = {"central_latitude": 45.0, "central_longitude": 10.0, "l_zonal": 600_000.0, "l_meridional": 400_000.0,
          "resolution": 50_000.0}


def write_lat_lon_file(path):
    lat, lon = np.arange(35.0, 55.5, 0.5), np.arange(-5.0, 25.5, 0.5)
    with netCDF4.Dataset(path, "w") as ds:
        for name, values, units in (("lat", lat, "degrees_north"), ("lon", lon, "degrees_east")):
            ds.createDimension(name, values.size)
            ds.createVariable(name, "f8", (name,))[:] = values
            ds[name].units = units
        ds.createDimension("time", 1)
        ds.createVariable("time", "f8", ("time",))[:] = [0.0]
        ds["time"].units = "hours since 2020-01-01"
        ds.createVariable("t2m", "f4", ("time", "lat", "lon"))[:] = 280.0 + lat[None, :, None] + 0 * lon
    return path


def test_open_archive_returns_the_domain_coordinates_the_store_records(tmp_path):
    path = write_lat_lon_file(tmp_path / "field_20200101.nc")
    config = load_config(None, ["ingest.source.kind=regrid", f"ingest.source.domain={json.dumps(DOMAIN)}"]).ingest
    lazy = open_archive(str(path), config)
    run_ingest([str(path)], tmp_path / "s.zarr", config)
    stored = xr.open_zarr(tmp_path / "s.zarr")
    for name in ("y", "x", "latitude", "longitude"):
        np.testing.assert_array_equal(lazy[name].values, stored[name].values)
        assert lazy[name].dims == stored[name].dims and lazy[name].attrs == stored[name].attrs
    assert lazy["crs"].attrs == stored["crs"].attrs
    assert lazy["crs"].attrs["grid_mapping_name"] == "lambert_azimuthal_equal_area"
    assert lazy["X"].attrs["grid_mapping"] == stored["X"].attrs["grid_mapping"] == "crs"
    np.testing.assert_array_equal(lazy["X"].values, stored["X"].values)


def test_the_store_takes_domain_coordinates_explicitly_not_from_the_recorded_config(tmp_path):
    layout = StoreLayout(np.array(["2020-01-01"], "datetime64[ns]"), ("a",), np.arange(8.0), np.arange(12.0),
                         {"time": 1, "feature": -1, "lat": 8, "lon": 12})
    recorded = {"satflow_config": json.dumps({"source": {"kind": "regrid", "domain": DOMAIN}})}
    create_template(tmp_path / "plain.zarr", layout, recorded)
    assert "crs" not in xr.open_zarr(tmp_path / "plain.zarr", consolidated=False).coords  # the config text is provenance only
    coordinates = domain_coordinates(DomainConfig(**DOMAIN))
    create_template(tmp_path / "domain.zarr", layout, {}, coordinates)
    ds = xr.open_zarr(tmp_path / "domain.zarr", consolidated=False)
    np.testing.assert_array_equal(ds["x"].values, coordinates["x"][1])
    assert ds["latitude"].dims == ("lat", "lon") and ds["M"].attrs["grid_mapping"] == "crs"
