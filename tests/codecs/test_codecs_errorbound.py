"""The error-bounded wrapper: bound at every valid point, any inner codec, honest failures."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from codec_strategies import masked_blocks
from satflow.codecs.base import pack_sections, unpack_sections
from satflow.codecs.container import ContainerError, pack_container, unpack_container
from satflow.codecs.errorbound import ErrorBounded, decode_symbols, encode_symbols
from satflow.codecs.registry import codec_from_container, get_codec

INNERS = [
    ("sz3", {"tol": 2.0}),
    ("zfp", {"tol": 4.0}),
    ("bitround", {"keepbits": 2}),
    ("lossless", {}),
]


def _max_error(x, x_rec, valid):
    return np.abs(x_rec[valid].astype(np.float64) - x[valid]).max(initial=0.0)


@pytest.mark.parametrize(("inner", "inner_params"), INNERS + [("constant", {})])
@pytest.mark.parametrize("eps", [0.05, 0.5])
@pytest.mark.parametrize("context", ["causal", "none"])
def test_bound_holds_for_every_inner_codec(block, inner, inner_params, eps, context):
    codec = get_codec("errorbound", inner=inner, inner_params=inner_params, eps=eps, context=context)
    data = codec.encode(block)
    x_rec, mask = codec_from_container(data).decode(data)
    valid = np.isfinite(block)
    assert np.array_equal(mask, valid.astype(np.uint8))
    assert _max_error(block, x_rec, valid) <= eps


def test_tol_of_the_inner_codec_defaults_to_eps():
    codec = get_codec("errorbound", inner="sz3", eps=0.5)
    assert codec.inner.params == {"tol": 0.5, "fill": "smooth"}
    assert codec.describe() == "errorbound(eps=0.5, context='causal', inner=sz3(fill='smooth', tol=0.5))"


def test_per_feature_eps(block):
    codec = get_codec("errorbound", inner="bitround", inner_params={"keepbits": 3}, eps=[0.01, 1.0])
    x_rec, _ = codec.decode(codec.encode(block))
    error = np.abs(x_rec.astype(np.float64) - block)
    assert np.nanmax(error[0]) <= 0.01 and np.nanmax(error[1]) <= 1.0


def test_wraps_a_codec_instance(block):
    inner = get_codec("zfp", tol=1.0)
    codec = ErrorBounded(inner=inner, eps=0.2)
    x_rec, _ = codec.decode(codec.encode(block))
    assert np.nanmax(np.abs(x_rec.astype(np.float64) - block)) <= 0.2


def test_tighter_eps_costs_more_bits(block):
    sizes = [len(get_codec("errorbound", inner="sz3", inner_params={"tol": 4.0}, eps=eps).encode(block))
             for eps in (1.0, 0.1, 0.01)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_extremes_and_eps_below_float32_resolution():
    x = np.array([[[1e30, -1e30, 1e-40, 250.0, 250.00002, 0.0]]], np.float32)
    codec = get_codec("errorbound", inner="sz3", inner_params={"tol": 1.0}, eps=1e-7)
    x_rec, _ = codec.decode(codec.encode(x))
    assert np.abs(x_rec.astype(np.float64) - x).max() <= 1e-7


def test_inner_decoding_differently_is_refused(block, make_block):
    # Splice the inner payload of another block in: the inner codec now decodes other values than
    # the residual was computed against, which must be an error, never numbers off by more than eps.
    codec = get_codec("errorbound", inner="sz3", inner_params={"tol": 1.0}, eps=0.1)
    codec.sz3_trial = False  # the predictive stream, which holds the inner payload
    data, other = codec.encode(block), codec.encode(make_block(seed=7))
    container, foreign = unpack_container(data), unpack_container(other)
    parts = unpack_sections(container.payload)
    parts[0] = unpack_sections(foreign.payload)[0]
    forged = pack_container("errorbound", container.params, container.mask, pack_sections(parts))
    with pytest.raises(ContainerError, match="inner codec 'sz3' decoded differently than when this stream was encoded"):
        codec.decode(forged)


def test_invalid_eps_is_rejected():
    with pytest.raises(ValueError, match=r"errorbound: eps must be positive finite numbers, got 0"):
        get_codec("errorbound", inner="sz3", eps=0)


@settings(max_examples=30, deadline=None)
@given(st.lists(arrays(np.int64, st.integers(0, 40), elements=st.integers(-300, 300)), min_size=1, max_size=3))
def test_symbol_coding_round_trips(groups):
    coded = encode_symbols(groups)
    decoded = decode_symbols([g.size for g in groups], *coded)
    assert all(np.array_equal(a, b) for a, b in zip(groups, decoded))


def test_all_zero_residuals_cost_almost_nothing():
    tables, words, escaped = encode_symbols([np.zeros(10_000, np.int64)])
    assert len(words) <= 8 and escaped == b""


def test_patches_survive_a_non_contiguous_inner_reconstruction():
    """A learned inner decoder returns cropped (non-C-contiguous) arrays; patches must still land."""
    from satflow.codecs.classic import apply_patches, pack_patches

    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    x_rec = np.zeros((2, 4, 3), np.float32).transpose(0, 2, 1)  # right shape, Fortran-like layout
    assert not x_rec.flags.c_contiguous
    patched = apply_patches(pack_patches(np.array([1, 13, 23]), x), x_rec)
    assert patched.ravel()[[1, 13, 23]].tolist() == [1.0, 13.0, 23.0]


def _instrument_block(seed: int = 3, shape: tuple[int, int, int] = (6, 48, 64)) -> np.ndarray:
    """Channels that share their structure, as an instrument's do: mixes of two smooth fields and a
    sharp land/sea step, with noise well below the bounds and a swath gap common to all channels."""
    rng = np.random.default_rng(seed)
    _, n_lat, n_lon = shape
    lat, lon = np.meshgrid(np.linspace(0, 4, n_lat), np.linspace(0, 6, n_lon), indexing="ij")
    fields = [np.sin(lon) * np.cos(lat), np.cos(0.7 * lon + lat), (np.sin(2 * lon) + lat > 2.0).astype(float)]
    weights = rng.uniform(-30, 30, (shape[0], len(fields)))
    block = 240 + np.einsum("fk,klm->flm", weights, np.stack(fields)) + rng.normal(0, 0.05, shape)
    block[:, :, 20:27] = np.nan
    return block.astype(np.float32)


@pytest.mark.parametrize("eps", [0.1, 0.5])
def test_causal_context_codes_shared_structure_cheaply(eps):
    """The causal context must cost well under coding x - x_hat point by point, and under SZ3 itself."""
    block = _instrument_block()
    sizes = {}
    for name, codec in {"causal": get_codec("errorbound", inner="constant", eps=eps),
                        "none": get_codec("errorbound", inner="constant", eps=eps, context="none"),
                        "sz3": get_codec("sz3", tol=eps)}.items():
        data = codec.encode(block)
        x_rec, _ = codec.decode(data)
        assert np.nanmax(np.abs(x_rec.astype(np.float64) - block)) <= eps
        sizes[name] = len(data)
    assert sizes["causal"] < 0.5 * sizes["none"]
    assert sizes["causal"] < sizes["sz3"]


def test_context_none_writes_the_headers_of_earlier_streams(block):
    """Streams written before the context existed carry no `context` and must read back as 'none'."""
    old = get_codec("errorbound", inner="sz3", eps=0.1, context="none")
    old.stream_version = 1  # what wrote them
    old_style = old.encode(block)
    assert "context" not in unpack_container(old_style).params
    assert codec_from_container(old_style).params["context"] == "none"
    causal = get_codec("errorbound", inner="sz3", eps=0.1).encode(block)
    assert "context" not in unpack_container(causal).params  # version 4: causal is the default
    assert codec_from_container(causal).params["context"] == "causal"
    none = get_codec("errorbound", inner="sz3", eps=0.1, context="none").encode(block)
    assert codec_from_container(none).params["context"] == "none"


def test_unknown_context_is_rejected():
    with pytest.raises(ValueError, match=r"errorbound: context must be one of causal, learned, none, got 'spatial'"):
        get_codec("errorbound", inner="constant", eps=0.1, context="spatial")


def test_corrupt_prediction_coefficients_are_refused(block):
    codec = get_codec("errorbound", inner="constant", eps=0.1)
    codec.sz3_trial = False  # the predictive stream, which holds the coefficients
    data = codec.encode(block)
    container = unpack_container(data)
    parts = unpack_sections(container.payload)
    parts[2] = parts[2][:-3]  # the zstd frame of the coefficients, truncated
    forged = pack_container("errorbound", container.params, container.mask, pack_sections(parts))
    with pytest.raises(ContainerError, match="errorbound prediction coefficients are corrupt"):
        codec_from_container(forged).decode(forged)


@settings(max_examples=40, deadline=None)
@given(masked_blocks(), st.sampled_from([0.01, 0.5, 3.0]), st.sampled_from(["constant", "bitround"]),
       st.sampled_from(["causal", "none"]))
def test_property_bound_holds_at_every_valid_point(sample, eps, inner, context):
    x, mask = sample
    inner_params = {"keepbits": 2} if inner == "bitround" else {}
    codec = get_codec("errorbound", inner=inner, inner_params=inner_params, eps=eps, context=context)
    data = codec.encode(x, mask)
    x_rec, mask_rec = codec_from_container(data).decode(data)
    valid = (mask != 0) & np.isfinite(x)
    assert np.array_equal(mask_rec, valid.astype(np.uint8))
    assert (np.abs(x_rec[valid].astype(np.float64) - x[valid]) <= eps).all()
    assert np.isnan(x_rec[~valid]).all()


def test_many_features_see_a_bounded_number_of_earlier_ones():
    from satflow.codecs import prediction

    block = _instrument_block(shape=(prediction.EARLIER + 4, 12, 16))
    codec = get_codec("errorbound", inner="constant", eps=0.2)
    x_rec, _ = codec.decode(codec.encode(block))
    assert np.nanmax(np.abs(x_rec.astype(np.float64) - block)) <= 0.2
    assert prediction.n_terms(prediction.EARLIER + 3, 0) == prediction.n_terms(prediction.EARLIER, 0)


def _smooth_one_feature(seed: int = 0, shape: tuple[int, int, int] = (1, 40, 96)) -> np.ndarray:
    """One smooth feature with little noise and a land-like gap: SZ3's interpolation wins there."""
    rng = np.random.default_rng(seed)
    lat, lon = np.meshgrid(np.linspace(0, 3, shape[1]), np.linspace(0, 6, shape[2]), indexing="ij")
    block = 285 + 8 * np.sin(lon) * np.cos(lat) + 2 * np.cos(3 * lon + lat) + rng.normal(0, 0.02, shape)
    block[:, 10:18, 30:50] = np.nan
    return block.astype(np.float32)


@pytest.mark.parametrize("eps", [0.1, 0.5])
@pytest.mark.parametrize("field, expected", [("smooth", "sz3"), ("instrument", "predictive")])
def test_version_4_keeps_the_shorter_of_predictive_and_sz3(field, expected, eps):
    """On one smooth feature SZ3's payload is shorter, on channels that share structure the closed
    loop's: the encoder keeps the shorter, the stream says which, and both decode within the bound."""
    from satflow.codecs.interpolation import is_sz3

    block = _smooth_one_feature() if field == "smooth" else _instrument_block()
    codec = get_codec("errorbound", inner="constant", eps=eps)
    data = codec.encode(block)
    predictive = get_codec("errorbound", inner="constant", eps=eps)
    predictive.sz3_trial = False
    only_predictive = predictive.encode(block)
    sz3 = get_codec("sz3", tol=[eps] * block.shape[0]).encode(block)
    assert is_sz3(unpack_container(data).payload) == (expected == "sz3")
    assert len(data) == min(len(data), len(only_predictive)) and len(data) <= len(sz3)
    x_rec, mask = codec_from_container(data).decode(data)
    valid = np.isfinite(block)
    np.testing.assert_array_equal(mask, valid.astype(np.uint8))
    assert (np.abs(x_rec[valid].astype(np.float64) - block[valid]) <= eps).all()
    assert np.isnan(x_rec[~valid]).all()


@settings(max_examples=40, deadline=None)
@given(masked_blocks(), st.sampled_from([0.01, 0.5, 3.0]))
def test_property_sz3_stream_holds_the_bound(sample, eps):
    """Version 4's SZ3 stream on its own (whatever it costs): the bound at every valid point, the
    patches covering what SZ3 misses after the cast to float32, extremes included."""
    from satflow.codecs.interpolation import decode_sz3, encode_sz3

    x, mask = sample
    eps_f = np.full(x.shape[0], eps)
    prepared = np.where(mask != 0, x, np.nan).astype(np.float32)
    payload = encode_sz3(prepared, (mask != 0) & np.isfinite(prepared), eps_f)
    x_rec = decode_sz3(payload, mask, eps_f)
    valid = (mask != 0) & np.isfinite(x)
    assert (np.abs(x_rec[valid].astype(np.float64) - x[valid]) <= eps).all()


def test_an_sz3_stream_that_decodes_differently_is_refused():
    from satflow.codecs.interpolation import is_sz3

    block = _smooth_one_feature()
    data = get_codec("errorbound", inner="constant", eps=0.5).encode(block)
    container = unpack_container(data)
    assert is_sz3(container.payload)
    forged = bytearray(container.payload)
    forged[1] ^= 1  # the CRC of SZ3's reconstruction
    with pytest.raises(ContainerError, match="SZ3 \\(pysz\\) decoded this errorbound stream differently"):
        codec_from_container(data).decode(pack_container("errorbound", container.params, container.mask, bytes(forged)))
