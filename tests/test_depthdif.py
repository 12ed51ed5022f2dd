"""The DepthDif triple end to end: configs/depthdif.yaml through `satflow ingest`, `satflow index`, the dataset's
named groups and masks, and the paired GeoTIFF export with its manifest."""

from __future__ import annotations

import contextlib
import importlib.util
import json
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from satflow.cli import main as cli_main
from satflow.dataset import PatchDataset
from satflow.sources.base import read_input, scan_input
from satflow.sources.options import SourceConfig

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "depthdif.yaml"
DAY_OFFSETS = range(-3, 4)  # surface days around each month start; their offsets average to zero
GROUPS = {"x": ["profiles/thetao-d*"], "y": ["thetao-d*"], "eo": ["ostia/sst"]}
SURFACE = ["--set", "ingest.aux_products.ostia.inputs=[surface/*.nc]",
           "--set", "ingest.aux_products.ostia.source.variables=[sst]",
           "--set", "ingest.aux_products.ostia.source.convert_units={}",
           "--set", "ingest.aux_products.ostia.source.time_window=P7D"]


def write_surface_days(ocean_files, out_dir: Path) -> None:
    """An OSTIA-like daily product: the ocean's shallowest level plus 0.1 degC per day from each month start."""
    out_dir.mkdir()
    for path in ocean_files:
        ocean = xr.open_dataset(path)
        sst = ocean["thetao"].isel(time=0, depth=0).values.astype(np.float32)
        for k in DAY_OFFSETS:
            day = ocean["time"].values[0] + np.timedelta64(k, "D")
            with netCDF4.Dataset(out_dir / f"sst_{str(day)[:10].replace('-', '')}.nc", "w") as nc:
                nc.createDimension("time", 1)
                nc.createDimension("lat", sst.shape[0])
                nc.createDimension("lon", sst.shape[1])
                time = nc.createVariable("time", "f8", ("time",))
                time.units = "days since 1970-01-01"
                time[:] = (day - np.datetime64("1970-01-01")) / np.timedelta64(1, "D")
                for name, values, units in (("lat", ocean["lat"].values, "degrees_north"),
                                            ("lon", ocean["lon"].values, "degrees_east")):
                    axis = nc.createVariable(name, "f4", (name,))
                    axis.standard_name, axis.units = {"lat": "latitude", "lon": "longitude"}[name], units
                    axis[:] = values
                var = nc.createVariable("sst", "f4", ("time", "lat", "lon"), fill_value=np.float32(-999))
                var.units = "degC"
                var[:] = np.where(np.isfinite(sst), sst + np.float32(0.1 * k), -999)[None]


@pytest.fixture(scope="module")
def triple(tmp_path_factory):
    from satflow.sources.samples import write_ocean_sample, write_profiles_sample

    root = tmp_path_factory.mktemp("depthdif")
    ocean = write_ocean_sample(root / "ocean", start="2007-01", steps=3)
    write_profiles_sample(root / "profiles", start="2007-01", steps=3)
    write_surface_days(ocean, root / "surface")
    with contextlib.chdir(root):  # the config's inputs are relative, as a user runs it
        assert cli_main(["ingest", "--config", str(CONFIG), "--out", "depthdif.zarr", "--cluster", "never",
                         "--no-progress", "--strict", *SURFACE]) == 0
        assert cli_main(["index", "depthdif.zarr", "--config", str(CONFIG), "--out", "depthdif.parquet"]) == 0
    return root


def test_the_store_holds_reanalysis_profiles_and_the_surface_window(triple):
    ds = xr.open_zarr(triple / "depthdif.zarr")
    levels = [f"thetao-d{k}" for k in range(1, 6)]
    assert [str(f) for f in ds["feature"].values] == [*levels, *[f"profiles/{f}" for f in levels],
                                                      "profiles/thetao-count", "ostia/sst", "ostia/window-count"]
    x = ds["X"].values
    # The surface window is the mean of 7 days whose offsets cancel: the shallowest level, on the same cells.
    np.testing.assert_array_equal(np.isfinite(x[:, 11]), np.isfinite(x[:, 0]))
    np.testing.assert_allclose(x[:, 11], x[:, 0], atol=1e-5)
    assert set(np.unique(x[:, 12][np.isfinite(x[:, 12])])) == {7.0}
    files = str(ds["aux_source_file"].values[1, list(ds["aux_product"].values).index("ostia")]).split(";")
    assert [Path(f).name for f in files] == ["sst_20070129.nc", "sst_20070130.nc", "sst_20070131.nc",
                                             "sst_20070201.nc", "sst_20070202.nc", "sst_20070203.nc", "sst_20070204.nc"]


def test_profiles_are_rasterised_on_the_reanalysis_grid_and_levels(triple):
    ds = xr.open_zarr(triple / "depthdif.zarr")
    source = SourceConfig(kind="profiles", lon_convention="0..360",
                          profiles={"depth_from": str(triple / "ocean" / "thetao_200701.nc"), "resolution": None})
    february = sorted((triple / "profiles").glob("*200702.nc"))[0]
    expected = read_input(scan_input(str(february), source), source)[0]
    np.testing.assert_array_equal(ds["X"].values[1, 5:11], expected)
    both = np.isfinite(expected[:5]) & np.isfinite(ds["X"].values[1, :5])
    assert both.sum() > 500  # the same ocean, sampled at the floats: close to the reanalysis cell means
    assert np.median(np.abs(expected[:5][both] - ds["X"].values[1, :5][both])) < 0.5


def test_the_dataset_returns_the_groups_with_their_masks(triple):
    store, index = triple / "depthdif.zarr", triple / "depthdif.parquet"
    dataset = PatchDataset(store, index, split="train", groups=GROUPS, land_mask="thetao-d1")
    frame = pd.read_parquet(index)
    i = int(np.flatnonzero(dataset.frame["valid_frac"].to_numpy() > 0.3)[0])
    item, row = dataset[i], dataset.frame.iloc[i]
    cube = xr.open_zarr(store)["X"].values[row.t, :, row.y0:row.y0 + row.height, row.x0:row.x0 + row.width]
    assert len(dataset) == int((frame["split"] == "train").sum())
    for name, features in (("x", slice(5, 10)), ("y", slice(0, 5)), ("eo", slice(11, 12))):
        valid = np.isfinite(cube[features])
        np.testing.assert_array_equal(item[f"{name}_valid_mask"].numpy(), valid)
        np.testing.assert_array_equal(item[f"{name}_valid_mask_1d"].numpy(), valid.any(axis=0, keepdims=True))
        index_of = [dataset.features.index(f) for f in dataset.groups[name]]
        restored = item[name].numpy() * dataset.std[index_of, None, None] + dataset.mean[index_of, None, None]
        np.testing.assert_allclose(restored[valid], cube[features][valid], rtol=1e-5)
        assert np.all(item[name].numpy()[~valid] == 0.0)
    np.testing.assert_array_equal(item["land_mask"].numpy(), np.isfinite(cube[:1]))
    assert item["x"].shape == (5, 16, 16) and item["eo"].shape == (1, 16, 16)
    assert item["x_valid_mask"].sum() < item["y_valid_mask"].sum()  # sparse profiles, dense reanalysis


def test_without_groups_the_items_are_unchanged(triple):
    dataset = PatchDataset(triple / "depthdif.zarr", triple / "depthdif.parquet", split="train")
    assert set(dataset[0]) == {"x", "mask", "lat", "lon", "lat_c", "lon_c", "time", "t", "patch_id"}
    assert dataset[0]["x"].shape == (13, 16, 16)
    with pytest.raises(ValueError, match=r"groups.eo: pattern 'sst/\*' matches no feature of"):
        PatchDataset(triple / "depthdif.zarr", triple / "depthdif.parquet", groups={"eo": ["sst/*"]})


@pytest.mark.skipif(importlib.util.find_spec("rasterio") is None,
                    reason="rasterio not installed (optional extra satflow[geotiff])")
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # inside rasterio.transform
def test_geotiff_pairs_and_their_manifest(triple):
    import rasterio

    out = triple / "pairs"
    group_flags = [arg for name, patterns in GROUPS.items() for arg in ("--group", f"{name}={','.join(patterns)}")]
    assert cli_main(["index", "export", str(triple / "depthdif.parquet"), "--format", "geotiff", "--split", "train",
                     "--limit", "3", "--out", str(out), *group_flags]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "geotiff" and manifest["groups"]["eo"] == ["ostia/sst"]
    assert manifest["groups"]["x"] == [f"profiles/thetao-d{k}" for k in range(1, 6)]
    listed = pd.read_csv(out / "manifest.csv")
    assert len(listed) == len(manifest["patches"]) == 3 and set(listed["split"]) == {"train"}
    patch = manifest["patches"][0]
    assert {Path(f).name for f in patch["files"].values()} == {f"{patch['patch_id']}_20070101T0000.tif"}
    row = listed.iloc[0]
    assert row["x_path"] == patch["files"]["x"]
    cube = xr.open_zarr(triple / "depthdif.zarr")["X"].values[row.t, :, row.y0:row.y0 + row.height,
                                                              row.x0:row.x0 + row.width]
    for name, features in (("x", slice(5, 10)), ("y", slice(0, 5)), ("eo", slice(11, 12))):
        with rasterio.open(out / patch["files"][name]) as tif:
            assert tif.count == features.stop - features.start and tif.descriptions[0] == manifest["groups"][name][0]
            np.testing.assert_array_equal(tif.read(), cube[features][:, ::-1])  # north up


def test_the_recipe_with_the_real_ostia_file(tmp_path):
    """As the README runs it: iris-sample-data's OSTIA months averaged over 61 days centred on each month."""
    iris_sample_data = pytest.importorskip("iris_sample_data")
    from satflow.sources.samples import write_ocean_sample, write_profiles_sample

    ostia_file = Path(iris_sample_data.path) / "ostia_monthly.nc"
    write_ocean_sample(tmp_path / "ocean", start="2007-01", steps=2)
    write_profiles_sample(tmp_path / "profiles", start="2007-01", steps=2)
    with contextlib.chdir(tmp_path):
        assert cli_main(["ingest", "--config", str(CONFIG), "--out", "depthdif.zarr", "--cluster", "never",
                         "--no-progress", "--strict", "--set", f"ingest.aux_products.ostia.inputs=[{ostia_file}]"]) == 0
    ds = xr.open_zarr(tmp_path / "depthdif.zarr")
    count = ds["X"].sel(feature="ostia/window-count").values
    assert set(np.unique(count[np.isfinite(count)])) == {2.0}  # Feb 1 +- 30.5 days: Jan 16 12:00 and Feb 15
    ostia = xr.open_dataset(ostia_file)["surface_temperature"]
    months = ostia.sel(time=[np.datetime64("2007-01-16T12:00"), np.datetime64("2007-02-15")])
    lat, lon = ds["lat"].values, ds["lon"].values
    inner = (lon > 2) & (lon < 358)
    reference_lat = np.where(lat == -5.0, float(ostia["latitude"][0]), lat)  # OSTIA stores -5 as -4.9999924
    reference = months.mean("time", skipna=False).interp(latitude=reference_lat, longitude=lon[inner]).values
    stored = ds["X"].sel(feature="ostia/surface_temperature").values[1][:, inner]
    valid = np.isfinite(stored)
    assert valid.sum() > 100 and not (valid & ~np.isfinite(reference)).any()
    np.testing.assert_allclose(stored[valid], reference[valid] - 273.15, atol=1e-3)
