"""The compressed store on disk: its template (a copy of the input store with X through the codec) and its
record (codec, source, summary).

The template is the input store's group and every array but `X`, `M` and `ingested` copied byte for byte
(coordinates, statistics and their per-step partials, units, provenance, a domain's grid mapping), then
`X` created with the satflow serializer and no compressor (a chunk file is exactly its containers), `M`
with the input's lossless codecs, and `ingested` (the done marker) chunked like X in time. No chunk of X
or M is written here: the region tasks write them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import zarr

from satflow.codecs.zarr import zarr_codec
from satflow.compress.plan import COMPRESSED_ATTR, CompressPlan
from satflow.store import consolidate, finalize, open_group

WRITTEN_BY_TASKS = ("X", "M", "ingested")
SOURCE_FINGERPRINT_ATTR = "satflow_source_fingerprint"  # see satflow.store.read.accepted_fingerprints


def create_compressed_store(plan: CompressPlan) -> None:
    source, out = Path(plan.store), Path(plan.out)
    out.mkdir(parents=True)
    for entry in source.iterdir():
        if entry.name in WRITTEN_BY_TASKS:
            continue
        (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, out / entry.name)
    inputs = open_group(source)
    group = zarr.open_group(str(out), mode="r+", zarr_format=3, use_consolidated=False)
    serializer = zarr_codec(plan.codec)
    _like(group, inputs["X"], plan.chunks, fill_value=np.nan, serializer=serializer, compressors=None)
    mask = inputs["M"]
    _like(group, mask, plan.chunks, fill_value=mask.fill_value, serializer=mask.serializer,
          compressors=mask.compressors, filters=mask.filters)
    done = inputs["ingested"]
    _like(group, done, (plan.chunks[0],), fill_value=0, compressors=done.compressors)
    attrs = dict(group.attrs)
    attrs.pop("satflow_fingerprint", None)  # stale until finalised
    attrs[SOURCE_FINGERPRINT_ATTR] = plan.fingerprint
    attrs[COMPRESSED_ATTR] = {"codec": plan.codec, "zarr_codec": serializer.to_dict(), "source_store": plan.store,
                              "source_fingerprint": plan.fingerprint}
    group.attrs.put(attrs)
    consolidate(out)  # region tasks open the final layout with one metadata read


def _like(group: zarr.Group, array: zarr.Array, chunks: tuple[int, ...], **codecs) -> zarr.Array:
    """An empty array named and shaped like `array` (same dimension names and attributes), other chunks and codecs."""
    return group.create_array(array.basename, shape=array.shape, chunks=chunks, dtype=array.dtype,
                              dimension_names=array.metadata.dimension_names, attributes=dict(array.attrs), **codecs)


def finish_compressed_store(plan: CompressPlan, summary: dict) -> dict:
    """Fold the (copied, original) per-step statistics, fingerprint the store, record the summary with the
    fingerprint; that summary."""
    finalize(plan.out)
    group = zarr.open_group(plan.out, mode="r+", zarr_format=3, use_consolidated=False)
    summary = {**summary, "fingerprint": str(group.attrs["satflow_fingerprint"])}
    group.attrs[COMPRESSED_ATTR] = {**group.attrs[COMPRESSED_ATTR], "summary": summary}
    consolidate(plan.out)
    return summary


def remove_output(out: str | Path) -> None:
    """--overwrite: the old output goes only once every check passed and the new template is next."""
    shutil.rmtree(out)
