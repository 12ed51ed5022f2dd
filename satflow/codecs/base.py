"""The codec contract shared by classic and learned codecs.

A codec turns a float32 `(feature, lat, lon)` block plus its validity into a self-describing
container (`satflow.codecs.container`) and back:

    codec = get_codec("sz3", tol=0.5)
    data = codec.encode(x, mask)          # bytes; NaN (or mask == 0) marks invalid points
    x_rec, mask_rec = codec.decode(data)  # float32 with NaN where mask_rec == 0, uint8 mask

Subclasses implement only the payload hooks, `encode_payload(x, mask) -> bytes` and
`decode_payload(payload, mask) -> ndarray`; the base class validates inputs, codes the mask and
builds/checks the container, so every codec gets the same guarantees. Learned codecs override
the batched hooks `encode_payloads` / `decode_payloads` to run a whole batch through a network
at once, and `container_params` / `from_container_params` to record a weights fingerprint in the
header and to receive resources that are not in the stream (e.g. `checkpoint=`) when decoding.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar

import numpy as np
from annotated_types import Ge, Gt, Le, Lt

from satflow.codecs.container import Container, ContainerError, pack_container, unpack_container

Block = np.ndarray
Decoded = tuple[np.ndarray, np.ndarray]
# Value types for `Codec.param_types` (checked by `satflow.codecs.registry.check_params`).
PositiveNumber = Annotated[float, Gt(0), Lt(math.inf)]  # a bound or step: finite and > 0
ZstdLevel = Annotated[int, Ge(1), Le(22)]


def prepare_block(x: Any, mask: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate a `(feature, lat, lon)` block: float32 copy with NaN at every invalid point, uint8 mask.

    A point is valid when it is finite and, if a mask is given, its mask is non-zero.
    """
    x = np.array(x, dtype=np.float32, copy=True)
    if x.ndim != 3 or x.size == 0:
        raise ValueError(f"codecs take non-empty (feature, lat, lon) blocks; got an array of shape {x.shape}")
    valid = np.isfinite(x)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != x.shape:
            raise ValueError(f"mask shape {mask.shape} differs from block shape {x.shape}")
        valid &= mask != 0
    x[~valid] = np.nan
    return x, valid.astype(np.uint8)


def fill_invalid(x: np.ndarray, mask: np.ndarray, method: str = "mean") -> np.ndarray:
    """A fully finite copy of `x` for coders that cannot skip points; only valid points matter.

    `mean` puts each feature's valid mean into its gaps (0 where a feature has none); `smooth`
    fills gaps from a coarse-to-fine pyramid of valid means, which keeps gap edges smooth and
    so costs predictive coders (SZ3, ZFP) fewer bits.
    """
    if method not in ("mean", "smooth"):
        raise ValueError(f"fill must be 'mean' or 'smooth', got {method!r}")
    out = np.array(x, dtype=np.float32, copy=True)
    valid = mask.astype(bool)
    for f in range(out.shape[0]):
        if valid[f].all():
            continue
        if not valid[f].any():
            out[f] = 0.0
        elif method == "mean":
            out[f][~valid[f]] = np.float32(out[f][valid[f]].mean(dtype=np.float64))
        else:
            out[f] = _pyramid_fill(out[f].astype(np.float64), valid[f]).astype(np.float32)
    return out


def _pyramid_fill(field: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill invalid cells from the 2x2-mean pyramid of valid cells (needs >= 1 valid cell)."""
    if valid.all():
        return field
    height, width = field.shape
    padded_h, padded_w = height + height % 2, width + width % 2
    values = np.zeros((padded_h, padded_w))
    counts = np.zeros((padded_h, padded_w))
    values[:height, :width] = np.where(valid, field, 0.0)
    counts[:height, :width] = valid
    sums = values.reshape(padded_h // 2, 2, padded_w // 2, 2).sum(axis=(1, 3))
    count = counts.reshape(padded_h // 2, 2, padded_w // 2, 2).sum(axis=(1, 3))
    coarse_valid = count > 0
    coarse = _pyramid_fill(np.where(coarse_valid, sums / np.maximum(count, 1), 0.0), coarse_valid)
    upsampled = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)[:height, :width]
    return np.where(valid, field, upsampled)


class Codec(ABC):
    """Base class of every codec; configure with keyword arguments only: `Codec(**params)`.

    Subclasses call `super().__init__(**normalised_params)` with JSON-able values, which become
    `params` and (by default) the parameters recorded in every container header.
    """

    name: ClassVar[str] = ""  # set by @register_codec
    param_docs: ClassVar[dict[str, str]] = {}  # parameter -> one-line help for `satflow codecs`
    # Parameter -> type where the codec restricts values beyond `__init__`'s annotation (e.g. a
    # positive bound); specs are checked against these before any codec is built.
    param_types: ClassVar[dict[str, Any]] = {}
    # What a codec needs besides its settings, read from the class by specs and eval tasks:
    needs_checkpoint: ClassVar[bool] = False  # built with `checkpoint=`; a run's --checkpoint fills it in
    checkpoint_when: ClassVar[dict[str, Any]] = {}  # ... only when its parameters hold these values
    uses_device: ClassVar[bool] = False  # built with `device=`, kept as `.device`: runs a network (GPUs help)
    declares_bound: ClassVar[bool] = False  # `error_bound` returns the absolute error it promises
    # "module:Class" of a distributed WorkerPlugin that readies a worker for this codec (compiled
    # kernels loaded once per worker instead of in its first task); None: nothing to ready
    worker_plugin: ClassVar[str | None] = None
    # The parameter naming a wrapped codec (its parameters under `<wraps>_params`); an instance
    # holds the wrapped Codec as the attribute of that name.
    wraps: ClassVar[str | None] = None

    @classmethod
    def wrapped_params(cls, params: dict) -> dict:
        """The parameters the codec named by `params[cls.wraps]` is built with."""
        return dict(params.get(f"{cls.wraps}_params") or {})

    @classmethod
    def takes_checkpoint(cls, params: dict) -> bool:
        """Whether a codec built with `params` takes a run-level `checkpoint=`."""
        return cls.needs_checkpoint and all(params.get(key) == value for key, value in cls.checkpoint_when.items())

    def __init__(self, **params: Any) -> None:
        # Stored as they will read back from a container header, so that params compare equal.
        try:
            self._params = as_header_json(params)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{self.name or type(self).__name__}: parameters must be JSON-able ({err})") from None

    # --- identity ------------------------------------------------------------------------------
    @property
    def params(self) -> dict:
        """The JSON-able keyword parameters this codec was built with."""
        return dict(self._params)

    def container_params(self) -> dict:
        """Parameters written into each container header; decoding checks them.

        Learned codecs return their architecture settings and a weights fingerprint here instead
        of a local checkpoint path.
        """
        return self.params

    @classmethod
    def from_container_params(cls, params: dict, **context: Any) -> Codec:
        """Rebuild the codec that wrote a container from its header parameters.

        `context` carries resources that are not in the stream, such as `checkpoint=` for a
        learned codec; codecs that need none ignore it.
        """
        return cls(**params)

    @classmethod
    def description(cls) -> str:
        """First line of the class docstring."""
        return (cls.__doc__ or cls.__name__).strip().splitlines()[0]

    def error_bound(self, n_features: int) -> np.ndarray | None:
        """The absolute error this codec promises per feature (float64), or None if it promises none.

        Evaluations count the valid points beyond it as violations.
        """
        return None

    def device_label(self) -> str:
        """Where this codec (or the codec it wraps) computes: its torch device, or "cpu"."""
        if self.uses_device:
            return str(self.device)
        inner = getattr(self, self.wraps, None) if self.wraps else None
        return inner.device_label() if isinstance(inner, Codec) else "cpu"

    def describe(self) -> str:
        """One line: name and parameters, e.g. `sz3(fill='mean', tol=0.5)`."""
        settings = ", ".join(f"{key}={value!r}" for key, value in sorted(self.params.items()))
        return f"{self.name}({settings})"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    # --- payload hooks (what subclasses implement) ---------------------------------------------
    @abstractmethod
    def encode_payload(self, x: np.ndarray, mask: np.ndarray) -> bytes:
        """Code one block: `x` float32 `(feature, lat, lon)` with NaN where `mask` (uint8) is 0."""

    @abstractmethod
    def decode_payload(self, payload: bytes, mask: np.ndarray) -> np.ndarray:
        """Decode one payload into a float32 array of `mask.shape`; values where mask == 0 are ignored."""

    def encode_payloads(self, xs: list[np.ndarray], masks: list[np.ndarray]) -> list[bytes]:
        """Batched `encode_payload`; learned codecs override it to run one forward pass."""
        return [self.encode_payload(x, m) for x, m in zip(xs, masks)]

    def decode_payloads(self, payloads: list[bytes], masks: list[np.ndarray]) -> list[np.ndarray]:
        """Batched `decode_payload`."""
        return [self.decode_payload(p, m) for p, m in zip(payloads, masks)]

    # --- the public contract -------------------------------------------------------------------
    def encode(self, x: Any, mask: Any = None, *, attrs: dict | None = None) -> bytes:
        """Code one `(feature, lat, lon)` block into a container; `attrs` is free JSON metadata."""
        return self.encode_batch([x], None if mask is None else [mask], attrs=attrs)[0]

    def decode(self, data: bytes) -> Decoded:
        """Decode one container made by this codec with these parameters -> (x float32, mask uint8)."""
        return self.decode_batch([data])[0]

    def encode_batch(self, blocks: Any, masks: Any = None, *, attrs: dict | None = None) -> list[bytes]:
        """Code a list of blocks or a `(batch, feature, lat, lon)` array; one container per block."""
        blocks = as_block_list(blocks)
        masks = None if masks is None else as_block_list(masks)
        if masks is not None and len(masks) != len(blocks):
            raise ValueError(f"{len(blocks)} blocks but {len(masks)} masks")
        prepared = [prepare_block(b, None if masks is None else masks[i]) for i, b in enumerate(blocks)]
        xs, ms = [p[0] for p in prepared], [p[1] for p in prepared]
        payloads = self.encode_payloads(xs, ms)
        header_params = self.container_params()
        return [pack_container(self.name, header_params, m, p, attrs=attrs) for m, p in zip(ms, payloads)]

    def decode_batch(self, datas: Sequence[bytes]) -> list[Decoded]:
        """Decode several containers -> list of (x, mask)."""
        containers = [unpack_container(d) for d in datas]
        for container in containers:
            self.check_container(container)
        masks = [c.mask for c in containers]
        values = self.decode_payloads([c.payload for c in containers], masks)
        return [_finish(v, m) for v, m in zip(values, masks)]

    def check_container(self, container: Container) -> None:
        """Raise ContainerError unless this codec, with these parameters, wrote `container`."""
        if container.codec != self.name:
            raise ContainerError(
                f"container was written by codec {container.codec!r}, not {self.name!r}; "
                "decode it with satflow.codecs.registry.codec_from_container(data)"
            )
        if container.dtype != "float32":
            raise ContainerError(f"container holds dtype {container.dtype!r}; satflow codecs decode float32 only")
        expected = as_header_json(self.container_params())
        if container.params != expected:
            raise ContainerError(
                f"container parameters {container.params} differ from this {self.name!r} codec's {expected}; "
                "decode it with satflow.codecs.registry.codec_from_container(data)"
            )


def as_header_json(params: dict) -> dict:
    """`params` as they read back from a container header (tuples become lists, numbers stay exact)."""
    return json.loads(json.dumps(params, sort_keys=True, allow_nan=False))


def _finish(values: np.ndarray, mask: np.ndarray) -> Decoded:
    values = np.asarray(values, dtype=np.float32)
    if values.shape != mask.shape:
        raise ContainerError(f"payload decoded to shape {values.shape}, container says {mask.shape}")
    values = values.copy() if not values.flags.writeable else values
    values[mask == 0] = np.nan
    return values, mask


def as_block_list(blocks: Any) -> list[np.ndarray]:
    """A list of blocks from a list/tuple or a `(batch, feature, lat, lon)` array."""
    if isinstance(blocks, np.ndarray):
        if blocks.ndim != 4:
            raise ValueError(f"a batch array must be (batch, feature, lat, lon); got shape {blocks.shape}")
        return list(blocks)
    return list(blocks)


def pack_sections(parts: Sequence[bytes]) -> bytes:
    """Length-prefixed concatenation of byte strings (a payload made of several streams)."""
    header = np.array([len(parts), *map(len, parts)], dtype="<u8").tobytes()
    return header + b"".join(bytes(p) for p in parts)


def unpack_sections(payload: bytes, expected: int | None = None) -> list[bytes]:
    """Inverse of `pack_sections`; ContainerError when the lengths do not add up."""
    payload = bytes(payload)
    if len(payload) < 8:
        raise ContainerError(f"payload of {len(payload)} bytes is too short for its section table")
    count = int(np.frombuffer(payload[:8], "<u8")[0])
    if count > len(payload) // 8 or (expected is not None and count != expected):
        raise ContainerError(f"payload announces {count} sections, expected {expected if expected is not None else 'fewer'}")
    lengths = np.frombuffer(payload[8 : 8 * (count + 1)], "<u8").astype(np.int64)
    offset = 8 * (count + 1)
    if offset + int(lengths.sum()) != len(payload):
        raise ContainerError(f"payload sections add up to {offset + int(lengths.sum())} bytes, payload has {len(payload)}")
    parts = []
    for length in lengths:
        parts.append(payload[offset : offset + int(length)])
        offset += int(length)
    return parts
