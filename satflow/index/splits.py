"""Leak-free train/val/test splits and the check that proves it.

Space mode: the grid is tiled into geographic windows, ranked by a hash of (seed, window) and dealt
out to train/val/test in the configured proportions; a window keeps its split at every time step.
A patch whose footprint touches windows of *different* splits would share pixels across splits
(overlapping patches make this common), so it is labelled `buffer` and belongs to no split.

Time mode: each contiguous block of time steps draws its split from a hash of (seed, block), so
appending time steps never moves an existing block to another split; `time_buffer` steps on
each side of a boundary between different splits become `buffer`.

`check_leaks` rasterises every split's pixel footprints and reports cells (and the patches
covering them) that two splits share, and time steps that two splits share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from satflow.index.geometry import PatchGrid
from satflow.index.keys import mix, uniform
from satflow.index.options import SplitConfig

SPLITS = ("train", "val", "test", "buffer")
BUFFER = 3
_SPACE_SALT, _TIME_SALT = 0x5BACE, 0x7143


@dataclass(frozen=True)
class WindowLayout:
    """Geographic windows of `cells_y` x `cells_x` grid cells (the last row/column may be smaller)."""

    cells_y: int
    cells_x: int
    n_y: int
    n_x: int

    @classmethod
    def for_grid(cls, grid: PatchGrid, config: SplitConfig, lat_step: float = 1.0, lon_step: float = 1.0):
        if config.window_degrees is not None:
            cells_y = max(1, round(config.window_degrees / abs(lat_step)))
            cells_x = max(1, round(config.window_degrees / abs(lon_step)))
        else:
            cells_y, cells_x = config.window_patches * grid.height, config.window_patches * grid.width
        return cls(cells_y, cells_x, -(-grid.ny // cells_y), -(-grid.nx // cells_x))

    def to_dict(self) -> dict:
        return {"cells_y": self.cells_y, "cells_x": self.cells_x, "n_y": self.n_y, "n_x": self.n_x}


def _draw(u: np.ndarray, config: SplitConfig) -> np.ndarray:
    return np.where(u < config.train, 0, np.where(u < config.train + config.val, 1, 2)).astype(np.int8)


def apportion(n: int, fractions: list[float]) -> np.ndarray:
    """Split n items by fractions (largest remainders); every positive fraction gets one if n allows."""
    exact = n * np.asarray(fractions, dtype=np.float64)
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]] += 1
    for i in np.flatnonzero((np.asarray(fractions) > 0) & (counts == 0)):
        donor = int(np.argmax(counts))
        if counts[donor] > 1:
            counts[donor] -= 1
            counts[i] += 1
    return counts


def window_splits(layout: WindowLayout, config: SplitConfig) -> np.ndarray:
    """Split code (0 train, 1 val, 2 test) of every window, shape (n_y, n_x).

    Windows are ranked by a hash of (seed, window) and dealt out in the configured proportions,
    so even a small grid with a handful of windows gets every split it asks for.
    """
    wy, wx = np.meshgrid(np.arange(layout.n_y), np.arange(layout.n_x), indexing="ij")
    order = np.argsort(uniform(mix(config.seed, _SPACE_SALT, wy, wx)).ravel(), kind="stable")
    counts = apportion(order.size, [config.train, config.val, config.test])
    codes = np.empty(order.size, dtype=np.int8)
    codes[order] = np.repeat(np.arange(3, dtype=np.int8), counts)
    return codes.reshape(wy.shape)


def _window_span(lo: int, hi: int, cells: int) -> slice:
    return slice(lo // cells, (hi - 1) // cells + 1)


def space_splits(grid: PatchGrid, layout: WindowLayout, config: SplitConfig,
                 y0: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(window_id, split code) for patches with origins (y0, x0); straddlers of two splits -> buffer."""
    codes = window_splits(layout, config)
    y0, x0 = np.asarray(y0, dtype=np.int64), np.asarray(x0, dtype=np.int64)
    lo1, hi1, lo2, hi2 = grid.intervals("x", x0)
    split = np.empty(y0.shape, dtype=np.int8)
    for i, (y, a1, b1, a2, b2) in enumerate(zip(y0, lo1, hi1, lo2, hi2)):
        rows = _window_span(int(y), int(y) + grid.height, layout.cells_y)
        touched = codes[rows, _window_span(int(a1), int(b1), layout.cells_x)].ravel()
        if b2 > a2:
            touched = np.concatenate([touched, codes[rows, _window_span(int(a2), int(b2), layout.cells_x)].ravel()])
        split[i] = touched[0] if (touched == touched[0]).all() else BUFFER
    centre_y = (y0 + grid.height // 2) // layout.cells_y
    centre_x = ((x0 + grid.width // 2) % grid.nx) // layout.cells_x
    return centre_y * layout.n_x + centre_x, split


def time_splits(n_time: int, config: SplitConfig) -> np.ndarray:
    """Split code of every store time step for blocked-time splits (buffer steps at boundaries)."""
    steps = np.arange(n_time)
    codes = _draw(uniform(mix(config.seed, _TIME_SALT, steps // config.time_block)), config)
    result = codes.copy()
    for shift in range(1, config.time_buffer + 1):
        before = np.concatenate([codes[:shift], codes[:-shift]])
        after = np.concatenate([codes[shift:], codes[-shift:]])
        result[(before != codes) | (after != codes)] = BUFFER
    return result


# --- leak check --------------------------------------------------------------------------------
@dataclass
class LeakReport:
    """Locations (pixels) and time steps shared by two splits."""

    mode: str
    shared_cells: int = 0
    location_leaks: pd.DataFrame = field(default_factory=pd.DataFrame)  # patch_id, split, shared_cells
    time_leaks: pd.DataFrame = field(default_factory=pd.DataFrame)  # t, splits

    @property
    def ok(self) -> bool:
        """No leak of the kind the split mode promises to prevent (both kinds for mode 'both')."""
        space_ok = self.shared_cells == 0 and self.location_leaks.empty
        time_ok = self.time_leaks.empty
        return {"space": space_ok, "time": time_ok}.get(self.mode, space_ok and time_ok)

    def describe(self, limit: int = 10) -> str:
        lines = [f"leak check ({self.mode} split): {'no leaks' if self.ok else 'LEAKS FOUND'}"]
        if self.mode in ("space", "both"):
            lines.append(f"  pixels shared by two splits: {self.shared_cells}; "
                         f"patches touching them: {len(self.location_leaks)}")
            for row in self.location_leaks.head(limit).itertuples():
                lines.append(f"    {row.patch_id} ({row.split}): {row.shared_cells} shared pixels")
        if self.mode in ("time", "both"):
            lines.append(f"  time steps in two splits: {len(self.time_leaks)}")
            for row in self.time_leaks.head(limit).itertuples():
                lines.append(f"    t={row.t}: {row.splits}")
        return "\n".join(lines)


def _rectangles(frame: pd.DataFrame, grid: PatchGrid) -> tuple[np.ndarray, ...]:
    """Footprints as (y_lo, y_hi, x_lo, x_hi) rectangles; a wrapping patch gives two."""
    y0, x0 = frame["y0"].to_numpy(np.int64), frame["x0"].to_numpy(np.int64)
    y1 = y0 + frame["height"].to_numpy(np.int64)
    x1 = x0 + frame["width"].to_numpy(np.int64)
    owner = np.arange(len(frame))
    if not grid.wrap:
        return owner, y0, y1, x0, x1
    over = np.flatnonzero(x1 > grid.nx)
    return (np.concatenate([owner, over]), np.concatenate([y0, y0[over]]), np.concatenate([y1, y1[over]]),
            np.concatenate([x0, np.zeros(over.size, np.int64)]),
            np.concatenate([np.minimum(x1, grid.nx), x1[over] - grid.nx]))


def _coverage(rects: tuple[np.ndarray, ...], grid: PatchGrid) -> np.ndarray:
    """Number of footprints covering each cell (difference array + 2-D cumulative sum)."""
    _, y0, y1, x0, x1 = rects
    diff = np.zeros((grid.ny + 1, grid.nx + 1), dtype=np.int32)
    for ys, xs, sign in ((y0, x0, 1), (y0, x1, -1), (y1, x0, -1), (y1, x1, 1)):
        np.add.at(diff, (ys, xs), sign)
    return diff.cumsum(0).cumsum(1)[: grid.ny, : grid.nx]


def _cells_hit(rects: tuple[np.ndarray, ...], n_rows: int, raster: np.ndarray) -> np.ndarray:
    """Per row, the number of flagged cells of `raster` inside its footprint (integral image)."""
    owner, y0, y1, x0, x1 = rects
    integral = np.zeros((raster.shape[0] + 1, raster.shape[1] + 1), dtype=np.int64)
    integral[1:, 1:] = raster.astype(np.int64).cumsum(0).cumsum(1)
    sums = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return np.bincount(owner, weights=sums, minlength=n_rows).astype(np.int64)


def check_location_leaks(frame: pd.DataFrame, grid: PatchGrid) -> tuple[int, pd.DataFrame]:
    """Pixels covered by patches of two or more splits, and the patches that cover them."""
    frame = frame[frame["split"].isin(SPLITS[:BUFFER])]
    locations = frame.drop_duplicates(["y0", "x0", "height", "width", "split"]).reset_index(drop=True)
    covered = {}
    for name in SPLITS[:BUFFER]:
        part = locations[locations["split"] == name]
        covered[name] = _coverage(_rectangles(part, grid), grid) > 0
    n_splits = sum(mask.astype(np.int8) for mask in covered.values())
    shared = int((n_splits > 1).sum())
    leaks = []
    for name in SPLITS[:BUFFER]:
        part = locations[locations["split"] == name].reset_index(drop=True)
        if part.empty:
            continue
        others = n_splits - covered[name].astype(np.int8) > 0
        hits = _cells_hit(_rectangles(part, grid), len(part), others)
        bad = part.loc[hits > 0, ["patch_id", "split"]].assign(shared_cells=hits[hits > 0])
        leaks.append(bad)
    columns = ["patch_id", "split", "shared_cells"]
    table = pd.concat(leaks, ignore_index=True) if leaks else pd.DataFrame(columns=columns)
    return shared, table


def check_time_leaks(frame: pd.DataFrame) -> pd.DataFrame:
    """Time steps whose rows belong to two or more splits."""
    frame = frame[frame["split"].isin(SPLITS[:BUFFER])]
    per_time = frame.groupby("t")["split"].agg(lambda s: ",".join(sorted(set(s))))
    leaks = per_time[per_time.str.contains(",")]
    return pd.DataFrame({"t": leaks.index.to_numpy(), "splits": leaks.to_numpy()})


def check_leaks(frame: pd.DataFrame, grid: PatchGrid, mode: str = "space") -> LeakReport:
    """Check an index for leaks: 'space' (shared pixels), 'time' (shared time steps) or 'both'."""
    if mode not in ("space", "time", "both"):
        raise ValueError(f"leak check mode must be space, time or both (got {mode!r})")
    report = LeakReport(mode)
    if mode in ("space", "both"):
        report.shared_cells, report.location_leaks = check_location_leaks(frame, grid)
    if mode in ("time", "both"):
        report.time_leaks = check_time_leaks(frame)
    return report
