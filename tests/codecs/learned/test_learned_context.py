"""errorbound(context="learned"): the fixed-point context network, its bound, streams and errors."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

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
from satflow.codecs.learned.context import ContextNet, ContextPredictor, FixedPointNet, noise_inputs, point_inputs
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
    np.save(tmp_path / "block.npy", block)
    script = ("import sys, numpy as np\n"
              "from satflow.codecs.registry import decode_any, get_codec\n"
              "np.save(sys.argv[3], decode_any(open(sys.argv[1], 'rb').read(), checkpoint=sys.argv[2])[0])\n"
              "codec = get_codec('errorbound', inner='constant', eps=[0.5, 0.25], context='learned', checkpoint=sys.argv[2])\n"
              "open(sys.argv[4], 'wb').write(codec.encode(np.load(sys.argv[5])))\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "block.sfc"), str(context_checkpoint),
                    str(tmp_path / "x.npy"), str(tmp_path / "again.sfc"), str(tmp_path / "block.npy")],
                   check=True, timeout=300, env={**os.environ, **env})
    assert np.load(tmp_path / "x.npy").tobytes() == x.tobytes()
    assert (tmp_path / "again.sfc").read_bytes() == data  # the compiled loop's stream, from another process


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


# --- the compiled, row-batched loop (`ContextPredictor.closed_loop`) against the numpy reference ----
SHIPPED = Path(__file__).parents[3] / "satflow" / "data" / "amsua-vaeformer"  # 15 features, hidden 64


def _random_predictor(n_features: int, hidden: int, seed: int, eps: float) -> ContextPredictor:
    """An untrained network whose skip mostly copies the point above (predictions in range) and
    whose hidden units matter (weights large enough that many are active)."""
    torch.manual_seed(seed)
    net = ContextNet(n_features, hidden)
    with torch.no_grad():
        net.skip.uniform_(-0.1, 0.1)
        net.skip[:, -8] += 0.9
        net.w3.mul_(4.0)
        net.b1.uniform_(-0.5, 0.5)
    mean, std = np.linspace(220.0, 250.0, n_features), np.linspace(6.0, 11.0, n_features)
    return ContextPredictor(FixedPointNet(net.state_dict()), mean, std, noise_inputs(np.full(n_features, eps), std))


def _field(n_features: int, shape: tuple[int, int], seed: int, gaps: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lat, lon = np.meshgrid(np.linspace(0, 3, shape[0]), np.linspace(0, 6, shape[1]), indexing="ij")
    x = np.stack([220 + 30 * f / max(n_features, 1) + 8 * np.sin(lon + f) * np.cos(lat) for f in range(n_features)])
    x = (x + rng.normal(0, 0.7, x.shape)).astype(np.float32)
    mask = np.ones(x.shape, np.uint8)
    if gaps:
        mask[:, :, shape[1] // 3 : shape[1] // 3 + 3] = 0  # a swath gap through every feature
        mask[rng.random(x.shape) < 0.1] = 0  # and scattered missing points, differing by feature
        x[mask == 0] = np.nan
    return x, mask


def _both(predictor_factory, x, mask, eps):
    """(fast, reference) runs of the encoder's loop, then the fast decoder on the fast q."""
    filled = prediction.finite_fill(x, mask)
    step = np.full(x.shape[0], 2 * eps)
    fast = prediction.run(filled, mask, predictor_factory(), step, x=x)
    reference = prediction.run(filled, mask, predictor_factory(), step, x=x, reference=True)
    decoded = prediction.run(filled, mask, predictor_factory(), step, q=fast[1])
    return fast, reference, decoded


@pytest.mark.parametrize("n_features, shape, gaps", [(1, (9, 13), False), (1, (12, 10), True), (2, (11, 16), True),
                                                     (3, (8, 15), False), (18, (6, 9), True), (2, (5, 1), False),
                                                     (2, (4, 2), True)])  # narrow: every point in the gap
def test_compiled_loop_gives_the_reference_integers_and_predictions(n_features, shape, gaps):
    """Same q everywhere and the same float64 reconstruction at every valid point (invalid ones keep
    x_hat in the compiled loop: never read, decoded as NaN); 18 features: a point sees only the last
    EARLIER of them."""
    x, mask = _field(n_features, shape, seed=n_features, gaps=gaps)
    eps = 0.3
    fast, reference, decoded = _both(lambda: _random_predictor(n_features, 8, seed=n_features, eps=eps), x, mask, eps)
    valid = mask != 0
    np.testing.assert_array_equal(fast[1], reference[1])
    assert valid.sum() < 20 or np.count_nonzero(fast[1]) > valid.sum() // 4  # q is not trivial
    assert fast[0][valid].tobytes() == reference[0][valid].tobytes() == decoded[0][valid].tobytes()
    assert np.all(np.abs(fast[0][valid] - x[valid]) <= eps)


def _reference_encode(monkeypatch, codec, x, mask) -> bytes:
    run = prediction.run
    with monkeypatch.context() as patch:
        patch.setattr(prediction, "run", lambda *args, **kwargs: run(*args, reference=True, **kwargs))
        return codec.encode(x, mask)


@pytest.mark.parametrize("gaps", [False, True])
def test_compiled_loop_writes_the_reference_stream(context_checkpoint, monkeypatch, gaps):
    x, mask = _field(2, (14, 22), seed=21, gaps=gaps)
    codec = learned(context_checkpoint, eps=0.4)
    data = codec.encode(x, mask)
    assert data == _reference_encode(monkeypatch, codec, x, mask)
    x_rec, _ = codec.decode(data)
    valid = mask != 0
    assert np.abs(x_rec[valid].astype(np.float64) - x[valid]).max() <= 0.4


@pytest.mark.parametrize("gaps", [False, True])
def test_compiled_loop_writes_the_reference_stream_of_the_shipped_network(monkeypatch, gaps):
    """15 features, hidden 64: the products are BLAS's over many terms, still the same integers."""
    x, mask = _field(15, (7, 12), seed=31, gaps=gaps)
    x = (x - 220 + np.array([207, 194, 227, 237, 233, 224, 217, 211, 208, 214, 219, 226, 235, 247, 232],
                            np.float32)[:, None, None])
    codec = get_codec("errorbound", inner="constant", eps=0.5, context="learned", checkpoint=str(SHIPPED))
    data = codec.encode(x, mask)
    assert data == _reference_encode(monkeypatch, codec, x, mask)
    x_rec, _ = codec.decode(data)
    valid = mask != 0
    assert np.abs(x_rec[valid].astype(np.float64) - x[valid]).max() <= 0.5


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(masked_blocks(), st.sampled_from([0.01, 0.5, 3.0]))
def test_property_compiled_loop_is_the_reference(context_checkpoint, sample, eps):
    x, mask = (np.concatenate([a, a])[:2] for a in sample)
    fast, reference, decoded = _both(lambda: _random_predictor(2, 8, seed=4, eps=eps), x, mask, eps)
    valid = (mask != 0) & np.isfinite(x)
    np.testing.assert_array_equal(fast[1], reference[1])
    assert fast[0][valid].tobytes() == reference[0][valid].tobytes() == decoded[0][valid].tobytes()
