"""Bitwise real information content of float32 data (Klöwer et al. 2021, Nat. Comput. Sci. 1, 713).

For every bit position, the mutual information between that bit in a value and the same bit in its
neighbour measures how much of the bit is signal rather than noise. Information below the "free
entropy" a random bit pattern of the same length would show at a given confidence is set to 0;
`keepbits` is then the number of mantissa bits that holds the requested fraction (99%) of the
total information.

Hand-written in numpy on purpose: the reference implementation (BitInformation.jl, wrapped by
xbitinfo) needs a Julia runtime, which satflow's workers do not have.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

N_BITS = 32
N_SIGN_EXPONENT_BITS = 9  # float32: 1 sign + 8 exponent bits, then 23 mantissa bits
N_MANTISSA_BITS = 23


def _bits_msb_first(values: np.ndarray) -> np.ndarray:
    """(n,) float32 -> (n, 32) uint8 bits, sign bit first."""
    big_endian = np.ascontiguousarray(values, dtype=">f4").view(np.uint8).reshape(-1, 4)
    return np.unpackbits(big_endian, axis=1)


def mutual_information(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per bit position (sign first), the mutual information in bits between bits of a[i] and b[i]."""
    bits_a, bits_b = _bits_msb_first(a), _bits_msb_first(b)
    n = bits_a.shape[0]
    if n == 0:
        return np.zeros(N_BITS)
    ones_a = bits_a.sum(axis=0, dtype=np.int64)
    ones_b = bits_b.sum(axis=0, dtype=np.int64)
    both = (bits_a & bits_b).sum(axis=0, dtype=np.int64)
    # joint probabilities p[x, y] of (bit in a, bit in b) per position
    joint = np.stack(
        [
            np.stack([n - ones_a - ones_b + both, ones_b - both], axis=-1),
            np.stack([ones_a - both, both], axis=-1),
        ],
        axis=-2,
    ) / n  # (32, 2, 2)
    marginal_a = joint.sum(axis=2, keepdims=True)
    marginal_b = joint.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = joint * np.log2(joint / (marginal_a * marginal_b))
    return np.nansum(terms, axis=(1, 2))


def free_entropy(n: int, confidence: float = 0.99) -> float:
    """Information a random bit shows by chance in n pairs at `confidence` (BitInformation.jl's threshold)."""
    if n <= 0:
        return 1.0
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = min(1.0, 0.5 + z / (2 * np.sqrt(n)))
    entropy = 0.0 if p >= 1.0 else -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return 1.0 - entropy


def bit_information(field: np.ndarray, valid: np.ndarray | None = None, confidence: float = 0.99) -> np.ndarray:
    """Significant information per bit of a 2-D field, from neighbour pairs along both axes.

    Only pairs where both points are valid count. Returns 32 values, sign bit first, with
    insignificant values (below the free entropy) set to 0.
    """
    field = np.asarray(field, dtype=np.float32)
    valid = np.isfinite(field) if valid is None else (np.asarray(valid, bool) & np.isfinite(field))
    pairs_a, pairs_b = [], []
    for axis in range(field.ndim):
        lead = [slice(None)] * field.ndim
        trail = [slice(None)] * field.ndim
        lead[axis], trail[axis] = slice(None, -1), slice(1, None)
        both = valid[tuple(lead)] & valid[tuple(trail)]
        pairs_a.append(field[tuple(lead)][both])
        pairs_b.append(field[tuple(trail)][both])
    a, b = np.concatenate(pairs_a), np.concatenate(pairs_b)
    info = mutual_information(a, b)
    info[info <= free_entropy(a.size, confidence)] = 0.0
    return info


def keepbits_from_information(info: np.ndarray, information: float = 0.99) -> int:
    """Mantissa bits needed so that the kept bits hold `information` of the total (0..23)."""
    total = float(info.sum())
    if total <= 0:
        return 0
    cumulative = np.cumsum(info) / total
    last_bit = int(np.argmax(cumulative >= information - 1e-12))  # index of the last bit to keep
    return int(np.clip(last_bit + 1 - N_SIGN_EXPONENT_BITS, 0, N_MANTISSA_BITS))


def keepbits_for_field(field: np.ndarray, valid: np.ndarray, information: float = 0.99) -> int:
    """Keepbits of one 2-D field; a constant field keeps every bit (it has no information to
    measure, and a constant compresses to almost nothing anyway)."""
    values = field[valid & np.isfinite(field)]
    if values.size and values.min() == values.max():
        return N_MANTISSA_BITS
    return keepbits_from_information(bit_information(field, valid), information)


def keepbits_for_block(x: np.ndarray, mask: np.ndarray, information: float = 0.99) -> np.ndarray:
    """Keepbits per feature of a (feature, lat, lon) block (uint8 array)."""
    return np.array([keepbits_for_field(x[f], mask[f] != 0, information) for f in range(x.shape[0])], dtype=np.uint8)
