"""`scan_compress`: the one I/O step before a compression is planned; it returns `CompressFacts`, plain data
(the input's fingerprint, shape, chunks and features; what an existing --out holds). No data values are read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from satflow.compress.plan import COMPRESSED_ATTR, CompressFacts, OutputFacts


def scan_compress(store: str | Path, out: str | Path) -> CompressFacts:
    """The input store's facts (a missing or unfinished store raises StoreError naming it) and the output's."""
    from satflow.store import fingerprint, open_group

    path = str(Path(store).resolve())
    group = open_group(path)
    store_fingerprint = fingerprint(path)
    x = group["X"]
    return CompressFacts(
        store=path, fingerprint=store_fingerprint, shape=tuple(int(n) for n in x.shape),
        chunks=tuple(int(c) for c in x.chunks),
        features=tuple(str(f) for f in np.asarray(group["feature"][:]).tolist()),
        out=str(Path(out).resolve()), existing=scan_output(out),
    )


def scan_output(out: str | Path) -> OutputFacts | None:
    """None when --out does not exist; else its compress record (None if it has none) and done steps."""
    out = Path(out)
    if not out.exists():
        return None
    try:
        group = zarr.open_group(str(out), mode="r", zarr_format=3, use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError):  # type: ignore[attr-defined]
        return OutputFacts(None)
    record = group.attrs.get(COMPRESSED_ATTR)
    if not isinstance(record, dict) or "X" not in group or "ingested" not in group:
        return OutputFacts(None)
    return OutputFacts(dict(record), tuple(int(c) for c in group["X"].chunks), np.asarray(group["ingested"][:]))
