"""Time windows: sequences of time steps per patch location.

- contiguous: `length` consecutive store time steps, all present in the index;
- best k of n (`span` given): within each run of `span` consecutive steps, the `length` steps with
  the highest valid fraction (ties go to the earlier step), kept in time order; steps missing from
  the index (filtered out as too empty) cannot be chosen.
A sequence whose members fall in different splits (blocked-time splits) or in the buffer is dropped.

Windows start at the same times at every location (every `step` steps from the first indexed
time step). The result has one row per member with `sequence_id`, `sequence_pos`,
`sequence_start_t` and `sequence_valid_frac` (the members' mean).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from satflow.index.io import METADATA_KEY, derived_metadata


def _presence(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(location code per row, valid_frac table location x time (NaN = absent), row table, first t)."""
    location = frame.groupby(["y0", "x0", "height", "width"], sort=True).ngroup().to_numpy()
    t = frame["t"].to_numpy(np.int64)
    first = int(t.min())
    valid = np.full((location.max() + 1, int(t.max()) - first + 1), np.nan)
    rows = np.full(valid.shape, -1, dtype=np.int64)
    valid[location, t - first] = frame["valid_frac"].to_numpy()
    rows[location, t - first] = np.arange(len(frame))
    return location, valid, rows, first


def _contiguous(valid: np.ndarray, length: int, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(location, start, member offsets (n, length)) of windows whose steps are all present."""
    present = np.isfinite(valid).astype(np.int64)
    run = np.concatenate([np.zeros((valid.shape[0], 1), np.int64), present.cumsum(axis=1)], axis=1)
    starts = np.arange(0, valid.shape[1] - length + 1, step)
    full = (run[:, starts + length] - run[:, starts]) == length
    loc, which = np.nonzero(full)
    return loc, starts[which], np.broadcast_to(np.arange(length), (loc.size, length))


def _best_of_span(valid: np.ndarray, length: int, span: int, step: int, min_valid: float):
    """(location, start, member offsets) choosing the best `length` of every `span` steps."""
    starts = np.arange(0, valid.shape[1] - span + 1, step)
    locs, firsts, members = [], [], []
    for start in starts:
        block = valid[:, start:start + span]
        score = np.where(np.isfinite(block) & (block >= min_valid), block, -np.inf)
        # Stable sort of -score: the highest valid fractions first, earlier steps win ties.
        chosen = np.sort(np.argsort(-score, axis=1, kind="stable")[:, :length], axis=1)
        ok = np.isfinite(np.take_along_axis(score, chosen, axis=1)).all(axis=1)
        locs.append(np.flatnonzero(ok))
        firsts.append(np.full(ok.sum(), start))
        members.append(chosen[ok])
    if not locs:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, length), np.int64)
    return np.concatenate(locs), np.concatenate(firsts), np.concatenate(members)


def time_windows(frame: pd.DataFrame, length: int, span: int | None = None, step: int | None = None,
                 min_valid_frac: float = 0.0) -> pd.DataFrame:
    """Sequences of `length` time steps per location (contiguous, or the best `length` of `span`)."""
    if length <= 0 or (span is not None and span < length):
        raise ValueError(f"need 0 < length <= span (got length {length}, span {span})")
    frame = frame.reset_index(drop=True)
    _, valid, rows, first = _presence(frame)
    step = step or span or length
    if span is None:
        loc, start, offsets = _contiguous(valid, length, step)
    else:
        loc, start, offsets = _best_of_span(valid, length, span, step, min_valid_frac)
    member_rows = rows[loc[:, None], start[:, None] + offsets]
    # A sequence never mixes splits (possible with blocked-time splits) nor uses buffer rows.
    split = frame["split"].to_numpy(dtype=object)[member_rows]
    same = (split == split[:, :1]).all(axis=1) & (split[:, 0] != "buffer")
    loc, start, offsets, member_rows = loc[same], start[same], offsets[same], member_rows[same]
    result = frame.iloc[member_rows.ravel()].reset_index(drop=True)
    start_t = np.repeat(start + first, length)
    result["sequence_id"] = [f"{pid}@t{t}" for pid, t in zip(result["patch_id"].to_numpy()[::length],
                                                              start_t[::length]) for _ in range(length)]
    result["sequence_pos"] = np.tile(np.arange(length, dtype=np.int32), loc.size)
    result["sequence_start_t"] = start_t.astype(np.int32)
    result["sequence_valid_frac"] = np.repeat(valid[loc[:, None], start[:, None] + offsets].mean(axis=1), length)
    if METADATA_KEY in frame.attrs:
        result.attrs[METADATA_KEY] = derived_metadata(frame.attrs[METADATA_KEY], "windows", {
            "length": length, "span": span, "step": step, "min_valid_frac": min_valid_frac})
    return result
