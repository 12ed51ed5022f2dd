"""The small functions the executor runs: code a batch of blocks, measure whole fields, merge partials.

A coding task reads its blocks from the store (chunk-aligned in cube mode), encodes those without a
container yet through the codec's batched hook, decodes every container of the batch (so a resumed
block is verified, not trusted), writes the reconstruction and only then the containers, and
returns mergeable partials keyed by (codec, time step): `ErrorSums` of the error, `Moments` of
the reconstruction, and a record of where and how fast it ran. Without the original store (plain
decoding) the same task only decodes and writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import zarr

from satflow.codecs.container import section_sizes
from satflow.codecs.spec import CodecSpec, build_codec
from satflow.eval.fields import FieldSums
from satflow.eval.plan import Block
from satflow.eval.stores import read_container, write_block, write_container
from satflow.metrics import ErrorSums, merge_all
from satflow.runtime.executors import current_worker
from satflow.stats import Moments


@dataclass(frozen=True)
class BatchItem:
    """Everything one coding task needs that differs from task to task."""

    codec: int
    spec: CodecSpec
    blocks: tuple[Block, ...]
    compressed: str
    reconstruction: str


@dataclass(frozen=True)
class EvalContext:
    """What every task of a run shares (small: it is sent with each task)."""

    store: str | None  # the original; None when only decoding
    t0: int  # the first evaluated time step (the reconstruction's t = 0)
    hist_scale: tuple[float, ...] = ()
    source_bytes_per_cell: tuple[float, ...] = ()  # per evaluated time step; 0 = unknown
    decode_context: tuple[tuple[str, str], ...] = ()  # e.g. (("checkpoint", path),) for plain decoding
    rel_threshold: float = 1e-4  # relative error beyond which a point counts (acceptance tests)


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


def _read_blocks(store: str, blocks: tuple[Block, ...]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    group = _group(store, "r")
    xs, ms = [], []
    for b in blocks:
        region = (b.t, slice(None), slice(b.y0, b.y1), slice(b.x0, b.x1))
        xs.append(np.asarray(group["X"][region]))
        ms.append(np.asarray(group["M"][region]))
    return xs, ms


def _decoder(item: BatchItem, context: EvalContext, sample: bytes):
    """The codec for decoding: this run's codec, or (plain decoding) whatever wrote the containers."""
    if context.store is not None:
        return item.spec.build()
    from satflow.codecs.registry import codec_from_container

    return codec_from_container(sample, **dict(context.decode_context))


def code_batch(item: BatchItem, context: EvalContext) -> Partials:
    """Encode the batch's unfinished blocks, decode all of them, write both stores, return partials."""
    started = time.perf_counter()
    built_before = build_codec.cache_info().misses
    xs, ms = _read_blocks(context.store, item.blocks) if context.store is not None else (None, None)
    containers, todo, encode_seconds = _containers(item, xs, ms)
    codec = _decoder(item, context, containers[0])
    tic = time.perf_counter()
    decoded = codec.decode_batch(containers)
    decode_seconds = time.perf_counter() - tic
    reconstruction = _group(item.reconstruction, "r+")
    for block, (values, mask) in zip(item.blocks, decoded):
        write_block(reconstruction, block.t - context.t0, block, values, mask)
    for i in todo:  # the marker of a finished block comes last
        write_container(item.compressed, item.blocks[i], containers[i])
    partials = _partials(item, context, containers, decoded, xs, ms, codec)
    partials.records.append({
        "task": "code", "codec": item.codec, "blocks": len(item.blocks), "encoded": len(todo),
        "resumed": len(item.blocks) - len(todo), "worker": current_worker(), "device": codec.device_label(),
        "codec_built": build_codec.cache_info().misses > built_before,  # False: reused this worker's codec
        "encode_seconds": encode_seconds, "decode_seconds": decode_seconds,
        "encoded_bytes": int(sum(xs[i].nbytes for i in todo)) if xs is not None else 0,
        "decoded_bytes": int(sum(values.nbytes for values, _ in decoded)),
        "seconds": time.perf_counter() - started,
    })
    return partials


def _containers(item: BatchItem, xs: list | None, ms: list | None) -> tuple[list[bytes], list[int], float]:
    """Every block's container: the finished ones read back, the others encoded in one batch.

    Returns the containers, the positions that were encoded, and the encoding seconds. Without the
    original (`xs` None: plain decoding) a missing container is an unfinished evaluation.
    """
    containers = [read_container(item.compressed, b) for b in item.blocks]
    todo = [i for i, data in enumerate(containers) if data is None]
    if not todo:
        return containers, todo, 0.0
    if xs is None:
        missing = ", ".join(item.blocks[i].key for i in todo[:3]) + (", ..." if len(todo) > 3 else "")
        raise FileNotFoundError(f"{item.compressed}: {len(todo)} block container(s) missing ({missing}); "
                                "the evaluation did not finish: re-run `satflow eval` to complete it")
    codec = item.spec.build()
    tic = time.perf_counter()
    encoded = codec.encode_batch([xs[i] for i in todo], [ms[i] for i in todo])
    encode_seconds = time.perf_counter() - tic
    for i, data in zip(todo, encoded):
        containers[i] = data
    return containers, todo, encode_seconds


def _partials(item: BatchItem, context: EvalContext, containers: list[bytes], decoded: list, xs, ms,
              codec) -> Partials:
    partials = Partials()
    n_features = decoded[0][0].shape[0]
    bound = codec.error_bound(n_features) if codec.declares_bound else None  # violations count against it
    for i, (block, data, (values, mask)) in enumerate(zip(item.blocks, containers, decoded)):
        key = (item.codec, block.t)
        partials.moments[(*key, block.y0, block.x0)] = Moments.from_block(values)
        if xs is None:
            continue
        step = block.t - context.t0
        errors = ErrorSums.from_block(
            xs[i], values, ms[i], n_bytes=len(data), section_bytes=section_sizes(data), bound=bound,
            hist_scale=np.asarray(context.hist_scale), rel_threshold=context.rel_threshold,
            source_bytes=round(context.source_bytes_per_cell[step] * values.size),
        )
        partials.errors[key] = partials.errors[key].merge(errors) if key in partials.errors else errors
    return partials


def moments_by_step(partials: Partials, codec: int, t0: int) -> dict[int, Moments]:
    """The reconstruction's moments per time step (counted from t0), folded in block order."""
    by_step: dict[int, list[Moments]] = {}
    for (c, t, _, _), moments in sorted(partials.moments.items(), key=lambda kv: kv[0]):
        if c == codec:
            by_step.setdefault(t - t0, []).append(moments)
    return {t: merge_all(parts) for t, parts in by_step.items()}


@dataclass(frozen=True)
class FieldItem:
    """One whole-field measurement: a region of one time step of the original and a reconstruction."""

    codec: int
    region: Block
    reconstruction: str


def measure_field(item: FieldItem, context: EvalContext) -> Partials:
    """DSSIM, error autocorrelation and spectra of a whole 2-D field (all features), as mergeable sums."""
    (x,), (mask,) = _read_blocks(context.store, (item.region,))
    local = Block(item.region.t - context.t0, item.region.y0, item.region.y1, item.region.x0, item.region.x1)
    (x_hat,), _ = _read_blocks(item.reconstruction, (local,))
    started = time.perf_counter()
    sums = FieldSums.from_fields(x, x_hat, mask)
    partials = Partials(fields={(item.codec, item.region.t): sums})
    partials.records.append({"task": "field", "codec": item.codec, "worker": current_worker(),
                             "seconds": time.perf_counter() - started})
    return partials
