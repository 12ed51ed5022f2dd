"""Every satflow codec as a Zarr v3 array-to-bytes codec, named `satflow.<codec>`.

    serializer = satflow.zarr_codec("errorbound:inner=constant,eps=0.5")
    ds.to_zarr(path, encoding={"X": {"serializer": serializer}}, zarr_format=3)
    xr.open_zarr(path).X          # decodes lazily; satflow need only be installed

A chunk `(time, feature, lat, lon)` (or `(feature, lat, lon)`) of float32 holds one satflow
container per time step, back to back (the container format is self-delimiting, so there are no
framing bytes: a chunk file is exactly the compressed size). The mask is `isfinite(chunk)`;
decoding gives NaN where it is 0, bit-identical to `codec.decode` of the same block. A container
written straight as a chunk (`write_chunk_bytes`, as `satflow eval` does) may hold only the
in-bounds part of an edge chunk; decoding pads it with NaN, the fill value zarr crops away.

The Zarr configuration is the satflow codec's parameters as it was built (`codec.params`: defaults
included, so a store does not change meaning when a default does). Wherever the parameters name
a `checkpoint`, a `checkpoint_fingerprint` beside it records the weights it had; a reader resolves
the path from the configuration or satflow's shipped checkpoints by that fingerprint and refuses
to decode with other weights. Zarr finds these classes through the `zarr.codecs` entry points in
pyproject.toml, so a reading process never imports satflow itself.
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration
from zarr.registry import register_codec as register_zarr_codec

from satflow.codecs.base import Codec
from satflow.codecs.container import ContainerError, split_containers
from satflow.codecs.registry import get_codec

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer
    from zarr.core.chunk_grids import ChunkGrid

PREFIX = "satflow."
# The codecs satflow registers, each with a `zarr.codecs` entry point of the same name in
# pyproject.toml (a test keeps both equal to `available_codecs()`).
BUILTIN_CODECS = ("bitround", "constant", "errorbound", "lossless", "sz3", "vaeformer", "zfp")
CHECKPOINT, FINGERPRINT = "checkpoint", "checkpoint_fingerprint"
# A read whose chunks decode to at most this many bytes is decoded on zarr's event loop, without
# a thread hop: a few milliseconds of decoding at most, and the hop costs more than a small chunk.
INLINE_DECODE_BYTES = 1 << 20


@dataclass(frozen=True)
class SatflowZarrCodec(ArrayBytesCodec):
    """A satflow codec as a Zarr v3 serializer: one container per time step of a chunk."""

    is_fixed_size = False

    codec_name: str
    params_json: str  # canonical JSON, so the codec hashes, compares and pickles by value

    def __init__(self, *, codec_name: str, params: dict[str, Any] | None = None) -> None:
        try:
            params_json = json.dumps(params or {}, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"zarr codec {PREFIX}{codec_name}: configuration must be JSON ({err})") from None
        object.__setattr__(self, "codec_name", codec_name)
        object.__setattr__(self, "params_json", params_json)
        self.satflow_codec  # noqa: B018 - a bad configuration fails here, naming what is wrong

    @property
    def name(self) -> str:
        return PREFIX + self.codec_name

    @property
    def params(self) -> dict[str, Any]:
        """The configuration as stored in zarr.json."""
        return json.loads(self.params_json)

    @property
    def satflow_codec(self) -> Codec:
        """This process's instance of the satflow codec (built once per configuration)."""
        return build_satflow_codec(self.codec_name, self.params_json)

    # --- metadata ------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        name, configuration = parse_named_configuration(data, require_configuration=False)
        if not name.startswith(PREFIX):
            raise ValueError(f"zarr codec {name!r} is not a satflow codec (names start with {PREFIX!r})")
        return cls(codec_name=name.removeprefix(PREFIX), params=dict(configuration or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "configuration": self.params}

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: ChunkGrid) -> None:
        native = np.dtype(dtype.to_native_dtype())
        if native != np.float32:
            raise ValueError(f"zarr codec {self.name} codes float32 arrays, not {native}; cast with .astype('float32')")
        if len(shape) not in (3, 4):
            raise ValueError(
                f"zarr codec {self.name} codes (time, feature, lat, lon) or (feature, lat, lon) arrays; "
                f"got {len(shape)} dimensions"
            )

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError(f"zarr codec {self.name}: the coded size depends on the data")

    # --- coding --------------------------------------------------------------------------------
    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        data = await asyncio.to_thread(self.encode_chunk, chunk_array.as_numpy_array())
        return chunk_spec.prototype.buffer.from_bytes(data)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return (await self.decode([(chunk_bytes, chunk_spec)]))[0]

    async def decode(self, chunks_and_specs: Iterable[tuple[Buffer | None, ArraySpec]]) -> list[NDBuffer | None]:
        """Decode a batch of chunks in one worker thread, or on zarr's event loop when they are small
        (missing chunks stay None: zarr fills them).

        zarr's default hands every chunk to its own `asyncio.to_thread`; for a small chunk the hop
        (about 0.1 ms) costs as much as its decode (a 30 kB chunk: 0.2 ms), and a read through dask
        pays it once per chunk. The decode is the same `decode_chunk` either way. zarr's pipeline
        passes one chunk per batch unless `codec_pipeline.batch_size` is raised.
        """
        batch = list(chunks_and_specs)
        todo = [(chunk, spec) for chunk, spec in batch if chunk is not None]

        def decode_all() -> list[NDBuffer]:
            return [spec.prototype.nd_buffer.from_numpy_array(self.decode_chunk(chunk.to_bytes(), spec.shape))
                    for chunk, spec in todo]

        decoded_bytes = sum(4 * int(np.prod(spec.shape)) for _, spec in todo)
        decoded = iter(decode_all() if decoded_bytes <= INLINE_DECODE_BYTES else await asyncio.to_thread(decode_all))
        return [None if chunk is None else next(decoded) for chunk, _ in batch]

    def encode_chunk(self, chunk: np.ndarray) -> bytes:
        """A float32 chunk (NaN = invalid) -> its containers back to back, one per time step."""
        steps = as_time_steps(np.asarray(chunk, dtype=np.float32))
        return b"".join(self.satflow_codec.encode_batch(steps, [np.isfinite(step) for step in steps]))

    def decode_chunk(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        """Inverse of `encode_chunk` for a chunk of `shape`; ContainerError when the bytes do not fit it."""
        containers = split_containers(data)
        step_shape, n_steps = (shape[1:], shape[0]) if len(shape) == 4 else (shape, 1)
        if len(containers) != n_steps:
            raise ContainerError(
                f"zarr codec {self.name}: chunk holds {len(containers)} containers, its shape {shape} needs {n_steps}"
            )
        decoded = self.satflow_codec.decode_batch(containers)
        steps = [_fill_chunk(values, tuple(step_shape), self.name) for values, _ in decoded]
        if len(shape) == 3:
            return steps[0]
        return steps[0][np.newaxis] if n_steps == 1 else np.stack(steps)  # one step: a view, no copy


def _fill_chunk(values: np.ndarray, step_shape: tuple[int, ...], name: str) -> np.ndarray:
    """A decoded block as the chunk's time step: as is, or (the in-bounds part of an edge chunk)
    padded with NaN at the high ends of its last two axes."""
    if values.shape == step_shape:
        return values
    fits = values.ndim == len(step_shape) and values.shape[:-2] == step_shape[:-2] and all(
        n <= m for n, m in zip(values.shape[-2:], step_shape[-2:]))
    if not fits:
        raise ContainerError(f"zarr codec {name}: a container holds a block of shape {values.shape}, "
                             f"the chunk's time step is {step_shape}")
    padded = np.full(step_shape, np.nan, dtype=values.dtype)
    padded[..., :values.shape[-2], :values.shape[-1]] = values
    return padded


def write_chunk_bytes(array, coords: tuple[int, ...], data: bytes) -> None:
    """Store already-encoded bytes (e.g. a satflow container) as chunk `coords` of a zarr `array`,
    with the array's own chunk key encoding; the store writes it atomically (LocalStore)."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    key = array.metadata.encode_chunk_key(tuple(coords))
    sync((array.store_path / key).set(default_buffer_prototype().buffer.from_bytes(data)))


def read_chunk_bytes(array, coords: tuple[int, ...]) -> bytes | None:
    """The stored bytes of chunk `coords` of a zarr `array`, None when it was never written."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    key = array.metadata.encode_chunk_key(tuple(coords))
    found = sync((array.store_path / key).get(prototype=default_buffer_prototype()))
    return None if found is None else found.to_bytes()


def as_time_steps(chunk: np.ndarray) -> list[np.ndarray]:
    """The `(feature, lat, lon)` blocks of a 4-D chunk, or the 3-D chunk itself."""
    return list(chunk) if chunk.ndim == 4 else [chunk]


def zarr_codec(spec: Any) -> SatflowZarrCodec:
    """The Zarr v3 serializer for a codec spec, e.g. `zarr_codec("errorbound:inner=constant,eps=0.5")`.

    `spec` is anything `CodecSpec.parse` reads (text, `{name, params}` or a CodecSpec). The
    configuration is the built codec's parameters, with each checkpoint's fingerprint beside it.
    """
    from satflow.codecs.spec import CodecSpec

    parsed = CodecSpec.parse(spec)
    try:
        codec = get_codec(parsed.name, **parsed.build_params())
    except (ValueError, TypeError) as err:
        raise ValueError(f"zarr codec {PREFIX}{parsed.name} (spec {str(parsed)!r}): {err}") from None
    register_zarr_codec(PREFIX + codec.name, SatflowZarrCodec)  # also a codec without an entry point
    return SatflowZarrCodec(codec_name=codec.name, params=pin_checkpoints(codec.params))


def zarr_encoding(spec: Any) -> dict[str, Any]:
    """An xarray `encoding` entry that stores chunks as bare satflow containers (no zstd on top).

    `ds.to_zarr(path, encoding={"X": zarr_encoding("sz3:tol=0.5")}, zarr_format=3)`: with only a
    serializer, zarr adds its default compressor, which costs time and no bytes worth having.
    """
    return {"serializer": zarr_codec(spec), "compressors": None}


@functools.lru_cache(maxsize=32)
def build_satflow_codec(codec_name: str, params_json: str) -> Codec:
    """Build a satflow codec from a Zarr configuration, once per process (learned codecs load weights)."""
    try:
        return get_codec(codec_name, **resolve_checkpoints(json.loads(params_json)))
    except (ValueError, TypeError) as err:
        raise ValueError(f"zarr codec {PREFIX}{codec_name}: {err}") from None


# --- learned codecs: checkpoints by fingerprint ------------------------------------------------
def pin_checkpoints(params: dict) -> dict:
    """`params` with a `checkpoint_fingerprint` beside every `checkpoint` they name (at any depth)."""
    pinned = {}
    for key, value in params.items():
        pinned[key] = pin_checkpoints(value) if isinstance(value, dict) else value
    if pinned.get(CHECKPOINT) is not None and FINGERPRINT not in pinned:
        pinned[FINGERPRINT] = checkpoint_fingerprint(pinned[CHECKPOINT])
    return pinned


def resolve_checkpoints(params: dict) -> dict:
    """Inverse of `pin_checkpoints`: each fingerprint replaced by a local checkpoint that has it."""
    resolved = {}
    for key, value in params.items():
        resolved[key] = resolve_checkpoints(value) if isinstance(value, dict) else value
    if FINGERPRINT in resolved:
        resolved[CHECKPOINT] = find_checkpoint(resolved.pop(FINGERPRINT), resolved.get(CHECKPOINT))
    return resolved


def find_checkpoint(fingerprint: str, configured: str | None) -> str:
    """The configured checkpoint if it has `fingerprint`, else the shipped one that has it."""
    from satflow.data import AMSUA_CHECKPOINT

    tried = []
    for candidate in dict.fromkeys(str(c) for c in (configured, AMSUA_CHECKPOINT) if c):
        try:
            found = checkpoint_fingerprint(candidate)
        except (OSError, ValueError) as err:  # CheckpointError is a ValueError
            tried.append(f"{candidate}: {err}")
            continue
        if found == fingerprint:
            return candidate
        tried.append(f"{candidate} has fingerprint {found}")
    raise ValueError(
        f"no checkpoint with weights fingerprint {fingerprint}: "
        f"{'; '.join(tried)}. Put that checkpoint at {configured} (or set the configuration's "
        f"'{CHECKPOINT}' in zarr.json to where it is)"
    )


@functools.lru_cache(maxsize=16)
def checkpoint_fingerprint(path: str) -> str:
    """The weights fingerprint of a checkpoint directory (verified against its weights)."""
    from satflow.codecs.learned.checkpoint import load_checkpoint  # torch: learned codecs only

    return load_checkpoint(path).meta.fingerprint


for _name in BUILTIN_CODECS:  # in-process registration, for environments without the entry points
    register_zarr_codec(PREFIX + _name, SatflowZarrCodec)
