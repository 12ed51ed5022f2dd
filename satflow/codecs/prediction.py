"""Closed-loop causal linear prediction: the context model of `errorbound` (context="causal").

Each valid point is predicted from values the decoder already holds, and only the prediction error
is quantised (step 2*eps) and coded; reconstructed values, not the originals, feed the next
predictions, so errors never accumulate (near-lossless DPCM, as in JPEG-LS and CALIC). The order:

- features one after another; inside a feature, rows in index order; inside a row, even columns
  first, then odd columns, which also see their left and right (even) neighbours;
- a point sees, in this order: a constant; the inner codec's reconstruction x_hat of its own
  feature at the point and its four neighbours; the reconstruction of each earlier feature (the
  last `EARLIER` of them) at the point and its four neighbours, since channels of one instrument
  share most of their structure; its own feature's reconstruction in the two rows above (`ABOVE`)
  and, for odd columns, beside it (`BESIDE`).

Invalid points take their prediction as their value: the decoder knows the mask, so they cost
nothing. Coefficients are fitted per feature and column parity by least squares at encode time, on
the input plus uniform noise of +-eps (what reconstruction error looks like), over at most about
2 x MAX_FIT_POINTS points, and travel in the stream as float32. The fit runs compiled too: the
normal equations summed in a fixed order and solved by Cholesky (`kernels.robust_least_squares`,
no BLAS), so the same input gives the same coefficients, hence the same stream, on every machine
and thread count. Predictions are sums of float64 products in a fixed order, elementwise only (no
BLAS reductions), so a decoder on any machine repeats them bit for bit.

The loop runs compiled (`satflow.codecs.kernels.linear_loop`, numba): the same float64 operations
in the same order as the numpy loop `run(..., reference=True)`, which defines the bits (tests compare
the two, and with the JIT off).

Written by hand because no library does near-lossless prediction over masked multi-feature grids:
SZ3 and ZFP code each array on its own and must also code the filled gaps.
"""

from __future__ import annotations

import math

import numpy as np

from satflow.codecs import kernels
from satflow.codecs.residuals import check_residual_status

AROUND = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # (rows up, columns left): point and 4 neighbours
ABOVE = ((1, 0), (1, 1), (1, -1), (2, 0), (1, 2), (1, -2))  # same feature, rows already decoded
BESIDE = ((0, 1), (0, -1))  # same feature, same row: the even columns, decoded in the first pass
EARLIER = 16  # earlier features a point sees at most: bounds the cost on stores with many features
PAD = 2  # rows above the block, set to the inner reconstruction's first row
LIMIT = 2**40  # prediction errors beyond this many steps are not coded: the point becomes a patch
MAX_FIT_POINTS = 4096  # least squares on an even subsample: the fit costs little, the coding the same
_NOISE_SEED = 0  # the fitting noise only shapes coefficients; fixed so that equal inputs give equal bytes
AROUND_ARRAY = np.array(AROUND, np.int64)  # the offsets as the compiled loop reads them
ROW_ARRAY = np.array(ABOVE + BESIDE, np.int64)
ABOVE_ARRAY, BESIDE_ARRAY = np.array(ABOVE, np.int64), np.array(BESIDE, np.int64)


def n_terms(feature: int, parity: int) -> int:
    """Coefficients of one (feature, column parity) predictor."""
    return 1 + len(AROUND) * (1 + min(feature, EARLIER)) + len(ABOVE) + parity * len(BESIDE)


def coefficient_count(n_features: int) -> int:
    return sum(n_terms(f, p) for f in range(n_features) for p in (0, 1))


def finite_fill(x_hat: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """x_hat in float64 with every invalid or non-finite point set to its feature's valid mean.

    The mean is the exactly rounded sum's (math.fsum's), so encoder and decoder agree on any machine.
    """
    valid = np.ascontiguousarray(mask != 0)
    if x_hat.dtype == np.float32:
        x_hat = np.ascontiguousarray(x_hat)
        return kernels.filled(x_hat, valid, fill_values(x_hat, valid))
    out = np.array(x_hat, dtype=np.float64)
    usable = valid & np.isfinite(out)
    for f in range(out.shape[0]):
        count = int(np.count_nonzero(usable[f]))
        fill = math.fsum(out[f][usable[f]].tolist()) / count if count else 0.0
        out[f][~usable[f]] = fill if math.isfinite(fill) else 0.0
    return out


def fill_values(x_hat: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """What `finite_fill` puts at each feature's invalid points (float32 x_hat, C-contiguous)."""
    sums, counts = kernels.float32_exponent_sums_usable(x_hat, valid)
    return np.array([_mean(x_hat, valid, f, row, int(counts[f])) for f, row in enumerate(sums.tolist())], np.float64)


def _mean(x_hat: np.ndarray, valid: np.ndarray, f: int, sums: list[int], count: int) -> float:
    """Feature f's exactly rounded mean from its integer sums per binary exponent (see
    `kernels.float32_exponent_sums_usable`); 0 when it has no usable point or overflows."""
    if not count:
        return 0.0
    total = sum(s << e for e, s in enumerate(sums) if s)
    if total:  # float32 sums stay far below float64's range: the division is exact-then-rounded
        fill = (total / 2**149) / count
    else:  # an exact zero goes through fsum for its signed zero
        usable = valid[f] & np.isfinite(x_hat[f])
        fill = math.fsum(x_hat[f][usable].astype(np.float64).tolist()) / count
    return fill if math.isfinite(fill) else 0.0


def _around(field: np.ndarray, up: int, left: int) -> np.ndarray:
    """field[i - up, j - left]: rows clamp at the block's edges, columns wrap (global longitudes)."""
    height, width = field.shape
    rows = field[np.clip(np.arange(height) - up, 0, height - 1)]
    shift = left % width
    return np.concatenate([rows[:, width - shift:], rows[:, :width - shift]], axis=1) if shift else rows


def _static_terms(f: int, x_hat: np.ndarray, rec: np.ndarray) -> list[np.ndarray]:
    """The terms of feature f known before it is coded, in coefficient order (after the constant)."""
    terms = [_around(x_hat[f], *o) for o in AROUND]
    for g in range(max(0, f - EARLIER), f):
        terms += [_around(rec[g], *o) for o in AROUND]
    return terms


def parity_columns(width: int, parity: int) -> np.ndarray:
    """The columns of one parity (the closed loop codes even columns, then odd ones, per row)."""
    return np.arange(parity, width, 2)


def padded_field(field: np.ndarray, top: np.ndarray) -> np.ndarray:
    """(PAD + H, W): PAD copies of `top` above `field`."""
    return np.concatenate([np.broadcast_to(top, (PAD, field.shape[1])), field])


def _row_offsets(parity: int) -> tuple[tuple[int, int], ...]:
    return ABOVE + (BESIDE if parity else ())


def fit(x: np.ndarray, mask: np.ndarray, x_hat: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """float32 coefficients of every (feature, parity) predictor, concatenated.

    `x_hat` must come from `finite_fill`. Fitted open loop on x + U(-eps, eps), over the points
    whose predicting neighbours are all valid and inside the block (gap edges and the block's top
    rows would otherwise pull the fit); a group with too few such points, or a singular fit,
    predicts x_hat instead. Terms are gathered at the fitting points only.
    """
    rng = np.random.default_rng(_NOISE_SEED)
    valid = np.ascontiguousarray(mask != 0)
    noise = rng.uniform(-1.0, 1.0, x.shape)  # U(-eps, eps) once scaled, as the decoder's errors are
    noisy = kernels.noisy_inputs(np.ascontiguousarray(x), valid, noise, np.asarray(eps, np.float64), x_hat)
    coefficients = []
    x_hat = np.ascontiguousarray(x_hat, np.float64)
    for f in range(x.shape[0]):
        first = max(0, f - EARLIER)
        every = kernels.all_valid(valid, first, f)
        for parity, interior in enumerate(kernels.interiors(valid, f, every, first, AROUND_ARRAY, ABOVE_ARRAY,
                                                             BESIDE_ARRAY)):
            rows, columns = kernels.fit_points(interior, PAD, parity, MAX_FIT_POINTS)
            design = np.empty((rows.size, n_terms(f, parity) - 1))
            kernels.gather_design(x_hat, noisy, f, first, rows, columns, AROUND_ARRAY, ROW_ARRAY,
                                  len(_row_offsets(parity)), design)
            coefficients.append(_fitted(design, x[f][rows, columns].astype(np.float64)))
    return np.concatenate(coefficients).astype(np.float32)


def _fitted(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[constant, weights...] of `kernels.robust_least_squares` (the normal equations summed in a
    fixed order and solved by Cholesky in compiled code: the same coefficients on every machine and
    thread count), or x_hat at the point when there are too few points or the fit fails."""
    fallback = np.zeros(1 + design.shape[1])
    fallback[1] = 1.0  # x_hat at the point itself
    if design.shape[0] < 4 * design.shape[1]:
        return fallback
    ok, solution = kernels.robust_least_squares(design, target)  # not ok when a value is not finite
    return solution if ok and np.all(np.isfinite(solution)) and np.abs(solution).max() < 1e6 else fallback


def interiors_reference(valid: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column parity, the valid points of feature f whose every predicting neighbour is valid
    too (a shifted AND is the AND of the shifted masks: earlier features are ANDed first).

    The numpy reference of `kernels.fit_points`, which `fit` runs (tests compare the two)."""
    inside = valid[f].copy()
    earlier = valid[max(0, f - EARLIER) : f]
    if earlier.shape[0]:
        every = np.logical_and.reduce(earlier, axis=0)
        for offset in AROUND:
            inside &= _around(every, *offset)
    for offset in ABOVE:
        inside &= _around(valid[f], *offset)
    beside = inside.copy()
    for offset in BESIDE:
        beside &= _around(valid[f], *offset)
    return inside, beside


def least_squares_reference(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[constant, weights...] by least squares, refitted without the points it misses by far.

    Squared error lets a few points (next to gaps, at a block's edge) pull every coefficient; the
    coder pays for all the others, so the second fit ignores misses beyond 4 robust deviations.
    The numpy (LAPACK) reference of `kernels.robust_least_squares`, which `fit` runs: the same
    problem, solved in a fixed order (tests compare the two to rounding).
    """
    fallback = np.zeros(1 + design.shape[1])
    fallback[1] = 1.0  # x_hat at the point itself
    if design.shape[0] < 4 * design.shape[1] or not np.all(np.isfinite(design)) or not np.all(np.isfinite(target)):
        return fallback
    first = _solve(design, target)
    if first is None:
        return fallback
    miss = np.abs(target - first[0] - design @ first[1:])
    keep = miss <= 4.0 * 1.4826 * np.median(miss) + 1e-12
    second = _solve(design[keep], target[keep]) if 4 * design.shape[1] <= keep.sum() < keep.size else first
    return second if second is not None else first


def _solve(design: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """Least squares on centred columns with a tiny ridge; None when it fails."""
    mean, target_mean = design.mean(axis=0), target.mean()
    centred = design - mean
    gram = centred.T @ centred
    gram[np.diag_indices_from(gram)] += 1e-9 * np.trace(gram) / gram.shape[0] + 1e-12
    try:
        weights = np.linalg.solve(gram, centred.T @ (target - target_mean))
    except np.linalg.LinAlgError:
        return None
    solution = np.concatenate([[target_mean - mean @ weights], weights])
    return solution if np.all(np.isfinite(solution)) and np.abs(solution).max() < 1e6 else None


class LinearPredictor:
    """Per-block least-squares coefficients (from `fit`): the prediction is a weighted sum of terms."""

    def __init__(self, coefficients: np.ndarray, n_features: int) -> None:
        if coefficients.size != coefficient_count(n_features):
            raise ValueError(f"{coefficients.size} prediction coefficients for {n_features} features, "
                             f"expected {coefficient_count(n_features)}")
        sizes = [n_terms(f, p) for f in range(n_features) for p in (0, 1)]
        self._flat = coefficients.astype(np.float64)
        self._starts = np.cumsum([0] + sizes[:-1]).astype(np.int64)
        self._weights = np.split(self._flat, np.cumsum(sizes)[:-1])

    def closed_loop(self, x_hat: np.ndarray, mask: np.ndarray, step: np.ndarray, *,
                    x: np.ndarray | None = None, q: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`run`'s loop compiled (`satflow.codecs.kernels`): the same operations, the same bits."""
        encoding = x is not None
        q = np.zeros(mask.shape, np.int64) if encoding else np.ascontiguousarray(q, np.int64)
        x = np.asarray(x) if encoding else np.zeros((1, 1, 1), np.float32)
        x = x if x.dtype == np.float32 else x.astype(np.float64)
        rec = kernels.linear_loop(np.ascontiguousarray(x_hat, np.float64), np.ascontiguousarray(mask != 0),
                                   self._flat, self._starts, AROUND_ARRAY, ROW_ARRAY, EARLIER,
                                   np.asarray(step, np.float64), np.ascontiguousarray(x), q, encoding)
        return rec, q

    def decode_stream(self, x_hat: np.ndarray, model, step: np.ndarray) -> np.ndarray:
        """Stream versions 2 to 5's one-pass decoder (`kernels.linear_decode`): the float32 reconstruction
        that `run` on `finite_fill(x_hat)` with the q that `model` (a `residuals.ResidualModel`)
        codes would give, cast to float32. ContainerError when the residual stream does not decode."""
        x_hat = np.ascontiguousarray(x_hat, np.float32)
        out = np.empty(x_hat.shape, np.float32)
        check_residual_status(kernels.linear_decode(
            x_hat, model.valid, fill_values(x_hat, model.valid), self._flat, self._starts, AROUND_ARRAY,
            ROW_ARRAY, EARLIER, np.asarray(step, np.float64), model.words, model.lo, model.hi, model.freqs,
            model.escapes, model.class_map, model.lanes, out))
        return out

    def start(self, f: int, x_hat: np.ndarray, rec: np.ndarray, valid: np.ndarray):
        """One row function per column parity: row(i, padded) -> predictions at that row's columns."""
        static = _static_terms(f, x_hat, rec)
        return [self._row_function(*_pass(parity, self._weights[2 * f + parity], static, x_hat.shape[2]))
                for parity in (0, 1)]

    @staticmethod
    def _row_function(base: np.ndarray, offsets: list):
        def row(i: int, padded: np.ndarray) -> np.ndarray:
            prediction = base[i].copy()
            for up, at, weight in offsets:
                prediction += weight * padded[PAD + i - up, at]
            return prediction
        return row


def run(x_hat: np.ndarray, mask: np.ndarray, predictor, step: np.ndarray, *,
        x: np.ndarray | None = None, q: np.ndarray | None = None, reference: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The closed loop shared by encoder (`x` given: computes q) and decoder (`q` given).

    A predictor with a compiled loop (`closed_loop`) runs it unless `reference` asks for this
    numpy loop, which defines the bits both must give.

    `predictor.start(f, x_hat, rec, valid)` returns, per column parity, a function of (row, padded
    reconstruction of feature f) giving the predictions of that row's columns (`LinearPredictor`,
    or the learned `satflow.codecs.learned.context.ContextPredictor`). Returns (reconstruction in
    float64, q as int64), both (feature, lat, lon); q is 0 where invalid.
    """
    if not reference and hasattr(predictor, "closed_loop"):
        return predictor.closed_loop(x_hat, mask, step, x=x, q=q)
    n_features, height, width = mask.shape
    encoding = x is not None
    q = np.zeros(mask.shape, np.int64) if encoding else q
    valid = mask != 0
    rec = np.array(x_hat, dtype=np.float64)  # rows not yet reached are never read
    for f in range(n_features):
        rows = predictor.start(f, x_hat, rec, valid)
        padded = padded_field(rec[f], x_hat[f, 0])  # rec[f] rows live at padded[PAD:]: written in place below
        for i in range(height):
            for parity, row in enumerate(rows):  # even columns, then odd ones (which see the even ones)
                cols = parity_columns(width, parity)
                prediction = row(i, padded)
                prediction = np.where(np.isfinite(prediction), prediction, x_hat[f, i, cols])
                if encoding:
                    q[f, i, cols] = _quantise(x[f, i, cols], prediction, step[f], valid[f, i, cols])
                padded[PAD + i, cols] = prediction + q[f, i, cols] * step[f]
        rec[f] = padded[PAD:]
    return rec, q


def _pass(parity: int, c: np.ndarray, static: list[np.ndarray], width: int):
    """(static part of the prediction for every row, row terms as (up, columns, weight))."""
    cols = parity_columns(width, parity)
    base = np.full((static[0].shape[0], cols.size), c[0])
    for k, term in enumerate(static, start=1):
        base += c[k] * term[:, cols]
    offsets = [(up, (cols - left) % width, c[len(static) + 1 + i]) for i, (up, left) in enumerate(_row_offsets(parity))]
    return base, offsets


def _quantise(x: np.ndarray, prediction: np.ndarray, step: float, valid: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        error = (x.astype(np.float64) - prediction) / step
    codable = valid & np.isfinite(error) & (np.abs(error) < LIMIT)
    return np.where(codable, np.rint(np.where(codable, error, 0.0)), 0.0).astype(np.int64)


def groups(q: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """q of the valid points, one group per (feature, column parity): each has its own statistics."""
    return [q[f][:, p::2][mask[f][:, p::2] != 0] for f in range(q.shape[0]) for p in (0, 1)]


def group_sizes(mask: np.ndarray) -> list[int]:
    return [int(np.count_nonzero(mask[f][:, p::2])) for f in range(mask.shape[0]) for p in (0, 1)]


def scatter(values: list[np.ndarray], mask: np.ndarray) -> np.ndarray:
    """Inverse of `groups`: a (feature, lat, lon) int64 array with 0 at invalid points."""
    q = np.zeros(mask.shape, np.int64)
    pairs = iter(values)
    for f in range(mask.shape[0]):
        for p in (0, 1):
            view = q[f][:, p::2]
            view[mask[f][:, p::2] != 0] = next(pairs)
    return q
