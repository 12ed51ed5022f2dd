"""Codecs with real bitstreams: one contract (`encode(x, mask) -> bytes`, `decode(bytes) -> (x, mask)`)
for classic and learned codecs, a self-describing container and a registry by name.

Public entry points are imported lazily: `satflow.config` imports `satflow.codecs.options`, and
that must not pull in numpy and numcodecs.
"""

from __future__ import annotations

from satflow.lazy import lazy_getattr

_EXPORTS = {
    "Codec": "satflow.codecs.base",
    "ContainerError": "satflow.codecs.container",
    "available_codecs": "satflow.codecs.registry",
    "codec_from_container": "satflow.codecs.registry",
    "get_codec": "satflow.codecs.registry",
    "register_codec": "satflow.codecs.registry",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
