"""The registry: lookup by name, parameter checks, and the context hook learned codecs rely on."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from satflow.codecs.base import Codec
from satflow.codecs.container import ContainerError, pack_container
from satflow.codecs.registry import available_codecs, codec_from_container, get_codec, register_codec


@register_codec("test-scaled")
class ScaledCodec(Codec):
    """Test codec needing a resource that is not in the stream: a JSON 'checkpoint' holding a scale."""

    def __init__(self, *, checkpoint: str) -> None:
        with open(checkpoint, "rb") as handle:
            raw = handle.read()
        self.scale = json.loads(raw)["scale"]
        self.fingerprint = hashlib.sha256(raw).hexdigest()[:16]
        super().__init__(checkpoint=checkpoint)

    def container_params(self) -> dict:
        return {"fingerprint": self.fingerprint}

    @classmethod
    def from_container_params(cls, params, **context):
        if "checkpoint" not in context:
            raise ContainerError("test-scaled needs checkpoint=")
        codec = cls(checkpoint=context["checkpoint"])
        if codec.fingerprint != params["fingerprint"]:
            raise ContainerError(f"checkpoint fingerprint {codec.fingerprint} differs from {params['fingerprint']}")
        return codec

    def encode_payload(self, x, mask):
        return np.round(np.nan_to_num(x) / self.scale).astype("<i4").tobytes()

    def decode_payload(self, payload, mask):
        return (np.frombuffer(payload, "<i4") * self.scale).astype(np.float32).reshape(mask.shape)


def _checkpoint(tmp_path, scale):
    path = tmp_path / f"scale{scale}.json"
    path.write_text(json.dumps({"scale": scale}))
    return str(path)


def test_available_codecs_lists_builtins_with_parameter_docs():
    codecs = available_codecs()
    assert {"lossless", "bitround", "sz3", "zfp", "errorbound"} <= set(codecs)
    assert codecs["sz3"]["params"]["tol"] == {
        "doc": "absolute error bound in data units: one number for the block or one per feature"
    }
    assert codecs["sz3"]["params"]["fill"]["default"] == "smooth"
    assert codecs["lossless"]["description"].startswith("Lossless: byte-shuffled zstd")


def test_lookup_errors_name_what_exists():
    with pytest.raises(ValueError, match=r"unknown codec 'nope'; registered codecs: bitround, constant, errorbound, lossless"):
        get_codec("nope")
    with pytest.raises(ValueError, match=r"codec 'sz3' has no parameter 'tolerance'; its parameters: tol, fill"):
        get_codec("sz3", tolerance=1)
    with pytest.raises(ValueError, match=r"codec 'zfp' needs parameter 'tol'"):
        get_codec("zfp")


def test_codec_from_container_rebuilds_name_and_params(block):
    data = get_codec("bitround", keepbits=[4, 6], level=3).encode(block)
    codec = codec_from_container(data)
    assert codec.describe() == "bitround(keepbits=[4, 6], level=3)"


def test_context_reaches_codecs_that_need_resources(block, tmp_path):
    codec = get_codec("test-scaled", checkpoint=_checkpoint(tmp_path, 0.5))
    data = codec.encode(block)
    x_rec, _ = codec_from_container(data, checkpoint=_checkpoint(tmp_path, 0.5)).decode(data)
    assert np.nanmax(np.abs(x_rec - block)) <= 0.25
    with pytest.raises(ContainerError, match="checkpoint fingerprint .* differs"):
        codec_from_container(data, checkpoint=_checkpoint(tmp_path, 0.25))


def test_errorbound_forwards_context_to_its_inner_codec(block, tmp_path):
    inner = get_codec("test-scaled", checkpoint=_checkpoint(tmp_path, 4.0))
    codec = get_codec("errorbound", inner=inner, eps=0.1)
    data = codec.encode(block)
    x_rec, _ = codec_from_container(data, checkpoint=_checkpoint(tmp_path, 4.0)).decode(data)
    assert np.nanmax(np.abs(x_rec.astype(np.float64) - block)) <= 0.1


def test_unknown_codec_in_a_container():
    data = pack_container("made-up", {}, np.ones((1, 1, 1), np.uint8), b"")
    with pytest.raises(ContainerError, match="written by codec 'made-up', which is not available"):
        codec_from_container(data)
