"""The small functions the executor runs: code whole regions with one codec, merge partials.

A coding task reads its regions (whole 2-D fields in cube mode, patches in index mode) from the
store, each once; encodes the blocks without a chunk in the compressed store yet through the
codec's batched hook; decodes every block's container (so a resumed block is verified, not
trusted); writes each new block's `M` chunk and then its container bytes as its `X` chunk (the
marker of a finished block comes last); assembles the decoded regions and, from the values it
already holds, returns mergeable partials keyed by (codec, time step): `ErrorSums` of the error and
`FieldSums` (DSSIM, error autocorrelation, spectra) of every region, and a record of where and
how fast it ran. With a reconstruction store it also writes the decoded regions and their
`Moments`. Without the original store (plain decoding) the same task only decodes and writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import zarr

from satflow.codecs.container import section_sizes
from satflow.codecs.spec import CodecSpec, build_codec
from satflow.codecs.zarr import read_chunk_bytes, write_chunk_bytes
from satflow.eval.fields import FieldSums
from satflow.eval.plan import Block
from satflow.eval.stores import write_block
from satflow.metrics import ErrorSums, merge_all
from satflow.runtime.executors import current_worker
from satflow.stats import Moments


@dataclass(frozen=True)
class BatchItem:
    """Everything one coding task needs that differs from task to task."""

    codec: int
    spec: CodecSpec
    blocks: tuple[Block, ...]
    chunks: tuple[tuple[int, ...], ...]  # each block's chunk of the compressed store's X
    regions: tuple[Block, ...]  # what the task reads and measures whole; they hold its blocks
    compressed: str
    reconstruction: str | None = None  # a reconstruction store to write too


@dataclass(frozen=True)
class EvalContext:
    """What every task of a run shares (small: it is sent with each task)."""

    store: str | None  # the original; None when only decoding
    t0: int  # the first evaluated time step (the reconstruction's t = 0)
    hist_scale: tuple[float, ...] = ()
    source_bytes_per_cell: tuple[float, ...] = ()  # per evaluated time step; 0 = unknown
    decode_context: tuple[tuple[str, str], ...] = ()  # e.g. (("checkpoint", path),) for plain decoding
    rel_threshold: float = 1e-4  # relative error beyond which a point counts (acceptance tests)
    field_metrics: bool = True  # DSSIM, error autocorrelation and spectra of every region


@dataclass
class Partials:
    """Mergeable results: error and field sums keyed by (codec, t); the reconstruction's moments
    per block, keyed (codec, t, y0, x0), so its statistics fold in one fixed order whatever the
    task grouping (a plain decode then rebuilds them bit for bit); task records."""

    errors: dict[tuple[int, int], ErrorSums] = field(default_factory=dict)
    moments: dict[tuple[int, int, int, int], Moments] = field(default_factory=dict)
    fields: dict[tuple[int, int], FieldSums] = field(default_factory=dict)
    records: list[dict] = field(default_factory=list)

    def merge(self, other: Partials) -> Partials:
        return Partials(_merge_dicts(self.errors, other.errors), _merge_dicts(self.moments, other.moments),
                        _merge_dicts(self.fields, other.fields), self.records + other.records)

    def add(self, table: str, key: tuple, value) -> None:
        entries = getattr(self, table)
        entries[key] = entries[key].merge(value) if key in entries else value


def _merge_dicts(a: dict, b: dict) -> dict:
    merged = dict(a)
    for key, value in b.items():
        merged[key] = merged[key].merge(value) if key in merged else value
    return merged


def combine_partials(parts: list[Partials]) -> Partials:
    """The executor's combine step (pairwise within the group keeps rounding shallow)."""
    return merge_all(parts)


def _group(path: str, mode: str) -> zarr.Group:
    # Opened per task, not cached: a long-lived worker may outlive a store that --overwrite rebuilt.
    return zarr.open_group(path, mode=mode, zarr_format=3, use_consolidated=False)


def _read_regions(store: str, regions: tuple[Block, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each region's X and M, read once (a whole field is a chunk-aligned read of one step)."""
    group = _group(store, "r")
    read = []
    for r in regions:
        selection = (r.t, slice(None), slice(r.y0, r.y1), slice(r.x0, r.x1))
        read.append((np.asarray(group["X"][selection]), np.asarray(group["M"][selection])))
    return read


def _region_of(blocks: tuple[Block, ...], regions: tuple[Block, ...]) -> list[int]:
    """Which region holds each block (the equal one first: overlapping patches are their own regions)."""
    exact = {r: i for i, r in enumerate(regions)}
    return [exact[b] if b in exact else next(i for i, r in enumerate(regions) if r.contains(b)) for b in blocks]


def _local(block: Block, region: Block) -> tuple[slice, slice, slice]:
    return (slice(None), slice(block.y0 - region.y0, block.y1 - region.y0), slice(block.x0 - region.x0, block.x1 - region.x0))


def _decoder(item: BatchItem, context: EvalContext, sample: bytes):
    """The codec for decoding: this run's codec, or (plain decoding) whatever wrote the containers."""
    if context.store is not None:
        return item.spec.build()
    from satflow.codecs.registry import codec_from_container

    return codec_from_container(sample, **dict(context.decode_context))


def code_batch(item: BatchItem, context: EvalContext) -> Partials:
    """Encode the task's unfinished blocks, decode all of them, write the stores, return partials."""
    started = time.perf_counter()
    seconds = dict.fromkeys(("read", "encode", "decode", "write", "metrics"), 0.0)
    built_before = build_codec.cache_info().misses
    compressed = _group(item.compressed, "r+" if context.store is not None else "r")
    tic = time.perf_counter()
    originals = _read_regions(context.store, item.regions) if context.store is not None else None
    region_of = _region_of(item.blocks, item.regions)
    blocks_in = [(originals[r][0][_local(b, item.regions[r])], originals[r][1][_local(b, item.regions[r])])
                 for b, r in zip(item.blocks, region_of)] if originals is not None else None
    containers = [read_chunk_bytes(compressed["X"], c) for c in item.chunks]
    seconds["read"] = time.perf_counter() - tic
    todo = _unfinished(item, containers, blocks_in)
    if todo:
        codec = item.spec.build()
        tic = time.perf_counter()
        encoded = codec.encode_batch([blocks_in[i][0] for i in todo], [blocks_in[i][1] for i in todo])
        seconds["encode"] = time.perf_counter() - tic
        for i, data in zip(todo, encoded):
            containers[i] = data
    codec = _decoder(item, context, containers[0])
    tic = time.perf_counter()
    decoded = codec.decode_batch(containers)
    seconds["decode"] = time.perf_counter() - tic
    tic = time.perf_counter()
    for i in todo:  # the mask first, the container last: an X chunk marks a finished block
        compressed["M"][_chunk_selection(compressed["M"], item.chunks[i], item.blocks[i])] = blocks_in[i][1][np.newaxis]
        write_chunk_bytes(compressed["X"], item.chunks[i], containers[i])
    fields = _assemble(item, region_of, decoded)
    partials = Partials()
    if item.reconstruction is not None:
        _write_reconstruction(item, context, fields, decoded, partials)
    seconds["write"] = time.perf_counter() - tic
    tic = time.perf_counter()
    if originals is not None:
        _measure(item, context, codec, originals, fields, containers, region_of, partials)
    seconds["metrics"] = time.perf_counter() - tic
    partials.records.append({
        "task": "code", "codec": item.codec, "blocks": len(item.blocks), "regions": len(item.regions),
        "encoded": len(todo), "resumed": len(item.blocks) - len(todo), "worker": current_worker(),
        "device": codec.device_label(),
        "codec_built": build_codec.cache_info().misses > built_before,  # False: reused this worker's codec
        **{f"{phase}_seconds": value for phase, value in seconds.items()},
        "encoded_bytes": int(sum(blocks_in[i][0].nbytes for i in todo)) if todo else 0,
        "decoded_bytes": int(sum(values.nbytes for values, _ in decoded)),
        "seconds": time.perf_counter() - started,
    })
    return partials


def _unfinished(item: BatchItem, containers: list[bytes | None], blocks_in) -> list[int]:
    """Positions of the blocks without a chunk yet. Without the original (`blocks_in` None: plain
    decoding) a missing chunk is an unfinished evaluation."""
    todo = [i for i, data in enumerate(containers) if data is None]
    if todo and blocks_in is None:
        missing = ", ".join(item.blocks[i].key for i in todo[:3]) + (", ..." if len(todo) > 3 else "")
        raise FileNotFoundError(f"{item.compressed}: {len(todo)} block chunk(s) of X missing ({missing}); "
                                "the evaluation did not finish: re-run `satflow eval` to complete it")
    return todo


def _chunk_selection(array: zarr.Array, coords: tuple[int, ...], block: Block) -> tuple[slice, ...]:
    """The cells of chunk `coords` that `block` fills (an edge chunk: its in-bounds part)."""
    height, width = block.shape
    return tuple(slice(c * n, c * n + size) for c, n, size in
                 zip(coords, array.chunks, (1, array.chunks[1], height, width)))


def _assemble(item: BatchItem, region_of: list[int], decoded: list) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each region's decoded values and mask, pasted together from its blocks."""
    if len(item.blocks) == len(item.regions) and all(b == r for b, r in zip(item.blocks, item.regions)):
        return [(values, mask) for values, mask in decoded]  # patches: every block is its region
    n_features = decoded[0][0].shape[0]
    fields = [(np.full((n_features, *r.shape), np.nan, np.float32), np.zeros((n_features, *r.shape), np.uint8))
              for r in item.regions]
    for block, r, (values, mask) in zip(item.blocks, region_of, decoded):
        local = _local(block, item.regions[r])
        fields[r][0][local] = values
        fields[r][1][local] = np.asarray(mask).reshape(values.shape)
    return fields


def _write_reconstruction(item: BatchItem, context: EvalContext, fields: list, decoded: list,
                          partials: Partials) -> None:
    """The decoded regions into the reconstruction store; the moments of every block (fixed fold order)."""
    reconstruction = _group(item.reconstruction, "r+")
    for region, (values, mask) in zip(item.regions, fields):
        write_block(reconstruction, region.t - context.t0, region, values, mask)
    for block, (values, _) in zip(item.blocks, decoded):
        partials.moments[(item.codec, block.t, block.y0, block.x0)] = Moments.from_block(values)


def _measure(item: BatchItem, context: EvalContext, codec, originals: list, fields: list, containers: list,
             region_of: list[int], partials: Partials) -> None:
    """ErrorSums and FieldSums of every region from the values the task holds."""
    n_features = fields[0][0].shape[0]
    bound = codec.error_bound(n_features) if codec.declares_bound else None  # violations count against it
    for r, (region, (x, m), (values, _)) in enumerate(zip(item.regions, originals, fields)):
        mine = [i for i, owner in enumerate(region_of) if owner == r]
        sections: dict[str, int] = {}
        for i in mine:
            for name, size in section_sizes(containers[i]).items():
                sections[name] = sections.get(name, 0) + size
        step = region.t - context.t0
        errors = ErrorSums.from_block(
            x, values, m, n_bytes=sum(len(containers[i]) for i in mine), section_bytes=sections, bound=bound,
            hist_scale=np.asarray(context.hist_scale), rel_threshold=context.rel_threshold,
            source_bytes=round(context.source_bytes_per_cell[step] * values.size),
        )
        key = (item.codec, region.t)
        partials.add("errors", key, errors)
        if context.field_metrics:
            partials.add("fields", key, FieldSums.from_fields(x, values, m))


def moments_by_step(partials: Partials, codec: int, t0: int) -> dict[int, Moments]:
    """The reconstruction's moments per time step (counted from t0), folded in block order."""
    by_step: dict[int, list[Moments]] = {}
    for (c, t, _, _), moments in sorted(partials.moments.items(), key=lambda kv: kv[0]):
        if c == codec:
            by_step.setdefault(t - t0, []).append(moments)
    return {t: merge_all(parts) for t, parts in by_step.items()}
