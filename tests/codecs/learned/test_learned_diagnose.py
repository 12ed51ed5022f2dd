"""The transform diagnosis: exact distances and jumps, and a forward pass that matches real streams."""

from __future__ import annotations

import numpy as np
import pytest

from satflow.codecs.learned.codec import VAEformerCodec
from satflow.codecs.learned.diagnose import diagnose, edge_distance, gap_distance, neighbour_jump


def test_gap_distance_is_chebyshev_to_the_nearest_invalid_cell():
    valid = np.ones((1, 5, 6), bool)
    valid[0, 2, 1] = False
    expected = np.array([[2, 2, 2, 2, 3, 4], [1, 1, 1, 2, 3, 4], [1, 0, 1, 2, 3, 4],
                         [1, 1, 1, 2, 3, 4], [2, 2, 2, 2, 3, 4]])
    np.testing.assert_array_equal(gap_distance(valid)[0], expected)
    np.testing.assert_array_equal(gap_distance(np.ones((2, 3), bool), limit=7), np.full((2, 3), 7))
    np.testing.assert_array_equal(edge_distance(3, 4), [[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]])


def test_neighbour_jump_ignores_invalid_neighbours():
    x = np.array([[200.0, 200.0, 280.0], [200.0, np.nan, 280.0]])
    np.testing.assert_array_equal(neighbour_jump(x), [[0.0, 80.0, 80.0], [0.0, 0.0, 80.0]])


@pytest.mark.parametrize("qstep", [1.0, 3.0])
def test_quantised_forward_pass_is_what_the_stream_decodes(checkpoint, qstep):
    rng = np.random.default_rng(0)
    x = (240.0 + rng.normal(0, 0.5, (2, 2, 20, 24))).astype(np.float32)
    x[:, :, :, :12] += 60.0  # a land/sea-like step
    mask = np.ones(x.shape, np.uint8)
    mask[0, :, 5:9, 3:20] = 0
    x[mask == 0] = np.nan
    report = diagnose(VAEformerCodec(checkpoint=str(checkpoint), qstep=qstep), x, mask)
    assert report["coded"]["n"] == int(mask.sum())
    assert report["quantised"]["rmse"] == pytest.approx(report["coded"]["rmse"], rel=1e-5)
    assert report["unquantised"]["rmse"] > 0 and report["no_refine"]["rmse"] > 0
    assert sum(b["n"] for b in report["by_gap_distance"].values()) == int(mask.sum())
    assert sum(b["n"] for b in report["by_block_edge_distance"].values()) == int(mask.sum())
    steep = report["steep_edges"]
    assert steep["error"]["n"] == 2 * 2 * 20 * 2 - 2 * 4 * 2  # columns 11 and 12, less the gap in block 0
    assert 0 < steep["share_of_squared_error"] < 1
    assert set(report["per_feature"]) == {"tmbrs-1", "tmbrs-2"}
