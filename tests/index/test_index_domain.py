"""Index and dataset on a store written on a local domain by `satflow ingest` (a domain across the dateline)."""

from __future__ import annotations

import json

import netCDF4
import numpy as np
import pandas as pd
import pyproj
import pytest
import torch
import xarray as xr
from torch.utils.data import DataLoader

from satflow.cli import main as cli_main
from satflow.dataset import PatchDataset
from satflow.index.build import build_index
from satflow.index.export import export_patches
from satflow.index.io import read_index
from satflow.index.options import IndexConfig
from satflow.index.projection import METRE_COLUMNS
from satflow.index.strata import nearest_cells, stratify_by_labels

# 60 N on the dateline: the domain's corners lie 20 degrees of longitude and 4 degrees of latitude away from its
# central row and column, so bounds taken from the 1-D lat/lon axes would be far off.
DOMAIN = {"central_latitude": 60.0, "central_longitude": 180.0, "l_zonal": 2_000_000.0, "l_meridional": 1_200_000.0,
          "resolution": 50_000.0}
PATCH = 8


def write_global_file(path) -> None:
    """Two steps of a smooth global field on a 0.5-degree grid, with a gap (fill) west of the dateline at t=1."""
    lat, lon = np.arange(-90.0, 90.1, 0.5), np.arange(0.0, 360.0, 0.5)
    field = 280.0 + 10.0 * np.sin(np.radians(3 * lat))[:, None] * np.cos(np.radians(2 * lon))[None, :]
    values = np.stack([field, field + 1.0]).astype(np.float32)
    values[1][np.ix_((lat > 58) & (lat < 64), (lon > 170) & (lon < 178))] = -999.0
    with netCDF4.Dataset(path, "w") as ds:
        for name, axis, std, units in (("lat", lat, "latitude", "degrees_north"),
                                       ("lon", lon, "longitude", "degrees_east")):
            ds.createDimension(name, axis.size)
            variable = ds.createVariable(name, "f8", (name,))
            variable.setncatts({"standard_name": std, "units": units})
            variable[:] = axis
        ds.createDimension("time", 2)
        time = ds.createVariable("time", "f8", ("time",))
        time.units = "hours since 2020-01-01"
        time[:] = [0.0, 6.0]
        tb = ds.createVariable("tb", "f4", ("time", "lat", "lon"), fill_value=np.float32(-999.0))
        tb.units = "K"
        tb.set_auto_maskandscale(False)
        tb[:] = values


@pytest.fixture(scope="module")
def domain_store(tmp_path_factory, dask_client):
    folder = tmp_path_factory.mktemp("domain")
    write_global_file(folder / "global.nc")
    store = folder / "domain.zarr"
    args = ["ingest", str(folder / "global.nc"), "--out", str(store), "--no-progress",
            "--set", "ingest.source.kind=regrid", "--set", f"ingest.source.domain={json.dumps(DOMAIN)}",
            "--set", "cluster.kind=address", "--set", f"cluster.address={dask_client.scheduler.address}"]
    assert cli_main(args) == 0
    return store


@pytest.fixture(scope="module")
def domain_index(domain_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("domain-index") / "patches.parquet"
    args = ["index", str(domain_store), "--out", str(out), "--patch-size", str(PATCH), "--stride", str(PATCH),
            "--set", "index.max_nodata_fraction=1.0"]
    assert cli_main(args) == 0
    return out


def corner_lat_lon(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Latitude/longitude of every cell corner, through the store's own grid mapping (independently of satflow)."""
    crs = pyproj.CRS.from_cf(ds["crs"].attrs)
    half = DOMAIN["resolution"] / 2
    x_edges = np.append(ds["x"].values - half, ds["x"].values[-1] + half)
    y_edges = np.append(ds["y"].values - half, ds["y"].values[-1] + half)
    lon, lat = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True).transform(
        *np.meshgrid(x_edges, y_edges))
    return np.asarray(lat), np.asarray(lon)


def test_index_records_patch_bounds_in_metres(domain_store, domain_index):
    ds = xr.open_zarr(domain_store)
    frame = read_index(domain_index)
    assert ds["X"].shape == (2, 1, 24, 40) and len(frame) == 2 * 3 * 5
    columns = list(frame.columns)
    assert columns[columns.index("lon_c") + 1:columns.index("lon_c") + 5] == list(METRE_COLUMNS)
    x, y = ds["x"].values, ds["y"].values
    np.testing.assert_array_equal(frame["x_min_m"], x[frame["x0"]] - 25_000.0)
    np.testing.assert_array_equal(frame["x_max_m"], x[frame["x0"] + PATCH - 1] + 25_000.0)
    np.testing.assert_array_equal(frame["y_min_m"], y[frame["y0"]] - 25_000.0)
    np.testing.assert_array_equal(frame["y_max_m"], y[frame["y0"] + PATCH - 1] + 25_000.0)
    assert frame["x_min_m"].min() == -1_000_000.0 and frame["y_max_m"].max() == 600_000.0
    projection = frame.attrs["satflow"]["projection"]
    assert projection["grid_mapping"]["grid_mapping_name"] == "lambert_azimuthal_equal_area"
    assert projection["x_step_m"] == projection["y_step_m"] == 50_000.0


def test_index_degree_bounds_come_from_the_2d_coordinates(domain_store, domain_index):
    ds = xr.open_zarr(domain_store)
    frame = read_index(domain_index)
    corner_lat, corner_lon = corner_lat_lon(ds)
    crosses = 0
    for row in frame[frame["t"] == 0].itertuples():
        rows, cols = slice(row.y0, row.y0 + PATCH + 1), slice(row.x0, row.x0 + PATCH + 1)
        assert row.lat0 == pytest.approx(corner_lat[rows, cols].min(), abs=1e-9)
        assert row.lat1 == pytest.approx(corner_lat[rows, cols].max(), abs=1e-9)
        # Longitudes east of the patch's west edge, dateline-safe: the corners span exactly [lon0, lon1].
        east_of_west = np.mod(corner_lon[rows, cols] - row.lon0 + 1.0, 360.0) - 1.0  # -1e-14 stays -1e-14
        assert east_of_west.min() == pytest.approx(0.0, abs=1e-9)
        assert east_of_west.max() == pytest.approx(np.mod(row.lon1 - row.lon0, 360.0), abs=1e-9)
        crosses += row.lon1 < row.lon0
        # The centre is the geographic position of the patch's centre in metres.
        centre = ds["latitude"].values[row.y0 + PATCH // 2 - 1:row.y0 + PATCH // 2 + 1,
                                       row.x0 + PATCH // 2 - 1:row.x0 + PATCH // 2 + 1]
        assert centre.min() < row.lat_c < centre.max()
        assert -180.0 <= row.lon0 < 180.0 and -180.0 < row.lon1 <= 180.0 and -180.0 <= row.lon_c < 180.0
    assert crosses == 3  # the middle column of patches straddles the dateline (one per patch row)
    # The domain's southern corners lie at 53.6 N, a degree south of its central column's southern edge (54.6 N):
    # bounds from the 1-D lat axis would miss them.
    lat_axis = ds["lat"].values
    bottom_left = frame[(frame["t"] == 0) & (frame["y0"] == 0) & (frame["x0"] == 0)].iloc[0]
    assert bottom_left.lat0 == pytest.approx(53.5886, abs=1e-4)
    assert bottom_left.lat0 < lat_axis[0] - (lat_axis[1] - lat_axis[0]) / 2 - 0.9


def test_index_of_a_domain_counts_valid_cells_from_the_mask(domain_store, domain_index):
    ds = xr.open_zarr(domain_store)
    frame = read_index(domain_index)
    mask = ds["M"].values
    for row in frame.itertuples():
        patch = mask[row.t, :, row.y0:row.y0 + PATCH, row.x0:row.x0 + PATCH]
        assert row.valid_frac == pytest.approx(patch.mean())
    assert (frame.loc[frame["t"] == 1, "valid_frac"] < 1).any() and (frame.loc[frame["t"] == 0, "valid_frac"] == 1).all()


def test_dataset_serves_domain_patches(domain_store, domain_index):
    ds = xr.open_zarr(domain_store)
    dataset = PatchDataset(domain_store, domain_index, split=None, normalize=False, fill_value=-1.0)
    frame = dataset.frame
    for i in (0, len(dataset) - 1, int(np.argmin(frame["valid_frac"].to_numpy()))):
        item, row = dataset[i], frame.iloc[i]
        rows, cols = slice(row.y0, row.y0 + PATCH), slice(row.x0, row.x0 + PATCH)
        expected = ds["X"].values[row.t, :, rows, cols]
        np.testing.assert_array_equal(item["x"].numpy(), np.where(np.isfinite(expected), expected, -1.0))
        np.testing.assert_array_equal(item["mask"].numpy(), np.isfinite(expected))
        np.testing.assert_array_equal(item["lat"].numpy(), ds["latitude"].values[rows, cols])
        np.testing.assert_array_equal(item["lon"].numpy(), ds["longitude"].values[rows, cols])
        np.testing.assert_array_equal(item["y_m"].numpy(), ds["y"].values[rows])
        np.testing.assert_array_equal(item["x_m"].numpy(), ds["x"].values[cols])
        assert [item[name] for name in METRE_COLUMNS] == [row[name] for name in METRE_COLUMNS]
        np.testing.assert_array_equal(item["x_min_m"] + 25_000.0, ds["x"].values[row.x0])
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch["lat"].shape == (4, PATCH, PATCH) and batch["x_max_m"].dtype == torch.float64


def test_dataset_needs_the_metre_bounds_of_a_domain_index(domain_store, domain_index):
    frame = read_index(domain_index).drop(columns=["y_min_m", "y_max_m"])
    with pytest.raises(ValueError, match=r"is on a local domain but the index has no y_min_m, y_max_m: rebuild it "
                                         r"with `satflow index "):
        PatchDataset(domain_store, frame, split=None)


def test_regular_store_index_has_no_metre_columns(global_store, tmp_path):
    frame = read_index(build_index(global_store.path, tmp_path / "i.parquet", IndexConfig(patch_size=4, stride=4)).path)
    assert not set(METRE_COLUMNS) & set(frame.columns) and "projection" not in frame.attrs["satflow"]
    item = PatchDataset(global_store.path, frame, split=None)[0]
    assert item["lat"].shape == (4,) and "y_m" not in item and "x_min_m" not in item


def test_npz_export_of_a_domain_patch_carries_its_2d_coordinates(domain_store, domain_index, tmp_path):
    ds = xr.open_zarr(domain_store)
    frame = read_index(domain_index).iloc[[7]]
    row = frame.iloc[0]
    listed = pd.read_csv(export_patches(domain_store, frame, tmp_path, "npz"))
    rows, cols = slice(row.y0, row.y0 + PATCH), slice(row.x0, row.x0 + PATCH)
    with np.load(tmp_path / listed["path"].iloc[0], allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["X"][0], ds["X"].values[row.t, :, rows, cols])
        np.testing.assert_array_equal(npz["lat"], ds["latitude"].values[rows, cols])
        np.testing.assert_array_equal(npz["lon"], ds["longitude"].values[rows, cols])
        np.testing.assert_array_equal(npz["x_m"], ds["x"].values[cols])
        np.testing.assert_array_equal(npz["y_m"], ds["y"].values[rows])
        assert pyproj.CRS.from_wkt(str(npz["crs_wkt"])) == pyproj.CRS.from_cf(ds["crs"].attrs)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # inside rasterio.transform
def test_geotiff_export_of_a_domain_patch_is_in_its_projection(domain_store, domain_index, tmp_path):
    rasterio = pytest.importorskip("rasterio")
    ds = xr.open_zarr(domain_store)
    frame = read_index(domain_index)
    chosen = frame[(frame["t"] == 1) & (frame["y0"] == PATCH) & (frame["x0"] == PATCH)]  # 169-177 E, 57-61 N
    row = chosen.iloc[0]
    listed = pd.read_csv(export_patches(domain_store, chosen, tmp_path, "geotiff"))
    with rasterio.open(tmp_path / listed["path"].iloc[0]) as tif:
        assert pyproj.CRS.from_wkt(tif.crs.to_wkt()) == pyproj.CRS.from_cf(ds["crs"].attrs)
        assert tuple(tif.bounds) == (row.x_min_m, row.y_min_m, row.x_max_m, row.y_max_m)
        data = tif.read()
    expected = ds["X"].values[row.t, :, row.y0:row.y0 + PATCH, row.x0:row.x0 + PATCH][:, ::-1]  # north row first
    np.testing.assert_array_equal(data, expected)
    assert np.isnan(data).any()  # the gap west of the dateline at t=1


def test_label_strata_of_a_domain_locate_cells_by_their_2d_coordinates(domain_store, domain_index, tmp_path):
    """Labels on a 0.1-degree lat/lon grid, set north of 60 N: a domain cell is labelled when its own latitude is
    north of 60 N (the midpoint between the label rows 59.95 and 60.05), which varies across a patch's columns."""
    ds = xr.open_zarr(domain_store)
    label_lat, label_lon = np.arange(40.05, 80.0, 0.1), np.arange(-179.5, 180.0, 1.0)
    labels = np.broadcast_to((label_lat > 60.0)[None, :, None], (2, label_lat.size, label_lon.size)).astype(np.int8)
    xr.Dataset({"north": (("time", "lat", "lon"), labels)},
               coords={"time": ds["time"].values, "lat": label_lat, "lon": label_lon}).to_netcdf(tmp_path / "l.nc")
    result = stratify_by_labels(read_index(domain_index), tmp_path / "l.nc", edges=[0.0, 0.5, 1.0])
    north = ds["latitude"].values > 60.0
    for row in result.itertuples():
        expected = north[row.y0:row.y0 + PATCH, row.x0:row.x0 + PATCH].mean()
        assert row.stratum_value == pytest.approx(expected, abs=1e-12)
    assert (result["stratum_value"] % 1 != 0).any()  # some patches straddle 60 N


def test_nearest_label_cells_in_blocks_equal_one_block():
    rng = np.random.default_rng(3)
    source, target = np.arange(-179.5, 180.0, 1.0), rng.uniform(-200.0, 200.0, 1000)
    whole = nearest_cells(source, target, period=360.0, block=len(target))
    blocked = nearest_cells(source, target, period=360.0, block=7)
    np.testing.assert_array_equal(blocked[0], whole[0])
    np.testing.assert_array_equal(blocked[1], whole[1])
    np.testing.assert_array_equal(whole[0], np.round(np.mod(target + 179.5, 360.0)).astype(int) % 360)
