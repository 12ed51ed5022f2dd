"""Mergeable per-feature error metrics of a reconstruction, over valid points only.

`ErrorSums.from_block(x, x_hat, mask, n_bytes=...)` holds partial sums for one block; `merge` combines
two partials exactly (means and co-moments with the Chan et al. pairwise update, plain sums, counts and
maxima otherwise), so a tree reduction over chunks on a cluster gives the same numbers as one pass over
all the data, whatever the block shape. `finalize()` turns them into RMSE, NRMSE, MAE, bias, max abs
and relative error, PSNR, Pearson r, bound violations, a fixed-bin error histogram, bits per value
(in all and by container section) and compression ratios.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from satflow.stats import pairwise_weights

FLOAT32_BITS = 32
DEFAULT_REL_THRESHOLD = 1e-4

# Signed error histogram edges in units of the caller's per-feature scale: 0 and +-1e-6 .. +-10 at four
# bins per decade. Fixed, so that histograms of any blocks merge by addition and never depend on data.
_DECADE_EDGES = 10.0 ** np.arange(-6.0, 1.0 + 1e-9, 0.25)
HISTOGRAM_EDGES = np.concatenate([-_DECADE_EDGES[::-1], [0.0], _DECADE_EDGES])
HISTOGRAM_BINS = HISTOGRAM_EDGES.size + 1  # plus underflow (below the first edge) and overflow


def _per_feature(value, n_features: int, name: str) -> np.ndarray:
    """A scalar or per-feature value as a float64 array of shape (feature,)."""
    array = np.broadcast_to(np.asarray(value, dtype=np.float64), (n_features,)) if np.ndim(value) == 0 \
        else np.asarray(value, dtype=np.float64)
    if array.shape != (n_features,):
        raise ValueError(f"{name} has shape {array.shape}; give a scalar or one value per feature ({n_features})")
    return array.copy()


def error_histogram(scaled_error: np.ndarray) -> np.ndarray:
    """Counts of the signed errors of one feature's valid points (already in scale units, +inf
    for a NaN reconstruction: an unbounded error counts as overflow).

    Bin i >= 1 holds edges[i-1] <= e < edges[i]; bin 0 holds e < edges[0], the last bin e >= edges[-1].
    """
    # Sorting once and placing the 59 edges among the values is ~3x faster than placing every value
    # among the edges (in NumPy or compiled); the counts are the same.
    below_edge = np.searchsorted(np.sort(scaled_error), HISTOGRAM_EDGES, side="left")
    return np.diff(np.concatenate(([0], below_edge, [scaled_error.size])))


def _sum_sections(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {name: int(a.get(name, 0)) + int(b.get(name, 0)) for name in {**a, **b}}


@dataclass(frozen=True)
class ErrorSums:
    """Per-feature partial sums (arrays of shape (feature,)) plus block-level byte counts.

    Settings that change the meaning of a sum (whether a bound was declared, the relative-error
    threshold, the histogram scale) travel with the partial; merging partials made with different
    settings raises, except that a partial without cells (`empty`) is neutral.
    """

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
    max_rel_error: np.ndarray  # max |x_hat - x| / |x| over valid x != 0; -inf while there is none
    rel_exceed: np.ndarray  # valid points with relative error > rel_threshold (x == 0: any error)
    violations: np.ndarray  # valid points with |x_hat - x| > bound (zeros when no bound was declared)
    histogram: np.ndarray  # (feature, HISTOGRAM_BINS) counts of the signed error / hist_scale
    hist_scale: np.ndarray  # (feature,) the unit of the histogram's edges
    has_bound: bool = False
    rel_threshold: float = DEFAULT_REL_THRESHOLD
    n_cells: int = 0  # all cells, valid or not, of the blocks coded
    n_bytes: int = 0  # coded bytes of those blocks (containers, mask included)
    source_bytes: int = 0  # bytes of the source files those cells came from (0 = unknown)
    section_bytes: dict[str, int] = field(default_factory=dict)  # e.g. header, mask, payload

    @classmethod
    def empty(cls, n_features: int, *, hist_scale=1.0, rel_threshold: float = DEFAULT_REL_THRESHOLD) -> ErrorSums:
        """The neutral partial: merging it changes nothing."""
        zeros = np.zeros(n_features)
        counts = np.zeros(n_features, np.int64)
        return cls(counts, zeros, zeros, zeros, zeros, zeros, zeros, zeros, zeros, zeros,
                   np.full(n_features, np.inf), np.full(n_features, -np.inf), np.full(n_features, -np.inf),
                   counts, counts, np.zeros((n_features, HISTOGRAM_BINS), np.int64),
                   _per_feature(hist_scale, n_features, "hist_scale"), rel_threshold=float(rel_threshold))

    @classmethod
    def from_block(
        cls,
        x: np.ndarray,
        x_hat: np.ndarray,
        mask: np.ndarray | None = None,
        *,
        n_bytes: int = 0,
        source_bytes: int = 0,
        section_bytes: Mapping[str, int] | None = None,
        bound: float | Sequence[float] | np.ndarray | None = None,
        hist_scale: float | Sequence[float] | np.ndarray = 1.0,
        rel_threshold: float = DEFAULT_REL_THRESHOLD,
        feature_axis: int = 0,
    ) -> ErrorSums:
        """Sums for one block (any layout with a feature axis); valid = mask != 0 and x finite.

        `bound`: the codec's declared absolute error bound (scalar or per feature), None if it declares
        none. `hist_scale`: per-feature unit of the error histogram (e.g. the store's std), the same for
        every block of a reduction. `section_bytes`: bytes of the block's container by section.
        Errors are computed in float64 from the (float32) inputs.
        """
        x, y = np.moveaxis(np.asarray(x), feature_axis, 0), np.moveaxis(np.asarray(x_hat), feature_axis, 0)
        if x.shape != y.shape:
            raise ValueError(f"reconstruction shape {y.shape} differs from original {x.shape}")
        n_features = x.shape[0]
        if n_features == 0:
            raise ValueError(f"block of shape {x.shape} has no features on axis {feature_axis}")
        x, y = x.reshape(n_features, -1), y.reshape(n_features, -1)
        valid = np.isfinite(x)
        if mask is not None:
            valid &= np.moveaxis(np.asarray(mask), feature_axis, 0).reshape(n_features, -1) != 0
        scale = _per_feature(hist_scale, n_features, "hist_scale")
        if not np.all(np.isfinite(scale) & (scale > 0)):
            raise ValueError(f"hist_scale must be finite and positive per feature, got {scale.tolist()}")
        from satflow.metrics_kernels import FLOAT_SUMS, INT_SUMS, feature_sums  # numba: only where blocks are measured

        limit = np.full(n_features, np.nan) if bound is None else _per_feature(bound, n_features, "bound")
        sums = [feature_sums(x[f], y[f], valid[f], bound is not None, limit[f], scale[f], rel_threshold)
                for f in range(n_features)]
        floats, counts = np.stack([s[0] for s in sums]), np.stack([s[1] for s in sums])
        histograms = np.stack([error_histogram(s[2]) for s in sums])
        return cls(
            **dict(zip(FLOAT_SUMS, floats.T.copy())), **dict(zip(INT_SUMS, counts.T.copy())), histogram=histograms,
            hist_scale=scale,
            has_bound=bound is not None,
            rel_threshold=float(rel_threshold),
            n_cells=int(x.size),
            n_bytes=int(n_bytes),
            source_bytes=int(source_bytes),
            section_bytes={str(k): int(v) for k, v in (section_bytes or {}).items()},
        )

    def _settings_with(self, other: ErrorSums) -> dict:
        """Settings of the merged partial; a partial without cells takes the other's settings."""
        if self.n_cells == 0:
            self, other = other, self
        if other.n_cells:
            if self.has_bound != other.has_bound:
                raise ValueError("cannot merge partials with and without a declared error bound")
            if self.rel_threshold != other.rel_threshold:
                raise ValueError(f"cannot merge partials with relative-error thresholds "
                                 f"{self.rel_threshold} and {other.rel_threshold}")
            if not np.array_equal(self.hist_scale, other.hist_scale):
                raise ValueError("cannot merge error histograms made with different hist_scale")
        return {"has_bound": self.has_bound, "rel_threshold": self.rel_threshold, "hist_scale": self.hist_scale}

    def merge(self, other: ErrorSums) -> ErrorSums:
        """Exact combination of two partials (pairwise update for means and co-moments)."""
        n, weight, cross = pairwise_weights(self.count, other.count)
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
            max_rel_error=np.maximum(self.max_rel_error, other.max_rel_error),
            rel_exceed=self.rel_exceed + other.rel_exceed,
            violations=self.violations + other.violations,
            histogram=self.histogram + other.histogram,
            **self._settings_with(other),
            n_cells=self.n_cells + other.n_cells,
            n_bytes=self.n_bytes + other.n_bytes,
            source_bytes=self.source_bytes + other.source_bytes,
            section_bytes=_sum_sections(self.section_bytes, other.section_bytes),
        )

    def _per_feature_metrics(self) -> dict[str, np.ndarray]:
        """Per-feature values as float arrays (NaN where a feature has no valid point)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            n = np.where(self.count > 0, self.count, np.nan)
            rmse = np.sqrt(self.sum_sq_error / n)
            data_range = self.max_x - self.min_x
            undefined_range = np.isnan(n) | (data_range <= 0)
            psnr = np.where(rmse > 0, 20 * np.log10(data_range / rmse), np.inf)
            return {
                "rmse": rmse,
                "nrmse": np.where(undefined_range, np.nan, rmse / data_range),
                "mae": self.sum_abs_error / n,
                "bias": self.sum_error / n,
                "max_abs_error": np.where(self.count > 0, self.max_abs_error, np.nan),
                "max_rel_error": np.where(np.isneginf(self.max_rel_error), np.nan, self.max_rel_error),
                "rel_error_exceed_share": self.rel_exceed / n,
                "psnr": np.where(undefined_range, np.nan, psnr),
                "pearson_r": self.c_xy / np.sqrt(self.m2_x * self.m2_y),
                "violation_share": self.violations / n,
            }

    def _section_totals(self) -> dict[str, int]:
        """Bytes by section; bytes no section claimed (checksums, blocks without sections) are 'other'."""
        sections = dict(self.section_bytes)
        unclaimed = self.n_bytes - sum(sections.values())
        if sections and unclaimed:
            sections["other"] = sections.get("other", 0) + unclaimed
        return sections

    def finalize(self, features: Sequence[str] | None = None) -> dict:
        """Metrics as plain JSON-able data: per-feature lists plus block-level rates.

        Per feature, over valid points (NaN where a feature has none), with e = x_hat - x:
        count; rmse = sqrt(mean e^2); nrmse = rmse / (max x - min x); mae = mean |e|; bias = mean e;
        max_abs_error = max |e| (inf for a NaN reconstruction); max_rel_error = max |e|/|x| over x != 0;
        rel_error_exceed_share = share of points with |e|/|x| > rel_threshold (x == 0 counts when
        e != 0); psnr = 20 log10((max x - min x) / rmse) dB; pearson_r of (x, x_hat);
        violations = count of |e| > bound and violation_share = violations / count (None without a bound).
        Totals: n_cells, n_valid, n_bytes, bits_per_value (all cells), bits_per_valid_value,
        compression_ratio (vs float32), compression_ratio_vs_source (None when source bytes are unknown),
        bytes_by_section and bits_per_value_by_section (8 bytes / n_cells; empty without sections),
        rel_threshold, and histogram {"edges", "scale", "counts"}: counts[f][0] is below edges[0],
        counts[f][i] is edges[i-1] <= e / scale[f] < edges[i], counts[f][-1] is at or above edges[-1].
        """
        values = self._per_feature_metrics()
        per_feature: dict[str, list] = {"count": self.count.tolist()}
        per_feature.update({name: [float(v) for v in array] for name, array in values.items()})
        share = per_feature.pop("violation_share")  # listed after the count it divides
        per_feature["violations"] = self.violations.tolist() if self.has_bound else [None] * self.count.size
        per_feature["violation_share"] = share if self.has_bound else [None] * self.count.size
        total_valid = int(self.count.sum())
        bits = 8.0 * self.n_bytes
        sections = self._section_totals()
        return {
            "features": list(features) if features is not None else list(range(self.count.size)),
            "per_feature": per_feature,
            "n_cells": self.n_cells,
            "n_valid": total_valid,
            "n_bytes": self.n_bytes,
            "bits_per_value": bits / self.n_cells if self.n_cells else float("nan"),
            "bits_per_valid_value": bits / total_valid if total_valid else float("nan"),
            "compression_ratio": FLOAT32_BITS * self.n_cells / bits if bits else float("nan"),
            "compression_ratio_vs_source": 8.0 * self.source_bytes / bits if bits and self.source_bytes else None,
            "bytes_by_section": sections,
            "bits_per_value_by_section": {name: 8.0 * b / self.n_cells if self.n_cells else float("nan")
                                          for name, b in sections.items()},
            "rel_threshold": self.rel_threshold,
            "histogram": {"edges": HISTOGRAM_EDGES.tolist(), "scale": self.hist_scale.tolist(),
                          "counts": self.histogram.tolist()},
        }


def merge_all(parts: Sequence):
    """Pairwise (tree) merge of partials (anything with `merge`); raises on an empty list."""
    if not parts:
        raise ValueError("merge_all needs at least one partial (the feature count is unknown)")
    level = list(parts)
    while len(level) > 1:
        level = [level[i].merge(level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    return level[0]
