"""Fixtures for the codec tests: small seeded (feature, lat, lon) blocks with gaps."""

from __future__ import annotations

import numpy as np
import pytest


def smooth_block(seed: int = 1234, shape: tuple[int, int, int] = (2, 13, 17), gap_fraction: float = 0.2) -> np.ndarray:
    """A smooth brightness-temperature-like block with noise, a swath gap and scattered NaN."""
    rng = np.random.default_rng(seed)
    n_feature, n_lat, n_lon = shape
    lat, lon = np.meshgrid(np.linspace(0, 3, n_lat), np.linspace(0, 5, n_lon), indexing="ij")
    block = np.stack([230 + 15 * f + 10 * np.sin(lon + f) * np.cos(lat) for f in range(n_feature)])
    block = (block + rng.normal(0, 0.2, shape)).astype(np.float32)
    block[:, :, n_lon // 3 : n_lon // 3 + 2] = np.nan
    block[rng.random(shape) < gap_fraction] = np.nan
    return block


@pytest.fixture
def block() -> np.ndarray:
    return smooth_block()


@pytest.fixture
def make_block():
    """The block factory itself, for tests that need other seeds or shapes."""
    return smooth_block
