"""The residual stream of errorbound versions 2 to 5: the quantised residuals q, rANS-coded.

One static model per (feature, column parity, context), fitted to the block's histograms; in version
3 a point's context is how large the q already decoded around it are (its left neighbour of the same
parity, the one above, the same point of the previous feature; edges `CONTEXT_SCHEMES`), version 2
is version 3 with a single context. The coder is compiled (`satflow.codecs.kernels`: integer
frequencies of 14 bits, one 32-bit state, 16-bit words); version 5 is version
3 with up to `LANES` interleaved states, one per band of rows, and no row above a band's first row in the
contexts (`kernels.rans_encode_lanes`), so that the decoder runs `LANES` dependency chains side by
side instead of one. The counts themselves travel in the
stream, so the decoder needs no floating point to rebuild the model. Symbols outside a +-`WINDOW`
window go through an escape symbol and a side stream.

Its own module because both `errorbound` (which writes the stream) and `prediction`'s one-pass
decoder (which reads it fused with the closed loop) need it: they depend on it, not on each other.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numcodecs import Zstd

from satflow.codecs import kernels
from satflow.codecs.container import ContainerError

WINDOW = 127  # symbols -WINDOW..WINDOW are modelled directly; the rest are escaped
STREAM_VERSION = 3  # the default here (errorbound passes its own: versions 3 and 4 code version 3, version 5 its own)
# Version 5: up to LANES interleaved rANS states, one per band of rows, one band per LANE_POINTS valid
# points and per LANE_ROWS rows of the block. A band costs 4 bytes (its state) and its first row's up
# context: 0.02-0.1% of the stream on 15 x 360 x 720 and 15 x 180 x 360 fields, 0.3% on a 4 x 130 x
# 200 block; with one band per 8 k points and no row limit, 0.3-0.5% on blocks of 36-51 k points and
# 40-96 rows, hence the limits. `kernels.linear_decode`'s fast path takes at most 4 bands.
LANES = 4
LANE_POINTS = 16384
LANE_ROWS = 32
# Version 3's context schemes, by the number its tables start with: a point's context is how many
# of the edges its activity (the summed magnitudes of the q decoded next to it, `kernels.point_contexts`)
# reaches. Edges chosen on AMSU-like data at 0.5 and 1 K: 8 or 16 classes pooled over features
# saved half as much; more classes per feature cost their tables what they save.
CONTEXT_SCHEMES = {0: (), 1: (1, 3, 6, 12)}
# On small blocks five times the tables cost more than the contexts save. Measured on AMSU-like
# crops at 0.1-1 K: with under 64 valid points per model of scheme 1 it always lost (up to 17%), with
# over 1024 it always won (2-11%); between, the encoder codes both and keeps the shorter.
CONTEXTS_PAY = (64, 1024)
_TABLES = Zstd(level=19)  # version 2 and 3 symbol tables: zigzag varints, then zstd (a few kB at most)


def zstd_int64(values: np.ndarray) -> bytes:
    return bytes(Zstd(level=9).encode(np.ascontiguousarray(values, dtype="<i8"))) if values.size else b""


def unzstd_int64(data: bytes, what: str = "values") -> np.ndarray:
    """Inverse of `zstd_int64`; ContainerError naming `what` when the bytes are not such a section."""
    if not data:
        return np.zeros(0, "<i8")
    try:
        raw = Zstd().decode(data)
    except (RuntimeError, ValueError) as err:  # what numcodecs' Zstd raises on a corrupt frame
        raise ContainerError(f"errorbound {what} are corrupt: {err}") from err
    if len(raw) % 8:
        raise ContainerError(f"errorbound {what} hold {len(raw)} bytes, not whole 64-bit integers")
    return np.frombuffer(raw, "<i8")


def context_classes(edges: tuple[int, ...]) -> np.ndarray:
    """The activity -> context map of a context scheme (`kernels.point_contexts`); () gives one context."""
    return np.searchsorted(edges, np.arange((edges or (0,))[-1] + 1), side="right").astype(np.int64)


def lanes_of(valid: np.ndarray, version: int) -> int:
    """How many interleaved rANS states a block's residuals use: 1 before version 5, then one per
    LANE_POINTS valid points and LANE_ROWS rows, 1 to LANES, at most one per row (the decoder
    derives it from the mask)."""
    if version < 5:
        return 1
    bands = min(LANES, valid.shape[1] // LANE_ROWS, int(np.count_nonzero(valid)) // LANE_POINTS)
    return int(max(1, min(bands, valid.shape[1])))


def encode_residuals(q_block: np.ndarray, mask: np.ndarray, version: int = STREAM_VERSION,
                     scheme: int | None = None, *, zero_where_invalid: bool = False) -> tuple[bytes, bytes, bytes]:
    """Stream version 2, 3 or 5: rANS-code the valid q of a (feature, lat, lon) block, one static model
    per (feature, column parity, context). Returns (tables, words, escaped values); in versions 3
    and 5 with the context `scheme` given, or else the one `CONTEXTS_PAY` picks (the shorter stream, the
    first of equals, when both are tried), its number first in the tables. `zero_where_invalid`: the
    caller's q is already 0 at invalid points (the closed loop's is), which saves a block-sized copy."""
    valid = np.ascontiguousarray(mask != 0)
    if not zero_where_invalid:
        q_block = np.where(valid, q_block, 0)  # the decoder's contexts read 0 there
    q_block = q_block if q_block.dtype == np.int64 else q_block.astype(np.int64)
    if version == 2:
        return _encode_with(q_block, valid, ())
    lanes = lanes_of(valid, version) if version >= 5 else 0  # versions 3 and 4: version 3's own kernels
    if scheme is None:
        n_valid, n_models = int(np.count_nonzero(valid)), 2 * mask.shape[0] * (len(CONTEXT_SCHEMES[1]) + 1)
        if CONTEXTS_PAY[0] * n_models <= n_valid < CONTEXTS_PAY[1] * n_models:
            coded = [_encode_with(q_block, valid, edges, number, lanes) for number, edges in CONTEXT_SCHEMES.items()]
            return min(coded, key=lambda sections: sum(map(len, sections)))
        scheme = 0 if n_valid < CONTEXTS_PAY[0] * n_models else 1
    return _encode_with(q_block, valid, CONTEXT_SCHEMES[scheme], scheme, lanes)


def _encode_with(q_block: np.ndarray, valid: np.ndarray, edges: tuple[int, ...],
                 scheme: int | None = None, lanes: int = 0) -> tuple[bytes, bytes, bytes]:
    """lanes 0: versions 2 and 3's coder; else version 5's with that many bands (1 gives version 3's bytes)."""
    class_map = context_classes(edges)
    n_contexts, n_valid = int(class_map[-1]) + 1, int(np.count_nonzero(valid))
    if lanes:
        contexts = kernels.band_contexts(q_block, valid, class_map, lanes)
    else:
        contexts = kernels.point_contexts(q_block, valid, class_map)
    lo, hi, counts = kernels.group_symbols(q_block, valid, WINDOW, contexts, n_contexts)
    freqs = kernels.all_frequencies(counts, lo, hi)
    if lanes:
        words, escaped = kernels.rans_encode_lanes(q_block, valid, lo, hi, freqs, n_valid, contexts, n_contexts, lanes)
    else:
        words, escaped = kernels.rans_encode(q_block, valid, lo, hi, freqs, n_valid, contexts, n_contexts)
    # the counts, not the frequencies, travel: smaller numbers, and the decoder derives the same
    # frequencies from them with integer arithmetic
    tables = [np.array([] if scheme is None else [scheme], np.int64)]
    tables += [np.concatenate([[lo[m], hi[m]], counts[m, : hi[m] - lo[m] + 2]]) for m in range(lo.size)]
    tables = np.concatenate(tables).astype(np.int64)
    return bytes(_TABLES.encode(kernels.varints(tables))), words.astype("<u2").tobytes(), zstd_int64(escaped)


def decode_residuals(mask: np.ndarray, tables: bytes, words: bytes, escaped: bytes,
                     version: int = STREAM_VERSION) -> np.ndarray:
    """Inverse of `encode_residuals`: q as (feature, lat, lon) int64, 0 at invalid points. Tables
    that do not describe a valid model of the mask's groups raise ContainerError before decoding."""
    model = residual_model(mask, tables, words, escaped, version)
    q_block = np.zeros(mask.shape, np.int64)
    if model.lanes == 1:
        status = kernels.rans_decode(model.words, model.valid, model.lo, model.hi, model.freqs, model.escapes,
                                     q_block, model.class_map)
    else:
        status = kernels.rans_decode_lanes(model.words, model.valid, model.lo, model.hi, model.freqs, model.escapes,
                                           q_block, model.class_map, model.lanes)
    check_residual_status(status)
    return q_block


class ResidualModel(NamedTuple):
    """What a version-2, -3 or -5 decoder needs, checked against the mask (`residual_model`); lanes:
    the interleaved rANS states (1 before version 5)."""

    valid: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    freqs: np.ndarray
    words: np.ndarray
    escapes: np.ndarray
    class_map: np.ndarray
    lanes: int = 1


def check_residual_status(status: int) -> None:
    """ContainerError for a non-zero status of `kernels.rans_decode` / `linear_decode`."""
    if status:
        reason = {1: "the coded words end before the last valid point", 2: "fewer escaped values than escapes",
                  3: "coded words, state or escaped values are left over",
                  4: "a point's context has a symbol table with no symbols"}[status]
        raise ContainerError(f"errorbound residual stream does not decode for this mask: {reason}")


def residual_model(mask: np.ndarray, tables: bytes, words: bytes, escaped: bytes,
                   version: int = STREAM_VERSION) -> ResidualModel:
    """Parse and check the residual sections of a version-2, -3 or -5 stream against the block's mask."""
    valid = np.ascontiguousarray(mask != 0)
    sizes = kernels.group_sizes(valid)
    try:
        ok, table = kernels.from_varints(np.frombuffer(Zstd().decode(tables), np.uint8) if tables else np.zeros(0, np.uint8))
    except (RuntimeError, ValueError) as err:  # what numcodecs' Zstd raises on a corrupt frame
        raise ContainerError(f"errorbound symbol tables are corrupt: {err}") from err
    if not ok:
        raise ContainerError("errorbound symbol tables end inside a number")
    at = 0
    edges: tuple[int, ...] = ()
    if version >= 3:
        if table.size == 0 or int(table[0]) not in CONTEXT_SCHEMES:
            raise ContainerError(f"errorbound symbol tables name context scheme {table[:1].tolist()}, not one of "
                                 f"{sorted(CONTEXT_SCHEMES)}")
        edges, at = CONTEXT_SCHEMES[int(table[0])], 1
    class_map = context_classes(edges)
    n_contexts = int(class_map[-1]) + 1
    n_models = 2 * mask.shape[0] * n_contexts
    lo, hi = np.zeros(n_models, np.int64), np.zeros(n_models, np.int64)
    counts = np.zeros((n_models, 2 * WINDOW + 2), np.int64)
    for m in range(n_models):
        if at + 2 > table.size:
            raise ContainerError("errorbound symbol tables are shorter than the block's features")
        lo[m], hi[m] = table[at], table[at + 1]
        if not -WINDOW <= lo[m] <= 0 <= hi[m] <= WINDOW:
            raise ContainerError(f"errorbound symbol table {m} has range {lo[m]}..{hi[m]}, outside +-{WINDOW}")
        n_symbols = int(hi[m] - lo[m] + 2)
        row = table[at + 2 : at + 2 + n_symbols]
        at += 2 + n_symbols
        if row.size != n_symbols or np.any(row < 0):
            raise ContainerError(f"errorbound symbol table {m} ends early or holds a negative count")
        counts[m, :n_symbols] = row
    if at != table.size:
        raise ContainerError(f"errorbound symbol tables hold {table.size - at} values more than the block's features use")
    per_group = counts.sum(axis=1).reshape(-1, n_contexts).sum(axis=1)
    mismatched = np.flatnonzero(per_group != sizes)
    if mismatched.size:
        g = mismatched[0]
        raise ContainerError(f"errorbound symbol tables count {int(per_group[g])} symbols in group {g}, the mask "
                             f"has {sizes[g]} valid points there")
    if len(words) % 2:
        raise ContainerError(f"errorbound coded words are {len(words)} bytes, not a whole number of 16-bit words")
    return ResidualModel(valid, lo, hi, kernels.all_frequencies(counts, lo, hi),
                         np.frombuffer(words, "<u2").astype(np.uint16), np.ascontiguousarray(unzstd_int64(escaped, "escaped values")),
                         class_map, lanes_of(valid, version))
