"""The regrid source: gridded and projected CF files resampled onto a local Lambert azimuthal equal-area domain."""

from __future__ import annotations

import json
import os

import numpy as np
import pyproj
import pytest
import xarray as xr
from sources_helpers import time_variable, write_nc

from satflow.cli import main as cli_main
from satflow.config import ConfigError, load_config
from satflow.sources.base import SourceError, read_input, scan_input
from satflow.sources.domain import DomainGrid
from satflow.sources.options import DomainConfig, SourceConfig

STEREOGRAPHIC = {"grid_mapping_name": "stereographic", "longitude_of_projection_origin": -35.0,
                 "latitude_of_projection_origin": 90.0, "scale_factor_at_projection_origin": 1.0,
                 "false_easting": 0.0, "false_northing": 0.0, "earth_radius": 6378169.0}
DOMAIN = {"central_latitude": 50.0, "central_longitude": -5.0, "l_zonal": 1_000_000.0, "l_meridional": 600_000.0,
          "resolution": 20_000.0}


def analytic(lat, lon):
    """A smooth field (kelvin-like) whose bilinear interpolation error is small and known in size."""
    return 280.0 + 10.0 * np.sin(np.radians(3 * lat)) * np.cos(np.radians(2 * lon))


def regrid_config(method: str, domain: dict = DOMAIN, **settings) -> SourceConfig:
    return SourceConfig(kind="regrid", domain=DomainConfig(**domain), regrid={"method": method}, **settings)


def lat_lon_file(path, lat, lon, values, lon_units="degrees_east"):
    return write_nc(path, {
        "lat": (("lat",), lat, {"standard_name": "latitude", "units": "degrees_north"}),
        "lon": (("lon",), lon, {"standard_name": "longitude", "units": lon_units}),
        **time_variable((0.0,), "hours since 2020-01-01 00:00:00", "standard"),
        "tb": (("time", "lat", "lon"), values[None].astype(np.float32), {"units": "K", "_FillValue": np.float32(-999)}),
    })


def stereographic_file(path, values_of, spacing=20_000.0, fill_where=None):
    """A (y, x) file on the SEVIRI scene's polar stereographic grid, values from their lat/lon."""
    x = np.arange(1_300_000.0, 3_300_000.0, spacing)  # around DOMAIN
    y = np.arange(-4_900_000.0, -3_100_000.0, spacing)[::-1]  # north-up rows, as satellite scenes store them
    crs = pyproj.CRS.from_cf(STEREOGRAPHIC)
    lon, lat = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True).transform(*np.meshgrid(x, y))
    values = values_of(lat, lon).astype(np.float32)
    if fill_where is not None:
        values[fill_where(values.shape)] = -999.0
    write_nc(path, {
        "x": (("x",), x, {"standard_name": "projection_x_coordinate", "units": "m"}),
        "y": (("y",), y, {"standard_name": "projection_y_coordinate", "units": "m"}),
        "stereographic": ((), np.int32(0), STEREOGRAPHIC),
        "time": ((), np.float64(12.0), {"units": "hours since 2020-01-01", "standard_name": "time"}),
        "tb": (("y", "x"), values, {"units": "K", "grid_mapping": "stereographic", "_FillValue": np.float32(-999)}),
    })
    return path, lat, lon


def regrid(path, config: SourceConfig) -> np.ndarray:
    return read_input(scan_input(str(path), config), config)[0, 0]


# --- analytic fields ---------------------------------------------------------------------------
# Measured maxima of |regridded - analytic| over the 30 x 50 domain of 20 km cells (field range 270..290 K):
# bilinear 2e-4 K from the 0.25-degree grid, 1e-4 K from the 20 km stereographic grid (float32 spacing at 280 K is
# 3e-5 K) and the same from its 2-D lat/lon alone (curvilinear); nearest 0.06 K and 0.05 K, half an input cell's
# change of the field. Tolerances: 1e-3 K and 0.2 K.
@pytest.mark.parametrize("method, tolerance", [("bilinear", 1e-3), ("nearest", 0.2)])
def test_regular_lat_lon_input_reproduces_an_analytic_field(tmp_path, method, tolerance):
    lat, lon = np.arange(30.0, 70.0, 0.25), np.arange(-30.0, 20.0, 0.25)
    path = lat_lon_file(tmp_path / "f.nc", lat, lon, analytic(*np.meshgrid(lat, lon, indexing="ij")))
    config = regrid_config(method)
    out = regrid(path, config)
    domain_lat, domain_lon = DomainGrid.from_config(config.domain).lat_lon_2d
    assert out.shape == (30, 50) and np.isfinite(out).all()
    assert np.abs(out - analytic(domain_lat, domain_lon)).max() < tolerance


@pytest.mark.parametrize("method, tolerance", [("bilinear", 1e-3), ("nearest", 0.2)])
def test_projected_input_reproduces_an_analytic_field(tmp_path, method, tolerance):
    path, _, _ = stereographic_file(tmp_path / "s.nc", analytic)
    config = regrid_config(method)
    out = regrid(path, config)
    domain_lat, domain_lon = DomainGrid.from_config(config.domain).lat_lon_2d
    assert np.isfinite(out).all()
    assert np.abs(out - analytic(domain_lat, domain_lon)).max() < tolerance


GOES_EAST = {"grid_mapping_name": "geostationary", "perspective_point_height": 35786023.0,
             "longitude_of_projection_origin": -75.0, "latitude_of_projection_origin": 0.0,
             "semi_major_axis": 6378137.0, "semi_minor_axis": 6356752.31414, "sweep_angle_axis": "x"}


def test_geostationary_scan_angles_reproduce_an_analytic_field(tmp_path):
    """GOES ABI layout: x/y are scan angles in radians; the grid mapping's satellite height makes them metres."""
    x = np.arange(-0.03, 0.03, 5.6e-4)  # about 20 km at nadir
    y = np.arange(0.06, 0.11, 5.6e-4)[::-1]
    crs = pyproj.CRS.from_cf(GOES_EAST)
    height = GOES_EAST["perspective_point_height"]
    lon, lat = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True).transform(
        *np.meshgrid(x * height, y * height))
    path = write_nc(tmp_path / "abi.nc", {
        "x": (("x",), x, {"standard_name": "projection_x_angular_coordinate", "units": "rad"}),
        "y": (("y",), y, {"standard_name": "projection_y_angular_coordinate", "units": "rad"}),
        "goes_imager_projection": ((), np.int32(0), GOES_EAST),
        **time_variable((0.0,), "seconds since 2000-01-01 12:00:00", "standard"),
        "CMI": (("time", "y", "x"), analytic(lat, lon)[None].astype(np.float32),
                {"units": "K", "grid_mapping": "goes_imager_projection"}),
    })
    config = regrid_config("bilinear", {**DOMAIN, "central_latitude": 30.0, "central_longitude": -75.0})
    out = regrid(path, config)
    domain_lat, domain_lon = DomainGrid.from_config(config.domain).lat_lon_2d
    assert np.isfinite(out).all() and np.abs(out - analytic(domain_lat, domain_lon)).max() < 1e-3


def test_global_input_regrids_across_its_seam(tmp_path):
    """A 0..360 global grid: a domain on the dateline draws on the last and the first columns."""
    lat, lon = np.arange(-89.75, 90.0, 0.5), np.arange(0.25, 360.0, 0.5)
    path = lat_lon_file(tmp_path / "g.nc", lat, lon, analytic(*np.meshgrid(lat, lon, indexing="ij")))
    config = regrid_config("bilinear", {**DOMAIN, "central_latitude": 0.0, "central_longitude": 180.0})
    out = regrid(path, config)
    domain_lat, domain_lon = DomainGrid.from_config(config.domain).lat_lon_2d
    assert np.isfinite(out).all() and np.abs(out - analytic(domain_lat, domain_lon)).max() < 1e-3  # measured 2e-4


def test_domain_beyond_the_input_is_invalid_there(tmp_path):
    lat, lon = np.arange(40.0, 60.0, 0.25), np.arange(-5.0, 20.0, 0.25)  # the domain's west lies outside
    path = lat_lon_file(tmp_path / "f.nc", lat, lon, analytic(*np.meshgrid(lat, lon, indexing="ij")))
    config = regrid_config("bilinear")
    out = regrid(path, config)
    _, domain_lon = DomainGrid.from_config(config.domain).lat_lon_2d
    np.testing.assert_array_equal(np.isfinite(out), (domain_lon >= -5.0) & (domain_lon <= lon[-1]))


# --- masks -------------------------------------------------------------------------------------
def scattered_fill(shape, fraction=0.03, seed=0):
    return np.random.default_rng(seed).random(shape) < fraction


@pytest.mark.parametrize("method, reach", [("bilinear", 1.0), ("nearest", 0.5)])
def test_invalid_inputs_never_reach_valid_cells(tmp_path, method, reach):
    """No valid output cell lies within `reach` input spacings (each axis) of an invalid input centre:
    bilinear draws on the four centres around a point, nearest on the one within half a spacing."""
    step = 0.25
    lat, lon = np.arange(40.0, 60.0, step), np.arange(-15.0, 5.0, step)
    values = analytic(*np.meshgrid(lat, lon, indexing="ij"))
    invalid = scattered_fill(values.shape)
    values[invalid] = -999.0  # the declared _FillValue
    path = lat_lon_file(tmp_path / "f.nc", lat, lon, values)
    config = regrid_config(method)
    out = regrid(path, config)
    domain_lat, domain_lon = DomainGrid.from_config(config.domain).lat_lon_2d
    valid = np.isfinite(out)
    bad_lat, bad_lon = lat[np.nonzero(invalid)[0]], lon[np.nonzero(invalid)[1]]
    near = (np.abs(domain_lat[valid][:, None] - bad_lat) < reach * step - 1e-9) & \
           (np.abs(domain_lon[valid][:, None] - bad_lon) < reach * step - 1e-9)
    assert not near.any()
    assert 0.3 < valid.mean() < 0.99  # the check bites: many cells masked, most kept
    assert np.abs(out[valid] - analytic(domain_lat, domain_lon)[valid]).max() < 0.2  # no fill value leaked


def test_projected_fill_values_never_reach_valid_cells(tmp_path):
    path, lat, lon = stereographic_file(tmp_path / "s.nc", analytic, fill_where=scattered_fill)
    clean, _, _ = stereographic_file(tmp_path / "clean.nc", analytic)
    config = regrid_config("bilinear")
    out, reference = regrid(path, config), regrid(clean, config)
    valid = np.isfinite(out)
    assert 0.3 < valid.mean() < 0.99
    np.testing.assert_array_equal(out[valid], reference[valid])  # valid cells drew on valid inputs only


# --- the real SEVIRI scene through `satflow ingest` ------------------------------------------------
iris_sample_data = pytest.importorskip("iris_sample_data")
SEVIRI = os.path.join(iris_sample_data.path, "toa_brightness_stereographic.nc")
SEVIRI_DOMAIN = {"central_latitude": 35.0, "central_longitude": -20.0, "l_zonal": 3_000_000.0,
                 "l_meridional": 2_000_000.0, "resolution": 25_000.0}


@pytest.fixture(scope="module")
def seviri_store(tmp_path_factory, dask_client):
    store = tmp_path_factory.mktemp("seviri") / "s.zarr"
    args = ["ingest", SEVIRI, "--out", str(store), "--no-progress", "--set", "ingest.source.kind=regrid",
            "--set", f"ingest.source.domain={json.dumps(SEVIRI_DOMAIN)}",
            "--set", "cluster.kind=address", "--set", f"cluster.address={dask_client.scheduler.address}"]
    assert cli_main(args) == 0
    return store


def test_seviri_scene_regrids_onto_a_local_domain(seviri_store):
    ds = xr.open_zarr(seviri_store)
    assert ds["X"].shape == (1, 1, 80, 120) and str(ds["feature"].values[0]) == "data"
    assert ds["time"].values[0] == np.datetime64("2016-05-16T12:00")
    x = ds["X"].values[0, 0]
    valid = np.isfinite(x)
    # The scene's southern edge (32.5 N at 16 W) crosses the domain: its north is valid, its south beyond the scene.
    assert valid.mean() == pytest.approx(0.6018, abs=1e-4)
    assert valid[-1].all() and not valid[0].any()
    # 10.8 micron brightness temperatures: cold cloud tops to the sunlit Sahara at noon (the scene spans 212..329 K).
    assert 220.0 < np.nanmin(x) < 240.0 and 300.0 < np.nanmax(x) < 325.0
    np.testing.assert_array_equal(ds["M"].values[0, 0], valid.astype(np.uint8))


def test_seviri_store_records_the_projection(seviri_store):
    ds = xr.open_zarr(seviri_store)
    crs = pyproj.CRS.from_cf(ds["crs"].attrs)
    assert ds["crs"].attrs["grid_mapping_name"] == "lambert_azimuthal_equal_area"
    assert ds["X"].attrs["grid_mapping"] == "crs"
    assert ds["y"].dims == ("lat",) and ds["x"].dims == ("lon",) and ds["latitude"].dims == ("lat", "lon")
    assert ds["x"].values[0] == -1_487_500.0 and np.all(np.diff(ds["x"].values) == 25_000.0)
    # The recorded projection maps the recorded 2-D lat/lon back to the cell centres in metres.
    x, y = pyproj.Transformer.from_crs(crs.geodetic_crs, crs, always_xy=True).transform(
        ds["longitude"].values, ds["latitude"].values)
    np.testing.assert_allclose(x, np.broadcast_to(ds["x"].values, x.shape), atol=1e-3)
    np.testing.assert_allclose(y, np.broadcast_to(ds["y"].values[:, None], y.shape), atol=1e-3)
    assert np.all(np.diff(ds["lat"].values) > 0) and np.all(np.diff(ds["lon"].values) > 0)


def test_seviri_nearest_values_come_from_the_scene():
    import netCDF4

    config = regrid_config("nearest", SEVIRI_DOMAIN)
    out = regrid(SEVIRI, config)
    with netCDF4.Dataset(SEVIRI) as ds:
        scene = ds["data"][:].compressed()
    assert np.isin(out[np.isfinite(out)], scene).all()


def test_projected_units_are_converted():
    config = regrid_config("bilinear", SEVIRI_DOMAIN, convert_units={"data": "degC"})
    info = scan_input(SEVIRI, config)
    kelvin = regrid(SEVIRI, regrid_config("bilinear", SEVIRI_DOMAIN))
    assert info.units == ("degC",)
    np.testing.assert_allclose(read_input(info, config)[0, 0], kelvin - 273.15, atol=1e-4)
    with pytest.raises(SourceError, match="cannot convert 'data' from units 'K' to 'm'"):
        scan_input(SEVIRI, regrid_config("bilinear", SEVIRI_DOMAIN, convert_units={"data": "m"}))


@pytest.mark.parametrize("method, tolerance", [("bilinear", 1e-3), ("nearest", 0.2)])
def test_curvilinear_input_reproduces_an_analytic_field(tmp_path, method, tolerance):
    """2-D lat/lon named in `coordinates`, no grid mapping: positions come from inverting the coordinates."""
    _, lat, lon = stereographic_file(tmp_path / "s.nc", analytic)
    lat, lon = lat[::-1].T, lon[::-1].T  # rows and columns in another order than the projection's axes
    path = write_nc(tmp_path / "c.nc", {
        "nav_lat": (("j", "i"), lat, {"standard_name": "latitude", "units": "degrees_north"}),
        "nav_lon": (("j", "i"), lon, {"standard_name": "longitude", "units": "degrees_east"}),
        **time_variable((0.0,), "hours since 2020-01-01 00:00:00", "standard"),
        "tb": (("time", "j", "i"), analytic(lat, lon)[None].astype(np.float32),
               {"units": "K", "coordinates": "nav_lat nav_lon"}),
    })
    config = regrid_config(method)
    out = regrid(path, config)
    domain_lat, domain_lon = DomainGrid.from_config(config.domain).lat_lon_2d
    assert np.isfinite(out).all()
    assert np.abs(out - analytic(domain_lat, domain_lon)).max() < tolerance


def test_seviri_through_its_2d_lat_lon_matches_its_grid_mapping(tmp_path):
    """The same scene without its grid mapping takes the curvilinear path: the same valid cells, values within
    0.05 K (measured 0.012 K: its lat/lon are stored as float32), nearest identical."""
    import netCDF4
    import shutil

    copy = tmp_path / "no_grid_mapping.nc"
    shutil.copy(SEVIRI, copy)
    with netCDF4.Dataset(copy, "a") as ds:
        ds["data"].delncattr("grid_mapping")
    for method, tolerance in (("bilinear", 0.05), ("nearest", 0.0)):
        config = regrid_config(method, SEVIRI_DOMAIN)
        projected, curvilinear = regrid(SEVIRI, config), regrid(copy, config)
        np.testing.assert_array_equal(np.isfinite(curvilinear), np.isfinite(projected))
        np.testing.assert_allclose(curvilinear, projected, atol=tolerance, rtol=0)


ORCA2 = os.path.join(iris_sample_data.path, "orca2_votemper.nc")


@pytest.mark.parametrize("centre, valid_fraction", [((0.0, 179.0), 1.0), ((-30.0, 20.0), 0.69125)])
def test_real_curvilinear_ocean_grid_nearest_is_the_nearest_node(centre, valid_fraction):
    """NEMO's tripolar ORCA2 (2-D nav_lat/nav_lon, no grid mapping): each cell takes the input node nearest to it
    in the domain's plane (brute force over all 26 640 nodes); land (southern Africa) stays invalid."""
    import netCDF4

    domain = {"central_latitude": centre[0], "central_longitude": centre[1], "l_zonal": 4_000_000.0,
              "l_meridional": 2_000_000.0, "resolution": 100_000.0}
    config = regrid_config("nearest", domain)
    out = regrid(ORCA2, config)
    with netCDF4.Dataset(ORCA2) as ds:
        lat, lon = (np.asarray(ds[name][:], np.float64) for name in ("nav_lat", "nav_lon"))
        field = ds["votemper"][:].filled(np.nan).ravel()
    grid = DomainGrid.from_config(config.domain)
    x, y = pyproj.Transformer.from_crs(grid.crs.geodetic_crs, grid.crs, always_xy=True).transform(lon, lat)
    target_x, target_y = np.meshgrid(grid.x, grid.y)
    distance = (target_x.reshape(-1, 1) - x.ravel()) ** 2 + (target_y.reshape(-1, 1) - y.ravel()) ** 2
    np.testing.assert_array_equal(out, field[np.argmin(distance, axis=1)].reshape(out.shape))
    assert np.isfinite(out).mean() == valid_fraction
    assert -2.0 < np.nanmin(out) and np.nanmax(out) < 31.0  # sea temperature at 5 m, degC


# --- configuration -----------------------------------------------------------------------------
def _domain_override(**changes) -> str:
    return f"ingest.source.domain={json.dumps({**DOMAIN, **changes})}"


@pytest.mark.parametrize("overrides, message", [
    (["ingest.source.kind=regrid"], "ingest.source: Value error, kind regrid needs source.domain: {central_latitude, "
     "central_longitude, l_zonal, l_meridional, resolution} (extents and resolution in metres)"),
    ([_domain_override()], "ingest.source: Value error, source.domain is the target grid of kind regrid, not of kind "
     "gridded: set kind: regrid or remove domain"),
    (["ingest.source.kind=regrid", _domain_override(resolution=30_000.0)],
     "ingest.source.domain: Value error, resolution 30000 m does not divide l_zonal 1e+06 m into whole cells "
     "(e.g. l_zonal: 200000 with resolution: 1000)"),
    (["ingest.source.kind=regrid", _domain_override(central_latitude=88.0)],
     "ingest.source.domain: Value error, the domain centred at (88, -5) spans a pole: its latitude does not "
     "increase across the domain; move the centre or shrink l_zonal/l_meridional"),
    (["ingest.source.kind=regrid", _domain_override(l_zonal=-1.0)],
     "ingest.source.domain.l_zonal: Input should be greater than 0 (got -1.0)"),
    (["ingest.source.kind=regrid", "ingest.source.domain={central_latitude: 50}"],
     "ingest.source.domain.central_longitude: Field required"),
    (["ingest.source.kind=regrid", _domain_override(), "ingest.source.regrid.method=cubic"],
     "ingest.source.regrid.method: Input should be 'bilinear' or 'nearest' (got 'cubic')"),
])
def test_domain_config_errors_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as raised:
        load_config(None, overrides)
    assert message in str(raised.value)


def test_domain_config_in_convml_tt_terms():
    config = load_config(None, ["ingest.source.kind=regrid", _domain_override()]).ingest.source
    grid = DomainGrid.from_config(config.domain)
    assert (grid.y.size, grid.x.size) == (30, 50) and grid.x[0] == -490_000.0 and grid.y[-1] == 290_000.0
    assert grid.grid_mapping_attrs()["latitude_of_projection_origin"] == 50.0
    lat, lon = grid.lat_lon_2d
    assert lat[15, 25] == pytest.approx(50.0, abs=0.1) and lon[15, 25] == pytest.approx(-5.0, abs=0.2)


def test_files_of_one_domain_share_its_grid(tmp_path):
    """The domain's cell-centre lat/lon are built once per process and domain, never served for another domain."""
    from satflow.sources import regrid as regrid_module

    lat, lon = np.arange(40.0, 60.0, 0.25), np.arange(-20.0, 10.0, 0.25)
    values = analytic(*np.meshgrid(lat, lon, indexing="ij"))
    paths = [lat_lon_file(tmp_path / f"{k}.nc", lat, lon, values + k) for k in range(2)]
    regrid_module.cached_domain_grid.cache_clear()
    first, second = (regrid(path, regrid_config("bilinear")) for path in paths)
    assert regrid_module.cached_domain_grid.cache_info().misses == 1
    np.testing.assert_allclose(second, first + 1.0, atol=1e-4)
    coarser = regrid(paths[0], regrid_config("bilinear", {**DOMAIN, "resolution": 50_000.0}))
    assert regrid_module.cached_domain_grid.cache_info().misses == 2 and coarser.shape == (12, 20)
