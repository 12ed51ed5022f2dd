"""Learned causal context: one small network per feature predicts a point from what the decoder holds.

`errorbound(context="learned")` runs the closed loop of `satflow.codecs.prediction` with this
network in place of per-block least squares. A point of feature f sees, as `prediction` defines
them, the reconstructions of up to `EARLIER` earlier features at the point and its four
neighbours, its own feature's reconstruction in the rows above and (odd columns) beside it, each
with a validity flag (invalid inputs read 0), plus its column parity and the noise level of its
inputs, log(eps / std). The network is an MLP (two hidden ReLU layers) plus a linear skip over the
values, in normalised units; trained on the patch index's train split (`satflow train --stage
context`) on inputs disturbed by +-eps uniform noise, which is what reconstructions look like.

It learns what a linear fit cannot: the regimes of the data. Window channels over land follow
the surface, over sea the vapour and cloud; frozen ground changes emissivity; a gap edge changes
which neighbours can be trusted.

Encoder and decoder must compute identical predictions on any machine, so inference is in fixed
point: inputs with `FRACTION` fraction bits, weights with `WEIGHT_BITS`, every product and sum an
integer held exactly in float64 (all bounded below 2^53, see `_check_bounds`). Exact integer sums
do not depend on summation order, so BLAS matrix products (any blocking, SIMD or FMA) give the
same bits everywhere; the rounding steps are floor and rint, which are exact.

The codec runs `ContextPredictor.closed_loop`: the points of one row and column parity are
predicted together (their inputs are all decoded: rows above, and for odd columns the row's even
points), layers 1 and 2 as two BLAS products over them, the rest compiled
(`kernels.context_closed_loop`), 6x-8x the numpy loop `prediction.run(..., reference=True)` that
defines the bits (`start`, `_StaticSums`, `_row_function`), which it gives exactly: the same integers
whatever the order of the sums, and the reference's float operations in its order elsewhere.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from satflow.codecs import kernels
from satflow.codecs.prediction import ABOVE, AROUND, BESIDE, EARLIER, PAD, parity_columns

ROW = ABOVE + BESIDE  # the row terms: same feature, decoded in this loop; BESIDE only for odd columns
FRACTION = 16  # fraction bits of activations (inputs, hidden units)
WEIGHT_BITS = 12  # fraction bits of weights
ACTIVATION_LIMIT = 2.0**23  # |activation| (fixed point) beyond this is clipped: 128 standard deviations
WEIGHT_LIMIT = 256.0  # |weight| beyond this cannot be held exactly: training diverged
MAX_HIDDEN = 128
ONE = 2.0**FRACTION  # 1.0 in fixed point (validity flags, parity)
_AROUND, _ROW = np.array(AROUND, np.int64), np.array(ROW, np.int64)  # as the compiled loops read them
STATIC_CHUNK = 2**22  # input-plane elements computed at once (32 MB): large blocks in row chunks


def static_slots(n_features: int) -> int:
    """Value inputs from earlier features (the same for every feature: unused slots read 0)."""
    return len(AROUND) * min(max(n_features - 1, 0), EARLIER)


def value_slots(n_features: int) -> int:
    return static_slots(n_features) + len(ROW)


def input_size(n_features: int) -> int:
    """[values | validity of each value | parity | noise]."""
    return 2 * value_slots(n_features) + 2


def earlier(f: int) -> range:
    return range(max(0, f - EARLIER), f)


class ContextNet(torch.nn.Module):
    """Per-feature MLP + linear skip, batched over features: (F, N, D) inputs -> (F, N) predictions."""

    def __init__(self, n_features: int, hidden: int = 64) -> None:
        super().__init__()
        if not 1 <= hidden <= MAX_HIDDEN:
            raise ValueError(f"context hidden width must be 1..{MAX_HIDDEN}, got {hidden}")
        d, v = input_size(n_features), value_slots(n_features)
        self.n_features, self.hidden = n_features, hidden

        def uniform(*shape: int, fan_in: int) -> torch.nn.Parameter:
            return torch.nn.Parameter((torch.rand(*shape) * 2 - 1) / math.sqrt(fan_in))

        self.w1, self.b1 = uniform(n_features, d, hidden, fan_in=d), torch.nn.Parameter(torch.zeros(n_features, hidden))
        self.w2, self.b2 = uniform(n_features, hidden, hidden, fan_in=hidden), torch.nn.Parameter(torch.zeros(n_features, hidden))
        self.w3, self.b3 = uniform(n_features, hidden, fan_in=hidden), torch.nn.Parameter(torch.zeros(n_features))
        self.skip = torch.nn.Parameter(torch.zeros(n_features, v))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        h = torch.relu(torch.bmm(inputs, self.w1) + self.b1[:, None])
        h = torch.relu(torch.bmm(h, self.w2) + self.b2[:, None])
        values = inputs[..., : self.skip.shape[1]]
        return (h * self.w3[:, None]).sum(-1) + self.b3[:, None] + (values * self.skip[:, None]).sum(-1)


# --- training inputs (torch) ---------------------------------------------------------------------
def sample_points(x: torch.Tensor, mask: torch.Tensor, n_points: int, noise: tuple[float, float],
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random training points of every feature from a batch of normalised patches.

    x, mask: (B, F, h, w), x normalised with invalid = 0. The inputs are disturbed by U(-eps, eps),
    eps (in standard deviations) log-uniform in `noise` per patch and feature. Points are valid
    and at least two cells from the patch's edges, so every neighbour is real data.
    Returns inputs (F, N, D), targets (F, N) and weights (F, N): 0 for a feature with no point.
    """
    b, n_features, h, w = x.shape
    lo, hi = math.log(noise[0]), math.log(noise[1])
    log_eps = lo + (hi - lo) * torch.rand(b, n_features, generator=generator)
    disturbance = (2 * torch.rand(x.shape, generator=generator) - 1) * log_eps.exp()[..., None, None]
    noisy = (x + disturbance) * mask
    interior = torch.zeros(h, w, dtype=torch.bool)
    interior[2 : h - 1, 2 : w - 2] = True
    inputs = torch.zeros(n_features, n_points, input_size(n_features))
    targets, weights = torch.zeros(n_features, n_points), torch.zeros(n_features, n_points)
    for f in range(n_features):
        candidates = ((mask[:, f] > 0) & interior).flatten().nonzero().squeeze(1)
        if candidates.numel() == 0:
            continue
        pick = candidates[torch.randint(candidates.numel(), (n_points,), generator=generator)]
        pb, pi, pj = pick // (h * w), pick // w % h, pick % w
        inputs[f] = point_inputs(noisy, mask, f, pb, pi, pj, log_eps[pb, f])
        targets[f], weights[f] = x[pb, f, pi, pj], 1.0
    return inputs, targets, weights


def point_inputs(noisy, mask, f: int, pb, pi, pj, log_eps) -> torch.Tensor:
    n_features, h, w = noisy.shape[1:]
    s, v = static_slots(n_features), value_slots(n_features)
    out = torch.zeros(pb.numel(), input_size(n_features), dtype=noisy.dtype)
    parity = (pj % 2).float()

    def at(g: int, up: int, left: int):
        i, j = (pi - up).clamp(0, h - 1), (pj - left) % w
        return noisy[pb, g, i, j], mask[pb, g, i, j]

    for k, (g, offset) in enumerate((g, o) for g in earlier(f) for o in AROUND):
        out[:, k], out[:, v + k] = at(g, *offset)
    for k, offset in enumerate(ROW):
        value, valid = at(f, *offset)
        keep = parity if offset in BESIDE else 1.0
        out[:, s + k], out[:, v + s + k] = value * keep, valid * keep
    out[:, 2 * v], out[:, 2 * v + 1] = parity, log_eps
    return out


# --- exact inference (numpy, fixed point) --------------------------------------------------------
def _fixed(values: np.ndarray, bits: int) -> np.ndarray:
    return np.rint(np.asarray(values, np.float64) * 2.0**bits)


class FixedPointNet:
    """ContextNet weights as integers (held in float64) for bit-exact inference anywhere."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        arrays = {k: t.detach().cpu().double().numpy() for k, t in state.items()}
        largest = max(float(np.abs(a).max(initial=0.0)) for a in arrays.values())
        if not math.isfinite(largest) or largest > WEIGHT_LIMIT:
            raise ValueError(f"context network weight of magnitude {largest:g} (limit {WEIGHT_LIMIT:g}): "
                             "training diverged; retrain the context stage with a lower train.lr")
        self.w1, self.w2, self.w3, self.skip = (_fixed(arrays[k], WEIGHT_BITS) for k in ("w1", "w2", "w3", "skip"))
        bias_bits = FRACTION + WEIGHT_BITS  # a bias adds to products of an activation and a weight
        self.b1, self.b2, self.b3 = (_fixed(arrays[k], bias_bits) for k in ("b1", "b2", "b3"))
        self.n_features, _, self.hidden = self.w1.shape
        _check_bounds(self.w1.shape[1], self.hidden)


def _check_bounds(n_inputs: int, hidden: int) -> None:
    """Every partial sum stays an exact float64 integer: terms * max |activation| * max |weight| < 2^53
    (the output sums hidden units and the skip's inputs: fewer terms than n_inputs + hidden)."""
    weight = WEIGHT_LIMIT * 2.0**WEIGHT_BITS
    worst = (n_inputs + hidden) * ACTIVATION_LIMIT * weight + 2.0**(FRACTION + WEIGHT_BITS) * WEIGHT_LIMIT
    assert worst < 2.0**53, "fixed-point context network sums could exceed exact float64 integers"


def _activation(z: np.ndarray) -> np.ndarray:
    """Pre-activation at FRACTION + WEIGHT_BITS bits -> ReLU at FRACTION bits (floor: exact), in place."""
    np.multiply(z, 2.0**-WEIGHT_BITS, out=z)
    np.floor(z, out=z)
    return np.clip(z, 0.0, ACTIVATION_LIMIT, out=z)


def noise_inputs(eps: np.ndarray, std: np.ndarray) -> np.ndarray:
    """log(eps / std) in fixed point, per feature. Computed once by the encoder and stored in the
    stream: the decoder never evaluates a logarithm, whose last bit may differ between libms."""
    return np.clip(_fixed(np.log(eps / std), FRACTION), -ACTIVATION_LIMIT, ACTIVATION_LIMIT)


class ContextPredictor:
    """The `prediction.run` predictor backed by a FixedPointNet (one per block: it caches the
    fixed-point reconstructions of the features already coded)."""

    def __init__(self, net: FixedPointNet, mean: np.ndarray, std: np.ndarray, noise: np.ndarray) -> None:
        self.net, self.noise = net, np.asarray(noise, np.float64)
        self.mean, self.std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
        self._coded: dict[int, np.ndarray] = {}

    def _coded_input(self, g: int, rec: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """All features' fixed-point reconstructions (F, H, W), feature g's filled in once it is
        final, 0 where invalid: read by up to EARLIER later features (shifting commutes with the
        elementwise quantisation)."""
        if g not in self._coded:
            if not self._coded:
                self._all_coded = np.zeros(rec.shape)
            self._all_coded[g] = self._quantise(rec[g], valid[g], g)
            self._coded[g] = self._all_coded[g]
        return self._all_coded

    def _quantise(self, values: np.ndarray, valid: np.ndarray, g: int) -> np.ndarray:
        """Fixed-point inputs of feature g: 0 where invalid (compiled: it runs once a row)."""
        return kernels.fixed_inputs(np.ascontiguousarray(values, np.float64), np.ascontiguousarray(valid, bool),
                                     self.mean[g], self.std[g], ONE, ACTIVATION_LIMIT)

    def closed_loop(self, x_hat: np.ndarray, mask: np.ndarray, step: np.ndarray, *,
                    x: np.ndarray | None = None, q: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`prediction.run`'s loop, batched a row at a time and compiled: the same integers,
        predictions and q as the numpy loop (`run(..., reference=True)`), so the same bytes.

        The points of one row and column parity depend only on rows above and (odd columns) the
        row's even ones, so they are predicted together: `kernels.context_gather` lays out their
        inputs, layers 1 and 2 are two BLAS products (exact: integers, see `_check_bounds`), and
        compiled loops apply the activations and the output layer, quantise and reconstruct
        (`kernels.context_closed_loop`). Invalid points are never predicted and keep x_hat in the returned
        reconstruction (no input reads them, decoding returns NaN there), where the reference
        leaves its prediction; q and every valid point are the reference's.
        """
        encoding = x is not None
        n_features = mask.shape[0]
        q = np.zeros(mask.shape, np.int64) if encoding else np.ascontiguousarray(q, np.int64)
        if encoding:
            x = np.ascontiguousarray(x if np.asarray(x).dtype == np.float32 else np.asarray(x, np.float64))
        else:
            x = np.zeros((1, 1, 1), np.float32)
        net, s, v = self.net, static_slots(n_features), value_slots(n_features)
        ones = ONE * net.w1
        layers = [[self._row_layer(f, parity, ones[f]) for parity in (0, 1)] for f in range(n_features)]
        rec = kernels.context_closed_loop(
            np.ascontiguousarray(x_hat, np.float64), np.ascontiguousarray(mask != 0), x, q, encoding, layers, ones,
            net.w2, net.b2, net.w3, net.b3, self.mean, self.std, 2.0**-(FRACTION + WEIGHT_BITS) * self.std,
            np.asarray(step, np.float64), _AROUND, _ROW, len(BESIDE), EARLIER, v, v + s, ONE, ACTIVATION_LIMIT,
            2.0**-WEIGHT_BITS)
        return rec, q

    def _row_layer(self, f: int, parity: int, ones: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(w1 rows of the value inputs `kernels.context_gather` lays out, with the skip as a last
        column; the layer-1 sum with every flag set: b1, noise, parity, each validity flag's term)."""
        net, n_features = self.net, self.net.n_features
        s, v = static_slots(n_features), value_slots(n_features)
        n_static = len(AROUND) * len(earlier(f))
        n_terms = len(ROW) if parity else len(ROW) - len(BESIDE)
        slots = [*range(n_static), *range(s, s + n_terms)]
        w1 = np.ascontiguousarray(np.concatenate([net.w1[f, slots], net.skip[f, slots, None]], axis=1))
        start = (net.b1[f] + self.noise[f] * net.w1[f, 2 * v + 1] + parity * ones[2 * v]
                 + ones[v : v + n_static].sum(axis=0) + ones[v + s : v + s + n_terms].sum(axis=0))
        return w1, start

    def start(self, f: int, x_hat: np.ndarray, rec: np.ndarray, valid: np.ndarray):
        """Row functions of feature f (even columns, odd columns) over shared static sums."""
        static = _StaticSums(self, f, rec, valid)
        width, rows = valid.shape[2], np.arange(valid.shape[1])
        functions = []
        for parity in (0, 1):
            cols = parity_columns(width, parity)
            row_offsets = [(k, o) for k, o in enumerate(ROW) if parity or o not in BESIDE]
            seen = np.stack([_shifted(valid[f], *o, rows)[:, cols] for _, o in row_offsets], axis=1)
            functions.append(self._row_function(f, cols, static, row_offsets, seen, width))
        return functions

    def _static_slots(self, f: int, n_static: int) -> list[int]:
        """Rows of w1 for the planes of `_static_planes`, in their order."""
        s, v = static_slots(self.net.n_features), value_slots(self.net.n_features)
        return [*range(n_static), *range(v, v + n_static), *(v + s + k for k in range(len(ROW))), 2 * v, 2 * v + 1]

    def _static_planes(self, f: int, rec: np.ndarray, valid: np.ndarray, top: int, stop: int) -> np.ndarray:
        """Fixed-point inputs known before feature f is coded, rows top..stop-1, as (planes, points):
        earlier features' values and validity, the validity of the row terms (BESIDE only at odd
        columns), parity, noise."""
        first, coded = earlier(f).start, np.zeros((1, 1, 1))  # feature 0 reads no earlier one
        for g in earlier(f):
            coded = self._coded_input(g, rec, valid)
        return kernels.static_planes(coded, np.ascontiguousarray(valid), first, f, top, stop, _AROUND, _ROW,
                                      len(BESIDE), self.noise[f], ONE)

    def _row_function(self, f, cols, static, row_offsets, seen, width):
        """row(i, padded): the predictions of row i's `cols`; `seen` (rows, terms, columns) flags
        which row terms are valid."""
        net, s = self.net, static_slots(self.net.n_features)
        slots = [s + k for k, _ in row_offsets]
        w1_row, skip_row = net.w1[f, slots], net.skip[f, slots]
        ups = np.array([up for _, (up, _) in row_offsets])[:, None]
        where = np.stack([(cols - left) % width for _, (_, left) in row_offsets])
        scale = 2.0**-(FRACTION + WEIGHT_BITS) * self.std[f]

        def row(i: int, padded: np.ndarray) -> np.ndarray:
            z1, skip = static.row(i)
            values = self._quantise(padded[PAD + i - ups, where], seen[i], f).T  # (columns, terms)
            h1 = _activation(z1[cols] + values @ w1_row)
            h2 = _activation(h1 @ net.w2[f] + net.b2[f])
            return (h2 @ net.w3[f] + net.b3[f] + skip[cols] + values @ skip_row) * scale + self.mean[f]

        return row


class _StaticSums:
    """Layer-1 sums and skip of everything known before feature f is coded (earlier features, the
    validity of the row terms, parity, noise), computed a chunk of rows at a time as the loop
    reaches them: memory stays bounded by STATIC_CHUNK, not by the block's size."""

    def __init__(self, predictor: ContextPredictor, f: int, rec: np.ndarray, valid: np.ndarray) -> None:
        self.predictor, self.f, self.rec, self.valid = predictor, f, rec, valid
        self.n_static = len(AROUND) * len(earlier(f))
        slots = predictor._static_slots(f, self.n_static)
        net = predictor.net
        self.w1, self.skip_w, self.b1 = net.w1[f, slots], net.skip[f, : self.n_static], net.b1[f]
        self.chunk = max(1, STATIC_CHUNK // (valid.shape[2] * len(slots)))
        self.top, self.z1, self.skip = -self.chunk, None, None  # no row computed yet

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(layer-1 sums (width, hidden), skip (width)) of row i; rows are asked for in order."""
        if not self.top <= i < self.top + self.chunk:
            self._compute(i - i % self.chunk)
        return self.z1[i - self.top], self.skip[i - self.top]

    def _compute(self, top: int) -> None:
        rows = np.arange(top, min(self.valid.shape[1], top + self.chunk))
        planes = self.predictor._static_planes(self.f, self.rec, self.valid, top, top + rows.size)
        width = self.valid.shape[2]
        self.z1 = (planes.T @ self.w1).reshape(rows.size, width, -1) + self.b1
        self.skip = (planes[: self.n_static].T @ self.skip_w).reshape(rows.size, width)
        self.top = top


def _around_rows(field: np.ndarray, up: int, left: int, rows: np.ndarray) -> np.ndarray:
    """`prediction._around(field, up, left)[rows]`: rows clamp at the block's edges, columns wrap."""
    return np.roll(field[np.clip(rows - up, 0, field.shape[0] - 1)], left, axis=1)


def _shifted(valid: np.ndarray, up: int, left: int, rows: np.ndarray) -> np.ndarray:
    """Validity of field[i - up, j - left] at `rows`, as float; rows above the block are invalid."""
    inside = rows - up >= 0
    return np.where(inside[:, None], _around_rows(valid, up, left, rows), False).astype(np.float64)
