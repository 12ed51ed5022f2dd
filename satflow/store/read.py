"""Reading a store: the zarr group, the xarray dataset, per-step partials and the fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np
import zarr

from satflow.stats import Moments
from satflow.store.layout import STEP_NAMES, StoreError

if TYPE_CHECKING:
    import xarray as xr


def open_group(path: str | Path, mode: str = "r", *, consolidated: bool = False) -> zarr.Group:
    """The store's Zarr group. `consolidated=True` reads all metadata in one request: only for
    region tasks, which run after `_prepare_store` consolidated the final layout (saves a
    metadata read per array per task)."""
    try:
        # By default never trust consolidated metadata: writers resize arrays (append) before re-consolidating.
        group = zarr.open_group(str(path), mode=mode, zarr_format=3, use_consolidated=consolidated)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:  # type: ignore[attr-defined]
        raise StoreError(f"{path}: no satflow store here (no Zarr v3 group); run `satflow ingest` first") from err
    if "X" not in group or "M" not in group:
        raise StoreError(f"{path}: a Zarr group, but not a satflow store (arrays X and M are missing)")
    return group


def open_store(path: str | Path, *, consolidated: bool | None = None) -> xr.Dataset:
    """Open a store lazily with xarray (dask arrays aligned with the Zarr chunks).

    `consolidated=False` reads the arrays' own metadata (writers resize before re-consolidating).
    """
    import warnings

    import xarray as xr  # here: region tasks read and write with zarr alone

    open_group(path)  # clear error first
    with warnings.catch_warnings():  # cftime times (climatologies, model calendars) are expected, not news
        warnings.filterwarnings("ignore", message="Unable to decode time axis into full numpy.datetime64")
        return xr.open_zarr(str(path), zarr_format=3, consolidated=consolidated)


def step_moments(group: zarr.Group, steps: np.ndarray | None = None) -> list[Moments]:
    """The stored per-time-step partials (optionally only for the given step indices)."""
    arrays = [np.asarray(group[name][:]) for name in STEP_NAMES]
    index = np.arange(arrays[0].shape[0]) if steps is None else np.asarray(steps)
    return [Moments(*(a[i] for a in arrays)) for i in index]


def compute_fingerprint(group: zarr.Group, known: Mapping[str, np.ndarray] | None = None) -> str:
    """A content fingerprint: shape, coordinates, provenance and the exact statistics.

    Any change to the data changes the per-step partial sums, so hashing them (rather than
    every chunk of X) detects a changed store in milliseconds. `known` holds arrays the caller
    just wrote (the same values as stored), which are then not read back.
    """
    known = known or {}
    digest = hashlib.sha256()
    digest.update(json.dumps(list(group["X"].shape)).encode())
    lossy = [codec for codec in group["X"].metadata.to_dict()["codecs"] if codec["name"].startswith("satflow.")]
    if lossy:  # X through a satflow codec holds other values than the same statistics' lossless store
        digest.update(json.dumps(lossy, sort_keys=True).encode())
    aux = [name for name in ("aux_source_file", "aux_time") if name in group]
    for name in ("time", "feature", "lat", "lon", "source_file", *STEP_NAMES, *aux):
        digest.update(name.encode())
        values = known[name] if name in known else np.asarray(group[name][:])
        if name in ("feature", "source_file", "aux_source_file"):
            digest.update("\x1f".join(map(str, values.tolist())).encode())
        else:
            digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()[:16]


def accepted_fingerprints(path: str | Path) -> tuple[str, ...]:
    """The fingerprints an index of this store may carry: its own, and for a store written by `satflow compress`
    the input store's (`satflow_source_fingerprint`: same grid, mask and statistics, so an index of the
    original selects the same patches in every compressed copy of it)."""
    source = open_group(path).attrs.get("satflow_source_fingerprint")
    return (fingerprint(path), *([str(source)] if source else []))


def fingerprint(path: str | Path) -> str:
    """The fingerprint recorded when the store was last finalised (raises if never finalised)."""
    group = open_group(path)
    value = group.attrs.get("satflow_fingerprint")
    if not value:
        raise StoreError(f"{path}: store was never finalised (an ingest is unfinished); re-run `satflow ingest`")
    return str(value)
