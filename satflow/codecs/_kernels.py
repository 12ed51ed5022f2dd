"""Compiled loops of the error-bounded coder (numba): the closed-loop linear prediction and an exact sum.

They repeat `satflow.codecs.prediction`'s numpy reference bit for bit, so streams do not change:
every prediction is the same float64 operations in the same order (constant, then each term's
product added in coefficient order; numba without fastmath neither reassociates nor fuses a
multiply and an add), and nothing runs in parallel. `cache=True` compiles once per machine (the
cache lives next to this file, or in NUMBA_CACHE_DIR).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _wrap(j: int, width: int) -> int:
    if j < 0:
        return j + width
    if j >= width:
        return j - width
    return j


@njit(cache=True)
def split_columns(planes):
    """(F, H, W) -> (F, 2, H, ceil(W / 2)): even columns, then odd ones, so that a point's
    neighbours of one parity sit side by side (contiguous, vectorised loads)."""
    n, height, width = planes.shape
    halves = np.zeros((n, 2, height, (width + 1) // 2))
    for g in range(n):
        for i in range(height):
            for j in range(width):
                halves[g, j % 2, i, j // 2] = planes[g, i, j]
    return halves


@njit(cache=True)
def join_columns(halves, width):
    n, _, height, _ = halves.shape
    planes = np.empty((n, height, width))
    for g in range(n):
        for i in range(height):
            for j in range(width):
                planes[g, i, j] = halves[g, j % 2, i, j // 2]
    return planes


@njit(cache=True, inline="always")
def _add_shifted(acc, n, source, r, parity, left, weight, width):
    """acc[jj] += weight * source row r at column parity + 2 jj - left (wrapped), the row held as
    its even and odd halves (source[0, r], source[1, r]). Inlined: it runs ~50 times a row."""
    source_parity = (parity - left) & 1
    shift = (parity - left - source_parity) >> 1  # an even number halved: exact
    src = source[source_parity, r]
    size = (width - source_parity + 1) // 2
    lo, hi = min(n, max(0, -shift)), max(0, min(n, size - shift))
    lo = min(lo, hi)
    inner, shifted = acc[lo:hi], src[lo + shift : hi + shift]
    for k in range(hi - lo):  # away from the edges: one half at a constant offset, vectorised
        inner[k] += weight * shifted[k]
    for jj in range(0, lo):
        acc[jj] += weight * _at(source, r, _wrap(parity + 2 * jj - left, width))
    for jj in range(hi, n):
        acc[jj] += weight * _at(source, r, _wrap(parity + 2 * jj - left, width))


@njit(cache=True, inline="always")
def _at(source, r, column):
    return source[column % 2, r, column // 2]


@njit(cache=True)
def linear_loop(x_hat, valid, weights, starts, around, row_offsets, n_earlier, step, x, q, encoding):
    """The closed loop of `prediction.run` for `LinearPredictor` coefficients.

    x_hat: (F, H, W) float64 from `finite_fill`; weights: all coefficients as float64, those of
    (feature f, parity p) from starts[2 f + p]; around, row_offsets: (n, 2) arrays of (rows up,
    columns left); parity-0 points use the row offsets without the last two (BESIDE). Encoding
    (x given) fills q; decoding reads it. Returns the reconstruction (float64). Each point sums
    its terms in coefficient order, a row (and parity) at a time.
    """
    n_features, height, width = x_hat.shape
    hat = split_columns(x_hat)
    rec = hat.copy()
    acc = np.empty((width + 1) // 2)
    for f in range(n_features):
        first = max(0, f - n_earlier)
        for i in range(height):
            for parity in range(2):
                n = (width - parity + 1) // 2
                c = starts[2 * f + parity]
                acc[:n] = weights[c]
                k = c + 1
                for g in range(first - 1, f):  # first - 1 stands for x_hat of f itself, the first terms
                    source = hat[f] if g < first else rec[g]
                    for o in range(around.shape[0]):
                        r = min(max(i - around[o, 0], 0), height - 1)
                        _add_shifted(acc, n, source, r, parity, around[o, 1], weights[k], width)
                        k += 1
                for t in range(row_offsets.shape[0] - (0 if parity else 2)):
                    r = i - row_offsets[t, 0]
                    source = rec[f] if r >= 0 else hat[f]
                    r = max(r, 0)  # rows above the block read x_hat's first row
                    _add_shifted(acc, n, source, r, parity, row_offsets[t, 1], weights[k], width)
                    k += 1
                _close_row(f, i, parity, n, acc, rec, hat, valid, step[f], x, q, encoding)
    return join_columns(rec, width)


@njit(cache=True)
def _close_row(f, i, parity, n, acc, rec, hat, valid, step, x, q, encoding):
    """Quantise (encoding) and reconstruct one row's columns of one parity."""
    for jj in range(n):
        j = parity + 2 * jj
        value = acc[jj]
        if not np.isfinite(value):
            value = hat[f, parity, i, jj]
        if encoding:
            q[f, i, j] = _quantise(np.float64(x[f, i, j]), value, step, valid[f, i, j])
        rec[f, parity, i, jj] = value + q[f, i, j] * step


@njit(cache=True)
def _quantise(x, prediction, step, valid):
    """`prediction._quantise` at one point: 0 where invalid or not worth coding."""
    error = (x - prediction) / step
    if valid and np.isfinite(error) and abs(error) < 2.0**40:
        return np.int64(np.rint(error))
    return np.int64(0)


@njit(cache=True)
def float32_exponent_sums(values):
    """Exact sum of float32 values as int64 sums of their 24-bit significands per binary exponent:
    sums[e] * 2**(e - 149). Exact while there are fewer than 2**39 values."""
    sums = np.zeros(256, np.int64)
    bits = values.view(np.uint32)
    for k in range(bits.size):
        b = bits[k]
        exponent = (b >> 23) & 0xFF
        significand = np.int64(b & 0x7FFFFF)
        if exponent:
            significand += 0x800000
        else:
            exponent = 1  # subnormals share the smallest exponent
        sums[exponent - 1] += -significand if b >> 31 else significand
    return sums


@njit(cache=True)
def float32_exponent_sums_where(values, usable):
    """`float32_exponent_sums` of each feature's usable points: (F, 256) int64."""
    n_features = values.shape[0]
    sums = np.zeros((n_features, 256), np.int64)
    for f in range(n_features):
        sums[f] = float32_exponent_sums(values[f].ravel()[usable[f].ravel()])
    return sums


@njit(cache=True)
def noisy_inputs(x, valid, noise, eps, x_hat):
    """`prediction.fit`'s inputs: x (NaN and inf read 0) + noise * eps where valid, x_hat elsewhere."""
    out = np.empty(x_hat.shape)
    n_features, height, width = x_hat.shape
    for f in range(n_features):
        for i in range(height):
            for j in range(width):
                value = np.float64(x[f, i, j])
                if not np.isfinite(value):
                    value = 0.0
                disturbed = value + noise[f, i, j] * eps[f]
                out[f, i, j] = disturbed if valid[f, i, j] else x_hat[f, i, j]
    return out


@njit(cache=True)
def gather_design(own, earlier, noisy_own, top, rows, columns, around, row_offsets, n_row, design):
    """The least-squares design of `prediction.fit`, column by column in coefficient order: own
    (x_hat) around each point, each earlier feature around it, the first n_row row offsets of the
    noisy feature itself (rows above the block read `top`). Copies only: exact."""
    height, width = own.shape
    k = 0
    for g in range(-1, earlier.shape[0]):  # a plane at a time: one array view each, not one a point
        source = own if g < 0 else earlier[g]
        for o in range(around.shape[0]):
            up, left = around[o, 0], around[o, 1]
            for p in range(rows.size):
                design[p, k] = source[min(max(rows[p] - up, 0), height - 1), (columns[p] - left) % width]
            k += 1
    for t in range(n_row):
        up, left = row_offsets[t, 0], row_offsets[t, 1]
        for p in range(rows.size):
            r, c = rows[p] - up, (columns[p] - left) % width
            design[p, k] = noisy_own[r, c] if r >= 0 else top[c]
        k += 1


@njit(cache=True)
def static_planes(coded, valid, first, f, top, stop, around, row_offsets, n_beside, noise, one):
    """The learned context's inputs known before feature f is coded, rows top..stop-1, one plane a
    row of the result (n_planes, points): earlier features' fixed-point values around each point,
    their validity (one or 0), the validity of f's row terms (rows above the block invalid; the
    last n_beside only at odd columns), parity, noise. Copies and 0/one flags: exact."""
    _, height, width = valid.shape
    n_earlier, n_around, n_row = f - first, around.shape[0], row_offsets.shape[0]
    n_planes = 2 * n_earlier * n_around + n_row + 2
    out = np.empty((n_planes, (stop - top) * width))
    for g in range(first, f):
        for o in range(n_around):
            values, flags = out[(g - first) * n_around + o], out[(n_earlier + g - first) * n_around + o]
            for i in range(top, stop):
                r = min(max(i - around[o, 0], 0), height - 1)
                for j in range(width):
                    c = (j - around[o, 1]) % width
                    values[(i - top) * width + j] = coded[g, r, c]
                    flags[(i - top) * width + j] = one if valid[g, r, c] else 0.0
    for t in range(n_row):
        plane = out[2 * n_earlier * n_around + t]
        for i in range(top, stop):
            r = i - row_offsets[t, 0]
            for j in range(width):
                seen = r >= 0 and valid[f, max(r, 0), (j - row_offsets[t, 1]) % width]
                if t >= n_row - n_beside:
                    seen = seen and j % 2 == 1
                plane[(i - top) * width + j] = one if seen else 0.0
    for i in range(top, stop):
        for j in range(width):
            out[n_planes - 2, (i - top) * width + j] = one * (j % 2)
            out[n_planes - 1, (i - top) * width + j] = noise
    return out


@njit(cache=True)
def fixed_inputs(values, valid, mean, std, one, limit):
    """The learned context's `_quantise` of a 2-D array: rint((v - mean) / std * one), NaN read 0,
    clipped to +-limit, 0 where invalid; the same operations as the numpy reference, elementwise."""
    out = np.zeros(values.shape)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if valid[i, j]:
                scaled = np.rint((values[i, j] - mean) / std * one)
                if np.isnan(scaled):
                    scaled = 0.0
                out[i, j] = min(max(scaled, -limit), limit)
    return out
