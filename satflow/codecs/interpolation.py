"""SZ3's interpolation predictor as errorbound's second stream (stream version 4): never worse than SZ3.

The least-squares closed loop wins where features share structure (1.3-1.7x SZ3 per feature on
multi-channel fields) but loses on one smooth feature in small blocks (OSTIA: 0.89x at 0.5 K), where
its coefficients and its one-row causal neighbourhood cost more than SZ3's multilevel
interpolation. From version 4 the encoder of a block with few features (`TRIAL_FEATURES`) also codes
it this way, SZ3 (pysz) per feature at the same absolute bound, and keeps the shorter payload; the
payload's first byte says which: a predictive payload is version 3's (`base.pack_sections` of 6 or
7 sections: its first byte is that count), an SZ3 payload starts with `SZ3` (1).

The SZ3 payload, after its byte: the CRC-32 of SZ3's float32 reconstruction (every point, before
patches: a pysz that decodes differently is refused instead of breaking the bound), one uint32
length per feature, the pysz streams, and the verbatim patches of the valid points SZ3 still left
beyond eps after the cast to float32 (`classic.pack_patches`), so the bound holds everywhere. Gaps
are filled as the `sz3` codec fills them (`fill="smooth"`), so its stream is that codec's, framed in
9 + 4 F bytes instead of 8 (F + 2).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from satflow.codecs import kernels
from satflow.codecs.base import fill_invalid
from satflow.codecs.classic import SZ3Codec, apply_patches, pack_patches
from satflow.codecs.container import ContainerError

SZ3 = 1  # the first byte of a version-4 SZ3 payload (a predictive one starts with its section count, 6 or 7)
# Blocks with at most this many features are also coded by SZ3. Above it the closed loop's
# cross-feature terms win by far (AMSU 15 channels: 1.4x, colpex 10 levels: 1.6x SZ3 per feature)
# and SZ3's encoding would cost the encoder half its speed again.
TRIAL_FEATURES = 8
_SZ3 = SZ3Codec(tol=1.0)  # compress/decompress take the bound per call


def encode_sz3(x: np.ndarray, mask: np.ndarray, eps: np.ndarray) -> bytes:
    """The SZ3 payload (its first byte included) of a prepared block, |x - x_rec| <= eps[f] at every valid point."""
    filled = fill_invalid(x, mask, "smooth")
    streams = [_SZ3.compress(np.ascontiguousarray(filled[f : f + 1]), float(eps[f])) for f in range(x.shape[0])]
    x_rec = _reconstruct(streams, mask.shape, eps)
    misses = kernels.exceedances(np.ascontiguousarray(x), x_rec, np.ascontiguousarray(mask != 0), eps)
    lengths = np.array([len(s) for s in streams], "<u4").tobytes()
    return b"".join([bytes([SZ3]), struct.pack("<I", _crc(x_rec)), lengths, *streams, pack_patches(misses, x)])


def is_sz3(payload: bytes) -> bool:
    """Whether a version-4 payload is an SZ3 one (else it is version 3's predictive payload)."""
    return payload[:1] == bytes([SZ3])


def decode_sz3(payload: bytes, mask: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """Inverse of `encode_sz3` (payload with its first byte): float32 (feature, lat, lon)."""
    n_features = mask.shape[0]
    head = 5 + 4 * n_features
    if len(payload) < head or payload[0] != SZ3:
        raise ContainerError(f"errorbound SZ3 payload of {len(payload)} bytes is too short for {n_features} features")
    (crc,) = struct.unpack_from("<I", payload, 1)
    lengths = np.frombuffer(payload, "<u4", n_features, 5).astype(np.int64)
    ends = head + np.cumsum(lengths)
    if n_features and ends[-1] > len(payload):
        raise ContainerError(f"errorbound SZ3 streams announce {int(ends[-1])} bytes, the payload holds {len(payload)}")
    starts = np.concatenate([[head], ends[:-1]])
    streams = [payload[a:b] for a, b in zip(starts.tolist(), ends.tolist())]
    x_rec = _reconstruct(streams, mask.shape, eps)
    if _crc(x_rec) != crc:
        raise ContainerError("SZ3 (pysz) decoded this errorbound stream differently than when it was encoded "
                             "(another pysz version?); refusing to return values that may break the error bound")
    return apply_patches(payload[int(ends[-1]) if n_features else head :], x_rec)


def _reconstruct(streams: list[bytes], shape: tuple[int, ...], eps: np.ndarray) -> np.ndarray:
    out = np.empty(shape, np.float32)
    for f, stream in enumerate(streams):
        out[f : f + 1] = _SZ3.decompress(stream, (1, *shape[1:]), float(eps[f]))
    return out


def _crc(values: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(values, "<f4"))
