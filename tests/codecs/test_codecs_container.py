"""The container: layout, verification and the errors users see for bad bytes."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from satflow.codecs.container import (
    FORMAT_VERSION,
    MAGIC,
    ContainerError,
    bits_per_valid_value,
    bits_per_value,
    pack_container,
    pack_mask,
    split_containers,
    unpack_container,
    unpack_mask,
)
from satflow.codecs.registry import get_codec


def _example() -> bytes:
    mask = np.zeros((2, 3, 5), np.uint8)
    mask[0, 1, 2:] = 1
    return pack_container("lossless", {"level": 5}, mask, b"payload!", attrs={"time": "2020-01-01"})


def test_round_trip_of_every_field():
    container = unpack_container(_example())
    assert container.codec == "lossless"
    assert container.params == {"level": 5}
    assert container.shape == (2, 3, 5)
    assert container.payload == b"payload!"
    assert container.attrs == {"time": "2020-01-01"}
    assert container.version == FORMAT_VERSION
    assert container.n_valid == 3 and container.n_values == 30
    assert container.mask[0, 1].tolist() == [0, 0, 1, 1, 1]


def test_layout_starts_with_magic_and_ends_with_crc_of_the_rest():
    data = _example()
    assert data[:4] == MAGIC == b"SFLW"
    assert struct.unpack_from("<H", data, 4)[0] == 1
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])


@pytest.mark.parametrize(
    ("mask", "kind"),
    [(np.ones((1, 2, 2)), "all-valid"), (np.zeros((1, 2, 2)), "none-valid"), (np.eye(3)[None], "packbits-zstd")],
)
def test_mask_coding_is_lossless(mask, kind):
    coded_kind, data = pack_mask(mask)
    assert coded_kind == kind
    assert np.array_equal(unpack_mask(coded_kind, data, mask.shape), mask.astype(np.uint8))


def test_flipped_byte_is_reported_as_corruption():
    data = bytearray(_example())
    data[40] ^= 0x01
    with pytest.raises(ContainerError, match=r"corrupted container: CRC-32 is 0x[0-9a-f]{8}, stored 0x[0-9a-f]{8}"):
        unpack_container(bytes(data))


def test_flipped_payload_byte_never_decodes_to_numbers(block):
    data = bytearray(get_codec("sz3", tol=0.5).encode(block))
    data[len(data) // 2] ^= 0x10
    with pytest.raises(ContainerError, match="corrupted container"):
        get_codec("sz3", tol=0.5).decode(bytes(data))


def test_truncated_container_is_reported():
    data = _example()
    with pytest.raises(ContainerError, match=rf"truncated container: header announces {len(data)} bytes, got {len(data) - 3}"):
        unpack_container(data[:-3])
    with pytest.raises(ContainerError, match="truncated container: 10 bytes, fewer than the 30-byte minimum"):
        unpack_container(data[:10])
    # Killed mutant: a minimum of preamble - checksum (22 bytes) let 22-25 bytes reach the preamble parser.
    with pytest.raises(ContainerError, match="truncated container: 24 bytes, fewer than the 30-byte minimum"):
        unpack_container(data[:24])


def test_wrong_magic_is_reported():
    with pytest.raises(ContainerError, match=r"not a satflow container: magic b'PK\\x03\\x04' at byte 0, expected b'SFLW'"):
        unpack_container(b"PK\x03\x04" + _example()[4:])


def test_newer_format_version_asks_for_an_upgrade():
    data = bytearray(_example())
    struct.pack_into("<H", data, 4, FORMAT_VERSION + 1)
    with pytest.raises(ContainerError, match=f"format version {FORMAT_VERSION + 1} is newer than this satflow reads"):
        unpack_container(bytes(data))


def test_trailing_bytes_point_to_split_containers():
    with pytest.raises(ContainerError, match="2 trailing bytes .* use split_containers"):
        unpack_container(_example() + b"xx")


def test_split_containers_of_a_concatenation():
    one, two = _example(), pack_container("sz3", {"tol": 1.0}, np.ones((1, 1, 1), np.uint8), b"")
    assert split_containers(one + two + one) == [one, two, one]
    with pytest.raises(ContainerError, match="truncated container at byte"):
        split_containers(one + two[:-1])


def test_bits_per_value_counts_every_byte():
    data = _example()
    assert bits_per_value(data) == pytest.approx(8 * len(data) / 30)
    assert bits_per_value(data, (10, 10)) == pytest.approx(8 * len(data) / 100)
    assert bits_per_value(data, (1,)) == pytest.approx(8 * len(data))
    assert bits_per_valid_value(data) == pytest.approx(8 * len(data) / 3)


def test_format_version_zero_is_invalid():
    # Killed mutant (benchmarks/mutation): `version < 1` loosened to `version < 0` accepted version 0.
    data = bytearray(_example())
    struct.pack_into("<H", data, 4, 0)
    with pytest.raises(ContainerError, match="invalid container format version 0"):
        unpack_container(bytes(data))


def test_mask_section_that_does_not_decompress_is_a_container_error():
    """A writer bug (valid checksum around a broken mask section) must not surface as a bare NameError."""
    data = bytearray(_example())
    n_header, n_mask = struct.unpack_from("<IQ", data, 6)   # layout in satflow/codecs/container.py
    assert n_mask > 0                                        # _example's mask is packbits-zstd coded
    start = 26 + n_header
    data[start:start + n_mask] = b"\xff" * n_mask
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
    with pytest.raises(ContainerError, match="mask section does not decompress"):
        unpack_container(bytes(data))
