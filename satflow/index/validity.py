"""Exact per-patch, per-feature valid-cell counts from the mask `M`, one Dask task per chunk.

Each chunk is cut at every patch-footprint edge that crosses it (`PatchGrid.block_membership`);
`np.add.reduceat` sums the segments in one pass over the chunk, and two tiny 0/1 matrix products
turn segment sums into each patch's share of the chunk. A patch straddling chunks (or wrapping
past the last longitude) receives shares from every chunk it touches; one task per time block
adds the shares up. Memory is one chunk per task plus the patch grid per time block, and `X` is
never read.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

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


def _block_touches(grid: PatchGrid, selected: np.ndarray, y: tuple[int, int], x: tuple[int, int]) -> bool:
    rows, _, _ = _membership(grid, "y", *y)
    cols, _, _ = _membership(grid, "x", *x)
    return bool(rows.size and cols.size and selected[np.ix_(rows, cols)].any())


def _offsets(chunks: tuple[int, ...]) -> list[tuple[int, int]]:
    ends = np.cumsum(chunks)
    return [(int(end - size), int(end)) for size, end in zip(chunks, ends)]


def time_block_counts(mask, grid: PatchGrid, selected: np.ndarray | None = None) -> list[tuple[int, int, object]]:
    """Delayed valid counts per time chunk of a dask mask array (time, feature, lat, lon).

    Returns (t_start, t_stop, Delayed int32 array (time, feature, patch row, patch col)) per time
    chunk, t relative to `mask`. Chunks that touch no `selected` patch are never read.
    """
    selected = np.ones(grid.shape, dtype=bool) if selected is None else selected
    t_ranges, f_ranges = _offsets(mask.chunks[0]), _offsets(mask.chunks[1])
    y_ranges, x_ranges = _offsets(mask.chunks[2]), _offsets(mask.chunks[3])
    spatial = [(iy, ix) for iy, y in enumerate(y_ranges) for ix, x in enumerate(x_ranges)
               if _block_touches(grid, selected, y, x)]
    # A plain task graph on top of the mask's keys: building one dask.delayed call per chunk costs
    # about a millisecond each (graph merging), as much as reading the chunk.
    token = tokenize(mask, grid, selected)
    share_name, total_name = f"patch-shares-{token}", f"patch-counts-{token}"
    graph, result = {}, []
    for it, (t0, t1) in enumerate(t_ranges):
        shares = []
        for jf, features in enumerate(f_ranges):
            for iy, ix in spatial:
                key = (share_name, it, jf, iy, ix)
                graph[key] = (block_share, (mask.name, it, jf, iy, ix), y_ranges[iy][0], x_ranges[ix][0],
                              slice(*features), grid)
                shares.append(key)
        graph[(total_name, it)] = (add_shares, shares, t1 - t0, mask.shape[1], grid)
        result.append((t0, t1, (total_name, it)))
    layers = HighLevelGraph.from_collections(total_name, graph, dependencies=[mask])
    return [(t0, t1, Delayed(key, layers, layer=total_name)) for t0, t1, key in result]
