"""`scan_eval`: the one I/O step before an evaluation is planned; it returns `EvalFacts`, plain data.

Everything the plan, the output stores and the tasks' shared context need to know about the store
is read here, once: its fingerprint, shape, chunking, features, coordinates (times decoded and as
stored), units, per-feature std, which source file filled each step (and the sizes on disk of the
evaluated steps' files, for the ratio against the sources), and with `eval.index` the indexed
patches. `plan_eval` and the rest of `run_eval` take these facts and never reopen the store.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from satflow.eval.options import EvalConfig
from satflow.eval.plan import INDEX_COLUMNS, EvalFacts, parse_time_range

if TYPE_CHECKING:  # pandas loads only with an index (the patch rows): 0.4 s of every eval's start otherwise
    import pandas as pd


def scan_eval(store: str | Path, config: EvalConfig) -> EvalFacts:
    """Read the store's (and with `config.index` the index's) facts; no data values are read."""
    from satflow.sources.timecodec import decode_times
    from satflow.store import fingerprint, open_group

    path = str(Path(store).resolve())
    group = open_group(path)  # a missing store fails here, naming the path
    store_fingerprint = fingerprint(path)
    raw_time = group["time"]
    time_attrs = {k: raw_time.attrs[k] for k in ("units", "calendar") if k in raw_time.attrs}
    x_chunks = group["X"].chunks
    shape = tuple(int(n) for n in group["X"].shape)
    source_files = tuple(str(f) for f in np.asarray(group["source_file"][:]).tolist())
    t0, t1 = parse_time_range(config.time, shape[0])
    return EvalFacts(
        store=path, fingerprint=store_fingerprint, shape=shape,
        chunks=(int(x_chunks[2]), int(x_chunks[3])),
        features=tuple(str(f) for f in np.asarray(group["feature"][:]).tolist()),
        # Read through zarr and decoded by satflow's CF time rules, as the store was written: opening
        # the store with xarray would import dask (seconds) before anything is planned.
        times=decode_times(raw_time[:], time_attrs.get("units", ""), time_attrs.get("calendar")),
        time_numbers=np.asarray(raw_time[:]), time_attrs=time_attrs,
        lat=np.asarray(group["lat"][:]), lon=np.asarray(group["lon"][:]),
        units=tuple(str(u) for u in np.asarray(group["units"][:]).tolist()) if "units" in group else (),
        std=tuple(float(s) for s in np.asarray(group["std"][:], dtype=np.float64)),
        source_files=source_files, source_sizes=_file_sizes(source_files[t0:t1]),
        index_rows=_index_rows(config.index, path) if config.index else None,
        attrs=dict(group.attrs),
    )


def _file_sizes(paths: tuple[str, ...]) -> dict[str, int]:
    """Bytes on disk of each distinct source file that still exists."""
    return {p: os.path.getsize(p) for p in dict.fromkeys(paths) if p and os.path.isfile(p)}


def _index_rows(index: str, store: str) -> pd.DataFrame:
    """The index's patch selectors (checked against the store's fingerprint)."""
    from satflow.index.io import read_index

    frame = read_index(index, store=store, columns=INDEX_COLUMNS)
    frame.attrs = {}  # plain rows: the metadata was checked, the plan needs none of it
    return frame
