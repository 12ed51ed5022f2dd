"""Tile2Vec-style triplets written to the index: anchor, neighbour and distant patch.

- neighbour: `distance` tiles away (snapped to the patch-origin grid) in a random one of 8
  directions, at the same time step, present in the index and in the anchor's split (so a
  triplet never crosses splits and stays inside the domain, wrapping in longitude on global grids);
- distant: a random row of the same split at another time step.

Every random choice is a hash of (seed, anchor row identity), so triplets are identical for any
partitioning of the anchors or number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask
import numpy as np
import pandas as pd

from satflow.index.geometry import PatchGrid
from satflow.index.io import METADATA_KEY, derived_metadata
from satflow.index.keys import frame_row_keys, mix, uniform
from satflow.index.splits import SPLITS, BUFFER
from satflow.runtime.executors import as_executor

# (name, rows, cols): latitude ascends with the row index in a satflow store, so +row is north.
DIRECTIONS = (("N", 1, 0), ("NE", 1, 1), ("E", 0, 1), ("SE", -1, 1),
              ("S", -1, 0), ("SW", -1, -1), ("W", 0, -1), ("NW", 1, -1))
_NEIGHBOR_SALT, _DISTANT_SALT = 0xA1, 0xD1


@dataclass(frozen=True)
class RowTable:
    """The rows a partner may come from: keys sorted for lookup, and rows grouped by split and time."""

    cell_keys: np.ndarray  # sorted (t, y0, x0, split) keys
    cell_rows: np.ndarray  # row position of each key
    by_split_time: dict[int, tuple[np.ndarray, np.ndarray]]  # split -> (times sorted, row positions)
    grid: PatchGrid

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, grid: PatchGrid) -> RowTable:
        split = _split_codes(frame)
        usable = np.flatnonzero(split < BUFFER)
        keys = _cell_key(frame["t"].to_numpy()[usable], frame["y0"].to_numpy()[usable],
                         frame["x0"].to_numpy()[usable], split[usable], grid)
        order = np.argsort(keys, kind="stable")
        by_split = {}
        t = frame["t"].to_numpy()
        for code in np.unique(split[usable]):
            rows = usable[split[usable] == code]
            # A canonical order (time, then location), so picks never depend on the frame's row order.
            rows = rows[np.lexsort([frame[c].to_numpy()[rows] for c in ("width", "height", "x0", "y0", "t")])]
            by_split[int(code)] = (t[rows], rows)
        return cls(keys[order], usable[order], by_split, grid)

    def find(self, t, y0, x0, split) -> np.ndarray:
        """Row positions of (t, y0, x0, split) cells, -1 where no such row exists."""
        inside = (y0 >= 0) & (y0 + self.grid.height <= self.grid.ny) & (x0 >= 0) & (x0 < self.grid.nx)
        if not self.grid.wrap:
            inside &= x0 + self.grid.width <= self.grid.nx
        keys = _cell_key(t, np.where(inside, y0, 0), np.where(inside, x0, 0), split, self.grid)
        at = np.clip(np.searchsorted(self.cell_keys, keys), 0, max(len(self.cell_keys) - 1, 0))
        found = inside & (len(self.cell_keys) > 0) & (self.cell_keys[at] == keys)
        return np.where(found, self.cell_rows[at], -1)


def _split_codes(frame: pd.DataFrame) -> np.ndarray:
    return frame["split"].map({name: code for code, name in enumerate(SPLITS)}).fillna(BUFFER).to_numpy(np.int64)


def _cell_key(t, y0, x0, split, grid: PatchGrid) -> np.ndarray:
    t, y0, x0, split = (np.asarray(a, dtype=np.int64) for a in (t, y0, x0, split))
    return ((t * grid.ny + y0) * grid.nx + x0) * len(SPLITS) + split


def _offset(distance: int, size: int, stride: int) -> int:
    """`distance` tiles in cells, snapped to a multiple of the origin stride (at least one stride)."""
    return max(1, round(distance * size / stride)) * stride


def _neighbors(anchors: pd.DataFrame, keys: np.ndarray, table: RowTable, distance: int, seed: int):
    grid = table.grid
    dy, dx = _offset(distance, grid.height, grid.stride_y), _offset(distance, grid.width, grid.stride_x)
    t, y0, x0 = (anchors[c].to_numpy(np.int64) for c in ("t", "y0", "x0"))
    split = _split_codes(anchors)
    found = np.empty((len(anchors), len(DIRECTIONS)), dtype=np.int64)
    for d, (_, sy, sx) in enumerate(DIRECTIONS):
        x = (x0 + sx * dx) % grid.nx if grid.wrap else x0 + sx * dx
        found[:, d] = table.find(t, y0 + sy * dy, x, split)
    priority = np.argsort(uniform(mix(seed, _NEIGHBOR_SALT, keys[:, None], np.arange(len(DIRECTIONS)))), axis=1)
    ranked = np.take_along_axis(found, priority, axis=1)
    first = np.argmax(ranked >= 0, axis=1)
    rows = ranked[np.arange(len(anchors)), first]
    names = np.asarray([name for name, _, _ in DIRECTIONS], dtype=object)[priority[np.arange(len(anchors)), first]]
    return rows, names


def _distant(anchors: pd.DataFrame, keys: np.ndarray, table: RowTable, seed: int) -> np.ndarray:
    t, split = anchors["t"].to_numpy(np.int64), _split_codes(anchors)
    u = uniform(mix(seed, _DISTANT_SALT, keys))
    rows = np.full(len(anchors), -1, dtype=np.int64)
    for code, (times, positions) in table.by_split_time.items():
        mine = np.flatnonzero(split == code)
        lo, hi = np.searchsorted(times, t[mine], "left"), np.searchsorted(times, t[mine], "right")
        others = len(times) - (hi - lo)  # rows of this split at another time step
        pick = np.floor(u[mine] * np.maximum(others, 1)).astype(np.int64)
        pick = np.where(pick < lo, pick, pick + (hi - lo))
        rows[mine] = np.where(others > 0, positions[np.minimum(pick, len(times) - 1)], -1)
    return rows


def _partners(anchors: pd.DataFrame, table: RowTable, frame: pd.DataFrame, distance: int, seed: int) -> pd.DataFrame:
    keys = frame_row_keys(anchors, seed)
    neighbor, direction = _neighbors(anchors, keys, table, distance, seed)
    distant = _distant(anchors, keys, table, seed)
    ok = (neighbor >= 0) & (distant >= 0)
    result = anchors[ok].copy()
    for role, rows in (("neighbor", neighbor[ok]), ("distant", distant[ok])):
        for column in ("patch_id", "t", "y0", "x0"):
            result[f"{role}_{column}"] = frame[column].to_numpy()[rows]
    result["neighbor_direction"] = direction[ok]
    return result


def add_triplets(frame: pd.DataFrame, grid: PatchGrid | None = None, *, distance: int = 1,
                 n_per_split: int | None = None, seed: int = 0, partitions: int = 1, client=None) -> pd.DataFrame:
    """Anchor rows with neighbour_* and distant_* partner columns (buffer rows never take part).

    Anchors without a valid neighbour or distant partner are dropped; `n_per_split` then keeps
    that many anchors per split (smallest row keys, so reproducible). `partitions` > 1 computes
    anchor partitions as separate Dask tasks; the result is the same for any value.
    """
    grid = grid or PatchGrid.from_dict(frame.attrs[METADATA_KEY]["grid"])
    frame = frame.reset_index(drop=True)
    if frame["t"].nunique() < 2:
        raise ValueError("triplets need at least two time steps in the index (the distant patch is from another time)")
    table = RowTable.from_frame(frame, grid)
    anchors = frame[_split_codes(frame) < BUFFER]
    pieces = [anchors.iloc[i::partitions] for i in range(partitions)] if partitions > 1 else [anchors]
    task = dask.delayed(_partners, pure=True)
    tasks = [task(piece, table, frame, distance, seed) for piece in pieces]
    parts = as_executor(client).compute(tasks)
    result = pd.concat(parts).sort_index()
    if n_per_split is not None:
        keyed = result.assign(_key=frame_row_keys(result, seed))
        picked = keyed.sort_values("_key", kind="stable").groupby("split").head(n_per_split)
        result = result.loc[np.sort(picked.index.to_numpy())]
    result = result.reset_index(drop=True)
    if METADATA_KEY in frame.attrs:
        result.attrs[METADATA_KEY] = derived_metadata(frame.attrs[METADATA_KEY], "triplets", {
            "distance": distance, "n_per_split": n_per_split, "seed": seed})
    return result
