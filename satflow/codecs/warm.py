"""Warm errorbound's compiled kernels once per process (a Dask worker), so that no task pays for them.

The first errorbound call in a fresh process loads every numba kernel from the on-disk cache and
specialises it (about 0.2-0.5 s; about 16 s when the cache is cold, once per machine), which made
the first block 2.6x slower than the next. `warm_kernels()` codes a tiny block through each path
(the closed loop and its fit, both rANS context schemes, the one-pass decoder, the banded rANS
decoder of context="none", SZ3's stream) with the dtypes real blocks have, and runs the learned
context's closed loop (`kernels.context_closed_loop`) on a tiny random integer network (no
checkpoint, no torch), so the kernels a task needs are ready. It changes no state that reaches a
stream: a block coded after it is bit-identical to one coded without it.

Registering the plugin on a cluster warms every worker, those that join later included:

    from satflow.codecs.warm import WarmKernels
    client.register_plugin(WarmKernels())          # distributed >= 2023.9 (register_worker_plugin before)
"""

from __future__ import annotations

import time

import numpy as np
from distributed import WorkerPlugin


def _warm_block(rows: int = 40, columns: int = 48) -> np.ndarray:
    """Three smooth features with a gap and a noisy patch: every kernel's path, in well under a second."""
    rng = np.random.default_rng(0)
    lat, lon = np.meshgrid(np.linspace(0, 3, rows), np.linspace(0, 5, columns), indexing="ij")
    block = np.stack([250 + 10 * f + 8 * np.sin(lon + f) * np.cos(lat) for f in range(3)])
    block = block + rng.normal(0, 0.5, block.shape)
    block[:, :, 20:23] = np.nan
    return block.astype(np.float32)


def warm_kernels() -> float:
    """Compile or load every errorbound kernel in this process; returns the seconds it took."""
    from satflow.codecs.registry import get_codec
    from satflow.codecs.residuals import LANE_ROWS

    start = time.perf_counter()
    block = _warm_block()
    mask = np.isfinite(block).astype(np.uint8)
    for eps, sz3_trial in ((0.05, False), (0.5, True)):  # fine: contexts (scheme 1); coarse: SZ3's stream tried
        codec = get_codec("errorbound", inner="constant", eps=eps)
        codec.sz3_trial = sz3_trial
        codec.decode(codec.encode(block, mask))
    single = get_codec("errorbound", inner="constant", eps=0.5)  # one smooth feature: SZ3's stream decoded too
    single.decode(single.encode(block[:1, :, :20], mask[:1, :, :20]))
    # context="none" decodes through `residuals.decode_residuals`: one rANS band, and several (a block of
    # more than 2 x LANE_POINTS valid points and 2 x LANE_ROWS rows); without this its first block paid
    # 3.6 s of compilation.
    plain = get_codec("errorbound", inner="constant", eps=0.5, context="none")
    for part in (block, _warm_block(rows=2 * LANE_ROWS, columns=192)):
        plain.decode(plain.encode(part, np.isfinite(part).astype(np.uint8)))
    _warm_context(block[:2, :8, :10])
    return time.perf_counter() - start


def _warm_context(block: np.ndarray, hidden: int = 4) -> None:
    """The learned context's loop (encode, then decode) on `block` with random integer weights laid
    out as `ContextPredictor.closed_loop` lays them out (the same argument types, so the same
    compiled specialisations)."""
    from satflow.codecs import kernels
    from satflow.codecs.prediction import ABOVE, AROUND, BESIDE, EARLIER

    rng = np.random.default_rng(0)
    n_features = block.shape[0]
    row = np.array(ABOVE + BESIDE, np.int64)
    values = len(AROUND) * (n_features - 1) + len(row)
    ones = rng.integers(-8, 8, (n_features, 2 * values + 2, hidden)).astype(np.float64) * 2.0**16
    layers = [[(rng.integers(-8, 8, (len(AROUND) * f + len(row) - (0 if parity else len(BESIDE)), hidden + 1))
                .astype(np.float64), rng.integers(-8, 8, hidden).astype(np.float64) * 2.0**28) for parity in (0, 1)]
              for f in range(n_features)]
    w2 = rng.integers(-8, 8, (n_features, hidden, hidden)).astype(np.float64)
    b2, w3 = (rng.integers(-8, 8, (n_features, hidden)).astype(np.float64) for _ in range(2))
    b3, mean, std, step = np.zeros(n_features), np.full(n_features, 250.0), np.full(n_features, 10.0), np.ones(n_features)
    valid = np.isfinite(block)
    hat = np.where(valid, block, 250.0).astype(np.float64)
    q = np.zeros(block.shape, np.int64)
    for encoding, x in ((True, np.ascontiguousarray(block)), (False, np.zeros((1, 1, 1), np.float32))):
        kernels.context_closed_loop(hat, valid, x, q, encoding, layers, ones, w2, b2, w3, b3, mean, std,
                                    2.0**-28 * std, step, np.array(AROUND, np.int64), row, len(BESIDE), EARLIER,
                                    values, values + len(AROUND) * (n_features - 1), 2.0**16, 2.0**23, 2.0**-12)


class WarmKernels(WorkerPlugin):
    """A Dask worker plugin that runs `warm_kernels()` when a worker starts (or when registered)."""

    name = "satflow-warm-kernels"

    def __init__(self) -> None:
        self.seconds: float | None = None

    def setup(self, worker=None) -> None:
        self.seconds = warm_kernels()
