import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from satflow.stats import Moments, merge_all


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_merging_chunks_equals_one_pass(n_parts, seed):
    rng = np.random.default_rng(seed)
    data = rng.normal(280.0, 15.0, size=(3, 40)).astype(np.float32)
    data[rng.random(data.shape) < 0.3] = np.nan
    data[2] = np.nan  # a feature with no valid point at all
    cuts = np.sort(rng.integers(0, 40, size=n_parts - 1))
    parts = [Moments.from_block(piece) for piece in np.split(data, cuts, axis=1)]
    merged = merge_all(parts, 3).as_summary()
    expected = data.astype(np.float64)
    np.testing.assert_array_equal(merged["count"], np.isfinite(expected).sum(axis=1))
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(merged["mean"][:2], np.nanmean(expected[:2], axis=1), rtol=1e-12)
        np.testing.assert_allclose(merged["std"][:2], np.nanstd(expected[:2], axis=1), rtol=1e-9)
    np.testing.assert_array_equal(merged["min"][:2], np.nanmin(expected[:2], axis=1))
    assert np.isnan(merged["mean"][2]) and np.isnan(merged["std"][2]) and merged["count"][2] == 0


def test_one_valid_point_has_zero_spread_and_no_point_has_none():
    # Killed mutant (benchmarks/mutation): std computed only where count > 1 gave NaN for a single point.
    block = np.array([[270.5, np.nan, np.nan], [np.nan, np.nan, np.nan], [1.0, 3.0, np.nan]], np.float32)
    summary = Moments.from_block(block).as_summary()
    np.testing.assert_array_equal(summary["count"], [1, 0, 2])
    np.testing.assert_array_equal(summary["std"], [0.0, np.nan, 1.0])
    np.testing.assert_array_equal(summary["mean"], [270.5, np.nan, 2.0])
    np.testing.assert_array_equal(summary["min"], [270.5, np.nan, 1.0])
    np.testing.assert_array_equal(summary["max"], [270.5, np.nan, 3.0])
