"""The registry: lookup by name, parameter checks, and the context hook learned codecs rely on."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from satflow.codecs.base import Codec
from satflow.codecs.container import ContainerError, pack_container
from satflow.codecs.registry import (available_codecs, check_params, codec_class, codec_from_container, get_codec,
                                     register_codec)


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


def test_what_a_codec_needs_is_read_from_its_class_without_building_it():
    vaeformer, errorbound = codec_class("vaeformer"), codec_class("errorbound")
    assert (vaeformer.needs_checkpoint, vaeformer.uses_device, vaeformer.declares_bound) == (True, True, False)
    assert [codec_class(n).declares_bound for n in ("sz3", "zfp", "errorbound", "lossless", "bitround")] == [
        True, True, True, False, False]
    assert not any(codec_class(n).needs_checkpoint or codec_class(n).uses_device for n in ("sz3", "lossless"))
    assert errorbound.wraps == "inner" and errorbound.takes_checkpoint({"context": "learned"})
    assert not errorbound.takes_checkpoint({"context": "causal"}) and not errorbound.takes_checkpoint({})


def test_check_params_refuses_like_get_codec_but_builds_nothing(tmp_path):
    check_params("test-scaled", {"checkpoint": str(tmp_path / "absent.json")})  # building would open the file
    with pytest.raises(ValueError, match=r"codec 'sz3' has no parameter 'tolerance'; its parameters: tol, fill"):
        check_params("sz3", {"tolerance": 1})
    with pytest.raises(ValueError, match=r"codec 'zfp' needs parameter 'tol'"):
        check_params("zfp", {})
    with pytest.raises(ValueError, match=r"^codec 'sz3': parameter 'tol' = \[0.5, -1\] is invalid: input should be "
                                         r"greater than 0 \(it takes float \| list\[float\]\)$"):
        check_params("sz3", {"tol": [0.5, -1]})
    with pytest.raises(ValueError, match=r"codec 'bitround': parameter 'keepbits' = 6.5 is invalid"):
        check_params("bitround", {"keepbits": 6.5})
    check_params("errorbound", {"inner": "sz3", "eps": 0.5})  # the inner sz3's tol defaults to eps
    with pytest.raises(ValueError, match=r"codec 'sz3': parameter 'fill' = 'zero' is invalid"):
        check_params("errorbound", {"inner": "sz3", "eps": 0.5, "inner_params": {"fill": "zero"}})
