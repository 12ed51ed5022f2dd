"""Integer coding tables, the range coder with escapes and the torch entropy models."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from satflow.codecs.learned.entropy import EntropyBottleneck, GaussianConditional
from satflow.codecs.learned.rangecoder import (
    EscapeReader,
    TableModels,
    decode_symbols,
    encode_symbols,
    finish,
    new_decoder,
    new_encoder,
)
from satflow.codecs.learned.tables import (
    default_scale_table,
    gaussian_table,
    pad_tables,
    quantize_pmf,
    scale_indexes,
)


def test_quantize_pmf_exact_counts():
    # free = 16 - 3 = 13 -> scaled 3.25, 3.25, 6.5 -> floors 3, 3, 6, the one spare count to the
    # largest fraction (index 2), plus the reserved 1 per symbol.
    assert quantize_pmf([1, 1, 2], precision=4).tolist() == [4, 4, 8]
    assert quantize_pmf([0, 0, 1], precision=4).tolist() == [1, 1, 14]


def test_quantize_pmf_rejects_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        quantize_pmf([1.0, -1.0])
    with pytest.raises(ValueError, match="does not fit"):
        quantize_pmf(np.ones(40), precision=5)


def test_gaussian_table_unit_scale_golden():
    counts, half_width = gaussian_table(1.0)
    assert half_width == 7 and counts.size == 16  # -7..7 plus the escape
    assert counts.sum() == 2**16 and counts.min() == 1
    assert counts[7] == 25090 and counts[6] == counts[8] == 15839
    # Symmetric up to the one-count remainder that goes to the first of two tied entries.
    assert counts.tolist() == [1, 1, 1, 16, 393, 3972, 15839, 25090, 15839, 3971, 393, 16, 1, 1, 1, 1]
    # Derived independently: P(round(N(0, 1)) = k) from math.erf, scaled to the 2**16 - 16 counts left
    # after one reserved count per symbol, floored, plus the reserved count (25089.24 -> 25090 at 0,
    # 15838.17 -> 15839 at +-1); the remainder counts go one each to the largest fractions.
    def phi(v: float) -> float:
        return 0.5 * (1.0 + math.erf(v / math.sqrt(2.0)))

    pmf = np.array([phi(0.5 - abs(k)) - phi(-0.5 - abs(k)) for k in range(-7, 8)])
    floors = 1 + np.floor(pmf * (2**16 - 16)).astype(np.int64)  # with the escape, the pmf sums to 1
    assert np.all((counts[:15] - floors >= 0) & (counts[:15] - floors <= 1))


def test_default_scale_table_and_indexes():
    table = default_scale_table()
    assert table.size == 64 and table[0] == pytest.approx(0.11) and table[-1] == pytest.approx(64.0)
    assert scale_indexes([0.01, 0.11, 0.1100001, 1.0, 64.0, 1e3], table).tolist() == [0, 0, 1, 22, 63, 63]


def _models(tables, offsets):
    counts, lengths = pad_tables(tables)
    return TableModels(counts, lengths, np.asarray(offsets))


def test_range_coder_round_trip_with_escapes():
    rng = np.random.default_rng(5)
    models = _models([quantize_pmf([1, 4, 1, 0.01]), quantize_pmf([1, 2, 6, 2, 1, 0.01])], [-1, -2])
    values = rng.integers(-3, 4, size=(3, 40, 7))
    values[0, 0, 0] = 2**40  # clipped to the symbol limit, then escaped
    index = rng.integers(0, 2, size=values.shape).astype(np.int32)
    encoder, escapes = new_encoder(), []
    encode_symbols(encoder, values, index, models, escapes)
    words = finish(encoder)
    escaped = np.concatenate(escapes)
    decoded = decode_symbols(new_decoder(words), index, models, EscapeReader(escaped))
    expected = np.clip(values, -(2**30), 2**30)
    np.testing.assert_array_equal(decoded, expected)
    # Golden: the exact bytes pin the coding order and the table quantisation.
    assert hashlib.sha256(words).hexdigest()[:16] == GOLDEN_WORDS


GOLDEN_WORDS = "7d2909586d182c7b"


def test_escape_reader_detects_short_side_list():
    with pytest.raises(ValueError, match="more escaped symbols"):
        EscapeReader(np.array([1, 2])).take(3)


def test_gaussian_likelihoods_sum_to_one():
    gaussian = GaussianConditional()
    values = torch.arange(-60, 61, dtype=torch.float64)
    for mean, scale in ((0.3, 0.5), (-1.2, 4.0)):
        lik = gaussian.likelihood(values + mean, torch.tensor(mean), torch.tensor(scale))
        assert float(lik.sum()) == pytest.approx(1.0, abs=1e-6)


def test_entropy_bottleneck_update_builds_valid_tables():
    torch.manual_seed(0)
    bottleneck = EntropyBottleneck(3)
    bottleneck.update()
    counts, lengths, offsets = bottleneck.tables()
    for row, n in zip(counts, lengths):
        assert row[:n].sum() == 2**16 and row[:n].min() >= 1 and not row[n:].any()
    grid = torch.arange(-200, 201, dtype=torch.float32).reshape(1, 1, 1, -1).expand(1, 3, 1, -1)
    assert bottleneck.likelihood(grid).sum(dim=-1).flatten().tolist() == pytest.approx([1.0] * 3, abs=1e-4)
    assert offsets.tolist() == [int(o) for o in offsets]


def test_table_buffers_resize_on_load():
    source = GaussianConditional()
    source.update()
    target = GaussianConditional()
    assert not target.has_tables
    target.load_state_dict(source.state_dict())
    assert torch.equal(target.table_counts, source.table_counts)
    with pytest.raises(RuntimeError, match="update"):
        GaussianConditional().tables()
