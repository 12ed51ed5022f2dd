"""Splits never leak pixels or times across splits, and the leak check catches real leaks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from satflow.index.build import build_index
from satflow.index.geometry import PatchGrid, patch_ids
from satflow.index.io import read_index
from satflow.index.options import IndexConfig, SplitConfig
from satflow.index.splits import (SPLITS, WindowLayout, apportion, check_leaks, space_splits, time_splits,
                                  window_splits)
from satflow.index.summary import check_index_leaks


def patch_frame(grid: PatchGrid, split_codes: np.ndarray, times: int = 2) -> pd.DataFrame:
    y0, x0 = (a.ravel() for a in np.meshgrid(grid.origins_y, grid.origins_x, indexing="ij"))
    base = pd.DataFrame({"patch_id": patch_ids(y0, x0, grid.height, grid.width), "y0": y0, "x0": x0,
                         "height": grid.height, "width": grid.width,
                         "split": np.asarray(SPLITS, dtype=object)[split_codes]})
    return pd.concat([base.assign(t=t) for t in range(times)], ignore_index=True)


def brute_shared_cells(frame: pd.DataFrame, grid: PatchGrid) -> int:
    """Pixels covered by two or more splits, by painting every footprint (independent of the check)."""
    covered = np.zeros((3, grid.ny, grid.nx), dtype=bool)
    for row in frame[frame.split != "buffer"].itertuples():
        cols = np.arange(row.x0, row.x0 + row.width) % grid.nx
        covered[SPLITS.index(row.split), row.y0:row.y0 + row.height][:, cols] = True
    return int((covered.sum(axis=0) > 1).sum())


fractions = st.tuples(st.integers(0, 10), st.integers(0, 10), st.integers(0, 10)).filter(lambda f: sum(f) > 0)


@settings(max_examples=60, deadline=None)
@given(ny=st.integers(4, 30), nx=st.integers(4, 30), patch=st.integers(1, 8), stride_factor=st.floats(0.2, 1.5),
       window=st.integers(1, 3), degrees=st.none() | st.floats(1.0, 12.0), parts=fractions,
       seed=st.integers(0, 2**31), wrap=st.booleans())
def test_space_splits_never_share_a_pixel(ny, nx, patch, stride_factor, window, degrees, parts, seed, wrap):
    patch = min(patch, ny, nx)
    stride = max(1, round(patch * stride_factor))
    total = sum(parts)
    config = SplitConfig(train=parts[0] / total, val=parts[1] / total, test=1 - (parts[0] + parts[1]) / total,
                         seed=seed, window_patches=window, window_degrees=degrees)
    grid = PatchGrid.square(ny, nx, patch, stride, wrap)
    layout = WindowLayout.for_grid(grid, config, 1.0, 1.0)
    y0, x0 = (a.ravel() for a in np.meshgrid(grid.origins_y, grid.origins_x, indexing="ij"))
    _, codes = space_splits(grid, layout, config, y0, x0)
    frame = patch_frame(grid, codes)
    report = check_leaks(frame, grid, "space")
    assert report.ok, report.describe()
    assert brute_shared_cells(frame, grid) == 0


def test_leak_check_catches_a_random_row_split_exactly():
    grid = PatchGrid.square(16, 20, 4, 2, wrap=True)  # overlapping patches, wrapping in longitude
    n = grid.shape[0] * grid.shape[1]
    codes = np.random.default_rng(0).integers(0, 3, n)
    frame = patch_frame(grid, codes)
    report = check_leaks(frame, grid, "space")
    assert not report.ok
    assert report.shared_cells == brute_shared_cells(frame, grid) > 0
    assert set(report.location_leaks["split"]) == {"train", "val", "test"}
    assert "LEAKS FOUND" in report.describe()


def test_same_location_in_two_splits_is_a_leak():
    grid = PatchGrid.square(8, 8, 4, 4)
    frame = patch_frame(grid, np.zeros(4, dtype=np.int64))
    frame.loc[(frame.t == 1) & (frame.y0 == 0) & (frame.x0 == 0), "split"] = "test"
    report = check_leaks(frame, grid, "space")
    assert report.shared_cells == 16
    assert sorted(report.location_leaks["split"]) == ["test", "train"]
    assert report.location_leaks["patch_id"].unique().tolist() == ["p4x4-y0-x0"]


def test_window_draws_are_seeded_and_follow_the_fractions():
    layout = WindowLayout(1, 1, 20, 50)
    codes = window_splits(layout, SplitConfig(seed=7))
    np.testing.assert_array_equal(codes, window_splits(layout, SplitConfig(seed=7)))
    assert (codes != window_splits(layout, SplitConfig(seed=8))).mean() > 0.2
    assert np.bincount(codes.ravel(), minlength=3).tolist() == [800, 100, 100]


@pytest.mark.parametrize("n, fractions, expected", [
    (6, [0.8, 0.1, 0.1], [4, 1, 1]),  # a small grid still gets val and test
    (10, [0.7, 0.2, 0.1], [7, 2, 1]),
    (2, [0.8, 0.1, 0.1], [1, 1, 0]),
    (5, [1.0, 0.0, 0.0], [5, 0, 0]),
])
def test_apportion(n, fractions, expected):
    assert apportion(n, fractions).tolist() == expected


def test_time_blocks_and_buffers():
    config = SplitConfig(mode="time", time_block=4, time_buffer=1, seed=1, train=0.5, val=0.25, test=0.25)
    codes = time_splits(48, config)
    blocks = time_splits(48, config.model_copy(update={"time_buffer": 0}))
    assert all(len(set(blocks[i:i + 4])) == 1 for i in range(0, 48, 4))  # contiguous blocks
    for t in range(48):
        near = blocks[max(t - 1, 0):t + 2]
        assert codes[t] == (3 if (near != blocks[t]).any() else blocks[t])
    assert set(blocks) == {0, 1, 2} and 3 in codes


def test_built_index_keeps_a_location_in_one_split_and_passes_the_check(global_store, tmp_path):
    out = tmp_path / "index.parquet"
    config = IndexConfig(patch_size=4, stride=2, max_nodata_fraction=1.0,
                         split=SplitConfig(window_patches=1, seed=5, train=0.4, val=0.3, test=0.3))
    build_index(global_store.path, out, config)
    frame = read_index(out)
    assert (frame.groupby("patch_id")["split"].nunique() == 1).all()
    assert set(frame["split"]) == {"train", "val", "test", "buffer"}
    assert check_index_leaks(out).ok
    report = check_index_leaks(out, "time")  # every time step is in every split, by design of space mode
    assert not report.ok and len(report.time_leaks) == 5


@pytest.mark.parametrize("store_name, corner, n_x", [
    # global: 15-degree cells from lat -90, lon -180; 45-degree windows are 3 x 3 cells, 8 per row
    ("global_store", (-90.0, -180.0), 8),
    # regional: 1-degree cells from lat 10, lon 100; 4-degree windows, ceil(14 / 4) = 4 per row
    ("regional_store", (10.0, 100.0), 4),
])
def test_window_id_is_the_window_holding_the_patch_centre(store_name, corner, n_x, request, tmp_path):
    # Documented: windows tile the grid from its first cell, window_degrees on a side, numbered row by
    # row; a patch belongs to the window holding its centre. With odd 3-cell patches the centre is a
    # cell centre (lat_c, lon_c), so the window follows from degrees alone, wrapping patches included.
    store = request.getfixturevalue(store_name)
    degrees = 45.0 if store_name == "global_store" else 4.0
    out = tmp_path / "index.parquet"
    build_index(store.path, out, IndexConfig(patch_size=3, stride=2, max_nodata_fraction=1.0,
                                             split=SplitConfig(window_degrees=degrees, seed=2)))
    frame = read_index(out)
    row = np.floor((frame["lat_c"].to_numpy() - corner[0]) / degrees).astype(np.int64)
    col = np.floor(((frame["lon_c"].to_numpy() - corner[1]) % 360.0) / degrees).astype(np.int64)
    np.testing.assert_array_equal(frame["window_id"].to_numpy(), row * n_x + col)
    assert frame["window_id"].nunique() > 4  # many windows, not one
    # Every patch that is not a buffer lies in windows of one split, so a window has one split.
    kept = frame[frame["split"] != "buffer"]
    assert (kept.groupby("window_id")["split"].nunique() == 1).all()


def test_blocked_time_index_has_no_time_leak(global_store, tmp_path):
    out = tmp_path / "index.parquet"
    config = IndexConfig(patch_size=6, stride=6, max_nodata_fraction=1.0,
                         split=SplitConfig(mode="time", time_block=2, seed=3, train=0.5, val=0.25, test=0.25))
    build_index(global_store.path, out, config)
    frame = read_index(out)
    assert (frame.groupby("t")["split"].nunique() == 1).all()
    expected = np.asarray(SPLITS)[time_splits(5, config.split)]
    np.testing.assert_array_equal(frame.groupby("t")["split"].first().to_numpy(), expected)
    assert check_index_leaks(out).ok


def test_bad_fractions_are_rejected():
    with pytest.raises(ValueError, match=r"train \+ val \+ test must be 1 \(got 0.8 \+ 0.3 \+ 0.1 = 1.2\)"):
        SplitConfig(train=0.8, val=0.3, test=0.1)
