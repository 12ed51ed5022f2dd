"""Strata from a feature statistic and from a label file; balanced and random samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from satflow.index.build import build_index
from satflow.index.io import read_index
from satflow.index.options import IndexConfig, SplitConfig
from satflow.index.sampling import sample_balanced, sample_random
from satflow.index.strata import edge_strata, quantile_strata, stratify_by_feature, stratify_by_labels


@pytest.fixture(scope="module")
def index(global_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("strata") / "index.parquet"
    build_index(global_store.path, out, IndexConfig(patch_size=4, stride=4, max_nodata_fraction=0.9,
                                                    split=SplitConfig(window_patches=1, seed=1)))
    return read_index(out)


def _patch(values, row):
    cols = np.arange(row.x0, row.x0 + row.width) % values.shape[-1]
    return values[row.t, row.y0:row.y0 + row.height][:, cols]


def test_feature_statistic_equals_a_direct_percentile(global_store, index):
    result = stratify_by_feature(index, "tmbrs-15", "p05", bins=4)
    cold = global_store.values[:, 2]
    for row in result.sample(15, random_state=0).itertuples():
        patch = _patch(cold, row)
        assert row.stratum_value == pytest.approx(np.percentile(patch[np.isfinite(patch)], 5), rel=1e-12)
    counts = result["stratum"].value_counts().sort_index()
    assert counts.index.tolist() == [0, 1, 2, 3]
    assert counts.max() - counts.min() <= 2  # quantile bins hold equal shares
    assert result.attrs["satflow"]["history"][-1]["step"] == "stratify"


def test_feature_statistic_on_a_cluster_matches(global_store, index, dask_client):
    local = stratify_by_feature(index, "tmbrs-1", "min", bins=3)
    distributed = stratify_by_feature(index, "tmbrs-1", "min", bins=3, client=dask_client)
    np.testing.assert_array_equal(local["stratum_value"], distributed["stratum_value"])


def test_bins_and_bad_statistics():
    values = np.array([0.0, 1.0, 2.0, 3.0, np.nan, 10.0])
    strata, edges = quantile_strata(values, 2)
    np.testing.assert_array_equal(strata, [0, 0, 1, 1, -1, 1])
    np.testing.assert_array_equal(edge_strata(values, [0, 1, 5, 100]), [0, 1, 1, 1, -1, 2])
    with pytest.raises(ValueError, match=r"unknown statistic 'p5x'"):
        stratify_by_feature(pd.DataFrame({"t": []}), "tmbrs-1", "p5x", store="unused")


def test_label_mask_is_matched_by_time_and_location(global_store, index, tmp_path):
    labels = np.zeros((2, 12, 24), dtype=np.int8)
    labels[0, :, :12] = 1  # western half labelled at 00:00
    labels[1, :6, :] = 2  # southern half labelled at 06:00
    path = tmp_path / "labels.nc"
    xr.Dataset({"mcs": (("time", "lat", "lon"), labels)},
               coords={"time": global_store.times[:2], "lat": global_store.lat, "lon": global_store.lon}
               ).to_netcdf(path)
    result = stratify_by_labels(index, path, edges=[0.0, 0.5, 1.0], time_tolerance="1h")
    t0, t1, later = result[result.t == 0], result[result.t == 1], result[result.t > 1]
    np.testing.assert_array_equal(t0["stratum_value"], np.where(t0.x0 < 12, 1.0, 0.0))
    np.testing.assert_array_equal(t1["stratum_value"], np.clip(6 - t1.y0, 0, 4) / 4)  # rows 4..7 half labelled
    np.testing.assert_array_equal(t1["stratum"], np.where(t1.y0 < 6, 1, 0))
    np.testing.assert_array_equal(t0["stratum"], np.where(t0.x0 < 12, 1, 0))
    assert later["stratum_value"].isna().all() and (later["stratum"] == -1).all()


def test_balanced_sample_takes_n_per_stratum_and_split(index):
    strata = stratify_by_feature(index, "tmbrs-15", "mean", bins=3)
    sample = sample_balanced(strata, 2, seed=0)
    per_group = sample.groupby(["split", "stratum"]).size()
    available = strata.groupby(["split", "stratum"]).size()
    np.testing.assert_array_equal(per_group.to_numpy(), np.minimum(available, 2).to_numpy())
    pd.testing.assert_frame_equal(sample, sample_balanced(strata, 2, seed=0))
    bigger = sample_balanced(strata, 3, seed=0)
    assert set(sample["patch_id"] + sample["t"].astype(str)) <= set(bigger["patch_id"] + bigger["t"].astype(str))


def test_random_sample_is_seeded_and_order_free(index):
    sample = sample_random(index, 5, seed=3)
    assert sample.groupby("split").size().to_dict() == {"test": 5, "train": 5, "val": 5}
    shuffled = sample_random(index.sample(frac=1.0, random_state=1), 5, seed=3)
    pd.testing.assert_frame_equal(sample.sort_values(["t", "patch_id"]).reset_index(drop=True),
                                  shuffled.sort_values(["t", "patch_id"]).reset_index(drop=True))
    assert len(sample_random(index, 7, seed=3, per_split=False)) == 7
