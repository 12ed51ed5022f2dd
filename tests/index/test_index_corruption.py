"""Corruption masks: exact observed budget for tracks, thinned curved tracks, rectangles."""

from __future__ import annotations

import numpy as np
import pytest

from satflow.index.corruption import random_walks, corruption_mask, rectangle_mask, track_mask


@pytest.mark.parametrize("hidden", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_tracks_observe_exactly_the_budget(hidden):
    observed = track_mask(32, 40, hidden, np.random.default_rng(0))
    assert observed.shape == (32, 40) and observed.dtype == bool
    assert observed.sum() == round((1 - hidden) * 32 * 40)


def test_tracks_are_thinned_lines_not_noise():
    observed = track_mask(64, 64, 0.95, np.random.default_rng(1))
    # Thinned tracks: most observed cells have no observed 4-neighbour (one point every 2-8 cells) ...
    padded = np.pad(observed, 1)
    neighbours = padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    assert (observed & neighbours).sum() < 0.5 * observed.sum()


def test_one_walk_is_a_continuous_curve_sampled_every_few_cells():
    for seed in range(20):
        cells = random_walks(64, 64, np.random.default_rng(seed), 1, 0.15, (2, 8))
        points = np.stack([cells // 64, cells % 64], axis=1).astype(float)
        steps = np.hypot(*np.diff(points, axis=0).T)
        assert (steps <= 8 + np.sqrt(2)).all()  # a unit-step walk sampled every 2-8 steps


def test_same_generator_state_gives_the_same_mask():
    a = corruption_mask("tracks", 16, 16, 0.5, np.random.default_rng(5))
    b = corruption_mask("tracks", 16, 16, 0.5, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


def test_rectangles_hide_at_least_the_target():
    observed = rectangle_mask(40, 40, 0.4, np.random.default_rng(2))
    hidden = (~observed).mean()
    assert 0.4 <= hidden < 0.4 + 0.25  # overshoot at most one rectangle (<= 1/4 of the patch)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"hidden_fraction must be in \[0, 1\] \(got 1.5\)"):
        corruption_mask("tracks", 4, 4, 1.5, np.random.default_rng(0))


def test_rectangles_reach_every_edge_of_the_patch():
    # a rectangle may start anywhere it fits, so over a few masks every border row and column is hidden
    hidden = np.zeros((16, 24), bool)
    for seed in range(30):
        hidden |= ~rectangle_mask(16, 24, 0.2, np.random.default_rng(seed))
    assert hidden[0].any() and hidden[-1].any() and hidden[:, 0].any() and hidden[:, -1].any()


def test_default_tracks_keep_their_heading_over_a_patch():
    # track_mask's walks turn slowly (turn_std 0.15 rad a step): the first 16 points of a walk lie
    # near a straight line (thin point clouds, median spread ratio 0.11 over these seeds); a walk
    # that turns by a radian a step wanders into a blob (0.41)
    ratios = []
    for seed in range(12):
        observed = track_mask(96, 96, 1 - 16 / 96**2, np.random.default_rng(seed), stride=(1, 1), batch=1, max_batches=1)
        points = np.argwhere(observed)
        spread = np.linalg.svd(points - points.mean(axis=0), compute_uv=False)
        ratios.append(spread[1] / spread[0])
    assert np.median(ratios) < 0.2
