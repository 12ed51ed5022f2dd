"""Codecs with real bitstreams: one contract (`encode(x, mask) -> bytes`, `decode(bytes) -> (x, mask)`)
for classic and learned codecs, a self-describing container and a registry by name."""

from satflow.codecs.base import Codec
from satflow.codecs.container import ContainerError
from satflow.codecs.registry import available_codecs, codec_from_container, get_codec, register_codec

__all__ = ["Codec", "ContainerError", "available_codecs", "codec_from_container", "get_codec", "register_codec"]
