"""Exact per-patch, per-feature valid-cell counts from the mask `M`, chunk by chunk.

Each chunk is cut at every patch-footprint edge that crosses it (`PatchGrid.block_membership`);
`np.add.reduceat` sums the segments in one pass over the chunk, and two tiny 0/1 matrix products
turn segment sums into each patch's share of the chunk. A patch straddling chunks (or wrapping
past the last longitude) receives shares from every chunk it touches; one task per time block
adds the shares up. Memory is one chunk plus the patch grid per time block, and `X` is never read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from satflow.index.geometry import PatchGrid


@dataclass(frozen=True)
class BlockShare:
    """One chunk's contribution: counts[t, f, i, j] for patches (rows[i], cols[j])."""

    features: slice
    rows: np.ndarray
    cols: np.ndarray
    counts: np.ndarray  # int64 (time, feature, len(rows), len(cols))


def block_share(block: np.ndarray, y_start: int, x_start: int, features: slice, grid: PatchGrid) -> BlockShare:
    """Valid-cell counts of one (time, feature, lat, lon) mask chunk inside every patch it touches."""
    rows, seg_y, member_y = _membership(grid, "y", y_start, y_start + block.shape[2])
    cols, seg_x, member_x = _membership(grid, "x", x_start, x_start + block.shape[3])
    if rows.size == 0 or cols.size == 0:
        return BlockShare(features, rows, cols, np.zeros((block.shape[0], block.shape[1], rows.size, cols.size),
                                                          dtype=np.int64))
    # int32 is exact: a segment holds at most one chunk's cells.
    sums = np.add.reduceat(block, seg_y, axis=2, dtype=np.int32)
    sums = np.add.reduceat(sums, seg_x, axis=3).astype(np.int64)
    return BlockShare(features, rows, cols, member_y @ sums @ member_x.T)


@functools.lru_cache(maxsize=4096)
def _membership(grid: PatchGrid, axis: str, start: int, stop: int):
    # The same chunk edges recur at every time step: compute each cut once per process.
    return grid.block_membership(axis, start, stop)


def add_shares(shares: list[BlockShare], n_time: int, n_feature: int, grid: PatchGrid) -> np.ndarray:
    """Sum chunk shares into counts (time, feature, patch row, patch col), int32."""
    total = np.zeros((n_time, n_feature, *grid.shape), dtype=np.int64)
    for share in shares:
        if share.rows.size and share.cols.size:
            # Rows/cols are unique within a share, so fancy-index += is exact (no np.add.at needed).
            view = total[:, share.features]
            view[:, :, share.rows[:, None], share.cols[None, :]] += share.counts
    return total.astype(np.int32)


def chunk_ranges(size: int, chunk: int, start: int = 0, stop: int | None = None) -> list[tuple[int, int]]:
    """[start, stop) of every chunk of an axis of `size` cells in chunks of `chunk`, cut to [start, stop)."""
    stop = size if stop is None else stop
    edges = sorted({start, stop, *range(chunk * (start // chunk + 1), stop, chunk)})
    return list(zip(edges[:-1], edges[1:]))


def touching_chunks(grid: PatchGrid, selected: np.ndarray, y_ranges: list[tuple[int, int]],
                    x_ranges: list[tuple[int, int]]) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of every spatial chunk that touches a `selected` patch (the others are never read)."""
    touching = []
    for y in y_ranges:
        rows, _, _ = _membership(grid, "y", *y)
        for x in x_ranges:
            cols, _, _ = _membership(grid, "x", *x)
            if rows.size and cols.size and selected[np.ix_(rows, cols)].any():
                touching.append((*y, *x))
    return touching


def time_block_counts(read: Callable[[tuple[slice, ...]], np.ndarray], times: tuple[int, int],
                      feature_ranges: list[tuple[int, int]], spatial: list[tuple[int, int, int, int]],
                      n_features: int, grid: PatchGrid) -> np.ndarray:
    """Valid counts (time, feature, patch row, patch col), int32, of the time steps [t0, t1).

    `read(region)` returns the mask of one chunk-aligned region (time, feature, lat, lon); one
    region per feature chunk and spatial chunk is read, so memory stays one chunk plus the grid.
    """
    t0, t1 = times
    shares = [block_share(np.asarray(read((slice(t0, t1), slice(f0, f1), slice(y0, y1), slice(x0, x1)))),
                          y0, x0, slice(f0, f1), grid)
              for f0, f1 in feature_ranges for y0, y1, x0, x1 in spatial]
    return add_shares(shares, t1 - t0, n_features, grid)
