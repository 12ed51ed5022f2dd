"""Classic codecs: lossless, bit-rounding, SZ3 and ZFP, all mask aware.

Invalid points are filled before coding (they cost bits but carry nothing), and decoding puts NaN
back through the container's mask. The error-bounded codecs (`sz3`, `zfp`) decode their own stream
while encoding and store any valid point that ended up beyond the tolerance verbatim (a "patch"),
so `|x - x_rec| <= tol` holds at every valid point whatever the library does with extreme values
or float32 rounding.
"""

from __future__ import annotations

import functools
import logging
import uuid
from typing import Annotated, Any, Literal

import numpy as np
from annotated_types import Ge, Gt, Le
from numcodecs import BitRound, Shuffle, Zstd
from pydantic import Strict

from satflow.codecs.base import Codec, PositiveNumber, ZstdLevel, fill_invalid, pack_sections, unpack_sections
from satflow.codecs.bitinfo import keepbits_for_block
from satflow.codecs.container import ContainerError
from satflow.codecs.registry import register_codec

KEEPBITS = Annotated[int, Strict(), Ge(0), Le(23)]  # float32 mantissa bits (an int, not 6.0)
FILL_DOC = "how invalid points are filled before coding: 'mean' (per feature) or 'smooth' (pyramid of valid means)"


def _shuffled_zstd(values: np.ndarray, level: int) -> bytes:
    # Byte-shuffle + zstd: as small as blosc's, but single-threaded blosc-free code is bit-reproducible
    # (numcodecs' threaded blosc gives different bytes from run to run).
    data = np.ascontiguousarray(values, dtype="<f4")
    return bytes(Zstd(level=level).encode(Shuffle(elementsize=4).encode(data)))


def _unshuffled_zstd(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    raw = Shuffle(elementsize=4).decode(Zstd().decode(data))
    values = np.frombuffer(raw, dtype="<f4")
    if values.size != int(np.prod(shape)):
        raise ContainerError(f"payload holds {values.size} values, the block {shape} needs {int(np.prod(shape))}")
    return values.reshape(shape).astype(np.float32)


def _positive(value: Any, name: str, codec: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{codec}: {name} must be a positive finite number, got {value!r}")
    return value


def per_feature(value: float | list[float], n_features: int, name: str) -> np.ndarray:
    """A scalar or one value per feature -> float64 array of length n_features."""
    values = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if values.size == 1:
        return np.full(n_features, values[0])
    if values.size != n_features:
        raise ValueError(f"{name} has {values.size} values but the block has {n_features} features")
    return values


def _check_fill(fill: str, codec: str) -> str:
    if fill not in ("mean", "smooth"):
        raise ValueError(f"{codec}: fill must be 'mean' or 'smooth', got {fill!r}")
    return fill


def _check_level(level: Any, codec: str) -> int:
    level = int(level)
    if not 1 <= level <= 22:
        raise ValueError(f"{codec}: level must be a zstd level in 1..22, got {level}")
    return level


# --- patches: valid points beyond the bound, stored verbatim ---------------------------------------
def exceedances(x: np.ndarray, x_rec: np.ndarray, mask: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """Flat indices of valid points whose reconstruction misses `x` by more than tol (per feature)."""
    error = np.abs(x_rec.astype(np.float64) - x.astype(np.float64))
    within = error <= tol.reshape(-1, *([1] * (x.ndim - 1)))  # NaN reconstructions count as misses
    return np.flatnonzero((mask != 0) & ~within)


def pack_patches(indices: np.ndarray, x: np.ndarray) -> bytes:
    """Delta-coded indices and exact float32 values, zstd-compressed (b'' when there are none)."""
    if indices.size == 0:
        return b""
    gaps = np.diff(indices, prepend=0).astype("<u8")
    values = x.ravel()[indices].astype("<f4")
    return bytes(Zstd(level=3).encode(np.uint64(indices.size).tobytes() + gaps.tobytes() + values.tobytes()))


def apply_patches(data: bytes, x_rec: np.ndarray) -> np.ndarray:
    """Write patched values into x_rec and return it (the same array when it is C-contiguous).

    Flat indices need a C-ordered array: on any other layout `reshape(-1)` is a copy and the
    patches would vanish silently (a learned decoder's cropped output is such a layout).
    """
    x_rec = np.ascontiguousarray(x_rec)
    if not data:
        return x_rec
    raw = bytes(Zstd().decode(data))
    count = int(np.frombuffer(raw[:8], "<u8")[0])
    if len(raw) != 8 + 12 * count:
        raise ContainerError(f"patch section holds {len(raw)} bytes, {count} patches need {8 + 12 * count}")
    indices = np.cumsum(np.frombuffer(raw[8 : 8 + 8 * count], "<u8")).astype(np.int64)
    if count and indices[-1] >= x_rec.size:
        raise ContainerError(f"patch index {indices[-1]} is outside a block of {x_rec.size} values")
    x_rec.reshape(-1)[indices] = np.frombuffer(raw[8 + 8 * count :], "<f4")
    return x_rec


# --- lossless -------------------------------------------------------------------------------------
@register_codec("lossless")
class LosslessCodec(Codec):
    """Lossless: byte-shuffled zstd of the float32 bits; valid points round-trip exactly."""

    param_docs = {"level": "zstd level, 1..22 (higher: smaller and slower)"}
    param_types = {"level": ZstdLevel}

    def __init__(self, *, level: int = 5) -> None:
        super().__init__(level=_check_level(level, "lossless"))

    def encode_payload(self, x: np.ndarray, mask: np.ndarray) -> bytes:
        return _shuffled_zstd(fill_invalid(x, mask, "mean"), self._params["level"])

    def decode_payload(self, payload: bytes, mask: np.ndarray) -> np.ndarray:
        return _unshuffled_zstd(payload, mask.shape)


# --- constant -------------------------------------------------------------------------------------
@register_codec("constant")
class ConstantCodec(Codec):
    """Constant: each feature's valid mean (8 bytes each); a baseline and a free inner codec for errorbound."""

    def encode_payload(self, x: np.ndarray, mask: np.ndarray) -> bytes:
        valid = mask != 0
        means = [float(x[f][valid[f]].mean(dtype=np.float64)) if valid[f].any() else 0.0 for f in range(x.shape[0])]
        return np.asarray(means, "<f8").tobytes()

    def decode_payload(self, payload: bytes, mask: np.ndarray) -> np.ndarray:
        means = np.frombuffer(payload, "<f8")
        if means.size != mask.shape[0]:
            raise ContainerError(f"constant payload holds {means.size} means, the block has {mask.shape[0]} features")
        return np.broadcast_to(means.astype(np.float32)[:, None, None], mask.shape).copy()


# --- bit rounding ---------------------------------------------------------------------------------
def bitround(values: np.ndarray, keepbits: int) -> np.ndarray:
    """Round-to-nearest float32 mantissa to `keepbits` bits (numcodecs.BitRound), never overflowing to inf."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if keepbits >= 23:
        return values.copy()
    rounded = BitRound(keepbits=int(keepbits)).encode(values).view(np.float32).reshape(values.shape)
    overflow = np.isfinite(values) & ~np.isfinite(rounded)
    if overflow.any():  # rounding up from near float32 max: truncate those few instead
        shave = np.uint32((0xFFFFFFFF << (23 - keepbits)) & 0xFFFFFFFF)
        rounded[overflow] = (values[overflow].view(np.uint32) & shave).view(np.float32)
    return rounded


@register_codec("bitround")
class BitRoundCodec(Codec):
    """Bit-rounding + lossless: keep `keepbits` mantissa bits per feature (relative error <= 2^-(keepbits+1))."""

    param_docs = {
        "keepbits": "mantissa bits kept, 0..23: an int, one per feature, or null to derive them from the data",
        "information": "with keepbits=null: fraction of real information to keep (Kloewer et al. 2021)",
        "level": "zstd level, 1..22",
    }
    param_types = {"keepbits": KEEPBITS | list[KEEPBITS] | None, "information": Annotated[float, Gt(0), Le(1)],
                   "level": ZstdLevel}

    def __init__(self, *, keepbits: int | list[int] | None = None, information: float = 0.99, level: int = 5) -> None:
        if keepbits is not None:
            bits = np.atleast_1d(np.asarray(keepbits))
            if bits.dtype.kind not in "iu" or bits.min() < 0 or bits.max() > 23:
                raise ValueError(f"bitround: keepbits must be integers in 0..23 (or null), got {keepbits!r}")
            keepbits = int(bits[0]) if np.ndim(keepbits) == 0 else [int(b) for b in bits]
        if not 0.0 < float(information) <= 1.0:
            raise ValueError(f"bitround: information must be in (0, 1], got {information!r}")
        super().__init__(keepbits=keepbits, information=float(information), level=_check_level(level, "bitround"))

    def describe(self) -> str:
        """Without `information` when keepbits are set by hand (it is not used then)."""
        if self._params["keepbits"] is None:
            return super().describe()
        return f"bitround(keepbits={self._params['keepbits']!r}, level={self._params['level']})"

    def keepbits_for(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Keepbits per feature: the configured ones, or those holding `information` of the data's."""
        if self._params["keepbits"] is None:
            return keepbits_for_block(x, mask, information=self._params["information"])
        return per_feature(self._params["keepbits"], x.shape[0], "keepbits").astype(np.uint8)

    def encode_payload(self, x: np.ndarray, mask: np.ndarray) -> bytes:
        keepbits = self.keepbits_for(x, mask)
        filled = fill_invalid(x, mask, "mean")
        rounded = np.stack([bitround(filled[f], int(k)) for f, k in enumerate(keepbits)])
        return pack_sections([keepbits.astype(np.uint8).tobytes(), _shuffled_zstd(rounded, self._params["level"])])

    def decode_payload(self, payload: bytes, mask: np.ndarray) -> np.ndarray:
        _, values = unpack_sections(payload, expected=2)
        return _unshuffled_zstd(values, mask.shape)

    @staticmethod
    def keepbits_in(payload: bytes) -> list[int]:
        """The keepbits a payload was coded with (recorded for reports)."""
        return list(unpack_sections(payload, expected=2)[0])


# --- absolute-error-bounded codecs ----------------------------------------------------------------
class ToleranceCodec(Codec):
    """Shared logic of `sz3` and `zfp`: fill, code per slab, verify the bound, patch misses."""

    param_docs = {
        "tol": "absolute error bound in data units: one number for the block or one per feature",
        "fill": FILL_DOC,
    }
    param_types = {"tol": PositiveNumber | list[PositiveNumber], "fill": Literal["mean", "smooth"]}
    declares_bound = True

    def __init__(self, *, tol: float | list[float], fill: str = "smooth") -> None:
        if isinstance(tol, (list, tuple)):
            tol = [_positive(t, "tol", self.name) for t in tol]
        else:
            tol = _positive(tol, "tol", self.name)
        super().__init__(tol=tol, fill=_check_fill(fill, self.name))

    def _slabs(self, shape: tuple[int, ...]) -> list[tuple[slice, float]]:
        """One slab for a scalar tolerance (coding across features), one per feature otherwise."""
        tol = self._params["tol"]
        if not isinstance(tol, list):
            return [(slice(None), tol)]
        per_feature(tol, shape[0], f"{self.name} tol")  # validates the count
        return [(slice(f, f + 1), t) for f, t in enumerate(tol)]

    def error_bound(self, n_features: int) -> np.ndarray:
        return per_feature(self._params["tol"], n_features, f"{self.name} tol")

    def compress(self, values: np.ndarray, tol: float) -> bytes:
        raise NotImplementedError

    def decompress(self, data: bytes, shape: tuple[int, ...], tol: float) -> np.ndarray:
        raise NotImplementedError

    def encode_payload(self, x: np.ndarray, mask: np.ndarray) -> bytes:
        filled = fill_invalid(x, mask, self._params["fill"])
        slabs = self._slabs(x.shape)
        streams = [self.compress(np.ascontiguousarray(filled[part]), tol) for part, tol in slabs]
        x_rec = self._reconstruct(streams, slabs, x.shape)
        tol = per_feature(self._params["tol"], x.shape[0], "tol")
        misses = exceedances(x, x_rec, mask, tol)
        return pack_sections([*streams, pack_patches(misses, x)])

    def decode_payload(self, payload: bytes, mask: np.ndarray) -> np.ndarray:
        slabs = self._slabs(mask.shape)
        *streams, patches = unpack_sections(payload, expected=len(slabs) + 1)
        return apply_patches(patches, self._reconstruct(streams, slabs, mask.shape))

    def _reconstruct(self, streams: list[bytes], slabs: list[tuple[slice, float]], shape: tuple[int, ...]) -> np.ndarray:
        out = np.empty(shape, np.float32)
        for stream, (part, tol) in zip(streams, slabs):
            out[part] = self.decompress(stream, out[part].shape, tol)
        return out

    @staticmethod
    def patch_count(payload: bytes) -> int:
        """How many points a payload stores verbatim (for reports and tests)."""
        patches = unpack_sections(payload)[-1]
        return int(np.frombuffer(Zstd().decode(patches)[:8], "<u8")[0]) if patches else 0


@register_codec("sz3")
class SZ3Codec(ToleranceCodec):
    """SZ3 (pysz) with an absolute error bound: |x - x_rec| <= tol at every valid point."""

    def compress(self, values: np.ndarray, tol: float) -> bytes:
        from pysz import sz, szConfig, szErrorBoundMode

        config = szConfig()  # fresh per call: a reused config carries state into the next stream
        config.errorBoundMode = szErrorBoundMode.ABS
        config.absErrorBound = tol
        compressed, _ = sz.compress(values, config)
        return bytes(compressed)

    def decompress(self, data: bytes, shape: tuple[int, ...], tol: float) -> np.ndarray:
        from pysz import sz

        try:
            values, _ = sz.decompress(np.frombuffer(data, np.uint8), np.float32, shape)
        except ValueError as err:
            raise ContainerError(f"sz3 stream does not match block shape {shape}: {err}") from err
        return values


@register_codec("zfp")
class ZFPCodec(ToleranceCodec):
    """ZFP fixed-accuracy mode (through hdf5plugin): |x - x_rec| <= tol at every valid point."""

    # The HDF5 ZFP filter skips chunks it cannot code (e.g. a single value); the chunk is then raw.
    _RAW, _FILTERED = b"\x01", b"\x00"

    def compress(self, values: np.ndarray, tol: float) -> bytes:
        import h5py

        with h5py.File(_memory_file_name(), "w", driver="core", backing_store=False) as h5:
            dataset = h5.create_dataset("x", data=values, chunks=values.shape, **_zfp_filter(tol))
            filter_mask, chunk = dataset.id.read_direct_chunk((0,) * values.ndim)
        return (self._RAW if filter_mask else self._FILTERED) + bytes(chunk)

    def decompress(self, data: bytes, shape: tuple[int, ...], tol: float) -> np.ndarray:
        import h5py

        flag, chunk = data[:1], data[1:]
        if flag == self._RAW:
            return np.frombuffer(chunk, "<f4").reshape(shape).copy()
        if flag != self._FILTERED:
            raise ContainerError(f"zfp stream starts with unknown flag {flag!r}")
        with h5py.File(_memory_file_name(), "w", driver="core", backing_store=False) as h5:
            dataset = h5.create_dataset("x", shape=shape, dtype=np.float32, chunks=shape, **_zfp_filter(tol))
            dataset.id.write_direct_chunk((0,) * len(shape), chunk)
            try:
                return dataset[...]
            except OSError as err:
                raise ContainerError(f"zfp stream does not decode for block shape {shape}: {err}") from err


@functools.lru_cache(maxsize=64)
def _zfp_filter(tol: float) -> dict:
    import hdf5plugin

    # hdf5plugin logs the ZFP mode at INFO on every filter it builds; that is noise per block.
    logging.getLogger("hdf5plugin._filters").setLevel(logging.WARNING)
    return dict(hdf5plugin.Zfp(accuracy=tol))


def _memory_file_name() -> str:
    # HDF5 identifies even in-memory files by name; a unique one keeps concurrent calls apart.
    return f"satflow-zfp-{uuid.uuid4().hex}.h5"
