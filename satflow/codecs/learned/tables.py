"""Integer probability tables for entropy coding, built once in float64 and stored as integers.

Encoder and decoder must see bit-identical probabilities, so every table the range coder uses is
an integer pmf (each entry >= 1, summing to 2**TABLE_PRECISION) whose last entry is an *escape*
symbol for values outside the table's support. Tables are computed once (at `update()` time,
like CompressAI) and stored in the checkpoint; coding never recomputes them from floats.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

TABLE_PRECISION = 16  # pmfs sum to 2**16; constriction re-quantises them exactly (integers in float64)
TAIL_MASS = 1e-9  # probability mass left outside a Gaussian table's support (goes to the escape symbol)

# Scales of the Gaussian conditional, as in CompressAI's mean-scale hyperprior: 64 log-spaced levels.
SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 64.0, 64


def default_scale_table() -> np.ndarray:
    """The fixed, log-spaced float64 scale table of the Gaussian conditional."""
    return np.exp(np.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS))


def quantize_pmf(pmf: np.ndarray, precision: int = TABLE_PRECISION) -> np.ndarray:
    """Float pmf (any non-negative weights) -> int64 counts, each >= 1, summing to 2**precision.

    Deterministic: floor of the scaled pmf, then the remainder goes one count at a time to the
    entries with the largest fractional parts (ties broken by index).
    """
    pmf = np.asarray(pmf, dtype=np.float64)
    if pmf.ndim != 1 or pmf.size < 2 or not np.all(np.isfinite(pmf)) or np.any(pmf < 0) or pmf.sum() <= 0:
        raise ValueError(f"a pmf needs >= 2 non-negative finite weights with a positive sum; got {pmf!r}")
    total = 1 << precision
    free = total - pmf.size  # one count reserved for every symbol so that all stay codable
    if free < 0:
        raise ValueError(f"a table of {pmf.size} symbols does not fit in {precision} bits")
    scaled = pmf / pmf.sum() * free
    counts = np.floor(scaled).astype(np.int64)
    remainder = free - int(counts.sum())
    order = np.lexsort((np.arange(pmf.size), -(scaled - counts)))
    counts[order[:remainder]] += 1
    return counts + 1


def gaussian_table(scale: float, tail_mass: float = TAIL_MASS) -> tuple[np.ndarray, int]:
    """Integer pmf of round(N(0, scale)) over [-K, K] plus an escape entry -> (counts, K)."""
    unit = NormalDist()
    half_width = math.ceil(scale * -unit.inv_cdf(tail_mass / 2))
    k = np.abs(np.arange(-half_width, half_width + 1, dtype=np.float64))
    # Evaluated in the lower tail, where the CDF is precise, so the pmf is exactly symmetric.
    upper = np.array([unit.cdf(v) for v in (0.5 - k) / scale])
    lower = np.array([unit.cdf(v) for v in (-0.5 - k) / scale])
    pmf = upper - lower
    escape = max(1.0 - pmf.sum(), 0.0)
    return quantize_pmf(np.append(pmf, escape)), half_width


def pad_tables(tables: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack variable-length integer tables into a zero-padded int32 matrix plus their lengths."""
    lengths = np.array([t.size for t in tables], dtype=np.int32)
    matrix = np.zeros((len(tables), int(lengths.max(initial=0))), dtype=np.int32)
    for row, table in zip(matrix, tables):
        row[: table.size] = table
    return matrix, lengths


def scale_indexes(scales: np.ndarray, scale_table: np.ndarray) -> np.ndarray:
    """Index of the smallest table scale >= each scale (clipped to the table), in float64.

    Rounding the scale *up* to a table entry only widens the coding distribution, which costs a
    little rate but never makes a symbol improbable.
    """
    scales = np.asarray(scales, dtype=np.float64)
    index = np.searchsorted(np.asarray(scale_table, dtype=np.float64), scales, side="left")
    return np.clip(index, 0, len(scale_table) - 1).astype(np.int32)
