"""Patch export: NPZ in the users' layout, GeoTIFF (north up, EPSG:4326, NaN nodata) when rasterio exists."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from satflow.index.build import build_index
from satflow.index.export import export_patches
from satflow.index.io import read_index
from satflow.index.options import IndexConfig


@pytest.fixture(scope="module")
def index(global_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "index.parquet"
    build_index(global_store.path, out, IndexConfig(patch_size=6, stride=4, max_nodata_fraction=1.0))
    frame = read_index(out)
    return frame[frame.x0.isin([4, 20])].head(4)  # x0 = 20 wraps across the dateline


def _patch(values, row):
    cols = np.arange(row.x0, row.x0 + row.width) % values.shape[-1]
    return values[row.t, :, row.y0:row.y0 + row.height][:, :, cols]


def test_npz_layout_matches_the_store(global_store, index, tmp_path):
    manifest = export_patches(global_store.path, index, tmp_path, "npz", features=["tmbrs-15", "tmbrs-1"])
    listed = pd.read_csv(manifest)
    assert len(listed) == 4 and listed["path"].str.endswith(".npz").all()
    row = index.iloc[-1]
    assert row.x0 == 20
    with np.load(tmp_path / listed["path"].iloc[-1], allow_pickle=False) as npz:
        assert set(npz.files) == {"X", "M", "feature_names", "lat", "lon", "time", "mean", "std", "patch_id"}
        expected = _patch(global_store.values, row)[[2, 0]]
        np.testing.assert_array_equal(npz["X"], expected[None])
        np.testing.assert_array_equal(npz["M"], np.isfinite(expected)[None].astype(np.uint8))
        assert npz["feature_names"].tolist() == ["tmbrs-15", "tmbrs-1"]
        np.testing.assert_array_equal(npz["lon"], global_store.lon[np.arange(20, 26) % 24])
        np.testing.assert_array_equal(npz["lat"], global_store.lat[row.y0:row.y0 + 6])
        assert npz["time"][0] == global_store.times[row.t]
        np.testing.assert_allclose(npz["mean"], np.nanmean(global_store.values[:, [2, 0]], axis=(0, 2, 3)), rtol=1e-6)
        assert str(npz["patch_id"]) == row.patch_id


@pytest.mark.skipif(importlib.util.find_spec("rasterio") is None,
                    reason="rasterio not installed (optional extra satflow[geotiff])")
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # inside rasterio.transform
def test_geotiff_is_north_up_epsg4326_with_nan_nodata(global_store, index, tmp_path):
    import rasterio

    manifest = pd.read_csv(export_patches(global_store.path, index, tmp_path, "geotiff"))
    row = index.iloc[-1]  # x0 = 20: 120 E .. 210 E (continuous across the dateline)
    with rasterio.open(tmp_path / manifest["path"].iloc[-1]) as tif:
        assert tif.crs.to_epsg() == 4326 and tif.count == 3 and tif.descriptions == tuple(global_store.features)
        assert tuple(tif.bounds) == (120.0, row.lat0, 210.0, row.lat1)
        assert np.isnan(tif.nodata)
        data = tif.read()
    expected = _patch(global_store.values, row)[:, ::-1]  # first raster row = northernmost latitude
    np.testing.assert_array_equal(data, expected)


def test_unknown_format_is_rejected(global_store, index, tmp_path):
    with pytest.raises(ValueError, match="unknown export format 'png'; choose one of npz, geotiff"):
        export_patches(global_store.path, index, tmp_path, "png")
