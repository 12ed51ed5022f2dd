"""Compiled inner loops of the whole-field metrics (satflow.eval.fields), float64 throughout.

`gaussian_moments` is the separable 11 x 11 Gaussian of ldcpy's DSSIM applied, in one pass over a
field, to everything DSSIM filters: the finite indicators of both fields and of both together, the
two fields (NaN as 0), their squares and their product. It keeps only interior points (5 or more
from every edge: ldcpy crops the rest), filters down the columns first and then along the rows,
like the NumPy version it replaces, so the sums differ from it by rounding only (1e-15 relative).
"""

from __future__ import annotations

import numba
import numpy as np

N_MOMENTS = 8  # finite1, finite2, finite12, a1, a2, a1*a1, a2*a2, a1*a2


@numba.njit(cache=True, nogil=True, error_model="numpy")
def gaussian_moments(a1: np.ndarray, a2: np.ndarray, kernel: np.ndarray, same_finite: bool) -> np.ndarray:
    """(N_MOMENTS, ny - 2r, nx - 2r) Gaussian sums at the interior points; NaN cells count as absent.

    Output row by output row: its column sums go to a small buffer (cache-resident), which the row
    pass then filters, so no full-size intermediate is written. `same_finite` (both fields finite
    at the same cells, the usual case): the three indicator sums are one, computed once."""
    ny, nx = a1.shape
    width = kernel.size
    my, mx = ny - width + 1, nx - width + 1
    out = np.empty((N_MOMENTS, my, mx))
    columns = np.empty((N_MOMENTS, nx))
    for i in range(my):
        columns[:] = 0.0
        for t in range(width):
            k = kernel[t]
            for j in range(nx):
                v1, v2 = a1[i + t, j], a2[i + t, j]
                f1, f2 = v1 == v1, v2 == v2
                z1 = v1 if f1 else 0.0
                z2 = v2 if f2 else 0.0
                columns[0, j] += k * f1
                if not same_finite:
                    columns[1, j] += k * f2
                    columns[2, j] += k * (f1 and f2)
                columns[3, j] += k * z1
                columns[4, j] += k * z2
                columns[5, j] += k * (z1 * z1)
                columns[6, j] += k * (z2 * z2)
                columns[7, j] += k * (z1 * z2)
        for q in range(N_MOMENTS):
            if same_finite and (q == 1 or q == 2):
                continue
            for j in range(mx):
                acc = 0.0
                for t in range(width):
                    acc += kernel[t] * columns[q, j + t]
                out[q, i, j] = acc
        if same_finite:
            out[1, i, :] = out[0, i, :]
            out[2, i, :] = out[0, i, :]
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def ssim_map(moments: np.ndarray, c: float) -> np.ndarray:
    """Per interior point, ldcpy's SSIM from the Gaussian moments (NaN-renormalised means)."""
    _, my, mx = moments.shape
    out = np.empty((my, mx))
    for i in range(my):
        for j in range(mx):
            w1, w2, w12 = moments[0, i, j], moments[1, i, j], moments[2, i, j]
            mu1, mu2 = moments[3, i, j] / w1, moments[4, i, j] / w2
            var1 = moments[5, i, j] / w1 - mu1 * mu1
            var2 = moments[6, i, j] / w2 - mu2 * mu2
            cov = moments[7, i, j] / w12 - mu1 * mu2
            out[i, j] = (2 * mu1 * mu2 + c) / (mu1 * mu1 + mu2 * mu2 + c) * (2 * cov + c) / (var1 + var2 + c)
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def adjacent_pair_sums(error: np.ndarray, valid: np.ndarray) -> tuple:
    """Count, means, squared deviations and co-moment of (e_i, e_j) over every valid pair of horizontal
    (j right of i) and vertical (j below i) neighbours; two passes, as `_pair_moments` does."""
    ny, nx = error.shape
    n = 0
    sum_a = 0.0
    sum_b = 0.0
    for i in range(ny):
        for j in range(nx):
            if not valid[i, j]:
                continue
            if j + 1 < nx and valid[i, j + 1]:
                n += 1
                sum_a += error[i, j]
                sum_b += error[i, j + 1]
            if i + 1 < ny and valid[i + 1, j]:
                n += 1
                sum_a += error[i, j]
                sum_b += error[i + 1, j]
    if n == 0:
        return 0, 0.0, 0.0, 0.0, 0.0, 0.0
    mean_a, mean_b = sum_a / n, sum_b / n
    m2_a = 0.0
    m2_b = 0.0
    c_ab = 0.0
    for i in range(ny):
        for j in range(nx):
            if not valid[i, j]:
                continue
            da = error[i, j] - mean_a
            if j + 1 < nx and valid[i, j + 1]:
                db = error[i, j + 1] - mean_b
                m2_a += da * da
                m2_b += db * db
                c_ab += da * db
            if i + 1 < ny and valid[i + 1, j]:
                db = error[i + 1, j] - mean_b
                m2_a += da * da
                m2_b += db * db
                c_ab += da * db
    return n, mean_a, mean_b, m2_a, m2_b, c_ab
