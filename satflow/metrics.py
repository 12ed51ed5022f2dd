"""Mergeable per-feature error metrics of a reconstruction, over valid points only.

`ErrorSums.from_block(x, x_hat, mask, n_bytes=...)` holds partial sums for one block; `merge` combines
two partials exactly (means and co-moments with the Chan et al. pairwise update, plain sums
otherwise), so a tree reduction over chunks on a cluster gives the same numbers as one pass over
all the data. `finalize()` turns them into RMSE, MAE, bias, max abs error, PSNR, Pearson r, bits per
value and compression ratios.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FLOAT32_BITS = 32


@dataclass(frozen=True)
class ErrorSums:
    """Per-feature partial sums (arrays of shape (feature,)) plus block-level byte counts."""

    count: np.ndarray  # valid points
    sum_error: np.ndarray  # sum of (x_hat - x)
    sum_abs_error: np.ndarray
    sum_sq_error: np.ndarray
    max_abs_error: np.ndarray
    mean_x: np.ndarray
    mean_y: np.ndarray
    m2_x: np.ndarray  # sum of squared deviations of x from its mean
    m2_y: np.ndarray
    c_xy: np.ndarray  # co-moment: sum of (x - mean_x)(y - mean_y)
    min_x: np.ndarray
    max_x: np.ndarray
    n_cells: int = 0  # all cells, valid or not, of the blocks coded
    n_bytes: int = 0  # coded bytes of those blocks (containers, mask included)
    source_bytes: int = 0  # bytes of the source files those cells came from (0 = unknown)

    @classmethod
    def empty(cls, n_features: int) -> ErrorSums:
        zeros = np.zeros(n_features)
        return cls(np.zeros(n_features, np.int64), zeros, zeros, zeros, zeros, zeros, zeros, zeros, zeros, zeros,
                   np.full(n_features, np.inf), np.full(n_features, -np.inf))

    @classmethod
    def from_block(
        cls,
        x: np.ndarray,
        x_hat: np.ndarray,
        mask: np.ndarray | None = None,
        *,
        n_bytes: int = 0,
        source_bytes: int = 0,
        feature_axis: int = 0,
    ) -> ErrorSums:
        """Sums for one block (any layout with a feature axis); valid = mask != 0 and x finite."""
        x = np.moveaxis(np.asarray(x, dtype=np.float64), feature_axis, 0)
        y = np.moveaxis(np.asarray(x_hat, dtype=np.float64), feature_axis, 0)
        if x.shape != y.shape:
            raise ValueError(f"reconstruction shape {y.shape} differs from original {x.shape}")
        n_features = x.shape[0]
        x, y = x.reshape(n_features, -1), y.reshape(n_features, -1)
        valid = np.isfinite(x)
        if mask is not None:
            valid &= np.moveaxis(np.asarray(mask), feature_axis, 0).reshape(n_features, -1) != 0
        count = valid.sum(axis=1)
        safe = np.maximum(count, 1)
        xv, yv = np.where(valid, x, 0.0), np.where(valid, y, 0.0)
        error = np.where(valid, y - x, 0.0)
        mean_x, mean_y = xv.sum(axis=1) / safe, yv.sum(axis=1) / safe
        dx, dy = np.where(valid, x - mean_x[:, None], 0.0), np.where(valid, y - mean_y[:, None], 0.0)
        abs_error = np.abs(error)
        return cls(
            count=count.astype(np.int64),
            sum_error=error.sum(axis=1),
            sum_abs_error=abs_error.sum(axis=1),
            sum_sq_error=(error * error).sum(axis=1),
            # a NaN reconstruction at a valid point is an infinite error, not a skipped one
            max_abs_error=np.where(valid, np.nan_to_num(abs_error, nan=np.inf), 0.0).max(axis=1, initial=0.0),
            mean_x=mean_x,
            mean_y=mean_y,
            m2_x=(dx * dx).sum(axis=1),
            m2_y=(dy * dy).sum(axis=1),
            c_xy=(dx * dy).sum(axis=1),
            min_x=np.where(valid, x, np.inf).min(axis=1, initial=np.inf),
            max_x=np.where(valid, x, -np.inf).max(axis=1, initial=-np.inf),
            n_cells=int(x.size),
            n_bytes=int(n_bytes),
            source_bytes=int(source_bytes),
        )

    def merge(self, other: ErrorSums) -> ErrorSums:
        """Exact combination of two partials (pairwise update for means and co-moments)."""
        n_a, n_b = self.count, other.count
        n = n_a + n_b
        weight = np.where(n > 0, n_b / np.maximum(n, 1), 0.0)
        cross = n_a * n_b / np.maximum(n, 1)
        dx, dy = other.mean_x - self.mean_x, other.mean_y - self.mean_y
        return ErrorSums(
            count=n,
            sum_error=self.sum_error + other.sum_error,
            sum_abs_error=self.sum_abs_error + other.sum_abs_error,
            sum_sq_error=self.sum_sq_error + other.sum_sq_error,
            max_abs_error=np.maximum(self.max_abs_error, other.max_abs_error),
            mean_x=self.mean_x + dx * weight,
            mean_y=self.mean_y + dy * weight,
            m2_x=self.m2_x + other.m2_x + dx * dx * cross,
            m2_y=self.m2_y + other.m2_y + dy * dy * cross,
            c_xy=self.c_xy + other.c_xy + dx * dy * cross,
            min_x=np.minimum(self.min_x, other.min_x),
            max_x=np.maximum(self.max_x, other.max_x),
            n_cells=self.n_cells + other.n_cells,
            n_bytes=self.n_bytes + other.n_bytes,
            source_bytes=self.source_bytes + other.source_bytes,
        )

    def finalize(self, features: Sequence[str] | None = None) -> dict:
        """Metrics as plain JSON-able data: per-feature lists plus block-level rates.

        Per feature (NaN where a feature has no valid point): rmse, mae, bias (mean of x_hat - x),
        max_abs_error, psnr (dB, against the valid data range), pearson_r, count.
        Totals: bits_per_value (all cells), bits_per_valid_value, compression_ratio (vs float32)
        and compression_ratio_vs_source (when source bytes were given).
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            n = np.where(self.count > 0, self.count, np.nan)
            rmse = np.sqrt(self.sum_sq_error / n)
            data_range = self.max_x - self.min_x
            psnr = np.where(rmse > 0, 20 * np.log10(data_range / rmse), np.inf)
            psnr = np.where(np.isnan(n) | (data_range <= 0), np.nan, psnr)
            pearson = self.c_xy / np.sqrt(self.m2_x * self.m2_y)
            per_feature = {
                "count": self.count.tolist(),
                "rmse": rmse,
                "mae": self.sum_abs_error / n,
                "bias": self.sum_error / n,
                "max_abs_error": np.where(self.count > 0, self.max_abs_error, np.nan),
                "psnr": psnr,
                "pearson_r": pearson,
            }
        total_valid = int(self.count.sum())
        bits = 8.0 * self.n_bytes
        return {
            "features": list(features) if features is not None else list(range(self.count.size)),
            "per_feature": {k: [float(v) for v in np.asarray(vals, dtype=np.float64)] if k != "count" else vals
                            for k, vals in per_feature.items()},
            "n_cells": self.n_cells,
            "n_valid": total_valid,
            "n_bytes": self.n_bytes,
            "bits_per_value": bits / self.n_cells if self.n_cells else float("nan"),
            "bits_per_valid_value": bits / total_valid if total_valid else float("nan"),
            "compression_ratio": FLOAT32_BITS * self.n_cells / bits if bits else float("nan"),
            "compression_ratio_vs_source": 8.0 * self.source_bytes / bits if bits and self.source_bytes else None,
        }


def merge_all(parts: Sequence[ErrorSums]) -> ErrorSums:
    """Pairwise (tree) merge of partials; raises on an empty list (the feature count is unknown)."""
    if not parts:
        raise ValueError("merge_all needs at least one ErrorSums")
    level = list(parts)
    while len(level) > 1:
        level = [level[i].merge(level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    return level[0]

