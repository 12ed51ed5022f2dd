"""Stable integer keys and per-row random numbers derived from them.

Every random choice in the index (split of a window, sample order, triplet partners, dataset
augmentation) is a pure function of a seed and the row's identity, computed with SplitMix64.
So results never depend on row order, partitioning or the number of workers.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)


def _as_u64(value) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind in "iub":
        return array.astype(np.int64).astype(np.uint64)
    raise TypeError(f"keys are mixed from integers, got dtype {array.dtype}")


def splitmix64(value) -> np.ndarray:
    """The SplitMix64 finaliser: a bijective, well-mixed uint64 -> uint64 map (wraps on overflow)."""
    with np.errstate(over="ignore"):
        z = _as_u64(value) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MUL1
        z = (z ^ (z >> np.uint64(27))) * _MUL2
        return z ^ (z >> np.uint64(31))


def mix(seed: int, *parts) -> np.ndarray:
    """One uint64 key per element from a seed and broadcastable integer parts."""
    key = splitmix64(np.int64(seed))
    for part in parts:
        key = splitmix64(key ^ _as_u64(part))
    return key


def uniform(keys) -> np.ndarray:
    """Map uint64 keys to floats in [0, 1) with 53 random bits."""
    return (np.asarray(keys, dtype=np.uint64) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def location_key(y0, x0, height, width) -> np.ndarray:
    """Identity of a patch location (the same at every time step)."""
    return mix(0, y0, x0, height, width)


def row_keys(seed: int, y0, x0, height, width, t) -> np.ndarray:
    """Identity of an index row (a location at a time step), salted with a seed."""
    return mix(seed, location_key(y0, x0, height, width), t)


def frame_row_keys(frame, seed: int) -> np.ndarray:
    """`row_keys` for every row of an index DataFrame."""
    return row_keys(seed, frame["y0"].to_numpy(), frame["x0"].to_numpy(), frame["height"].to_numpy(),
                    frame["width"].to_numpy(), frame["t"].to_numpy())
