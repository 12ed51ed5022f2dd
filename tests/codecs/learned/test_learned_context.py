"""errorbound(context="learned"): the fixed-point context network, its bound, streams and errors."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from codec_strategies import masked_blocks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from satflow.codecs import prediction
from satflow.codecs.base import unpack_sections
from satflow.codecs.container import ContainerError, unpack_container
from satflow.codecs.residuals import decode_residuals
from satflow.codecs.learned.checkpoint import load_checkpoint
from satflow.codecs.learned.context import ContextPredictor, FixedPointNet, point_inputs, noise_inputs
from satflow.codecs.registry import codec_from_container, decode_any, get_codec

MEAN, STD = np.array([230.0, 245.0]), np.array([8.0, 9.0])  # the fixture checkpoint's statistics


def learned(checkpoint, eps=0.5, **params):
    return get_codec("errorbound", inner="constant", eps=eps, context="learned", checkpoint=str(checkpoint), **params)


@pytest.mark.parametrize("f", [0, 1])
def test_fixed_point_inference_matches_the_float_network(context_checkpoint, make_block, f):
    """The exact inference sees the same inputs, in the same slots, as training does."""
    block = make_block(seed=3, shape=(2, 20, 30), gap_fraction=0.15)
    valid = np.isfinite(block)
    rec = prediction.finite_fill(block, valid.astype(np.uint8))
    net = load_checkpoint(context_checkpoint).context
    eps = np.array([0.3, 0.6])
    predictor = ContextPredictor(FixedPointNet(net.state_dict()), MEAN, STD, noise_inputs(eps, STD))
    rows = predictor.start(f, rec, rec, valid)
    padded = prediction.padded_field(rec[f], rec[f, 0])
    normalised = torch.tensor(np.where(valid, (rec - MEAN[:, None, None]) / STD[:, None, None], 0.0)[None])
    mask = torch.tensor(valid[None].astype(np.float64))
    for i in (3, 11):
        for parity in (0, 1):
            cols = torch.arange(parity, 30, 2)
            inputs = point_inputs(normalised, mask, f, torch.zeros_like(cols), torch.full_like(cols, i), cols,
                                   torch.full(cols.shape, math.log(eps[f] / STD[f]), dtype=torch.float64))
            with torch.no_grad():
                expected = net.double()(inputs[None].repeat(2, 1, 1))[f].numpy() * STD[f] + MEAN[f]
            np.testing.assert_allclose(rows[parity](i, padded), expected, atol=2e-3 * STD[f])


# Other BLAS blocking gives the same integers; with the JIT off the compiled input loops run as plain
# Python, so no fused multiply-add or reordering can hide in them.
@pytest.mark.parametrize("env", [{"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}, {"NUMBA_DISABLE_JIT": "1"}],
                         ids=["other-threads", "interpreted-kernels"])
def test_round_trip_holds_the_bound_and_decodes_identically_in_a_fresh_process(context_checkpoint, make_block,
                                                                               tmp_path, env):
    block = make_block(seed=5, shape=(2, 24, 36))
    codec = learned(context_checkpoint, eps=[0.5, 0.25])
    data = codec.encode(block)
    x, mask = codec_from_container(data, checkpoint=str(context_checkpoint)).decode(data)
    valid = mask.astype(bool)
    error = np.abs(x.astype(np.float64) - block)
    assert error[0][valid[0]].max() <= 0.5 and error[1][valid[1]].max() <= 0.25
    np.testing.assert_array_equal(np.isnan(x), ~valid)
    (tmp_path / "block.sfc").write_bytes(data)
    script = ("import sys, numpy as np\n"
              "from satflow.codecs.registry import decode_any\n"
              "np.save(sys.argv[3], decode_any(open(sys.argv[1], 'rb').read(), checkpoint=sys.argv[2])[0])\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "block.sfc"), str(context_checkpoint),
                    str(tmp_path / "x.npy")], check=True, timeout=120, env={**os.environ, **env})
    assert np.load(tmp_path / "x.npy").tobytes() == x.tobytes()


def test_the_network_does_the_predicting(context_checkpoint, make_block):
    """The learned stream codes other residuals than least squares or x_hat alone would: the network
    predicts. Headers and predictor sections always differ, so the coded residuals q themselves are
    decoded from each stream and compared (the same constant x_hat underlies all of them)."""
    block = make_block(seed=8, shape=(2, 16, 24))
    mask = np.isfinite(block).astype(np.uint8)
    eps = 0.2

    def coded_q(codec) -> tuple[bytes, np.ndarray]:
        data = codec.encode(block)
        assert np.abs(codec.decode(data)[0][mask != 0].astype(np.float64) - block[mask != 0]).max() <= eps
        inner, *_, tables, words, escaped, _patches = unpack_sections(unpack_container(data).payload)
        return inner, decode_residuals(mask, tables, words, escaped)

    codec = learned(context_checkpoint, eps=eps)
    inner, q_learned = coded_q(codec)
    causal_inner, q_causal = coded_q(get_codec("errorbound", inner="constant", eps=eps))
    assert causal_inner == inner
    x_hat = codec.inner.decode_payload(inner, mask).astype(np.float64)
    q_x_hat = np.where(mask != 0, np.rint((np.nan_to_num(block) - x_hat) / (2 * eps)), 0)  # no prediction at all
    valid = mask != 0
    assert (q_learned[valid] != q_causal[valid]).mean() > 0.5
    assert (q_learned[valid] != q_x_hat[valid]).mean() > 0.5


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(masked_blocks(), st.sampled_from([0.01, 0.5, 3.0]))
def test_property_bound_holds_at_every_valid_point(context_checkpoint, sample, eps):
    x, mask = (np.concatenate([a, a])[:2] for a in sample)  # the network was made for two features
    codec = learned(context_checkpoint, eps=eps)
    x_rec, mask_rec = codec.decode(codec.encode(x, mask))
    valid = (mask != 0) & np.isfinite(x)
    np.testing.assert_array_equal(mask_rec, valid.astype(np.uint8))
    assert np.all(np.abs(x_rec[valid].astype(np.float64) - x[valid]) <= eps)
    assert np.all(np.isnan(x_rec[~valid]))


def test_inner_learned_codec_lends_its_checkpoint(context_checkpoint, make_block):
    block = make_block(seed=9, shape=(2, 16, 20))
    codec = get_codec("errorbound", inner="vaeformer", inner_params={"checkpoint": str(context_checkpoint)},
                      eps=0.4, context="learned")
    x, mask = codec_from_container(codec.encode(block), checkpoint=str(context_checkpoint)).decode(codec.encode(block))
    assert np.abs(x[mask != 0].astype(np.float64) - block[mask != 0]).max() <= 0.4


def test_decoding_needs_the_checkpoint_with_the_same_network(context_checkpoint, checkpoint_factory, make_block,
                                                             tmp_path):
    data = learned(context_checkpoint).encode(make_block(seed=4, shape=(2, 8, 8)))
    with pytest.raises(ContainerError, match="learned context .*pass checkpoint="):
        decode_any(data)
    other = checkpoint_factory(tmp_path / "other", seed=3, context_hidden=8)
    with pytest.raises(ContainerError, match="encoded with context network .* but checkpoint .* has"):
        decode_any(data, checkpoint=str(other))


def test_clear_errors(context_checkpoint, checkpoint):
    with pytest.raises(ValueError, match="has no context network; train one with `satflow train --stage context"):
        learned(checkpoint)
    with pytest.raises(ValueError, match="needs checkpoint=<dir>"):
        get_codec("errorbound", inner="constant", eps=0.5, context="learned")
    with pytest.raises(ValueError, match="checkpoint only applies to context='learned'"):
        get_codec("errorbound", inner="constant", eps=0.5, checkpoint=str(context_checkpoint))
    with pytest.raises(ValueError, match="trained on 2 features, the block has 3"):
        learned(context_checkpoint).encode(np.zeros((3, 4, 4), np.float32))


def test_context_network_survives_a_later_transform_checkpoint(context_checkpoint, tmp_path):
    """A checkpoint re-saved with its context keeps it; the transform fingerprint is unchanged by it."""
    from satflow.codecs.learned.checkpoint import save_checkpoint

    loaded = load_checkpoint(context_checkpoint)
    copy = save_checkpoint(tmp_path / "copy", loaded.model, loaded.meta, context=loaded.context)
    again = load_checkpoint(copy)
    assert again.meta.context == loaded.meta.context and again.meta.fingerprint == loaded.meta.fingerprint
    (copy / "context.safetensors").unlink()
    with pytest.raises(ValueError, match="context.safetensors is missing"):
        load_checkpoint(copy)


def test_static_sums_in_row_chunks_give_the_same_stream(context_checkpoint, make_block, monkeypatch):
    """Large blocks are summed a chunk of rows at a time; the chunking must not change a bit."""
    from satflow.codecs.learned import context

    block = make_block(seed=11, shape=(2, 21, 18))
    whole = learned(context_checkpoint, eps=0.3).encode(block)
    monkeypatch.setattr(context, "STATIC_CHUNK", 1)  # one row per chunk
    assert learned(context_checkpoint, eps=0.3).encode(block) == whole
