"""The compress task: one region (a time chunk) from the input store through the codec into the compressed
store, measured against the original values it holds; and the partial sums it returns.

A task reads the region's original values once, writes X (zarr encodes every chunk through the satflow
serializer) and M, reads X back from the chunk files (the decode a reader will get) and returns the errors
and the chunk bytes on disk; only then does it flag the region's steps done (`ingested`), so a task killed
midway leaves them pending. A region done by an earlier run is only read back and measured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np
import zarr

from satflow.compress.plan import Region
from satflow.metrics import ErrorSums, merge_all


@dataclass(frozen=True)
class RegionTask:
    region: Region
    code: bool  # False: coded by an earlier run, measure it only


@dataclass(frozen=True)
class CompressPartial:
    """Mergeable: per-feature errors of the reconstruction and the chunk bytes on disk behind them."""

    errors: ErrorSums  # n_bytes = X's chunk bytes, n_cells = the store's cells (no chunk padding)
    feature_bytes: np.ndarray  # (feature,) X chunk bytes, a chunk's shared equally by the features it holds
    mask_bytes: int  # M's chunk bytes
    coded: int  # regions coded (not only measured) by this run

    def merge(self, other: CompressPartial) -> CompressPartial:
        return CompressPartial(self.errors.merge(other.errors), self.feature_bytes + other.feature_bytes,
                               self.mask_bytes + other.mask_bytes, self.coded + other.coded)


def combine_partials(parts: list[CompressPartial]) -> CompressPartial:
    return merge_all(parts)


def compress_region(task: RegionTask, store: str, out: str) -> CompressPartial:
    """One task: see the module docstring."""
    t0, t1 = task.region.t0, task.region.t1
    original = np.asarray(zarr.open_array(f"{store}/X", mode="r")[t0:t1], dtype=np.float32)
    group = zarr.open_group(out, mode="r+", zarr_format=3, use_consolidated=True)
    if task.code:
        group["X"][t0:t1] = original
        group["M"][t0:t1] = np.isfinite(original).view(np.uint8)  # bool is one byte of 0/1
    decoded = group["X"][t0:t1]  # from the chunk files, as any reader decodes them
    x_bytes, feature_bytes = chunk_bytes(group["X"], out, t0)
    errors = ErrorSums.from_block(original, decoded, feature_axis=1, n_bytes=x_bytes)
    partial = CompressPartial(errors, feature_bytes, chunk_bytes(group["M"], out, t0)[0], int(task.code))
    if task.code:
        group["ingested"][t0:t1] = 1  # last: a killed task leaves its steps pending
    return partial


def chunk_bytes(array: zarr.Array, out: str, t0: int) -> tuple[int, np.ndarray]:
    """Bytes on disk of the array's chunks in the time chunk holding step t0: in all, and shared out per feature.

    A chunk absent on disk (all fill: zarr writes no empty chunk) costs 0 bytes.
    """
    n_features = array.shape[1]
    chunks = array.chunks
    grid = [range(-(-n // c)) for n, c in zip(array.shape[1:], chunks[1:])]
    total, shares = 0, np.zeros(n_features)
    folder = Path(out) / array.basename
    for f, y, x in product(*grid):
        path = folder / array.metadata.encode_chunk_key((t0 // chunks[0], f, y, x))
        size = os.path.getsize(path) if path.exists() else 0
        total += size
        features = slice(f * chunks[1], min((f + 1) * chunks[1], n_features))
        shares[features] += size / (features.stop - features.start)
    return total, shares
