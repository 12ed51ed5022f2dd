"""Warm errorbound's compiled kernels once per process (a Dask worker), so that no task pays for them.

The first errorbound call in a fresh process loads every numba kernel from the on-disk cache and
specialises it (about 0.2-0.5 s; about 16 s when the cache is cold, once per machine), which made
the first block 2.6x slower than the next. `warm_kernels()` codes a tiny block through each path
(the closed loop and its fit, both rANS context schemes, the one-pass decoder, SZ3's stream) with the
dtypes real blocks have, so the kernels a task needs are ready. It changes no state that reaches a
stream: a block coded after it is bit-identical to one coded without it.

Registering the plugin on a cluster warms every worker, those that join later included:

    from satflow.codecs.warm import WarmKernels
    client.register_plugin(WarmKernels())          # distributed >= 2023.9 (register_worker_plugin before)
"""

from __future__ import annotations

import time

import numpy as np
from distributed import WorkerPlugin


def _warm_block() -> np.ndarray:
    """Three smooth features with a gap and a noisy patch: every kernel's path, in well under a second."""
    rng = np.random.default_rng(0)
    lat, lon = np.meshgrid(np.linspace(0, 3, 40), np.linspace(0, 5, 48), indexing="ij")
    block = np.stack([250 + 10 * f + 8 * np.sin(lon + f) * np.cos(lat) for f in range(3)])
    block = block + rng.normal(0, 0.5, block.shape)
    block[:, :, 20:23] = np.nan
    return block.astype(np.float32)


def warm_kernels() -> float:
    """Compile or load every errorbound kernel in this process; returns the seconds it took."""
    from satflow.codecs.registry import get_codec

    start = time.perf_counter()
    block = _warm_block()
    mask = np.isfinite(block).astype(np.uint8)
    for eps, sz3_trial in ((0.05, False), (0.5, True)):  # fine: contexts (scheme 1); coarse: SZ3's stream tried
        codec = get_codec("errorbound", inner="constant", eps=eps)
        codec.sz3_trial = sz3_trial
        codec.decode(codec.encode(block, mask))
    single = get_codec("errorbound", inner="constant", eps=0.5)  # one smooth feature: SZ3's stream decoded too
    single.decode(single.encode(block[:1, :, :20], mask[:1, :, :20]))
    return time.perf_counter() - start


class WarmKernels(WorkerPlugin):
    """A Dask worker plugin that runs `warm_kernels()` when a worker starts (or when registered)."""

    name = "satflow-warm-kernels"

    def __init__(self) -> None:
        self.seconds: float | None = None

    def setup(self, worker=None) -> None:
        self.seconds = warm_kernels()
