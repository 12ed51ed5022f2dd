"""Classic codecs: exact or bounded round trips on masked blocks, edge cases and mismatches."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec_strategies import masked_blocks
from satflow.codecs.base import fill_invalid, prepare_block
from satflow.codecs.classic import SZ3Codec, ToleranceCodec, bitround
from satflow.codecs.container import ContainerError, unpack_container
from satflow.codecs.registry import codec_from_container, get_codec

BOUNDED = [("sz3", 0.5), ("sz3", 0.01), ("zfp", 0.5), ("zfp", 0.01)]


def _valid(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    valid = np.isfinite(x)
    return valid if mask is None else valid & (mask != 0)


def _check_decoded(x, mask, x_rec, mask_rec):
    valid = _valid(x, mask)
    assert x_rec.dtype == np.float32 and mask_rec.dtype == np.uint8
    assert np.array_equal(mask_rec, valid.astype(np.uint8))
    assert np.isnan(x_rec[~valid]).all()
    return valid


def _bitround_bound(x: np.ndarray, keepbits: int) -> np.ndarray:
    exponent = np.maximum(np.floor(np.log2(np.abs(x.astype(np.float64)) + 1e-300)), -126)
    return 2.0 ** (exponent - keepbits - 1)


def test_lossless_is_bit_exact_on_valid_points(block):
    codec = get_codec("lossless")
    x_rec, mask = codec.decode(codec.encode(block))
    valid = _check_decoded(block, None, x_rec, mask)
    assert np.array_equal(x_rec[valid].view(np.uint32), block[valid].view(np.uint32))


@pytest.mark.parametrize(("name", "tol"), BOUNDED)
def test_bounded_codecs_hold_the_tolerance(block, name, tol):
    codec = get_codec(name, tol=tol)
    x_rec, mask = codec.decode(codec.encode(block))
    valid = _check_decoded(block, None, x_rec, mask)
    assert np.abs(x_rec[valid].astype(np.float64) - block[valid]).max() <= tol


@pytest.mark.parametrize("name", ["sz3", "zfp"])
def test_per_feature_tolerance(block, name):
    tol = [0.05, 2.0]
    codec = get_codec(name, tol=tol)
    x_rec, mask = codec.decode(codec.encode(block))
    error = np.abs(x_rec.astype(np.float64) - block)
    for f, t in enumerate(tol):
        assert np.nanmax(error[f]) <= t
    with pytest.raises(ValueError, match="tol has 2 values but the block has 3 features"):
        codec.encode(np.zeros((3, 2, 2), np.float32))


@pytest.mark.parametrize("keepbits", [0, 4, 10, 23])
def test_bitround_relative_bound(block, keepbits):
    codec = get_codec("bitround", keepbits=keepbits)
    x_rec, mask = codec.decode(codec.encode(block))
    valid = _check_decoded(block, None, x_rec, mask)
    error = np.abs(x_rec[valid].astype(np.float64) - block[valid])
    assert (error <= _bitround_bound(block[valid], keepbits)).all()
    if keepbits == 23:
        assert error.max() == 0.0


def test_bitround_records_per_feature_keepbits(block):
    codec = get_codec("bitround", keepbits=[3, 9])
    payload = unpack_container(codec.encode(block)).payload
    assert codec.keepbits_in(payload) == [3, 9]
    auto = get_codec("bitround")
    assert auto.keepbits_in(unpack_container(auto.encode(block)).payload) == [5, 5]


def test_bitround_never_overflows_to_infinity():
    values = np.array([3.4028235e38, -3.4028235e38, 1.0], np.float32)
    rounded = bitround(values, 0)
    assert np.isfinite(rounded).all()
    assert rounded[2] == 1.0


def test_explicit_mask_marks_finite_points_invalid(block):
    mask = np.isfinite(block).astype(np.uint8)
    mask[0, 0, :] = 0
    codec = get_codec("sz3", tol=0.1)
    x_rec, mask_rec = codec.decode(codec.encode(block, mask))
    _check_decoded(block, mask, x_rec, mask_rec)
    assert np.isnan(x_rec[0, 0]).all()


ALL_CODECS = [("lossless", {}), ("bitround", {"keepbits": 6}), ("bitround", {}), ("sz3", {"tol": 0.5}),
              ("zfp", {"tol": 0.5}), ("sz3", {"tol": 0.5, "fill": "mean"}), ("constant", {})]


@pytest.mark.parametrize(("name", "params"), ALL_CODECS)
def test_all_invalid_block(name, params):
    codec = get_codec(name, **params)
    x = np.full((2, 4, 3), np.nan, np.float32)
    x_rec, mask = codec.decode(codec.encode(x))
    assert not mask.any() and np.isnan(x_rec).all()


@pytest.mark.parametrize(("name", "params"), ALL_CODECS)
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 1, 7), (2, 5, 1), (1, 9, 11)])
def test_constant_and_tiny_odd_shapes(name, params, shape):
    codec = get_codec(name, **params)
    x = np.full(shape, 271.25, np.float32)
    data = codec.encode(x)
    x_rec, mask = codec.decode(data)
    assert mask.all() and x_rec.shape == shape
    error = np.abs(x_rec.astype(np.float64) - 271.25).max()
    if name == "bitround":
        keepbits = codec.keepbits_in(unpack_container(data).payload)
        assert keepbits == [params.get("keepbits", 23)] * shape[0]  # a constant keeps all bits when derived
        assert error <= _bitround_bound(x, min(keepbits)).max()
    else:
        assert error <= params.get("tol", 0.0)


EXTREMES = np.array([1e30, -1e30, 1e-40, -1e-45, 0.0, -0.0, 3.0, 250.5], np.float32).reshape(1, 2, 4)


@pytest.mark.parametrize(("name", "params"), ALL_CODECS)
def test_extreme_values(name, params):
    codec = get_codec(name, **params)
    x_rec, mask = codec.decode(codec.encode(EXTREMES))
    assert mask.all()
    error = np.abs(x_rec.astype(np.float64) - EXTREMES)
    if name == "lossless":
        assert np.array_equal(x_rec.view(np.uint32), EXTREMES.view(np.uint32))
    elif name == "bitround" and "keepbits" in params:
        assert (error <= _bitround_bound(EXTREMES, params["keepbits"])).all()
    elif "tol" in params:
        assert error.max() <= params["tol"]


def test_patches_catch_what_the_library_misses():
    # ZFP codes 4x4 blocks in block floating point: next to 1e30 a value of 1.0 is lost and must be patched.
    x = np.array([[[1e30, 1.0, 2.0, 3.0]]], np.float32)
    codec = get_codec("zfp", tol=0.1)
    data = codec.encode(x)
    assert ToleranceCodec.patch_count(unpack_container(data).payload) >= 1
    x_rec, _ = codec.decode(data)
    assert np.abs(x_rec.astype(np.float64) - x).max() <= 0.1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(masked_blocks(), st.sampled_from(BOUNDED + [("lossless", 0.0), ("bitround", 7)]))
def test_property_round_trip_within_bound(sample, codec_setting):
    x, mask = sample
    name, setting = codec_setting
    params = {"tol": setting} if name in ("sz3", "zfp") else ({"keepbits": setting} if name == "bitround" else {})
    codec = get_codec(name, **params)
    data = codec.encode(x, mask)
    x_rec, mask_rec = codec_from_container(data).decode(data)
    valid = _check_decoded(x, mask, x_rec, mask_rec)
    error = np.abs(x_rec[valid].astype(np.float64) - x[valid])
    if name == "lossless":
        assert np.array_equal(x_rec[valid].view(np.uint32), x[valid].view(np.uint32))
    elif name == "bitround":
        assert (error <= _bitround_bound(x[valid], setting)).all()
    else:
        assert (error <= setting).all()


def test_decoding_with_another_codec_is_refused(block):
    data = get_codec("sz3", tol=0.5).encode(block)
    with pytest.raises(ContainerError, match="container was written by codec 'sz3', not 'zfp'; decode it with"):
        get_codec("zfp", tol=0.5).decode(data)
    with pytest.raises(ContainerError, match=r"container parameters \{.*'tol': 0.5\} differ from this 'sz3' codec's"):
        get_codec("sz3", tol=0.25).decode(data)
    assert isinstance(codec_from_container(data), SZ3Codec)


def test_batch_api_matches_single_blocks(make_block):
    batch = np.stack([make_block(seed) for seed in range(3)])
    codec = get_codec("sz3", tol=0.2)
    streams = codec.encode_batch(batch)
    assert streams == [codec.encode(b) for b in batch]
    for (x_rec, _), (single, _) in zip(codec.decode_batch(streams), map(codec.decode, streams)):
        assert np.array_equal(x_rec, single, equal_nan=True)


def test_bad_inputs_have_clear_messages():
    with pytest.raises(ValueError, match=r"codecs take non-empty \(feature, lat, lon\) blocks; got an array of shape \(4, 4\)"):
        prepare_block(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"got an array of shape \(1, 0, 3\)"):
        prepare_block(np.zeros((1, 0, 3)))
    with pytest.raises(ValueError, match=r"mask shape \(1, 2, 2\) differs from block shape \(1, 3, 3\)"):
        prepare_block(np.zeros((1, 3, 3)), np.ones((1, 2, 2)))
    with pytest.raises(ValueError, match="sz3: tol must be a positive finite number, got -1.0"):
        get_codec("sz3", tol=-1)
    with pytest.raises(ValueError, match=r"bitround: keepbits must be integers in 0..23"):
        get_codec("bitround", keepbits=30)


def test_smooth_fill_keeps_valid_points_and_fills_gaps(block):
    mask = np.isfinite(block).astype(np.uint8)
    for method in ("mean", "smooth"):
        filled = fill_invalid(block, mask, method)
        assert np.isfinite(filled).all()
        assert np.array_equal(filled[mask == 1], block[mask == 1])


def test_constant_codec_stores_each_features_valid_mean(block):
    codec = get_codec("constant")
    data = codec.encode(block)
    x_rec, mask = codec.decode(data)
    for f in range(block.shape[0]):
        assert np.allclose(x_rec[f][mask[f] != 0], np.nanmean(block[f].astype(np.float64)), rtol=0, atol=1e-4)
    assert np.isnan(x_rec[mask == 0]).all()
    assert len(unpack_container(data).payload) == 8 * block.shape[0]
