"""Mergeable error metrics equal a single numpy pass over all the data."""

from __future__ import annotations

import numpy as np
import pytest

from satflow.metrics import ErrorSums, merge_all


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(250, 5, (6, 2, 10, 12))
    x[rng.random(x.shape) < 0.2] = np.nan
    y = x + rng.normal(0.1, 0.3, x.shape)
    return x.astype(np.float32), y.astype(np.float32)


def test_merged_chunks_equal_numpy_on_everything():
    x, y = _data()
    parts = [ErrorSums.from_block(x[t], y[t], np.isfinite(x[t]), n_bytes=100 + t) for t in range(x.shape[0])]
    merged = merge_all(parts).finalize(["a", "b"])
    for f in range(2):
        xv = x[:, f][np.isfinite(x[:, f])].astype(np.float64)
        yv = y[:, f][np.isfinite(x[:, f])].astype(np.float64)
        err = yv - xv
        rmse = np.sqrt(np.mean(err**2))
        assert merged["per_feature"]["count"][f] == xv.size
        assert merged["per_feature"]["rmse"][f] == pytest.approx(rmse, rel=1e-12)
        assert merged["per_feature"]["mae"][f] == pytest.approx(np.abs(err).mean(), rel=1e-12)
        assert merged["per_feature"]["bias"][f] == pytest.approx(err.mean(), rel=1e-12)
        assert merged["per_feature"]["max_abs_error"][f] == np.abs(err).max()
        assert merged["per_feature"]["pearson_r"][f] == pytest.approx(np.corrcoef(xv, yv)[0, 1], rel=1e-12)
        assert merged["per_feature"]["psnr"][f] == pytest.approx(20 * np.log10((xv.max() - xv.min()) / rmse), rel=1e-12)
    total_bytes = sum(100 + t for t in range(6))
    assert merged["n_bytes"] == total_bytes and merged["n_cells"] == x.size
    assert merged["bits_per_value"] == pytest.approx(8 * total_bytes / x.size)
    assert merged["bits_per_valid_value"] == pytest.approx(8 * total_bytes / np.isfinite(x).sum())
    assert merged["compression_ratio"] == pytest.approx(32 * x.size / (8 * total_bytes))
    assert merged["compression_ratio_vs_source"] is None


def test_tree_and_sequential_merges_agree():
    x, y = _data(1)
    parts = [ErrorSums.from_block(x[t], y[t]) for t in range(6)]
    sequential = parts[0]
    for part in parts[1:]:
        sequential = part.merge(sequential)
    a, b = merge_all(parts).finalize(), sequential.finalize()
    for key in ("rmse", "pearson_r", "max_abs_error", "bias"):
        assert a["per_feature"][key] == pytest.approx(b["per_feature"][key], rel=1e-12)


def test_empty_features_and_source_ratio():
    x = np.full((2, 3, 3), np.nan, np.float32)
    x[0] = 1.0
    sums = ErrorSums.from_block(x, x, n_bytes=9, source_bytes=90)
    report = sums.finalize()
    assert report["per_feature"]["count"] == [9, 0]
    assert report["per_feature"]["rmse"][0] == 0.0 and np.isnan(report["per_feature"]["rmse"][1])
    assert report["compression_ratio_vs_source"] == pytest.approx(10.0)


def test_nan_reconstruction_of_a_valid_point_is_an_infinite_error():
    x = np.ones((1, 2, 2), np.float32)
    y = x.copy()
    y[0, 0, 0] = np.nan
    assert ErrorSums.from_block(x, y).finalize()["per_feature"]["max_abs_error"] == [np.inf]
