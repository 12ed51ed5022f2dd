"""Metrics that need whole 2-D fields, as partials that merge across time steps by addition.

`FieldSums.from_fields(x, x_hat, mask)` takes one time step, `(feature, lat, lon)` original,
reconstruction and mask (valid = mask != 0 and x finite), and computes per feature:

- the DSSIM of Baker, Hammerling and Turton (2022) as ldcpy implements it (`ssim_value_fp_fast`,
  the default 'ssim_fp' calc of NCAR/ldcpy `ldcpy/calcs.py`, commit 6c5bcb8), kept as a sum over
  fields and a field count;
- the lag-1 spatial autocorrelation of the error, as pooled co-moments of adjacent error pairs;
- radially binned power spectra of original and reconstruction on fixed wavenumber bins.

`finalize(features)` turns merged partials into per-feature lists; `acceptance` applies the
community thresholds (Pearson r, DSSIM, relative error share) to the finalized metrics.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from satflow.stats import pairwise_weights

DSSIM_SIGMA = 1.5  # ldcpy: Gaussian2DKernel(x_stddev=1.5)
DSSIM_RADIUS = 5  # ldcpy: an 11 x 11 kernel (xsize = ysize = 11), and crop(ssim_mat, 5)
DSSIM_C = 1e-8  # ldcpy: C1 = C2 = 1e-8 on data scaled to [0, 1]
DSSIM_LEVELS = 255  # ldcpy: quantise the scaled data to 256 levels
SPECTRUM_BINS = 32
SPECTRUM_EDGES = np.linspace(0.0, 0.5, SPECTRUM_BINS + 1)  # cycles per grid spacing, up to Nyquist
WAVENUMBERS = 0.5 * (SPECTRUM_EDGES[:-1] + SPECTRUM_EDGES[1:])

ACCEPTANCE_THRESHOLDS = {
    "pearson_r": 0.99999,  # at least
    "dssim": 0.995,  # at least
    "rel_error_exceed_share": 0.05,  # at most this share of points ...
    "rel_threshold": 1e-4,  # ... with a relative error above this
}


def _gaussian_kernel() -> np.ndarray:
    """ldcpy's 1-D Gaussian weights at integer offsets -5..5 (the 2-D kernel is their outer product)."""
    offsets = np.arange(-DSSIM_RADIUS, DSSIM_RADIUS + 1, dtype=np.float64)
    weights = np.exp(-(offsets**2) / (2 * DSSIM_SIGMA**2))
    return weights / weights.sum()


_KERNEL = _gaussian_kernel()


def dssim_field(x: np.ndarray, x_hat: np.ndarray, valid: np.ndarray) -> float:
    """DSSIM of one 2-D field (Baker et al. 2022; ldcpy `ssim_value_fp_fast`).

    a1, a2 = original and reconstruction, NaN off `valid` (and where the reconstruction is not finite);
    both scaled by their joint range to [0, 1] and rounded to multiples of 1/255. With G the Gaussian
    mean (sigma 1.5, 11 x 11 window, NaN left out): mu_i = G(a_i), var_i = G(a_i^2) - mu_i^2,
    cov = G(a1 a2) - mu1 mu2, and per point
        ssim = (2 mu1 mu2 + C) / (mu1^2 + mu2^2 + C) * (2 cov + C) / (var1 + var2 + C),  C = 1e-8.
    DSSIM is the mean of ssim over points at least 5 from every edge where a1 and a2 are not NaN.
    NaN when there is no such point (a field smaller than 11 x 11, or all invalid).
    """
    x, x_hat = np.asarray(x, dtype=np.float64), np.asarray(x_hat, dtype=np.float64)
    if min(x.shape) <= 2 * DSSIM_RADIUS:
        return float("nan")
    from satflow.eval.field_kernels import gaussian_moments, scaled_pair, ssim_map  # numba: in the tasks only

    a1, a2, same_finite, any_finite = scaled_pair(x, x_hat, np.asarray(valid, dtype=bool), float(DSSIM_LEVELS))
    if not any_finite:
        return float("nan")
    # astropy's convolve(..., nan_treatment='interpolate'), which ldcpy uses: a Gaussian mean over the
    # window with NaN points left out and the weights renormalised; the boundary fill only touches
    # the border ldcpy crops away, so only interior points are computed.
    with np.errstate(invalid="ignore", divide="ignore"):
        ssim = ssim_map(gaussian_moments(a1, a2, _KERNEL, same_finite), DSSIM_C)
    r = DSSIM_RADIUS
    kept = np.isfinite(a1[r:-r, r:-r]) & np.isfinite(a2[r:-r, r:-r])  # astropy's preserve_nan
    return float(ssim[kept].mean()) if kept.any() else float("nan")


def _radial_power(fields: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per field of a (n, lat, lon) stack: power |FFT|^2 / n_cells summed per wavenumber bin, and the
    number of modes per bin.

    The radial wavenumber is sqrt(kx^2 + ky^2) in cycles per grid spacing; the zero mode and modes
    beyond 0.5 (the corners past Nyquist) are left out, 0.5 itself falls in the last bin. Real
    fields have Hermitian spectra, so a real FFT's half plane is enough: each of its modes stands
    for itself and its mirror (weight 2) except the columns that are their own mirror.
    """
    import scipy.fft

    shape = fields.shape[1:]
    kept, bins, weights = _wavenumber_bins(shape)
    power = np.abs(scipy.fft.rfft2(fields, axes=(-2, -1))) ** 2 / (shape[0] * shape[1])
    summed = np.stack([np.bincount(bins, weights=p[kept] * weights, minlength=SPECTRUM_BINS) for p in power])
    return summed, _mode_counts(shape)


@functools.lru_cache(maxsize=8)
def _wavenumber_bins(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of a real FFT's half plane: which modes are binned (0 < k <= 0.5), their bin and their weight
    (2 for a mode that also stands for its mirror, 1 for the self-mirrored columns kx = 0 and Nyquist)."""
    ky, kx = np.meshgrid(np.fft.fftfreq(shape[0]), np.fft.rfftfreq(shape[1]), indexing="ij")
    k = np.hypot(ky, kx)
    kept = (k > 0) & (k <= 0.5)
    column = np.broadcast_to(np.arange(kx.shape[1]), kx.shape)
    self_mirrored = (column == 0) | ((shape[1] % 2 == 0) & (column == kx.shape[1] - 1))
    weights = np.where(self_mirrored, 1.0, 2.0)[kept]
    return kept, np.minimum((k[kept] / 0.5 * SPECTRUM_BINS).astype(np.int64), SPECTRUM_BINS - 1), weights


@functools.lru_cache(maxsize=8)
def _mode_counts(shape: tuple[int, int]) -> np.ndarray:
    """Fourier modes of the full plane in each bin (the same for every field of a shape)."""
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1]), indexing="ij"))
    kept = (k > 0) & (k <= 0.5)
    return np.bincount(np.minimum((k[kept] / 0.5 * SPECTRUM_BINS).astype(np.int64), SPECTRUM_BINS - 1),
                       minlength=SPECTRUM_BINS)


def _anomaly(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The field minus its mean over valid points, 0 (the mean, removed) off them."""
    return np.where(valid, values - values[valid].mean(), 0.0)


@dataclass(frozen=True)
class FieldSums:
    """Per-feature partials of whole-field metrics; every member adds up (or pairwise-merges) exactly."""

    dssim_sum: np.ndarray  # (feature,) sum over fields with a DSSIM
    dssim_fields: np.ndarray  # (feature,) number of those fields
    pairs: np.ndarray  # (feature,) adjacent valid pairs (e_i, e_j)
    mean_a: np.ndarray  # mean of e_i over pairs
    mean_b: np.ndarray  # mean of e_j over pairs
    m2_a: np.ndarray  # sum of (e_i - mean_a)^2
    m2_b: np.ndarray
    c_ab: np.ndarray  # sum of (e_i - mean_a)(e_j - mean_b)
    power_x: np.ndarray  # (feature, SPECTRUM_BINS) summed power of the original
    power_y: np.ndarray  # (feature, SPECTRUM_BINS) summed power of the reconstruction
    modes: np.ndarray  # (feature, SPECTRUM_BINS) Fourier modes summed into each bin

    @classmethod
    def empty(cls, n_features: int) -> FieldSums:
        """The neutral partial."""
        zeros, counts = np.zeros(n_features), np.zeros(n_features, np.int64)
        spectrum = np.zeros((n_features, SPECTRUM_BINS))
        return cls(zeros, counts, counts, zeros, zeros, zeros, zeros, zeros, spectrum, spectrum,
                   np.zeros((n_features, SPECTRUM_BINS), np.int64))

    @classmethod
    def from_fields(cls, x: np.ndarray, x_hat: np.ndarray, mask: np.ndarray | None = None) -> FieldSums:
        """Partials of one time step: `(feature, lat, lon)` arrays; valid = mask != 0 and x finite."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(x_hat, dtype=np.float64)
        if x.ndim != 3 or x.shape != y.shape:
            raise ValueError(f"FieldSums needs (feature, lat, lon) original and reconstruction of one shape, "
                             f"got {x.shape} and {y.shape}")
        valid = np.isfinite(x)
        if mask is not None:
            valid &= np.asarray(mask).reshape(x.shape) != 0
        dssim = np.array([dssim_field(x[f], y[f], valid[f]) for f in range(x.shape[0])])
        has_dssim = np.isfinite(dssim)
        return cls(np.where(has_dssim, dssim, 0.0), has_dssim.astype(np.int64),
                   *cls._error_pair_moments(np.where(valid, y - x, 0.0), valid), *cls._spectra(x, y, valid))

    @staticmethod
    def _error_pair_moments(error: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per feature: count, means, squared deviations and co-moment of the adjacent error pairs."""
        from satflow.eval.field_kernels import adjacent_pair_sums

        moments = np.array([adjacent_pair_sums(error[f], valid[f]) for f in range(error.shape[0])],
                           dtype=np.float64).reshape(-1, 6)
        return (moments[:, 0].astype(np.int64), *moments[:, 1:].T.copy())

    @staticmethod
    def _spectra(x: np.ndarray, y: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Binned power of original and reconstruction anomalies; a field without valid points adds nothing."""
        n_features = x.shape[0]
        power_x, power_y = np.zeros((n_features, SPECTRUM_BINS)), np.zeros((n_features, SPECTRUM_BINS))
        modes = np.zeros((n_features, SPECTRUM_BINS), np.int64)
        some = [f for f in range(n_features) if valid[f].any()]
        if some:  # one batched FFT of every anomaly, original and reconstruction
            anomalies = np.stack([_anomaly(x[f], valid[f]) for f in some] + [_anomaly(y[f], valid[f]) for f in some])
            power, counts = _radial_power(anomalies)
            power_x[some], power_y[some], modes[some] = power[:len(some)], power[len(some):], counts
        return power_x, power_y, modes

    def merge(self, other: FieldSums) -> FieldSums:
        """Exact combination: sums add; pair co-moments merge with the Chan et al. pairwise update."""
        n, weight, cross = pairwise_weights(self.pairs, other.pairs)
        da, db = other.mean_a - self.mean_a, other.mean_b - self.mean_b
        return FieldSums(
            dssim_sum=self.dssim_sum + other.dssim_sum,
            dssim_fields=self.dssim_fields + other.dssim_fields,
            pairs=n,
            mean_a=self.mean_a + da * weight,
            mean_b=self.mean_b + db * weight,
            m2_a=self.m2_a + other.m2_a + da * da * cross,
            m2_b=self.m2_b + other.m2_b + db * db * cross,
            c_ab=self.c_ab + other.c_ab + da * db * cross,
            power_x=self.power_x + other.power_x,
            power_y=self.power_y + other.power_y,
            modes=self.modes + other.modes,
        )

    def finalize(self, features: Sequence[str] | None = None) -> dict:
        """Plain JSON-able metrics: {"features", "wavenumber", "per_feature": {name: list per feature}}.

        dssim: mean DSSIM over the fields that have one (NaN if none); dssim_fields: how many.
        error_lag1_autocorr: Pearson correlation of adjacent error pairs (e_i, e_j), pooled over
        horizontal and vertical neighbours, both valid (Z-checker's autocorrelation of compression
        errors at lag 1, Tao et al. 2019; ldcpy's lag-1 correlation taken in space):
            r = sum (e_i - mean_i)(e_j - mean_j) / sqrt(sum (e_i - mean_i)^2 sum (e_j - mean_j)^2).
        spectral_ratio: per wavenumber bin, summed power of the reconstruction over that of the
        original (1 = same spectrum; NaN where the original has no power); power_original and
        power_reconstruction: mean power per Fourier mode in each bin; wavenumber: bin centres in
        cycles per grid spacing (0..0.5).
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            dssim = np.where(self.dssim_fields > 0, self.dssim_sum / np.maximum(self.dssim_fields, 1), np.nan)
            lag1 = np.where(self.pairs > 0, self.c_ab / np.sqrt(self.m2_a * self.m2_b), np.nan)
            ratio = np.where(self.power_x > 0, self.power_y / self.power_x, np.nan)
            mean_power_x = self.power_x / np.where(self.modes > 0, self.modes, np.nan)
            mean_power_y = self.power_y / np.where(self.modes > 0, self.modes, np.nan)
        return {
            "features": list(features) if features is not None else list(range(self.dssim_sum.size)),
            "wavenumber": WAVENUMBERS.tolist(),
            "per_feature": {
                "dssim": [float(v) for v in dssim],
                "dssim_fields": self.dssim_fields.tolist(),
                "error_lag1_autocorr": [float(v) for v in lag1],
                "spectral_ratio": ratio.tolist(),
                "power_original": mean_power_x.tolist(),
                "power_reconstruction": mean_power_y.tolist(),
            },
        }


def acceptance(error_metrics: Mapping, field_metrics: Mapping, thresholds: Mapping | None = None) -> dict:
    """Community pass/fail per feature from `ErrorSums.finalize` and `FieldSums.finalize` outputs.

    pearson: pearson_r >= 0.99999; dssim: dssim >= 0.995; rel_error: rel_error_exceed_share <= 0.05
    (relative error > 1e-4; the ErrorSums must have been made with that rel_threshold); pass: all three.
    A NaN metric (no valid point, a constant field's Pearson r) fails its test.
    """
    limits = {**ACCEPTANCE_THRESHOLDS, **(thresholds or {})}
    if error_metrics.get("rel_threshold") != limits["rel_threshold"]:
        raise ValueError(f"relative errors were counted above {error_metrics.get('rel_threshold')}, the acceptance "
                         f"test needs {limits['rel_threshold']}: make ErrorSums with rel_threshold={limits['rel_threshold']}")
    errors, fields = error_metrics["per_feature"], field_metrics["per_feature"]
    pearson = [bool(r >= limits["pearson_r"]) for r in errors["pearson_r"]]
    dssim = [bool(d >= limits["dssim"]) for d in fields["dssim"]]
    rel_error = [bool(s <= limits["rel_error_exceed_share"]) for s in errors["rel_error_exceed_share"]]
    if not len(pearson) == len(dssim) == len(rel_error):
        raise ValueError(f"error metrics have {len(pearson)} features, field metrics {len(dssim)}")
    return {
        "pearson": pearson,
        "dssim": dssim,
        "rel_error": rel_error,
        "pass": [p and d and r for p, d, r in zip(pearson, dssim, rel_error)],
        "thresholds": limits,
    }
