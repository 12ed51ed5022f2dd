"""Reading and writing patch-index Parquet files and their file-level `satflow` metadata.

The metadata (JSON under the Parquet key `satflow`) names the store, its fingerprint at build
time, the grid and every parameter, plus a history of derived steps (stratify, sample, ...).
Loading an index for use against a store re-checks the fingerprint: a store that changed since
the index was built is an error, never silently wrong selectors. A store written by `satflow compress`
also accepts an index of the store it was compressed from (same grid, mask and statistics).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

METADATA_KEY = "satflow"
FORMAT = "satflow-patch-index"
FORMAT_VERSION = 1


class IndexFileError(ValueError):
    """The file is not a readable satflow patch index."""


class StaleIndexError(IndexFileError):
    """The store changed (or moved) since the index was built."""


def _table(frame: pd.DataFrame, metadata: dict, schema: pa.Schema | None = None) -> pa.Table:
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    merged = {**(table.schema.metadata or {}), METADATA_KEY.encode(): json.dumps(metadata).encode()}
    return table.replace_schema_metadata(merged)


class IndexWriter:
    """Streams DataFrame partitions (same columns) into one Parquet file, one row group each."""

    def __init__(self, path: str | Path, metadata: dict, schema: pa.Schema):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + ".partial")
        self.schema = schema.with_metadata({METADATA_KEY.encode(): json.dumps(metadata).encode()})
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def __enter__(self) -> IndexWriter:
        self._writer = pq.ParquetWriter(self._tmp, self.schema)
        return self

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        self._writer.write_table(table)
        self.rows += len(frame)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._writer.close()
        if exc_type is None:
            self._tmp.replace(self.path)  # a crash never leaves a half-written index under the real name
        else:
            self._tmp.unlink(missing_ok=True)


def write_index(frame: pd.DataFrame, path: str | Path, metadata: dict) -> Path:
    """Write a whole index DataFrame (derived indexes: strata, samples, triplets, windows)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(_table(frame.reset_index(drop=True), metadata), path)
    return path


def read_metadata(path: str | Path) -> dict:
    """The `satflow` metadata of an index file."""
    try:
        raw = pq.read_schema(path).metadata or {}
    except FileNotFoundError:
        raise IndexFileError(f"{path}: no such index; build one with `satflow index STORE --out {path}`") from None
    except (pa.ArrowInvalid, OSError) as err:
        raise IndexFileError(f"{path}: not a Parquet file ({err})") from None
    if METADATA_KEY.encode() not in raw:
        raise IndexFileError(f"{path}: a Parquet file without satflow metadata; build it with `satflow index`")
    return json.loads(raw[METADATA_KEY.encode()])


def verify_store(metadata: dict, index_path: str | Path, store: str | Path | None = None) -> Path:
    """The store an index belongs to, after checking its fingerprint (or a compressed copy's source fingerprint,
    `satflow.store.read.accepted_fingerprints`); raises StaleIndexError."""
    from satflow.store.read import StoreError, accepted_fingerprints

    recorded = metadata["store"]
    store_path = Path(store) if store is not None else Path(recorded["path"])
    try:
        current, *sources = accepted_fingerprints(store_path)
    except StoreError as err:
        raise StaleIndexError(
            f"{index_path}: cannot open the store it indexes ({err}); pass the store's new location "
            "(--store / store=) if it moved"
        ) from None
    if recorded["fingerprint"] not in (current, *sources):
        raise StaleIndexError(
            f"{index_path}: the store {store_path} changed since this index was built (fingerprint "
            f"{recorded['fingerprint']} at build time, {current} now); rebuild the index with "
            f"`satflow index {store_path} --out {index_path}`"
        )
    return store_path


def read_index(path: str | Path, *, store: str | Path | None = None, verify: bool = True,
               columns: list[str] | None = None) -> pd.DataFrame:
    """Read an index; `frame.attrs['satflow']` holds its metadata.

    With `verify` (the default) the store it indexes (the recorded path, or `store`) must still
    have the fingerprint recorded at build time.
    """
    metadata = read_metadata(path)
    if verify:
        resolved = verify_store(metadata, path, store)
        metadata = {**metadata, "store": {**metadata["store"], "path": str(resolved)}}
    frame = pq.read_table(path, columns=columns).to_pandas()
    frame.attrs[METADATA_KEY] = metadata
    return frame


def derived_metadata(metadata: dict, step: str, parameters: dict) -> dict:
    """Metadata of an index derived from another one: the same store and grid, one more history step."""
    history = [*metadata.get("history", []), {"step": step, "parameters": parameters}]
    return {**metadata, "history": history}
