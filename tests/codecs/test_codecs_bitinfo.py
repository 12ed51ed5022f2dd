"""Bitwise information content (Klöwer et al. 2021) and the keepbits derived from it."""

from __future__ import annotations

import numpy as np
import pytest

from satflow.codecs.bitinfo import (
    bit_information,
    free_entropy,
    keepbits_for_block,
    keepbits_from_information,
    mutual_information,
)


def _smooth(noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lat, lon = np.meshgrid(np.linspace(0, 3, 64), np.linspace(0, 5, 96), indexing="ij")
    return (250 + 10 * np.sin(lon) * np.cos(lat) + rng.normal(0, noise, lat.shape)).astype(np.float32)


def test_pure_noise_keeps_few_bits_and_smooth_fields_more():
    noise = np.random.default_rng(3).normal(0, 1, (64, 96)).astype(np.float32)
    assert keepbits_from_information(bit_information(noise)) == 0
    # 8 and 5 were pinned from satflow's own bit_information (not derived here); they are plausible by
    # hand: values near 250 have a mantissa bit k worth 2**(7 - k), so noise of std 1 leaves real
    # information only down to bits worth a few units (k about 5), and the noise-free field keeps more.
    assert keepbits_from_information(bit_information(_smooth(0.0))) == 8
    assert keepbits_from_information(bit_information(_smooth(1.0))) == 5


def test_more_information_kept_needs_more_bits():
    info = bit_information(_smooth(0.01))
    assert keepbits_from_information(info, 0.9) < keepbits_from_information(info, 0.99) < keepbits_from_information(info, 0.9999)


def test_mutual_information_of_identical_and_independent_bits():
    rng = np.random.default_rng(0)
    a = rng.normal(size=50_000).astype(np.float32)
    same = mutual_information(a, a)
    assert same[0] == pytest.approx(1.0, abs=1e-3)  # the sign bit is a fair coin, fully shared
    independent = mutual_information(a, rng.normal(size=50_000).astype(np.float32))
    assert independent[0] < 1e-3


def test_free_entropy_matches_bitinformation_jl():
    # 1 - H(p) with p = 0.5 + z_{0.995} / (2 sqrt(n)); for n = 10_000: p = 0.512879...
    p = 0.5 + 2.5758293035489 / 200
    expected = 1 + p * np.log2(p) + (1 - p) * np.log2(1 - p)
    assert free_entropy(10_000) == pytest.approx(expected, rel=1e-9)
    assert free_entropy(0) == 1.0


def test_invalid_points_are_skipped_and_constants_keep_all_bits():
    field = _smooth(0.0)
    gappy = field.copy()
    gappy[:, ::7] = np.nan
    block = np.stack([field, gappy, np.full_like(field, 3.5)])
    mask = np.isfinite(block).astype(np.uint8)
    keepbits = keepbits_for_block(block, mask)
    assert keepbits.tolist() == [8, 8, 23]  # gaps change nothing; a constant keeps every bit (by design)
