"""Triplet geometry (neighbour distance, direction, domain, split; distant time) and determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from satflow.index.build import build_index
from satflow.index.geometry import PatchGrid
from satflow.index.io import read_index
from satflow.index.options import IndexConfig, SplitConfig
from satflow.index.triplets import DIRECTIONS, add_triplets


@pytest.fixture(scope="module")
def index(global_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("triplets") / "index.parquet"
    build_index(global_store.path, out, IndexConfig(patch_size=3, stride=3, max_nodata_fraction=0.6,
                                                    split=SplitConfig(window_patches=3, seed=2)))
    return read_index(out)


def test_neighbours_are_distance_tiles_away_in_the_same_split_and_time(index):
    grid = PatchGrid.from_dict(index.attrs["satflow"]["grid"])
    triplets = add_triplets(index, distance=2, seed=0)
    assert len(triplets) > 0.5 * (index["split"] != "buffer").sum()
    keys = set(zip(index.t, index.y0, index.x0, index.split))
    offsets = {name: (dy * 6, dx * 6) for name, dy, dx in DIRECTIONS}
    for row in triplets.itertuples():
        dy, dx = offsets[row.neighbor_direction]
        assert row.neighbor_y0 - row.y0 == dy
        assert (row.neighbor_x0 - row.x0) % grid.nx == dx % grid.nx  # wraps in longitude (global grid)
        assert (row.neighbor_t, row.neighbor_y0, row.neighbor_x0, row.split) in keys  # in the domain and index
        assert row.distant_t != row.t
        assert (row.distant_t, row.distant_y0, row.distant_x0, row.split) in keys
        assert row.neighbor_patch_id == f"p3x3-y{row.neighbor_y0}-x{row.neighbor_x0}"
    assert "buffer" not in set(triplets["split"])
    assert len(set(triplets["neighbor_direction"])) == 8
    wrapped = triplets[(triplets.x0 + 6 * np.sign(triplets.neighbor_x0 - triplets.x0) < 0)
                       | (triplets.x0 - triplets.neighbor_x0 > 6)]
    assert len(wrapped) > 0  # some neighbours are across the dateline


def test_triplets_do_not_depend_on_partitions_or_runs(index):
    one = add_triplets(index, distance=1, seed=11)
    again = add_triplets(index, distance=1, seed=11)
    parts = add_triplets(index, distance=1, seed=11, partitions=3)
    pd.testing.assert_frame_equal(one, again)
    pd.testing.assert_frame_equal(one, parts)
    subset = add_triplets(index.iloc[::-1], distance=1, seed=11)  # row order does not matter either
    cols = ["patch_id", "t", "neighbor_patch_id", "distant_patch_id", "distant_t"]
    pd.testing.assert_frame_equal(subset.sort_values(["t", "patch_id"])[cols].reset_index(drop=True),
                                  one.sort_values(["t", "patch_id"])[cols].reset_index(drop=True))
    other = add_triplets(index, distance=1, seed=12)
    assert (other["neighbor_patch_id"].to_numpy() != one["neighbor_patch_id"].to_numpy()).any()


def test_n_per_split_and_history(index):
    triplets = add_triplets(index, n_per_split=4, seed=1)
    assert triplets.groupby("split").size().to_dict() == {"test": 4, "train": 4, "val": 4}
    assert triplets.index.equals(pd.RangeIndex(len(triplets)))  # a fresh table, not the anchors' row labels
    every = add_triplets(index, distance=1, seed=1)
    assert every.index.equals(pd.RangeIndex(len(every)))
    assert triplets.attrs["satflow"]["history"][-1] == {"step": "triplets", "parameters": {
        "distance": 1, "n_per_split": 4, "seed": 1}}


def test_one_time_step_cannot_make_distant_patches(index):
    with pytest.raises(ValueError, match="at least two time steps"):
        add_triplets(index[index.t == 0])
