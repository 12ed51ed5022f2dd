"""Compiled loops of the error-bounded coder (numba): closed-loop prediction, fit, exact sums, rANS.

- The closed loop repeats `satflow.codecs.prediction`'s numpy reference bit for bit: every
  prediction is the same float64 operations in the same order (constant, then each term's product
  added in coefficient order; numba without fastmath neither reassociates nor fuses a multiply and
  an add); only the memory layout differs (padded column halves, terms summed along a row).
- The least-squares fit sums its normal equations in a fixed order and solves them by Cholesky
  (no BLAS), so the coefficients are the same on every machine and thread count.
- The learned context's loop (`context_closed_loop`) predicts a row of one feature and column parity
  at once: layers 1 and 2 are BLAS products over those points, exact because they sum integers
  held exactly in float64 (`learned.context._check_bounds`), in any order or blocking.
- The residual symbols of stream versions 2 to 5 are rANS-coded with integer arithmetic only; version
  3 picks each point's model by a context of the q decoded next to it (`_context`); version 5 runs
  several interleaved states, one per band of rows (`rans_encode_lanes`).
Nothing runs in parallel. `cache=True` compiles once per machine (the cache lives next to this
file, or in NUMBA_CACHE_DIR).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _padded_halves(plane, halves):
    """(H, W) -> halves (2, H, ceil(W / 2) + 3): even columns, then odd ones, each with one column
    before and two after holding the columns they wrap to (longitudes are periodic). Half p's entry
    m sits at index m + 1 and is column (p + 2 m) mod W, so a point's neighbours of one parity are a
    contiguous run at a constant offset, edges included: the loop below never branches on them."""
    height, width = plane.shape
    for i in range(height):
        for j in range(width):
            halves[j & 1, i, (j >> 1) + 1] = plane[i, j]
        _refresh_pads(halves, i, width)


@njit(cache=True, inline="always")
def _refresh_pads(halves, i, width):
    """Copy row i's wrapped columns into its pad entries after the row changed."""
    last = halves.shape[2] - 2  # the largest m
    for p in range(2):
        size = (width - p + 1) // 2
        for m in range(-1, last + 1):
            if m < 0 or m >= size:
                c = (p + 2 * m) % width
                halves[p, i, m + 1] = halves[c & 1, i, (c >> 1) + 1]


@njit(cache=True, inline="always")
def _row_terms(f, i, parity, first, plane, height, stride, around, row_offsets, weights, c, term_starts, term_weights):
    """Where each prediction term of row i (one column parity) of feature f starts in `flat`, and its
    weight: x_hat of f and the earlier features around the point, then the decoded row neighbours.
    Used through `_predict_row`."""
    t = 0
    for g in range(first - 1, f):  # first - 1 stands for x_hat of f itself, the first terms
        at = 0 if g < first else (g + 1) * plane
        for o in range(around.shape[0]):
            r = min(max(i - around[o, 0], 0), height - 1)
            sp = (parity - around[o, 1]) & 1
            base = ((parity - around[o, 1] - sp) >> 1) + 1
            term_starts[t], term_weights[t] = at + (sp * height + r) * stride + base, weights[c + 1 + t]
            t += 1
    for o in range(row_offsets.shape[0] - (0 if parity else 2)):
        r = i - row_offsets[o, 0]
        sp = (parity - row_offsets[o, 1]) & 1
        base = ((parity - row_offsets[o, 1] - sp) >> 1) + 1
        # rows above the block read x_hat's first row
        at = (f + 1) * plane + (sp * height + r) * stride if r >= 0 else sp * height * stride
        term_starts[t], term_weights[t] = at + base, weights[c + 1 + t]
        t += 1
    return t


@njit(cache=True, inline="always")
def _predict_row(acc, flat, f, i, parity, first, plane, height, width, stride, around, row_offsets, weights, starts,
                 term_starts, term_weights):
    """acc[:n] = the closed loop's predictions of row i (one column parity) of feature f: its constant,
    then each term in coefficient order. Returns n, the row's columns of that parity. The encoder's
    loop and the one-pass decoder both predict through here, so they predict the same bits."""
    n = (width - parity + 1) // 2
    c = starts[2 * f + parity]
    acc[:n] = weights[c]
    t = _row_terms(f, i, parity, first, plane, height, stride, around, row_offsets, weights, c, term_starts,
                   term_weights)
    _sum_terms(acc, n, flat, term_starts, term_weights, t)
    return n


@njit(cache=True)
def _sum_terms(acc, n, flat, term_starts, term_weights, n_terms):
    """acc[jj] += w_t * flat[start_t + jj] for each term t in order: every point of a row and parity.

    Slices of a 1-D contiguous array (indices known non-negative) so the loops run on vector
    registers; eight (then four) terms a pass, added one after another: the same order as one at a
    time.
    """
    a = acc[:n]
    t = 0
    while t + 8 <= n_terms:
        s1 = flat[term_starts[t] : term_starts[t] + n]
        s2 = flat[term_starts[t + 1] : term_starts[t + 1] + n]
        s3 = flat[term_starts[t + 2] : term_starts[t + 2] + n]
        s4 = flat[term_starts[t + 3] : term_starts[t + 3] + n]
        s5 = flat[term_starts[t + 4] : term_starts[t + 4] + n]
        s6 = flat[term_starts[t + 5] : term_starts[t + 5] + n]
        s7 = flat[term_starts[t + 6] : term_starts[t + 6] + n]
        s8 = flat[term_starts[t + 7] : term_starts[t + 7] + n]
        w1, w2, w3, w4 = term_weights[t], term_weights[t + 1], term_weights[t + 2], term_weights[t + 3]
        w5, w6, w7, w8 = term_weights[t + 4], term_weights[t + 5], term_weights[t + 6], term_weights[t + 7]
        for k in range(a.size):
            a[k] = (((((((a[k] + w1 * s1[k]) + w2 * s2[k]) + w3 * s3[k]) + w4 * s4[k]) + w5 * s5[k]) + w6 * s6[k])
                    + w7 * s7[k]) + w8 * s8[k]
        t += 8
    while t + 4 <= n_terms:
        s1 = flat[term_starts[t] : term_starts[t] + n]
        s2 = flat[term_starts[t + 1] : term_starts[t + 1] + n]
        s3 = flat[term_starts[t + 2] : term_starts[t + 2] + n]
        s4 = flat[term_starts[t + 3] : term_starts[t + 3] + n]
        w1, w2, w3, w4 = term_weights[t], term_weights[t + 1], term_weights[t + 2], term_weights[t + 3]
        for k in range(a.size):
            a[k] = (((a[k] + w1 * s1[k]) + w2 * s2[k]) + w3 * s3[k]) + w4 * s4[k]
        t += 4
    while t < n_terms:
        s1 = flat[term_starts[t] : term_starts[t] + n]
        w1 = term_weights[t]
        for k in range(a.size):
            a[k] += w1 * s1[k]
        t += 1


@njit(cache=True)
def linear_loop(x_hat, valid, weights, starts, around, row_offsets, n_earlier, step, x, q, encoding):
    """The closed loop of `prediction.run` for `LinearPredictor` coefficients.

    x_hat: (F, H, W) float64 from `finite_fill`; weights: all coefficients as float64, those of
    (feature f, parity p) from starts[2 f + p]; around, row_offsets: (n, 2) arrays of (rows up,
    columns left); parity-0 points use the row offsets without the last two (BESIDE). Encoding
    (x given) fills q; decoding reads it. Returns the reconstruction (float64). Each point sums
    its terms in coefficient order, a row (and parity) at a time, elementwise along the row: the
    same operations in the same order as the reference, so the same bits.

    Working layout: one flat buffer holding x_hat of the feature being coded, then the
    reconstruction of every feature, as padded halves (`_padded_halves`). Entries not yet
    reconstructed are never read, so the reconstruction starts uninitialised.
    """
    n_features, height, width = x_hat.shape
    stride = (width + 1) // 2 + 3
    plane = 2 * height * stride
    flat = np.empty((n_features + 1) * plane)  # [x_hat of f | rec of feature 0 | rec of 1 | ...]
    hat = flat[:plane].reshape((2, height, stride))
    out = np.empty((n_features, height, width))
    acc = np.empty((width + 1) // 2)
    most = 1 + around.shape[0] * (n_earlier + 1) + row_offsets.shape[0]
    term_starts, term_weights = np.empty(most, np.int64), np.empty(most)
    for f in range(n_features):
        _padded_halves(x_hat[f], hat)
        rec = flat[(f + 1) * plane : (f + 2) * plane].reshape((2, height, stride))
        first = max(0, f - n_earlier)
        for i in range(height):
            for parity in range(2):
                n = _predict_row(acc, flat, f, i, parity, first, plane, height, width, stride, around, row_offsets,
                                 weights, starts, term_starts, term_weights)
                _close_row(f, i, parity, n, acc, rec, hat, valid, step[f], x, q, encoding, out)
                _refresh_pads(rec, i, width)
    return out


@njit(cache=True)
def _close_row(f, i, parity, n, acc, rec, hat, valid, step, x, q, encoding, out):
    """Quantise (encoding) and reconstruct one row's columns of one parity."""
    for jj in range(n):
        j = parity + 2 * jj
        value = acc[jj]
        if not np.isfinite(value):
            value = hat[parity, i, jj + 1]
        if encoding:
            q[f, i, j] = _quantise(np.float64(x[f, i, j]), value, step, valid[f, i, j])
        rec[parity, i, jj + 1] = out[f, i, j] = value + q[f, i, j] * step


@njit(cache=True)
def _quantise(x, prediction, step, valid):
    """`prediction._quantise` at one point: 0 where invalid or not worth coding."""
    error = (x - prediction) / step
    if valid and np.isfinite(error) and abs(error) < 2.0**40:
        return np.int64(np.rint(error))
    return np.int64(0)


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
def gather_design(x_hat, noisy, f, first, rows, columns, around, row_offsets, n_row, design):
    """The least-squares design of `prediction.fit`, a point (row of `design`) at a time, terms in
    coefficient order: x_hat of f around each point, each earlier feature (noisy, first..f-1)
    around it, the first n_row row offsets of noisy f itself (rows above the block read x_hat's
    first row). Copies only. A point's neighbours sit at the same offsets in every plane, so they
    are found once per point."""
    _, height, width = x_hat.shape
    plane = height * width
    hat_flat, noisy_flat = x_hat.ravel(), noisy.ravel()
    at = np.empty(around.shape[0], np.int64)
    for p in range(rows.size):
        for o in range(around.shape[0]):
            r = min(max(rows[p] - around[o, 0], 0), height - 1)
            c = columns[p] - around[o, 1]
            c = c + width if c < 0 else (c - width if c >= width else c)
            at[o] = r * width + c
        line = design[p]
        for o in range(around.shape[0]):
            line[o] = hat_flat[f * plane + at[o]]
        k = around.shape[0]
        for g in range(first, f):
            base = g * plane
            for o in range(around.shape[0]):
                line[k] = noisy_flat[base + at[o]]
                k += 1
        for t in range(n_row):
            r = rows[p] - row_offsets[t, 0]
            c = columns[p] - row_offsets[t, 1]
            c = c + width if c < 0 else (c - width if c >= width else c)
            line[k] = noisy_flat[f * plane + r * width + c] if r >= 0 else hat_flat[f * plane + c]
            k += 1


@njit(cache=True)
def _solve_normal(gram, rhs, n):
    """Solve the (n + 1) normal equations (index 0: the constant; upper triangle of `gram` filled)
    by Cholesky, with a ridge of 1e-9 of the mean diagonal (+1e-12) on the weights. Fixed-order
    float64 arithmetic, no BLAS: the same coefficients on every machine. None-like: ok False."""
    m = n + 1
    a = np.empty((m, m))
    for i in range(m):
        for j in range(i, m):
            a[i, j] = a[j, i] = gram[i, j]
    trace = 0.0
    for i in range(1, m):
        trace += a[i, i]
    ridge = 1e-9 * trace / max(n, 1) + 1e-12
    for i in range(1, m):
        a[i, i] += ridge
    for j in range(m):  # a = L L^T, L in the lower triangle
        d = a[j, j]
        for k in range(j):
            d -= a[j, k] * a[j, k]
        if not d > 0.0 or not np.isfinite(d):
            return False, np.zeros(m)
        d = np.sqrt(d)
        a[j, j] = d
        for i in range(j + 1, m):
            v = a[i, j]
            for k in range(j):
                v -= a[i, k] * a[j, k]
            a[i, j] = v / d
    y = np.empty(m)
    for i in range(m):
        v = rhs[i]
        for k in range(i):
            v -= a[i, k] * y[k]
        y[i] = v / a[i, i]
    for i in range(m - 1, -1, -1):
        v = y[i]
        for k in range(i + 1, m):
            v -= a[k, i] * y[k]
        y[i] = v / a[i, i]
    return True, y


@njit(cache=True, inline="always")
def _accumulate(gram, rhs, row, target, sign):
    """gram += sign [1, row]^T [1, row] (upper triangle), rhs += sign target [1, row]."""
    n = row.size
    gram[0, 0] += sign
    rhs[0] += sign * target
    head = gram[0, 1:]
    for b in range(n):
        head[b] += sign * row[b]
    for a in range(n):
        scaled = sign * row[a]
        line = gram[a + 1, a + 1 :]
        tail = row[a:]
        for b in range(n - a):  # contiguous slices: vector registers
            line[b] += scaled * tail[b]
        rhs[a + 1] += sign * target * row[a]


@njit(cache=True)
def _accumulate_all(gram, rhs, rows, targets):
    """`_accumulate` of every row in order, eight rows a pass over the gram (the same sums: each
    entry still adds the points one after another)."""
    n_points, n = rows.shape
    whole = n_points - n_points % 8
    for p in range(0, whole, 8):
        r0, r1, r2, r3, r4, r5, r6, r7 = (rows[p], rows[p + 1], rows[p + 2], rows[p + 3], rows[p + 4], rows[p + 5],
                                          rows[p + 6], rows[p + 7])
        y0, y1, y2, y3, y4, y5, y6, y7 = (targets[p], targets[p + 1], targets[p + 2], targets[p + 3], targets[p + 4],
                                          targets[p + 5], targets[p + 6], targets[p + 7])
        gram[0, 0] = (((((((gram[0, 0] + 1.0) + 1.0) + 1.0) + 1.0) + 1.0) + 1.0) + 1.0) + 1.0
        rhs[0] = (((((((rhs[0] + y0) + y1) + y2) + y3) + y4) + y5) + y6) + y7
        head = gram[0, 1:]
        for b in range(n):
            head[b] = (((((((head[b] + r0[b]) + r1[b]) + r2[b]) + r3[b]) + r4[b]) + r5[b]) + r6[b]) + r7[b]
        for a in range(n):
            s0, s1, s2, s3, s4, s5, s6, s7 = r0[a], r1[a], r2[a], r3[a], r4[a], r5[a], r6[a], r7[a]
            line = gram[a + 1, a + 1 :]
            t0, t1, t2, t3, t4, t5, t6, t7 = r0[a:], r1[a:], r2[a:], r3[a:], r4[a:], r5[a:], r6[a:], r7[a:]
            for b in range(n - a):  # contiguous slices: vector registers
                line[b] = (((((((line[b] + s0 * t0[b]) + s1 * t1[b]) + s2 * t2[b]) + s3 * t3[b]) + s4 * t4[b])
                            + s5 * t5[b]) + s6 * t6[b]) + s7 * t7[b]
            rhs[a + 1] = (((((((rhs[a + 1] + y0 * s0) + y1 * s1) + y2 * s2) + y3 * s3) + y4 * s4) + y5 * s5)
                          + y6 * s6) + y7 * s7
    for p in range(whole, n_points):
        _accumulate(gram, rhs, rows[p], targets[p], 1.0)


@njit(cache=True)
def robust_least_squares(design, target):
    """`prediction.least_squares_reference` in one compiled pass: [constant, weights...] fitted on centred
    columns, then refitted without the points missed by more than 4 robust deviations (their
    terms taken out of the normal equations). ok False when the first fit fails."""
    n_points, n = design.shape
    mean = np.zeros(n)
    target_mean = 0.0
    for p in range(n_points):
        for k in range(n):
            mean[k] += design[p, k]
        target_mean += target[p]
    if not np.isfinite(target_mean):
        return False, np.zeros(n + 1)
    for k in range(n):  # a non-finite term makes its column's sum non-finite
        if not np.isfinite(mean[k]):
            return False, np.zeros(n + 1)
    mean /= n_points
    target_mean /= n_points
    centred = np.empty((n_points, n))
    y = np.empty(n_points)
    gram, rhs = np.zeros((n + 1, n + 1)), np.zeros(n + 1)
    for p in range(n_points):
        for k in range(n):
            centred[p, k] = design[p, k] - mean[k]
        y[p] = target[p] - target_mean
    _accumulate_all(gram, rhs, centred, y)
    ok, first = _solve_normal(gram, rhs, n)
    if not ok:
        return False, first
    miss = np.empty(n_points)
    for p in range(n_points):
        v = y[p] - first[0]
        for k in range(n):
            v -= centred[p, k] * first[k + 1]
        miss[p] = abs(v)
    limit = 4.0 * 1.4826 * np.median(miss) + 1e-12
    kept = 0
    for p in range(n_points):
        kept += miss[p] <= limit
    solution = first
    if 4 * n <= kept < n_points:
        for p in range(n_points):
            if not miss[p] <= limit:
                _accumulate(gram, rhs, centred[p], y[p], -1.0)
        ok, second = _solve_normal(gram, rhs, n)
        if ok:
            solution = second
    out = np.empty(n + 1)
    out[0] = target_mean + solution[0]
    for k in range(n):
        out[0] -= mean[k] * solution[k + 1]
        out[k + 1] = solution[k + 1]
    return True, out


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


# --- the learned context's closed loop (`ContextPredictor.closed_loop`) ---------------------------
# One row of one feature and column parity at a time (its points depend only on rows above and, odd
# columns, the row's even ones: they are predicted together): `context_gather` lays out the valid
# points' inputs, two BLAS products do layers 1 and 2, the other loops the rest (`context_closed_loop`).
# Every sum of a layer is of integers held exactly in float64 with every partial sum below 2^53
# whatever the order (`context._check_bounds` bounds the sum of their magnitudes), so how BLAS (or
# these loops) order, block or vectorise the additions cannot change a bit; the non-integer steps
# (input quantisation, scaling, the quantised error) are the numpy reference's operations in its order.


def context_closed_loop(hat, valid, x, q, encoding, layers, ones, w2, b2, w3, b3, mean, std, scale, step, around,
                        row_offsets, n_beside, n_earlier, value_flags, row_flags, one, limit, down):
    """The learned context's closed loop (`ContextPredictor.closed_loop`): a row of one feature and
    column parity at a time, in the reference's order. hat (F, H, W) float64, valid bool, x
    (encoding; float32 or float64) and q int64 (F, H, W); layers[f][parity] = (w1 rows of the value
    inputs with the skip as a last column, the layer-1 sum with every flag set); ones = one * w1;
    w2, b2, w3, b3 the network's integers; mean, std, scale, step per feature. Returns the
    reconstruction (invalid points keep x_hat); fills q when encoding. Plain Python around the
    compiled steps: the products are numpy's (BLAS), exact because they sum integers."""
    n_features, height, width = valid.shape
    rec, coded = hat.copy(), np.zeros(valid.shape)  # coded: fixed-point reconstructions, 0 where invalid
    half, hidden = (width + 1) // 2, w2.shape[1]
    flags, h1 = np.empty((half, hidden)), np.empty((half, hidden))
    z1, z2, columns = np.empty((half, hidden + 1)), np.empty((half, hidden)), np.empty(half, np.int64)
    n_row = row_offsets.shape[0]
    for f in range(n_features):
        first = max(0, f - n_earlier)
        inputs = [np.empty((w.shape[0], half)) for w, _ in layers[f]]  # one input a row
        for i in range(height):
            for parity, (w1, start) in enumerate(layers[f]):
                n = context_gather(coded, valid, f, i, parity, first, around, row_offsets,
                                   n_row if parity else n_row - n_beside, ones[f], value_flags, row_flags, start,
                                   inputs[parity], flags, columns)
                if not n:
                    continue
                np.matmul(inputs[parity][:, :n].T, w1, out=z1[:n])
                context_hidden(z1, flags, n, down, limit, h1)
                np.matmul(h1[:n], w2[f], out=z2[:n])
                context_activate(z2, b2[f], n, down, limit)
                context_close(z2, z1, n, columns, w3[f], float(b3[f]), limit, scale[f], mean[f], std[f], one, step[f],
                              hat, x, q, rec, coded, f, i, encoding)
    return rec


@njit(cache=True)
def context_gather(coded, valid, f, i, parity, first, around, row_offsets, n_terms, ones, value_flags, row_flags,
                   start, inputs, flags, columns):
    """The inputs of row i's valid points of one column parity; returns their number n.

    coded (F, H, W): fixed-point reconstructions (0 where invalid or not yet reached). inputs[:, p]
    (one input a row): the value inputs of point p, earlier features' (point and four neighbours
    each) then its own feature's row terms (`row_offsets[:n_terms]`; rows above the block read 0);
    flags[p]: `start` (b1 and the noise, parity and every validity flag's layer-1 term, as if all
    were set) minus the term (`ones`: one * w1 of feature f; the earlier features' flags from row
    value_flags, the row terms' from row_flags) of each flag that is not; columns[p]: its column."""
    height, width = valid.shape[1], valid.shape[2]
    hidden, n_around = flags.shape[1], around.shape[0]
    n = 0
    for j in range(parity, width, 2):
        if valid[f, i, j]:
            columns[n] = j
            for k in range(hidden):
                flags[n, k] = start[k]
            n += 1
    for g in range(first, f):
        for o in range(n_around):
            slot = (g - first) * n_around + o
            r = min(max(i - around[o, 0], 0), height - 1)
            _gather_row(coded[g, r], valid[g, r], around[o, 1], columns, n, inputs[slot], flags,
                        ones[value_flags + slot])
    n_static = (f - first) * n_around
    for t in range(n_terms):
        r = i - row_offsets[t, 0]
        if r >= 0:
            _gather_row(coded[f, r], valid[f, r], row_offsets[t, 1], columns, n, inputs[n_static + t], flags,
                        ones[row_flags + t])
        else:  # above the block: value 0, flag not set
            for p in range(n):
                inputs[n_static + t, p] = 0.0
                for k in range(hidden):
                    flags[p, k] -= ones[row_flags + t, k]
    return n


@njit(cache=True)
def _gather_row(values, valid, left, columns, n, out, flags, flag_term):
    """out[p] = values[columns[p] - left] (columns wrap); flags[p] -= flag_term where that is invalid."""
    width = values.shape[0]
    for p in range(n):
        c = columns[p] - left
        if c < 0 or c >= width:  # wrap (a modulo only here: blocks narrower than an offset too)
            c %= width
        out[p] = values[c]
        if not valid[c]:
            for k in range(flag_term.shape[0]):
                flags[p, k] -= flag_term[k]


@njit(cache=True)
def context_hidden(z1, flags, n, down, limit, out):
    """Layer 1's activations of n points: floor((inputs' sums + flags' sums) * down), clipped to [0, limit]."""
    hidden = flags.shape[1]
    for p in range(n):
        for k in range(hidden):
            out[p, k] = min(max(np.floor((z1[p, k] + flags[p, k]) * down), 0.0), limit)


@njit(cache=True)
def context_activate(z, bias, n, down, limit):
    """Layer 2's activations of n points, in place: floor((z + bias) * down), clipped to [0, limit]."""
    for p in range(n):
        for k in range(bias.shape[0]):
            z[p, k] = min(max(np.floor((z[p, k] + bias[k]) * down), 0.0), limit)


@njit(cache=True)
def _dot(a, b):
    """sum of a[k] * b[k] in four partial sums (shorter dependency chains; integers: any order is exact)."""
    a0 = a1 = a2 = a3 = 0.0
    k = 0
    while k + 4 <= a.shape[0]:
        a0 += a[k] * b[k]
        a1 += a[k + 1] * b[k + 1]
        a2 += a[k + 2] * b[k + 2]
        a3 += a[k + 3] * b[k + 3]
        k += 4
    while k < a.shape[0]:
        a0 += a[k] * b[k]
        k += 1
    return (a0 + a1) + (a2 + a3)


@njit(cache=True)
def context_close(h2, z1, n, columns, w3, b3, limit, scale, mean, std, one, step, hat, x, q, rec, coded, f, i,
                  encoding):
    """The output sum (h2: layer 2's activations; the skip of the inputs is z1's last column), the
    prediction (sum * scale + mean; x_hat where not finite), q (encoding), the reconstruction and
    its fixed-point input (`fixed_inputs` at one point) of row i's n points."""
    hidden = w3.shape[0]
    for p in range(n):
        j = columns[p]
        total = b3 + z1[p, hidden] + _dot(h2[p], w3)
        prediction = total * scale + mean
        if not np.isfinite(prediction):
            prediction = hat[f, i, j]
        if encoding:
            q[f, i, j] = _quantise(np.float64(x[f, i, j]), prediction, step, True)
        value = prediction + q[f, i, j] * step
        rec[f, i, j] = value
        scaled = np.rint((value - mean) / std * one)
        if np.isnan(scaled):
            scaled = 0.0
        coded[f, i, j] = min(max(scaled, -limit), limit)


# --- rANS coding of the quantised prediction errors (errorbound stream versions 2 to 5) ---------
# Versions 2-4: one rANS state (32 bits, renormalised 16 bits at a time, probabilities in PROB_BITS
# bits) runs over every group in order: group g = 2 f + column parity, valid points in raster order
# (version 5: several states, below). Integer
# arithmetic only, so every machine codes and decodes the same words.
PROB_BITS = 14
PROB_SCALE = 1 << PROB_BITS
RANS_LOW = 1 << 16  # the state stays in [RANS_LOW, RANS_LOW << 16)


@njit(cache=True, inline="always")
def _magnitude(value, cap):
    """min(|value|, cap), with no overflow for the most negative int64 (an escaped value may be any)."""
    return cap if value >= cap or value <= -cap else abs(value)


@njit(cache=True, inline="always")
def _context(left, up, earlier, class_map):
    """The coding context of a point from the capped magnitudes (`_magnitude`) of the q decoded next
    to it: its left neighbour of the same column parity, the one above, and the same point of the
    previous feature (0 where there is none or it is invalid). `class_map[a]` is the context of
    activity a = their sum (capped at the map's last index); a one-entry map puts every point in
    context 0 (stream version 2)."""
    return class_map[min(np.int64(left) + up + earlier, class_map.size - 1)]


@njit(cache=True)
def point_contexts(q, valid, class_map):
    """The context of every valid point (`_context` of its q neighbours; q is 0 at invalid points),
    as uint8; all 0 with a one-entry map (no contexts: nothing to compute)."""
    n_features, height, width = q.shape
    contexts = np.zeros(q.shape, np.uint8)
    if class_map.size == 1:
        return contexts
    cap = class_map.size - 1
    for f in range(n_features):
        for i in range(height):
            for j in range(width):
                if valid[f, i, j]:
                    left = _magnitude(q[f, i, j - 2], cap) if j >= 2 else 0
                    up = _magnitude(q[f, i - 1, j], cap) if i >= 1 else 0
                    earlier = _magnitude(q[f - 1, i, j], cap) if f >= 1 else 0
                    contexts[f, i, j] = _context(left, up, earlier, class_map)
    return contexts


@njit(cache=True)
def group_symbols(q, valid, window, contexts, n_contexts):
    """Per model (feature, column parity, context: model (2 f + parity) * n_contexts + context): the
    modelled range lo..hi (within +-window, always holding 0) and the counts of symbols s = v - lo,
    with s = hi - lo + 1 the escape (q outside). contexts: `point_contexts`."""
    n_features, height, width = q.shape
    n_models = 2 * n_features * n_contexts
    lo, hi = np.zeros(n_models, np.int64), np.zeros(n_models, np.int64)
    for f in range(n_features):
        for i in range(height):
            for j in range(width):
                if valid[f, i, j]:
                    m = (2 * f + (j & 1)) * n_contexts + contexts[f, i, j]
                    lo[m] = min(lo[m], q[f, i, j])
                    hi[m] = max(hi[m], q[f, i, j])
    for m in range(n_models):
        lo[m], hi[m] = max(lo[m], -window), min(hi[m], window)
    counts = np.zeros((n_models, 2 * window + 2), np.int64)
    for f in range(n_features):
        for i in range(height):
            for j in range(width):
                if valid[f, i, j]:
                    m = (2 * f + (j & 1)) * n_contexts + contexts[f, i, j]
                    v = q[f, i, j]
                    counts[m, v - lo[m] if lo[m] <= v <= hi[m] else hi[m] - lo[m] + 1] += 1
    return lo, hi, counts


@njit(cache=True)
def quantised_frequencies(counts, n_symbols):
    """Counts -> frequencies summing to PROB_SCALE (all zero when no count), every counted symbol
    at least 1: proportional shares rounded down, the remainder to the most frequent symbol, any
    excess taken one at a time from the largest frequency (the first of equals)."""
    freqs = np.zeros(n_symbols, np.int64)
    total = 0
    for s in range(n_symbols):
        total += counts[s]
    if total == 0:
        return freqs
    assigned, top = 0, 0
    for s in range(n_symbols):
        if counts[s]:
            freqs[s] = max(1, counts[s] * PROB_SCALE // total)
            assigned += freqs[s]
            if counts[s] > counts[top]:
                top = s
    if assigned < PROB_SCALE:
        freqs[top] += PROB_SCALE - assigned
    while assigned > PROB_SCALE:
        largest = 0
        for s in range(n_symbols):
            if freqs[s] > freqs[largest]:
                largest = s
        freqs[largest] -= 1
        assigned -= 1
    return freqs


@njit(cache=True)
def rans_encode(q, valid, lo, hi, freqs, n_valid, contexts, n_contexts):
    """The words (uint16, in decoding order) coding every valid q, and the escaped values in
    decoding order. freqs: (models, symbols) from `quantised_frequencies`, escape last; models as
    `group_symbols` numbers them. Order: group by group (feature, then column parity), raster order
    within a group."""
    n_features, height, width = q.shape
    cums = np.zeros(freqs.shape, np.int64)
    for m in range(freqs.shape[0]):
        for s in range(1, freqs.shape[1]):
            cums[m, s] = cums[m, s - 1] + freqs[m, s - 1]
    words = np.empty(n_valid + 2, np.uint16)  # a symbol emits at most one word
    escapes = np.empty(n_valid, np.int64)
    n_escapes = 0
    for g in range(2 * n_features):
        f, parity = g >> 1, g & 1
        for i in range(height):
            for j in range(parity, width, 2):
                if valid[f, i, j]:
                    m = g * n_contexts + contexts[f, i, j]
                    if not lo[m] <= q[f, i, j] <= hi[m]:
                        escapes[n_escapes] = q[f, i, j]
                        n_escapes += 1
    state = np.uint64(RANS_LOW)
    at = words.size
    for g in range(2 * n_features - 1, -1, -1):
        f, parity = g >> 1, g & 1
        last = parity + 2 * ((width - 1 - parity) // 2)
        for i in range(height - 1, -1, -1):
            for j in range(last, parity - 1, -2):
                if valid[f, i, j]:
                    m = g * n_contexts + contexts[f, i, j]
                    v = q[f, i, j]
                    s = v - lo[m] if lo[m] <= v <= hi[m] else hi[m] - lo[m] + 1
                    freq, start = np.uint64(freqs[m, s]), np.uint64(cums[m, s])
                    if state >= np.uint64((RANS_LOW >> PROB_BITS) << 16) * freq:
                        at -= 1
                        words[at] = np.uint16(state & np.uint64(0xFFFF))
                        state >>= np.uint64(16)
                    state = (state // freq << np.uint64(PROB_BITS)) + state % freq + start
    words[at - 2] = np.uint16(state >> np.uint64(16))
    words[at - 1] = np.uint16(state & np.uint64(0xFFFF))
    return words[at - 2 :].copy(), escapes[:n_escapes].copy()


@njit(cache=True)
def _rans_start(words):
    """The decoder's running state: [rANS state, next word, escapes used] (status 1: too short)."""
    coder = np.zeros(3, np.int64)
    if words.size < 2:
        return coder, 1
    coder[0] = (np.int64(words[0]) << 16) | np.int64(words[1])
    coder[1] = 2
    return coder, 0


@njit(cache=True)
def _rans_group(coder, words, escapes, luts, cums, model_freqs, lo, hi, freqs, valid, parity, dest, magnitudes,
                earlier, class_map):
    """Decode one group (the valid points of one feature's column parity, raster order) into the
    column half dest[i, j // 2] (invalid points set to 0, so that one buffer serves every feature).
    With contexts, magnitudes[i + 1, j // 2 + 1] gets each point's capped |q| (`_magnitude`; row 0
    and column 0 stay 0: no branch for the block's edges) and `earlier` holds the previous
    feature's, so that a point's context (`_context`) is three byte loads. lo, hi, freqs: the
    group's models, one per context. Returns 0, 1 (words ran out), 2 (escapes ran out) or 4 (a
    point's context has a model with no symbols: not this stream)."""
    height, width = valid.shape
    n_contexts = lo.size
    cap = class_map.size - 1
    usable = np.zeros(n_contexts, np.bool_)
    for k in range(n_contexts):
        cum = 0
        for s in range(hi[k] - lo[k] + 2):
            cums[k, s], model_freqs[k, s] = cum, freqs[k, s]
            for m in range(freqs[k, s]):
                luts[k, cum + m] = s
            cum += freqs[k, s]
        usable[k] = cum == PROB_SCALE
    state, at, n_escapes = np.uint64(coder[0]), coder[1], coder[2]
    mask = np.uint64(PROB_SCALE - 1)
    status = 0
    k = 0
    for i in range(height):
        for j in range(parity, width, 2):
            column = j >> 1
            if not valid[i, j]:
                dest[i, column] = 0
                if n_contexts > 1:
                    magnitudes[i + 1, column + 1] = 0
                continue
            if n_contexts > 1:
                k = _context(magnitudes[i + 1, column], magnitudes[i, column + 1], earlier[i + 1, column + 1],
                             class_map)
            if not usable[k]:
                status = 4
                break
            slot = state & mask
            s = np.int64(luts[k, slot])
            state = model_freqs[k, s] * (state >> np.uint64(PROB_BITS)) + slot - cums[k, s]
            if state < np.uint64(RANS_LOW):
                if at >= words.size:
                    status = 1
                    break
                state = (state << np.uint64(16)) | np.uint64(words[at])
                at += 1
            if s == hi[k] - lo[k] + 1:  # the escape
                if n_escapes >= escapes.size:
                    status = 2
                    break
                value = escapes[n_escapes]
                n_escapes += 1
            else:
                value = s + lo[k]
            dest[i, column] = value
            if n_contexts > 1:
                magnitudes[i + 1, column + 1] = _magnitude(value, cap)
        if status:
            break
    coder[0], coder[1], coder[2] = np.int64(state), at, n_escapes
    return status


@njit(cache=True)
def _rans_finish(coder, words, escapes):
    """0 when the stream ended exactly (all words and escapes used, state back at its start), else 3."""
    return 0 if coder[1] == words.size and coder[0] == RANS_LOW and coder[2] == escapes.size else 3


@njit(cache=True)
def _decoder_buffers(freqs, class_map, height, half):
    """(luts, cums, model freqs) for one group's contexts; a (parity, row, column half) q buffer;
    and (feature parity, column parity, row + 1, column half + 1) capped |q| for the contexts: the
    feature being decoded and the one before it (zero for the first)."""
    n_contexts = class_map[class_map.size - 1] + 1
    luts = np.zeros((n_contexts, PROB_SCALE), np.uint8)  # escape index <= 2 * 127 + 1 fits a byte
    cums = np.zeros((n_contexts, freqs.shape[1]), np.uint64)
    model_freqs = np.zeros((n_contexts, freqs.shape[1]), np.uint64)
    magnitudes = np.zeros((2, 2, height + 1, half + 1), np.uint8)
    return (luts, cums, model_freqs), np.zeros((2, height, half), np.int64), magnitudes


@njit(cache=True)
def _decode_group(coder, words, escapes, tables, lo, hi, freqs, valid, f, parity, q, magnitudes, class_map):
    """`_rans_group` for group (f, parity), its models picked out of every model's lo, hi and freqs;
    magnitudes[f & 1] is the feature's, magnitudes[1 - (f & 1)] the previous one's."""
    luts, cums, model_freqs = tables
    n_contexts = class_map[class_map.size - 1] + 1
    first = (2 * f + parity) * n_contexts
    return _rans_group(coder, words, escapes, luts, cums, model_freqs, lo[first : first + n_contexts],
                       hi[first : first + n_contexts], freqs[first : first + n_contexts], valid[f], parity,
                       q[parity], magnitudes[f & 1, parity], magnitudes[1 - (f & 1), parity], class_map)


@njit(cache=True)
def rans_decode(words, valid, lo, hi, freqs, escapes, q, class_map):
    """Inverse of `rans_encode`, into q (zeros at invalid points). Returns 0, or an error code:
    1 the words ran out, 2 the escapes ran out, 3 words or state left over (not this stream), 4 a
    context without symbols. The caller derives freqs from counts that match the mask
    (`all_frequencies`)."""
    n_features, height, width = q.shape
    coder, status = _rans_start(words)
    if status:
        return status
    tables, halves, magnitudes = _decoder_buffers(freqs, class_map, height, (width + 1) // 2)
    for f in range(n_features):
        for parity in range(2):
            status = _decode_group(coder, words, escapes, tables, lo, hi, freqs, valid, f, parity, halves,
                                   magnitudes, class_map)
            if status:
                return status
            for i in range(height):
                for j in range(parity, width, 2):
                    q[f, i, j] = halves[parity, i, j >> 1]
    return _rans_finish(coder, words, escapes)


@njit(cache=True)
def all_frequencies(counts, lo, hi):
    """`quantised_frequencies` of every model: (models, symbols), zeros past each model's escape."""
    freqs = np.zeros(counts.shape, np.int64)
    for g in range(counts.shape[0]):
        n_symbols = hi[g] - lo[g] + 2
        freqs[g, :n_symbols] = quantised_frequencies(counts[g], n_symbols)
    return freqs


# --- Stream version 5: interleaved rANS over row bands -------------------------------------------
# Versions 2-4 decode through one state: each symbol's table lookup waits on the state update of
# the one before, one dependency chain through every point (about 12-14 ns a symbol). Version 5
# splits every group's rows into `lanes` bands (band r: rows r H // lanes to (r + 1) H // lanes) and
# gives each band its own state; the decoder takes one point of each band in turn (step s: row
# start_r + s of every band, column by column), so `lanes` chains run side by side. A point's context
# is version 3's except that a band's first row sees no row above (the row above is another band's,
# decoded later): every context reads only its own band's symbols and the previous feature's, so
# the bands never wait on each other. All states share one word stream (each symbol renormalises
# its own state, at most one word, in the decoder's order): the states' initial values first
# (2 words each, band order), then the words in decoding order. Integer arithmetic only.


@njit(cache=True, inline="always")
def _band(r, height, lanes):
    """Rows [start, stop) of band r of `lanes`."""
    return (r * height) // lanes, ((r + 1) * height) // lanes


@njit(cache=True)
def band_contexts(q, valid, class_map, lanes):
    """`point_contexts` with the up neighbour read as 0 on the first row of every band (lanes = 1:
    exactly `point_contexts`)."""
    n_features, height, width = q.shape
    contexts = np.zeros(q.shape, np.uint8)
    if class_map.size == 1:
        return contexts
    cap = class_map.size - 1
    first = np.zeros(height + 1, np.bool_)
    for r in range(lanes):
        first[_band(r, height, lanes)[0]] = True
    for f in range(n_features):
        for i in range(height):
            for j in range(width):
                if valid[f, i, j]:
                    left = _magnitude(q[f, i, j - 2], cap) if j >= 2 else 0
                    up = 0 if first[i] else _magnitude(q[f, i - 1, j], cap)
                    earlier = _magnitude(q[f - 1, i, j], cap) if f >= 1 else 0
                    contexts[f, i, j] = _context(left, up, earlier, class_map)
    return contexts


@njit(cache=True)
def rans_encode_lanes(q, valid, lo, hi, freqs, n_valid, contexts, n_contexts, lanes):
    """Version 5's `rans_encode`: the words (uint16, in decoding order: the lanes' states, then the
    renormalisation words) and the escaped values in decoding order. Decoding order: group by group
    (feature, then column parity); within a group, step s = 0, 1, ... of the bands, column by
    column, band by band: point (start_r + s, column) where that row is in band r."""
    n_features, height, width = q.shape
    cums = np.zeros(freqs.shape, np.int64)
    for m in range(freqs.shape[0]):
        for s in range(1, freqs.shape[1]):
            cums[m, s] = cums[m, s - 1] + freqs[m, s - 1]
    starts, stops = np.zeros(lanes, np.int64), np.zeros(lanes, np.int64)
    for r in range(lanes):
        starts[r], stops[r] = _band(r, height, lanes)
    steps = (height + lanes - 1) // lanes
    words = np.empty(n_valid + 2 * lanes, np.uint16)  # a symbol emits at most one word
    escapes = np.empty(n_valid, np.int64)
    # every symbol's frequency, start and band in decoding order (one pass in that order), then the
    # states run over them backwards in one flat loop
    sym_freq, sym_start = np.empty(n_valid, np.uint16), np.empty(n_valid, np.uint16)
    sym_lane = np.empty(n_valid, np.uint8)
    n_escapes, n = 0, 0
    for g in range(2 * n_features):
        f, parity = g >> 1, g & 1
        for s in range(steps):
            for j in range(parity, width, 2):
                for r in range(lanes):
                    i = starts[r] + s
                    if i < stops[r] and valid[f, i, j]:
                        m = g * n_contexts + contexts[f, i, j]
                        v = q[f, i, j]
                        if lo[m] <= v <= hi[m]:
                            sym = v - lo[m]
                        else:
                            sym = hi[m] - lo[m] + 1
                            escapes[n_escapes] = v
                            n_escapes += 1
                        sym_freq[n], sym_start[n], sym_lane[n] = freqs[m, sym], cums[m, sym], r
                        n += 1
    states = np.full(lanes, np.uint64(RANS_LOW))
    at = words.size
    for t in range(n - 1, -1, -1):
        r = sym_lane[t]
        freq, start = np.uint64(sym_freq[t]), np.uint64(sym_start[t])
        state = states[r]
        if state >= np.uint64((RANS_LOW >> PROB_BITS) << 16) * freq:
            at -= 1
            words[at] = np.uint16(state & np.uint64(0xFFFF))
            state >>= np.uint64(16)
        states[r] = (state // freq << np.uint64(PROB_BITS)) + state % freq + start
    at -= 2 * lanes
    for r in range(lanes):
        words[at + 2 * r] = np.uint16(states[r] >> np.uint64(16))
        words[at + 2 * r + 1] = np.uint16(states[r] & np.uint64(0xFFFF))
    return words[at:].copy(), escapes[:n_escapes].copy()


@njit(cache=True)
def _rans_start_lanes(words, lanes):
    """Version 5's running decoder state: [next word, escapes used, state of lane 0, 1, ...]
    (status 1: too short for the states)."""
    coder = np.zeros(2 + lanes, np.int64)
    if words.size < 2 * lanes:
        return coder, 1
    for r in range(lanes):
        coder[2 + r] = (np.int64(words[2 * r]) << 16) | np.int64(words[2 * r + 1])
    coder[0] = 2 * lanes
    return coder, 0


@njit(cache=True)
def _rans_finish_lanes(coder, words, escapes):
    """0 when the stream ended exactly (all words and escapes used, every state back at its start), else 3."""
    for r in range(2, coder.size):
        if coder[r] != RANS_LOW:
            return 3
    return 0 if coder[0] == words.size and coder[1] == escapes.size else 3


@njit(cache=True)
def _rans_lanes_group(coder, words, escapes, luts, cums, model_freqs, lo, hi, freqs, valid, parity, dest, magnitudes,
                      earlier, class_map):
    """Version 5's `_rans_group`: one group decoded band by band in turn (`rans_encode_lanes`' order),
    each band through its own state. Renormalisation is branch-free (the word is read from the stream
    clamped to its end; a stream that runs out shows as words used past the end: status 1). Same
    buffers and statuses as `_rans_group`."""
    height, width = valid.shape
    n_contexts = lo.size
    lanes = coder.size - 2
    cap = class_map.size - 1
    usable = np.zeros(n_contexts, np.bool_)
    escape_at = np.zeros(n_contexts, np.int64)
    for k in range(n_contexts):
        cum = 0
        for s in range(hi[k] - lo[k] + 2):
            cums[k, s], model_freqs[k, s] = cum, freqs[k, s]
            for m in range(freqs[k, s]):
                luts[k, cum + m] = s
            cum += freqs[k, s]
        usable[k] = cum == PROB_SCALE
        escape_at[k] = hi[k] - lo[k] + 1
    states = np.empty(lanes, np.uint64)
    rows, ups, ids = np.zeros(lanes, np.int64), np.zeros(lanes, np.int64), np.zeros(lanes, np.int64)
    for r in range(lanes):
        states[r] = np.uint64(coder[2 + r])
    at, n_escapes = coder[0], coder[1]
    last = words.size - 1
    mask = np.uint64(PROB_SCALE - 1)
    low = np.uint64(RANS_LOW)
    n_columns = (width - parity + 1) // 2
    steps = (height + lanes - 1) // lanes
    k = 0
    for s in range(steps):
        active = 0
        for r in range(lanes):
            start, stop = _band(r, height, lanes)
            if start + s < stop:  # bands differ by one row at most: some end a step before others
                rows[active], ids[active] = start + s, r
                ups[active] = start + s if s else 0  # a band's first row reads magnitudes' zero row 0
                active += 1
        for column in range(n_columns):
            j = parity + 2 * column
            for a in range(active):
                i, r = rows[a], ids[a]
                if not valid[i, j]:
                    dest[i, column] = 0
                    if n_contexts > 1:
                        magnitudes[i + 1, column + 1] = 0
                    continue
                if n_contexts > 1:
                    k = _context(magnitudes[i + 1, column], magnitudes[ups[a], column + 1],
                                 earlier[i + 1, column + 1], class_map)
                if not usable[k]:
                    return 4
                state = states[r]
                slot = state & mask
                sym = np.int64(luts[k, slot])
                state = model_freqs[k, sym] * (state >> np.uint64(PROB_BITS)) + slot - cums[k, sym]
                word = np.uint64(words[min(at, last)])
                need = state < low
                states[r] = (state << np.uint64(16)) | word if need else state
                at += np.int64(need)
                if sym == escape_at[k]:
                    if n_escapes >= escapes.size:
                        return 2
                    value = escapes[n_escapes]
                    n_escapes += 1
                else:
                    value = sym + lo[k]
                dest[i, column] = value
                if n_contexts > 1:
                    magnitudes[i + 1, column + 1] = _magnitude(value, cap)
    if at > words.size:
        return 1
    coder[0], coder[1] = at, n_escapes
    for r in range(lanes):
        coder[2 + r] = np.int64(states[r])
    return 0


@njit(cache=True)
def _decode_group_lanes(coder, words, escapes, tables, lo, hi, freqs, valid, f, parity, q, magnitudes, class_map):
    """`_decode_group` for version 5 (`_rans_lanes_group`)."""
    luts, cums, model_freqs = tables
    n_contexts = class_map[class_map.size - 1] + 1
    first = (2 * f + parity) * n_contexts
    return _rans_lanes_group(coder, words, escapes, luts, cums, model_freqs, lo[first : first + n_contexts],
                             hi[first : first + n_contexts], freqs[first : first + n_contexts], valid[f], parity,
                             q[parity], magnitudes[f & 1, parity], magnitudes[1 - (f & 1), parity], class_map)


@njit(cache=True)
def rans_decode_lanes(words, valid, lo, hi, freqs, escapes, q, class_map, lanes):
    """Inverse of `rans_encode_lanes` (version 5), into q; statuses as `rans_decode`."""
    n_features, height, width = q.shape
    coder, status = _rans_start_lanes(words, lanes)
    if status:
        return status
    tables, halves, magnitudes = _decoder_buffers(freqs, class_map, height, (width + 1) // 2)
    for f in range(n_features):
        for parity in range(2):
            status = _decode_group_lanes(coder, words, escapes, tables, lo, hi, freqs, valid, f, parity, halves,
                                         magnitudes, class_map)
            if status:
                return status
            for i in range(height):
                for j in range(parity, width, 2):
                    q[f, i, j] = halves[parity, i, j >> 1]
    return _rans_finish_lanes(coder, words, escapes)


@njit(cache=True)
def _rans_fast_group(coder, words, escapes, luts, cums, model_freqs, lo, hi, freqs, valid, parity, dest, magnitudes,
                     earlier, class_map, scratch, scratch_m):
    """`_rans_lanes_group` (the reference: same order, same statuses) for at most 4 bands, the bands'
    states, rows and left contexts held in registers, tables flat: what `linear_decode` runs.
    scratch (q) and scratch_m (capped |q|, the second row staying 0): rows standing in for a band
    that has no row at this step or does not exist (never valid)."""
    height, width = valid.shape
    n_contexts = lo.size
    lanes = coder.size - 2
    cap = class_map.size - 1
    stride = freqs.shape[1] + 1
    escape_at = np.zeros(n_contexts, np.int64)
    for k in range(n_contexts):
        cum = 0
        escape_at[k] = hi[k] - lo[k] + 1
        for s in range(hi[k] - lo[k] + 2):
            cums[k * stride + s], model_freqs[k * stride + s] = cum, freqs[k, s]
            for m in range(freqs[k, s]):
                luts[(k << PROB_BITS) + cum + m] = s
            cum += freqs[k, s]
        if cum != PROB_SCALE:  # no symbols: every slot decodes to the marker past the escape
            luts[k << PROB_BITS : (k + 1) << PROB_BITS] = escape_at[k] + 1
            cums[k * stride + escape_at[k] + 1], model_freqs[k * stride + escape_at[k] + 1] = 0, 1
    state0 = np.uint64(coder[2])
    state1 = np.uint64(coder[3]) if lanes > 1 else np.uint64(RANS_LOW)
    state2 = np.uint64(coder[4]) if lanes > 2 else np.uint64(RANS_LOW)
    state3 = np.uint64(coder[5]) if lanes > 3 else np.uint64(RANS_LOW)
    at, n_escapes = coder[0], coder[1]
    last = words.size - 1
    mask, shift, sixteen, low = np.uint64(PROB_SCALE - 1), np.uint64(PROB_BITS), np.uint64(16), np.uint64(RANS_LOW)
    n_columns = (width - parity + 1) // 2
    steps = (height + lanes - 1) // lanes
    never = np.zeros(width, np.bool_)
    start0, stop0 = _band(0, height, lanes)
    start1, stop1 = _band(1, height, lanes)
    start2, stop2 = _band(2, height, lanes)
    start3, stop3 = _band(3, height, lanes)
    for s in range(steps):
        # band r's rows for this step, or scratch where the band has ended or does not exist
        if start0 + s < stop0:
            v0, d0, m0, u0, e0 = valid[start0 + s], dest[start0 + s], magnitudes[start0 + s + 1], magnitudes[
                start0 + s if s else 0], earlier[start0 + s + 1]
        else:
            v0, d0, m0, u0, e0 = never, scratch[0], scratch_m[0], scratch_m[1], scratch_m[1]
        if lanes > 1 and start1 + s < stop1:
            v1, d1, m1, u1, e1 = valid[start1 + s], dest[start1 + s], magnitudes[start1 + s + 1], magnitudes[
                start1 + s if s else 0], earlier[start1 + s + 1]
        else:
            v1, d1, m1, u1, e1 = never, scratch[0], scratch_m[0], scratch_m[1], scratch_m[1]
        if lanes > 2 and start2 + s < stop2:
            v2, d2, m2, u2, e2 = valid[start2 + s], dest[start2 + s], magnitudes[start2 + s + 1], magnitudes[
                start2 + s if s else 0], earlier[start2 + s + 1]
        else:
            v2, d2, m2, u2, e2 = never, scratch[0], scratch_m[0], scratch_m[1], scratch_m[1]
        if lanes > 3 and start3 + s < stop3:
            v3, d3, m3, u3, e3 = valid[start3 + s], dest[start3 + s], magnitudes[start3 + s + 1], magnitudes[
                start3 + s if s else 0], earlier[start3 + s + 1]
        else:
            v3, d3, m3, u3, e3 = never, scratch[0], scratch_m[0], scratch_m[1], scratch_m[1]
        l0 = l1 = l2 = l3 = np.int64(0)
        for column in range(n_columns):  # band 0, 1, 2, 3 in turn (the same code four times)
            j = parity + 2 * column
            if v0[j]:
                k = class_map[min(l0 + u0[column + 1] + e0[column + 1], cap)] if n_contexts > 1 else 0
                slot = state0 & mask
                sym = np.int64(luts[np.uint64(k << PROB_BITS) + slot])
                at_k = np.uint64(k * stride + sym)
                state0 = model_freqs[at_k] * (state0 >> shift) + slot - cums[at_k]
                word = np.uint64(words[min(at, last)])
                need = state0 < low
                state0 = (state0 << sixteen) | word if need else state0
                at += np.int64(need)
                if sym >= escape_at[k]:  # the escape, or the marker of a context without symbols
                    if sym > escape_at[k]:
                        return 4
                    if n_escapes >= escapes.size:
                        return 2
                    value = escapes[n_escapes]
                    n_escapes += 1
                else:
                    value = sym + lo[k]
                d0[column] = value
                l0 = np.int64(_magnitude(value, cap))
                m0[column + 1] = l0
            else:
                d0[column] = 0
                m0[column + 1] = 0
                l0 = np.int64(0)
            if v1[j]:
                k = class_map[min(l1 + u1[column + 1] + e1[column + 1], cap)] if n_contexts > 1 else 0
                slot = state1 & mask
                sym = np.int64(luts[np.uint64(k << PROB_BITS) + slot])
                at_k = np.uint64(k * stride + sym)
                state1 = model_freqs[at_k] * (state1 >> shift) + slot - cums[at_k]
                word = np.uint64(words[min(at, last)])
                need = state1 < low
                state1 = (state1 << sixteen) | word if need else state1
                at += np.int64(need)
                if sym >= escape_at[k]:  # the escape, or the marker of a context without symbols
                    if sym > escape_at[k]:
                        return 4
                    if n_escapes >= escapes.size:
                        return 2
                    value = escapes[n_escapes]
                    n_escapes += 1
                else:
                    value = sym + lo[k]
                d1[column] = value
                l1 = np.int64(_magnitude(value, cap))
                m1[column + 1] = l1
            else:
                d1[column] = 0
                m1[column + 1] = 0
                l1 = np.int64(0)
            if v2[j]:
                k = class_map[min(l2 + u2[column + 1] + e2[column + 1], cap)] if n_contexts > 1 else 0
                slot = state2 & mask
                sym = np.int64(luts[np.uint64(k << PROB_BITS) + slot])
                at_k = np.uint64(k * stride + sym)
                state2 = model_freqs[at_k] * (state2 >> shift) + slot - cums[at_k]
                word = np.uint64(words[min(at, last)])
                need = state2 < low
                state2 = (state2 << sixteen) | word if need else state2
                at += np.int64(need)
                if sym >= escape_at[k]:  # the escape, or the marker of a context without symbols
                    if sym > escape_at[k]:
                        return 4
                    if n_escapes >= escapes.size:
                        return 2
                    value = escapes[n_escapes]
                    n_escapes += 1
                else:
                    value = sym + lo[k]
                d2[column] = value
                l2 = np.int64(_magnitude(value, cap))
                m2[column + 1] = l2
            else:
                d2[column] = 0
                m2[column + 1] = 0
                l2 = np.int64(0)
            if v3[j]:
                k = class_map[min(l3 + u3[column + 1] + e3[column + 1], cap)] if n_contexts > 1 else 0
                slot = state3 & mask
                sym = np.int64(luts[np.uint64(k << PROB_BITS) + slot])
                at_k = np.uint64(k * stride + sym)
                state3 = model_freqs[at_k] * (state3 >> shift) + slot - cums[at_k]
                word = np.uint64(words[min(at, last)])
                need = state3 < low
                state3 = (state3 << sixteen) | word if need else state3
                at += np.int64(need)
                if sym >= escape_at[k]:  # the escape, or the marker of a context without symbols
                    if sym > escape_at[k]:
                        return 4
                    if n_escapes >= escapes.size:
                        return 2
                    value = escapes[n_escapes]
                    n_escapes += 1
                else:
                    value = sym + lo[k]
                d3[column] = value
                l3 = np.int64(_magnitude(value, cap))
                m3[column + 1] = l3
            else:
                d3[column] = 0
                m3[column + 1] = 0
                l3 = np.int64(0)
    if at > words.size:
        return 1
    coder[0], coder[1], coder[2] = at, n_escapes, np.int64(state0)
    if lanes > 1:
        coder[3] = np.int64(state1)
    if lanes > 2:
        coder[4] = np.int64(state2)
    if lanes > 3:
        coder[5] = np.int64(state3)
    return 0


@njit(cache=True)
def _fast_buffers(freqs, class_map, half):
    """`_rans_fast_group`'s flat tables (luts, cums, model freqs) and its scratch rows (q, capped |q|)."""
    n_contexts = class_map[class_map.size - 1] + 1
    stride = freqs.shape[1] + 1  # one more symbol: the marker of a context without symbols
    luts = np.zeros(n_contexts << PROB_BITS, np.uint8)  # marker <= 2 * 127 + 2 fits a byte
    return (luts, np.zeros(n_contexts * stride, np.uint64), np.zeros(n_contexts * stride, np.uint64),
            np.zeros((1, half + 1), np.int64), np.zeros((2, half + 1), np.uint8))


@njit(cache=True)
def rans_decode_fast(words, valid, lo, hi, freqs, escapes, q, class_map, lanes):
    """`rans_decode_lanes` through `_rans_fast_group` (lanes 1 to 4), the fast path `linear_decode`
    takes, on its own: tests hold it to the reference."""
    n_features, height, width = q.shape
    coder, status = _rans_start_lanes(words, lanes)
    if status:
        return status
    _, halves, magnitudes = _decoder_buffers(freqs, class_map, height, (width + 1) // 2)
    fast = _fast_buffers(freqs, class_map, (width + 1) // 2)
    for f in range(n_features):
        for parity in range(2):
            status = _decode_group_fast(coder, words, escapes, fast, lo, hi, freqs, valid, f, parity, halves,
                                        magnitudes, class_map)
            if status:
                return status
            for i in range(height):
                for j in range(parity, width, 2):
                    q[f, i, j] = halves[parity, i, j >> 1]
    return _rans_finish_lanes(coder, words, escapes)


@njit(cache=True)
def _decode_group_fast(coder, words, escapes, fast, lo, hi, freqs, valid, f, parity, q, magnitudes, class_map):
    """`_decode_group_lanes` through `_rans_fast_group` (fast: `_fast_buffers`)."""
    luts, cums, model_freqs, scratch, scratch_m = fast
    n_contexts = class_map[class_map.size - 1] + 1
    first = (2 * f + parity) * n_contexts
    return _rans_fast_group(coder, words, escapes, luts, cums, model_freqs, lo[first : first + n_contexts],
                            hi[first : first + n_contexts], freqs[first : first + n_contexts], valid[f], parity,
                            q[parity], magnitudes[f & 1, parity], magnitudes[1 - (f & 1), parity], class_map, scratch,
                            scratch_m)



@njit(cache=True)
def float32_exponent_sums_usable(values, valid):
    """Exact sums of each feature's valid finite float32 values, as int64 sums of their 24-bit
    significands per binary exponent (sums[f, e] * 2**(e - 149)), and their counts: ((F, 256),
    (F,)). Exact while a feature has fewer than 2**39 values; one pass, no copies. Neighbouring
    values mostly share an exponent, so a run of them is summed in a register first."""
    n_features = values.shape[0]
    sums = np.zeros((n_features, 256), np.int64)
    counts = np.zeros(n_features, np.int64)
    for f in range(n_features):
        bits = values[f].ravel().view(np.uint32)
        usable = valid[f].ravel()
        run_exponent, run_sum, count = 0, np.int64(0), 0
        for k in range(bits.size):
            b = bits[k]
            exponent = (b >> 23) & 0xFF
            if not usable[k] or exponent == 0xFF:
                continue
            significand = np.int64(b & 0x7FFFFF)
            if exponent:
                significand += 0x800000
            else:
                exponent = 1  # subnormals share the smallest exponent
            if exponent != run_exponent:
                if run_exponent:  # 0: nothing summed yet
                    sums[f, run_exponent - 1] += run_sum
                run_exponent, run_sum = exponent, np.int64(0)
            run_sum += -significand if b >> 31 else significand
            count += 1
        if run_exponent:
            sums[f, run_exponent - 1] += run_sum
        counts[f] = count
    return sums, counts


@njit(cache=True)
def group_sizes(valid):
    """Valid points per group (feature, column parity), in group order."""
    n_features, height, width = valid.shape
    sizes = np.zeros(2 * n_features, np.int64)
    for f in range(n_features):
        for i in range(height):
            for j in range(width):
                sizes[2 * f + (j & 1)] += valid[f, i, j]
    return sizes


@njit(cache=True)
def filled(values, valid, fills):
    """values as float64, fills[f] wherever feature f is invalid or not finite."""
    out = np.empty(values.shape)
    n_features, height, width = values.shape
    for f in range(n_features):
        for i in range(height):
            for j in range(width):
                v = np.float64(values[f, i, j])
                out[f, i, j] = v if valid[f, i, j] and np.isfinite(v) else fills[f]
    return out


@njit(cache=True, inline="always")
def _shifted(plane, i, j, up, left):
    """plane[i - up, j - left]: rows clamp at the block's edges, columns wrap (`prediction._around`)."""
    height, width = plane.shape
    r = min(max(i - up, 0), height - 1)
    c = j - left
    if c < 0 or c >= width:
        c %= width
    return plane[r, c]


@njit(cache=True)
def all_valid(valid, first, stop):
    """Where features first..stop-1 are all valid (everywhere when there are none)."""
    _, height, width = valid.shape
    every = np.ones((height, width), np.bool_)
    for g in range(first, stop):
        for i in range(height):
            for j in range(width):
                every[i, j] &= valid[g, i, j]
    return every


@njit(cache=True)
def _and_shifted(target, plane, up, left):
    """target &= plane[i - up, j - left] (rows clamped, columns wrapped), a row at a time: the
    columns that do not wrap are one contiguous run (vectorised)."""
    height, width = plane.shape
    lo, hi = min(max(left, 0), width), max(min(width + left, width), 0)
    for i in range(height):
        source = plane[min(max(i - up, 0), height - 1)]
        row = target[i]
        inner, shifted = row[lo:hi], source[lo - left : hi - left]
        for j in range(inner.size):
            inner[j] &= shifted[j]
        for j in range(0, lo):
            row[j] &= source[(j - left) % width]
        for j in range(hi, width):
            row[j] &= source[(j - left) % width]


@njit(cache=True)
def interiors(valid, f, every, first, around, above, beside):
    """`prediction.interiors_reference` compiled: (inside, inside with both BESIDE neighbours valid)."""
    inside = valid[f].copy()
    if f > first:
        for o in range(around.shape[0]):
            _and_shifted(inside, every, around[o, 0], around[o, 1])
    for o in range(above.shape[0]):
        _and_shifted(inside, valid[f], above[o, 0], above[o, 1])
    both = inside.copy()
    for o in range(beside.shape[0]):
        _and_shifted(both, valid[f], beside[o, 0], beside[o, 1])
    return inside, both


@njit(cache=True)
def fit_points(interior, pad, parity, most):
    """`prediction.fit`'s points of one column parity, as (rows, columns): the points of `interior`
    (from `interiors`) at rows >= pad and columns of that parity, every k-th of them in raster
    order with k = max(1, count // most)."""
    height, width = interior.shape
    count = 0
    for i in range(pad, height):
        for j in range(parity, width, 2):
            count += interior[i, j]
    inside = interior
    step = max(1, count // most)
    n = (count + step - 1) // step
    rows, columns = np.empty(n, np.int64), np.empty(n, np.int64)
    k, taken = 0, 0
    for i in range(pad, height):
        for j in range(parity, width, 2):
            if inside[i, j]:
                if k % step == 0:
                    rows[taken], columns[taken] = i, j
                    taken += 1
                k += 1
    return rows, columns




@njit(cache=True)
def varints(values):
    """int64 values as zigzag LEB128 bytes (small magnitudes take one byte)."""
    out = np.empty(values.size * 10, np.uint8)
    n = 0
    for k in range(values.size):
        v = np.uint64((values[k] << 1) ^ (values[k] >> 63))
        while v >= np.uint64(0x80):
            out[n] = np.uint8((v & np.uint64(0x7F)) | np.uint64(0x80))
            v >>= np.uint64(7)
            n += 1
        out[n] = np.uint8(v)
        n += 1
    return out[:n].copy()


@njit(cache=True)
def from_varints(data):
    """Inverse of `varints`; ok False when the bytes end inside a value or one runs past 64 bits."""
    out = np.empty(data.size, np.int64)
    n, k = 0, 0
    while k < data.size:
        v, shift = np.uint64(0), 0
        while True:
            if k >= data.size or shift > 63:
                return False, out[:0].copy()
            b = np.uint64(data[k])
            k += 1
            v |= (b & np.uint64(0x7F)) << np.uint64(shift)
            shift += 7
            if b < np.uint64(0x80):
                break
        out[n] = np.int64(v >> np.uint64(1)) ^ -np.int64(v & np.uint64(1))
        n += 1
    return True, out[:n].copy()


@njit(cache=True)
def exceedances(x, x_rec, valid, tol):
    """`classic.exceedances` compiled: flat indices of valid points where |x_rec - x| (float64)
    is not within tol[f] (NaN reconstructions count as misses). Counted first (usually none)."""
    n_features, height, width = x.shape
    xf, rf, vf = x.ravel(), x_rec.ravel(), valid.ravel()
    plane = height * width
    n = 0
    for f in range(n_features):
        for k in range(f * plane, (f + 1) * plane):
            n += vf[k] and not abs(np.float64(rf[k]) - np.float64(xf[k])) <= tol[f]
    out = np.empty(n, np.int64)
    if n == 0:
        return out
    n = 0
    for f in range(n_features):
        for k in range(f * plane, (f + 1) * plane):
            if n < out.size and vf[k] and not abs(np.float64(rf[k]) - np.float64(xf[k])) <= tol[f]:
                out[n] = k
                n += 1
    return out


@njit(cache=True)
def valid_values(values, valid):
    """The valid entries of a float32 block, in raster order (what `values[valid]` gives)."""
    out = np.empty(values.size, np.float32)
    flat, usable = values.ravel(), valid.ravel()
    n = 0
    for k in range(flat.size):
        if usable[k]:
            out[n] = flat[k]
            n += 1
    return out[:n]


@njit(cache=True)
def linear_decode(x_hat, valid, fills, weights, starts, around, row_offsets, n_earlier, step,
                  words, lo, hi, freqs, escapes, class_map, lanes, out):
    """Stream versions 2 to 5's decoder in one pass: each feature's two groups of q are rANS-decoded
    (`rans_decode`, or with lanes > 1 (at most 4) version 5's `_rans_fast_group`) just before the closed loop
    (`linear_loop`) runs over that feature, and the reconstruction is written as float32 into `out`.
    Returns the rANS decoder's status.

    x_hat: float32 as the inner codec decoded it, `fills[f]` standing in at invalid or non-finite
    points (what `prediction.finite_fill` gives); the predictions, their order and the float64
    reconstruction are those of `linear_loop`, so `out` equals its result cast to float32. One
    feature's q and x_hat (and the capped |q| of it and the one before, for the contexts) are held
    at a time: no block-sized temporaries beyond the reconstruction itself."""
    n_features, height, width = x_hat.shape
    half = (width + 1) // 2
    stride = half + 3
    plane = 2 * height * stride
    flat = np.empty((n_features + 1) * plane)  # [x_hat of f | rec of feature 0 | rec of 1 | ...]
    hat = flat[:plane].reshape((2, height, stride))
    acc = np.empty(half)
    most = 1 + around.shape[0] * (n_earlier + 1) + row_offsets.shape[0]
    term_starts, term_weights = np.empty(most, np.int64), np.empty(most)
    coder, status = _rans_start(words) if lanes == 1 else _rans_start_lanes(words, lanes)
    if status:
        return status
    tables, q, magnitudes = _decoder_buffers(freqs, class_map, height, half)
    fast = _fast_buffers(freqs, class_map, half)
    for f in range(n_features):
        for i in range(height):  # x_hat of f as `_padded_halves` lays it out, filled as `finite_fill` does
            for j in range(width):
                v = np.float64(x_hat[f, i, j])
                hat[j & 1, i, (j >> 1) + 1] = v if valid[f, i, j] and np.isfinite(v) else fills[f]
            _refresh_pads(hat, i, width)
        for parity in range(2):
            if lanes == 1:
                status = _decode_group(coder, words, escapes, tables, lo, hi, freqs, valid, f, parity, q, magnitudes,
                                       class_map)
            else:
                status = _decode_group_fast(coder, words, escapes, fast, lo, hi, freqs, valid, f, parity, q,
                                            magnitudes, class_map)
            if status:
                return status
        rec = flat[(f + 1) * plane : (f + 2) * plane].reshape((2, height, stride))
        first = max(0, f - n_earlier)
        for i in range(height):
            for parity in range(2):
                n = _predict_row(acc, flat, f, i, parity, first, plane, height, width, stride, around, row_offsets,
                                 weights, starts, term_starts, term_weights)
                qs = q[parity, i]
                for jj in range(n):
                    value = acc[jj]
                    if not np.isfinite(value):
                        value = hat[parity, i, jj + 1]
                    value = value + qs[jj] * step[f]
                    rec[parity, i, jj + 1] = value
                    out[f, i, parity + 2 * jj] = np.float32(value)
                _refresh_pads(rec, i, width)
    return _rans_finish(coder, words, escapes) if lanes == 1 else _rans_finish_lanes(coder, words, escapes)
