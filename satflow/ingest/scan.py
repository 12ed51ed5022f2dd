"""The one I/O step before planning: expand the inputs, scan their metadata (no data) on the executor,
group them through the source, scan each auxiliary product alike, and read the existing store's facts.

`scan_ingest` returns `IngestFacts` (plain data); `satflow.ingest.plan.plan_ingest` plans from them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from satflow.ingest.facts import IngestFacts, ProductFacts, Skipped, StoreFacts
from satflow.ingest.options import IngestConfig
from satflow.ingest.inputs import IngestError, expand_inputs
from satflow.runtime.executors import as_executor
from satflow.sources.auxiliary import scene_key, time_hours
from satflow.sources.base import FileInfo, SourceError, group_inputs, scan_input
from satflow.sources.timecodec import as_time_array
from satflow.sources.windows import with_primary_centres
from satflow.store import StoreLayout, open_group, open_store

# Metadata reads are HDF5-bound; worker processes sidestep the global HDF5 lock. Fewer files than
# this are faster to scan here than to ship to workers.
SCAN_ON_WORKERS_FROM = 8
# A small file scans in about 1.5 ms, a Dask task costs a few: workers scan files in batches of up to
# this many (and at least 16 batches, so every worker of a small cluster gets some).
SCAN_BATCH_FILES = 64
MIN_SCAN_BATCHES = 16


def scan_ingest(inputs: Sequence[str], store: str | Path | None, config: IngestConfig, *,
                client=None) -> IngestFacts:
    """Scan inputs (metadata only, on `client` when given) and the store at `store` if one exists.

    `store=None` scans for the cube alone (`open_archive`). Writes nothing.
    """
    paths = expand_inputs(inputs)
    primary, skipped = _scan_inputs(paths, config.source, client)
    aux = {name: _scan_product(name, product.inputs, with_primary_centres(product.source, primary), client)
           for name, product in config.aux_products.items()}
    store = "" if store is None else str(store)
    return IngestFacts(store, paths, primary, skipped, aux, scan_store(store) if store else None)


def _scan_or_skip(path: str, source: SourceConfig) -> FileInfo | Skipped:
    try:
        return scan_input(path, source)
    except SourceError as err:
        return Skipped(path, err.reason)


def _scan_batch(paths: list[str], source: SourceConfig) -> list[FileInfo | Skipped]:
    return [_scan_or_skip(path, source) for path in paths]


def scan_batches(paths: list[str]) -> list[list[str]]:
    """Consecutive batches of paths, one scan task each (see SCAN_BATCH_FILES)."""
    size = max(1, min(SCAN_BATCH_FILES, len(paths) // MIN_SCAN_BATCHES))
    return [paths[i:i + size] for i in range(0, len(paths), size)]


def _scan_inputs(paths: list[str], source: SourceConfig, client) -> tuple[list[FileInfo], list[Skipped]]:
    """Scanned and grouped inputs; the files the scan, then the grouping, left out."""
    if client is not None and len(paths) >= SCAN_ON_WORKERS_FROM:
        batches = as_executor(client).gather_map(_scan_batch, scan_batches(paths), source, name="ingest-scan",
                                                 retries=1)
        scanned = [result for batch in batches for result in batch]
    else:
        scanned = [_scan_or_skip(path, source) for path in paths]
    skipped = [s for s in scanned if isinstance(s, Skipped)]
    inputs, left_out = group_inputs([s for s in scanned if not isinstance(s, Skipped)], source)
    return inputs, skipped + [Skipped(path, reason) for path, reason in left_out]


def _scan_product(name: str, inputs: list[str], source: SourceConfig, client) -> ProductFacts:
    """An auxiliary product's inputs scanned and grouped like the primary's; (path, reason) per file left out."""
    try:
        paths = expand_inputs(inputs)
    except IngestError as err:
        raise IngestError(f"ingest.aux_products.{name}.inputs: {err}") from None
    product_inputs, skipped = _scan_inputs(paths, source, client)
    return ProductFacts(product_inputs, [(s.path, s.reason) for s in skipped])


def scan_store(store: str) -> StoreFacts | None:
    """The existing store's layout, provenance, resume markers and recorded settings; None if there is none."""
    if not os.path.exists(os.path.join(store, "zarr.json")):
        return None
    group = open_group(store)
    ds = open_store(store, consolidated=False)
    chunks = dict(zip(("time", "feature", "lat", "lon"), group["X"].chunks))
    aux_products = tuple(str(a) for a in ds["aux_product"].values) if "aux_product" in ds.coords else ()
    layout = StoreLayout(ds["time"].values, tuple(str(f) for f in ds["feature"].values), ds["lat"].values,
                         ds["lon"].values, chunks, units=tuple(str(u) for u in ds["units"].values),
                         aux_products=aux_products)
    files = {t: str(f) for t, f in zip(layout.times, ds["source_file"].values)}
    return StoreFacts(layout, files, ds["ingested"].values, str(group.attrs.get("satflow_config", "")),
                      _recorded_aux_scenes(ds, aux_products))


def _recorded_aux_scenes(ds, products: tuple[str, ...]) -> dict[str, set[tuple[str, int]]]:
    """Per product, the `scene_key` of every auxiliary scene the store already holds."""
    recorded: dict[str, set[tuple[str, int]]] = {}
    for k, name in enumerate(products):
        files, times = ds["aux_source_file"].values[:, k], ds["aux_time"].values[:, k]
        written = [i for i, f in enumerate(files) if str(f)]
        hours = time_hours(as_time_array([times[i] for i in written])) if written else []
        recorded[name] = {scene_key(files[i], h) for i, h in zip(written, hours)}
    return recorded
