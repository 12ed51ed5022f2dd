"""The satflow container: self-describing bytes around one coded (feature, lat, lon) block.

Layout (little endian; every byte counts in the reported bits):

    offset  size  field
    0       4     magic b"SFLW"
    4       2     format version (uint16)
    6       4     header length H (uint32)
    10      8     mask length K (uint64)
    18      8     payload length P (uint64)
    26      H     header: compact, key-sorted UTF-8 JSON
                  {"attrs", "codec", "dtype", "mask", "params", "shape"}
    26+H    K     the validity mask, lossless (see `pack_mask`)
    26+H+K  P     the codec's payload
    end-4   4     CRC-32 of every byte before it

All lengths sit in the fixed preamble, so truncation is detected before anything is parsed, and
the checksum is verified before the header or payload is trusted. Containers are self-delimiting:
a file may hold several back to back (see `split_containers`).
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
from numcodecs import Zstd

MAGIC = b"SFLW"
FORMAT_VERSION = 1
_PREAMBLE = struct.Struct("<4sHIQQ")
_CHECKSUM = struct.Struct("<I")
# zstd levels of the packed mask. Level 19 saves 5-10% of a small mask's bytes (OSTIA 18 x 432: 247 B
# against 271 at level 9, 2.5% of the whole container) but costs 20 ms on a full 15 x 360 x 720
# AMSU-like mask (1469 B; level 12: 1530 B in 0.9 ms), more than any other step but the coder's own.
# Up to _MASK_SMALL packed bytes (about 1 ms at level 19) masks keep level 19, so every small
# block's bytes are as before; larger ones use level 12. Decoding does not depend on the level.
_MASK_LEVEL, _MASK_LEVEL_LARGE, _MASK_SMALL = 19, 12, 32768


class ContainerError(ValueError):
    """Bytes that are not a valid satflow container, or not one this codec can decode."""


@dataclass(frozen=True)
class Container:
    """A parsed container: everything except the codec's interpretation of the payload."""

    codec: str
    params: dict
    shape: tuple[int, ...]
    mask: np.ndarray  # uint8, `shape`, 1 = valid
    payload: bytes
    dtype: str = "float32"
    attrs: dict = field(default_factory=dict)
    version: int = FORMAT_VERSION
    nbytes: int = 0  # size of the whole container

    @property
    def n_values(self) -> int:
        return int(np.prod(self.shape))

    @property
    def n_valid(self) -> int:
        return int(self.mask.sum(dtype=np.int64))


def _canonical_json(value: dict) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def pack_mask(mask: np.ndarray) -> tuple[str, bytes]:
    """Lossless mask coding: ('all-valid'|'none-valid', b'') or ('packbits-zstd', bytes)."""
    flat = np.ascontiguousarray(mask, dtype=np.uint8).ravel()
    if flat.size == 0 or flat.all():
        return "all-valid", b""
    if not flat.any():
        return "none-valid", b""
    packed = np.packbits(flat)
    level = _MASK_LEVEL if packed.size <= _MASK_SMALL else _MASK_LEVEL_LARGE
    return "packbits-zstd", bytes(Zstd(level=level).encode(packed))


def unpack_mask(kind: str, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of `pack_mask`."""
    size = int(np.prod(shape))
    if kind == "all-valid":
        return np.ones(shape, np.uint8)
    if kind == "none-valid":
        return np.zeros(shape, np.uint8)
    if kind != "packbits-zstd":
        raise ContainerError(f"unknown mask coding {kind!r} in container header")
    try:
        bits = np.frombuffer(Zstd().decode(data), np.uint8)
    except Exception as err:  # the checksum passed, so this is a writer bug, not corruption
        raise ContainerError(f"mask section does not decompress ({err})") from err
    if bits.size != (size + 7) // 8:
        raise ContainerError(f"mask section holds {bits.size * 8} bits, shape {shape} needs {size}")
    return np.unpackbits(bits, count=size).reshape(shape)


def section_sizes(data: bytes) -> dict[str, int]:
    """Bytes of a container by section: `header` (preamble, JSON header, checksum), `mask`, `payload`."""
    if len(data) < _PREAMBLE.size + _CHECKSUM.size:
        raise ContainerError(f"{len(data)} bytes are too few for a satflow container")
    magic, _, _, mask_length, payload_length = _PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        raise ContainerError(f"not a satflow container (magic {magic!r}, expected {MAGIC!r})")
    return {"header": len(data) - mask_length - payload_length, "mask": mask_length, "payload": payload_length}


def pack_container(
    codec: str,
    params: dict,
    mask: np.ndarray,
    payload: bytes,
    *,
    attrs: dict | None = None,
    dtype: str = "float32",
) -> bytes:
    """Assemble a container; `mask` (uint8, the block's shape) also fixes the shape."""
    mask_kind, mask_bytes = pack_mask(mask)
    header = _canonical_json(
        {
            "attrs": attrs or {},
            "codec": codec,
            "dtype": dtype,
            "mask": mask_kind,
            "params": params,
            "shape": [int(n) for n in mask.shape],
        }
    )
    body = b"".join(
        (
            _PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(header), len(mask_bytes), len(payload)),
            header,
            mask_bytes,
            bytes(payload),
        )
    )
    return body + _CHECKSUM.pack(zlib.crc32(body))


def _container_length(data: bytes | memoryview, offset: int = 0) -> int:
    """Check magic and version at `offset` and return the total length the preamble announces."""
    available = len(data) - offset
    if available < _PREAMBLE.size + _CHECKSUM.size:
        raise ContainerError(
            f"truncated container: {available} bytes, fewer than the {_PREAMBLE.size + _CHECKSUM.size}-byte minimum"
        )
    magic, version, n_header, n_mask, n_payload = _PREAMBLE.unpack_from(data, offset)
    if magic != MAGIC:
        raise ContainerError(
            f"not a satflow container: magic {bytes(magic)!r} at byte {offset}, expected {MAGIC!r}"
        )
    if version > FORMAT_VERSION:
        raise ContainerError(
            f"container format version {version} is newer than this satflow reads ({FORMAT_VERSION}); upgrade satflow"
        )
    if version < 1:
        raise ContainerError(f"invalid container format version {version}")
    return _PREAMBLE.size + n_header + n_mask + n_payload + _CHECKSUM.size


def unpack_container(data: bytes | bytearray | memoryview) -> Container:
    """Parse and verify one container (magic, version, length, checksum, header)."""
    data = bytes(data)
    expected = _container_length(data)
    if len(data) < expected:
        raise ContainerError(
            f"truncated container: header announces {expected} bytes, got {len(data)} "
            "(or its length fields are corrupted)"
        )
    if len(data) > expected:
        raise ContainerError(
            f"container has {len(data) - expected} trailing bytes after the announced {expected}; "
            "use split_containers() for a file holding several"
        )
    body, (stored,) = data[:-_CHECKSUM.size], _CHECKSUM.unpack_from(data, len(data) - _CHECKSUM.size)
    actual = zlib.crc32(body)
    if actual != stored:
        raise ContainerError(f"corrupted container: CRC-32 is {actual:#010x}, stored {stored:#010x}")
    _, version, n_header, n_mask, _ = _PREAMBLE.unpack_from(data)
    start = _PREAMBLE.size
    try:
        header = json.loads(data[start : start + n_header])
        shape = tuple(int(n) for n in header["shape"])
        codec, params, dtype, mask_kind = header["codec"], header["params"], header["dtype"], header["mask"]
    except (ValueError, KeyError, TypeError) as err:
        raise ContainerError(f"container header is not valid ({err.__class__.__name__}: {err})") from err
    mask_start = start + n_header
    mask = unpack_mask(mask_kind, data[mask_start : mask_start + n_mask], shape)
    return Container(
        codec=codec,
        params=params,
        shape=shape,
        mask=mask,
        payload=data[mask_start + n_mask : -_CHECKSUM.size],
        dtype=dtype,
        attrs=header.get("attrs", {}),
        version=version,
        nbytes=len(data),
    )


def read_header(data: bytes) -> dict:
    """The verified JSON header of a container (codec, params, shape, ...), without unpacking the mask."""
    container = unpack_container(data)
    return {"codec": container.codec, "params": container.params, "shape": list(container.shape),
            "dtype": container.dtype, "attrs": container.attrs, "version": container.version}


def split_containers(data: bytes | memoryview) -> list[bytes]:
    """Split bytes holding several back-to-back containers (an `.sfc` file) into one bytes each."""
    view = memoryview(bytes(data))
    parts, offset = [], 0
    while offset < len(view):
        length = _container_length(view, offset)
        if offset + length > len(view):
            raise ContainerError(
                f"truncated container at byte {offset}: announces {length} bytes, {len(view) - offset} remain"
            )
        parts.append(bytes(view[offset : offset + length]))
        offset += length
    return parts


def bits_per_value(data: bytes, shape: tuple[int, ...] | None = None) -> float:
    """Bits of the whole container per array cell (valid or not); shape defaults to the header's."""
    n_values = int(np.prod(shape)) if shape is not None else unpack_container(data).n_values
    return 8.0 * len(data) / max(n_values, 1)


def bits_per_valid_value(data: bytes) -> float:
    """Bits of the whole container per valid cell (inf when no cell is valid)."""
    n_valid = unpack_container(data).n_valid
    return 8.0 * len(data) / n_valid if n_valid else float("inf")
