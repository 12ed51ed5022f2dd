"""Bitstreams are reproducible: pinned checksums and bit-identical decoding in a fresh process.

The pins hold for the library versions this project was built with (numcodecs 0.16 zstd, pysz 1.1,
hdf5plugin 7.1 ZFP, constriction 0.5); a library upgrade that changes a stream fails here on purpose,
because stored archives must keep decoding to the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from importlib.metadata import version

from pathlib import Path

import numpy as np
import pytest

from satflow.codecs.container import split_containers
from satflow.codecs.registry import decode_any, get_codec

# The coding libraries the pins were recorded with; with other versions the pins are not checked
# (the fresh-process test below still is), and the skip message says what to re-check.
PINNED_VERSIONS = {"numcodecs": "0.16.6", "pysz": "1.1.0", "hdf5plugin": "7.1.0", "constriction": "0.5.0"}

GOLDEN = {
    "lossless": ({}, 1411, "e9f3c9bd5bc35853f4a0ad0706a6e0b8700d94e3b038590fe65efc76b7d318a1"),
    "bitround-7": ({"keepbits": 7}, 580, "39478cf010dfc1a824005fe9d719ff37574cad332dad2fa8b1efa32879c5a105"),
    "bitround-auto": ({}, 461, "2455fbbbab7217ff8a8f7ee3a93309ad4d8d4d37ec5cd8ab6b19eee33eeee87f"),
    "sz3": ({"tol": 0.25}, 629, "fc56e24e4ce77008e53f2614468e062129b0343677305f1317f7f2812862bc5a"),
    "zfp": ({"tol": 0.25}, 1470, "25b570e285b4685ac5896cfeb9f82945bee50f7b9653b127100a4ed56ce57caf"),
    "errorbound": (
        {"inner": "sz3", "inner_params": {"tol": 2.0}, "eps": 0.1},
        # context="causal" since satflow 0.2, stream version 5 (SZ3 per feature is shorter than the
        # predictive stream on this 2-feature block, and the header is compact: version 4's bytes but
        # the header's `stream`; version 4 wrote 848 bytes, f65935d2..., version 3 871, af404f76...,
        # version 2 870, 8aa23875..., version 1 924, 1cde2585...); golden.sfc keeps the 0.1 stream
        # (context="none", version 1)
        848,
        "4d2a822f6c29b73a5a9bc591c15037e4d21349838e01a3b9fcdf5a3b7dc62b1a",
    ),
}


def _codec(key: str):
    params, _, _ = GOLDEN[key]
    return get_codec(key.split("-")[0], **params)


def _round_mantissa(values: np.ndarray, keepbits: int) -> np.ndarray:
    """float32 rounded to `keepbits` mantissa bits, to nearest with ties to even, in integer arithmetic."""
    bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
    drop = 23 - keepbits
    half = (1 << (drop - 1)) - 1
    bits = (bits + half + ((bits >> drop) & 1)) >> drop << drop
    return bits.astype(np.uint32).view(np.float32)


# What each golden stream must decode to, from the block and the codec's promise, not from satflow's
# output: lossless is exact; bitround-7 is the block rounded to 7 mantissa bits; bitround-auto is the
# block rounded to the 5 bits that the 99% bit-information rule keeps for this block (read from the
# decoded stream once, and confirmed by this rounding matching at every valid point); the error-bounded
# codecs stay within their tolerance (sz3, zfp 0.25; errorbound 0.1).
ERROR_BOUND = {"sz3": 0.25, "zfp": 0.25, "errorbound": 0.1}
KEEPBITS = {"bitround-7": 7, "bitround-auto": 5}


def assert_decodes_within_promise(key: str, x: np.ndarray, mask: np.ndarray, block: np.ndarray) -> None:
    valid = np.isfinite(block)
    np.testing.assert_array_equal(mask, valid.astype(np.uint8))
    np.testing.assert_array_equal(np.isnan(x), ~valid)
    if key == "lossless":
        np.testing.assert_array_equal(x, block)
    elif key in KEEPBITS:
        np.testing.assert_array_equal(x[valid], _round_mantissa(block[valid], KEEPBITS[key]))
    else:
        assert np.abs(x[valid].astype(np.float64) - block[valid]).max() <= ERROR_BOUND[key]


def _stored_streams() -> dict[str, bytes]:
    streams = split_containers((Path(__file__).parent / "data" / "golden.sfc").read_bytes())
    return dict(zip(sorted(GOLDEN), streams))


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_golden_bitstream(block, key):
    # Whatever the library versions: the stored stream decodes, and a fresh one keeps the codec's promise.
    assert_decodes_within_promise(key, *decode_any(_stored_streams()[key]), block)
    data = _codec(key).encode(block)
    assert_decodes_within_promise(key, *decode_any(data), block)
    installed = {name: version(name) for name in PINNED_VERSIONS}
    if installed != PINNED_VERSIONS:
        pytest.skip(f"golden streams were pinned with {PINNED_VERSIONS}, installed {installed}: the stored "
                    "streams still decode (checked above); re-pin the sizes and digests")
    # Sizes and digests were recorded from satflow's own output with PINNED_VERSIONS; what they pin was
    # checked by the decoding above. They catch any change of the bytes, which must be deliberate.
    _, size, digest = GOLDEN[key]
    assert len(data) == size
    assert hashlib.sha256(data).hexdigest() == digest


def _decoded_digest(x: np.ndarray, mask: np.ndarray) -> str:
    return hashlib.sha256(x.tobytes() + mask.tobytes()).hexdigest()


# data/golden.sfc holds the GOLDEN streams (sorted by key) as written by satflow 0.1.0 from the `block`
# fixture; whatever the library versions, they must keep decoding to exactly these values. The digests
# were recorded from satflow's decoder; assert_decodes_within_promise checks independently what they pin.
GOLDEN_DECODED = {
    "bitround-7": "7f8d33588509cad0cd14c49caa98697372dcb606068e1a8addc939c522f74ba3",
    "bitround-auto": "11719d57e15dec30dffb14367d2d8da768d0b4fd17d934a720dd6ba0e0041c70",
    "errorbound": "2cb74806b7444200705756a2f30a5f10b8e77307b91cb6fbe6b398f8f11ce634",
    "lossless": "9c802659b618524b75ed2ba0dfa990df39abf89492063f82c7e0dcb4944f9ced",
    "sz3": "cb91d432c40753a3491c87feac04369b52f50d28afe03e37244d3548dc41158b",
    "zfp": "d3ac60af6c0cabed570862c4fe63680cb3f98aa4fb12f6d08400aef27ca9498e",
}


def test_stored_streams_still_decode_to_the_same_values(block):
    decoded = {key: decode_any(data) for key, data in _stored_streams().items()}
    for key, (x, mask) in decoded.items():
        assert_decodes_within_promise(key, x, mask, block)
    assert {key: _decoded_digest(*pair) for key, pair in decoded.items()} == GOLDEN_DECODED


def test_fresh_process_decodes_bit_identically(block, tmp_path):
    expected = {}
    for key in GOLDEN:
        data = _codec(key).encode(block)
        (tmp_path / f"{key}.sfc").write_bytes(data)
        expected[key] = _decoded_digest(*_codec(key).decode(data))
    script = textwrap.dedent(
        """
        import hashlib, json, pathlib, sys
        from satflow.codecs.registry import decode_any
        out = {}
        for path in sorted(pathlib.Path(sys.argv[1]).glob("*.sfc")):
            x, mask = decode_any(path.read_bytes())
            out[path.stem] = hashlib.sha256(x.tobytes() + mask.tobytes()).hexdigest()
        print(json.dumps(out))
        """
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == expected


def test_small_masks_keep_their_bytes_and_large_ones_round_trip_cheaply():
    """Masks up to 32 KiB packed are coded at zstd level 19 as always (the pins above hold); larger
    ones at level 12 (20x faster on a full 15 x 360 x 720 mask); both decode, whatever the level."""
    from numcodecs import Zstd

    from satflow.codecs.container import pack_mask, unpack_mask

    rng = np.random.default_rng(0)
    for shape, level in (((2, 13, 17), 19), ((15, 180, 96), 19), ((15, 360, 720), 12)):
        mask = np.ones(shape, np.uint8)
        mask[:, :, shape[2] // 3 : shape[2] // 2] = 0  # a swath gap
        mask[rng.random(shape) < 0.01] = 0
        kind, data = pack_mask(mask)
        assert kind == "packbits-zstd"
        assert data == bytes(Zstd(level=level).encode(np.packbits(mask.ravel())))
        np.testing.assert_array_equal(unpack_mask(kind, data, shape), mask)
