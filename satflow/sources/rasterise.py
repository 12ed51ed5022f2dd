"""In-situ profiles -> a target depth axis -> grid cells: the compiled kernels of the profiles source.

- `pressure_to_depth`: sea pressure (dbar) to depth (m), UNESCO 1983 (Fofonoff and Millard, UNESCO
  Technical Papers in Marine Science 44, p. 25-28; after Saunders and Fofonoff 1976), the formula
  EN4 and the Argo tools use; its check value is 9712.653 m at 10000 dbar and 30 degrees.
- `resample_profiles`: every profile onto the target depths, by the nearest valid level within a
  cutoff or linearly between the two valid levels that bracket a depth (as `numpy.interp`, none
  outside the profile's range); one compiled loop over profiles, levels sorted per profile.
- `rasterise`: profiles -> per (cell, level) means over the profiles of the cell, weighted by their
  counts, and the number of profiles per cell. Accumulated on the occupied cells only, so memory is
  the profiles', not a grid of (cells x levels) float64 sums (400 MB at 0.25 degrees and 50 levels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from satflow.sources.binning import accumulate_mean, finish_mean

NEAREST, LINEAR = 0, 1
_METHODS = {"nearest": NEAREST, "linear": LINEAR}


def pressure_to_depth(pressure_dbar, lat_deg) -> np.ndarray:
    """Depth (m, positive down) of sea pressure (dbar) at latitude (degrees), UNESCO 1983."""
    p = np.asarray(pressure_dbar, np.float64)
    x = np.sin(np.radians(np.asarray(lat_deg, np.float64))) ** 2
    gravity = 9.780318 * (1.0 + (5.2788e-3 + 2.36e-5 * x) * x) + 1.092e-6 * p
    return ((((-1.82e-15 * p + 2.279e-10) * p - 2.2512e-5) * p + 9.72659) * p) / gravity


def resample_profiles(depth: np.ndarray, values: np.ndarray, targets: np.ndarray, method: str = "linear",
                      max_distance_m: float = 10.0) -> np.ndarray:
    """(profile, level) depths and values (NaN = invalid level) -> (profile, target) float32, NaN = none."""
    if method not in _METHODS:
        raise ValueError(f"unknown resample method {method!r}; use one of {', '.join(_METHODS)}")
    depth = np.ascontiguousarray(depth, np.float64)
    values = np.ascontiguousarray(values, np.float64)
    if depth.shape != values.shape or depth.ndim != 2:
        raise ValueError(f"depth {depth.shape} and values {values.shape} must both be (profile, level)")
    out = np.empty((depth.shape[0], len(targets)), np.float32)
    _resample(depth, values, np.ascontiguousarray(targets, np.float64), _METHODS[method], float(max_distance_m), out)
    return out


@numba.njit(cache=True, nogil=True)
def _resample(depth, values, targets, method, max_distance, out):
    n_levels = depth.shape[1]
    z = np.empty(n_levels)
    v = np.empty(n_levels)
    for p in range(depth.shape[0]):
        n = 0
        for k in range(n_levels):
            if depth[p, k] == depth[p, k] and values[p, k] == values[p, k]:
                z[n] = depth[p, k]
                v[n] = values[p, k]
                n += 1
        zs, vs = z[:n], v[:n]
        if not _ascending(zs):  # levels usually come sorted: no sort, no copy then
            order = np.argsort(zs, kind="mergesort")
            zs, vs = zs[order], vs[order]
        for t in range(targets.size):
            out[p, t] = _at_depth(zs, vs, targets[t], method, max_distance) if n else np.nan


@numba.njit(cache=True, nogil=True)
def _ascending(z):
    for k in range(1, z.size):
        if z[k] < z[k - 1]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _at_depth(zs, vs, target, method, max_distance):
    j = np.searchsorted(zs, target)  # zs[j-1] < target <= zs[j]
    if method == NEAREST:
        best = -1
        if j < zs.size:
            best = j
        if j > 0 and (best < 0 or target - zs[j - 1] <= zs[j] - target):  # a tie takes the shallower level
            best = j - 1
        return vs[best] if abs(zs[best] - target) <= max_distance else np.nan
    if j == zs.size:
        return np.nan
    if zs[j] == target:
        return vs[j]
    if j == 0:
        return np.nan
    z0, z1 = zs[j - 1], zs[j]
    return vs[j - 1] + (target - z0) * (vs[j] - vs[j - 1]) / (z1 - z0)


@dataclass(frozen=True)
class CellMeans:
    """The occupied cells of one step: flat cell indices, (cell, level) means and profiles per cell."""

    cells: np.ndarray  # int64, ascending
    means: np.ndarray  # float32 (cell, level), NaN where no profile has the level
    profiles: np.ndarray  # int32 (cell,): profiles with at least one valid level


def rasterise(cells: np.ndarray, resampled: np.ndarray) -> CellMeans:
    """Average resampled profiles (profile, level) per flat cell (-1 = off the grid), weighted by counts."""
    on_grid = cells >= 0
    occupied, inverse = np.unique(cells[on_grid], return_inverse=True)
    values = np.ascontiguousarray(resampled[on_grid], np.float32)
    sums = np.zeros((occupied.size, values.shape[1]))
    counts = np.zeros((occupied.size, values.shape[1]), np.int32)
    accumulate_mean(inverse.astype(np.int64), values, sums, counts)
    observed = np.isfinite(values).any(axis=1)
    profiles = np.bincount(inverse, weights=observed, minlength=occupied.size).astype(np.int32)
    return CellMeans(occupied, finish_mean(sums, counts), profiles)
