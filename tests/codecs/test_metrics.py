"""Mergeable error metrics equal a single numpy pass over all the data."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from codec_strategies import masked_blocks
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from satflow.metrics import HISTOGRAM_EDGES, ErrorSums, merge_all


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


# ---- property tests: every metric of merged block partials equals one numpy pass over all the data ----

values = st.one_of(st.floats(-400, 400, width=32), st.sampled_from([np.nan, 0.0, 1.0]))
errors = st.one_of(st.floats(-2, 2, width=32), st.sampled_from([0.0, 0.5, -0.5, np.nan]))


@st.composite
def blocks_of_one_cube(draw):
    """Blocks of random shapes with the same features: (x, x_hat, mask) float32/uint8, any block all-invalid."""
    n_features = draw(st.integers(1, 3))
    blocks = []
    for _ in range(draw(st.integers(1, 5))):
        shape = (n_features, draw(st.integers(1, 5)), draw(st.integers(1, 6)))
        x = draw(arrays(np.float32, shape, elements=values))
        x_hat = (x + draw(arrays(np.float32, shape, elements=errors))).astype(np.float32)
        mask = draw(arrays(np.uint8, shape, elements=st.sampled_from([0, 1, 1, 1])))
        if draw(st.booleans()) and draw(st.booleans()):
            mask[:] = 0  # an all-invalid block
        blocks.append((x, x_hat, mask))
    return blocks


def random_tree_merge(parts, rng):
    """Merge partials in a random order and grouping, with neutral empty partials mixed in."""
    pool = list(parts) + [ErrorSums.empty(parts[0].count.size, hist_scale=parts[0].hist_scale,
                                          rel_threshold=parts[0].rel_threshold)]
    while len(pool) > 1:
        i, j = rng.choice(len(pool), 2, replace=False)
        merged = pool[i].merge(pool[j])
        pool = [p for k, p in enumerate(pool) if k not in (i, j)] + [merged]
    return pool[0]


def concatenated(blocks, f):
    """Valid original and reconstruction of feature f over all blocks, in float64."""
    xs, ys = [], []
    for x, x_hat, mask in blocks:
        valid = (mask[f] != 0) & np.isfinite(x[f])
        xs.append(x[f][valid].astype(np.float64))
        ys.append(x_hat[f][valid].astype(np.float64))
    return np.concatenate(xs), np.concatenate(ys)


def assert_same(actual, expected, rel=1e-9, abs_=1e-12):
    if expected is None or (isinstance(expected, float) and np.isnan(expected)):
        assert actual is expected or (isinstance(actual, float) and np.isnan(actual)), (actual, expected)
    else:
        assert actual == pytest.approx(expected, rel=rel, abs=abs_), (actual, expected)


def brute_force(xv, yv, bound, scale, rel_threshold):
    """One straightforward numpy pass over the concatenated valid points of one feature."""
    nan = float("nan")
    n = xv.size
    err = yv - xv
    abs_err = np.where(np.isnan(err), np.inf, np.abs(err))
    nonzero = xv != 0
    rel = abs_err[nonzero] / np.abs(xv[nonzero])
    exceed = np.sum(rel > rel_threshold) + np.sum(abs_err[~nonzero] > 0)
    span = xv.max() - xv.min() if n else nan
    rmse = float(np.sqrt(np.mean(err**2))) if n else nan
    scaled = np.where(np.isnan(err), np.inf, err / scale)
    histogram = [int(np.sum(scaled < HISTOGRAM_EDGES[0]))]
    histogram += [int(np.sum((lo <= scaled) & (scaled < hi))) for lo, hi in zip(HISTOGRAM_EDGES[:-1], HISTOGRAM_EDGES[1:])]
    histogram += [int(np.sum(scaled >= HISTOGRAM_EDGES[-1]))]
    violations = None if bound is None else int(np.sum(abs_err > bound))
    return {
        "count": n,
        "rmse": rmse,
        "nrmse": rmse / span if n and span > 0 else nan,
        "mae": float(np.mean(np.abs(err))) if n else nan,
        "bias": float(np.mean(err)) if n else nan,
        "max_abs_error": float(abs_err.max()) if n else nan,
        "max_rel_error": float(rel.max()) if rel.size else nan,
        "rel_error_exceed_share": exceed / n if n else nan,
        "violations": violations,
        "violation_share": violations / n if n and bound is not None else (None if bound is None else nan),
        "histogram": histogram,
        "span": span,
    }


@settings(max_examples=150, deadline=None)
@given(blocks=blocks_of_one_cube(), seed=st.integers(0, 2**32 - 1),
       bound=st.sampled_from([None, 0.0, 0.5, 1.0]), scale=st.sampled_from([1.0, 0.25, 3.0]),
       rel_threshold=st.sampled_from([1e-4, 1e-2]))
def test_every_metric_of_merged_blocks_equals_numpy_over_the_concatenated_data(blocks, seed, bound, scale, rel_threshold):
    rng = np.random.default_rng(seed)
    n_features = blocks[0][0].shape[0]
    scales = scale * (1 + np.arange(n_features))
    sections = [{"header": 7, "mask": int(m.size) % 5, "payload": 3 * i} for i, (_, _, m) in enumerate(blocks)]
    parts = [ErrorSums.from_block(x, x_hat, mask, n_bytes=sum(sec.values()) + 4, section_bytes=sec, bound=bound,
                                  hist_scale=scales, rel_threshold=rel_threshold)
             for (x, x_hat, mask), sec in zip(blocks, sections)]
    report = random_tree_merge(parts, rng).finalize()
    json.dumps(report)  # plain data only
    per = report["per_feature"]
    for f in range(n_features):
        xv, yv = concatenated(blocks, f)
        expected = brute_force(xv, yv, bound, scales[f], rel_threshold)
        assert per["count"][f] == expected["count"]
        for key in ("rmse", "nrmse", "mae", "bias", "max_abs_error", "max_rel_error", "rel_error_exceed_share",
                    "violation_share"):
            assert_same(per[key][f], expected[key])
        assert per["violations"][f] == expected["violations"]
        assert report["histogram"]["counts"][f] == expected["histogram"]
        assert sum(report["histogram"]["counts"][f]) == expected["count"]
        finite_error = np.isfinite(yv - xv).all()
        if expected["count"] > 1 and finite_error and expected["span"] > 1e-3 and np.std(yv) > 1e-3:
            assert_same(per["pearson_r"][f], float(np.corrcoef(xv, yv)[0, 1]), rel=1e-7)
            assert_same(per["psnr"][f], float(20 * np.log10(expected["span"] / expected["rmse"]))
                        if expected["rmse"] > 0 else float("inf"))
    n_cells = sum(x.size for x, _, _ in blocks)
    n_bytes = sum(sum(sec.values()) + 4 for sec in sections)
    assert report["n_cells"] == n_cells and report["n_bytes"] == n_bytes
    assert report["bytes_by_section"] == {"header": sum(s["header"] for s in sections),
                                          "mask": sum(s["mask"] for s in sections),
                                          "payload": sum(s["payload"] for s in sections), "other": 4 * len(blocks)}
    assert sum(report["bytes_by_section"].values()) == n_bytes
    for name, section_bytes in report["bytes_by_section"].items():
        assert report["bits_per_value_by_section"][name] == pytest.approx(8 * section_bytes / n_cells)


@settings(max_examples=60, deadline=None)
@given(block=masked_blocks())
def test_extreme_values_keep_histogram_and_counts_consistent(block):
    x, mask = block
    x_hat = np.where(np.arange(x.size).reshape(x.shape) % 3 == 0, np.nan, x * np.float32(1.001)).astype(np.float32)
    report = ErrorSums.from_block(x, x_hat, mask, bound=0.1).finalize()
    valid = (mask != 0) & np.isfinite(x)
    for f in range(x.shape[0]):
        assert sum(report["histogram"]["counts"][f]) == report["per_feature"]["count"][f] == valid[f].sum()
        assert report["per_feature"]["violations"][f] <= report["per_feature"]["count"][f]
    json.dumps(report)


def test_bound_is_exact_at_the_boundary_in_float64():
    x = np.array([[[1.0, 1.0, 1.0, 0.0]]], np.float32)
    x_hat = np.array([[[1.5, np.nextafter(np.float32(1.5), np.float32(2)), 0.5, np.nan]]], np.float32)
    report = ErrorSums.from_block(x, x_hat, bound=0.5).finalize()["per_feature"]
    assert report["violations"] == [2]  # 1.5 + 1 ulp and the NaN; |error| == bound is not a violation
    assert report["violation_share"] == [0.5]
    # float32(1.1) - 1 is 0.10000002384185791 in float64: a violation of 0.1, none of that value itself
    x, x_hat = np.ones((1, 1, 1), np.float32), np.full((1, 1, 1), 1.1, np.float32)
    assert ErrorSums.from_block(x, x_hat, bound=0.1).finalize()["per_feature"]["violations"] == [1]
    exact = float(np.float64(np.float32(1.1)) - 1.0)
    assert ErrorSums.from_block(x, x_hat, bound=exact).finalize()["per_feature"]["violations"] == [0]


def test_per_feature_bound_and_no_bound():
    x = np.zeros((2, 1, 3), np.float32)
    x_hat = np.array([[[0.1, 0.2, 0.3]], [[0.1, 0.2, 0.3]]], np.float32)
    per = ErrorSums.from_block(x, x_hat, bound=[0.15, 0.25]).finalize()["per_feature"]
    assert per["violations"] == [2, 1]
    none = ErrorSums.from_block(x, x_hat).finalize()["per_feature"]
    assert none["violations"] == [None, None] and none["violation_share"] == [None, None]
    with pytest.raises(ValueError, match="bound has shape"):
        ErrorSums.from_block(x, x_hat, bound=[0.1, 0.2, 0.3])


def test_relative_error_counts_zero_originals_with_errors():
    x = np.array([[[0.0, 0.0, 2.0, -4.0]]], np.float32)
    x_hat = np.array([[[0.0, 1e-30, 2.0002, -4.0]]], np.float32)
    per = ErrorSums.from_block(x, x_hat).finalize()["per_feature"]
    assert per["max_rel_error"] == [pytest.approx(float(np.float32(2.0002) - 2.0) / 2.0)]
    assert per["rel_error_exceed_share"] == [0.5]  # 0 -> 1e-30 and 2 -> 2.0002 (1e-4 + rounding)
    assert np.isnan(ErrorSums.from_block(x[..., :2], x[..., :2]).finalize()["per_feature"]["max_rel_error"][0])


def test_nrmse_is_rmse_over_the_valid_range():
    x = np.array([[[0.0, 10.0, np.nan, 4.0]]], np.float32)
    x_hat = x + np.float32(1.0)
    per = ErrorSums.from_block(x, x_hat).finalize()["per_feature"]
    assert per["nrmse"] == [pytest.approx(0.1)]
    assert np.isnan(ErrorSums.from_block(x[..., :1], x_hat[..., :1]).finalize()["per_feature"]["nrmse"][0])


def test_histogram_edges_are_fixed_and_symmetric():
    report = ErrorSums.from_block(np.zeros((1, 1, 1)), np.zeros((1, 1, 1))).finalize()
    edges = report["histogram"]["edges"]
    assert edges == HISTOGRAM_EDGES.tolist() and len(edges) == 59
    assert edges[29] == 0.0 and edges[30] == pytest.approx(1e-6) and edges[-1] == pytest.approx(10.0)
    assert edges[:29] == [-e for e in reversed(edges[30:])]
    assert report["histogram"]["counts"] == [[0] * 30 + [1] + [0] * 29]  # error 0 falls in [0, 1e-6)


def test_histogram_uses_the_callers_scale():
    x = np.zeros((2, 1, 1), np.float32)
    x_hat = np.full((2, 1, 1), 2.0, np.float32)
    counts = ErrorSums.from_block(x, x_hat, hist_scale=[1.0, 100.0]).finalize()["histogram"]["counts"]
    edges = HISTOGRAM_EDGES
    assert counts[0].index(1) == np.searchsorted(edges, 2.0, side="right")
    assert counts[1].index(1) == np.searchsorted(edges, 0.02, side="right")
    with pytest.raises(ValueError, match="hist_scale must be finite and positive"):
        ErrorSums.from_block(x, x_hat, hist_scale=[1.0, 0.0])


def test_merging_partials_with_different_settings_raises():
    x = np.ones((1, 2, 2), np.float32)
    bounded, unbounded = ErrorSums.from_block(x, x, bound=0.1), ErrorSums.from_block(x, x)
    with pytest.raises(ValueError, match="with and without a declared error bound"):
        bounded.merge(unbounded)
    with pytest.raises(ValueError, match="relative-error thresholds"):
        unbounded.merge(ErrorSums.from_block(x, x, rel_threshold=1e-3))
    with pytest.raises(ValueError, match="different hist_scale"):
        unbounded.merge(ErrorSums.from_block(x, x, hist_scale=2.0))
    assert bounded.merge(ErrorSums.empty(1)).finalize()["per_feature"]["violations"] == [0]


def test_partials_pickle_small_whatever_the_block_size():
    rng = np.random.default_rng(3)
    small = ErrorSums.from_block(rng.normal(size=(15, 2, 2)), rng.normal(size=(15, 2, 2)),
                                 section_bytes={"header": 1, "mask": 2, "payload": 3})
    large = ErrorSums.from_block(rng.normal(size=(15, 300, 400)), rng.normal(size=(15, 300, 400)),
                                 section_bytes={"header": 1, "mask": 2, "payload": 3})
    assert abs(len(pickle.dumps(large)) - len(pickle.dumps(small))) < 16 and len(pickle.dumps(large)) < 16_000
    assert pickle.loads(pickle.dumps(large)).finalize()["per_feature"]["rmse"] == large.finalize()["per_feature"]["rmse"]


def _plain(value):
    """True when value holds only JSON-native Python types."""
    if isinstance(value, dict):
        return all(isinstance(k, str) for k in value) and all(_plain(v) for v in value.values())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)


def test_finalize_holds_no_numpy_types():
    x, y = _data()
    report = ErrorSums.from_block(x[0], y[0], n_bytes=5, section_bytes={"payload": 5}, bound=0.3).finalize(["a", "b"])
    assert _plain(report)
    assert set(report["per_feature"]) == {"count", "rmse", "nrmse", "mae", "bias", "max_abs_error", "max_rel_error",
                                          "rel_error_exceed_share", "psnr", "pearson_r", "violations", "violation_share"}
